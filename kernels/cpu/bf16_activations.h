#pragma once
// The reference of bf16 activations (kernels/backend.h with F = float, A = Bf16): every
// op widens its bf16 inputs exactly, runs the CPU backend's fp32 op, and rounds each bf16
// output once to nearest even (an accumulating op: the old value widened, the fp32 sum
// rounded). This defines what a bf16 activation path computes, op by op, for the model
// on the CPU in CI and for a CUDA backend's bf16 ops to be tested against; it is not a
// fast path (each call converts its tensors whole).
//
// Each bf16 buffer has an fp32 shadow at a fixed address that the fp32 op works in:
// inputs are widened into it before the call, outputs rounded from it after. Fixed
// addresses keep the CPU backend's per-buffer state valid (the chunked WKV forwards'
// checkpoints, found again by the backward from r's address).
#include <cstdint>
#include <map>
#include <span>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cpu/backend_cpu.h"

namespace rwkv::kernels {

struct CpuBf16Backend final : Backend<float, Bf16> {
  using F = float;
  using A = Bf16;
  // wkv_chunk, threads: those of the fp32 CpuBackend that runs the ops.
  explicit CpuBf16Backend(int wkv_chunk = 16, int threads = 0);
  ~CpuBf16Backend() override;
  CpuBf16Backend(const CpuBf16Backend&) = delete;
  CpuBf16Backend& operator=(const CpuBf16Backend&) = delete;

  F* alloc(int64_t n) override { return fp32.alloc(n); }
  void free(F* p) override { fp32.free(p); }
  int32_t* alloc_ids(int64_t n) override { return fp32.alloc_ids(n); }
  void free_ids(int32_t* p) override { fp32.free_ids(p); }
  void zero(F* p, int64_t n) override { fp32.zero(p, n); }
  void copy(F* dst, const F* src, int64_t n) override { fp32.copy(dst, src, n); }
  void upload(F* dst, const F* host, int64_t n) override { fp32.upload(dst, host, n); }
  void download(F* host, const F* src, int64_t n) override { fp32.download(host, src, n); }
  void upload_ids(int32_t* dst, const int32_t* host, int64_t n) override {
    fp32.upload_ids(dst, host, n);
  }
  void accumulate(F* dst, const F* src, int64_t n) override { fp32.accumulate(dst, src, n); }
  A* alloc_act(int64_t n) override;
  void free_act(A* p) override;
  void zero_act(A* p, int64_t n) override;
  void copy_act(A* dst, const A* src, int64_t n) override;
  void upload_act(A* dst, const F* host, int64_t n) override;
  void download_act(F* host, const A* src, int64_t n) override;
  void round_act(A* dst, const F* src, int64_t n) override;
  void accumulate_act(A* dst, const A* src, int64_t n) override;

