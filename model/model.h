#pragma once
// The RWKV-4/5/6/7 language model, written once against the backend interface
// (kernels/backend.h):
//   x = ln0(emb[idx]);  per block x = x + att(ln1(x)); x = x + ffn(ln2(x))
//   logits = head(ln_out(x))
// (v7 also threads layer 0's value v_first through every time mix.) Parameters and
// gradients live in one flat buffer each, described by the ParamTable. Training:
// forward (keeps the activations) -> backward (accumulates into grads) -> adamw_step.
// Inference: forward_logits (parallel over T) or forward_step (one token, carried
// RecurrentState); both give the same logits.
//
// Tensor parallelism (model/tensor_parallel.h): constructed with a TP group of more
// than one rank, the model holds this rank's slabs (table = build_param_table(cfg,
// rank)), and forward / backward make the group's collectives; every rank of the
// group must call them together with the same tokens. The loss is the same on every
// rank; params, grads and the AdamW moments are the rank's slabs.
//
// Precision (kernels/backend.h): the parameters, gradients and AdamW moments are F; the
// activations A. With A != F (bf16 activations) the model keeps a copy of its parameters
// in A for the products, rounded again after every change of the parameters, and runs on
// one rank (its collectives would need an A all-reduce).
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "kernels/backend.h"
#include "model/activations.h"
#include "model/model_config.h"
#include "model/param_table.h"
#include "model/state.h"
#include "model/tensor_parallel.h"
#include "model/weights.h"

namespace rwkv::model {

struct ModelOptions {
  kernels::WkvAlgo wkv = kernels::WkvAlgo::chunked;  // naive = the reference recurrence
  bool l2wrap = true;  // add RWKV-LM's L2Wrap term to the logits' gradient
  // Activation recomputation (RWKV-LM's --grad_cp 1, Megatron-LM's full recompute of each
  // layer): a training forward keeps the residual stream between blocks, one block's
  // activations and a chunk of the logits' rows; backward runs each block's forward, and
  // the head's for each chunk of rows, again right before their backward. The blocks'
  // gradients are the same bits; the head's are summed chunk by chunk.
  bool recompute = false;
};

template <typename F, typename A = F>
struct Model {
 private:
  TpSolo<F> solo_;      // the group of a model given none (constructed before `tp`)
  TpSolo<A> solo_act_;  // the activations' group when A != F

 public:
  // tp: the TP group (null: this rank alone); tp_act: its sum of A tensors, needed when
  // A != F and the group has more than one rank (with A = F the model uses tp). Both must
  // outlive the model.
  Model(const ModelConfig& cfg, kernels::Backend<F, A>& be, ModelOptions opts = {},
        TpComm<F>* tp = nullptr, TpAllReduce<A>* tp_act = nullptr);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // Official initialisation (model/init.h), seeded.
  void init(uint64_t seed);
  // The flat buffers, host side, in ParamTable order.
  void set_params(std::span<const F> host);
  std::vector<F> get_params() const;
  std::vector<F> get_grads() const;

  // idx, targets [B, T] row-major. Returns the mean cross-entropy over B*T (without
  // the L2Wrap term, which only changes the gradient) and keeps the activations for
  // backward(). Throws rwkv::Error naming the position of an id outside the vocab, or
  // when T > ctx_len.
  double forward(std::span<const int32_t> idx, std::span<const int32_t> targets, int B, int T);
  // Gradients of forward()'s loss, accumulated into the gradient buffer.
  //
  // on_ready (optional) lets data parallelism start reducing gradients while backward
  // is still running. It is called with ready_from, the smallest flat-buffer offset
  // from which every parameter's gradient is final for this backward (nothing written
  // at or after it any more): after head and ln_out, after each block l = L-1 .. 0,
  // and last with 0, after blocks.0.ln0 and emb. The values never increase and the
  // last is 0. Block 0's call stops after blocks.0.ln0 (ParamTable order puts ln0
  // inside block 0, and its gradient comes after the loop). v7's v_first gradient
  // flows into layer 0 through an activation buffer, not a parameter, so each block's
  // parameters are final after its own step. Offsets come from the ParamTable. "Final"
  // is in the backend's order: on a GPU, read the values with download().
  void backward(const std::function<void(int64_t ready_from)>& on_ready = {});
  void zero_grad();
  // One AdamW step (kernels/cpu/adamw.h) with the table's lr / weight-decay multipliers.
  void adamw_step(const kernels::AdamWHyper& h, int64_t step);
  // AdamW's first and second moments [table.total], host side (zeros before the first
  // step), for checkpoints; set_adam_moments restores them.
  std::vector<F> get_adam_m() const;
  std::vector<F> get_adam_v() const;
  void set_adam_moments(std::span<const F> m, std::span<const F> v);

