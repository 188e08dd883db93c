#include "kernels/cpu/rwkv_pointwise.h"

#include <cmath>
#include <vector>

#include "kernels/cpu/fast_math.h"

// The float loops vectorise (as in elementwise.cpp): exp and sigmoid from fast_math.h,
// the backward functions work row by row in __restrict helpers with one loop per
// gradient, and sums over a head's channels are fast::sum's interleaved partial sums.
// Per-channel parameter gradients add the rows in order.
namespace rwkv::kernels {

namespace {

// One row [C] of decay_v7_backward: g = -e^{-1/2} s (1 - s) dlw, s = sigmoid(w0 + z).
template <typename F>
[[gnu::always_inline]] inline void decay_v7_backward_row(F* __restrict dw0, F* __restrict dz,
                                                         const F* __restrict dlw,
                                                         const F* __restrict w0,
                                                         const F* __restrict z, int64_t C) {
  const F scale = fast::exp(F(-0.5));
  auto grad = [&](int64_t c) {
    const F s = fast::sigmoid(w0[c] + z[c]);
    return -scale * s * (F(1) - s) * dlw[c];
  };
  if (dz && dw0) {
    for (int64_t c = 0; c < C; ++c) {
      const F g = grad(c);
      dz[c] += g;
      dw0[c] += g;
    }
  } else if (dz) {
    for (int64_t c = 0; c < C; ++c) dz[c] += grad(c);
  } else if (dw0) {
    for (int64_t c = 0; c < C; ++c) dw0[c] += grad(c);
  }
}

// One row [C] of key_adjust_backward.
template <typename F>
[[gnu::always_inline]] inline void key_adjust_backward_row(
    F* __restrict dk, F* __restrict da, F* __restrict dk_a, const F* __restrict dout,
    const F* __restrict k, const F* __restrict a, const F* __restrict k_a, int64_t C) {
  if (dk)
    for (int64_t c = 0; c < C; ++c) dk[c] += dout[c] * (F(1) + (a[c] - F(1)) * k_a[c]);
  if (da)
    for (int64_t c = 0; c < C; ++c) da[c] += dout[c] * k[c] * k_a[c];
  if (dk_a)
    for (int64_t c = 0; c < C; ++c) dk_a[c] += dout[c] * k[c] * (a[c] - F(1));
}

// acc += a * b * s over n elements (__restrict: vectorised).
template <typename F>
[[gnu::always_inline]] inline void add_scaled_product(F* __restrict acc, const F* __restrict a,
                                                      const F* __restrict b, F s, int64_t n) {
  for (int64_t j = 0; j < n; ++j) acc[j] += a[j] * b[j] * s;
}

// One head [N] of bonus_v7_backward for the output gradient e; dot = sum_j r k r_k
// (returned), ddot = sum_j e v.
template <typename F>
[[gnu::always_inline]] inline F bonus_v7_backward_head(F* __restrict dr, F* __restrict dk,
                                                       F* __restrict dv, F* __restrict dr_k,
                                                       const F* __restrict e, const F* __restrict r,
                                                       const F* __restrict k, const F* __restrict v,
                                                       const F* __restrict r_k, int64_t N) {
  const F dot = fast::sum<F>(N, [&](int64_t j) { return r[j] * k[j] * r_k[j]; });
  if (dv)
    for (int64_t j = 0; j < N; ++j) dv[j] += e[j] * dot;
  const F ddot = fast::sum<F>(N, [&](int64_t j) { return e[j] * v[j]; });
  if (dr)
    for (int64_t j = 0; j < N; ++j) dr[j] += ddot * k[j] * r_k[j];
  if (dk)
    for (int64_t j = 0; j < N; ++j) dk[j] += ddot * r[j] * r_k[j];
  if (dr_k)
    for (int64_t j = 0; j < N; ++j) dr_k[j] += ddot * r[j] * k[j];
  return dot;
}

}  // namespace

template <typename F>
RWKV_CPU_SIMD void decay_v6_forward(F* lw, const F* time_decay, const F* ww, int64_t n, int64_t C) {
  for (int64_t i = 0; i < n; ++i) {
    F* out = lw + i * C;
    if (ww) {
      const F* wr = ww + i * C;
      for (int64_t c = 0; c < C; ++c) out[c] = -fast::exp(time_decay[c] + wr[c]);
    } else {
      for (int64_t c = 0; c < C; ++c) out[c] = -fast::exp(time_decay[c]);
    }
  }
}

// d lw / d (time_decay + ww) = lw.
template <typename F>
RWKV_CPU_SIMD void decay_v6_backward(F* dtime_decay, F* dww, const F* dlw, const F* lw, int64_t n,
                                     int64_t C) {
  for (int64_t i = 0; i < n; ++i) {
    if (dww) fast::add_product(dww + i * C, dlw + i * C, lw + i * C, C);
    if (dtime_decay) fast::add_product(dtime_decay, dlw + i * C, lw + i * C, C);
  }
}

template <typename F>
RWKV_CPU_SIMD void decay_v7_forward(F* lw, const F* w0, const F* z, int64_t n, int64_t C) {
  const F scale = fast::exp(F(-0.5));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < C; ++c) lw[i * C + c] = -scale * fast::sigmoid(w0[c] + z[i * C + c]);
}

template <typename F>
RWKV_CPU_SIMD void decay_v7_backward(F* dw0, F* dz, const F* dlw, const F* w0, const F* z,
                                     int64_t n, int64_t C) {
  for (int64_t i = 0; i < n; ++i)
    decay_v7_backward_row(dw0, dz ? dz + i * C : nullptr, dlw + i * C, w0, z + i * C, C);
}

