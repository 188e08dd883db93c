#pragma once
// The CPU backend: host memory, and the reference kernels of kernels/cpu/ (OpenBLAS
// for the products). See kernels/backend.h for the interface and its conventions.
#include <unordered_map>
#include <vector>

#include "kernels/backend.h"

namespace rwkv::kernels {

template <typename F>
struct CpuBackend final : Backend<F> {
  // wkv_chunk: the chunk length of the chunked WKV algorithms. threads: how many
  // threads the ops use (0 = one per CPU of the process's affinity mask). Products, WKV heads, rows
  // and elements are split between them (kernels/cpu/parallel.h); OpenBLAS itself is set to one
  // thread (openblas_set_num_threads(1), process-wide) so the two do not compete.
  explicit CpuBackend(int wkv_chunk = 16, int threads = 0);

  F* alloc(int64_t n) override;
  void free(F* p) override;
  int32_t* alloc_ids(int64_t n) override;
  void free_ids(int32_t* p) override;
  void zero(F* p, int64_t n) override;
  void copy(F* dst, const F* src, int64_t n) override;
  void upload(F* dst, const F* host, int64_t n) override;
  void download(F* host, const F* src, int64_t n) override;
  void upload_ids(int32_t* dst, const int32_t* host, int64_t n) override;
  // The activations are F too: their memory ops are those above.
  F* alloc_act(int64_t n) override { return alloc(n); }
  void free_act(F* p) override { free(p); }
  void zero_act(F* p, int64_t n) override { zero(p, n); }
  void copy_act(F* dst, const F* src, int64_t n) override { copy(dst, src, n); }
  void upload_act(F* dst, const F* host, int64_t n) override { upload(dst, host, n); }
  void download_act(F* host, const F* src, int64_t n) override { download(host, src, n); }
  void round_act(F* dst, const F* src, int64_t n) override { copy(dst, src, n); }
  void accumulate_act(F* dst, const F* src, int64_t n) override { accumulate(dst, src, n); }
  void embedding_forward(F* out, const int32_t* idx, const F* emb, int64_t n, int64_t C, int64_t v0,
                         int64_t v1) override;
  void embedding_backward(F* demb, const F* dout, const int32_t* idx, int64_t n, int64_t C,
                          int64_t v0, int64_t v1) override;
  void layernorm_forward(F* out, F* mean, F* rstd, const F* x, const F* w, const F* b, int64_t n,
                         int64_t C, F eps) override;
  void layernorm_backward(F* dx, F* dw, F* db, const F* dout, const F* x, const F* w, const F* mean,
                          const F* rstd, int64_t n, int64_t C) override;
  void rmsnorm_forward(F* out, F* rstd, const F* x, const F* w, int64_t n, int64_t C,
                       F eps) override;
  void rmsnorm_backward(F* dx, F* dw, const F* dout, const F* x, const F* w, const F* rstd,
                        int64_t n, int64_t C) override;
  void groupnorm_forward(F* out, F* mean, F* rstd, const F* x, const F* w, const F* b, const F* g,
                         int64_t n, int64_t H, int64_t N, F eps) override;
  void groupnorm_backward(F* dx, F* dw, F* db, F* dg, const F* dout, const F* x, const F* w,
                          const F* b, const F* g, const F* mean, const F* rstd, int64_t n,
                          int64_t H, int64_t N) override;
  void l2norm_heads_forward(F* out, F* norm, const F* x, int64_t n, int64_t H, int64_t N,
                            F eps) override;
  void l2norm_heads_backward(F* dx, const F* dout, const F* out, const F* norm, const F* x,
                             int64_t n, int64_t H, int64_t N, F eps) override;
  void matmul_forward(F* out, int64_t ldo, const F* x, int64_t ldx, const F* w, int64_t M,
                      int64_t K, int64_t N, WLayout layout, bool accumulate) override;
  void matmul_backward(F* dx, F* dw, const F* dout, int64_t ldo, const F* x, int64_t ldx,
                       const F* w, int64_t M, int64_t K, int64_t N, WLayout layout,
                       bool accumulate_dx) override;
  void act_forward(Act act, F* out, const F* x, int64_t n) override;
  void act_backward(Act act, F* dx, const F* dout, const F* x, int64_t n) override;
  void mul_forward(F* out, const F* a, const F* b, int64_t n) override;
  void mul_backward(F* da, F* db, const F* dout, const F* a, const F* b, int64_t n) override;
  void add_forward(F* out, const F* a, const F* b, int64_t n) override;
  void accumulate(F* dst, const F* src, int64_t n) override;
  void scale_channels_forward(F* out, const F* x, const F* vec, int64_t n, int64_t C) override;
  void scale_channels_backward(F* dx, F* dvec, const F* dout, const F* x, const F* vec, int64_t n,
                               int64_t C) override;
  void bias_sigmoid_forward(F* out, const F* bias, const F* z, int64_t n, int64_t C) override;
  void bias_sigmoid_backward(F* dbias, F* dz, const F* dout, const F* out, int64_t n,
                             int64_t C) override;
  void shift_diff_forward(F* xx, const F* x, const F* prev, int64_t B, int64_t T,
                          int64_t C) override;
  void shift_diff_backward(F* dx, F* dprev, const F* dxx, int64_t B, int64_t T, int64_t C) override;
  void shift_last(F* last, const F* x, int64_t B, int64_t T, int64_t C) override;
  void mix_forward(std::span<F* const> outs, const F* x, const F* xx,
                   std::span<const F* const> coefs, std::span<const F* const> ms, bool one_minus,
                   int64_t n, int64_t C) override;
  void mix_backward(F* dx, F* dxx, std::span<F* const> dcoefs, std::span<F* const> dms,
                    std::span<const F* const> douts, const F* xx, std::span<const F* const> coefs,
                    std::span<const F* const> ms, bool one_minus, int64_t n, int64_t C) override;
  void decay_v4_forward(F* w, const F* time_decay, int64_t C) override;
  void decay_v4_backward(F* dtime_decay, const F* dw, const F* time_decay, int64_t C) override;
  void decay_v6_forward(F* lw, const F* time_decay, const F* ww, int64_t n, int64_t C) override;
  void decay_v6_backward(F* dtime_decay, F* dww, const F* dlw, const F* lw, int64_t n,
                         int64_t C) override;
  void decay_v7_forward(F* lw, const F* w0, const F* z, int64_t n, int64_t C) override;
  void decay_v7_backward(F* dw0, F* dz, const F* dlw, const F* w0, const F* z, int64_t n,
                         int64_t C) override;
  void value_residual_forward(F* out, const F* v, const F* v_first, const F* s, int64_t n) override;
  void value_residual_backward(F* dv, F* dv_first, F* ds, const F* dout, const F* v,
                               const F* v_first, const F* s, int64_t n) override;
  void key_adjust_forward(F* out, const F* k, const F* a, const F* k_a, int64_t n,
                          int64_t C) override;
  void key_adjust_backward(F* dk, F* da, F* dk_a, const F* dout, const F* k, const F* a,
                           const F* k_a, int64_t n, int64_t C) override;
  void wkv7_ab_forward(F* wa, F* wb, const F* kk, const F* a, int64_t n) override;
  void wkv7_ab_backward(F* dkk, F* da, const F* dwa, const F* dwb, const F* kk, const F* a,
                        int64_t n) override;
  void bonus_v7_forward(F* out, const F* r, const F* k, const F* v, const F* r_k, const F* g,
                        int64_t n, int64_t H, int64_t N) override;
  void bonus_v7_backward(F* dr, F* dk, F* dv, F* dr_k, F* dg, const F* dout, const F* r, const F* k,
                         const F* v, const F* r_k, const F* g, int64_t n, int64_t H,
                         int64_t N) override;
  void wkv4_forward(int B, int T, int C, int c0, int c1, const F* w, const F* u, const F* k,
                    const F* v, F* y, const F* state_in, F* state_out) override;
  void wkv4_backward(int B, int T, int C, int c0, int c1, const F* w, const F* u, const F* k,
                     const F* v, const F* dy, F* dw, F* du, F* dk, F* dv) override;
  void wkv6_forward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1, const F* r,
                    const F* k, const F* v, const F* lw, const F* u, F* y, const F* state_in,
                    F* state_out) override;
  void wkv6_backward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1, const F* r,
                     const F* k, const F* v, const F* lw, const F* u, const F* dy, F* dr, F* dk,
                     F* dv, F* dlw, F* du) override;
  void wkv7_forward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1, const F* r,
                    const F* lw, const F* k, const F* v, const F* a, const F* b, F* y,
                    const F* state_in, F* state_out) override;
  void wkv7_backward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1, const F* r,
                     const F* lw, const F* k, const F* v, const F* a, const F* b, const F* dy,
                     F* dr, F* dlw, F* dk, F* dv, F* da, F* db) override;
  void ce_local_max(F* max, int32_t* argmax, const F* logits, int64_t n, int64_t Vl,
                    int64_t v0) override;
  void ce_local_sums(F* sumexp, F* target_logit, const F* logits, const int32_t* targets,
                     const F* max, int64_t n, int64_t Vl, int64_t v0) override;
  void ce_loss(F* losses, const F* max, const F* sumexp, const F* target_logit, int64_t n) override;
  void ce_backward(F* dlogits, const F* logits, const int32_t* targets, const F* max,
                   const F* sumexp, const int32_t* argmax, int64_t n, int64_t Vl, int64_t v0,
                   F scale, F l2wrap_factor) override;
  void adamw_step(F* p, const F* g, F* m, F* v, std::span<const AdamWSegment> segments,
                  const AdamWHyper& h, int64_t t) override;
  double sum_squares(const F* x, int64_t n) override;
  void scale(F* x, F s, int64_t n) override;

  // Floats held in the chunked WKV7 forwards' checkpoints (below), beside alloc's blocks.
  size_t checkpoint_floats() const;

  int wkv_chunk;
  int threads;

 private:
  // The checkpoints of the chunked WKV7 forward (kernels/cpu/wkv7.h: the state entering
  // every chunk and its values S a), by the forward's r (each layer's activations have
  // their own): the backward with the same r, shape, head range, chunk and threads
  // (which split the heads, and chunks end where a thread's heads decay fast) reads them
  // instead of recomputing the states. A naive forward drops them.
  struct WkvCheckpoints {
    std::vector<F> data;
    int B, T, H, N, h0, h1, chunk, threads;
  };
  std::unordered_map<const F*, WkvCheckpoints> wkv_ckpt_;  // dropped with r's block
  std::unordered_map<const F*, size_t> sizes_;             // alloc's blocks: values
  F* forward_checkpoints(WkvAlgo algo, const F* r, size_t floats, int B, int T, int H, int N,
                         int h0, int h1);
  const F* saved_checkpoints(WkvAlgo algo, const F* r, int B, int T, int H, int N, int h0,
                             int h1) const;
};

extern template struct CpuBackend<float>;
extern template struct CpuBackend<double>;

}  // namespace rwkv::kernels
