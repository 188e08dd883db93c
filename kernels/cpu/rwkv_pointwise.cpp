#include "kernels/cpu/rwkv_pointwise.h"

#include <cmath>

namespace rwkv::kernels {

template <typename F>
void decay_v6_forward(F* lw, const F* time_decay, const F* ww, int64_t n, int64_t C) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < C; ++c)
      lw[i * C + c] = -std::exp(time_decay[c] + (ww ? ww[i * C + c] : F(0)));
}

// d lw / d (time_decay + ww) = lw.
template <typename F>
void decay_v6_backward(F* dtime_decay, F* dww, const F* dlw, const F* lw, int64_t n, int64_t C) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < C; ++c) {
      const F g = dlw[i * C + c] * lw[i * C + c];
      if (dww) dww[i * C + c] += g;
      if (dtime_decay) dtime_decay[c] += g;
    }
}

template <typename F>
void decay_v7_forward(F* lw, const F* w0, const F* z, int64_t n, int64_t C) {
  const F scale = std::exp(F(-0.5));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < C; ++c)
      lw[i * C + c] = -scale / (F(1) + std::exp(-(w0[c] + z[i * C + c])));
}

template <typename F>
void decay_v7_backward(F* dw0, F* dz, const F* dlw, const F* w0, const F* z, int64_t n,
                       int64_t C) {
  const F scale = std::exp(F(-0.5));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < C; ++c) {
      const F s = F(1) / (F(1) + std::exp(-(w0[c] + z[i * C + c])));
      const F g = -scale * s * (F(1) - s) * dlw[i * C + c];
      if (dz) dz[i * C + c] += g;
      if (dw0) dw0[c] += g;
    }
}

template <typename F>
void value_residual_forward(F* out, const F* v, const F* v_first, const F* s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = v[i] + (v_first[i] - v[i]) * s[i];
}

template <typename F>
void value_residual_backward(F* dv, F* dv_first, F* ds, const F* dout, const F* v,
                             const F* v_first, const F* s, int64_t n) {
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
void key_adjust_backward(F* dk, F* da, F* dk_a, const F* dout, const F* k, const F* a,
                         const F* k_a, int64_t n, int64_t C) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < C; ++c) {
      const int64_t o = i * C + c;
      if (dk) dk[o] += dout[o] * (F(1) + (a[o] - F(1)) * k_a[c]);
      if (da) da[o] += dout[o] * k[o] * k_a[c];
      if (dk_a) dk_a[c] += dout[o] * k[o] * (a[o] - F(1));
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
void bonus_v7_forward(F* out, const F* r, const F* k, const F* v, const F* r_k, int64_t n,
                      int64_t H, int64_t N) {
  for (int64_t s = 0; s < n * H; ++s) {
    const int64_t h = s % H;
    F dot = 0;
    for (int64_t j = 0; j < N; ++j) dot += r[s * N + j] * k[s * N + j] * r_k[h * N + j];
    for (int64_t j = 0; j < N; ++j) out[s * N + j] += dot * v[s * N + j];
  }
}

template <typename F>
void bonus_v7_backward(F* dr, F* dk, F* dv, F* dr_k, const F* dout, const F* r, const F* k,
                       const F* v, const F* r_k, int64_t n, int64_t H, int64_t N) {
  for (int64_t s = 0; s < n * H; ++s) {
    const int64_t h = s % H;
    F dot = 0, ddot = 0;
    for (int64_t j = 0; j < N; ++j) {
      dot += r[s * N + j] * k[s * N + j] * r_k[h * N + j];
      ddot += dout[s * N + j] * v[s * N + j];
    }
    for (int64_t j = 0; j < N; ++j) {
      const int64_t o = s * N + j;
      if (dv) dv[o] += dout[o] * dot;
      if (dr) dr[o] += ddot * k[o] * r_k[h * N + j];
      if (dk) dk[o] += ddot * r[o] * r_k[h * N + j];
      if (dr_k) dr_k[h * N + j] += ddot * r[o] * k[o];
    }
  }
}

#define RWKV_INSTANTIATE(F)                                                                     \
  template void decay_v6_forward<F>(F*, const F*, const F*, int64_t, int64_t);                 \
  template void decay_v6_backward<F>(F*, F*, const F*, const F*, int64_t, int64_t);            \
  template void decay_v7_forward<F>(F*, const F*, const F*, int64_t, int64_t);                 \
  template void decay_v7_backward<F>(F*, F*, const F*, const F*, const F*, int64_t, int64_t);  \
  template void value_residual_forward<F>(F*, const F*, const F*, const F*, int64_t);          \
  template void value_residual_backward<F>(F*, F*, F*, const F*, const F*, const F*, const F*, \
                                           int64_t);                                            \
  template void key_adjust_forward<F>(F*, const F*, const F*, const F*, int64_t, int64_t);     \
  template void key_adjust_backward<F>(F*, F*, F*, const F*, const F*, const F*, const F*,     \
                                       int64_t, int64_t);                                       \
  template void wkv7_ab_forward<F>(F*, F*, const F*, const F*, int64_t);                       \
  template void wkv7_ab_backward<F>(F*, F*, const F*, const F*, const F*, const F*, int64_t);  \
  template void bonus_v7_forward<F>(F*, const F*, const F*, const F*, const F*, int64_t,       \
                                    int64_t, int64_t);                                          \
  template void bonus_v7_backward<F>(F*, F*, F*, F*, const F*, const F*, const F*, const F*,   \
                                     const F*, int64_t, int64_t, int64_t);
RWKV_INSTANTIATE(float)
RWKV_INSTANTIATE(double)
#undef RWKV_INSTANTIATE

}  // namespace rwkv::kernels
