#pragma once
// The one interface the model is written against (llm.c style: explicit ops, no
// autograd). Every pointer is backend memory (host memory for the CPU backend,
// device memory for a CUDA backend); the model never dereferences it and moves data
// across only through upload/download. Shapes are explicit, tensors row-major.
//
// Two element types (mixed precision as in Megatron-LM's bf16 training):
//   F: the parameters, their gradients and AdamW moments, the statistics kept for a
//      backward (means, rstd, norms), the recurrent state, the losses; and every
//      scalar (eps, scale).
//   A: the activations and their gradients (every [n, ...] per-token tensor, the
//      logits among them) and the matrices the products read (matmul's w: the model's
//      copy of its weights in A, refreshed from the F parameters after each step).
// A = F is the all-fp32 (or, for gradient checks, all-fp64) model. With A = bf16
// every op reads its A inputs, computes in F and rounds each A output once (an
// accumulating op rounds the sum); kernels/cpu/bf16_activations.h is that reference.
// The memory ops exist for both: alloc, zero, copy, ... on F, alloc_act, zero_act,
// copy_act, ... on A; upload_act / download_act convert from and to host F.
//
// Conventions, the same for every op:
//   - forward ops overwrite their outputs;
//   - backward ops accumulate (+=) into every gradient they are given, and a null
//     gradient pointer means "not wanted"; the exceptions are named: the WKV
//     backwards and ce_backward overwrite, and matmul_backward overwrites dx unless
//     told to accumulate (so most activation gradients need no zeroing).
// The reference semantics of each op are the CPU kernels in kernels/cpu/<op>.h,
// whose comments give the formulas and their RWKV-LM sources.
#include <cstdint>
#include <span>

#include "kernels/cuda/bf16.h"
#include "kernels/op_types.h"

namespace rwkv::kernels {

// The bf16 element type (the layout of CUDA's __nv_bfloat16; standard headers only).
using cuda::Bf16;

template <typename F, typename A = F>
struct Backend {
  virtual ~Backend() = default;

  // Memory. alloc and alloc_act return zeroed memory.
  virtual F* alloc(int64_t n) = 0;
  virtual void free(F* p) = 0;
  virtual int32_t* alloc_ids(int64_t n) = 0;
  virtual void free_ids(int32_t* p) = 0;
  virtual void zero(F* p, int64_t n) = 0;
  virtual void copy(F* dst, const F* src, int64_t n) = 0;
  virtual void upload(F* dst, const F* host, int64_t n) = 0;
  virtual void download(F* host, const F* src, int64_t n) = 0;
  virtual void upload_ids(int32_t* dst, const int32_t* host, int64_t n) = 0;
  // dst += src (parameter gradients).
  virtual void accumulate(F* dst, const F* src, int64_t n) = 0;
  virtual A* alloc_act(int64_t n) = 0;
  virtual void free_act(A* p) = 0;
  virtual void zero_act(A* p, int64_t n) = 0;
  virtual void copy_act(A* dst, const A* src, int64_t n) = 0;
  virtual void upload_act(A* dst, const F* host, int64_t n) = 0;    // rounds
  virtual void download_act(F* host, const A* src, int64_t n) = 0;  // widens
  // dst [n] = src rounded to A (the products' copy of the weights).
  virtual void round_act(A* dst, const F* src, int64_t n) = 0;
  // dst += src (activation gradients).
  virtual void accumulate_act(A* dst, const A* src, int64_t n) = 0;

  // kernels/cpu/embedding.h: the vocabulary slab [v0, v1) of a tensor-parallel rank;
  // emb holds those rows [v1 - v0, C]. out [n, C]: row i = emb[idx[i] - v0] when
  // v0 <= idx[i] < v1, else 0 (the TP group sums the ranks' outputs).
  virtual void embedding_forward(A* out, const int32_t* idx, const F* emb, int64_t n, int64_t C,
                                 int64_t v0, int64_t v1) = 0;
  // demb [v1 - v0, C] += the rows of dout of the ids in the slab; other ids are skipped.
  virtual void embedding_backward(F* demb, const A* dout, const int32_t* idx, int64_t n, int64_t C,
                                  int64_t v0, int64_t v1) = 0;

