#pragma once
// Token shift and the mixes built on it, on the GPU, fp32. The CPU kernels
// kernels/cpu/token_shift.h define the math (RWKV-LM time_shift); these take the same
// arguments (device pointers) plus the stream. Forwards overwrite; backwards add (+=)
// into every gradient given and skip null ones; dc [C] is a sum over the n rows in a
// fixed order (bitwise reproducible). Launches go to `stream`; nothing is allocated or
// synchronised. A negative size throws rwkv::Error naming the function.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace rwkv::cuda {

// xx [B, T, C] = x[b, t-1] - x[b, t]; before t = 0 the previous token is prev [B, C]
// (null = zeros).
void shift_diff_forward(float* xx, const float* x, const float* prev, int64_t B, int64_t T,
                        int64_t C, cudaStream_t stream);
void shift_diff_backward(float* dx, float* dprev, const float* dxx, int64_t B, int64_t T, int64_t C,
                         cudaStream_t stream);

// last [B, C] = x[b, T-1] (T >= 1 when B and C are not 0).
void shift_last(float* last, const float* x, int64_t B, int64_t T, int64_t C, cudaStream_t stream);

// out [n, C] = x + xx * (c or 1 - c, + m); c [C]; m [n, C] or null.
void mix_forward(float* out, const float* x, const float* xx, const float* c, const float* m,
                 bool one_minus, int64_t n, int64_t C, cudaStream_t stream);
void mix_backward(float* dx, float* dxx, float* dc, float* dm, const float* dout, const float* xx,
                  const float* c, const float* m, bool one_minus, int64_t n, int64_t C,
                  cudaStream_t stream);

}  // namespace rwkv::cuda
