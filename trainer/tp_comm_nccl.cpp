#include "trainer/tp_comm_nccl.h"

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/maxloc.h"

namespace rwkv::trainer {

TpCommNccl::TpCommNccl(MPI_Comm group, kernels::CudaBackend<float>& be) : nccl_(group), be_(be) {}

TpCommNccl::~TpCommNccl() { be_.free(local_); }

void TpCommNccl::all_reduce_sum(float* buf, int64_t n) {
  if (!nccl_.comm || n == 0) return;
  NCCL_CHECK(
      ncclAllReduce(buf, buf, static_cast<size_t>(n), ncclFloat, ncclSum, nccl_.comm, be_.stream));
}

void TpCommNccl::all_reduce_maxloc(float* val, int32_t* idx, int64_t n) {
  if (!nccl_.comm || n == 0) return;
  if (n > local_n_) {  // grown once, at the first step's shape
    be_.free(local_);
    local_ = nullptr;
    local_n_ = 0;
    local_ = be_.alloc(n);
    local_n_ = n;
  }
  be_.copy(local_, val, n);
  NCCL_CHECK(
      ncclAllReduce(val, val, static_cast<size_t>(n), ncclFloat, ncclMax, nccl_.comm, be_.stream));
  cuda::maxloc_keep_index(idx, local_, val, n, be_.stream);
  NCCL_CHECK(
      ncclAllReduce(idx, idx, static_cast<size_t>(n), ncclInt32, ncclMin, nccl_.comm, be_.stream));
}

}  // namespace rwkv::trainer
