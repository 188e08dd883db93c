#include <algorithm>
#include <climits>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/maxloc.h"

namespace rwkv::cuda {
namespace {

__global__ void maxloc_keep_index_kernel(int32_t* __restrict__ idx, const float* __restrict__ local,
                                         const float* __restrict__ max, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    if (local[i] != max[i]) idx[i] = INT32_MAX;
}

}  // namespace

void maxloc_keep_index(int32_t* idx, const float* local, const float* max, int64_t n,
                       cudaStream_t stream) {
  if (n <= 0) return;
  constexpr int kThreads = 256;
  const auto blocks = static_cast<int>(std::clamp<int64_t>((n + kThreads - 1) / kThreads, 1, 4096));
  maxloc_keep_index_kernel<<<blocks, kThreads, 0, stream>>>(idx, local, max, n);
  CUDA_CHECK_LAUNCH();
}

}  // namespace rwkv::cuda
