#pragma once
// The tp x dp grid of ranks (docs/parallelism.md). World rank w is TP rank w % tp of
// DP replica w / tp: tensor-parallel ranks vary fastest, so a TP group is a run of
// consecutive ranks and sits on one node when ranks are placed by node (mpirun's and
// srun's default block placement). One communicator per TP group (the model's
// collectives) and one per DP group (the ranks holding the same slabs: gradient
// averaging, the loader's slices).
#include <mpi.h>

namespace rwkv::trainer {

struct ParallelGrid {
  MPI_Comm world = MPI_COMM_NULL;
  MPI_Comm tp = MPI_COMM_NULL;  // this rank's TP group, ranked by TP rank
  MPI_Comm dp = MPI_COMM_NULL;  // the ranks with the same TP rank, ranked by replica
  int tp_rank = 0, tp_size = 1;
  int dp_rank = 0, dp_size = 1;

  // Collective over `world`. Throws ConfigError on every rank when the world size is
  // not a multiple of tp.
  ParallelGrid(MPI_Comm world, int tp_ranks);
  ~ParallelGrid();
  ParallelGrid(const ParallelGrid&) = delete;
  ParallelGrid& operator=(const ParallelGrid&) = delete;
};

}  // namespace rwkv::trainer
