#pragma once
// Pointwise ops on the GPU: activations, products, sums, per-channel scales. The CPU
// kernels kernels/cpu/elementwise.h define the math; these take the same arguments
// (device pointers) plus the stream. E is the element type of the per-token tensors
// (float or Bf16, both instantiated): each value is widened to fp32 as it is read and
// each output rounded once as it is written (kernels/cuda/bf16.h); the per-channel
// vectors (vec, bias) and their gradients are fp32. Forwards overwrite; backwards add
// (+=) into every gradient given and skip null ones; the per-channel gradients (dvec,
// dbias [C]) are sums over the n rows in a fixed order (bitwise reproducible).
// Launches go to `stream`; nothing is allocated or synchronised. A negative size or
// an unknown activation throws rwkv::Error naming the function.
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/op_types.h"

namespace rwkv::cuda {

// out [n] = act(x).
template <typename E>
void act_forward(kernels::Act act, E* out, const E* x, int64_t n, cudaStream_t stream);
// dx += dout * act'(x).
template <typename E>
void act_backward(kernels::Act act, E* dx, const E* dout, const E* x, int64_t n,
                  cudaStream_t stream);

// out = a * b.
template <typename E>
void mul_forward(E* out, const E* a, const E* b, int64_t n, cudaStream_t stream);
template <typename E>
void mul_backward(E* da, E* db, const E* dout, const E* a, const E* b, int64_t n,
                  cudaStream_t stream);

// out = a + b.
template <typename E>
void add_forward(E* out, const E* a, const E* b, int64_t n, cudaStream_t stream);

// dst += src.
template <typename E>
void accumulate(E* dst, const E* src, int64_t n, cudaStream_t stream);

// out [n, C] = x * vec[c].
template <typename E>
void scale_channels_forward(E* out, const E* x, const float* vec, int64_t n, int64_t C,
                            cudaStream_t stream);
template <typename E>
void scale_channels_backward(E* dx, float* dvec, const E* dout, const E* x, const float* vec,
                             int64_t n, int64_t C, cudaStream_t stream);

// out [n, C] = sigmoid(bias[c] + z); backward from the output s: dz, dbias += dout s (1 - s).
template <typename E>
void bias_sigmoid_forward(E* out, const float* bias, const E* z, int64_t n, int64_t C,
                          cudaStream_t stream);
template <typename E>
void bias_sigmoid_backward(float* dbias, E* dz, const E* dout, const E* out, int64_t n, int64_t C,
                           cudaStream_t stream);

}  // namespace rwkv::cuda
