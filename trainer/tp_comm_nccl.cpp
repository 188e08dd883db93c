#include "trainer/tp_comm_nccl.h"

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/maxloc.h"

namespace rwkv::trainer {

template <typename A>
TpCommNccl<A>::TpCommNccl(MPI_Comm group, kernels::CudaBackend<A>& be_) : nccl(group), be(be_) {}

template <typename A>
TpCommNccl<A>::~TpCommNccl() {
  be.free(local_);
}

template <typename A>
void TpCommNccl<A>::all_reduce_sum(float* buf, int64_t n) {
  if (!nccl.comm || n == 0) return;
  NCCL_CHECK(
      ncclAllReduce(buf, buf, static_cast<size_t>(n), ncclFloat, ncclSum, nccl.comm, be.stream));
}

template <typename A>
void TpCommNccl<A>::all_reduce_maxloc(float* val, int32_t* idx, int64_t n) {
  if (!nccl.comm || n == 0) return;
  if (n > local_n_) {  // grown once, at the first step's shape
    be.free(local_);
    local_ = nullptr;
    local_n_ = 0;
    local_ = be.alloc(n);
    local_n_ = n;
  }
  be.copy(local_, val, n);
  NCCL_CHECK(
      ncclAllReduce(val, val, static_cast<size_t>(n), ncclFloat, ncclMax, nccl.comm, be.stream));
  cuda::maxloc_keep_index(idx, local_, val, n, be.stream);
  NCCL_CHECK(
      ncclAllReduce(idx, idx, static_cast<size_t>(n), ncclInt32, ncclMin, nccl.comm, be.stream));
}

void TpBf16Nccl::all_reduce_sum(kernels::Bf16* buf, int64_t n) {
  if (!group_.nccl.comm || n == 0) return;
  NCCL_CHECK(ncclAllReduce(buf, buf, static_cast<size_t>(n), ncclBfloat16, ncclSum,
                           group_.nccl.comm, group_.be.stream));
}

template struct TpCommNccl<float>;
template struct TpCommNccl<kernels::Bf16>;

}  // namespace rwkv::trainer
