#pragma once
// Typed views into the flat parameter (or gradient) buffer: one pointer per official
// parameter, null where the version has none. The same struct serves parameters and
// their gradients (the same offsets into the other buffer).
#include "model/param_table.h"

namespace rwkv::model {

template <typename F>
struct BlockWeights {
  F *ln1_w = nullptr, *ln1_b = nullptr, *ln2_w = nullptr, *ln2_b = nullptr;
  // Time mix. Token-shift coefficients: v4/v5 time_mix_*, v6 time_maa_*, v7 x_*.
  F *mix_r = nullptr, *mix_k = nullptr, *mix_v = nullptr, *mix_g = nullptr;
  F *mix_w = nullptr, *mix_a = nullptr, *maa_x = nullptr;  // v6 / v7
  F *maa_w1 = nullptr, *maa_w2 = nullptr;                  // v6 [C, 5R], [5, R, C]
  F *time_decay = nullptr, *time_first = nullptr, *time_faaaa = nullptr;
  F *td_w1 = nullptr, *td_w2 = nullptr;  // v6 decay LoRA
  F *w0 = nullptr, *w1 = nullptr, *w2 = nullptr, *a0 = nullptr, *a1 = nullptr, *a2 = nullptr;
  F *v0 = nullptr, *v1 = nullptr, *v2 = nullptr, *g1 = nullptr, *g2 = nullptr;  // v7
  F *k_k = nullptr, *k_a = nullptr, *r_k = nullptr;                             // v7
  F *att_r = nullptr, *att_k = nullptr, *att_v = nullptr, *att_o = nullptr, *att_g = nullptr;
  F *lnx_w = nullptr, *lnx_b = nullptr;
  // Channel mix.
  F *ffn_mix_k = nullptr, *ffn_mix_r = nullptr;
  F *ffn_key = nullptr, *ffn_receptance = nullptr, *ffn_value = nullptr;
};

template <typename F>
struct TopWeights {
  F *emb = nullptr, *ln0_w = nullptr, *ln0_b = nullptr;
  F *ln_out_w = nullptr, *ln_out_b = nullptr, *head = nullptr;
};

template <typename F>
BlockWeights<F> block_weights(const ParamTable& t, F* base, int layer);
template <typename F>
TopWeights<F> top_weights(const ParamTable& t, F* base);

}  // namespace rwkv::model
