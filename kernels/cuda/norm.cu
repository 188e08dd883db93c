#include <climits>
#include <sstream>

#include "common/error.h"
#include "kernels/cuda/bf16.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/norm.h"

// The equations are those of kernels/cpu/norm.cpp (LayerNorm as nn.LayerNorm, RMSNorm,
// GroupNorm(H, C) as RWKV-LM's ln_x, F.normalize as RWKV-7's kk). Every op works on
// "segments" of N contiguous elements: a LayerNorm or RMSNorm row (N = C) or one head
// of a row (N = head size). A segment gets P threads (a power of two, 32..256, the
// smallest >= N) and a block holds kThreads / P segments, so that 64-wide heads do not
// leave 3/4 of a 256-thread block idle. Sums over a segment are a fixed-order
// shared-memory tree: the results are bitwise reproducible.
//
// Parameter gradients (dw, db [C]) are column sums over the n rows: one block per
// kCols columns, kRowLanes threads per column striding over the rows, then a
// fixed-order tree over the lanes. No atomics, no scratch. kCols = 8 floats is one
// 32-byte memory sector per row, so reads stay fully used while C = 768 still gets 96
// blocks of 16 warps (32 columns per block would leave most of an H100 idle).
//
// E, the element type of the per-token tensors (x, out, dout, dx, the gate g and dg):
// float or Bf16, widened as read and rounded once as written; the affine w, b, the
// statistics (mean, rstd, norm) and the parameter gradients are fp32.

