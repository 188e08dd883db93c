#include <algorithm>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/grad_norm.h"

namespace rwkv::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxBlocks = 1024;  // first-pass blocks: ~8 per SM of an H100, enough to stream

// Sums s[0, kThreads) of shared memory into s[0] by a fixed halving tree.
__device__ void block_tree_sum(double* s) {
  for (int half = kThreads / 2; half > 0; half /= 2) {
    __syncthreads();
    if (threadIdx.x < half) s[threadIdx.x] += s[threadIdx.x + half];
  }
  __syncthreads();
}

// partial[block] = the block's share of sum x^2 (grid-stride over x).
__global__ void sum_squares_partial(double* __restrict__ partial, const float* __restrict__ x,
                                    int64_t n) {
  __shared__ double s[kThreads];
  double acc = 0;
  const int64_t stride = int64_t(gridDim.x) * kThreads;
  for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < n; i += stride) {
    const double v = x[i];
    acc += v * v;
  }
  s[threadIdx.x] = acc;
  block_tree_sum(s);
  if (threadIdx.x == 0) partial[blockIdx.x] = s[0];
}

// *out = sum of partial[0, count), count <= kMaxBlocks, by one block.
__global__ void sum_partials(double* __restrict__ out, const double* __restrict__ partial,
                             int count) {
  __shared__ double s[kThreads];
  double acc = 0;
  for (int i = threadIdx.x; i < count; i += kThreads) acc += partial[i];
  s[threadIdx.x] = acc;
  block_tree_sum(s);
  if (threadIdx.x == 0) *out = s[0];
}

__global__ void scale_kernel(float* __restrict__ x, float s, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) x[i] *= s;
}

int blocks_for(int64_t n) {
  return static_cast<int>(std::clamp<int64_t>((n + kThreads - 1) / kThreads, 1, kMaxBlocks));
}

}  // namespace

size_t sum_squares_scratch_bytes() { return kMaxBlocks * sizeof(double); }

void sum_squares(double* out, const float* x, int64_t n, void* scratch, cudaStream_t stream) {
  auto* partial = static_cast<double*>(scratch);
  const int blocks = blocks_for(n);
  sum_squares_partial<<<blocks, kThreads, 0, stream>>>(partial, x, n);
  CUDA_CHECK_LAUNCH();
  sum_partials<<<1, kThreads, 0, stream>>>(out, partial, blocks);
  CUDA_CHECK_LAUNCH();
}

void scale(float* x, float s, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  const auto blocks = static_cast<int>(std::clamp<int64_t>((n + kThreads - 1) / kThreads, 1, 8192));
  scale_kernel<<<blocks, kThreads, 0, stream>>>(x, s, n);
  CUDA_CHECK_LAUNCH();
}

}  // namespace rwkv::cuda
