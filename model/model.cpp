#include "model/model.h"

#include <algorithm>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>

#include "common/error.h"
#include "model/init.h"
#include "model/layers.h"

namespace rwkv::model {

namespace {

constexpr double kNormEps = 1e-5;  // nn.LayerNorm default, used by RWKV-LM

void check_config(const ModelConfig& c) {
  std::ostringstream err;
  if (c.version < 4 || c.version > 7)
    err << "model.version must be 4..7, got " << c.version;
  else if (c.n_layer < 1 || c.n_embd < 1 || c.vocab_size < 2 || c.dim_ffn < 1)
    err << "model sizes must be positive (n_layer " << c.n_layer << ", n_embd " << c.n_embd
        << ", vocab_size " << c.vocab_size << ", dim_ffn " << c.dim_ffn << ")";
  else if (c.version >= 5 && (c.head_size < 2 || c.n_embd % c.head_size != 0))
    err << "model.n_embd (" << c.n_embd << ") must be a multiple of model.head_size ("
        << c.head_size << ")";
  if (!err.str().empty()) throw Error(err.str());
}

// Rows of logits a recomputing training forward holds at once: about one [n, C]
// activation's worth (all n rows when the vocabulary slab Vl is no wider than C).
int64_t loss_chunk_rows(int64_t n, int64_t C, int64_t Vl) {
  return std::clamp<int64_t>((n * C + Vl - 1) / Vl, 1, n);
}

// Floats of one batch row's WKV state in one layer.
int64_t wkv_state_size(const ModelConfig& c) {
  if (c.version == 4) return static_cast<int64_t>(c.n_embd) * 3;
  return static_cast<int64_t>(c.n_head()) * c.head_size * c.head_size;
}

// The group of the blocks' collectives, which are on activations: tp itself when A = F;
// else `act`, the same group's sum of A tensors (a rank alone needs none).
template <typename F, typename A>
TpAllReduce<A>& activation_group(TpComm<F>& tp, TpAllReduce<A>* act, TpSolo<A>& solo) {
  if constexpr (std::is_same_v<F, A>) {
    return tp;
  } else {
    const TpRank g = tp.where();
    if (act) {
      const TpRank a = act->where();
      if (a.rank != g.rank || a.size != g.size)
        throw Error("the activations' tensor-parallel group (rank " + std::to_string(a.rank) +
                    " of " + std::to_string(a.size) + ") is not the model's (rank " +
                    std::to_string(g.rank) + " of " + std::to_string(g.size) + ")");
      return *act;
    }
    if (g.size > 1)
      throw Error("a model with bf16 activations split over " + std::to_string(g.size) +
                  " tensor-parallel ranks needs its group's bf16 all-reduce");
    return solo;
  }
}

}  // namespace

template <typename F, typename A>
Model<F, A>::Model(const ModelConfig& c, kernels::Backend<F, A>& backend, ModelOptions o,
                   TpComm<F>* g, TpAllReduce<A>* g_act)
    : cfg(c),
      opts(o),
      tp(g ? *g : solo_),
      tp_act(activation_group(tp, g_act, solo_act_)),
      ranges((check_config(c), tp_ranges(c, tp.where()))),
      table(build_param_table(c, tp.where())),
      be(backend) {
  params = be.alloc(table.total);
  grads = be.alloc(table.total);
  if constexpr (std::is_same_v<F, A>)
    params_act = params;
  else
    params_act = be.alloc_act(table.total);
  for (int l = 0; l < cfg.n_layer; ++l) {
    bw_.push_back(block_weights(table, params, l));
    bg_.push_back(block_weights(table, grads, l));
    bm_.push_back(block_weights(table, params_act, l));
  }
  tw_ = top_weights(table, params);
  tg_ = top_weights(table, grads);
  tm_ = top_weights(table, params_act);
  if (tp.where().size > 1) {
    partial_.resize(static_cast<size_t>(cfg.n_layer));
    int64_t packed = 0, most = 0;
    for (const ParamInfo& p : table.params) {
      if (p.tp != TpPart::partial) continue;
      // Only blocks have partial gradients: "blocks.{l}.".
      const size_t l = std::stoul(p.name.substr(7, p.name.find('.', 7) - 7));
      partial_[l].push_back({p.offset, p.size, packed});
      packed += p.size;
    }
    for (const auto& list : partial_) {
      int64_t sum = 0;
      for (const PartialGrad& g : list) sum += g.size;
      most = std::max(most, sum);
    }
    partial_stash_ = be.alloc(std::max<int64_t>(packed, 1));
    partial_buf_ = be.alloc(std::max<int64_t>(most, 1));
  }
}

template <typename F, typename A>
Model<F, A>::~Model() {
  free_acts(acts_);
  free_acts(eval_);
  free_acts(step_);
  if constexpr (!std::is_same_v<F, A>) be.free_act(params_act);
  be.free(params);
  be.free(grads);
  if (partial_buf_) be.free(partial_buf_);
  if (partial_stash_) be.free(partial_stash_);
  if (adam_m_) be.free(adam_m_);
  if (adam_v_) be.free(adam_v_);
}

template <typename F, typename A>
void Model<F, A>::init(uint64_t seed) {
  std::vector<F> host(static_cast<size_t>(table.total));
  init_params(cfg, table, seed, host.data());
  be.upload(params, host.data(), table.total);
  round_params();
}

template <typename F, typename A>
void Model<F, A>::round_params() {
  if constexpr (!std::is_same_v<F, A>) be.round_act(params_act, params, table.total);
}

template <typename F, typename A>
void Model<F, A>::set_params(std::span<const F> host) {
  if (static_cast<int64_t>(host.size()) != table.total)
    throw Error("set_params: got " + std::to_string(host.size()) + " values, the model has " +
                std::to_string(table.total));
  be.upload(params, host.data(), table.total);
  round_params();
}

template <typename F, typename A>
std::vector<F> Model<F, A>::get_params() const {
  std::vector<F> host(static_cast<size_t>(table.total));
  be.download(host.data(), params, table.total);
  return host;
}

template <typename F, typename A>
std::vector<F> Model<F, A>::get_grads() const {
  std::vector<F> host(static_cast<size_t>(table.total));
  be.download(host.data(), grads, table.total);
  return host;
}

template <typename F, typename A>
void Model<F, A>::require_whole_vocab(const char* what) const {
  if (tp.where().size > 1)
    throw Error(std::string(what) + ": inference needs the whole model on one rank; this model is "
                "split over " + std::to_string(tp.where().size) + " tensor-parallel ranks");
}

template <typename F, typename A>
void Model<F, A>::stash_partial_grads() {
  for (const auto& list : partial_)
    for (const PartialGrad& g : list) {
      be.copy(partial_stash_ + g.packed, grads + g.offset, g.size);
      be.zero(grads + g.offset, g.size);
    }
}

template <typename F, typename A>
void Model<F, A>::reduce_partial_grads(int64_t l) {
  if (partial_.empty()) return;
  const auto& list = partial_[static_cast<size_t>(l)];
  const int64_t base = list.empty() ? 0 : list.front().packed;
  for (const PartialGrad& g : list) be.copy(partial_buf_ + g.packed - base, grads + g.offset, g.size);
  tp.all_reduce_sum(partial_buf_, list.empty() ? 0 : list.back().packed + list.back().size - base);
  for (const PartialGrad& g : list) {
    be.copy(grads + g.offset, partial_buf_ + g.packed - base, g.size);
    be.accumulate(grads + g.offset, partial_stash_ + g.packed, g.size);
  }
}

template <typename F, typename A>
void Model<F, A>::free_acts(std::unique_ptr<Acts>& acts) {
  if (!acts) return;
  be.free_act(acts->base);
  be.free(acts->fbase);
  if (acts->grad_base) be.free_act(acts->grad_base);
  if (acts->grad_fbase) be.free(acts->grad_fbase);
  be.free_ids(acts->idx);
  be.free_ids(acts->targets);
  be.free_ids(acts->ce_arg);
  acts.reset();
}

template <typename F, typename A>
void Model<F, A>::plan_acts(const ModelConfig& cfg, const TpRanges& ranges, bool recompute,
                            Acts& acts, Arena<A>& ar, Arena<F>& far, Arena<A>& grad_ar,
                            Arena<F>& grad_far) {
  const int64_t n = static_cast<int64_t>(acts.B) * acts.T, C = cfg.n_embd, V = ranges.vocab();
  const int64_t L = cfg.n_layer, W = wkv_state_size(cfg);
  acts.one_slot = !acts.train() || recompute;
  acts.layers.assign(acts.one_slot ? 1 : static_cast<size_t>(L), LayerActs<F, A>{});
  ar.take(acts.emb, n * C);
  far.take(acts.ln0_mean, n);
  far.take(acts.ln0_rstd, n);
  // A backward reads every block's input; a forward alone needs two at a time.
  ar.take(acts.res, (acts.train() ? L + 1 : 2) * n * C);
  for (auto& la : acts.layers) plan_layer_acts(cfg, ranges, n, la, ar, far);
  if (acts.one_slot && cfg.version == 7 && L > 1) ar.take(acts.v_first, n * ranges.channels());
  ar.take(acts.lnout, n * C);
  far.take(acts.lnout_mean, n);
  far.take(acts.lnout_rstd, n);
  const bool chunked = acts.use == Use::loss || (acts.train() && recompute);
  acts.ce_rows = chunked ? loss_chunk_rows(n, C, V) : n;
  ar.take(acts.logits, acts.ce_rows * V);
  far.take(acts.losses, n);
  far.take(acts.ce_max, n);
  far.take(acts.ce_sums, 2 * n);
  if (acts.train()) {
    for (A** p : {&acts.dres_a, &acts.dres_b, &acts.demb, &acts.dlnout, &acts.dv_first})
      ar.take(*p, n * C);
    plan_layer_acts(cfg, ranges, n, acts.dlayer, grad_ar, grad_far);
  }
  if (acts.stateful()) {
    for (F** p : {&acts.att_shift_in, &acts.att_shift_out, &acts.ffn_shift_in, &acts.ffn_shift_out})
      far.take(*p, L * acts.B * C);
    far.take(acts.wkv_in, L * acts.B * W);
    far.take(acts.wkv_out, L * acts.B * W);
  }
}

template <typename F, typename A>
void Model<F, A>::ensure_acts(std::unique_ptr<Acts>& acts, int B, int T, Use use) {
  if (acts && acts->B == B && acts->T == T && acts->use == use) return;
  free_acts(acts);
  acts = std::make_unique<Acts>();
  acts->B = B;
  acts->T = T;
  acts->use = use;
  Arena<A> ar, grad_ar;
  Arena<F> far, grad_far;
  plan_acts(cfg, ranges, opts.recompute, *acts, ar, far, grad_ar, grad_far);
  const auto alloc_act = [this](int64_t n) { return be.alloc_act(n); };
  const auto alloc = [this](int64_t n) { return be.alloc(n); };
  acts->base = ar.commit(alloc_act);
  acts->fbase = far.commit(alloc);
  if (acts->train()) {
    acts->grad_base = grad_ar.commit(alloc_act);
    acts->grad_fbase = grad_far.commit(alloc);
  }
  const int64_t n = static_cast<int64_t>(B) * T;
  acts->idx = be.alloc_ids(n);
  acts->targets = be.alloc_ids(n);
  acts->ce_arg = be.alloc_ids(n);
}

template <typename F, typename A>
int64_t Model<F, A>::activation_bytes(const ModelConfig& cfg, const TpRanges& ranges,
                                      bool recompute, int B, int T) {
  Acts acts;
  acts.B = B;
  acts.T = T;
  acts.use = Use::train;
  Arena<A> ar, grad_ar;
  Arena<F> far, grad_far;
  plan_acts(cfg, ranges, recompute, acts, ar, far, grad_ar, grad_far);
  const int64_t ids = 3 * static_cast<int64_t>(B) * T;  // idx, targets, ce_arg
  return (ar.total + grad_ar.total) * static_cast<int64_t>(sizeof(A)) +
         (far.total + grad_far.total) * static_cast<int64_t>(sizeof(F)) +
         ids * static_cast<int64_t>(sizeof(int32_t));
}

template <typename F, typename A>
void Model<F, A>::check_tokens(std::span<const int32_t> ids, int B, int T, const char* what) const {
  if (static_cast<int64_t>(ids.size()) != static_cast<int64_t>(B) * T) {
    std::ostringstream m;
    m << what << ": got " << ids.size() << " token ids for B=" << B << " x T=" << T;
    throw Error(m.str());
  }
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) {
      const int32_t id = ids[static_cast<size_t>(b) * T + t];
      if (id < 0 || id >= cfg.vocab_size) {
        std::ostringstream m;
        m << what << ": token id " << id << " at position (batch " << b << ", t " << t
          << ") is outside the vocabulary [0, " << cfg.vocab_size << ")";
        throw Error(m.str());
      }
    }
}

