#pragma once
// Token shift (RWKV-LM: time_shift = nn.ZeroPad2d((0, 0, 1, -1))): every token
// sees the previous token's input, zero before t = 0, or the carried state in
// recurrent mode. The model works with the difference xx = shift(x) - x and mixes
//   out = x + xx * (c + m)          RWKV-6/7 (time_maa_*, x_*), m the RWKV-6 LoRA term
//   out = x + xx * (1 - c)          RWKV-4/5 (x * time_mix + shift(x) * (1 - time_mix))
// Backward functions accumulate (+=); a null gradient pointer is skipped.
#include <cstdint>
#include <span>

#include "kernels/mix_group.h"

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

// A group of K = outs.size() mixes of the same x, xx (kernels/mix_group.h: 1 <= K <=
// kMaxMixes): outs[k] [n, C] = x + xx * (coefs[k] or 1 - coefs[k], + ms[k]); coefs[k]
// [C]; ms empty (no LoRA term) or K tensors [n, C].
template <typename F>
void mix_forward(std::span<F* const> outs, const F* x, const F* xx, std::span<const F* const> coefs,
                 std::span<const F* const> ms, bool one_minus, int64_t n, int64_t C);
// The group's backward, mix k = 0, 1, ... in turn (every element gets the sums of K
// single-mix backwards in that order): dx += douts[k]; dxx += douts[k] * coef_k;
// dcoefs[k] += the rows' sum of +-douts[k] * xx; dms[k] += douts[k] * xx. dcoefs and dms
// are empty or K entries; null entries, dx and dxx are skipped.
template <typename F>
void mix_backward(F* dx, F* dxx, std::span<F* const> dcoefs, std::span<F* const> dms,
                  std::span<const F* const> douts, const F* xx, std::span<const F* const> coefs,
                  std::span<const F* const> ms, bool one_minus, int64_t n, int64_t C);

}  // namespace rwkv::kernels