  void embedding_forward(A* out, const int32_t* idx, const F* emb, int64_t n, int64_t C, int64_t v0,
                         int64_t v1) override;
  void embedding_backward(F* demb, const A* dout, const int32_t* idx, int64_t n, int64_t C,
                          int64_t v0, int64_t v1) override;
  void layernorm_forward(A* out, F* mean, F* rstd, const A* x, const F* w, const F* b, int64_t n,
                         int64_t C, F eps) override;
  void layernorm_backward(A* dx, F* dw, F* db, const A* dout, const A* x, const F* w, const F* mean,
                          const F* rstd, int64_t n, int64_t C) override;
  void rmsnorm_forward(A* out, F* rstd, const A* x, const F* w, int64_t n, int64_t C,
                       F eps) override;
  void rmsnorm_backward(A* dx, F* dw, const A* dout, const A* x, const F* w, const F* rstd,
                        int64_t n, int64_t C) override;
  void groupnorm_forward(A* out, F* mean, F* rstd, const A* x, const F* w, const F* b, const A* g,
                         int64_t n, int64_t H, int64_t N, F eps) override;
  void groupnorm_backward(A* dx, F* dw, F* db, A* dg, const A* dout, const A* x, const F* w,
                          const F* b, const A* g, const F* mean, const F* rstd, int64_t n,
                          int64_t H, int64_t N) override;
  void l2norm_heads_forward(A* out, F* norm, const A* x, int64_t n, int64_t H, int64_t N,
                            F eps) override;
  void l2norm_heads_backward(A* dx, const A* dout, const A* out, const F* norm, const A* x,
                             int64_t n, int64_t H, int64_t N, F eps) override;
  void matmul_forward(A* out, int64_t ldo, const A* x, int64_t ldx, const A* w, int64_t M,
                      int64_t K, int64_t N, WLayout layout, bool accumulate) override;
  void matmul_backward(A* dx, F* dw, const A* dout, int64_t ldo, const A* x, int64_t ldx,
                       const A* w, int64_t M, int64_t K, int64_t N, WLayout layout,
                       bool accumulate_dx) override;
  void act_forward(Act act, A* out, const A* x, int64_t n) override;
  void act_backward(Act act, A* dx, const A* dout, const A* x, int64_t n) override;
  void mul_forward(A* out, const A* a, const A* b, int64_t n) override;
  void mul_backward(A* da, A* db, const A* dout, const A* a, const A* b, int64_t n) override;
  void add_forward(A* out, const A* a, const A* b, int64_t n) override;
  void scale_channels_forward(A* out, const A* x, const F* vec, int64_t n, int64_t C) override;
  void scale_channels_backward(A* dx, F* dvec, const A* dout, const A* x, const F* vec, int64_t n,
                               int64_t C) override;
  void bias_sigmoid_forward(A* out, const F* bias, const A* z, int64_t n, int64_t C) override;
  void bias_sigmoid_backward(F* dbias, A* dz, const A* dout, const A* out, int64_t n,
                             int64_t C) override;
  void shift_diff_forward(A* xx, const A* x, const F* prev, int64_t B, int64_t T,
                          int64_t C) override;
  void shift_diff_backward(A* dx, F* dprev, const A* dxx, int64_t B, int64_t T, int64_t C) override;
  void shift_last(F* last, const A* x, int64_t B, int64_t T, int64_t C) override;
  void mix_forward(std::span<A* const> outs, const A* x, const A* xx,
                   std::span<const F* const> coefs, std::span<const A* const> ms, bool one_minus,
                   int64_t n, int64_t C) override;
  void mix_backward(A* dx, A* dxx, std::span<F* const> dcoefs, std::span<A* const> dms,
                    std::span<const A* const> douts, const A* xx, std::span<const F* const> coefs,
                    std::span<const A* const> ms, bool one_minus, int64_t n, int64_t C) override;
  void decay_v4_forward(F* w, const F* time_decay, int64_t C) override;
  void decay_v4_backward(F* dtime_decay, const F* dw, const F* time_decay, int64_t C) override;
  void decay_v6_forward(A* lw, const F* time_decay, const A* ww, int64_t n, int64_t C) override;
  void decay_v6_backward(F* dtime_decay, A* dww, const A* dlw, const A* lw, int64_t n,
                         int64_t C) override;
  void decay_v7_forward(A* lw, const F* w0, const A* z, int64_t n, int64_t C) override;
  void decay_v7_backward(F* dw0, A* dz, const A* dlw, const F* w0, const A* z, int64_t n,
                         int64_t C) override;
  void value_residual_forward(A* out, const A* v, const A* v_first, const A* s, int64_t n) override;
  void value_residual_backward(A* dv, A* dv_first, A* ds, const A* dout, const A* v,
                               const A* v_first, const A* s, int64_t n) override;
  void key_adjust_forward(A* out, const A* k, const A* a, const F* k_a, int64_t n,
                          int64_t C) override;
  void key_adjust_backward(A* dk, A* da, F* dk_a, const A* dout, const A* k, const A* a,
                           const F* k_a, int64_t n, int64_t C) override;
  void wkv7_ab_forward(A* wa, A* wb, const A* kk, const A* a, int64_t n) override;
  void wkv7_ab_backward(A* dkk, A* da, const A* dwa, const A* dwb, const A* kk, const A* a,
                        int64_t n) override;
  void bonus_v7_forward(A* out, const A* r, const A* k, const A* v, const F* r_k, const A* g,
                        int64_t n, int64_t H, int64_t N) override;
  void bonus_v7_backward(A* dr, A* dk, A* dv, F* dr_k, A* dg, const A* dout, const A* r, const A* k,
                         const A* v, const F* r_k, const A* g, int64_t n, int64_t H,
                         int64_t N) override;
  void wkv4_forward(int B, int T, int C, int c0, int c1, const F* w, const F* u, const A* k,
                    const A* v, A* y, const F* state_in, F* state_out) override;
  void wkv4_backward(int B, int T, int C, int c0, int c1, const F* w, const F* u, const A* k,
                     const A* v, const A* dy, F* dw, F* du, A* dk, A* dv) override;
  void wkv6_forward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1, const A* r,
                    const A* k, const A* v, const A* lw, const F* u, A* y, const F* state_in,
                    F* state_out) override;
  void wkv6_backward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1, const A* r,
                     const A* k, const A* v, const A* lw, const F* u, const A* dy, A* dr, A* dk,
                     A* dv, A* dlw, F* du) override;
  void wkv7_forward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1, const A* r,
                    const A* lw, const A* k, const A* v, const A* a, const A* b, A* y,
                    const F* state_in, F* state_out) override;
  void wkv7_backward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1, const A* r,
                     const A* lw, const A* k, const A* v, const A* a, const A* b, const A* dy,
                     A* dr, A* dlw, A* dk, A* dv, A* da, A* db) override;
  void ce_local_max(F* max, int32_t* argmax, const A* logits, int64_t n, int64_t Vl,
                    int64_t v0) override;
  void ce_local_sums(F* sumexp, F* target_logit, const A* logits, const int32_t* targets,
                     const F* max, int64_t n, int64_t Vl, int64_t v0) override;
  void ce_loss(F* losses, const F* max, const F* sumexp, const F* target_logit, int64_t n) override;
  void ce_backward(A* dlogits, const A* logits, const int32_t* targets, const F* max,
                   const F* sumexp, const int32_t* argmax, int64_t n, int64_t Vl, int64_t v0,
                   F scale, F l2wrap_factor) override;
  void adamw_step(F* p, const F* g, F* m, F* v, std::span<const AdamWSegment> segments,
                  const AdamWHyper& h, int64_t t) override {
    fp32.adamw_step(p, g, m, v, segments, h, t);
  }
  double sum_squares(const F* x, int64_t n) override { return fp32.sum_squares(x, n); }
  void scale(F* x, F s, int64_t n) override { fp32.scale(x, s, n); }

  CpuBackend<float> fp32;  // runs every op, in the shadows

 private:
  struct Buffer {
    int64_t n;
    F* shadow;  // [n], from fp32.alloc
  };
  std::map<const A*, Buffer> buffers_;  // by start address
  // The shadow of p [0, n) (p anywhere inside an alloc_act buffer); null for null.
  F* shadow(const A* p, int64_t n) const;
  // p [0, n) widened into its shadow; returns the shadow (null for null).
  F* in(const A* p, int64_t n);
  // The shadow of p [0, n) rounded back into p (nothing for null).
  void out(A* p, int64_t n);
};

}  // namespace rwkv::kernels
