#include "model/param_table.h"

#include <algorithm>
#include <initializer_list>

#include "common/error.h"
#include "common/model_defaults.h"

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

// How tensor parallelism splits parameter `name` (docs/parallelism.md), and along
// which dimension of its official shape.
struct Split {
  TpPart part;
  int dim;
};

bool ends_with_any(const std::string& s, std::initializer_list<const char*> tails) {
  for (const char* t : tails)
    if (s.ends_with(t)) return true;
  return false;
}

Split tp_split(const std::string& name, const std::vector<int64_t>& shape) {
  const int last = static_cast<int>(shape.size()) - 1;
  if (name == "emb.weight" || name == "head.weight") return {TpPart::vocab, 0};
  if (name.find(".ffn.") != std::string::npos) {
    if (name.ends_with("ffn.key.weight")) return {TpPart::ffn, 0};    // column-parallel
    if (name.ends_with("ffn.value.weight")) return {TpPart::ffn, 1};  // row-parallel
    // The v4-v6 receptance gate is computed whole on every rank.
    if (name.ends_with("ffn.receptance.weight") || name.ends_with("_r")) return {TpPart::whole, -1};
    return {TpPart::partial, -1};  // the key's mixing vector
  }
  if (name.find(".att.") == std::string::npos) return {TpPart::whole, -1};  // LayerNorms
  if (name.ends_with("att.output.weight")) return {TpPart::heads, 1};      // row-parallel
  if (ends_with_any(name, {"att.receptance.weight", "att.key.weight", "att.value.weight",
                           "att.gate.weight", "att.ln_x.weight", "att.ln_x.bias"}))
    return {TpPart::heads, 0};  // column-parallel
  // Per-head [H, N] (v5 time_decay, time_faaaa, r_k) or per-channel [C] / [1, 1, C]
  // (v4 time_decay / time_first, v6 time_decay, v7 w0, a0, v0, k_k, k_a) and the LoRA
  // up projections [D, C]: split where the attention channels are.
  if (ends_with_any(name, {"time_decay", "time_first", "time_faaaa", "att.r_k", "att.w0",
                           "att.a0", "att.v0", "att.k_k", "att.k_a"}))
    return {TpPart::heads, shape.size() == 2 ? 0 : last};
  if (ends_with_any(name, {"time_decay_w2", "att.w2", "att.a2", "att.v2", "att.g2"}))
    return {TpPart::heads, 1};
  // Token-shift mixing vectors and the LoRA down projections (time_maa_w1 / w2,
  // time_decay_w1, w1, a1, v1, g1) act on the block's whole input.
  return {TpPart::partial, -1};
}

}  // namespace

int64_t ParamInfo::whole_size() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<int64_t> ParamInfo::local_shape() const {
  std::vector<int64_t> s = shape;
  if (split_dim >= 0) s[static_cast<size_t>(split_dim)] = slab_len;
  return s;
}

TpRanges tp_ranges(const ModelConfig& cfg, TpRank tp) {
  if (tp.size < 1 || tp.rank < 0 || tp.rank >= tp.size)
    throw Error("tensor parallelism: rank " + std::to_string(tp.rank) + " of " +
                std::to_string(tp.size) + " is not a rank of the group");
  const int64_t heads = cfg.version == 4 ? cfg.n_embd : cfg.n_head();
  const int64_t N = cfg.version == 4 ? 1 : cfg.head_size;
  if (heads % tp.size != 0)
    throw Error("parallel.tp (" + std::to_string(tp.size) + ") must divide the " +
                (cfg.version == 4 ? "channel count n_embd" : "head count n_embd/head_size") +
                " (" + std::to_string(heads) + ")");
  if (cfg.dim_ffn % tp.size != 0)
    throw Error("parallel.tp (" + std::to_string(tp.size) + ") must divide model.dim_ffn (" +
                std::to_string(cfg.dim_ffn) + ")");
  const int64_t V = cfg.vocab_size, vslab = vocab_slab_rows(V, tp.size);
  if (!vocab_splits(V, tp.size))
    throw Error("parallel.tp (" + std::to_string(tp.size) + ") is too large for model.vocab_size (" +
                std::to_string(V) + "): slabs of " + std::to_string(vslab) +
                " rows leave the last rank without any");
  TpRanges r;
  r.h0 = heads / tp.size * tp.rank;
  r.h1 = r.h0 + heads / tp.size;
  r.c0 = r.h0 * N;
  r.c1 = r.h1 * N;
  r.f0 = cfg.dim_ffn / tp.size * tp.rank;
  r.f1 = r.f0 + cfg.dim_ffn / tp.size;
  r.v0 = vslab * tp.rank;
  r.v1 = std::min(V, r.v0 + vslab);
  return r;
}

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

ParamTable build_param_table(const ModelConfig& cfg, TpRank tp) {
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

  // This rank's slabs; offsets follow the local sizes.
  const TpRanges r = tp_ranges(cfg, tp);
  ParamTable& t = b.t;
  t.total = 0;
  for (ParamInfo& p : t.params) {
    const Split s = tp_split(p.name, p.shape);
    p.tp = s.part;
    p.split_dim = s.dim;
    if (s.dim >= 0) {
      const int64_t D = p.shape[static_cast<size_t>(s.dim)];
      // Split by heads: dimensions of n_embd by channels, the H of [H, N] by heads.
      int64_t lo = r.h0, hi = r.h1;
      if (s.part == TpPart::vocab) {
        lo = r.v0, hi = r.v1;
      } else if (s.part == TpPart::ffn) {
        lo = r.f0, hi = r.f1;
      } else if (D == cfg.n_embd) {
        lo = r.c0, hi = r.c1;
      }
      p.slab_begin = lo;
      p.slab_len = hi - lo;
      p.size = p.whole_size() / D * p.slab_len;
    } else {
      p.slab_begin = 0;
      p.slab_len = 0;
      p.size = p.whole_size();
    }
    p.offset = t.total;
    t.total += p.size;
  }
  return t;
}

}  // namespace rwkv::model
