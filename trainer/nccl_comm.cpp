#include "trainer/nccl_comm.h"

#include "common/mpi_check.h"
#include "kernels/cuda/cuda_check.h"

namespace rwkv::trainer {

NcclComm::NcclComm(MPI_Comm group) {
  MPI_CHECK(MPI_Comm_rank(group, &rank));
  MPI_CHECK(MPI_Comm_size(group, &size));
  if (size == 1) return;
  ncclUniqueId id;
  if (rank == 0) NCCL_CHECK(ncclGetUniqueId(&id));
  MPI_CHECK(MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, group));
  NCCL_CHECK(ncclCommInitRank(&comm, size, id, rank));
}

NcclComm::~NcclComm() {
  if (comm) ncclCommDestroy(comm);
}

}  // namespace rwkv::trainer
