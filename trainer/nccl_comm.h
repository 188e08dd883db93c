#pragma once
// An NCCL communicator over the ranks of an MPI communicator: rank 0 creates the
// unique id, MPI_Bcast hands it to the others, and every rank joins with its MPI rank
// (the bootstrap NCCL's documentation gives for MPI programs). Collective over the
// group; each rank's GPU must be selected (cudaSetDevice) before. A group of one rank
// makes no NCCL communicator: every collective over it is a no-op.
#include <mpi.h>
#include <nccl.h>

namespace rwkv::trainer {

struct NcclComm {
  explicit NcclComm(MPI_Comm group);
  ~NcclComm();
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

  ncclComm_t comm = nullptr;  // null for one rank
  int rank = 0, size = 1;
};

}  // namespace rwkv::trainer
