#include "model/weights.h"

#include <string>

#include "kernels/backend.h"

namespace rwkv::model {

namespace {

template <typename F>
F* at(const ParamTable& t, F* base, const std::string& name) {
  const ParamInfo* p = t.find(name);
  return p ? base + p->offset : nullptr;
}

// The first of the names the table has (the same slot under each version's name).
template <typename F>
F* first_of(const ParamTable& t, F* base, const std::string& prefix,
            std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (F* p = at(t, base, prefix + n)) return p;
  return nullptr;
}

}  // namespace

template <typename F>
BlockWeights<F> block_weights(const ParamTable& t, F* base, int layer) {
  const std::string p = "blocks." + std::to_string(layer) + ".";
  const std::string a = p + "att.", f = p + "ffn.";
  BlockWeights<F> w;
  w.ln1_w = at(t, base, p + "ln1.weight");
  w.ln1_b = at(t, base, p + "ln1.bias");
  w.ln2_w = at(t, base, p + "ln2.weight");
  w.ln2_b = at(t, base, p + "ln2.bias");
  w.mix_r = first_of(t, base, a, {"time_mix_r", "time_maa_r", "x_r"});
  w.mix_k = first_of(t, base, a, {"time_mix_k", "time_maa_k", "x_k"});
  w.mix_v = first_of(t, base, a, {"time_mix_v", "time_maa_v", "x_v"});
  w.mix_g = first_of(t, base, a, {"time_mix_g", "time_maa_g", "x_g"});
  w.mix_w = first_of(t, base, a, {"time_maa_w", "x_w"});
  w.mix_a = at(t, base, a + "x_a");
  w.maa_x = at(t, base, a + "time_maa_x");
  w.maa_w1 = at(t, base, a + "time_maa_w1");
  w.maa_w2 = at(t, base, a + "time_maa_w2");
  w.time_decay = at(t, base, a + "time_decay");
  w.time_first = at(t, base, a + "time_first");
  w.time_faaaa = at(t, base, a + "time_faaaa");
  w.td_w1 = at(t, base, a + "time_decay_w1");
  w.td_w2 = at(t, base, a + "time_decay_w2");
  w.w0 = at(t, base, a + "w0");
  w.w1 = at(t, base, a + "w1");
  w.w2 = at(t, base, a + "w2");
  w.a0 = at(t, base, a + "a0");
  w.a1 = at(t, base, a + "a1");
  w.a2 = at(t, base, a + "a2");
  w.v0 = at(t, base, a + "v0");
  w.v1 = at(t, base, a + "v1");
  w.v2 = at(t, base, a + "v2");
  w.g1 = at(t, base, a + "g1");
  w.g2 = at(t, base, a + "g2");
  w.k_k = at(t, base, a + "k_k");
  w.k_a = at(t, base, a + "k_a");
  w.r_k = at(t, base, a + "r_k");
  w.att_r = at(t, base, a + "receptance.weight");
  w.att_k = at(t, base, a + "key.weight");
  w.att_v = at(t, base, a + "value.weight");
  w.att_o = at(t, base, a + "output.weight");
  w.att_g = at(t, base, a + "gate.weight");
  w.lnx_w = at(t, base, a + "ln_x.weight");
  w.lnx_b = at(t, base, a + "ln_x.bias");
  w.ffn_mix_k = first_of(t, base, f, {"time_mix_k", "time_maa_k", "x_k"});
  w.ffn_mix_r = first_of(t, base, f, {"time_mix_r", "time_maa_r"});
  w.ffn_key = at(t, base, f + "key.weight");
  w.ffn_receptance = at(t, base, f + "receptance.weight");
  w.ffn_value = at(t, base, f + "value.weight");
  return w;
}

template <typename F>
TopWeights<F> top_weights(const ParamTable& t, F* base) {
  TopWeights<F> w;
  w.emb = at(t, base, "emb.weight");
  w.ln0_w = at(t, base, "blocks.0.ln0.weight");
  w.ln0_b = at(t, base, "blocks.0.ln0.bias");
  w.ln_out_w = at(t, base, "ln_out.weight");
  w.ln_out_b = at(t, base, "ln_out.bias");
  w.head = at(t, base, "head.weight");
  return w;
}

template BlockWeights<float> block_weights<float>(const ParamTable&, float*, int);
template BlockWeights<double> block_weights<double>(const ParamTable&, double*, int);
template TopWeights<float> top_weights<float>(const ParamTable&, float*);
template TopWeights<double> top_weights<double>(const ParamTable&, double*);
template BlockWeights<kernels::Bf16> block_weights<kernels::Bf16>(const ParamTable&, kernels::Bf16*,
                                                                  int);
template TopWeights<kernels::Bf16> top_weights<kernels::Bf16>(const ParamTable&, kernels::Bf16*);

}  // namespace rwkv::model
