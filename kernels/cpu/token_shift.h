#pragma once
// Token shift (RWKV-LM: time_shift = nn.ZeroPad2d((0, 0, 1, -1))): every token
// sees the previous token's input, zero before t = 0, or the carried state in
// recurrent mode. The model works with the difference xx = shift(x) - x and mixes
//   out = x + xx * (c + m)          RWKV-6/7 (time_maa_*, x_*), m the RWKV-6 LoRA term
//   out = x + xx * (1 - c)          RWKV-4/5 (x * time_mix + shift(x) * (1 - time_mix))
// Backward functions accumulate (+=); a null gradient pointer is skipped.
#include <cstdint>

namespace rwkv::kernels {

// xx [B, T, C] = x[b, t-1] - x[b, t]; before t = 0 the previous token is prev [B, C]
// (null = zeros).
template <typename F>
void shift_diff_forward(F* xx, const F* x, const F* prev, int64_t B, int64_t T, int64_t C);
template <typename F>
void shift_diff_backward(F* dx, F* dprev, const F* dxx, int64_t B, int64_t T, int64_t C);

// The state to carry to the next call: last [B, C] = x[b, T-1].
template <typename F>
void shift_last(F* last, const F* x, int64_t B, int64_t T, int64_t C);

// out [n, C] = x + xx * (c or 1 - c, + m); c [C]; m [n, C] or null.
template <typename F>
void mix_forward(F* out, const F* x, const F* xx, const F* c, const F* m, bool one_minus, int64_t n,
                 int64_t C);
template <typename F>
void mix_backward(F* dx, F* dxx, F* dc, F* dm, const F* dout, const F* xx, const F* c, const F* m,
                  bool one_minus, int64_t n, int64_t C);

}  // namespace rwkv::kernels
