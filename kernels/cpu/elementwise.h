#pragma once
// Pointwise ops: activations, products, sums. Backward functions accumulate (+=)
// into every gradient they are given; a null gradient pointer is skipped.
#include <cstdint>

#include "kernels/op_types.h"

namespace rwkv::kernels {

// out [n] = act(x).
template <typename F>
void act_forward(Act act, F* out, const F* x, int64_t n);
// dx += dout * act'(x), from the input x.
template <typename F>
void act_backward(Act act, F* dx, const F* dout, const F* x, int64_t n);

// out = a * b (out does not overlap a or b).
template <typename F>
void mul_forward(F* out, const F* a, const F* b, int64_t n);
template <typename F>
void mul_backward(F* da, F* db, const F* dout, const F* a, const F* b, int64_t n);

// out = a + b.
template <typename F>
void add_forward(F* out, const F* a, const F* b, int64_t n);

// dst += src (the backward of a sum, and of a residual connection).
template <typename F>
void accumulate(F* dst, const F* src, int64_t n);

// out [n, C] = x * vec[c].
template <typename F>
void scale_channels_forward(F* out, const F* x, const F* vec, int64_t n, int64_t C);
template <typename F>
void scale_channels_backward(F* dx, F* dvec, const F* dout, const F* x, const F* vec, int64_t n,
                             int64_t C);

// out [n, C] = sigmoid(bias[c] + z). Backward from the output s: dz, dbias += dout * s(1-s).
template <typename F>
void bias_sigmoid_forward(F* out, const F* bias, const F* z, int64_t n, int64_t C);
template <typename F>
void bias_sigmoid_backward(F* dbias, F* dz, const F* dout, const F* out, int64_t n, int64_t C);

}  // namespace rwkv::kernels
