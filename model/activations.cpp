#include "model/activations.h"

namespace rwkv::model {

template <typename F>
void plan_layer_acts(const ModelConfig& cfg, const TpRanges& tp, int64_t n, LayerActs<F>& a,
                     Arena<F>& ar) {
  // nC: the block's input width; nA: this rank's attention channels; nF: its FFN columns.
  const int64_t C = cfg.n_embd, nC = n * C, Ca = tp.channels(), nA = n * Ca;
  const int64_t nF = n * tp.ffn();
  const int ver = cfg.version;
  for (F** p : {&a.ln1, &a.att, &a.x_mid, &a.ln2, &a.ffn}) ar.take(*p, nC);
  for (F** p : {&a.ln1_mean, &a.ln1_rstd, &a.ln2_mean, &a.ln2_rstd}) ar.take(*p, n);
  for (F** p : {&a.xx, &a.xr, &a.xk, &a.xv}) ar.take(*p, nC);
  for (F** p : {&a.r, &a.k, &a.v, &a.y}) ar.take(*p, nA);
  ar.take(a.tmp_c, Ca);
  if (ver == 4) {
    ar.take(a.wpos, Ca);
    for (F** p : {&a.sr, &a.o}) ar.take(*p, nA);
  } else {
    const int64_t H = tp.heads();
    ar.take(a.xg, nC);
    for (F** p : {&a.g, &a.lw, &a.og}) ar.take(*p, nA);
    for (F** p : {&a.gn_mean, &a.gn_rstd}) ar.take(*p, n * H);
    if (ver <= 6) ar.take(a.g_h, nA);
    if (ver == 6) {
      const int64_t R5 = 5 * cfg.v6_mix_lora(), D = cfg.v6_decay_lora();
      for (F** p : {&a.xw, &a.xxx}) ar.take(*p, nC);
      ar.take(a.w_z, nA);
      for (F** p : {&a.maa_h, &a.maa_t}) ar.take(*p, n * R5);
      ar.take(a.maa_m, 5 * nC);
      for (F** p : {&a.w_h, &a.w_t}) ar.take(*p, n * D);
    }
    if (ver == 7) {
      const int64_t Dw = cfg.v7_decay_lora(), Da = cfg.v7_aaa_lora();
      const int64_t Dv = cfg.v7_mv_lora(), Dg = cfg.v7_gate_lora();
      for (F** p : {&a.xw, &a.xa}) ar.take(*p, nC);
      for (F** p : {&a.w_z, &a.k_raw, &a.v_raw, &a.vr_z, &a.vr_s, &a.a_z, &a.a, &a.kk_pre, &a.kk,
                    &a.wa, &a.wb})
        ar.take(*p, nA);
      for (F** p : {&a.w_h, &a.w_t}) ar.take(*p, n * Dw);
      ar.take(a.vr_h, n * Dv);
      ar.take(a.a_h, n * Da);
      for (F** p : {&a.g_h, &a.g_t}) ar.take(*p, n * Dg);
      ar.take(a.kk_norm, n * H);
    }
  }
  for (F** p : {&a.cxx, &a.cxk}) ar.take(*p, nC);
  for (F** p : {&a.ck_h, &a.ck}) ar.take(*p, nF);
  if (ver != 7)
    for (F** p : {&a.cxr, &a.ckv, &a.cr_h, &a.cr}) ar.take(*p, nC);
}

template void plan_layer_acts<float>(const ModelConfig&, const TpRanges&, int64_t,
                                     LayerActs<float>&, Arena<float>&);
template void plan_layer_acts<double>(const ModelConfig&, const TpRanges&, int64_t,
                                      LayerActs<double>&, Arena<double>&);

}  // namespace rwkv::model