namespace rwkv::cuda {
namespace {

constexpr int kThreads = 256;  // threads per block of the per-segment kernels
constexpr int kCols = 8;       // columns per block of the parameter-gradient kernel
constexpr int kRowLanes = 64;  // threads per column there

// Where this thread works: segment s (active when s < S) at lane `lane` of its P threads.
struct SegmentThread {
  int64_t s;
  int lane;
  bool active;
};

__device__ SegmentThread segment_thread(int64_t S, int P) {
  const int64_t s = int64_t(blockIdx.x) * (kThreads / P) + threadIdx.x / P;
  return {s, int(threadIdx.x) % P, s < S};
}

// Sum of v over the P threads of this thread's segment. Every thread of the block must
// call it (it has barriers); sh holds kThreads floats.
__device__ float segment_sum(float v, float* sh, int P) {
  const int tid = threadIdx.x, lane = tid % P;
  sh[tid] = v;
  __syncthreads();
  for (int s = P / 2; s > 0; s /= 2) {
    if (lane < s) sh[tid] += sh[tid + s];  // reads lanes >= s, which write nothing this round
    __syncthreads();
  }
  const float r = sh[tid - lane];
  __syncthreads();  // sh is overwritten by the next call
  return r;
}

// LayerNorm of each segment with the affine slice of its head: segment s is head s % H
// of row s / H; w, b [H * N]; mean, rstd [S]; g [S * N] the output gate or null.
template <typename E>
__global__ void affine_norm_forward_kernel(E* __restrict__ out, float* __restrict__ mean,
                                           float* __restrict__ rstd, const E* __restrict__ x,
                                           const float* __restrict__ w, const float* __restrict__ b,
                                           const E* __restrict__ g, int64_t S, int64_t H, int64_t N,
                                           int P, float eps) {
  __shared__ float sh[kThreads];
  const SegmentThread t = segment_thread(S, P);
  const E* xs = x + (t.active ? t.s * N : 0);
  float sum = 0.f;
  if (t.active)
    for (int64_t j = t.lane; j < N; j += P) sum += to_float(xs[j]);
  const float m = segment_sum(sum, sh, P) / float(N);
  float var = 0.f;
  if (t.active)
    for (int64_t j = t.lane; j < N; j += P) {
      const float xj = to_float(xs[j]);
      var += (xj - m) * (xj - m);
    }
  var = segment_sum(var, sh, P) / float(N);
  if (!t.active) return;  // past the last barrier
  const float rs = 1.f / sqrtf(var + eps);
  const int64_t wo = (t.s % H) * N;
  for (int64_t j = t.lane; j < N; j += P) {
    const float o = (to_float(xs[j]) - m) * rs * w[wo + j] + b[wo + j];
    out[t.s * N + j] = from_float<E>(g ? o * to_float(g[t.s * N + j]) : o);
  }
  if (t.lane == 0) {
    mean[t.s] = m;
    rstd[t.s] = rs;
  }
}

// The gradient of a segment's output: dout, times the gate where there is one.
template <typename E>
__device__ float gated(const E* __restrict__ dout, const E* __restrict__ g, int64_t i) {
  return g ? to_float(dout[i]) * to_float(g[i]) : to_float(dout[i]);
}

// dx += rstd * (e - mean(e) - xhat * mean(e * xhat)), e = d * w with d = gated(dout, g), per
// segment (dx null: not wanted); with the gate, dg += dout * (xhat * w + b) (dg null: not
// wanted).
template <typename E>
__global__ void affine_norm_backward_kernel(E* __restrict__ dx, E* __restrict__ dg,
                                            const E* __restrict__ dout, const E* __restrict__ x,
                                            const float* __restrict__ w,
                                            const float* __restrict__ b, const E* __restrict__ g,
                                            const float* __restrict__ mean,
                                            const float* __restrict__ rstd, int64_t S, int64_t H,
                                            int64_t N, int P) {
  __shared__ float sh[kThreads];
  const SegmentThread t = segment_thread(S, P);
  const int64_t o = t.active ? t.s * N : 0, wo = t.active ? (t.s % H) * N : 0;
  const float m = t.active ? mean[t.s] : 0.f, rs = t.active ? rstd[t.s] : 0.f;
  float se = 0.f, sex = 0.f;
  if (t.active && dx)
    for (int64_t j = t.lane; j < N; j += P) {
      const float e = gated(dout, g, o + j) * w[wo + j];
      se += e;
      sex += e * ((to_float(x[o + j]) - m) * rs);
    }
  const float mean_e = segment_sum(se, sh, P) / float(N);
  const float mean_ex = segment_sum(sex, sh, P) / float(N);
  if (!t.active) return;
  for (int64_t j = t.lane; j < N; j += P) {
    const float xhat = (to_float(x[o + j]) - m) * rs;
    if (dx) add_to(dx[o + j], rs * (gated(dout, g, o + j) * w[wo + j] - mean_e - xhat * mean_ex));
    if (dg) add_to(dg[o + j], to_float(dout[o + j]) * (xhat * w[wo + j] + b[wo + j]));
  }
}

// rows of C: out = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps).
template <typename E>
__global__ void rmsnorm_forward_kernel(E* __restrict__ out, float* __restrict__ rstd,
                                       const E* __restrict__ x, const float* __restrict__ w,
                                       int64_t n, int64_t C, int P, float eps) {
  __shared__ float sh[kThreads];
  const SegmentThread t = segment_thread(n, P);
  const E* xs = x + (t.active ? t.s * C : 0);
  float ss = 0.f;
  if (t.active)
    for (int64_t j = t.lane; j < C; j += P) ss += to_float(xs[j]) * to_float(xs[j]);
  ss = segment_sum(ss, sh, P);
  if (!t.active) return;
  const float rs = 1.f / sqrtf(ss / float(C) + eps);
  for (int64_t j = t.lane; j < C; j += P)
    out[t.s * C + j] = from_float<E>(to_float(xs[j]) * rs * w[j]);
  if (t.lane == 0) rstd[t.s] = rs;
}

// dx += rstd * (g - xhat * mean(g * xhat)), g = dout * w, xhat = x * rstd.
template <typename E>
__global__ void rmsnorm_backward_kernel(E* __restrict__ dx, const E* __restrict__ dout,
                                        const E* __restrict__ x, const float* __restrict__ w,
                                        const float* __restrict__ rstd, int64_t n, int64_t C,
                                        int P) {
  __shared__ float sh[kThreads];
  const SegmentThread t = segment_thread(n, P);
  const int64_t o = t.active ? t.s * C : 0;
  const float rs = t.active ? rstd[t.s] : 0.f;
  float sgx = 0.f;
  if (t.active)
    for (int64_t j = t.lane; j < C; j += P)
      sgx += to_float(dout[o + j]) * w[j] * to_float(x[o + j]) * rs;
  const float mean_gx = segment_sum(sgx, sh, P) / float(C);
  if (!t.active) return;
  for (int64_t j = t.lane; j < C; j += P)
    add_to(dx[o + j], rs * (to_float(dout[o + j]) * w[j] - to_float(x[o + j]) * rs * mean_gx));
}

// out = x / max(|x|, eps) per segment; norm [S].
template <typename E>
__global__ void l2norm_forward_kernel(E* __restrict__ out, float* __restrict__ norm,
                                      const E* __restrict__ x, int64_t S, int64_t N, int P,
                                      float eps) {
  __shared__ float sh[kThreads];
  const SegmentThread t = segment_thread(S, P);
  const E* xs = x + (t.active ? t.s * N : 0);
  float ss = 0.f;
  if (t.active)
    for (int64_t j = t.lane; j < N; j += P) ss += to_float(xs[j]) * to_float(xs[j]);
  ss = segment_sum(ss, sh, P);
  if (!t.active) return;
  const float nr = fmaxf(sqrtf(ss), eps);
  for (int64_t j = t.lane; j < N; j += P) out[t.s * N + j] = from_float<E>(to_float(xs[j]) / nr);
  if (t.lane == 0) norm[t.s] = nr;
}

// dx += (dout - out * <out, dout>) / norm where |x| > eps, dout / eps elsewhere (the
// clamped branch of F.normalize is linear in x).
template <typename E>
__global__ void l2norm_backward_kernel(E* __restrict__ dx, const E* __restrict__ dout,
                                       const E* __restrict__ out, const float* __restrict__ norm,
                                       const E* __restrict__ x, int64_t S, int64_t N, int P,
                                       float eps) {
  __shared__ float sh[kThreads];
  const SegmentThread t = segment_thread(S, P);
  const int64_t o = t.active ? t.s * N : 0;
  float ss = 0.f, dot = 0.f;
  if (t.active)
    for (int64_t j = t.lane; j < N; j += P) {
      ss += to_float(x[o + j]) * to_float(x[o + j]);
      dot += to_float(out[o + j]) * to_float(dout[o + j]);
    }
  ss = segment_sum(ss, sh, P);
  dot = segment_sum(dot, sh, P);
  if (!t.active) return;
  if (sqrtf(ss) > eps) {
    const float nr = norm[t.s];
    for (int64_t j = t.lane; j < N; j += P)
      add_to(dx[o + j], (to_float(dout[o + j]) - to_float(out[o + j]) * dot) / nr);
  } else {
    for (int64_t j = t.lane; j < N; j += P) add_to(dx[o + j], to_float(dout[o + j]) / eps);
  }
}

// dw[c] += sum_i d[i, c] * xhat[i, c], db[c] += sum_i d[i, c] over the n rows of
// [n, H * N], d = gated(dout, g); xhat = (x - mean) * rstd with the statistics [n, H] of
// row i's head c / N (mean null: 0, as RMSNorm). dw or db null: not wanted.
template <typename E>
__global__ void norm_param_grad_kernel(float* __restrict__ dw, float* __restrict__ db,
                                       const E* __restrict__ dout, const E* __restrict__ g,
                                       const E* __restrict__ x, const float* __restrict__ mean,
                                       const float* __restrict__ rstd, int64_t n, int64_t H,
                                       int64_t N) {
  __shared__ float sw[kRowLanes][kCols], sb[kRowLanes][kCols];
  const int col = threadIdx.x % kCols, lane = threadIdx.x / kCols;
  const int64_t C = H * N, c = int64_t(blockIdx.x) * kCols + col;
  float aw = 0.f, ab = 0.f;
  if (c < C) {
    const int64_t h = c / N;
    for (int64_t i = lane; i < n; i += kRowLanes) {
      const int64_t st = i * H + h;
      const float m = mean ? mean[st] : 0.f;
      const float d = gated(dout, g, i * C + c);
      aw += d * ((to_float(x[i * C + c]) - m) * rstd[st]);
      ab += d;
    }
  }
  sw[lane][col] = aw;
  sb[lane][col] = ab;
  __syncthreads();
  for (int s = kRowLanes / 2; s > 0; s /= 2) {
    if (lane < s) {
      sw[lane][col] += sw[lane + s][col];
      sb[lane][col] += sb[lane + s][col];
    }
    __syncthreads();
  }
  if (lane == 0 && c < C) {
    if (dw) dw[c] += sw[0][col];
    if (db) db[c] += sb[0][col];
  }
}

// S = n * H segments of N elements; throws unless the shape is valid and the grid fits.
void check_shape(const char* fn, int64_t n, int64_t H, int64_t N) {
  if (n < 0 || H < 1 || N < 1 || n > INT_MAX / H) {
    std::ostringstream msg;
    msg << fn << ": bad shape n=" << n << " H=" << H << " N=" << N
        << " (need n >= 0, H >= 1, N >= 1, n * H < 2^31)";
    throw Error(msg.str());
  }
}

// Threads per segment of N elements: the smallest power of two >= N in [32, kThreads].
int segment_threads(int64_t N) {
  int P = 32;
  while (P < N && P < kThreads) P *= 2;
  return P;
}

// Blocks for S segments of P threads each.
unsigned segment_blocks(int64_t S, int P) {
  const int64_t per_block = kThreads / P;
  return unsigned((S + per_block - 1) / per_block);
}

template <typename E>
void launch_param_grad(float* dw, float* db, const E* dout, const E* g, const E* x,
                       const float* mean, const float* rstd, int64_t n, int64_t H, int64_t N,
                       cudaStream_t stream) {
  if (!dw && !db) return;
  const unsigned blocks = unsigned((H * N + kCols - 1) / kCols);
  const int threads = kCols * kRowLanes;
  norm_param_grad_kernel<E>
      <<<blocks, threads, 0, stream>>>(dw, db, dout, g, x, mean, rstd, n, H, N);
  CUDA_CHECK_LAUNCH();
}

// LayerNorm (H = 1, N = C, no gate) and GroupNorm: the same segments with a per-head
// affine and an optional output gate g.
template <typename E>
void affine_norm_forward(const char* fn, E* out, float* mean, float* rstd, const E* x,
                         const float* w, const float* b, const E* g, int64_t n, int64_t H,
                         int64_t N, float eps, cudaStream_t stream) {
  check_shape(fn, n, H, N);
  if (n == 0) return;
  const int P = segment_threads(N);
  const unsigned blocks = segment_blocks(n * H, P);
  affine_norm_forward_kernel<E>
      <<<blocks, kThreads, 0, stream>>>(out, mean, rstd, x, w, b, g, n * H, H, N, P, eps);
  CUDA_CHECK_LAUNCH();
}

// dg is ignored without a gate.
template <typename E>
void affine_norm_backward(const char* fn, E* dx, float* dw, float* db, E* dg, const E* dout,
                          const E* x, const float* w, const float* b, const E* g, const float* mean,
                          const float* rstd, int64_t n, int64_t H, int64_t N, cudaStream_t stream) {
  check_shape(fn, n, H, N);
  if (n == 0) return;
  if (!g) dg = nullptr;
  if (dx || dg) {
    const int P = segment_threads(N);
    const unsigned blocks = segment_blocks(n * H, P);
    affine_norm_backward_kernel<E>
        <<<blocks, kThreads, 0, stream>>>(dx, dg, dout, x, w, b, g, mean, rstd, n * H, H, N, P);
    CUDA_CHECK_LAUNCH();
  }
  launch_param_grad<E>(dw, db, dout, g, x, mean, rstd, n, H, N, stream);
}

}  // namespace

template <typename E>
void layernorm_forward(E* out, float* mean, float* rstd, const E* x, const float* w, const float* b,
                       int64_t n, int64_t C, float eps, cudaStream_t stream) {
  affine_norm_forward<E>("rwkv::cuda::layernorm_forward", out, mean, rstd, x, w, b, nullptr, n, 1,
                         C, eps, stream);
}

template <typename E>
void layernorm_backward(E* dx, float* dw, float* db, const E* dout, const E* x, const float* w,
                        const float* mean, const float* rstd, int64_t n, int64_t C,
                        cudaStream_t stream) {
  affine_norm_backward<E>("rwkv::cuda::layernorm_backward", dx, dw, db, nullptr, dout, x, w,
                          nullptr, nullptr, mean, rstd, n, 1, C, stream);
}

template <typename E>
void rmsnorm_forward(E* out, float* rstd, const E* x, const float* w, int64_t n, int64_t C,
                     float eps, cudaStream_t stream) {
  check_shape("rwkv::cuda::rmsnorm_forward", n, 1, C);
  if (n == 0) return;
  const int P = segment_threads(C);
  const unsigned blocks = segment_blocks(n, P);
  rmsnorm_forward_kernel<E><<<blocks, kThreads, 0, stream>>>(out, rstd, x, w, n, C, P, eps);
  CUDA_CHECK_LAUNCH();
}

template <typename E>
void rmsnorm_backward(E* dx, float* dw, const E* dout, const E* x, const float* w,
                      const float* rstd, int64_t n, int64_t C, cudaStream_t stream) {
  check_shape("rwkv::cuda::rmsnorm_backward", n, 1, C);
  if (n == 0) return;
  if (dx) {
    const int P = segment_threads(C);
    const unsigned blocks = segment_blocks(n, P);
    rmsnorm_backward_kernel<E><<<blocks, kThreads, 0, stream>>>(dx, dout, x, w, rstd, n, C, P);
    CUDA_CHECK_LAUNCH();
  }
  launch_param_grad<E>(dw, nullptr, dout, nullptr, x, nullptr, rstd, n, 1, C, stream);
}

template <typename E>
void groupnorm_forward(E* out, float* mean, float* rstd, const E* x, const float* w, const float* b,
                       const E* g, int64_t n, int64_t H, int64_t N, float eps,
                       cudaStream_t stream) {
  affine_norm_forward<E>("rwkv::cuda::groupnorm_forward", out, mean, rstd, x, w, b, g, n, H, N, eps,
                         stream);
}

template <typename E>
void groupnorm_backward(E* dx, float* dw, float* db, E* dg, const E* dout, const E* x,
                        const float* w, const float* b, const E* g, const float* mean,
                        const float* rstd, int64_t n, int64_t H, int64_t N, cudaStream_t stream) {
  affine_norm_backward<E>("rwkv::cuda::groupnorm_backward", dx, dw, db, dg, dout, x, w, b, g, mean,
                          rstd, n, H, N, stream);
}

template <typename E>
void l2norm_heads_forward(E* out, float* norm, const E* x, int64_t n, int64_t H, int64_t N,
                          float eps, cudaStream_t stream) {
  check_shape("rwkv::cuda::l2norm_heads_forward", n, H, N);
  if (n == 0) return;
  const int P = segment_threads(N);
  const unsigned blocks = segment_blocks(n * H, P);
  l2norm_forward_kernel<E><<<blocks, kThreads, 0, stream>>>(out, norm, x, n * H, N, P, eps);
  CUDA_CHECK_LAUNCH();
}

template <typename E>
void l2norm_heads_backward(E* dx, const E* dout, const E* out, const float* norm, const E* x,
                           int64_t n, int64_t H, int64_t N, float eps, cudaStream_t stream) {
  check_shape("rwkv::cuda::l2norm_heads_backward", n, H, N);
  if (n == 0 || !dx) return;
  const int P = segment_threads(N);
  const unsigned blocks = segment_blocks(n * H, P);
  l2norm_backward_kernel<E>
      <<<blocks, kThreads, 0, stream>>>(dx, dout, out, norm, x, n * H, N, P, eps);
  CUDA_CHECK_LAUNCH();
}

#define RWKV_INSTANTIATE(E)                                                                        \
  template void layernorm_forward<E>(E*, float*, float*, const E*, const float*, const float*,     \
                                     int64_t, int64_t, float, cudaStream_t);                       \
  template void layernorm_backward<E>(E*, float*, float*, const E*, const E*, const float*,        \
                                      const float*, const float*, int64_t, int64_t, cudaStream_t); \
  template void rmsnorm_forward<E>(E*, float*, const E*, const float*, int64_t, int64_t, float,    \
                                   cudaStream_t);                                                  \
  template void rmsnorm_backward<E>(E*, float*, const E*, const E*, const float*, const float*,    \
                                    int64_t, int64_t, cudaStream_t);                               \
  template void groupnorm_forward<E>(E*, float*, float*, const E*, const float*, const float*,     \
                                     const E*, int64_t, int64_t, int64_t, float, cudaStream_t);    \
  template void groupnorm_backward<E>(E*, float*, float*, E*, const E*, const E*, const float*,    \
                                      const float*, const E*, const float*, const float*, int64_t, \
                                      int64_t, int64_t, cudaStream_t);                             \
  template void l2norm_heads_forward<E>(E*, float*, const E*, int64_t, int64_t, int64_t, float,    \
                                        cudaStream_t);                                             \
  template void l2norm_heads_backward<E>(E*, const E*, const E*, const float*, const E*, int64_t,  \
                                         int64_t, int64_t, float, cudaStream_t);
RWKV_INSTANTIATE(float)
RWKV_INSTANTIATE(Bf16)
#undef RWKV_INSTANTIATE

}  // namespace rwkv::cuda
