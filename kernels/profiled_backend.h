#pragma once
// Where a training step's time goes, op by op: ProfiledBackend wraps any backend,
// forwards every call to it unchanged and times each one with an OpClock, summed per
// op name. HostOpClock reads the wall clock around each call (the CPU backend's ops
// are synchronous); kernels/cuda/op_clock_cuda.h records CUDA events on the backend's
// stream instead (its ops are queued, not run, when the call returns). Used by the
// training-step benchmarks (bench/bench_train_step_ops.cpp, bench/cuda/bench_cuda_train.cu).
#include <chrono>
#include <compare>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "kernels/backend.h"

namespace rwkv::kernels {

struct OpTotal {
  int64_t calls = 0;
  double ms = 0;
};

// Times the ops of a ProfiledBackend: start(op) just before the call, stop(op) just
// after (one op at a time), totals() what was measured since the last reset().
struct OpClock {
  virtual ~OpClock() = default;
  virtual void start(const char* op) = 0;
  virtual void stop(const char* op) = 0;
  virtual std::map<std::string, OpTotal> totals() = 0;
  virtual void reset() = 0;
};

struct HostOpClock final : OpClock {
  void start(const char*) override { t0 = std::chrono::steady_clock::now(); }
  void stop(const char* op) override {
    OpTotal& t = sums[op];
    ++t.calls;
    t.ms +=
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }
  std::map<std::string, OpTotal> totals() override { return sums; }
  void reset() override { sums.clear(); }

  std::chrono::steady_clock::time_point t0;
  std::map<std::string, OpTotal> sums;
};

// The per-op table: ops by decreasing time, with calls and ms per step and the share of
// the ops' total; `steps` divides the totals.
std::string format_op_profile(const std::map<std::string, OpTotal>& totals, int steps);

// One matrix product as the model asked for it (matmul_forward or matmul_backward), for
// the benchmarks that time a model's products again shape by shape
// (bench/cuda/bench_cuda_matmul.cu).
struct ProductCall {
  bool backward = false;
  int64_t M = 0, K = 0, N = 0;
  int64_t ldx = 0, ldo = 0;  // leading dimensions of x (and dx) and of out (or dout)
  WLayout layout = WLayout::OutIn;
  bool accumulate = false;      // forward: out +=; backward: dx += (dw always accumulates)
  bool dx = false, dw = false;  // backward: the gradients asked for
  auto operator<=>(const ProductCall&) const = default;
};

// clock may be null or changed between steps: no timing while it is null. products may be
// null too: when set, every product is appended to it.
template <typename F, typename A = F>
struct ProfiledBackend final : Backend<F, A> {
  ProfiledBackend(Backend<F, A>& inner_, OpClock* clock_) : inner(inner_), clock(clock_) {}