template <typename F, typename A>
void Model<F, A>::norm_forward(A* out, F* mean, F* rstd, const A* x, const F* w, const F* b,
                               int64_t n) {
  if (cfg.norm == NormKind::rmsnorm)
    be.rmsnorm_forward(out, rstd, x, w, n, cfg.n_embd, F(kNormEps));
  else
    be.layernorm_forward(out, mean, rstd, x, w, b, n, cfg.n_embd, F(kNormEps));
}

template <typename F, typename A>
void Model<F, A>::norm_backward(A* dx, F* dw, F* db, const A* dout, const A* x, const F* w,
                                const F* mean, const F* rstd, int64_t n) {
  if (cfg.norm == NormKind::rmsnorm)
    be.rmsnorm_backward(dx, dw, dout, x, w, rstd, n, cfg.n_embd);
  else
    be.layernorm_backward(dx, dw, db, dout, x, w, mean, rstd, n, cfg.n_embd);
}

template <typename F, typename A>
void Model<F, A>::block_forward(Acts& acts, int64_t l, bool again) {
  const int64_t n = static_cast<int64_t>(acts.B) * acts.T, nC = n * cfg.n_embd;
  const int64_t BC = static_cast<int64_t>(acts.B) * cfg.n_embd, BW = acts.B * wkv_state_size(cfg);
  const LayerCtx<F, A> ctx{be, cfg, tp_act, ranges, acts.B, acts.T, opts.wkv, again};
  const A* x = residual(acts, l);
  LayerActs<F, A>& a = block_acts(acts, l);
  const BlockWeights<F>& w = bw_[static_cast<size_t>(l)];
  const BlockWeights<A>& m = bm_[static_cast<size_t>(l)];
  BlockState<F> st;
  if (acts.stateful())
    st = {acts.att_shift_in + l * BC,  acts.att_shift_out + l * BC, acts.ffn_shift_in + l * BC,
          acts.ffn_shift_out + l * BC, acts.wkv_in + l * BW,        acts.wkv_out + l * BW};
  norm_forward(a.ln1, a.ln1_mean, a.ln1_rstd, x, w.ln1_w, w.ln1_b, n);
  if (cfg.version == 4)
    time_mix_v4_forward(ctx, w, m, a, a.ln1, st);
  else if (cfg.version == 7)
    time_mix_v7_forward(ctx, w, m, a, a.ln1, st, l == 0 ? nullptr : v_first(acts));
  else
    time_mix_v5v6_forward(ctx, w, m, a, a.ln1, st);
  be.add_forward(a.x_mid, x, a.att, nC);
  norm_forward(a.ln2, a.ln2_mean, a.ln2_rstd, a.x_mid, w.ln2_w, w.ln2_b, n);
  channel_mix_forward(ctx, w, m, a, a.ln2, st);
  if (again) return;
  be.add_forward(residual(acts, l + 1), a.x_mid, a.ffn, nC);
  if (l == 0 && acts.v_first) be.copy_act(acts.v_first, a.v, n * ranges.channels());
}