  // Bytes of backend memory a training forward over [B, T] allocates for its
  // activations and the backward's scratch, on a TP rank owning `ranges` (with
  // recompute: one block's activations). Nothing is allocated.
  static int64_t activation_bytes(const ModelConfig& cfg, const TpRanges& ranges, bool recompute,
                                  int B, int T);

  // Evaluation: each row's mean cross-entropy over its T positions (idx, targets [B, T]),
  // from a forward that keeps nothing for a backward (one block's activations, the logits
  // by chunks of rows) in buffers of its own, so that the training forward's stay
  // allocated. Checks the ids as forward() does.
  std::vector<double> row_losses(std::span<const int32_t> idx, std::span<const int32_t> targets,
                                 int B, int T);

  // Parallel inference: logits [B, T, V] from the zero state. Inference needs the
  // whole vocabulary on one rank: forward_logits and forward_step throw with TP.
  std::vector<F> forward_logits(std::span<const int32_t> idx, int B, int T);
  // Recurrent inference: the empty state, and one token through it -> logits [V].
  RecurrentState<F> new_state() const;
  std::vector<F> forward_step(int32_t token, RecurrentState<F>& state);

  ModelConfig cfg;
  ModelOptions opts;
  TpComm<F>& tp;
  TpAllReduce<A>& tp_act;  // tp itself when A = F
  TpRanges ranges;  // this rank's heads, FFN columns and vocabulary rows
  ParamTable table;
  kernels::Backend<F, A>& be;
  F* params = nullptr;  // [table.total]
  F* grads = nullptr;   // [table.total]
  A* params_act = nullptr;  // [table.total]: params rounded to A (params itself when A = F)