  // kernels/cpu/norm.h
  virtual void layernorm_forward(A* out, F* mean, F* rstd, const A* x, const F* w, const F* b,
                                 int64_t n, int64_t C, F eps) = 0;
  virtual void layernorm_backward(A* dx, F* dw, F* db, const A* dout, const A* x, const F* w,
                                  const F* mean, const F* rstd, int64_t n, int64_t C) = 0;
  virtual void rmsnorm_forward(A* out, F* rstd, const A* x, const F* w, int64_t n, int64_t C,
                               F eps) = 0;
  virtual void rmsnorm_backward(A* dx, F* dw, const A* dout, const A* x, const F* w, const F* rstd,
                                int64_t n, int64_t C) = 0;
  // g: the output gate, or null (kernels/cpu/norm.h).
  virtual void groupnorm_forward(A* out, F* mean, F* rstd, const A* x, const F* w, const F* b,
                                 const A* g, int64_t n, int64_t H, int64_t N, F eps) = 0;
  virtual void groupnorm_backward(A* dx, F* dw, F* db, A* dg, const A* dout, const A* x, const F* w,
                                  const F* b, const A* g, const F* mean, const F* rstd, int64_t n,
                                  int64_t H, int64_t N) = 0;
  virtual void l2norm_heads_forward(A* out, F* norm, const A* x, int64_t n, int64_t H, int64_t N,
                                    F eps) = 0;
  virtual void l2norm_heads_backward(A* dx, const A* dout, const A* out, const F* norm, const A* x,
                                     int64_t n, int64_t H, int64_t N, F eps) = 0;

  // kernels/cpu/matmul.h. w is the A copy of the weights; dw is the F gradient.
  virtual void matmul_forward(A* out, int64_t ldo, const A* x, int64_t ldx, const A* w, int64_t M,
                              int64_t K, int64_t N, WLayout layout, bool accumulate) = 0;
  virtual void matmul_backward(A* dx, F* dw, const A* dout, int64_t ldo, const A* x, int64_t ldx,
                               const A* w, int64_t M, int64_t K, int64_t N, WLayout layout,
                               bool accumulate_dx) = 0;

  // kernels/cpu/elementwise.h
  virtual void act_forward(Act act, A* out, const A* x, int64_t n) = 0;
  virtual void act_backward(Act act, A* dx, const A* dout, const A* x, int64_t n) = 0;
  virtual void mul_forward(A* out, const A* a, const A* b, int64_t n) = 0;
  virtual void mul_backward(A* da, A* db, const A* dout, const A* a, const A* b, int64_t n) = 0;
  virtual void add_forward(A* out, const A* a, const A* b, int64_t n) = 0;
  virtual void scale_channels_forward(A* out, const A* x, const F* vec, int64_t n, int64_t C) = 0;
  virtual void scale_channels_backward(A* dx, F* dvec, const A* dout, const A* x, const F* vec,
                                       int64_t n, int64_t C) = 0;
  virtual void bias_sigmoid_forward(A* out, const F* bias, const A* z, int64_t n, int64_t C) = 0;
  virtual void bias_sigmoid_backward(F* dbias, A* dz, const A* dout, const A* out, int64_t n,
                                     int64_t C) = 0;

  // kernels/cpu/token_shift.h. prev, dprev and last are recurrent state [B, C] (F).
  virtual void shift_diff_forward(A* xx, const A* x, const F* prev, int64_t B, int64_t T,
                                  int64_t C) = 0;
  virtual void shift_diff_backward(A* dx, F* dprev, const A* dxx, int64_t B, int64_t T,
                                   int64_t C) = 0;
  virtual void shift_last(F* last, const A* x, int64_t B, int64_t T, int64_t C) = 0;
  // The mixes of one token shift as one group (kernels/mix_group.h); coefs are
  // parameters, ms (RWKV-6's data-dependent terms) activations.
  virtual void mix_forward(std::span<A* const> outs, const A* x, const A* xx,
                           std::span<const F* const> coefs, std::span<const A* const> ms,
                           bool one_minus, int64_t n, int64_t C) = 0;
  virtual void mix_backward(A* dx, A* dxx, std::span<F* const> dcoefs, std::span<A* const> dms,
                            std::span<const A* const> douts, const A* xx,
                            std::span<const F* const> coefs, std::span<const A* const> ms,
                            bool one_minus, int64_t n, int64_t C) = 0;

  // kernels/cpu/rwkv_pointwise.h. RWKV-4's decay is per channel and stays F (WKV4's w):
  // w [C] = exp(time_decay); its backward adds dw * w into dtime_decay.
  virtual void decay_v4_forward(F* w, const F* time_decay, int64_t C) = 0;
  virtual void decay_v4_backward(F* dtime_decay, const F* dw, const F* time_decay, int64_t C) = 0;
  virtual void decay_v6_forward(A* lw, const F* time_decay, const A* ww, int64_t n, int64_t C) = 0;
  virtual void decay_v6_backward(F* dtime_decay, A* dww, const A* dlw, const A* lw, int64_t n,
                                 int64_t C) = 0;
  virtual void decay_v7_forward(A* lw, const F* w0, const A* z, int64_t n, int64_t C) = 0;
  virtual void decay_v7_backward(F* dw0, A* dz, const A* dlw, const F* w0, const A* z, int64_t n,
                                 int64_t C) = 0;
  virtual void value_residual_forward(A* out, const A* v, const A* v_first, const A* s,
                                      int64_t n) = 0;
  virtual void value_residual_backward(A* dv, A* dv_first, A* ds, const A* dout, const A* v,
                                       const A* v_first, const A* s, int64_t n) = 0;
  virtual void key_adjust_forward(A* out, const A* k, const A* a, const F* k_a, int64_t n,
                                  int64_t C) = 0;
  virtual void key_adjust_backward(A* dk, A* da, F* dk_a, const A* dout, const A* k, const A* a,
                                   const F* k_a, int64_t n, int64_t C) = 0;
  virtual void wkv7_ab_forward(A* wa, A* wb, const A* kk, const A* a, int64_t n) = 0;
  virtual void wkv7_ab_backward(A* dkk, A* da, const A* dwa, const A* dwb, const A* kk, const A* a,
                                int64_t n) = 0;
  virtual void bonus_v7_forward(A* out, const A* r, const A* k, const A* v, const F* r_k,
                                const A* g, int64_t n, int64_t H, int64_t N) = 0;
  virtual void bonus_v7_backward(A* dr, A* dk, A* dv, F* dr_k, A* dg, const A* dout, const A* r,
                                 const A* k, const A* v, const F* r_k, const A* g, int64_t n,
                                 int64_t H, int64_t N) = 0;