template <typename F, typename A>
void Model<F, A>::run_forward(Acts& acts) {
  const int64_t n = static_cast<int64_t>(acts.B) * acts.T, C = cfg.n_embd, nC = n * C;
  // Vocab-parallel embedding: each rank fills the rows of its vocabulary slab.
  be.embedding_forward(acts.emb, acts.idx, tw_.emb, n, C, ranges.v0, ranges.v1);
  tp_act.all_reduce_sum(acts.emb, nC);
  norm_forward(residual(acts, 0), acts.ln0_mean, acts.ln0_rstd, acts.emb, tw_.ln0_w, tw_.ln0_b, n);
  for (int l = 0; l < cfg.n_layer; ++l) block_forward(acts, l, false);
  norm_forward(acts.lnout, acts.lnout_mean, acts.lnout_rstd, residual(acts, cfg.n_layer),
               tw_.ln_out_w, tw_.ln_out_b, n);
}

template <typename F, typename A>
void Model<F, A>::head_forward(Acts& acts, int64_t r0, int64_t rows) {
  const int64_t C = cfg.n_embd, Vl = ranges.vocab();
  be.matmul_forward(acts.logits, Vl, acts.lnout + r0 * C, C, tm_.head, rows, C, Vl,
                    kernels::WLayout::OutIn, false);
}

