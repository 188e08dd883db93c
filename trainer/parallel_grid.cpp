#include "trainer/parallel_grid.h"

#include <string>

#include "common/error.h"
#include "common/mpi_util.h"

namespace rwkv::trainer {

ParallelGrid::ParallelGrid(MPI_Comm w, int tp_ranks) : world(w) {
  const int rank = comm_rank(w), size = comm_size(w);
  if (tp_ranks < 1 || size % tp_ranks != 0)
    throw ConfigError("parallel.tp (" + std::to_string(tp_ranks) +
                      ") must divide the number of ranks (" + std::to_string(size) +
                      "): the ranks form a tp x dp grid");
  tp_size = tp_ranks;
  dp_size = size / tp_ranks;
  tp_rank = rank % tp_ranks;
  dp_rank = rank / tp_ranks;
  MPI_CHECK(MPI_Comm_split(w, dp_rank, tp_rank, &tp));
  MPI_CHECK(MPI_Comm_split(w, tp_rank, dp_rank, &dp));
}

ParallelGrid::~ParallelGrid() {
  if (tp != MPI_COMM_NULL) MPI_Comm_free(&tp);
  if (dp != MPI_COMM_NULL) MPI_Comm_free(&dp);
}

}  // namespace rwkv::trainer