 private:
  // What a set of buffers serves: a training forward and its backward, an evaluation
  // forward (the losses only), parallel inference (all the logits), recurrent inference.
  enum class Use { train, loss, logits, step };
  // Every buffer of one forward (and backward) over [B, T].
  struct Acts {
    int B = 0, T = 0;
    Use use = Use::train;
    bool train() const { return use == Use::train; }
    bool stateful() const { return use == Use::step; }
    A* base = nullptr;   // the activations
    F* fbase = nullptr;  // the statistics, losses and states
    // The block gradient scratch (d, zeroed as model/layers.h says), A and F.
    A* grad_base = nullptr;
    F* grad_fbase = nullptr;
    int32_t *idx = nullptr, *targets = nullptr;
    A* emb = nullptr;
    F *ln0_mean = nullptr, *ln0_rstd = nullptr;
    A* res = nullptr;  // residual stream [L + 1, n, C] (res[0] = ln0 output), or [2, n, C]
                       // used in turn where no backward follows (residual())
    // Every block's activations, or one block's (one_slot: inference, which never reads
    // them again, and recomputation), reused by each block in turn.
    std::vector<LayerActs<F, A>> layers;
    bool one_slot = false;
    A* v_first = nullptr;  // v7 with one_slot: layer 0's value [n, channels], read by the rest
    A* lnout = nullptr;
    F *lnout_mean = nullptr, *lnout_rstd = nullptr;
    // Logits [ce_rows, V] (this rank's vocabulary): all n rows, or (recomputing) a chunk
    // of rows at a time; losses [n].
    A* logits = nullptr;
    F* losses = nullptr;
    int64_t ce_rows = 0;
    // Cross-entropy over the group's vocabulary: row max [n], its column [n], and
    // [sum of exps; target logit] [2, n].
    F *ce_max = nullptr, *ce_sums = nullptr;
    int32_t* ce_arg = nullptr;
    LayerActs<F, A> dlayer;
    A *dres_a = nullptr, *dres_b = nullptr, *demb = nullptr, *dlnout = nullptr;
    A* dv_first = nullptr;
    F *att_shift_in = nullptr, *att_shift_out = nullptr;  // [L, B, C]
    F *ffn_shift_in = nullptr, *ffn_shift_out = nullptr;
    F *wkv_in = nullptr, *wkv_out = nullptr;  // [L, B, wkv_size]
  };
  void ensure_acts(std::unique_ptr<Acts>& acts, int B, int T, Use use);
  // Requests acts' buffers (B, T, use set): activations from ar and the rest from far,
  // the backward's block scratch from grad_ar and grad_far.
  static void plan_acts(const ModelConfig& cfg, const TpRanges& ranges, bool recompute, Acts& acts,
                        Arena<A>& ar, Arena<F>& far, Arena<A>& grad_ar, Arena<F>& grad_far);
  void free_acts(std::unique_ptr<Acts>& acts);
  void check_tokens(std::span<const int32_t> ids, int B, int T, const char* what) const;
  // Embedding, blocks and ln_out; then head_forward gives logits of rows [r0, r0 + rows)
  // (column-parallel head: this rank's vocabulary columns).
  void run_forward(Acts& acts);
  void head_forward(Acts& acts, int64_t r0, int64_t rows);
  // After run_forward with the targets uploaded: acts.losses [n], each position's loss.
  void loss_forward(Acts& acts);
  // Checks the ids, runs the forward and the loss in `acts` (made for `use`): each
  // position's loss [B * T].
  std::vector<double> losses_of(std::unique_ptr<Acts>& acts, Use use, std::span<const int32_t> idx,
                                std::span<const int32_t> targets, int B, int T);
  // Block l from res[l] into its activations; writes res[l + 1] unless `again` (backward
  // recomputing the activations of a block whose output is kept: LayerCtx::again leaves
  // out what only that output needs).
  void block_forward(Acts& acts, int64_t l, bool again);
  LayerActs<F, A>& block_acts(Acts& acts, int64_t l) const {
    return acts.layers[acts.one_slot ? 0 : static_cast<size_t>(l)];
  }
  const A* v_first(const Acts& acts) const {
    return acts.v_first ? acts.v_first : acts.layers[0].v;
  }
  // The residual stream entering block l (l = L: ln_out's input).
  A* residual(const Acts& acts, int64_t l) const {
    const int64_t slot = acts.train() ? l : l % 2;
    return acts.res + slot * static_cast<int64_t>(acts.B) * acts.T * cfg.n_embd;
  }
  void norm_forward(A* out, F* mean, F* rstd, const A* x, const F* w, const F* b, int64_t n);
  void norm_backward(A* dx, F* dw, F* db, const A* dout, const A* x, const F* w, const F* mean,
                     const F* rstd, int64_t n);
  // params_act <- params rounded (after every change of params; nothing when A = F).
  void round_params();
  void require_whole_vocab(const char* what) const;
  // The partial gradients of the replicated parameters (TpPart::partial) are summed
  // over the TP group block by block during backward. Only this backward's share may
  // be summed (gradients accumulate over micro-batches), so backward first moves the
  // accumulated values aside (stash) and adds them back after each block's sum.
  void stash_partial_grads();
  void reduce_partial_grads(int64_t l);

  struct PartialGrad {
    int64_t offset, size, packed;  // in grads; in the packed buffers
  };
  std::vector<std::vector<PartialGrad>> partial_;  // per block
  F* partial_stash_ = nullptr;                     // [all partial gradients]
  F* partial_buf_ = nullptr;                       // [the largest block's]
  std::vector<BlockWeights<F>> bw_, bg_;
  std::vector<BlockWeights<A>> bm_;  // the products' weights (in params_act)
  TopWeights<F> tw_, tg_;
  TopWeights<A> tm_;
  F *adam_m_ = nullptr, *adam_v_ = nullptr;
  // Training (forward / backward), evaluation and parallel inference, recurrent.
  std::unique_ptr<Acts> acts_, eval_, step_;
};

extern template struct Model<float>;
extern template struct Model<double>;
extern template struct Model<float, kernels::Bf16>;

}  // namespace rwkv::model