template <typename F, typename A>
void Model<F, A>::loss_forward(Acts& acts) {
  // Vocab-parallel cross-entropy (Megatron-LM vocab_parallel_cross_entropy): the row
  // max and its column, then the sum of exps and the target's logit, reduced over the
  // group; the whole logits never exist on one rank. With acts.ce_rows < n, chunk by chunk
  // of rows: each chunk's logits are reduced to these row statistics and dropped (a
  // recomputing backward computes them again).
  const int64_t n = static_cast<int64_t>(acts.B) * acts.T, Vl = ranges.vocab();
  for (int64_t r0 = 0; r0 < n; r0 += acts.ce_rows) {
    const int64_t rows = std::min(acts.ce_rows, n - r0);
    head_forward(acts, r0, rows);
    be.ce_local_max(acts.ce_max + r0, acts.ce_arg + r0, acts.logits, rows, Vl, ranges.v0);
    tp.all_reduce_maxloc(acts.ce_max + r0, acts.ce_arg + r0, rows);
    be.ce_local_sums(acts.ce_sums + r0, acts.ce_sums + n + r0, acts.logits, acts.targets + r0,
                     acts.ce_max + r0, rows, Vl, ranges.v0);
  }
  tp.all_reduce_sum(acts.ce_sums, 2 * n);
  be.ce_loss(acts.losses, acts.ce_max, acts.ce_sums, acts.ce_sums + n, n);
}

