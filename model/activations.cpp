#include "model/activations.h"

namespace rwkv::model {

template <typename F, typename A>
void plan_layer_acts(const ModelConfig& cfg, const TpRanges& tp, int64_t n, LayerActs<F, A>& a,
                     Arena<A>& ar, Arena<F>& far) {
  // nC: the block's input width; nA: this rank's attention channels; nF: its FFN columns.
  const int64_t C = cfg.n_embd, nC = n * C, Ca = tp.channels(), nA = n * Ca;
  const int64_t nF = n * tp.ffn();
  const int ver = cfg.version;
  for (A** p : {&a.ln1, &a.att, &a.x_mid, &a.ln2, &a.ffn}) ar.take(*p, nC);
  for (F** p : {&a.ln1_mean, &a.ln1_rstd, &a.ln2_mean, &a.ln2_rstd}) far.take(*p, n);
  for (A** p : {&a.xx, &a.xr, &a.xk, &a.xv}) ar.take(*p, nC);
  for (A** p : {&a.r, &a.k, &a.v, &a.y}) ar.take(*p, nA);
  far.take(a.tmp_c, Ca);
  if (ver == 4) {
    far.take(a.wpos, Ca);
    for (A** p : {&a.sr, &a.o}) ar.take(*p, nA);
  } else {
    const int64_t H = tp.heads();
    ar.take(a.xg, nC);
    for (A** p : {&a.g, &a.lw, &a.og}) ar.take(*p, nA);
    for (F** p : {&a.gn_mean, &a.gn_rstd}) far.take(*p, n * H);
    if (ver <= 6) ar.take(a.g_h, nA);
    if (ver == 6) {
      const int64_t R5 = 5 * cfg.v6_mix_lora(), D = cfg.v6_decay_lora();
      for (A** p : {&a.xw, &a.xxx}) ar.take(*p, nC);
      ar.take(a.w_z, nA);
      for (A** p : {&a.maa_h, &a.maa_t}) ar.take(*p, n * R5);
      ar.take(a.maa_m, 5 * nC);
      for (A** p : {&a.w_h, &a.w_t}) ar.take(*p, n * D);
    }
    if (ver == 7) {
      const int64_t Dw = cfg.v7_decay_lora(), Da = cfg.v7_aaa_lora();
      const int64_t Dv = cfg.v7_mv_lora(), Dg = cfg.v7_gate_lora();
      for (A** p : {&a.xw, &a.xa}) ar.take(*p, nC);
      for (A** p : {&a.w_z, &a.k_raw, &a.v_raw, &a.vr_z, &a.vr_s, &a.a_z, &a.a, &a.kk_pre, &a.kk,
                    &a.wa, &a.wb})
        ar.take(*p, nA);
      for (A** p : {&a.w_h, &a.w_t}) ar.take(*p, n * Dw);
      ar.take(a.vr_h, n * Dv);
      ar.take(a.a_h, n * Da);
      for (A** p : {&a.g_h, &a.g_t}) ar.take(*p, n * Dg);
      far.take(a.kk_norm, n * H);
    }
  }
  for (A** p : {&a.cxx, &a.cxk}) ar.take(*p, nC);
  for (A** p : {&a.ck_h, &a.ck}) ar.take(*p, nF);
  if (ver != 7)
    for (A** p : {&a.cxr, &a.ckv, &a.cr_h, &a.cr}) ar.take(*p, nC);
}

#define RWKV_INSTANTIATE(F, A)                                                      \
  template void plan_layer_acts<F, A>(const ModelConfig&, const TpRanges&, int64_t, \
                                      LayerActs<F, A>&, Arena<A>&, Arena<F>&);
RWKV_INSTANTIATE(float, float)
RWKV_INSTANTIATE(double, double)
RWKV_INSTANTIATE(float, kernels::Bf16)
#undef RWKV_INSTANTIATE

}  // namespace rwkv::model
