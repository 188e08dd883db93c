#include "kernels/cpu/token_shift.h"

#include "kernels/cpu/fast_math.h"

// The mixes work row by row in __restrict helpers with one loop per output (written
// inline, with up to eight pointers that may alias, GCC keeps the loops scalar); the
// coefficient c or 1 - c is base + sign c (exact either way), without a branch.
// Per-channel parameter gradients add the rows in order.
namespace rwkv::kernels {

namespace {

// One row [C] of mix_forward: out = x + xx (base + sign c + m), m null = 0.
template <typename F>
[[gnu::always_inline]] inline void mix_forward_row(F* __restrict out, const F* __restrict x,
                                                   const F* __restrict xx, const F* __restrict c,
                                                   const F* __restrict m, F base, F sign,
                                                   int64_t C) {
  if (m) {
    for (int64_t j = 0; j < C; ++j) out[j] = x[j] + xx[j] * ((base + sign * c[j]) + m[j]);
  } else {
    for (int64_t j = 0; j < C; ++j) out[j] = x[j] + xx[j] * (base + sign * c[j]);
  }
}

// One row [C] of mix_backward.
template <typename F>
[[gnu::always_inline]] inline void mix_backward_row(F* __restrict dx, F* __restrict dxx,
                                                    F* __restrict dc, F* __restrict dm,
                                                    const F* __restrict dout,
                                                    const F* __restrict xx, const F* __restrict c,
                                                    const F* __restrict m, F base, F sign,
                                                    int64_t C) {
  if (dx)
    for (int64_t j = 0; j < C; ++j) dx[j] += dout[j];
  if (dxx && m)
    for (int64_t j = 0; j < C; ++j) dxx[j] += dout[j] * ((base + sign * c[j]) + m[j]);
  if (dxx && !m)
    for (int64_t j = 0; j < C; ++j) dxx[j] += dout[j] * (base + sign * c[j]);
  if (dc)
    for (int64_t j = 0; j < C; ++j) dc[j] += sign * (dout[j] * xx[j]);
  if (dm) fast::add_product(dm, dout, xx, C);
}

}  // namespace

template <typename F>
void shift_diff_forward(F* xx, const F* x, const F* prev, int64_t B, int64_t T, int64_t C) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      const F* cur = x + (b * T + t) * C;
      const F* before = t > 0 ? cur - C : (prev ? prev + b * C : nullptr);
      F* o = xx + (b * T + t) * C;
      for (int64_t c = 0; c < C; ++c) o[c] = (before ? before[c] : F(0)) - cur[c];
    }
}

template <typename F>
void shift_diff_backward(F* dx, F* dprev, const F* dxx, int64_t B, int64_t T, int64_t C) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      const F* g = dxx + (b * T + t) * C;
      F* cur = dx + (b * T + t) * C;
      F* before = t > 0 ? cur - C : (dprev ? dprev + b * C : nullptr);
      for (int64_t c = 0; c < C; ++c) cur[c] -= g[c];
      if (before)
        for (int64_t c = 0; c < C; ++c) before[c] += g[c];
    }
}

template <typename F>
void shift_last(F* last, const F* x, int64_t B, int64_t T, int64_t C) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c) last[b * C + c] = x[(b * T + T - 1) * C + c];
}

// Entry k of an optional group argument at row offset o, null when the group has none.
template <typename P>
P* member(std::span<P* const> group, size_t k, int64_t o) {
  return group.empty() || group[k] == nullptr ? nullptr : group[k] + o;
}

template <typename F>
RWKV_CPU_SIMD void mix_forward(std::span<F* const> outs, const F* x, const F* xx,
                               std::span<const F* const> coefs, std::span<const F* const> ms,
                               bool one_minus, int64_t n, int64_t C) {
  check_mix_forward("rwkv::kernels::mix_forward", outs.size(), coefs.size(), ms.size());
  const F base = one_minus ? F(1) : F(0), sign = one_minus ? F(-1) : F(1);
  for (int64_t i = 0; i < n; ++i)
    for (size_t k = 0; k < outs.size(); ++k)
      mix_forward_row(outs[k] + i * C, x + i * C, xx + i * C, coefs[k], member(ms, k, i * C), base,
                      sign, C);
}

template <typename F>
RWKV_CPU_SIMD void mix_backward(F* dx, F* dxx, std::span<F* const> dcoefs, std::span<F* const> dms,
                                std::span<const F* const> douts, const F* xx,
                                std::span<const F* const> coefs, std::span<const F* const> ms,
                                bool one_minus, int64_t n, int64_t C) {
  check_mix_backward("rwkv::kernels::mix_backward", douts.size(), coefs.size(), ms.size(),
                     dcoefs.size(), dms.size());
  const F base = one_minus ? F(1) : F(0), sign = one_minus ? F(-1) : F(1);
  auto at = [C](F* p, int64_t i) { return p ? p + i * C : nullptr; };
  for (int64_t i = 0; i < n; ++i)
    for (size_t k = 0; k < douts.size(); ++k)
      mix_backward_row(at(dx, i), at(dxx, i), member(dcoefs, k, 0), member(dms, k, i * C),
                       douts[k] + i * C, xx + i * C, coefs[k], member(ms, k, i * C), base, sign, C);
}

#define RWKV_INSTANTIATE(F)                                                                        \
  template void shift_diff_forward<F>(F*, const F*, const F*, int64_t, int64_t, int64_t);          \
  template void shift_diff_backward<F>(F*, F*, const F*, int64_t, int64_t, int64_t);               \
  template void shift_last<F>(F*, const F*, int64_t, int64_t, int64_t);                            \
  template void mix_forward<F>(std::span<F* const>, const F*, const F*, std::span<const F* const>, \
                               std::span<const F* const>, bool, int64_t, int64_t);                 \
  template void mix_backward<F>(F*, F*, std::span<F* const>, std::span<F* const>,                  \
                                std::span<const F* const>, const F*, std::span<const F* const>,    \
                                std::span<const F* const>, bool, int64_t, int64_t);
RWKV_INSTANTIATE(float)
RWKV_INSTANTIATE(double)
#undef RWKV_INSTANTIATE

}  // namespace rwkv::kernels