template <typename F, typename A>
std::vector<double> Model<F, A>::losses_of(std::unique_ptr<Acts>& acts, Use use,
                                           std::span<const int32_t> idx,
                                           std::span<const int32_t> targets, int B, int T) {
  if (T > cfg.ctx_len)  // RWKV-LM asserts T <= ctx_len in training too
    throw Error("forward: sequence length T=" + std::to_string(T) +
                " is longer than model.ctx_len (" + std::to_string(cfg.ctx_len) + ")");
  check_tokens(idx, B, T, "forward (inputs)");
  check_tokens(targets, B, T, "forward (targets)");
  ensure_acts(acts, B, T, use);
  const int64_t n = static_cast<int64_t>(B) * T;
  be.upload_ids(acts->idx, idx.data(), n);
  be.upload_ids(acts->targets, targets.data(), n);
  run_forward(*acts);
  loss_forward(*acts);
  std::vector<F> losses(static_cast<size_t>(n));
  be.download(losses.data(), acts->losses, n);
  return {losses.begin(), losses.end()};
}

template <typename F, typename A>
double Model<F, A>::forward(std::span<const int32_t> idx, std::span<const int32_t> targets, int B,
                            int T) {
  double sum = 0;
  for (double x : losses_of(acts_, Use::train, idx, targets, B, T)) sum += x;
  return sum / (static_cast<double>(B) * T);
}

