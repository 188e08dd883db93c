#pragma once
// train.threads: 0 on the CPU device: how many threads a rank takes. Every rank of a node
// may see all of its CPUs (mpirun binds 2 ranks to a core each, but 3 or more to a whole
// socket, and none at all when oversubscribed; srun without --cpu-bind likewise), and one
// thread per visible CPU in each rank would then put ranks x CPUs threads on the CPUs.
// So each CPU a rank may run on counts as 1 / (the node's ranks that may run on it).
#include <mpi.h>
#include <sched.h>

#include <vector>

namespace rwkv::trainer {

// Threads for rank `me` of a node whose ranks may run on the CPUs of `masks` (one mask
// per rank of the node): the sum over the CPUs of masks[me] of 1 / (the ranks whose mask
// has that CPU), rounded down, at least 1.
int shared_cpu_threads(const std::vector<cpu_set_t>& masks, int me);

// shared_cpu_threads for this rank, with the affinity masks (kernels::process_cpus) of the
// ranks of `world` on its node (MPI_Comm_split_type). Collective over world.
int default_cpu_threads(MPI_Comm world);

}  // namespace rwkv::trainer
