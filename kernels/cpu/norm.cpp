#include "kernels/cpu/norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/fast_math.h"

namespace rwkv::kernels {

namespace {

// One affine-normalised segment of length N: shared by LayerNorm (one segment per
// row) and GroupNorm (one per head). The sums over the segment are fast::sum's
// interleaved partial sums, so that they vectorise (a single running sum stays scalar:
// the LayerNorm forwards of a v7 step of bench_train_step_ops took 17-18 ms, now 6-7).
// The __restrict pointers let GCC vectorise the element loops.
template <typename F>
[[gnu::always_inline]] inline void segment_forward(F* __restrict out, F* mean_out, F* rstd_out,
                                                   const F* __restrict x, const F* __restrict w,
                                                   const F* __restrict b, int64_t N, F eps) {
  const F m = fast::sum<F>(N, [&](int64_t j) { return x[j]; }) / static_cast<F>(N);
  const F var =
      fast::sum<F>(N, [&](int64_t j) { return (x[j] - m) * (x[j] - m); }) / static_cast<F>(N);
  const F rs = F(1) / std::sqrt(var + eps);
  for (int64_t j = 0; j < N; ++j) out[j] = (x[j] - m) * rs * w[j] + b[j];
  *mean_out = m;
  *rstd_out = rs;
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dout * w.
template <typename F>
[[gnu::always_inline]] inline void segment_backward(F* __restrict dx, F* __restrict dw,
                                                    F* __restrict db, const F* __restrict dout,
                                                    const F* __restrict x, const F* __restrict w,
                                                    F m, F rs, int64_t N) {
  const F mean_g = fast::sum<F>(N, [&](int64_t j) { return dout[j] * w[j]; }) / static_cast<F>(N);
  const F mean_gx = fast::sum<F>(N, [&](int64_t j) { return dout[j] * w[j] * ((x[j] - m) * rs); }) /
                    static_cast<F>(N);
  for (int64_t j = 0; j < N; ++j) {
    const F xhat = (x[j] - m) * rs;
    dw[j] += dout[j] * xhat;
    db[j] += dout[j];
  }
  for (int64_t j = 0; j < N; ++j) {
    const F xhat = (x[j] - m) * rs;
    dx[j] += rs * (dout[j] * w[j] - mean_g - xhat * mean_gx);
  }
}

// e = d * g and dg += d * (xhat * w + b) over one gated segment.
template <typename F>
[[gnu::always_inline]] inline void segment_gate_backward(
    F* __restrict e, F* __restrict dg, const F* __restrict d, const F* __restrict g,
    const F* __restrict x, const F* __restrict w, const F* __restrict b, F m, F rs, int64_t N) {
  fast::product(e, d, g, N);
  if (dg)
    for (int64_t j = 0; j < N; ++j) dg[j] += d[j] * ((x[j] - m) * rs * w[j] + b[j]);
}

}  // namespace

template <typename F>
RWKV_CPU_SIMD void layernorm_forward(F* out, F* mean, F* rstd, const F* x, const F* w, const F* b,
                                     int64_t n, int64_t C, F eps) {
  for (int64_t i = 0; i < n; ++i)
    segment_forward(out + i * C, mean + i, rstd + i, x + i * C, w, b, C, eps);
}

template <typename F>
RWKV_CPU_SIMD void layernorm_backward(F* dx, F* dw, F* db, const F* dout, const F* x, const F* w,
                                      const F* mean, const F* rstd, int64_t n, int64_t C) {
  for (int64_t i = 0; i < n; ++i)
    segment_backward(dx + i * C, dw, db, dout + i * C, x + i * C, w, mean[i], rstd[i], C);
}

template <typename F>
RWKV_CPU_SIMD void rmsnorm_forward(F* __restrict out, F* rstd, const F* __restrict x,
                                   const F* __restrict w, int64_t n, int64_t C, F eps) {
  for (int64_t i = 0; i < n; ++i) {
    const F* xi = x + i * C;
    const F ms = fast::sum<F>(C, [&](int64_t c) { return xi[c] * xi[c]; });
    const F rs = F(1) / std::sqrt(ms / static_cast<F>(C) + eps);
    for (int64_t c = 0; c < C; ++c) out[i * C + c] = xi[c] * rs * w[c];
    rstd[i] = rs;
  }
}

// dx = rstd * (g - xhat * mean(g * xhat)), g = dout * w, xhat = x * rstd.
template <typename F>
RWKV_CPU_SIMD void rmsnorm_backward(F* __restrict dx, F* __restrict dw, const F* __restrict dout,
                                    const F* __restrict x, const F* __restrict w, const F* rstd,
                                    int64_t n, int64_t C) {
  for (int64_t i = 0; i < n; ++i) {
    const F* xi = x + i * C;
    const F* di = dout + i * C;
    const F rs = rstd[i];
    const F mean_gx =
        fast::sum<F>(C, [&](int64_t c) { return di[c] * w[c] * xi[c] * rs; }) / static_cast<F>(C);
    for (int64_t c = 0; c < C; ++c) dw[c] += di[c] * xi[c] * rs;
    for (int64_t c = 0; c < C; ++c) dx[i * C + c] += rs * (di[c] * w[c] - xi[c] * rs * mean_gx);
  }
}

template <typename F>
RWKV_CPU_SIMD void groupnorm_forward(F* out, F* mean, F* rstd, const F* x, const F* w, const F* b,
                                     const F* g, int64_t n, int64_t H, int64_t N, F eps) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t o = i * H * N + h * N;
      segment_forward(out + o, mean + i * H + h, rstd + i * H + h, x + o, w + h * N, b + h * N, N,
                      eps);
      if (!g) continue;
      F* __restrict os = out + o;
      const F* __restrict gs = g + o;
      for (int64_t j = 0; j < N; ++j) os[j] *= gs[j];
    }
}