template <typename F>
void value_residual_forward(F* out, const F* v, const F* v_first, const F* s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = v[i] + (v_first[i] - v[i]) * s[i];
}

template <typename F>
void value_residual_backward(F* dv, F* dv_first, F* ds, const F* dout, const F* v, const F* v_first,
                             const F* s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (dv) dv[i] += dout[i] * (F(1) - s[i]);
    if (dv_first) dv_first[i] += dout[i] * s[i];
    if (ds) ds[i] += dout[i] * (v_first[i] - v[i]);
  }
}

template <typename F>
void key_adjust_forward(F* out, const F* k, const F* a, const F* k_a, int64_t n, int64_t C) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < C; ++c) {
      const int64_t o = i * C + c;
      out[o] = k[o] * (F(1) + (a[o] - F(1)) * k_a[c]);
    }
}

template <typename F>
RWKV_CPU_SIMD void key_adjust_backward(F* dk, F* da, F* dk_a, const F* dout, const F* k, const F* a,
                                       const F* k_a, int64_t n, int64_t C) {
  for (int64_t i = 0; i < n; ++i) {
    const int64_t o = i * C;
    key_adjust_backward_row(dk ? dk + o : nullptr, da ? da + o : nullptr, dk_a, dout + o, k + o,
                            a + o, k_a, C);
  }
}

template <typename F>
void wkv7_ab_forward(F* wa, F* wb, const F* kk, const F* a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    wa[i] = -kk[i];
    wb[i] = kk[i] * a[i];
  }
}

template <typename F>
void wkv7_ab_backward(F* dkk, F* da, const F* dwa, const F* dwb, const F* kk, const F* a,
                      int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (dkk) dkk[i] += -dwa[i] + dwb[i] * a[i];
    if (da) da[i] += dwb[i] * kk[i];
  }
}

template <typename F>
RWKV_CPU_SIMD void bonus_v7_forward(F* out, const F* r, const F* k, const F* v, const F* r_k,
                                    const F* g, int64_t n, int64_t H, int64_t N) {
  for (int64_t s = 0; s < n * H; ++s) {
    const F* rs = r + s * N;
    const F* ks = k + s * N;
    const F* rks = r_k + (s % H) * N;
    const F dot = fast::sum<F>(N, [&](int64_t j) { return rs[j] * ks[j] * rks[j]; });
    F* __restrict os = out + s * N;
    const F* __restrict vs = v + s * N;
    if (g) {
      const F* __restrict gs = g + s * N;
      for (int64_t j = 0; j < N; ++j) os[j] += dot * vs[j] * gs[j];
    } else {
      for (int64_t j = 0; j < N; ++j) os[j] += dot * vs[j];
    }
  }
}

// With the gate: the head's output gradient is e = dout * g, and dg += dout * dot * v.
template <typename F>
RWKV_CPU_SIMD void bonus_v7_backward(F* dr, F* dk, F* dv, F* dr_k, F* dg, const F* dout, const F* r,
                                     const F* k, const F* v, const F* r_k, const F* g, int64_t n,
                                     int64_t H, int64_t N) {
  std::vector<F> e(g ? static_cast<size_t>(N) : 0);
  for (int64_t s = 0; s < n * H; ++s) {
    const int64_t o = s * N;
    auto at = [o](F* p) { return p ? p + o : nullptr; };
    if (g) fast::product(e.data(), dout + o, g + o, N);
    const F dot =
        bonus_v7_backward_head(at(dr), at(dk), at(dv), dr_k ? dr_k + (s % H) * N : nullptr,
                               g ? e.data() : dout + o, r + o, k + o, v + o, r_k + (s % H) * N, N);
    if (g && dg) add_scaled_product(dg + o, dout + o, v + o, dot, N);
  }
}

#define RWKV_INSTANTIATE(F)                                                                        \
  template void decay_v6_forward<F>(F*, const F*, const F*, int64_t, int64_t);                     \
  template void decay_v6_backward<F>(F*, F*, const F*, const F*, int64_t, int64_t);                \
  template void decay_v7_forward<F>(F*, const F*, const F*, int64_t, int64_t);                     \
  template void decay_v7_backward<F>(F*, F*, const F*, const F*, const F*, int64_t, int64_t);      \
  template void value_residual_forward<F>(F*, const F*, const F*, const F*, int64_t);              \
  template void value_residual_backward<F>(F*, F*, F*, const F*, const F*, const F*, const F*,     \
                                           int64_t);                                               \
  template void key_adjust_forward<F>(F*, const F*, const F*, const F*, int64_t, int64_t);         \
  template void key_adjust_backward<F>(F*, F*, F*, const F*, const F*, const F*, const F*,         \
                                       int64_t, int64_t);                                          \
  template void wkv7_ab_forward<F>(F*, F*, const F*, const F*, int64_t);                           \
  template void wkv7_ab_backward<F>(F*, F*, const F*, const F*, const F*, const F*, int64_t);      \
  template void bonus_v7_forward<F>(F*, const F*, const F*, const F*, const F*, const F*, int64_t, \
                                    int64_t, int64_t);                                             \
  template void bonus_v7_backward<F>(F*, F*, F*, F*, F*, const F*, const F*, const F*, const F*,   \
                                     const F*, const F*, int64_t, int64_t, int64_t);
RWKV_INSTANTIATE(float)
RWKV_INSTANTIATE(double)
#undef RWKV_INSTANTIATE

}  // namespace rwkv::kernels
