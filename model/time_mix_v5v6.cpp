// RWKV-5 and RWKV-6 time mix (RWKV-LM RWKV-v5/src/model.py RWKV_Tmix_x052, x060).
//   v5: x* = x * time_mix_* + shift(x) * (1 - time_mix_*)              for r, k, v, g
//       lw = -exp(time_decay)                                           (per channel)
//   v6: xx = shift(x) - x;  xxx = x + xx * time_maa_x
//       [mw, mk, mv, mr, mg] = tanh(xxx @ time_maa_w1) (5 slices of R) @ time_maa_w2[i]
//       x* = x + xx * (time_maa_* + m*)                                 for w, k, v, r, g
//       lw = -exp(time_decay + tanh(xw @ time_decay_w1) @ time_decay_w2)  (per token)
//   both: r, k, v = W* x*;  g = silu(Wg xg);  y = WKV6(r, k, v, lw, u = time_faaaa)
//         att = Wo(GroupNorm_H(y, eps 64e-5) * g)
// (v5 divides y by head_size_divisor = 8 before a GroupNorm of eps 1e-5, which is the
// same as eps 64e-5 without the division.)
#include "model/layers.h"

namespace rwkv::model {

using kernels::Act;
using kernels::WLayout;

namespace {
constexpr double kLnxEps = 64e-5;
}

template <typename F, typename A>
void time_mix_v5v6_forward(const LayerCtx<F, A>& c, const BlockWeights<F>& w,
                           const BlockWeights<A>& m, LayerActs<F, A>& a, const A* x,
                           const BlockState<F>& st) {
  auto& be = c.be;
  // H heads, Ca = H N channels of this rank: receptance, key, value, gate and the
  // decay LoRA's up projection are column-parallel, output row-parallel.
  const int64_t n = c.n(), C = c.cfg.n_embd, H = c.r.heads(), N = c.cfg.head_size;
  const int64_t Ca = c.r.channels();
  const bool v6 = c.cfg.version == 6;
  be.shift_diff_forward(a.xx, x, st.att_shift_in, c.B, c.T, C);
  if (st.att_shift_out) be.shift_last(st.att_shift_out, x, c.B, c.T, C);
  if (v6) {
    const int64_t R = c.cfg.v6_mix_lora(), D = c.cfg.v6_decay_lora();
    A* const xxx[1] = {a.xxx};
    const F* const maa_x[1] = {w.maa_x};
    be.mix_forward(xxx, x, a.xx, maa_x, {}, false, n, C);
    be.matmul_forward(a.maa_h, 5 * R, a.xxx, C, m.maa_w1, n, C, 5 * R, WLayout::InOut, false);
    be.act_forward(Act::tanh, a.maa_t, a.maa_h, n * 5 * R);
    for (int64_t s = 0; s < 5; ++s)
      be.matmul_forward(a.maa_m + s * n * C, C, a.maa_t + s * R, 5 * R, m.maa_w2 + s * R * C, n, R,
                        C, WLayout::InOut, false);
    A* outs[5] = {a.xw, a.xk, a.xv, a.xr, a.xg};
    const F* coefs[5] = {w.mix_w, w.mix_k, w.mix_v, w.mix_r, w.mix_g};
    const A* ms[5];
    for (int64_t s = 0; s < 5; ++s) ms[s] = a.maa_m + s * n * C;
    be.mix_forward(outs, x, a.xx, coefs, ms, false, n, C);
    be.matmul_forward(a.w_h, D, a.xw, C, m.td_w1, n, C, D, WLayout::InOut, false);
    be.act_forward(Act::tanh, a.w_t, a.w_h, n * D);
    be.matmul_forward(a.w_z, Ca, a.w_t, D, m.td_w2, n, D, Ca, WLayout::InOut, false);
    be.decay_v6_forward(a.lw, w.time_decay, a.w_z, n, Ca);
  } else {
    A* outs[4] = {a.xk, a.xv, a.xr, a.xg};
    const F* coefs[4] = {w.mix_k, w.mix_v, w.mix_r, w.mix_g};
    be.mix_forward(outs, x, a.xx, coefs, {}, true, n, C);
    be.decay_v6_forward(a.lw, w.time_decay, static_cast<const A*>(nullptr), n, Ca);
  }
  be.matmul_forward(a.r, Ca, a.xr, C, m.att_r, n, C, Ca, WLayout::OutIn, false);
  be.matmul_forward(a.k, Ca, a.xk, C, m.att_k, n, C, Ca, WLayout::OutIn, false);
  be.matmul_forward(a.v, Ca, a.xv, C, m.att_v, n, C, Ca, WLayout::OutIn, false);
  be.matmul_forward(a.g_h, Ca, a.xg, C, m.att_g, n, C, Ca, WLayout::OutIn, false);
  be.act_forward(Act::silu, a.g, a.g_h, n * Ca);
  const int iH = static_cast<int>(H);
  be.wkv6_forward(c.wkv, c.B, c.T, iH, static_cast<int>(N), 0, iH, a.r, a.k, a.v, a.lw,
                  w.time_faaaa, a.y, st.wkv_in, st.wkv_out);
  // og = ln_x(y) * g in one pass (the gated GroupNorm).
  be.groupnorm_forward(a.og, a.gn_mean, a.gn_rstd, a.y, w.lnx_w, w.lnx_b, a.g, n, H, N, F(kLnxEps));
  be.matmul_forward(a.att, C, a.og, Ca, m.att_o, n, Ca, C, WLayout::OutIn, false);
  c.tp.all_reduce_sum(a.att, n * C);
}

template <typename F, typename A>
void time_mix_v5v6_backward(const LayerCtx<F, A>& c, const BlockWeights<F>& w,
                            const BlockWeights<A>& m, BlockWeights<F>& gw, const LayerActs<F, A>& a,
                            LayerActs<F, A>& d, const A* dout, A* dx) {
  auto& be = c.be;
  const int64_t n = c.n(), C = c.cfg.n_embd, H = c.r.heads(), N = c.cfg.head_size;
  const int64_t Ca = c.r.channels();
  const bool v6 = c.cfg.version == 6;
  zero_grads(be, n * Ca, {d.y, d.g, d.g_h, v6 ? d.w_z : nullptr});
  zero_grads(be, n * C, {d.xx});
  if (v6) {
    zero_grads(be, n * c.cfg.v6_decay_lora(), {d.w_h});
    zero_grads(be, n * 5 * c.cfg.v6_mix_lora(), {d.maa_h});
    zero_grads(be, 5 * n * C, {d.maa_m});
  }
  be.matmul_backward(d.og, gw.att_o, dout, C, a.og, Ca, m.att_o, n, Ca, C, WLayout::OutIn, false);
  be.groupnorm_backward(d.y, gw.lnx_w, gw.lnx_b, d.g, d.og, a.y, w.lnx_w, w.lnx_b, a.g, a.gn_mean,
                        a.gn_rstd, n, H, N);
  // WKV writes d.r, d.k, d.v, d.lw (their only source) and du.
  const int iH = static_cast<int>(H);
  be.wkv6_backward(c.wkv, c.B, c.T, iH, static_cast<int>(N), 0, iH, a.r, a.k, a.v, a.lw,
                   w.time_faaaa, d.y, d.r, d.k, d.v, d.lw, d.tmp_c);
  be.accumulate(gw.time_faaaa, d.tmp_c, Ca);
  be.act_backward(Act::silu, d.g_h, d.g, a.g_h, n * Ca);
  be.matmul_backward(d.xr, gw.att_r, d.r, Ca, a.xr, C, m.att_r, n, C, Ca, WLayout::OutIn, false);
  be.matmul_backward(d.xk, gw.att_k, d.k, Ca, a.xk, C, m.att_k, n, C, Ca, WLayout::OutIn, false);
  be.matmul_backward(d.xv, gw.att_v, d.v, Ca, a.xv, C, m.att_v, n, C, Ca, WLayout::OutIn, false);
  be.matmul_backward(d.xg, gw.att_g, d.g_h, Ca, a.xg, C, m.att_g, n, C, Ca, WLayout::OutIn, false);
  if (v6) {
    const int64_t R = c.cfg.v6_mix_lora(), D = c.cfg.v6_decay_lora();
    be.decay_v6_backward(gw.time_decay, d.w_z, d.lw, a.lw, n, Ca);
    be.matmul_backward(d.w_t, gw.td_w2, d.w_z, Ca, a.w_t, D, m.td_w2, n, D, Ca, WLayout::InOut,
                       false);
    be.act_backward(Act::tanh, d.w_h, d.w_t, a.w_h, n * D);
    be.matmul_backward(d.xw, gw.td_w1, d.w_h, D, a.xw, C, m.td_w1, n, C, D, WLayout::InOut, false);
    const A* douts[5] = {d.xw, d.xk, d.xv, d.xr, d.xg};
    const F* coefs[5] = {w.mix_w, w.mix_k, w.mix_v, w.mix_r, w.mix_g};
    F* dcoefs[5] = {gw.mix_w, gw.mix_k, gw.mix_v, gw.mix_r, gw.mix_g};
    A* dms[5];
    const A* ms[5];
    for (int64_t s = 0; s < 5; ++s) {
      dms[s] = d.maa_m + s * n * C;
      ms[s] = a.maa_m + s * n * C;
    }
    be.mix_backward(dx, d.xx, dcoefs, dms, douts, a.xx, coefs, ms, false, n, C);
    for (int64_t s = 0; s < 5; ++s)
      be.matmul_backward(d.maa_t + s * R, gw.maa_w2 + s * R * C, d.maa_m + s * n * C, C,
                         a.maa_t + s * R, 5 * R, m.maa_w2 + s * R * C, n, R, C, WLayout::InOut,
                         false);
    be.act_backward(Act::tanh, d.maa_h, d.maa_t, a.maa_h, n * 5 * R);
    be.matmul_backward(d.xxx, gw.maa_w1, d.maa_h, 5 * R, a.xxx, C, m.maa_w1, n, C, 5 * R,
                       WLayout::InOut, false);
    F* const dmaa_x[1] = {gw.maa_x};
    const A* const dxxx[1] = {d.xxx};
    const F* const maa_x[1] = {w.maa_x};
    be.mix_backward(dx, d.xx, dmaa_x, {}, dxxx, a.xx, maa_x, {}, false, n, C);
  } else {
    be.decay_v6_backward(gw.time_decay, static_cast<A*>(nullptr), d.lw, a.lw, n, Ca);
    const A* douts[4] = {d.xk, d.xv, d.xr, d.xg};
    const F* coefs[4] = {w.mix_k, w.mix_v, w.mix_r, w.mix_g};
    F* dcoefs[4] = {gw.mix_k, gw.mix_v, gw.mix_r, gw.mix_g};
    be.mix_backward(dx, d.xx, dcoefs, {}, douts, a.xx, coefs, {}, true, n, C);
  }
  be.shift_diff_backward(dx, nullptr, d.xx, c.B, c.T, C);
}

#define RWKV_INSTANTIATE(F, A)                                                                  \
  template void time_mix_v5v6_forward<F, A>(const LayerCtx<F, A>&, const BlockWeights<F>&,      \
                                            const BlockWeights<A>&, LayerActs<F, A>&, const A*, \
                                            const BlockState<F>&);                              \
  template void time_mix_v5v6_backward<F, A>(                                                   \
      const LayerCtx<F, A>&, const BlockWeights<F>&, const BlockWeights<A>&, BlockWeights<F>&,  \
      const LayerActs<F, A>&, LayerActs<F, A>&, const A*, A*);
RWKV_INSTANTIATE(float, float)
RWKV_INSTANTIATE(double, double)
RWKV_INSTANTIATE(float, kernels::Bf16)
#undef RWKV_INSTANTIATE

}  // namespace rwkv::model