template <typename F, typename A>
std::vector<double> Model<F, A>::row_losses(std::span<const int32_t> idx,
                                            std::span<const int32_t> targets, int B, int T) {
  const std::vector<double> losses = losses_of(eval_, Use::loss, idx, targets, B, T);
  std::vector<double> rows(static_cast<size_t>(B), 0.0);
  for (size_t i = 0; i < losses.size(); ++i) rows[i / static_cast<size_t>(T)] += losses[i];
  for (double& r : rows) r /= T;
  return rows;
}

namespace {

// The step of backward after which a parameter's gradient is final: 0 = head and
// ln_out, L - l = block l, L + 1 = the end (emb and blocks.0.ln0, written after the
// blocks).
int backward_stage(const std::string& name, int64_t L) {
  if (name.starts_with("head.") || name.starts_with("ln_out.")) return 0;
  if (name.starts_with("blocks.0.ln0.")) return static_cast<int>(L + 1);
  if (name.starts_with("blocks.")) {
    const int64_t l = std::stoll(name.substr(7, name.find('.', 7) - 7));
    return static_cast<int>(L - l);
  }
  return static_cast<int>(L + 1);
}

// For each stage s = 0 .. L + 1: the smallest offset from which every parameter's
// stage is <= s (walking back from the last parameter).
std::vector<int64_t> ready_offsets(const ParamTable& t, int64_t L) {
  std::vector<int64_t> out(static_cast<size_t>(L + 2));
  for (size_t s = 0; s < out.size(); ++s) {
    int64_t from = t.total;
    for (auto it = t.params.rbegin(); it != t.params.rend(); ++it) {
      if (backward_stage(it->name, L) > static_cast<int>(s)) break;
      from = it->offset;
    }
    out[s] = from;
  }
  return out;
}

}  // namespace

