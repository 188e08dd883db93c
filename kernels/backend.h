#pragma once
// The one interface the model is written against (llm.c style: explicit ops, no
// autograd). Every pointer is backend memory (host memory for the CPU backend,
// device memory for a CUDA backend); the model never dereferences it and moves data
// across only through upload/download. Shapes are explicit, tensors row-major.
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

#include "kernels/op_types.h"

namespace rwkv::kernels {

template <typename F>
struct Backend {
  virtual ~Backend() = default;

  // Memory. alloc returns zeroed memory.
  virtual F* alloc(int64_t n) = 0;
  virtual void free(F* p) = 0;
  virtual int32_t* alloc_ids(int64_t n) = 0;
  virtual void free_ids(int32_t* p) = 0;
  virtual void zero(F* p, int64_t n) = 0;
  virtual void copy(F* dst, const F* src, int64_t n) = 0;
  virtual void upload(F* dst, const F* host, int64_t n) = 0;
  virtual void download(F* host, const F* src, int64_t n) = 0;
  virtual void upload_ids(int32_t* dst, const int32_t* host, int64_t n) = 0;

  // kernels/cpu/embedding.h: the vocabulary slab [v0, v1) of a tensor-parallel rank;
  // emb holds those rows [v1 - v0, C]. out [n, C]: row i = emb[idx[i] - v0] when
  // v0 <= idx[i] < v1, else 0 (the TP group sums the ranks' outputs).
  virtual void embedding_forward(F* out, const int32_t* idx, const F* emb, int64_t n, int64_t C,
                                 int64_t v0, int64_t v1) = 0;
  // demb [v1 - v0, C] += the rows of dout of the ids in the slab; other ids are skipped.
  virtual void embedding_backward(F* demb, const F* dout, const int32_t* idx, int64_t n, int64_t C,
                                  int64_t v0, int64_t v1) = 0;

  // kernels/cpu/norm.h
  virtual void layernorm_forward(F* out, F* mean, F* rstd, const F* x, const F* w, const F* b,
                                 int64_t n, int64_t C, F eps) = 0;
  virtual void layernorm_backward(F* dx, F* dw, F* db, const F* dout, const F* x, const F* w,
                                  const F* mean, const F* rstd, int64_t n, int64_t C) = 0;
  virtual void rmsnorm_forward(F* out, F* rstd, const F* x, const F* w, int64_t n, int64_t C,
                               F eps) = 0;
  virtual void rmsnorm_backward(F* dx, F* dw, const F* dout, const F* x, const F* w, const F* rstd,
                                int64_t n, int64_t C) = 0;
  // g: the output gate, or null (kernels/cpu/norm.h).
  virtual void groupnorm_forward(F* out, F* mean, F* rstd, const F* x, const F* w, const F* b,
                                 const F* g, int64_t n, int64_t H, int64_t N, F eps) = 0;
  virtual void groupnorm_backward(F* dx, F* dw, F* db, F* dg, const F* dout, const F* x, const F* w,
                                  const F* b, const F* g, const F* mean, const F* rstd, int64_t n,
                                  int64_t H, int64_t N) = 0;
  virtual void l2norm_heads_forward(F* out, F* norm, const F* x, int64_t n, int64_t H, int64_t N,
                                    F eps) = 0;
  virtual void l2norm_heads_backward(F* dx, const F* dout, const F* out, const F* norm, const F* x,
                                     int64_t n, int64_t H, int64_t N, F eps) = 0;

  // kernels/cpu/matmul.h
  virtual void matmul_forward(F* out, int64_t ldo, const F* x, int64_t ldx, const F* w, int64_t M,
                              int64_t K, int64_t N, WLayout layout, bool accumulate) = 0;
  virtual void matmul_backward(F* dx, F* dw, const F* dout, int64_t ldo, const F* x, int64_t ldx,
                               const F* w, int64_t M, int64_t K, int64_t N, WLayout layout,
                               bool accumulate_dx) = 0;

  // kernels/cpu/elementwise.h
  virtual void act_forward(Act act, F* out, const F* x, int64_t n) = 0;
  virtual void act_backward(Act act, F* dx, const F* dout, const F* x, int64_t n) = 0;
  virtual void mul_forward(F* out, const F* a, const F* b, int64_t n) = 0;
  virtual void mul_backward(F* da, F* db, const F* dout, const F* a, const F* b, int64_t n) = 0;
  virtual void add_forward(F* out, const F* a, const F* b, int64_t n) = 0;
  virtual void accumulate(F* dst, const F* src, int64_t n) = 0;
  virtual void scale_channels_forward(F* out, const F* x, const F* vec, int64_t n, int64_t C) = 0;
  virtual void scale_channels_backward(F* dx, F* dvec, const F* dout, const F* x, const F* vec,
                                       int64_t n, int64_t C) = 0;
  virtual void bias_sigmoid_forward(F* out, const F* bias, const F* z, int64_t n, int64_t C) = 0;
  virtual void bias_sigmoid_backward(F* dbias, F* dz, const F* dout, const F* out, int64_t n,
                                     int64_t C) = 0;

