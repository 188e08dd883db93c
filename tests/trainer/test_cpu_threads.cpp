// train.threads: 0 (trainer/cpu_threads.h): a rank's share of the CPUs it may run on,
// from synthetic masks, and from the real masks of the ranks of this test (mpi, 3 ranks).
#include <gtest/gtest.h>
#include <mpi.h>
#include <sched.h>

#include <algorithm>
#include <initializer_list>
#include <vector>

#include "trainer/cpu_threads.h"

namespace rwkv::trainer {
namespace {

cpu_set_t cpus(std::initializer_list<int> list) {
  cpu_set_t s;
  CPU_ZERO(&s);
  for (int c : list) CPU_SET(c, &s);
  return s;
}

TEST(CpuThreads, SharedCpusAreDivided) {
  // One rank: all its CPUs.
  EXPECT_EQ(shared_cpu_threads({cpus({0, 1, 2, 3, 4, 5, 6, 7})}, 0), 8);
  // Ranks bound to a core each (mpirun, 2 ranks): one thread each.
  EXPECT_EQ(shared_cpu_threads({cpus({0}), cpus({1})}, 1), 1);
  // 4 ranks that all see 8 CPUs (mpirun binds more than 2 to the socket): 2 each.
  const cpu_set_t all8 = cpus({0, 1, 2, 3, 4, 5, 6, 7});
  for (int me = 0; me < 4; ++me) EXPECT_EQ(shared_cpu_threads({all8, all8, all8, all8}, me), 2);
  // 3 ranks on 8 CPUs: 8/3 rounded down; 3 ranks on 2 CPUs: at least one each.
  EXPECT_EQ(shared_cpu_threads({all8, all8, all8}, 2), 2);
  const cpu_set_t two = cpus({0, 1});
  EXPECT_EQ(shared_cpu_threads({two, two, two}, 0), 1);
  // Overlapping masks: rank 0 has CPU 0 alone and shares 1-2 with rank 1 (1 + 1/2 + 1/2).
  EXPECT_EQ(shared_cpu_threads({cpus({0, 1, 2}), cpus({1, 2, 3})}, 0), 2);
  // Disjoint sockets: each rank its own.
  EXPECT_EQ(shared_cpu_threads({cpus({0, 1, 2, 3}), cpus({4, 5, 6, 7})}, 1), 4);
}

// The ranks of this test (all on this machine) never take more threads, together, than
// there are CPUs any of them may run on (or one each, when there are more ranks).
TEST(CpuThreads, RanksOfThisNodeShareTheirCpus) {
  const int threads = default_cpu_threads(MPI_COMM_WORLD);
  EXPECT_GE(threads, 1);
  cpu_set_t mine, all;
  ASSERT_EQ(sched_getaffinity(0, sizeof(mine), &mine), 0);
  MPI_Allreduce(&mine, &all, static_cast<int>(sizeof(cpu_set_t)), MPI_BYTE, MPI_BOR,
                MPI_COMM_WORLD);
  int ranks = 0, sum = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  MPI_Allreduce(&threads, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  EXPECT_LE(sum, std::max(CPU_COUNT(&all), ranks));
  if (ranks == 1) {
    EXPECT_EQ(threads, CPU_COUNT(&mine));
  }
}

}  // namespace
}  // namespace rwkv::trainer
