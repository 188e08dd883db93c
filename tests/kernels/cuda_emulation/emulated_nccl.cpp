// NCCL's calls of the trainer (trainer/nccl_comm.cpp, tp_comm_nccl.cpp, train_device_cuda.cpp)
// on the emulated GPUs of emulated_cuda.h, over MPI: each rank is one process with its own
// emulated GPU, whose "device" memory is host memory, so an all-reduce of device buffers is
// MPI_Allreduce on them. A communicator is an MPI communicator split from MPI_COMM_WORLD by
// its unique id, so every world rank must create its communicators at the same points (as
// the trainer's grid does: each rank its TP group's, then its DP group's). ncclBfloat16
// sums are the trainer's bf16 sum over MPI (TpBf16Mpi: each pair added in fp32 and rounded
// once, as a ring's every step rounds).
#include <mpi.h>

#include <cstring>
#include <memory>

#include "tests/kernels/cuda_emulation/emulated_cuda.h"
#include "trainer/tp_comm_mpi.h"

namespace rwkv::emu {

namespace {

struct Comm {
  MPI_Comm mpi;
  std::unique_ptr<trainer::TpBf16Mpi> bf16;
};

// The id's first bytes: the creating world rank and its count of ids so far.
struct IdTag {
  int rank, serial;
};

}  // namespace

ncclResult_t nccl_get_unique_id(ncclUniqueId* id) {
  static int serial = 0;
  IdTag tag{0, serial++};
  MPI_Comm_rank(MPI_COMM_WORLD, &tag.rank);
  std::memset(id, 0, sizeof *id);
  std::memcpy(id->internal, &tag, sizeof tag);
  return ncclSuccess;
}

ncclResult_t nccl_comm_init_rank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
  IdTag tag;
  std::memcpy(&tag, id.internal, sizeof tag);
  MPI_Comm c = MPI_COMM_NULL;
  if (MPI_Comm_split(MPI_COMM_WORLD, tag.rank * 4096 + tag.serial % 4096, rank, &c) != MPI_SUCCESS)
    return ncclSystemError;
  int size = 0, me = 0;
  MPI_Comm_size(c, &size);
  MPI_Comm_rank(c, &me);
  if (size != nranks || me != rank) return ncclInvalidUsage;
  *comm = reinterpret_cast<ncclComm_t>(new Comm{c, std::make_unique<trainer::TpBf16Mpi>(c)});
  return ncclSuccess;
}

ncclResult_t nccl_comm_destroy(ncclComm_t comm) {
  auto* c = reinterpret_cast<Comm*>(comm);
  c->bf16.reset();
  MPI_Comm_free(&c->mpi);
  delete c;
  return ncclSuccess;
}

ncclResult_t nccl_all_reduce(const void* send, void* recv, size_t count, ncclDataType_t type,
                             ncclRedOp_t op, ncclComm_t comm, cudaStream_t) {
  Comm& c = *reinterpret_cast<Comm*>(comm);
  if (count > size_t(INT32_MAX)) return ncclInvalidArgument;
  if (type == ncclBfloat16) {
    if (op != ncclSum) return ncclInvalidArgument;
    if (send != recv) std::memcpy(recv, send, count * sizeof(cuda::Bf16));
    c.bf16->all_reduce_sum(static_cast<cuda::Bf16*>(recv), int64_t(count));
    return ncclSuccess;
  }
  MPI_Datatype t;
  MPI_Op o;
  switch (type) {
    case ncclFloat32:
      t = MPI_FLOAT;
      break;
    case ncclInt32:
      t = MPI_INT32_T;
      break;
    default:
      return ncclInvalidArgument;
  }
  switch (op) {
    case ncclSum:
      o = MPI_SUM;
      break;
    case ncclMax:
      o = MPI_MAX;
      break;
    case ncclMin:
      o = MPI_MIN;
      break;
    default:
      return ncclInvalidArgument;
  }
  const int rc = MPI_Allreduce(send == recv ? MPI_IN_PLACE : send, recv, int(count), t, o, c.mpi);
  return rc == MPI_SUCCESS ? ncclSuccess : ncclSystemError;
}

}  // namespace rwkv::emu