template <typename F, typename A>
void Model<F, A>::backward(const std::function<void(int64_t ready_from)>& on_ready) {
  if (!acts_ || !acts_->train()) throw Error("Model::backward called without a training forward");
  const std::vector<int64_t> ready =
      on_ready ? ready_offsets(table, cfg.n_layer) : std::vector<int64_t>{};
  Acts& acts = *acts_;
  const int64_t n = static_cast<int64_t>(acts.B) * acts.T, C = cfg.n_embd, nC = n * C;
  const int64_t V = ranges.vocab(), L = cfg.n_layer;
  const LayerCtx<F, A> ctx{be, cfg, tp_act, ranges, acts.B, acts.T, opts.wkv};
  // loss = mean over n positions; L2Wrap factor 1e-4 / (B*T) (RWKV-LM L2Wrap).
  const F scale = F(1) / static_cast<F>(n);
  const F l2wrap = opts.l2wrap ? F(1e-4) / static_cast<F>(n) : F(0);
  // The gradient overwrites the logits (kernels/backend.h): dlogits below are acts.logits.
  // Chunks of rows last to first (one chunk unless recomputing): the last chunk's logits
  // are still there from the forward, the others are computed again.
  A* dlogits = acts.logits;
  const int64_t last = (n - 1) / acts.ce_rows * acts.ce_rows;
  for (int64_t r0 = last; r0 >= 0; r0 -= acts.ce_rows) {
    const int64_t rows = std::min(acts.ce_rows, n - r0);
    if (r0 != last) head_forward(acts, r0, rows);
    be.ce_backward(dlogits, acts.logits, acts.targets + r0, acts.ce_max + r0, acts.ce_sums + r0,
                   acts.ce_arg + r0, rows, V, ranges.v0, scale, l2wrap);
    be.matmul_backward(acts.dlnout + r0 * C, tg_.head, dlogits, V, acts.lnout + r0 * C, C, tm_.head,
                       rows, C, V, kernels::WLayout::OutIn, false);
  }
  tp_act.all_reduce_sum(acts.dlnout, nC);  // conjugate of the column-parallel head
  A* dnext = acts.dres_a;  // gradient of the residual stream after the current block
  A* dcur = acts.dres_b;
  be.zero_act(dnext, nC);
  norm_backward(dnext, tg_.ln_out_w, tg_.ln_out_b, acts.dlnout, residual(acts, L), tw_.ln_out_w,
                acts.lnout_mean, acts.lnout_rstd, n);
  if (on_ready) on_ready(ready[0]);
  be.zero_act(acts.dv_first, nC);
  stash_partial_grads();
  LayerActs<F, A>& d = acts.dlayer;
  for (int64_t l = L - 1; l >= 0; --l) {
    // Recomputation: the slot still holds the last block's activations; the others run
    // their forward again (it writes the WKV forwards' checkpoints too, which the
    // backends keep per r buffer: the slot's).
    if (acts.one_slot && l != L - 1) block_forward(acts, l, true);
    const LayerActs<F, A>& a = block_acts(acts, l);
    const BlockWeights<F>& w = bw_[static_cast<size_t>(l)];
    const BlockWeights<A>& m = bm_[static_cast<size_t>(l)];
    BlockWeights<F>& g = bg_[static_cast<size_t>(l)];
    const A* x = residual(acts, l);
    // The block's inputs' gradients: the layers add into dx (model/layers.h).
    zero_grads(be, nC, {dcur, d.x_mid, d.ln1, d.ln2});
    channel_mix_backward(ctx, w, m, g, a, d, dnext, d.ln2);
    tp_act.all_reduce_sum(d.ln2, nC);  // conjugate of the channel mix's forward all-reduce
    norm_backward(d.x_mid, g.ln2_w, g.ln2_b, d.ln2, a.x_mid, w.ln2_w, a.ln2_mean, a.ln2_rstd, n);
    be.accumulate_act(d.x_mid, dnext, nC);
    if (cfg.version == 4)
      time_mix_v4_backward(ctx, w, m, g, a, d, d.x_mid, d.ln1);
    else if (cfg.version == 7)
      time_mix_v7_backward(ctx, w, m, g, a, d, d.x_mid, d.ln1, l == 0 ? nullptr : v_first(acts),
                           acts.dv_first);
    else
      time_mix_v5v6_backward(ctx, w, m, g, a, d, d.x_mid, d.ln1);
    tp_act.all_reduce_sum(d.ln1, nC);  // conjugate of the time mix's forward all-reduce
    reduce_partial_grads(l);
    norm_backward(dcur, g.ln1_w, g.ln1_b, d.ln1, x, w.ln1_w, a.ln1_mean, a.ln1_rstd, n);
    be.accumulate_act(dcur, d.x_mid, nC);
    std::swap(dnext, dcur);
    if (on_ready) on_ready(ready[static_cast<size_t>(L - l)]);
  }
  be.zero_act(acts.demb, nC);
  norm_backward(acts.demb, tg_.ln0_w, tg_.ln0_b, dnext, acts.emb, tw_.ln0_w, acts.ln0_mean,
                acts.ln0_rstd, n);
  be.embedding_backward(tg_.emb, acts.demb, acts.idx, n, C, ranges.v0, ranges.v1);
  if (on_ready) on_ready(ready[static_cast<size_t>(L + 1)]);
}

template <typename F, typename A>
void Model<F, A>::zero_grad() {
  be.zero(grads, table.total);
}

template <typename F, typename A>
void Model<F, A>::adamw_step(const kernels::AdamWHyper& h, int64_t step) {
  if (!adam_m_) {
    adam_m_ = be.alloc(table.total);
    adam_v_ = be.alloc(table.total);
  }
  const std::vector<kernels::AdamWSegment> segs = table.adamw_segments();
  be.adamw_step(params, grads, adam_m_, adam_v_, segs, h, step);
  round_params();
}

template <typename F, typename A>
std::vector<F> Model<F, A>::get_adam_m() const {
  std::vector<F> host(static_cast<size_t>(table.total), F(0));
  if (adam_m_) be.download(host.data(), adam_m_, table.total);
  return host;
}

