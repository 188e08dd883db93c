#include "kernels/cpu/token_shift.h"

namespace rwkv::kernels {

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
      for (int64_t c = 0; c < C; ++c) {
        cur[c] -= g[c];
        if (before) before[c] += g[c];
      }
    }
}

template <typename F>
void shift_last(F* last, const F* x, int64_t B, int64_t T, int64_t C) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c) last[b * C + c] = x[(b * T + T - 1) * C + c];
}

template <typename F>
void mix_forward(F* out, const F* x, const F* xx, const F* c, const F* m, bool one_minus, int64_t n,
                 int64_t C) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < C; ++j) {
      const int64_t o = i * C + j;
      const F coef = (one_minus ? F(1) - c[j] : c[j]) + (m ? m[o] : F(0));
      out[o] = x[o] + xx[o] * coef;
    }
}

template <typename F>
void mix_backward(F* dx, F* dxx, F* dc, F* dm, const F* dout, const F* xx, const F* c, const F* m,
                  bool one_minus, int64_t n, int64_t C) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < C; ++j) {
      const int64_t o = i * C + j;
      const F coef = (one_minus ? F(1) - c[j] : c[j]) + (m ? m[o] : F(0));
      if (dx) dx[o] += dout[o];
      if (dxx) dxx[o] += dout[o] * coef;
      if (dc) dc[j] += one_minus ? -dout[o] * xx[o] : dout[o] * xx[o];
      if (dm) dm[o] += dout[o] * xx[o];
    }
}

#define RWKV_INSTANTIATE(F)                                                                   \
  template void shift_diff_forward<F>(F*, const F*, const F*, int64_t, int64_t, int64_t);     \
  template void shift_diff_backward<F>(F*, F*, const F*, int64_t, int64_t, int64_t);          \
  template void shift_last<F>(F*, const F*, int64_t, int64_t, int64_t);                       \
  template void mix_forward<F>(F*, const F*, const F*, const F*, const F*, bool, int64_t,     \
                               int64_t);                                                      \
  template void mix_backward<F>(F*, F*, F*, F*, const F*, const F*, const F*, const F*, bool, \
                                int64_t, int64_t);
RWKV_INSTANTIATE(float)
RWKV_INSTANTIATE(double)
#undef RWKV_INSTANTIATE

}  // namespace rwkv::kernels
