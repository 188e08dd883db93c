#include <climits>
#include <cmath>
#include <sstream>

#include "common/error.h"
#include "kernels/cuda/bf16.h"
#include "kernels/cuda/cross_entropy.h"
#include "kernels/cuda/cuda_check.h"

// The equations are those of kernels/cpu/cross_entropy.cpp. Each row of logits (Vl up to
// the whole vocabulary, 65536) gets one block: its threads stride over the columns (a
// warp reads consecutive floats), then combine their partial results in a fixed-order
// shared-memory tree. E, the element type of the logits and their gradient: float or
// Bf16 (widened as read, the gradient rounded once); the row statistics are fp32.

namespace rwkv::cuda {
namespace {

constexpr int kThreads = 256;  // threads per row

void check_shape(const char* fn, int64_t n, int64_t Vl, int64_t v0) {
  if (n < 0 || n > INT_MAX || Vl < 1 || v0 < 0 || v0 + Vl > INT_MAX) {
    std::ostringstream msg;
    msg << fn << ": bad shape n=" << n << " Vl=" << Vl << " v0=" << v0
        << " (need 0 <= n < 2^31, Vl >= 1, v0 >= 0, v0 + Vl < 2^31)";
    throw Error(msg.str());
  }
}

// Row blockIdx.x: its largest logit and first column holding it.
template <typename E>
__global__ void ce_local_max_kernel(float* __restrict__ max, int32_t* __restrict__ argmax,
                                    const E* __restrict__ logits, int64_t Vl, int64_t v0) {
  __shared__ float sv[kThreads];
  __shared__ int64_t si[kThreads];
  const int tid = threadIdx.x;
  const int64_t i = blockIdx.x;
  const E* row = logits + i * Vl;
  float best = -INFINITY;
  int64_t arg = Vl;  // no column yet: loses every tie
  for (int64_t j = tid; j < Vl; j += kThreads) {
    const float v = to_float(row[j]);
    if (arg == Vl || v > best) {  // strict: the first of equal values stays
      best = v;
      arg = j;
    }
  }
  sv[tid] = best;
  si[tid] = arg;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s /= 2) {
    if (tid < s) {
      const float v = sv[tid + s];
      const int64_t a = si[tid + s];
      if (v > sv[tid] || (v == sv[tid] && a < si[tid])) {
        sv[tid] = v;
        si[tid] = a;
      }
    }
    __syncthreads();
  }
  if (tid == 0) {
    max[i] = sv[0];
    argmax[i] = int32_t(v0 + si[0]);
  }
}

template <typename E>
__global__ void ce_local_sums_kernel(float* __restrict__ sumexp, float* __restrict__ target_logit,
                                     const E* __restrict__ logits,
                                     const int32_t* __restrict__ targets,
                                     const float* __restrict__ max, int64_t Vl, int64_t v0) {
  __shared__ float sh[kThreads];
  const int tid = threadIdx.x;
  const int64_t i = blockIdx.x;
  const E* row = logits + i * Vl;
  const float mx = max[i];
  float sum = 0.f;
  for (int64_t j = tid; j < Vl; j += kThreads) sum += expf(to_float(row[j]) - mx);
  sh[tid] = sum;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s /= 2) {
    if (tid < s) sh[tid] += sh[tid + s];
    __syncthreads();
  }
  if (tid == 0) {
    sumexp[i] = sh[0];
    const int64_t t = targets[i] - v0;
    target_logit[i] = t >= 0 && t < Vl ? to_float(row[t]) : 0.f;
  }
}

__global__ void ce_loss_kernel(float* __restrict__ losses, const float* __restrict__ max,
                               const float* __restrict__ sumexp,
                               const float* __restrict__ target_logit, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) losses[i] = max[i] + logf(sumexp[i]) - target_logit[i];
}

