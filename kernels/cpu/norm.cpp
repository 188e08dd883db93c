#include "kernels/cpu/norm.h"

#include <algorithm>
#include <cmath>

namespace rwkv::kernels {

namespace {

// One affine-normalised segment of length N: shared by LayerNorm (one segment per
// row) and GroupNorm (one per head).
template <typename F>
void segment_forward(F* out, F* mean_out, F* rstd_out, const F* x, const F* w, const F* b,
                     int64_t N, F eps) {
  F m = 0;
  for (int64_t j = 0; j < N; ++j) m += x[j];
  m /= static_cast<F>(N);
  F var = 0;
  for (int64_t j = 0; j < N; ++j) var += (x[j] - m) * (x[j] - m);
  var /= static_cast<F>(N);
  const F rs = F(1) / std::sqrt(var + eps);
  for (int64_t j = 0; j < N; ++j) out[j] = (x[j] - m) * rs * w[j] + b[j];
  *mean_out = m;
  *rstd_out = rs;
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dout * w.
template <typename F>
void segment_backward(F* dx, F* dw, F* db, const F* dout, const F* x, const F* w, F m, F rs,
                      int64_t N) {
  F mean_g = 0, mean_gx = 0;
  for (int64_t j = 0; j < N; ++j) {
    const F xhat = (x[j] - m) * rs;
    const F g = dout[j] * w[j];
    mean_g += g;
    mean_gx += g * xhat;
    dw[j] += dout[j] * xhat;
    db[j] += dout[j];
  }
  mean_g /= static_cast<F>(N);
  mean_gx /= static_cast<F>(N);
  for (int64_t j = 0; j < N; ++j) {
    const F xhat = (x[j] - m) * rs;
    dx[j] += rs * (dout[j] * w[j] - mean_g - xhat * mean_gx);
  }
}

}  // namespace

template <typename F>
void layernorm_forward(F* out, F* mean, F* rstd, const F* x, const F* w, const F* b, int64_t n,
                       int64_t C, F eps) {
  for (int64_t i = 0; i < n; ++i)
    segment_forward(out + i * C, mean + i, rstd + i, x + i * C, w, b, C, eps);
}

template <typename F>
void layernorm_backward(F* dx, F* dw, F* db, const F* dout, const F* x, const F* w, const F* mean,
                        const F* rstd, int64_t n, int64_t C) {
  for (int64_t i = 0; i < n; ++i)
    segment_backward(dx + i * C, dw, db, dout + i * C, x + i * C, w, mean[i], rstd[i], C);
}

template <typename F>
void rmsnorm_forward(F* out, F* rstd, const F* x, const F* w, int64_t n, int64_t C, F eps) {
  for (int64_t i = 0; i < n; ++i) {
    const F* xi = x + i * C;
    F ms = 0;
    for (int64_t c = 0; c < C; ++c) ms += xi[c] * xi[c];
    const F rs = F(1) / std::sqrt(ms / static_cast<F>(C) + eps);
    for (int64_t c = 0; c < C; ++c) out[i * C + c] = xi[c] * rs * w[c];
    rstd[i] = rs;
  }
}

// dx = rstd * (g - xhat * mean(g * xhat)), g = dout * w, xhat = x * rstd.
template <typename F>
void rmsnorm_backward(F* dx, F* dw, const F* dout, const F* x, const F* w, const F* rstd, int64_t n,
                      int64_t C) {
  for (int64_t i = 0; i < n; ++i) {
    const F* xi = x + i * C;
    const F* di = dout + i * C;
    const F rs = rstd[i];
    F mean_gx = 0;
    for (int64_t c = 0; c < C; ++c) {
      mean_gx += di[c] * w[c] * xi[c] * rs;
      dw[c] += di[c] * xi[c] * rs;
    }
    mean_gx /= static_cast<F>(C);
    for (int64_t c = 0; c < C; ++c) dx[i * C + c] += rs * (di[c] * w[c] - xi[c] * rs * mean_gx);
  }
}

template <typename F>
void groupnorm_forward(F* out, F* mean, F* rstd, const F* x, const F* w, const F* b, int64_t n,
                       int64_t H, int64_t N, F eps) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t o = i * H * N + h * N;
      segment_forward(out + o, mean + i * H + h, rstd + i * H + h, x + o, w + h * N, b + h * N, N,
                      eps);
    }
}

template <typename F>
void groupnorm_backward(F* dx, F* dw, F* db, const F* dout, const F* x, const F* w, const F* mean,
                        const F* rstd, int64_t n, int64_t H, int64_t N) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t o = i * H * N + h * N;
      segment_backward(dx + o, dw + h * N, db + h * N, dout + o, x + o, w + h * N, mean[i * H + h],
                       rstd[i * H + h], N);
    }
}

template <typename F>
void l2norm_heads_forward(F* out, F* norm, const F* x, int64_t n, int64_t H, int64_t N, F eps) {
  for (int64_t s = 0; s < n * H; ++s) {
    F ss = 0;
    for (int64_t j = 0; j < N; ++j) ss += x[s * N + j] * x[s * N + j];
    const F nr = std::max(std::sqrt(ss), eps);
    for (int64_t j = 0; j < N; ++j) out[s * N + j] = x[s * N + j] / nr;
    norm[s] = nr;
  }
}

template <typename F>
void l2norm_heads_backward(F* dx, const F* dout, const F* out, const F* norm, const F* x, int64_t n,
                           int64_t H, int64_t N, F eps) {
  for (int64_t s = 0; s < n * H; ++s) {
    F ss = 0, dot = 0;
    for (int64_t j = 0; j < N; ++j) {
      ss += x[s * N + j] * x[s * N + j];
      dot += out[s * N + j] * dout[s * N + j];
    }
    if (std::sqrt(ss) > eps) {
      for (int64_t j = 0; j < N; ++j)
        dx[s * N + j] += (dout[s * N + j] - out[s * N + j] * dot) / norm[s];
    } else {
      for (int64_t j = 0; j < N; ++j) dx[s * N + j] += dout[s * N + j] / eps;
    }
  }
}

#define RWKV_INSTANTIATE(F)                                                                      \
  template void layernorm_forward<F>(F*, F*, F*, const F*, const F*, const F*, int64_t, int64_t, \
                                     F);                                                         \
  template void layernorm_backward<F>(F*, F*, F*, const F*, const F*, const F*, const F*,        \
                                      const F*, int64_t, int64_t);                               \
  template void rmsnorm_forward<F>(F*, F*, const F*, const F*, int64_t, int64_t, F);             \
  template void rmsnorm_backward<F>(F*, F*, const F*, const F*, const F*, const F*, int64_t,     \
                                    int64_t);                                                    \
  template void groupnorm_forward<F>(F*, F*, F*, const F*, const F*, const F*, int64_t, int64_t, \
                                     int64_t, F);                                                \
  template void groupnorm_backward<F>(F*, F*, F*, const F*, const F*, const F*, const F*,        \
                                      const F*, int64_t, int64_t, int64_t);                      \
  template void l2norm_heads_forward<F>(F*, F*, const F*, int64_t, int64_t, int64_t, F);         \
  template void l2norm_heads_backward<F>(F*, const F*, const F*, const F*, const F*, int64_t,    \
                                         int64_t, int64_t, F);
RWKV_INSTANTIATE(float)
RWKV_INSTANTIATE(double)
#undef RWKV_INSTANTIATE

}  // namespace rwkv::kernels
