#pragma once
// Token shift and the mixes built on it, on the GPU. The CPU kernels
// kernels/cpu/token_shift.h define the math (RWKV-LM time_shift); these take the same
// arguments (device pointers) plus the stream. E is the element type of the activations
// (float or Bf16, both instantiated; widened as read, rounded once as written); the
// recurrent state (prev, dprev, last) and the mix coefficients and their gradients are
// fp32. Forwards overwrite; backwards add (+=)
// into every gradient given and skip null ones; dc [C] is a sum over the n rows in a
// fixed order (bitwise reproducible). Launches go to `stream`; nothing is allocated or
// synchronised. A negative size throws rwkv::Error naming the function.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <span>

namespace rwkv::cuda {

// xx [B, T, C] = x[b, t-1] - x[b, t]; before t = 0 the previous token is prev [B, C]
// (null = zeros).
template <typename E>
void shift_diff_forward(E* xx, const E* x, const float* prev, int64_t B, int64_t T, int64_t C,
                        cudaStream_t stream);
template <typename E>
void shift_diff_backward(E* dx, float* dprev, const E* dxx, int64_t B, int64_t T, int64_t C,
                         cudaStream_t stream);

// last [B, C] = x[b, T-1] (T >= 1 when B and C are not 0).
template <typename E>
void shift_last(float* last, const E* x, int64_t B, int64_t T, int64_t C, cudaStream_t stream);

// A group of mixes of the same x, xx (kernels/mix_group.h), one kernel for the group:
// outs[k] [n, C] = x + xx * (coefs[k] or 1 - coefs[k], + ms[k]); ms empty or K entries.
// A group's size out of range throws rwkv::Error naming the function.
template <typename E>
void mix_forward(std::span<E* const> outs, const E* x, const E* xx,
                 std::span<const float* const> coefs, std::span<const E* const> ms, bool one_minus,
                 int64_t n, int64_t C, cudaStream_t stream);
// The group's backward, mix k = 0, 1, ... in turn per element; each dcoefs[k] a
// fixed-order sum over the rows.
template <typename E>
void mix_backward(E* dx, E* dxx, std::span<float* const> dcoefs, std::span<E* const> dms,
                  std::span<const E* const> douts, const E* xx, std::span<const float* const> coefs,
                  std::span<const E* const> ms, bool one_minus, int64_t n, int64_t C,
                  cudaStream_t stream);

}  // namespace rwkv::cuda
