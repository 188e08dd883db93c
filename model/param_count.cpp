#include "model/param_count.h"

#include <string>

#include "model/param_table.h"

namespace rwkv::model {

ParamCounts count_params(const ModelConfig& cfg) {
  const ParamTable t = build_param_table(cfg);
  ParamCounts c;
  for (const ParamInfo& p : t.params) {
    if (p.name == "emb.weight")
      c.embedding += p.size;
    else if (p.name.rfind("blocks.", 0) == 0)
      c.blocks += p.size;
    else
      c.head += p.size;
  }
  c.total = t.total;
  return c;
}

namespace {

// Weights that multiply activations: linear layers (*.weight with two dims, not the
// embedding) and the LoRA factors. RWKV-7 layer 0 has v1 / v2 but does not use them.
bool is_matmul(const ParamInfo& p) {
  const std::string& n = p.name;
  if (n == "emb.weight") return false;
  if (n.ends_with(".weight")) return p.shape.size() == 2;
  if (n.rfind("blocks.0.att.v", 0) == 0) return false;
  for (const char* s : {"time_maa_w1", "time_maa_w2", "time_decay_w1", "time_decay_w2", "att.w1",
                        "att.w2", "att.a1", "att.a2", "att.v1", "att.v2", "att.g1", "att.g2"})
    if (n.ends_with(s)) return true;
  return false;
}

}  // namespace

FlopCounts count_flops(const ModelConfig& cfg) {
  const ParamTable t = build_param_table(cfg);
  FlopCounts f;
  for (const ParamInfo& p : t.params)
    if (is_matmul(p)) f.matmul_params += p.size;
  // Per token and layer: v4 about 20 per channel (two max, four exp, the updates);
  // v5/v6 5 N^2 per head (y = r (u k v^T + S): 2 N^2; S = diag(w) S + k v^T: 3 N^2);
  // v7 9 N^2 per head (S a, (S a) b^T, S diag(w), v k^T, S r).
  const int64_t C = cfg.n_embd, N = cfg.head_size;
  const int64_t per_layer = cfg.version == 4 ? 20 * C : (cfg.version == 7 ? 9 : 5) * C * N;
  f.wkv_forward = per_layer * cfg.n_layer;
  f.training_per_token = 6 * f.matmul_params + 3 * f.wkv_forward;
  return f;
}

}  // namespace rwkv::model