// Row blockIdx.x of dlogits; the target and L2Wrap terms are added where the CPU adds
// them, in the same order.
// dlogits may be logits (each element is read, then written, by one thread): neither
// is __restrict__.
template <typename E>
__global__ void ce_backward_kernel(E* dlogits, const E* logits, const int32_t* __restrict__ targets,
                                   const float* __restrict__ max, const float* __restrict__ sumexp,
                                   const int32_t* __restrict__ argmax, int64_t Vl, int64_t v0,
                                   float scale, float l2wrap_factor) {
  const int64_t i = blockIdx.x;
  const E* row = logits + i * Vl;
  E* drow = dlogits + i * Vl;
  const float mx = max[i], c = scale / sumexp[i];
  const int64_t t = targets[i] - v0, a = argmax[i] - v0;
  for (int64_t j = threadIdx.x; j < Vl; j += kThreads) {
    float d = c * expf(to_float(row[j]) - mx);
    if (j == t) d -= scale;
    if (j == a) d += l2wrap_factor * mx;
    drow[j] = from_float<E>(d);
  }
}

}  // namespace

template <typename E>
void ce_local_max(float* max, int32_t* argmax, const E* logits, int64_t n, int64_t Vl, int64_t v0,
                  cudaStream_t stream) {
  check_shape("rwkv::cuda::ce_local_max", n, Vl, v0);
  if (n == 0) return;
  const unsigned blocks = unsigned(n);
  ce_local_max_kernel<E><<<blocks, kThreads, 0, stream>>>(max, argmax, logits, Vl, v0);
  CUDA_CHECK_LAUNCH();
}

template <typename E>
void ce_local_sums(float* sumexp, float* target_logit, const E* logits, const int32_t* targets,
                   const float* max, int64_t n, int64_t Vl, int64_t v0, cudaStream_t stream) {
  check_shape("rwkv::cuda::ce_local_sums", n, Vl, v0);
  if (n == 0) return;
  const unsigned blocks = unsigned(n);
  ce_local_sums_kernel<E>
      <<<blocks, kThreads, 0, stream>>>(sumexp, target_logit, logits, targets, max, Vl, v0);
  CUDA_CHECK_LAUNCH();
}

void ce_loss(float* losses, const float* max, const float* sumexp, const float* target_logit,
             int64_t n, cudaStream_t stream) {
  check_shape("rwkv::cuda::ce_loss", n, 1, 0);
  if (n == 0) return;
  const unsigned blocks = unsigned((n + kThreads - 1) / kThreads);
  ce_loss_kernel<<<blocks, kThreads, 0, stream>>>(losses, max, sumexp, target_logit, n);
  CUDA_CHECK_LAUNCH();
}

template <typename E>
void ce_backward(E* dlogits, const E* logits, const int32_t* targets, const float* max,
                 const float* sumexp, const int32_t* argmax, int64_t n, int64_t Vl, int64_t v0,
                 float scale, float l2wrap_factor, cudaStream_t stream) {
  check_shape("rwkv::cuda::ce_backward", n, Vl, v0);
  if (n == 0) return;
  const unsigned blocks = unsigned(n);
  ce_backward_kernel<E><<<blocks, kThreads, 0, stream>>>(dlogits, logits, targets, max, sumexp,
                                                         argmax, Vl, v0, scale, l2wrap_factor);
  CUDA_CHECK_LAUNCH();
}

#define RWKV_INSTANTIATE(E)                                                                       \
  template void ce_local_max<E>(float*, int32_t*, const E*, int64_t, int64_t, int64_t,            \
                                cudaStream_t);                                                    \
  template void ce_local_sums<E>(float*, float*, const E*, const int32_t*, const float*, int64_t, \
                                 int64_t, int64_t, cudaStream_t);                                 \
  template void ce_backward<E>(E*, const E*, const int32_t*, const float*, const float*,          \
                               const int32_t*, int64_t, int64_t, int64_t, float, float,           \
                               cudaStream_t);
RWKV_INSTANTIATE(float)
RWKV_INSTANTIATE(Bf16)
#undef RWKV_INSTANTIATE

}  // namespace rwkv::cuda