  // WKV (kernels/cpu/wkv4.h, wkv6.h, wkv7.h); backwards overwrite their outputs. The
  // per-token tensors are A; w, u, their gradients and the state are F.
  virtual void wkv4_forward(int B, int T, int C, int c0, int c1, const F* w, const F* u, const A* k,
                            const A* v, A* y, const F* state_in, F* state_out) = 0;
  virtual void wkv4_backward(int B, int T, int C, int c0, int c1, const F* w, const F* u,
                             const A* k, const A* v, const A* dy, F* dw, F* du, A* dk, A* dv) = 0;
  virtual void wkv6_forward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1, const A* r,
                            const A* k, const A* v, const A* lw, const F* u, A* y,
                            const F* state_in, F* state_out) = 0;
  virtual void wkv6_backward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1, const A* r,
                             const A* k, const A* v, const A* lw, const F* u, const A* dy, A* dr,
                             A* dk, A* dv, A* dlw, F* du) = 0;
  virtual void wkv7_forward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1, const A* r,
                            const A* lw, const A* k, const A* v, const A* a, const A* b, A* y,
                            const F* state_in, F* state_out) = 0;
  virtual void wkv7_backward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1, const A* r,
                             const A* lw, const A* k, const A* v, const A* a, const A* b,
                             const A* dy, A* dr, A* dlw, A* dk, A* dv, A* da, A* db) = 0;

  // kernels/cpu/cross_entropy.h, vocab-parallel (Megatron-LM's
  // vocab_parallel_cross_entropy): logits [n, Vl] are the columns [v0, v0 + Vl) of the
  // whole vocabulary. max, sumexp, target_logit, argmax [n].
  // Per row: the largest local logit and its whole-vocabulary column (the first on ties).
  virtual void ce_local_max(F* max, int32_t* argmax, const A* logits, int64_t n, int64_t Vl,
                            int64_t v0) = 0;
  // With max the row maxima over the whole vocabulary: sumexp[i] = sum_j exp(logits[i, j] -
  // max[i]) over the local columns; target_logit[i] = logits[i, targets[i] - v0] when the
  // target is in the slab, else 0.
  virtual void ce_local_sums(F* sumexp, F* target_logit, const A* logits, const int32_t* targets,
                             const F* max, int64_t n, int64_t Vl, int64_t v0) = 0;
  // losses[i] = max[i] + log(sumexp[i]) - target_logit[i] (the whole vocabulary's values).
  virtual void ce_loss(F* losses, const F* max, const F* sumexp, const F* target_logit,
                       int64_t n) = 0;
  // Overwrites dlogits [n, Vl] = scale * (exp(logits - max) / sumexp - onehot(target)),
  // plus l2wrap_factor * max[i] at column argmax[i] when it is in the slab (RWKV-LM's
  // L2Wrap). max, sumexp, argmax are the whole vocabulary's. dlogits may be logits: the
  // model writes the gradient over the logits, which are not needed after it (one
  // [n, Vl] tensor instead of two: 2.1 GB in fp32 at the 0.4B preset's B 2, T 4096).
  virtual void ce_backward(A* dlogits, const A* logits, const int32_t* targets, const F* max,
                           const F* sumexp, const int32_t* argmax, int64_t n, int64_t Vl,
                           int64_t v0, F scale, F l2wrap_factor) = 0;

  // kernels/cpu/adamw.h
  virtual void adamw_step(F* p, const F* g, F* m, F* v, std::span<const AdamWSegment> segments,
                          const AdamWHyper& h, int64_t t) = 0;

  // kernels/cpu/grad_norm.h (gradient clipping). sum_squares returns to the host: it
  // waits for the queued work. Deterministic: the same inputs give the same bits.
  virtual double sum_squares(const F* x, int64_t n) = 0;
  virtual void scale(F* x, F s, int64_t n) = 0;
};

}  // namespace rwkv::kernels
