#include "kernels/cuda/convert.h"

#include <algorithm>
#include <sstream>

#include "common/error.h"
#include "kernels/cuda/cuda_check.h"

namespace rwkv::cuda {

namespace {

constexpr int kThreads = 256;
// A grid-stride loop past this many blocks: enough to fill any current GPU.
constexpr int64_t kMaxBlocks = 65535;

// One thread per element of dst, row-major; reads src row by row (coalesced).
__global__ void to_bf16_kernel(__nv_bfloat16* dst, const float* src, int64_t rows, int64_t cols,
                               int64_t ld) {
  const int64_t n = rows * cols;
  for (int64_t e = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; e < n;
       e += int64_t{gridDim.x} * blockDim.x) {
    const int64_t i = e / cols, j = e - i * cols;
    dst[e] = __float2bfloat16(src[i * ld + j]);
  }
}

}  // namespace

void to_bf16(__nv_bfloat16* dst, const float* src, int64_t rows, int64_t cols, int64_t ld,
             cudaStream_t stream) {
  if (rows < 0 || cols < 0 || ld < cols) {
    std::ostringstream msg;
    msg << "to_bf16: bad shape rows=" << rows << " cols=" << cols << " ld=" << ld
        << " (need sizes >= 0 and ld >= cols)";
    throw Error(msg.str());
  }
  const int64_t n = rows * cols;
  if (n == 0) return;
  const int64_t blocks = std::min((n + kThreads - 1) / kThreads, kMaxBlocks);
  to_bf16_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(dst, src, rows, cols, ld);
  CUDA_CHECK_LAUNCH();
}

}  // namespace rwkv::cuda
