#pragma once
// Normalisations over the last dimension, forward and backward.
//   LayerNorm (nn.LayerNorm, eps 1e-5 in RWKV): y = (x - mean) * rstd * w + b
//   RMSNorm (model.norm: rmsnorm):            y = x * rstd * w, rstd = 1/sqrt(mean(x^2) + eps)
//   GroupNorm over heads (ln_x, nn.GroupNorm(H, C)): LayerNorm of each head's N channels,
//     with a per-channel affine w, b [C], and an optional output gate g (RWKV-5/6/7 multiply
//     ln_x's output by g: one pass instead of a GroupNorm and a product)
//   L2 normalisation per head (F.normalize(p=2, eps=1e-12), RWKV-7 kk): y = x / max(|x|, eps)
// Backward functions accumulate (+=) into every gradient they are given.
#include <cstdint>

namespace rwkv::kernels {

// x, out [n, C]; w, b [C]; mean, rstd [n] (kept for the backward).
template <typename F>
void layernorm_forward(F* out, F* mean, F* rstd, const F* x, const F* w, const F* b, int64_t n,
                       int64_t C, F eps);
template <typename F>
void layernorm_backward(F* dx, F* dw, F* db, const F* dout, const F* x, const F* w, const F* mean,
                        const F* rstd, int64_t n, int64_t C);

// x, out [n, C]; w [C]; rstd [n].
template <typename F>
void rmsnorm_forward(F* out, F* rstd, const F* x, const F* w, int64_t n, int64_t C, F eps);
template <typename F>
void rmsnorm_backward(F* dx, F* dw, const F* dout, const F* x, const F* w, const F* rstd, int64_t n,
                      int64_t C);

// x, out [n, H*N]; w, b [H*N]; mean, rstd [n, H]; g [n, H*N] or null (no gate):
// out = (xhat * w + b) * g.
template <typename F>
void groupnorm_forward(F* out, F* mean, F* rstd, const F* x, const F* w, const F* b, const F* g,
                       int64_t n, int64_t H, int64_t N, F eps);
// With a gate, o = xhat * w + b is recomputed from x, mean and rstd: dg += dout * o, and
// dx, dw, db are those of the ungated norm for the gradient dout * g. dg null: not wanted.
template <typename F>
void groupnorm_backward(F* dx, F* dw, F* db, F* dg, const F* dout, const F* x, const F* w,
                        const F* b, const F* g, const F* mean, const F* rstd, int64_t n, int64_t H,
                        int64_t N);

// x, out [n, H*N]; norm [n, H] = max(|x_head|, eps) (kept for the backward).
template <typename F>
void l2norm_heads_forward(F* out, F* norm, const F* x, int64_t n, int64_t H, int64_t N, F eps);
// dx += (dout - out * <out, dout>) / norm where |x| > eps, dout / eps elsewhere.
template <typename F>
void l2norm_heads_backward(F* dx, const F* dout, const F* out, const F* norm, const F* x, int64_t n,
                           int64_t H, int64_t N, F eps);

}  // namespace rwkv::kernels
