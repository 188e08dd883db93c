// RWKV-7 time mix (RWKV-LM RWKV-v7/train_temp/src/model.py RWKV_Tmix_x070, the
// "slow pytorch version" comments give the plain formulas):
//   xx = shift(x) - x;  x* = x + xx * x_*                          for r, w, k, v, a, g
//   r = Wr xr;  k = Wk xk;  v = Wv xv
//   lw = -exp(-0.5) * sigmoid(w0 + tanh(xw @ w1) @ w2)              (log decay)
//   v = v + (v_first - v) * sigmoid(v0 + (xv @ v1) @ v2)            (layers > 0)
//   a = sigmoid(a0 + (xa @ a1) @ a2);  g = sigmoid(xg @ g1) @ g2
//   kk = L2normalize_per_head(k * k_k);  k = k * (1 + (a - 1) * k_a)
//   y = WKV7(r, lw, k, v, -kk, kk * a)
//   o = GroupNorm_H(y, eps 64e-5) + (sum over the head of r * k * r_k) * v
//   att = Wo(o * g)
#include "model/layers.h"

namespace rwkv::model {

using kernels::Act;
using kernels::WLayout;

namespace {
constexpr double kLnxEps = 64e-5;
constexpr double kL2Eps = 1e-12;  // F.normalize's default
}  // namespace

template <typename F, typename A>
void time_mix_v7_forward(const LayerCtx<F, A>& c, const BlockWeights<F>& w,
                         const BlockWeights<A>& m, LayerActs<F, A>& a, const A* x,
                         const BlockState<F>& st, const A* v_first) {
  auto& be = c.be;
  // H heads, Ca = H N channels of this rank: receptance, key, value and the LoRA up
  // projections (w2, a2, v2, g2) are column-parallel, output row-parallel; v_first
  // holds this rank's channels.
  const int64_t n = c.n(), C = c.cfg.n_embd, H = c.r.heads(), N = c.cfg.head_size;
  const int64_t Ca = c.r.channels();
  const int64_t Dw = c.cfg.v7_decay_lora(), Da = c.cfg.v7_aaa_lora();
  const int64_t Dv = c.cfg.v7_mv_lora(), Dg = c.cfg.v7_gate_lora();
  be.shift_diff_forward(a.xx, x, st.att_shift_in, c.B, c.T, C);
  if (st.att_shift_out) be.shift_last(st.att_shift_out, x, c.B, c.T, C);
  A* outs[6] = {a.xr, a.xw, a.xk, a.xv, a.xa, a.xg};
  const F* coefs[6] = {w.mix_r, w.mix_w, w.mix_k, w.mix_v, w.mix_a, w.mix_g};
  be.mix_forward(outs, x, a.xx, coefs, {}, false, n, C);

  be.matmul_forward(a.r, Ca, a.xr, C, m.att_r, n, C, Ca, WLayout::OutIn, false);
  be.matmul_forward(a.w_h, Dw, a.xw, C, m.w1, n, C, Dw, WLayout::InOut, false);
  be.act_forward(Act::tanh, a.w_t, a.w_h, n * Dw);
  be.matmul_forward(a.w_z, Ca, a.w_t, Dw, m.w2, n, Dw, Ca, WLayout::InOut, false);
  be.decay_v7_forward(a.lw, w.w0, a.w_z, n, Ca);
  be.matmul_forward(a.k_raw, Ca, a.xk, C, m.att_k, n, C, Ca, WLayout::OutIn, false);
  be.matmul_forward(a.v_raw, Ca, a.xv, C, m.att_v, n, C, Ca, WLayout::OutIn, false);
  if (v_first) {
    be.matmul_forward(a.vr_h, Dv, a.xv, C, m.v1, n, C, Dv, WLayout::InOut, false);
    be.matmul_forward(a.vr_z, Ca, a.vr_h, Dv, m.v2, n, Dv, Ca, WLayout::InOut, false);
    be.bias_sigmoid_forward(a.vr_s, w.v0, a.vr_z, n, Ca);
    be.value_residual_forward(a.v, a.v_raw, v_first, a.vr_s, n * Ca);
  } else {
    be.copy_act(a.v, a.v_raw, n * Ca);
  }
  be.matmul_forward(a.a_h, Da, a.xa, C, m.a1, n, C, Da, WLayout::InOut, false);
  be.matmul_forward(a.a_z, Ca, a.a_h, Da, m.a2, n, Da, Ca, WLayout::InOut, false);
  be.bias_sigmoid_forward(a.a, w.a0, a.a_z, n, Ca);
  be.matmul_forward(a.g_h, Dg, a.xg, C, m.g1, n, C, Dg, WLayout::InOut, false);
  be.act_forward(Act::sigmoid, a.g_t, a.g_h, n * Dg);
  be.matmul_forward(a.g, Ca, a.g_t, Dg, m.g2, n, Dg, Ca, WLayout::InOut, false);

  be.scale_channels_forward(a.kk_pre, a.k_raw, w.k_k, n, Ca);
  be.l2norm_heads_forward(a.kk, a.kk_norm, a.kk_pre, n, H, N, F(kL2Eps));
  be.key_adjust_forward(a.k, a.k_raw, a.a, w.k_a, n, Ca);
  be.wkv7_ab_forward(a.wa, a.wb, a.kk, a.a, n * Ca);
  const int iH = static_cast<int>(H);
  be.wkv7_forward(c.wkv, c.B, c.T, iH, static_cast<int>(N), 0, iH, a.r, a.lw, a.k, a.v, a.wa, a.wb,
                  a.y, st.wkv_in, st.wkv_out);

  // og = (ln_x(y) + bonus) * g: the gated GroupNorm writes ln_x(y) * g, the gated bonus
  // adds bonus * g (o itself is never stored).
  be.groupnorm_forward(a.og, a.gn_mean, a.gn_rstd, a.y, w.lnx_w, w.lnx_b, a.g, n, H, N, F(kLnxEps));
  be.bonus_v7_forward(a.og, a.r, a.k, a.v, w.r_k, a.g, n, H, N);
  be.matmul_forward(a.att, C, a.og, Ca, m.att_o, n, Ca, C, WLayout::OutIn, false);
  c.tp.all_reduce_sum(a.att, n * C);
}

template <typename F, typename A>
void time_mix_v7_backward(const LayerCtx<F, A>& c, const BlockWeights<F>& w,
                          const BlockWeights<A>& m, BlockWeights<F>& gw, const LayerActs<F, A>& a,
                          LayerActs<F, A>& d, const A* dout, A* dx, const A* v_first, A* dv_first) {
  auto& be = c.be;
  const int64_t n = c.n(), C = c.cfg.n_embd, H = c.r.heads(), N = c.cfg.head_size;
  const int64_t Ca = c.r.channels();
  const int64_t Dw = c.cfg.v7_decay_lora(), Da = c.cfg.v7_aaa_lora();
  const int64_t Dv = c.cfg.v7_mv_lora(), Dg = c.cfg.v7_gate_lora();
  zero_grads(be, n * Ca,
             {d.y, d.g, d.kk, d.a, d.k_raw, d.kk_pre, d.a_z, d.v_raw, d.w_z,
              v_first ? d.vr_s : nullptr, v_first ? d.vr_z : nullptr});
  zero_grads(be, n * Dg, {d.g_h});
  zero_grads(be, n * Dw, {d.w_h});
  zero_grads(be, n * C, {d.xx});
  be.matmul_backward(d.og, gw.att_o, dout, C, a.og, Ca, m.att_o, n, Ca, C, WLayout::OutIn, false);
  be.groupnorm_backward(d.y, gw.lnx_w, gw.lnx_b, d.g, d.og, a.y, w.lnx_w, w.lnx_b, a.g, a.gn_mean,
                        a.gn_rstd, n, H, N);
  // WKV overwrites d.r, d.lw, d.k, d.v, d.wa, d.wb, so it runs before anything else
  // adds to them.
  const int iH = static_cast<int>(H);
  be.wkv7_backward(c.wkv, c.B, c.T, iH, static_cast<int>(N), 0, iH, a.r, a.lw, a.k, a.v, a.wa, a.wb,
                   d.y, d.r, d.lw, d.k, d.v, d.wa, d.wb);
  be.bonus_v7_backward(d.r, d.k, d.v, gw.r_k, d.g, d.og, a.r, a.k, a.v, w.r_k, a.g, n, H, N);
  be.wkv7_ab_backward(d.kk, d.a, d.wa, d.wb, a.kk, a.a, n * Ca);
  be.key_adjust_backward(d.k_raw, d.a, gw.k_a, d.k, a.k_raw, a.a, w.k_a, n, Ca);
  be.l2norm_heads_backward(d.kk_pre, d.kk, a.kk, a.kk_norm, a.kk_pre, n, H, N, F(kL2Eps));
  be.scale_channels_backward(d.k_raw, gw.k_k, d.kk_pre, a.k_raw, w.k_k, n, Ca);

  be.matmul_backward(d.g_t, gw.g2, d.g, Ca, a.g_t, Dg, m.g2, n, Dg, Ca, WLayout::InOut, false);
  be.act_backward(Act::sigmoid, d.g_h, d.g_t, a.g_h, n * Dg);
  be.matmul_backward(d.xg, gw.g1, d.g_h, Dg, a.xg, C, m.g1, n, C, Dg, WLayout::InOut, false);
  be.bias_sigmoid_backward(gw.a0, d.a_z, d.a, a.a, n, Ca);
  be.matmul_backward(d.a_h, gw.a2, d.a_z, Ca, a.a_h, Da, m.a2, n, Da, Ca, WLayout::InOut, false);
  be.matmul_backward(d.xa, gw.a1, d.a_h, Da, a.xa, C, m.a1, n, C, Da, WLayout::InOut, false);
  if (v_first) {
    be.value_residual_backward(d.v_raw, dv_first, d.vr_s, d.v, a.v_raw, v_first, a.vr_s, n * Ca);
    be.bias_sigmoid_backward(gw.v0, d.vr_z, d.vr_s, a.vr_s, n, Ca);
    be.matmul_backward(d.vr_h, gw.v2, d.vr_z, Ca, a.vr_h, Dv, m.v2, n, Dv, Ca, WLayout::InOut,
                       false);
    be.matmul_backward(d.xv, gw.v1, d.vr_h, Dv, a.xv, C, m.v1, n, C, Dv, WLayout::InOut, false);
  } else {
    // Layer 0: v is v_first, whose gradient the later layers have collected.
    be.accumulate_act(d.v_raw, d.v, n * Ca);
    be.accumulate_act(d.v_raw, dv_first, n * Ca);
  }
  // With v_first, d.xv already holds the value-residual LoRA's term.
  be.matmul_backward(d.xv, gw.att_v, d.v_raw, Ca, a.xv, C, m.att_v, n, C, Ca, WLayout::OutIn,
                     v_first != nullptr);
  be.matmul_backward(d.xk, gw.att_k, d.k_raw, Ca, a.xk, C, m.att_k, n, C, Ca, WLayout::OutIn,
                     false);
  be.decay_v7_backward(gw.w0, d.w_z, d.lw, w.w0, a.w_z, n, Ca);
  be.matmul_backward(d.w_t, gw.w2, d.w_z, Ca, a.w_t, Dw, m.w2, n, Dw, Ca, WLayout::InOut, false);
  be.act_backward(Act::tanh, d.w_h, d.w_t, a.w_h, n * Dw);
  be.matmul_backward(d.xw, gw.w1, d.w_h, Dw, a.xw, C, m.w1, n, C, Dw, WLayout::InOut, false);
  be.matmul_backward(d.xr, gw.att_r, d.r, Ca, a.xr, C, m.att_r, n, C, Ca, WLayout::OutIn, false);

  const A* douts[6] = {d.xr, d.xw, d.xk, d.xv, d.xa, d.xg};
  const F* coefs[6] = {w.mix_r, w.mix_w, w.mix_k, w.mix_v, w.mix_a, w.mix_g};
  F* dcoefs[6] = {gw.mix_r, gw.mix_w, gw.mix_k, gw.mix_v, gw.mix_a, gw.mix_g};
  be.mix_backward(dx, d.xx, dcoefs, {}, douts, a.xx, coefs, {}, false, n, C);
  be.shift_diff_backward(dx, nullptr, d.xx, c.B, c.T, C);
}

#define RWKV_INSTANTIATE(F, A)                                                                 \
  template void time_mix_v7_forward<F, A>(const LayerCtx<F, A>&, const BlockWeights<F>&,       \
                                          const BlockWeights<A>&, LayerActs<F, A>&, const A*,  \
                                          const BlockState<F>&, const A*);                     \
  template void time_mix_v7_backward<F, A>(                                                    \
      const LayerCtx<F, A>&, const BlockWeights<F>&, const BlockWeights<A>&, BlockWeights<F>&, \
      const LayerActs<F, A>&, LayerActs<F, A>&, const A*, A*, const A*, A*);
RWKV_INSTANTIATE(float, float)
RWKV_INSTANTIATE(double, double)
RWKV_INSTANTIATE(float, kernels::Bf16)
#undef RWKV_INSTANTIATE

}  // namespace rwkv::model