  F* alloc(int64_t n) override {
    const Timed timed(clock, "alloc");
    return inner.alloc(n);
  }
  void free(F* p) override {
    const Timed timed(clock, "free");
    inner.free(p);
  }
  int32_t* alloc_ids(int64_t n) override {
    const Timed timed(clock, "alloc_ids");
    return inner.alloc_ids(n);
  }
  void free_ids(int32_t* p) override {
    const Timed timed(clock, "free_ids");
    inner.free_ids(p);
  }
  void zero(F* p, int64_t n) override {
    const Timed timed(clock, "zero");
    inner.zero(p, n);
  }
  void copy(F* dst, const F* src, int64_t n) override {
    const Timed timed(clock, "copy");
    inner.copy(dst, src, n);
  }
  void upload(F* dst, const F* host, int64_t n) override {
    const Timed timed(clock, "upload");
    inner.upload(dst, host, n);
  }
  void download(F* host, const F* src, int64_t n) override {
    const Timed timed(clock, "download");
    inner.download(host, src, n);
  }
  void upload_ids(int32_t* dst, const int32_t* host, int64_t n) override {
    const Timed timed(clock, "upload_ids");
    inner.upload_ids(dst, host, n);
  }
  void accumulate(F* dst, const F* src, int64_t n) override {
    const Timed timed(clock, "accumulate");
    inner.accumulate(dst, src, n);
  }
  A* alloc_act(int64_t n) override {
    const Timed timed(clock, "alloc_act");
    return inner.alloc_act(n);
  }
  void free_act(A* p) override {
    const Timed timed(clock, "free_act");
    inner.free_act(p);
  }
  void zero_act(A* p, int64_t n) override {
    const Timed timed(clock, "zero_act");
    inner.zero_act(p, n);
  }
  void copy_act(A* dst, const A* src, int64_t n) override {
    const Timed timed(clock, "copy_act");
    inner.copy_act(dst, src, n);
  }
  void upload_act(A* dst, const F* host, int64_t n) override {
    const Timed timed(clock, "upload_act");
    inner.upload_act(dst, host, n);
  }
  void download_act(F* host, const A* src, int64_t n) override {
    const Timed timed(clock, "download_act");
    inner.download_act(host, src, n);
  }
  void round_act(A* dst, const F* src, int64_t n) override {
    const Timed timed(clock, "round_act");
    inner.round_act(dst, src, n);
  }
  void accumulate_act(A* dst, const A* src, int64_t n) override {
    const Timed timed(clock, "accumulate_act");
    inner.accumulate_act(dst, src, n);
  }
  void embedding_forward(A* out, const int32_t* idx, const F* emb, int64_t n, int64_t C, int64_t v0,
                         int64_t v1) override {
    const Timed timed(clock, "embedding_forward");
    inner.embedding_forward(out, idx, emb, n, C, v0, v1);
  }
  void embedding_backward(F* demb, const A* dout, const int32_t* idx, int64_t n, int64_t C,
                          int64_t v0, int64_t v1) override {
    const Timed timed(clock, "embedding_backward");
    inner.embedding_backward(demb, dout, idx, n, C, v0, v1);
  }
  void layernorm_forward(A* out, F* mean, F* rstd, const A* x, const F* w, const F* b, int64_t n,
                         int64_t C, F eps) override {
    const Timed timed(clock, "layernorm_forward");
    inner.layernorm_forward(out, mean, rstd, x, w, b, n, C, eps);
  }
  void layernorm_backward(A* dx, F* dw, F* db, const A* dout, const A* x, const F* w, const F* mean,
                          const F* rstd, int64_t n, int64_t C) override {
    const Timed timed(clock, "layernorm_backward");
    inner.layernorm_backward(dx, dw, db, dout, x, w, mean, rstd, n, C);
  }
  void rmsnorm_forward(A* out, F* rstd, const A* x, const F* w, int64_t n, int64_t C,
                       F eps) override {
    const Timed timed(clock, "rmsnorm_forward");
    inner.rmsnorm_forward(out, rstd, x, w, n, C, eps);
  }
  void rmsnorm_backward(A* dx, F* dw, const A* dout, const A* x, const F* w, const F* rstd,
                        int64_t n, int64_t C) override {
    const Timed timed(clock, "rmsnorm_backward");
    inner.rmsnorm_backward(dx, dw, dout, x, w, rstd, n, C);
  }
  void groupnorm_forward(A* out, F* mean, F* rstd, const A* x, const F* w, const F* b, const A* g,
                         int64_t n, int64_t H, int64_t N, F eps) override {
    const Timed timed(clock, "groupnorm_forward");
    inner.groupnorm_forward(out, mean, rstd, x, w, b, g, n, H, N, eps);
  }
  void groupnorm_backward(A* dx, F* dw, F* db, A* dg, const A* dout, const A* x, const F* w,
                          const F* b, const A* g, const F* mean, const F* rstd, int64_t n,
                          int64_t H, int64_t N) override {
    const Timed timed(clock, "groupnorm_backward");
    inner.groupnorm_backward(dx, dw, db, dg, dout, x, w, b, g, mean, rstd, n, H, N);
  }
  void l2norm_heads_forward(A* out, F* norm, const A* x, int64_t n, int64_t H, int64_t N,
                            F eps) override {
    const Timed timed(clock, "l2norm_heads_forward");
    inner.l2norm_heads_forward(out, norm, x, n, H, N, eps);
  }
  void l2norm_heads_backward(A* dx, const A* dout, const A* out, const F* norm, const A* x,
                             int64_t n, int64_t H, int64_t N, F eps) override {
    const Timed timed(clock, "l2norm_heads_backward");
    inner.l2norm_heads_backward(dx, dout, out, norm, x, n, H, N, eps);
  }
  void matmul_forward(A* out, int64_t ldo, const A* x, int64_t ldx, const A* w, int64_t M,
                      int64_t K, int64_t N, WLayout layout, bool accumulate) override {
    if (products) products->push_back({false, M, K, N, ldx, ldo, layout, accumulate, false, false});
    const Timed timed(clock, "matmul_forward");
    inner.matmul_forward(out, ldo, x, ldx, w, M, K, N, layout, accumulate);
  }
  void matmul_backward(A* dx, F* dw, const A* dout, int64_t ldo, const A* x, int64_t ldx,
                       const A* w, int64_t M, int64_t K, int64_t N, WLayout layout,
                       bool accumulate_dx) override {
    if (products)
      products->push_back(
          {true, M, K, N, ldx, ldo, layout, accumulate_dx, dx != nullptr, dw != nullptr});
    const Timed timed(clock, "matmul_backward");
    inner.matmul_backward(dx, dw, dout, ldo, x, ldx, w, M, K, N, layout, accumulate_dx);
  }
  void act_forward(Act act, A* out, const A* x, int64_t n) override {
    const Timed timed(clock, "act_forward");
    inner.act_forward(act, out, x, n);
  }
  void act_backward(Act act, A* dx, const A* dout, const A* x, int64_t n) override {
    const Timed timed(clock, "act_backward");
    inner.act_backward(act, dx, dout, x, n);
  }
  void mul_forward(A* out, const A* a, const A* b, int64_t n) override {
    const Timed timed(clock, "mul_forward");
    inner.mul_forward(out, a, b, n);
  }
  void mul_backward(A* da, A* db, const A* dout, const A* a, const A* b, int64_t n) override {
    const Timed timed(clock, "mul_backward");
    inner.mul_backward(da, db, dout, a, b, n);
  }
  void add_forward(A* out, const A* a, const A* b, int64_t n) override {
    const Timed timed(clock, "add_forward");
    inner.add_forward(out, a, b, n);
  }
  void scale_channels_forward(A* out, const A* x, const F* vec, int64_t n, int64_t C) override {
    const Timed timed(clock, "scale_channels_forward");
    inner.scale_channels_forward(out, x, vec, n, C);
  }
  void scale_channels_backward(A* dx, F* dvec, const A* dout, const A* x, const F* vec, int64_t n,
                               int64_t C) override {
    const Timed timed(clock, "scale_channels_backward");
    inner.scale_channels_backward(dx, dvec, dout, x, vec, n, C);
  }
  void bias_sigmoid_forward(A* out, const F* bias, const A* z, int64_t n, int64_t C) override {
    const Timed timed(clock, "bias_sigmoid_forward");
    inner.bias_sigmoid_forward(out, bias, z, n, C);
  }
  void bias_sigmoid_backward(F* dbias, A* dz, const A* dout, const A* out, int64_t n,
                             int64_t C) override {
    const Timed timed(clock, "bias_sigmoid_backward");
    inner.bias_sigmoid_backward(dbias, dz, dout, out, n, C);
  }
  void shift_diff_forward(A* xx, const A* x, const F* prev, int64_t B, int64_t T,
                          int64_t C) override {
    const Timed timed(clock, "shift_diff_forward");
    inner.shift_diff_forward(xx, x, prev, B, T, C);
  }
  void shift_diff_backward(A* dx, F* dprev, const A* dxx, int64_t B, int64_t T,
                           int64_t C) override {
    const Timed timed(clock, "shift_diff_backward");
    inner.shift_diff_backward(dx, dprev, dxx, B, T, C);
  }
  void shift_last(F* last, const A* x, int64_t B, int64_t T, int64_t C) override {
    const Timed timed(clock, "shift_last");
    inner.shift_last(last, x, B, T, C);
  }
  void mix_forward(std::span<A* const> outs, const A* x, const A* xx,
                   std::span<const F* const> coefs, std::span<const A* const> ms, bool one_minus,
                   int64_t n, int64_t C) override {
    const Timed timed(clock, "mix_forward");
    inner.mix_forward(outs, x, xx, coefs, ms, one_minus, n, C);
  }
  void mix_backward(A* dx, A* dxx, std::span<F* const> dcoefs, std::span<A* const> dms,
                    std::span<const A* const> douts, const A* xx, std::span<const F* const> coefs,
                    std::span<const A* const> ms, bool one_minus, int64_t n, int64_t C) override {
    const Timed timed(clock, "mix_backward");
    inner.mix_backward(dx, dxx, dcoefs, dms, douts, xx, coefs, ms, one_minus, n, C);
  }
  void decay_v4_forward(F* w, const F* time_decay, int64_t C) override {
    const Timed timed(clock, "decay_v4_forward");
    inner.decay_v4_forward(w, time_decay, C);
  }
  void decay_v4_backward(F* dtime_decay, const F* dw, const F* time_decay, int64_t C) override {
    const Timed timed(clock, "decay_v4_backward");
    inner.decay_v4_backward(dtime_decay, dw, time_decay, C);
  }
  void decay_v6_forward(A* lw, const F* time_decay, const A* ww, int64_t n, int64_t C) override {
    const Timed timed(clock, "decay_v6_forward");
    inner.decay_v6_forward(lw, time_decay, ww, n, C);
  }
  void decay_v6_backward(F* dtime_decay, A* dww, const A* dlw, const A* lw, int64_t n,
                         int64_t C) override {
    const Timed timed(clock, "decay_v6_backward");
    inner.decay_v6_backward(dtime_decay, dww, dlw, lw, n, C);
  }
  void decay_v7_forward(A* lw, const F* w0, const A* z, int64_t n, int64_t C) override {
    const Timed timed(clock, "decay_v7_forward");
    inner.decay_v7_forward(lw, w0, z, n, C);
  }
  void decay_v7_backward(F* dw0, A* dz, const A* dlw, const F* w0, const A* z, int64_t n,
                         int64_t C) override {
    const Timed timed(clock, "decay_v7_backward");
    inner.decay_v7_backward(dw0, dz, dlw, w0, z, n, C);
  }
  void value_residual_forward(A* out, const A* v, const A* v_first, const A* s,
                              int64_t n) override {
    const Timed timed(clock, "value_residual_forward");
    inner.value_residual_forward(out, v, v_first, s, n);
  }
  void value_residual_backward(A* dv, A* dv_first, A* ds, const A* dout, const A* v,
                               const A* v_first, const A* s, int64_t n) override {
    const Timed timed(clock, "value_residual_backward");
    inner.value_residual_backward(dv, dv_first, ds, dout, v, v_first, s, n);
  }
  void key_adjust_forward(A* out, const A* k, const A* a, const F* k_a, int64_t n,
                          int64_t C) override {
    const Timed timed(clock, "key_adjust_forward");
    inner.key_adjust_forward(out, k, a, k_a, n, C);
  }
  void key_adjust_backward(A* dk, A* da, F* dk_a, const A* dout, const A* k, const A* a,
                           const F* k_a, int64_t n, int64_t C) override {
    const Timed timed(clock, "key_adjust_backward");
    inner.key_adjust_backward(dk, da, dk_a, dout, k, a, k_a, n, C);
  }
  void wkv7_ab_forward(A* wa, A* wb, const A* kk, const A* a, int64_t n) override {
    const Timed timed(clock, "wkv7_ab_forward");
    inner.wkv7_ab_forward(wa, wb, kk, a, n);
  }
  void wkv7_ab_backward(A* dkk, A* da, const A* dwa, const A* dwb, const A* kk, const A* a,
                        int64_t n) override {
    const Timed timed(clock, "wkv7_ab_backward");
    inner.wkv7_ab_backward(dkk, da, dwa, dwb, kk, a, n);
  }
  void bonus_v7_forward(A* out, const A* r, const A* k, const A* v, const F* r_k, const A* g,
                        int64_t n, int64_t H, int64_t N) override {
    const Timed timed(clock, "bonus_v7_forward");
    inner.bonus_v7_forward(out, r, k, v, r_k, g, n, H, N);
  }
  void bonus_v7_backward(A* dr, A* dk, A* dv, F* dr_k, A* dg, const A* dout, const A* r, const A* k,
                         const A* v, const F* r_k, const A* g, int64_t n, int64_t H,
                         int64_t N) override {
    const Timed timed(clock, "bonus_v7_backward");
    inner.bonus_v7_backward(dr, dk, dv, dr_k, dg, dout, r, k, v, r_k, g, n, H, N);
  }
  void wkv4_forward(int B, int T, int C, int c0, int c1, const F* w, const F* u, const A* k,
                    const A* v, A* y, const F* state_in, F* state_out) override {
    const Timed timed(clock, "wkv4_forward");
    inner.wkv4_forward(B, T, C, c0, c1, w, u, k, v, y, state_in, state_out);
  }
  void wkv4_backward(int B, int T, int C, int c0, int c1, const F* w, const F* u, const A* k,
                     const A* v, const A* dy, F* dw, F* du, A* dk, A* dv) override {
    const Timed timed(clock, "wkv4_backward");
    inner.wkv4_backward(B, T, C, c0, c1, w, u, k, v, dy, dw, du, dk, dv);
  }
  void wkv6_forward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1, const A* r,
                    const A* k, const A* v, const A* lw, const F* u, A* y, const F* state_in,
                    F* state_out) override {
    const Timed timed(clock, "wkv6_forward");
    inner.wkv6_forward(algo, B, T, H, N, h0, h1, r, k, v, lw, u, y, state_in, state_out);
  }
  void wkv6_backward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1, const A* r,
                     const A* k, const A* v, const A* lw, const F* u, const A* dy, A* dr, A* dk,
                     A* dv, A* dlw, F* du) override {
    const Timed timed(clock, "wkv6_backward");
    inner.wkv6_backward(algo, B, T, H, N, h0, h1, r, k, v, lw, u, dy, dr, dk, dv, dlw, du);
  }
  void wkv7_forward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1, const A* r,
                    const A* lw, const A* k, const A* v, const A* a, const A* b, A* y,
                    const F* state_in, F* state_out) override {
    const Timed timed(clock, "wkv7_forward");
    inner.wkv7_forward(algo, B, T, H, N, h0, h1, r, lw, k, v, a, b, y, state_in, state_out);
  }
  void wkv7_backward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1, const A* r,
                     const A* lw, const A* k, const A* v, const A* a, const A* b, const A* dy,
                     A* dr, A* dlw, A* dk, A* dv, A* da, A* db) override {
    const Timed timed(clock, "wkv7_backward");
    inner.wkv7_backward(algo, B, T, H, N, h0, h1, r, lw, k, v, a, b, dy, dr, dlw, dk, dv, da, db);
  }
  void ce_local_max(F* max, int32_t* argmax, const A* logits, int64_t n, int64_t Vl,
                    int64_t v0) override {
    const Timed timed(clock, "ce_local_max");
    inner.ce_local_max(max, argmax, logits, n, Vl, v0);
  }
  void ce_local_sums(F* sumexp, F* target_logit, const A* logits, const int32_t* targets,
                     const F* max, int64_t n, int64_t Vl, int64_t v0) override {
    const Timed timed(clock, "ce_local_sums");
    inner.ce_local_sums(sumexp, target_logit, logits, targets, max, n, Vl, v0);
  }
  void ce_loss(F* losses, const F* max, const F* sumexp, const F* target_logit,
               int64_t n) override {
    const Timed timed(clock, "ce_loss");
    inner.ce_loss(losses, max, sumexp, target_logit, n);
  }
  void ce_backward(A* dlogits, const A* logits, const int32_t* targets, const F* max,
                   const F* sumexp, const int32_t* argmax, int64_t n, int64_t Vl, int64_t v0,
                   F scale, F l2wrap_factor) override {
    const Timed timed(clock, "ce_backward");
    inner.ce_backward(dlogits, logits, targets, max, sumexp, argmax, n, Vl, v0, scale,
                      l2wrap_factor);
  }
  void adamw_step(F* p, const F* g, F* m, F* v, std::span<const AdamWSegment> segments,
                  const AdamWHyper& h, int64_t t) override {
    const Timed timed(clock, "adamw_step");
    inner.adamw_step(p, g, m, v, segments, h, t);
  }
  double sum_squares(const F* x, int64_t n) override {
    const Timed timed(clock, "sum_squares");
    return inner.sum_squares(x, n);
  }
  void scale(F* x, F s, int64_t n) override {
    const Timed timed(clock, "scale");
    inner.scale(x, s, n);
  }

  Backend<F, A>& inner;
  OpClock* clock;
  std::vector<ProductCall>* products = nullptr;

 private:
  struct Timed {
    Timed(OpClock* c, const char* op) : clock(c), name(op) {
      if (clock) clock->start(name);
    }
    ~Timed() {
      if (clock) clock->stop(name);
    }
    Timed(const Timed&) = delete;
    Timed& operator=(const Timed&) = delete;
    OpClock* clock;
    const char* name;
  };
};

}  // namespace rwkv::kernels
