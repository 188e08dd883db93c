// Channel mix (RWKV-LM RWKV_ChannelMix (v4), RWKV_CMix_x052 (v5), x060 (v6), x070 (v7)):
//   v4/v5: x* = x * time_mix_* + shift(x) * (1 - time_mix_*)
//   v6/v7: x* = x + (shift(x) - x) * time_maa_* (v7: x_k)
//   v4-v6: ffn = sigmoid(Wr xr) * Wv act(Wk xk)
//   v7:    ffn = Wv act(Wk xk)
// act = relu^2 (official), or relu with model.ffn_activation: relu. Tensor
// parallelism splits the hidden dim (model/tensor_parallel.h).
#include "model/layers.h"

namespace rwkv::model {

using kernels::Act;
using kernels::WLayout;

namespace {

Act hidden_act(const ModelConfig& cfg) {
  return cfg.ffn_activation == FfnActivation::relu ? Act::relu : Act::relu_sq;
}

}  // namespace

template <typename F, typename A>
void channel_mix_forward(const LayerCtx<F, A>& c, const BlockWeights<F>& w,
                         const BlockWeights<A>& m, LayerActs<F, A>& a, const A* x,
                         const BlockState<F>& st) {
  auto& be = c.be;
  // Fd: this rank's FFN columns (key column-parallel, value row-parallel).
  const int64_t n = c.n(), C = c.cfg.n_embd, Fd = c.r.ffn();
  const bool one_minus = c.cfg.version <= 5;
  be.shift_diff_forward(a.cxx, x, st.ffn_shift_in, c.B, c.T, C);
  if (st.ffn_shift_out) be.shift_last(st.ffn_shift_out, x, c.B, c.T, C);
  // RWKV-4/5/6 mix the key's and the receptance's inputs, RWKV-7 the key's only.
  A* outs[2] = {a.cxk, a.cxr};
  const F* coefs[2] = {w.ffn_mix_k, w.ffn_mix_r};
  be.mix_forward(std::span(outs, c.cfg.version == 7 ? 1 : 2), x, a.cxx,
                 std::span(coefs, c.cfg.version == 7 ? 1 : 2), {}, one_minus, n, C);
  be.matmul_forward(a.ck_h, Fd, a.cxk, C, m.ffn_key, n, C, Fd, WLayout::OutIn, false);
  be.act_forward(hidden_act(c.cfg), a.ck, a.ck_h, n * Fd);
  if (c.cfg.version == 7) {
    if (c.again) return;  // the backward reads a.ck, not a.ffn
    be.matmul_forward(a.ffn, C, a.ck, Fd, m.ffn_value, n, Fd, C, WLayout::OutIn, false);
    c.tp.all_reduce_sum(a.ffn, n * C);
    return;
  }
  be.matmul_forward(a.ckv, C, a.ck, Fd, m.ffn_value, n, Fd, C, WLayout::OutIn, false);
  c.tp.all_reduce_sum(a.ckv, n * C);
  // The gate sigmoid(Wr xr) is computed whole on every rank (a replicated [C, C]
  // product) and multiplies the all-reduced value: still one all-reduce per block.
  be.matmul_forward(a.cr_h, C, a.cxr, C, m.ffn_receptance, n, C, C, WLayout::OutIn, false);
  be.act_forward(Act::sigmoid, a.cr, a.cr_h, n * C);
  if (!c.again) be.mul_forward(a.ffn, a.cr, a.ckv, n * C);
}

template <typename F, typename A>
void channel_mix_backward(const LayerCtx<F, A>& c, const BlockWeights<F>& w,
                          const BlockWeights<A>& m, BlockWeights<F>& gw, const LayerActs<F, A>& a,
                          LayerActs<F, A>& d, const A* dout, A* dx) {
  auto& be = c.be;
  const int64_t n = c.n(), C = c.cfg.n_embd, Fd = c.r.ffn();
  const bool one_minus = c.cfg.version <= 5, v7 = c.cfg.version == 7;
  zero_grads(be, n * Fd, {d.ck_h});
  zero_grads(be, n * C, {d.cxx, v7 ? nullptr : d.cr, v7 ? nullptr : d.ckv, v7 ? nullptr : d.cr_h});
  if (v7) {
    be.matmul_backward(d.ck, gw.ffn_value, dout, C, a.ck, Fd, m.ffn_value, n, Fd, C, WLayout::OutIn,
                       false);
  } else {
    // The gate's path is whole on every rank: its weight gradients are complete here,
    // and only TP rank 0 adds its input gradient, so that the all-reduce of dx counts
    // it once.
    const bool lead = c.tp.where().rank == 0;
    be.mul_backward(d.cr, d.ckv, dout, a.cr, a.ckv, n * C);
    be.act_backward(Act::sigmoid, d.cr_h, d.cr, a.cr_h, n * C);
    be.matmul_backward(d.cxr, gw.ffn_receptance, d.cr_h, C, a.cxr, C, m.ffn_receptance, n, C, C,
                       WLayout::OutIn, false);
    F* const dmix_r[1] = {gw.ffn_mix_r};
    const A* const dxr[1] = {d.cxr};
    const F* const mix_r[1] = {w.ffn_mix_r};
    be.mix_backward(lead ? dx : nullptr, lead ? d.cxx : nullptr, dmix_r, {}, dxr, a.cxx, mix_r, {},
                    one_minus, n, C);
    be.matmul_backward(d.ck, gw.ffn_value, d.ckv, C, a.ck, Fd, m.ffn_value, n, Fd, C,
                       WLayout::OutIn, false);
  }
  be.act_backward(hidden_act(c.cfg), d.ck_h, d.ck, a.ck_h, n * Fd);
  be.matmul_backward(d.cxk, gw.ffn_key, d.ck_h, Fd, a.cxk, C, m.ffn_key, n, C, Fd, WLayout::OutIn,
                     false);
  F* const dmix_k[1] = {gw.ffn_mix_k};
  const A* const dxk[1] = {d.cxk};
  const F* const mix_k[1] = {w.ffn_mix_k};
  be.mix_backward(dx, d.cxx, dmix_k, {}, dxk, a.cxx, mix_k, {}, one_minus, n, C);
  be.shift_diff_backward(dx, nullptr, d.cxx, c.B, c.T, C);
}

#define RWKV_INSTANTIATE(F, A)                                                                 \
  template void channel_mix_forward<F, A>(const LayerCtx<F, A>&, const BlockWeights<F>&,       \
                                          const BlockWeights<A>&, LayerActs<F, A>&, const A*,  \
                                          const BlockState<F>&);                               \
  template void channel_mix_backward<F, A>(                                                    \
      const LayerCtx<F, A>&, const BlockWeights<F>&, const BlockWeights<A>&, BlockWeights<F>&, \
      const LayerActs<F, A>&, LayerActs<F, A>&, const A*, A*);
RWKV_INSTANTIATE(float, float)
RWKV_INSTANTIATE(double, double)
RWKV_INSTANTIATE(float, kernels::Bf16)
#undef RWKV_INSTANTIATE

}  // namespace rwkv::model
