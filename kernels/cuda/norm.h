#pragma once
// Normalisations over the last dimension on the GPU: LayerNorm, RMSNorm,
// GroupNorm over heads and per-head L2 normalisation, forward and backward. The math,
// layouts and the saved statistics are those of the CPU kernels kernels/cpu/norm.h,
// which define these ops; each launcher has the CPU function's name and arguments plus
// the stream.
//
// All pointers are device pointers. Forwards overwrite their outputs; backwards add
// (+=) into every gradient they are given and skip null ones. The parameter gradients
// (dw, db) are sums over the rows in a fixed order (no atomics): bitwise reproducible.
// Launches go to `stream`; nothing is allocated or synchronised. Bad shapes throw
// rwkv::Error naming the function. E, the element type of the per-token tensors (x, out,
// their gradients, the gate): float or Bf16, both instantiated (widened as read, rounded
// once as written); w, b, the statistics and dw, db are fp32.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace rwkv::cuda {

// x, out [n, C]; w, b [C]; mean, rstd [n].
template <typename E>
void layernorm_forward(E* out, float* mean, float* rstd, const E* x, const float* w, const float* b,
                       int64_t n, int64_t C, float eps, cudaStream_t stream);
template <typename E>
void layernorm_backward(E* dx, float* dw, float* db, const E* dout, const E* x, const float* w,
                        const float* mean, const float* rstd, int64_t n, int64_t C,
                        cudaStream_t stream);

// x, out [n, C]; w [C]; rstd [n].
template <typename E>
void rmsnorm_forward(E* out, float* rstd, const E* x, const float* w, int64_t n, int64_t C,
                     float eps, cudaStream_t stream);
template <typename E>
void rmsnorm_backward(E* dx, float* dw, const E* dout, const E* x, const float* w,
                      const float* rstd, int64_t n, int64_t C, cudaStream_t stream);

// x, out [n, H*N]; w, b [H*N]; mean, rstd [n, H]; g [n, H*N] the output gate or null:
// out = (xhat w + b) g. The backward recomputes o = xhat w + b for dg += dout o (dg null:
// not wanted) and takes dout g as the norm's gradient.
template <typename E>
void groupnorm_forward(E* out, float* mean, float* rstd, const E* x, const float* w, const float* b,
                       const E* g, int64_t n, int64_t H, int64_t N, float eps, cudaStream_t stream);
template <typename E>
void groupnorm_backward(E* dx, float* dw, float* db, E* dg, const E* dout, const E* x,
                        const float* w, const float* b, const E* g, const float* mean,
                        const float* rstd, int64_t n, int64_t H, int64_t N, cudaStream_t stream);

// x, out [n, H*N]; norm [n, H] = max(|x_head|, eps).
template <typename E>
void l2norm_heads_forward(E* out, float* norm, const E* x, int64_t n, int64_t H, int64_t N,
                          float eps, cudaStream_t stream);
// dx += (dout - out * <out, dout>) / norm where |x| > eps, dout / eps elsewhere.
template <typename E>
void l2norm_heads_backward(E* dx, const E* dout, const E* out, const float* norm, const E* x,
                           int64_t n, int64_t H, int64_t N, float eps, cudaStream_t stream);

}  // namespace rwkv::cuda