  // kernels/cpu/token_shift.h
  virtual void shift_diff_forward(F* xx, const F* x, const F* prev, int64_t B, int64_t T,
                                  int64_t C) = 0;
  virtual void shift_diff_backward(F* dx, F* dprev, const F* dxx, int64_t B, int64_t T,
                                   int64_t C) = 0;
  virtual void shift_last(F* last, const F* x, int64_t B, int64_t T, int64_t C) = 0;
  // The mixes of one token shift as one group (kernels/mix_group.h).
  virtual void mix_forward(std::span<F* const> outs, const F* x, const F* xx,
                           std::span<const F* const> coefs, std::span<const F* const> ms,
                           bool one_minus, int64_t n, int64_t C) = 0;
  virtual void mix_backward(F* dx, F* dxx, std::span<F* const> dcoefs, std::span<F* const> dms,
                            std::span<const F* const> douts, const F* xx,
                            std::span<const F* const> coefs, std::span<const F* const> ms,
                            bool one_minus, int64_t n, int64_t C) = 0;

  // kernels/cpu/rwkv_pointwise.h
  virtual void decay_v6_forward(F* lw, const F* time_decay, const F* ww, int64_t n, int64_t C) = 0;
  virtual void decay_v6_backward(F* dtime_decay, F* dww, const F* dlw, const F* lw, int64_t n,
                                 int64_t C) = 0;
  virtual void decay_v7_forward(F* lw, const F* w0, const F* z, int64_t n, int64_t C) = 0;
  virtual void decay_v7_backward(F* dw0, F* dz, const F* dlw, const F* w0, const F* z, int64_t n,
                                 int64_t C) = 0;
  virtual void value_residual_forward(F* out, const F* v, const F* v_first, const F* s,
                                      int64_t n) = 0;
  virtual void value_residual_backward(F* dv, F* dv_first, F* ds, const F* dout, const F* v,
                                       const F* v_first, const F* s, int64_t n) = 0;
  virtual void key_adjust_forward(F* out, const F* k, const F* a, const F* k_a, int64_t n,
                                  int64_t C) = 0;
  virtual void key_adjust_backward(F* dk, F* da, F* dk_a, const F* dout, const F* k, const F* a,
                                   const F* k_a, int64_t n, int64_t C) = 0;
  virtual void wkv7_ab_forward(F* wa, F* wb, const F* kk, const F* a, int64_t n) = 0;
  virtual void wkv7_ab_backward(F* dkk, F* da, const F* dwa, const F* dwb, const F* kk, const F* a,
                                int64_t n) = 0;
  virtual void bonus_v7_forward(F* out, const F* r, const F* k, const F* v, const F* r_k,
                                const F* g, int64_t n, int64_t H, int64_t N) = 0;
  virtual void bonus_v7_backward(F* dr, F* dk, F* dv, F* dr_k, F* dg, const F* dout, const F* r,
                                 const F* k, const F* v, const F* r_k, const F* g, int64_t n,
                                 int64_t H, int64_t N) = 0;

  // WKV (kernels/cpu/wkv4.h, wkv6.h, wkv7.h); backwards overwrite their outputs.
  virtual void wkv4_forward(int B, int T, int C, int c0, int c1, const F* w, const F* u, const F* k,
                            const F* v, F* y, const F* state_in, F* state_out) = 0;
  virtual void wkv4_backward(int B, int T, int C, int c0, int c1, const F* w, const F* u,
                             const F* k, const F* v, const F* dy, F* dw, F* du, F* dk, F* dv) = 0;
  virtual void wkv6_forward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1, const F* r,
                            const F* k, const F* v, const F* lw, const F* u, F* y,
                            const F* state_in, F* state_out) = 0;
  virtual void wkv6_backward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1, const F* r,
                             const F* k, const F* v, const F* lw, const F* u, const F* dy, F* dr,
                             F* dk, F* dv, F* dlw, F* du) = 0;
  virtual void wkv7_forward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1, const F* r,
                            const F* lw, const F* k, const F* v, const F* a, const F* b, F* y,
                            const F* state_in, F* state_out) = 0;
  virtual void wkv7_backward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1, const F* r,
                             const F* lw, const F* k, const F* v, const F* a, const F* b,
                             const F* dy, F* dr, F* dlw, F* dk, F* dv, F* da, F* db) = 0;

  // kernels/cpu/cross_entropy.h, vocab-parallel (Megatron-LM's
  // vocab_parallel_cross_entropy): logits [n, Vl] are the columns [v0, v0 + Vl) of the
  // whole vocabulary. max, sumexp, target_logit, argmax [n].
  // Per row: the largest local logit and its whole-vocabulary column (the first on ties).
  virtual void ce_local_max(F* max, int32_t* argmax, const F* logits, int64_t n, int64_t Vl,
                            int64_t v0) = 0;
  // With max the row maxima over the whole vocabulary: sumexp[i] = sum_j exp(logits[i, j] -
  // max[i]) over the local columns; target_logit[i] = logits[i, targets[i] - v0] when the
  // target is in the slab, else 0.
  virtual void ce_local_sums(F* sumexp, F* target_logit, const F* logits, const int32_t* targets,
                             const F* max, int64_t n, int64_t Vl, int64_t v0) = 0;
  // losses[i] = max[i] + log(sumexp[i]) - target_logit[i] (the whole vocabulary's values).
  virtual void ce_loss(F* losses, const F* max, const F* sumexp, const F* target_logit,
                       int64_t n) = 0;
  // Overwrites dlogits [n, Vl] = scale * (exp(logits - max) / sumexp - onehot(target)),
  // plus l2wrap_factor * max[i] at column argmax[i] when it is in the slab (RWKV-LM's
  // L2Wrap). max, sumexp, argmax are the whole vocabulary's. dlogits may be logits: the
  // model writes the gradient over the logits, which are not needed after it (one
  // [n, Vl] fp32 tensor instead of two: 2.1 GB at the 0.4B preset's B 2, T 4096).
  virtual void ce_backward(F* dlogits, const F* logits, const int32_t* targets, const F* max,
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
