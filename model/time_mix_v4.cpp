// RWKV-4 time mix (RWKV-LM RWKV-v4neo/src/model.py RWKV_TimeMix):
//   x* = x * time_mix_* + shift(x) * (1 - time_mix_*)       for k, v, r
//   k, v, r = W* x*;  wkv = WKV4(w = exp(time_decay), u = time_first, k, v)
//   att = Wo(sigmoid(r) * wkv)
#include "model/layers.h"

namespace rwkv::model {

using kernels::Act;
using kernels::WLayout;

template <typename F, typename A>
void time_mix_v4_forward(const LayerCtx<F, A>& c, const BlockWeights<F>& w,
                         const BlockWeights<A>& m, LayerActs<F, A>& a, const A* x,
                         const BlockState<F>& st) {
  auto& be = c.be;
  // Ca: this rank's channels (RWKV-4 splits channels; key / value / receptance are
  // column-parallel, output row-parallel).
  const int64_t n = c.n(), C = c.cfg.n_embd, Ca = c.r.channels();
  be.shift_diff_forward(a.xx, x, st.att_shift_in, c.B, c.T, C);
  if (st.att_shift_out) be.shift_last(st.att_shift_out, x, c.B, c.T, C);
  A* outs[3] = {a.xk, a.xv, a.xr};
  const F* coefs[3] = {w.mix_k, w.mix_v, w.mix_r};
  be.mix_forward(outs, x, a.xx, coefs, {}, true, n, C);
  be.matmul_forward(a.k, Ca, a.xk, C, m.att_k, n, C, Ca, WLayout::OutIn, false);
  be.matmul_forward(a.v, Ca, a.xv, C, m.att_v, n, C, Ca, WLayout::OutIn, false);
  be.matmul_forward(a.r, Ca, a.xr, C, m.att_r, n, C, Ca, WLayout::OutIn, false);
  be.decay_v4_forward(a.wpos, w.time_decay, Ca);
  const int iC = static_cast<int>(Ca);
  be.wkv4_forward(c.B, c.T, iC, 0, iC, a.wpos, w.time_first, a.k, a.v, a.y, st.wkv_in, st.wkv_out);
  be.act_forward(Act::sigmoid, a.sr, a.r, n * Ca);
  be.mul_forward(a.o, a.sr, a.y, n * Ca);
  be.matmul_forward(a.att, C, a.o, Ca, m.att_o, n, Ca, C, WLayout::OutIn, false);
  c.tp.all_reduce_sum(a.att, n * C);
}

template <typename F, typename A>
void time_mix_v4_backward(const LayerCtx<F, A>& c, const BlockWeights<F>& w,
                          const BlockWeights<A>& m, BlockWeights<F>& gw, const LayerActs<F, A>& a,
                          LayerActs<F, A>& d, const A* dout, A* dx) {
  auto& be = c.be;
  const int64_t n = c.n(), C = c.cfg.n_embd, Ca = c.r.channels();
  zero_grads(be, n * Ca, {d.sr, d.y, d.r});
  zero_grads(be, n * C, {d.xx});
  be.matmul_backward(d.o, gw.att_o, dout, C, a.o, Ca, m.att_o, n, Ca, C, WLayout::OutIn, false);
  be.mul_backward(d.sr, d.y, d.o, a.sr, a.y, n * Ca);
  be.act_backward(Act::sigmoid, d.r, d.sr, a.r, n * Ca);
  const int iC = static_cast<int>(Ca);
  // WKV writes d.k, d.v (their only source), d.wpos and du.
  be.wkv4_backward(c.B, c.T, iC, 0, iC, a.wpos, w.time_first, a.k, a.v, d.y, d.wpos, d.tmp_c, d.k,
                   d.v);
  be.accumulate(gw.time_first, d.tmp_c, Ca);
  be.decay_v4_backward(gw.time_decay, d.wpos, w.time_decay, Ca);
  be.matmul_backward(d.xk, gw.att_k, d.k, Ca, a.xk, C, m.att_k, n, C, Ca, WLayout::OutIn, false);
  be.matmul_backward(d.xv, gw.att_v, d.v, Ca, a.xv, C, m.att_v, n, C, Ca, WLayout::OutIn, false);
  be.matmul_backward(d.xr, gw.att_r, d.r, Ca, a.xr, C, m.att_r, n, C, Ca, WLayout::OutIn, false);
  const A* douts[3] = {d.xk, d.xv, d.xr};
  const F* coefs[3] = {w.mix_k, w.mix_v, w.mix_r};
  F* dcoefs[3] = {gw.mix_k, gw.mix_v, gw.mix_r};
  be.mix_backward(dx, d.xx, dcoefs, {}, douts, a.xx, coefs, {}, true, n, C);
  be.shift_diff_backward(dx, nullptr, d.xx, c.B, c.T, C);
}

#define RWKV_INSTANTIATE(F, A)                                                                 \
  template void time_mix_v4_forward<F, A>(const LayerCtx<F, A>&, const BlockWeights<F>&,       \
                                          const BlockWeights<A>&, LayerActs<F, A>&, const A*,  \
                                          const BlockState<F>&);                               \
  template void time_mix_v4_backward<F, A>(                                                    \
      const LayerCtx<F, A>&, const BlockWeights<F>&, const BlockWeights<A>&, BlockWeights<F>&, \
      const LayerActs<F, A>&, LayerActs<F, A>&, const A*, A*);
RWKV_INSTANTIATE(float, float)
RWKV_INSTANTIATE(double, double)
RWKV_INSTANTIATE(float, kernels::Bf16)
#undef RWKV_INSTANTIATE

}  // namespace rwkv::model
