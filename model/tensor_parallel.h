#pragma once
// Tensor parallelism (Megatron-LM's scheme applied to RWKV; docs/parallelism.md):
// the ranks of one TP group split every block's heads and FFN hidden dim and the
// vocabulary, and hold only their slabs of the parameters.
//   time mix:    receptance / key / value / gate and the per-channel LoRA up
//                projections (w2, a2, v2, g2, time_decay_w2) are column-parallel by
//                heads; WKV, ln_x, kk, r_k and v_first stay per head, so local; the
//                output projection is row-parallel, followed by one all-reduce.
//   channel mix: key column-parallel over dim_ffn, value row-parallel, one all-reduce.
//                The v4-v6 receptance gate sigmoid(Wr xr) is computed whole on every
//                rank (replicated weight) and multiplies the all-reduced value, so the
//                block still costs one all-reduce forward and one backward.
//   embedding:   vocab-parallel rows; ranks outside a token's slab contribute 0, one
//                all-reduce. head: column-parallel over the vocabulary, with a
//                vocab-parallel cross-entropy (row max, sum of exps and the target's
//                logit reduced across the group; the full logits never exist).
// Backward is the conjugate: one all-reduce of each mixing block's input gradient and
// of the head's. Token-shift mixing vectors, the LoRA down projections and the
// LayerNorms are replicated; the first two get partial gradients on each rank (from
// its heads / FFN columns), which are summed across the group after each block.
#include <cstdint>

#include "model/model_config.h"

namespace rwkv::model {

// A rank's place in its TP group.
struct TpRank {
  int rank = 0;
  int size = 1;
};

// The slabs a TP rank owns. v4 has no heads: its time mix splits channels (h = c).
struct TpRanges {
  int64_t h0 = 0, h1 = 0;  // heads [h0, h1) (v4: channels)
  int64_t c0 = 0, c1 = 0;  // attention channels [h0 * N, h1 * N)
  int64_t f0 = 0, f1 = 0;  // FFN hidden [f0, f1)
  int64_t v0 = 0, v1 = 0;  // vocabulary rows [v0, v1)
  int64_t heads() const { return h1 - h0; }
  int64_t channels() const { return c1 - c0; }
  int64_t ffn() const { return f1 - f0; }
  int64_t vocab() const { return v1 - v0; }
};

// Heads and dim_ffn split evenly (the config demands tp divides them). The vocabulary
// is split in slabs of ceil(V / tp) rows and the last slab is shorter: the padding a
// Megatron run adds to reach a multiple of tp is never materialised, so the loss has
// nothing to mask. Throws rwkv::Error naming the key when a split is impossible.
TpRanges tp_ranges(const ModelConfig& cfg, TpRank tp);

// The sum over a TP group of a tensor of element type T, on backend memory. The blocks'
// all-reduces are on activations, of the model's activation type (Model<F, A>::tp_act);
// with bf16 activations the sum travels as bf16, as Megatron-LM's TP all-reduces do in the
// activations' dtype.
template <typename T>
struct TpAllReduce {
  virtual ~TpAllReduce() = default;
  virtual TpRank where() const = 0;
  // buf [n] <- sum over the group.
  virtual void all_reduce_sum(T* buf, int64_t n) = 0;
};

// The collectives the model makes over its TP group on F tensors (gradients of the
// replicated parameters, the vocab-parallel cross-entropy's statistics; with A = F also
// the activations). With one rank every call is a no-op; the MPI implementation is
// trainer/tp_comm_mpi.h, the NCCL one trainer/tp_comm_nccl.h.
template <typename F>
struct TpComm : TpAllReduce<F> {
  // Per element: val <- the group's largest value, idx <- the idx that came with it
  // (the smallest idx among equal values), as MPI_MAXLOC.
  virtual void all_reduce_maxloc(F* val, int32_t* idx, int64_t n) = 0;
};

// The single-rank group.
template <typename F>
struct TpSolo final : TpComm<F> {
  TpRank where() const override { return {}; }
  void all_reduce_sum(F*, int64_t) override {}
  void all_reduce_maxloc(F*, int32_t*, int64_t) override {}
};

}  // namespace rwkv::model
