#include "trainer/cpu_threads.h"

#include <algorithm>
#include <cmath>

#include "common/mpi_check.h"
#include "kernels/cpu/parallel.h"

namespace rwkv::trainer {

int shared_cpu_threads(const std::vector<cpu_set_t>& masks, int me) {
  const cpu_set_t& mine = masks.at(static_cast<size_t>(me));
  double share = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &mine)) continue;
    int ranks = 0;
    for (const cpu_set_t& m : masks) ranks += CPU_ISSET(cpu, &m) ? 1 : 0;
    share += 1.0 / ranks;
  }
  return std::max(1, static_cast<int>(std::floor(share + 1e-9)));
}

int default_cpu_threads(MPI_Comm world) {
  const cpu_set_t mine = kernels::process_cpus();
  int rank = 0;
  MPI_CHECK(MPI_Comm_rank(world, &rank));
  MPI_Comm node;
  MPI_CHECK(MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node));
  int n = 0, me = 0;
  MPI_CHECK(MPI_Comm_size(node, &n));
  MPI_CHECK(MPI_Comm_rank(node, &me));
  std::vector<cpu_set_t> masks(static_cast<size_t>(n));
  const int bytes = static_cast<int>(sizeof(cpu_set_t));
  const int rc = MPI_Allgather(&mine, bytes, MPI_BYTE, masks.data(), bytes, MPI_BYTE, node);
  MPI_Comm_free(&node);
  MPI_CHECK(rc);
  return shared_cpu_threads(masks, me);
}

}  // namespace rwkv::trainer
