#pragma once
// Normalisations over the last dimension on the GPU, fp32: LayerNorm, RMSNorm,
// GroupNorm over heads and per-head L2 normalisation, forward and backward. The math,
// layouts and the saved statistics are those of the CPU kernels kernels/cpu/norm.h,
// which define these ops; each launcher has the CPU function's name and arguments plus
// the stream.
//
// All pointers are device pointers. Forwards overwrite their outputs; backwards add
// (+=) into every gradient they are given and skip null ones. The parameter gradients
// (dw, db) are sums over the rows in a fixed order (no atomics): bitwise reproducible.
// Launches go to `stream`; nothing is allocated or synchronised. Bad shapes throw
// rwkv::Error naming the function.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace rwkv::cuda {

// x, out [n, C]; w, b [C]; mean, rstd [n].
void layernorm_forward(float* out, float* mean, float* rstd, const float* x, const float* w,
                       const float* b, int64_t n, int64_t C, float eps, cudaStream_t stream);
void layernorm_backward(float* dx, float* dw, float* db, const float* dout, const float* x,
                        const float* w, const float* mean, const float* rstd, int64_t n, int64_t C,
                        cudaStream_t stream);

// x, out [n, C]; w [C]; rstd [n].
void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, int64_t n, int64_t C,
                     float eps, cudaStream_t stream);
void rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w,
                      const float* rstd, int64_t n, int64_t C, cudaStream_t stream);

// x, out [n, H*N]; w, b [H*N]; mean, rstd [n, H]; g [n, H*N] the output gate or null:
// out = (xhat w + b) g. The backward recomputes o = xhat w + b for dg += dout o (dg null:
// not wanted) and takes dout g as the norm's gradient.
void groupnorm_forward(float* out, float* mean, float* rstd, const float* x, const float* w,
                       const float* b, const float* g, int64_t n, int64_t H, int64_t N, float eps,
                       cudaStream_t stream);
void groupnorm_backward(float* dx, float* dw, float* db, float* dg, const float* dout,
                        const float* x, const float* w, const float* b, const float* g,
                        const float* mean, const float* rstd, int64_t n, int64_t H, int64_t N,
                        cudaStream_t stream);

// x, out [n, H*N]; norm [n, H] = max(|x_head|, eps).
void l2norm_heads_forward(float* out, float* norm, const float* x, int64_t n, int64_t H, int64_t N,
                          float eps, cudaStream_t stream);
// dx += (dout - out * <out, dout>) / norm where |x| > eps, dout / eps elsewhere.
void l2norm_heads_backward(float* dx, const float* dout, const float* out, const float* norm,
                           const float* x, int64_t n, int64_t H, int64_t N, float eps,
                           cudaStream_t stream);

}  // namespace rwkv::cuda
