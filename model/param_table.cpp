#include "model/param_table.h"

namespace rwkv::model {

namespace {

struct Builder {
  ParamTable t;
  void add(const std::string& name, std::vector<int64_t> shape, double lr_mult = 1.0) {
    ParamInfo p;
    p.name = name;
    p.size = 1;
    for (int64_t d : shape) p.size *= d;
    p.shape = std::move(shape);
    p.offset = t.total;
    p.lr_mult = lr_mult;
    // RWKV-LM: len(p.squeeze().shape) >= 2 and ".weight" in name -> weight decay.
    int dims = 0;
    for (int64_t d : p.shape) dims += d > 1 ? 1 : 0;
    p.wd_mult = (dims >= 2 && name.find(".weight") != std::string::npos) ? 1.0 : 0.0;
    t.total += p.size;
    t.params.push_back(std::move(p));
  }
  void norm(const std::string& prefix, int64_t C, NormKind kind) {
    add(prefix + ".weight", {C});
    if (kind == NormKind::layernorm) add(prefix + ".bias", {C});
  }
};

}  // namespace

const ParamInfo* ParamTable::find(const std::string& name) const {
  for (const ParamInfo& p : params)
    if (p.name == name) return &p;
  return nullptr;
}

std::vector<kernels::AdamWSegment> ParamTable::adamw_segments() const {
  std::vector<kernels::AdamWSegment> out;
  out.reserve(params.size());
  for (const ParamInfo& p : params) out.push_back({p.offset, p.size, p.lr_mult, p.wd_mult});
  return out;
}

ParamTable build_param_table(const ModelConfig& cfg) {
  const int64_t C = cfg.n_embd, V = cfg.vocab_size, Fd = cfg.dim_ffn;
  const int64_t H = cfg.version >= 5 ? cfg.n_head() : 0, N = cfg.head_size;
  Builder b;
  // The projections and ln_x of the v5 and v6 time mix, in their state_dict order.
  const auto add_v5v6_projections = [&](const std::string& att) {
    for (const char* w : {"receptance", "key", "value", "output", "gate"})
      b.add(att + w + ".weight", {C, C});
    b.add(att + "ln_x.weight", {C});
    b.add(att + "ln_x.bias", {C});
  };
  b.add("emb.weight", {V, C});
  for (int l = 0; l < cfg.n_layer; ++l) {
    const std::string p = "blocks." + std::to_string(l) + ".";
    b.norm(p + "ln1", C, cfg.norm);
    b.norm(p + "ln2", C, cfg.norm);
    if (l == 0) b.norm(p + "ln0", C, cfg.norm);
    const std::string a = p + "att.";
    switch (cfg.version) {
      case 4:  // RWKV-v4neo RWKV_TimeMix; lr: time_decay 2x, time_first 3x
        b.add(a + "time_decay", {C}, 2.0);
        b.add(a + "time_first", {C}, 3.0);
        b.add(a + "time_mix_k", {1, 1, C});
        b.add(a + "time_mix_v", {1, 1, C});
        b.add(a + "time_mix_r", {1, 1, C});
        b.add(a + "key.weight", {C, C});
        b.add(a + "value.weight", {C, C});
        b.add(a + "receptance.weight", {C, C});
        b.add(a + "output.weight", {C, C});
        break;
      case 5:  // RWKV-v5 RWKV_Tmix_x052; lr: time_decay 2x
        b.add(a + "time_mix_k", {1, 1, C});
        b.add(a + "time_mix_v", {1, 1, C});
        b.add(a + "time_mix_r", {1, 1, C});
        b.add(a + "time_mix_g", {1, 1, C});
        b.add(a + "time_decay", {H, N}, 2.0);
        b.add(a + "time_faaaa", {H, N});
        add_v5v6_projections(a);
        break;
      case 6: {  // RWKV-v5 RWKV_Tmix_x060; lr: time_decay 2x
        const int64_t R = cfg.v6_mix_lora(), D = cfg.v6_decay_lora();
        for (const char* m : {"x", "w", "k", "v", "r", "g"}) b.add(a + "time_maa_" + m, {1, 1, C});
        b.add(a + "time_maa_w1", {C, 5 * R});
        b.add(a + "time_maa_w2", {5, R, C});
        b.add(a + "time_decay", {1, 1, C}, 2.0);
        b.add(a + "time_decay_w1", {C, D});
        b.add(a + "time_decay_w2", {D, C});
        b.add(a + "time_faaaa", {H, N});
        add_v5v6_projections(a);
        break;
      }
      default: {  // 7: RWKV-v7 train_temp RWKV_Tmix_x070; lr: w0 2x
        const int64_t Dw = cfg.v7_decay_lora(), Da = cfg.v7_aaa_lora();
        const int64_t Dv = cfg.v7_mv_lora(), Dg = cfg.v7_gate_lora();
        for (const char* m : {"x_r", "x_w", "x_k", "x_v", "x_a", "x_g"}) b.add(a + m, {1, 1, C});
        b.add(a + "w0", {1, 1, C}, 2.0);
        b.add(a + "w1", {C, Dw});
        b.add(a + "w2", {Dw, C});
        b.add(a + "a0", {1, 1, C});
        b.add(a + "a1", {C, Da});
        b.add(a + "a2", {Da, C});
        b.add(a + "v0", {1, 1, C});
        b.add(a + "v1", {C, Dv});
        b.add(a + "v2", {Dv, C});
        b.add(a + "g1", {C, Dg});
        b.add(a + "g2", {Dg, C});
        b.add(a + "k_k", {1, 1, C});
        b.add(a + "k_a", {1, 1, C});
        b.add(a + "r_k", {H, N});
        b.add(a + "receptance.weight", {C, C});
        b.add(a + "key.weight", {C, C});
        b.add(a + "value.weight", {C, C});
        b.add(a + "output.weight", {C, C});
        b.add(a + "ln_x.weight", {C});
        b.add(a + "ln_x.bias", {C});
        break;
      }
    }
    const std::string f = p + "ffn.";
    if (cfg.version == 7) {  // RWKV_CMix_x070
      b.add(f + "x_k", {1, 1, C});
      b.add(f + "key.weight", {Fd, C});
      b.add(f + "value.weight", {C, Fd});
    } else {  // RWKV_ChannelMix / RWKV_CMix_x052 / x060
      const std::string mix = cfg.version == 6 ? "time_maa_" : "time_mix_";
      b.add(f + mix + "k", {1, 1, C});
      b.add(f + mix + "r", {1, 1, C});
      b.add(f + "key.weight", {Fd, C});
      b.add(f + "receptance.weight", {C, C});
      b.add(f + "value.weight", {C, Fd});
    }
  }
  b.norm("ln_out", C, cfg.norm);
  b.add("head.weight", {V, C});
  return b.t;
}

}  // namespace rwkv::model