template <typename F, typename A>
std::vector<F> Model<F, A>::get_adam_v() const {
  std::vector<F> host(static_cast<size_t>(table.total), F(0));
  if (adam_v_) be.download(host.data(), adam_v_, table.total);
  return host;
}

template <typename F, typename A>
void Model<F, A>::set_adam_moments(std::span<const F> m, std::span<const F> v) {
  if (static_cast<int64_t>(m.size()) != table.total ||
      static_cast<int64_t>(v.size()) != table.total)
    throw Error("Model::set_adam_moments: expected " + std::to_string(table.total) +
                " values each, got " + std::to_string(m.size()) + " and " +
                std::to_string(v.size()));
  if (!adam_m_) {
    adam_m_ = be.alloc(table.total);
    adam_v_ = be.alloc(table.total);
  }
  be.upload(adam_m_, m.data(), table.total);
  be.upload(adam_v_, v.data(), table.total);
}

template <typename F, typename A>
std::vector<F> Model<F, A>::forward_logits(std::span<const int32_t> idx, int B, int T) {
  require_whole_vocab("forward_logits");
  check_tokens(idx, B, T, "forward_logits");
  ensure_acts(eval_, B, T, Use::logits);
  const int64_t n = static_cast<int64_t>(B) * T;
  be.upload_ids(eval_->idx, idx.data(), n);
  run_forward(*eval_);
  head_forward(*eval_, 0, n);
  std::vector<F> logits(static_cast<size_t>(n * cfg.vocab_size));
  be.download_act(logits.data(), eval_->logits, n * cfg.vocab_size);
  return logits;
}

template <typename F, typename A>
RecurrentState<F> Model<F, A>::new_state() const {
  RecurrentState<F> s;
  s.n_layer = cfg.n_layer;
  s.n_embd = cfg.n_embd;
  s.wkv_size = wkv_state_size(cfg);
  const size_t LC = static_cast<size_t>(cfg.n_layer) * cfg.n_embd;
  s.att_shift.assign(LC, F(0));
  s.ffn_shift.assign(LC, F(0));
  s.wkv.assign(static_cast<size_t>(cfg.n_layer * s.wkv_size), F(0));
  // RWKV-4's empty state has pp = -1e38 (the official kernel's start value).
  if (cfg.version == 4)
    for (size_t i = 2; i < s.wkv.size(); i += 3) s.wkv[i] = F(-1e38);
  return s;
}

template <typename F, typename A>
std::vector<F> Model<F, A>::forward_step(int32_t token, RecurrentState<F>& s) {
  require_whole_vocab("forward_step");
  if (s.n_layer != cfg.n_layer || s.n_embd != cfg.n_embd || s.wkv_size != wkv_state_size(cfg))
    throw Error("forward_step: the state was made for another model shape");
  check_tokens(std::span<const int32_t>(&token, 1), 1, 1, "forward_step");
  ensure_acts(step_, 1, 1, Use::step);
  Acts& acts = *step_;
  const int64_t LC = static_cast<int64_t>(cfg.n_layer) * cfg.n_embd;
  const int64_t LW = cfg.n_layer * wkv_state_size(cfg);
  be.upload_ids(acts.idx, &token, 1);
  be.upload(acts.att_shift_in, s.att_shift.data(), LC);
  be.upload(acts.ffn_shift_in, s.ffn_shift.data(), LC);
  be.upload(acts.wkv_in, s.wkv.data(), LW);
  run_forward(acts);
  head_forward(acts, 0, 1);
  be.download(s.att_shift.data(), acts.att_shift_out, LC);
  be.download(s.ffn_shift.data(), acts.ffn_shift_out, LC);
  be.download(s.wkv.data(), acts.wkv_out, LW);
  std::vector<F> logits(static_cast<size_t>(cfg.vocab_size));
  be.download_act(logits.data(), acts.logits, cfg.vocab_size);
  return logits;
}

template struct Model<float>;
template struct Model<double>;
template struct Model<float, kernels::Bf16>;

}  // namespace rwkv::model