template <typename F>
RWKV_CPU_SIMD void groupnorm_backward(F* dx, F* dw, F* db, F* dg, const F* dout, const F* x,
                                      const F* w, const F* b, const F* g, const F* mean,
                                      const F* rstd, int64_t n, int64_t H, int64_t N) {
  std::vector<F> e(g ? static_cast<size_t>(N) : 0);  // a gated segment's dout * g
  for (int64_t i = 0; i < n; ++i)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t o = i * H * N + h * N, c = h * N, s = i * H + h;
      const F* d = dout + o;
      if (g) {
        segment_gate_backward(e.data(), dg ? dg + o : nullptr, d, g + o, x + o, w + c, b + c,
                              mean[s], rstd[s], N);
        d = e.data();
      }
      segment_backward(dx + o, dw + c, db + c, d, x + o, w + c, mean[s], rstd[s], N);
    }
}

template <typename F>
RWKV_CPU_SIMD void l2norm_heads_forward(F* __restrict out, F* norm, const F* __restrict x,
                                        int64_t n, int64_t H, int64_t N, F eps) {
  for (int64_t s = 0; s < n * H; ++s) {
    const F ss = fast::sum<F>(N, [&](int64_t j) { return x[s * N + j] * x[s * N + j]; });
    const F nr = std::max(std::sqrt(ss), eps);
    for (int64_t j = 0; j < N; ++j) out[s * N + j] = x[s * N + j] / nr;
    norm[s] = nr;
  }
}

template <typename F>
RWKV_CPU_SIMD void l2norm_heads_backward(F* __restrict dx, const F* __restrict dout,
                                         const F* __restrict out, const F* norm,
                                         const F* __restrict x, int64_t n, int64_t H, int64_t N,
                                         F eps) {
  for (int64_t s = 0; s < n * H; ++s) {
    const F ss = fast::sum<F>(N, [&](int64_t j) { return x[s * N + j] * x[s * N + j]; });
    const F dot = fast::sum<F>(N, [&](int64_t j) { return out[s * N + j] * dout[s * N + j]; });
    if (std::sqrt(ss) > eps) {
      for (int64_t j = 0; j < N; ++j)
        dx[s * N + j] += (dout[s * N + j] - out[s * N + j] * dot) / norm[s];
    } else {
      for (int64_t j = 0; j < N; ++j) dx[s * N + j] += dout[s * N + j] / eps;
    }
  }
}

#define RWKV_INSTANTIATE(F)                                                                       \
  template void layernorm_forward<F>(F*, F*, F*, const F*, const F*, const F*, int64_t, int64_t,  \
                                     F);                                                          \
  template void layernorm_backward<F>(F*, F*, F*, const F*, const F*, const F*, const F*,         \
                                      const F*, int64_t, int64_t);                                \
  template void rmsnorm_forward<F>(F*, F*, const F*, const F*, int64_t, int64_t, F);              \
  template void rmsnorm_backward<F>(F*, F*, const F*, const F*, const F*, const F*, int64_t,      \
                                    int64_t);                                                     \
  template void groupnorm_forward<F>(F*, F*, F*, const F*, const F*, const F*, const F*, int64_t, \
                                     int64_t, int64_t, F);                                        \
  template void groupnorm_backward<F>(F*, F*, F*, F*, const F*, const F*, const F*, const F*,     \
                                      const F*, const F*, const F*, int64_t, int64_t, int64_t);   \
  template void l2norm_heads_forward<F>(F*, F*, const F*, int64_t, int64_t, int64_t, F);          \
  template void l2norm_heads_backward<F>(F*, const F*, const F*, const F*, const F*, int64_t,     \
                                         int64_t, int64_t, F);
RWKV_INSTANTIATE(float)
RWKV_INSTANTIATE(double)
#undef RWKV_INSTANTIATE

}  // namespace rwkv::kernels
