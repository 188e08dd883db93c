#pragma once
// Pointwise ops on the GPU, fp32: activations, products, sums, per-channel scales.
// The CPU kernels kernels/cpu/elementwise.h define the math; these take the same
// arguments (device pointers) plus the stream. Forwards overwrite; backwards add (+=)
// into every gradient given and skip null ones; the per-channel gradients (dvec,
// dbias [C]) are sums over the n rows in a fixed order (bitwise reproducible).
// Launches go to `stream`; nothing is allocated or synchronised. A negative size or
// an unknown activation throws rwkv::Error naming the function.
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/op_types.h"

namespace rwkv::cuda {

// out [n] = act(x).
void act_forward(kernels::Act act, float* out, const float* x, int64_t n, cudaStream_t stream);
// dx += dout * act'(x).
void act_backward(kernels::Act act, float* dx, const float* dout, const float* x, int64_t n,
                  cudaStream_t stream);

// out = a * b.
void mul_forward(float* out, const float* a, const float* b, int64_t n, cudaStream_t stream);
void mul_backward(float* da, float* db, const float* dout, const float* a, const float* b,
                  int64_t n, cudaStream_t stream);

// out = a + b.
void add_forward(float* out, const float* a, const float* b, int64_t n, cudaStream_t stream);

// dst += src.
void accumulate(float* dst, const float* src, int64_t n, cudaStream_t stream);

// out [n, C] = x * vec[c].
void scale_channels_forward(float* out, const float* x, const float* vec, int64_t n, int64_t C,
                            cudaStream_t stream);
void scale_channels_backward(float* dx, float* dvec, const float* dout, const float* x,
                             const float* vec, int64_t n, int64_t C, cudaStream_t stream);

// out [n, C] = sigmoid(bias[c] + z); backward from the output s: dz, dbias += dout s (1 - s).
void bias_sigmoid_forward(float* out, const float* bias, const float* z, int64_t n, int64_t C,
                          cudaStream_t stream);
void bias_sigmoid_backward(float* dbias, float* dz, const float* dout, const float* out, int64_t n,
                           int64_t C, cudaStream_t stream);

}  // namespace rwkv::cuda
