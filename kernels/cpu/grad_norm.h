#pragma once
// The two vector ops of global gradient-norm clipping (torch.nn.utils.clip_grad_norm_,
// as RWKV-LM's trainer uses it through Lightning's gradient_clip_val): the sum of
// squares that the norm sqrt(sum over every gradient of g^2) is made of, and the
// in-place scaling by max_norm / (norm + 1e-6).
#include <cstdint>

namespace rwkv::kernels {

// sum_i x[i]^2, accumulated in double in a fixed order (the same bits every time).
template <typename F>
double sum_squares(const F* x, int64_t n);

// x[i] *= s.
template <typename F>
void scale(F* x, F s, int64_t n);

}  // namespace rwkv::kernels
