#include "kernels/cpu/bf16_activations.h"

#include <algorithm>
#include <cstring>
#include <sstream>

#include "common/error.h"

namespace rwkv::kernels {

using cuda::from_float;
using cuda::to_float;

namespace {

// Elements a row-major [rows, cols] view with leading dimension ld spans.
int64_t span_of(int64_t rows, int64_t cols, int64_t ld) {
  return rows > 0 && cols > 0 ? (rows - 1) * ld + cols : 0;
}

}  // namespace

CpuBf16Backend::CpuBf16Backend(int wkv_chunk, int threads) : fp32(wkv_chunk, threads) {}

CpuBf16Backend::~CpuBf16Backend() {
  for (auto& [p, buf] : buffers_) {
    fp32.free(buf.shadow);
    delete[] p;
  }
}

Bf16* CpuBf16Backend::alloc_act(int64_t n) {
  A* p = new A[static_cast<size_t>(std::max<int64_t>(n, 1))]();
  buffers_[p] = {n, fp32.alloc(std::max<int64_t>(n, 1))};
  return p;
}

void CpuBf16Backend::free_act(A* p) {
  const auto it = buffers_.find(p);
  if (it == buffers_.end()) throw Error("CpuBf16Backend::free_act: not a buffer of alloc_act");
  fp32.free(it->second.shadow);
  buffers_.erase(it);
  delete[] p;
}

float* CpuBf16Backend::shadow(const A* p, int64_t n) const {
  if (p == nullptr) return nullptr;
  auto it = buffers_.upper_bound(p);
  const bool inside = it != buffers_.begin() && (--it, p - it->first + n <= it->second.n);
  if (!inside) {
    std::ostringstream msg;
    msg << "CpuBf16Backend: " << n << " values at " << static_cast<const void*>(p)
        << " are not inside one buffer of alloc_act";
    throw Error(msg.str());
  }
  return it->second.shadow + (p - it->first);
}

float* CpuBf16Backend::in(const A* p, int64_t n) {
  if (p == nullptr) return nullptr;
  F* s = shadow(p, n);
  for (int64_t i = 0; i < n; ++i) s[i] = to_float(p[i]);
  return s;
}

void CpuBf16Backend::out(A* p, int64_t n) {
  if (p == nullptr) return;
  const F* s = shadow(p, n);
  for (int64_t i = 0; i < n; ++i) p[i] = from_float<A>(s[i]);
}

void CpuBf16Backend::zero_act(A* p, int64_t n) { std::memset(p, 0, sizeof(A) * size_t(n)); }

void CpuBf16Backend::copy_act(A* dst, const A* src, int64_t n) {
  std::memmove(dst, src, sizeof(A) * size_t(n));
}

void CpuBf16Backend::upload_act(A* dst, const F* host, int64_t n) { round_act(dst, host, n); }

void CpuBf16Backend::download_act(F* host, const A* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) host[i] = to_float(src[i]);
}

void CpuBf16Backend::round_act(A* dst, const F* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = from_float<A>(src[i]);
}

void CpuBf16Backend::accumulate_act(A* dst, const A* src, int64_t n) {
  fp32.accumulate(in(dst, n), in(src, n), n);
  out(dst, n);
}

void CpuBf16Backend::embedding_forward(A* out_, const int32_t* idx, const F* emb, int64_t n,
                                       int64_t C, int64_t v0, int64_t v1) {
  fp32.embedding_forward(in(out_, n * C), idx, emb, n, C, v0, v1);
  out(out_, n * C);
}

void CpuBf16Backend::embedding_backward(F* demb, const A* dout, const int32_t* idx, int64_t n,
                                        int64_t C, int64_t v0, int64_t v1) {
  fp32.embedding_backward(demb, in(dout, n * C), idx, n, C, v0, v1);
}

void CpuBf16Backend::layernorm_forward(A* o, F* mean, F* rstd, const A* x, const F* w, const F* b,
                                       int64_t n, int64_t C, F eps) {
  fp32.layernorm_forward(in(o, n * C), mean, rstd, in(x, n * C), w, b, n, C, eps);
  out(o, n * C);
}

void CpuBf16Backend::layernorm_backward(A* dx, F* dw, F* db, const A* dout, const A* x, const F* w,
                                        const F* mean, const F* rstd, int64_t n, int64_t C) {
  fp32.layernorm_backward(in(dx, n * C), dw, db, in(dout, n * C), in(x, n * C), w, mean, rstd, n,
                          C);
  out(dx, n * C);
}

void CpuBf16Backend::rmsnorm_forward(A* o, F* rstd, const A* x, const F* w, int64_t n, int64_t C,
                                     F eps) {
  fp32.rmsnorm_forward(in(o, n * C), rstd, in(x, n * C), w, n, C, eps);
  out(o, n * C);
}

void CpuBf16Backend::rmsnorm_backward(A* dx, F* dw, const A* dout, const A* x, const F* w,
                                      const F* rstd, int64_t n, int64_t C) {
  fp32.rmsnorm_backward(in(dx, n * C), dw, in(dout, n * C), in(x, n * C), w, rstd, n, C);
  out(dx, n * C);
}

void CpuBf16Backend::groupnorm_forward(A* o, F* mean, F* rstd, const A* x, const F* w, const F* b,
                                       const A* g, int64_t n, int64_t H, int64_t N, F eps) {
  const int64_t s = n * H * N;
  fp32.groupnorm_forward(in(o, s), mean, rstd, in(x, s), w, b, in(g, s), n, H, N, eps);
  out(o, s);
}

void CpuBf16Backend::groupnorm_backward(A* dx, F* dw, F* db, A* dg, const A* dout, const A* x,
                                        const F* w, const F* b, const A* g, const F* mean,
                                        const F* rstd, int64_t n, int64_t H, int64_t N) {
  const int64_t s = n * H * N;
  fp32.groupnorm_backward(in(dx, s), dw, db, in(dg, s), in(dout, s), in(x, s), w, b, in(g, s), mean,
                          rstd, n, H, N);
  out(dx, s);
  out(dg, s);
}

void CpuBf16Backend::l2norm_heads_forward(A* o, F* norm, const A* x, int64_t n, int64_t H,
                                          int64_t N, F eps) {
  fp32.l2norm_heads_forward(in(o, n * H * N), norm, in(x, n * H * N), n, H, N, eps);
  out(o, n * H * N);
}

void CpuBf16Backend::l2norm_heads_backward(A* dx, const A* dout, const A* o, const F* norm,
                                           const A* x, int64_t n, int64_t H, int64_t N, F eps) {
  const int64_t s = n * H * N;
  fp32.l2norm_heads_backward(in(dx, s), in(dout, s), in(o, s), norm, in(x, s), n, H, N, eps);
  out(dx, s);
}

void CpuBf16Backend::matmul_forward(A* o, int64_t ldo, const A* x, int64_t ldx, const A* w,
                                    int64_t M, int64_t K, int64_t N, WLayout layout,
                                    bool accumulate) {
  fp32.matmul_forward(in(o, span_of(M, N, ldo)), ldo, in(x, span_of(M, K, ldx)), ldx, in(w, K * N),
                      M, K, N, layout, accumulate);
  out(o, span_of(M, N, ldo));
}

void CpuBf16Backend::matmul_backward(A* dx, F* dw, const A* dout, int64_t ldo, const A* x,
                                     int64_t ldx, const A* w, int64_t M, int64_t K, int64_t N,
                                     WLayout layout, bool accumulate_dx) {
  fp32.matmul_backward(in(dx, span_of(M, K, ldx)), dw, in(dout, span_of(M, N, ldo)), ldo,
                       in(x, span_of(M, K, ldx)), ldx, in(w, K * N), M, K, N, layout,
                       accumulate_dx);
  out(dx, span_of(M, K, ldx));
}

void CpuBf16Backend::act_forward(Act act, A* o, const A* x, int64_t n) {
  fp32.act_forward(act, in(o, n), in(x, n), n);
  out(o, n);
}

void CpuBf16Backend::act_backward(Act act, A* dx, const A* dout, const A* x, int64_t n) {
  fp32.act_backward(act, in(dx, n), in(dout, n), in(x, n), n);
  out(dx, n);
}

void CpuBf16Backend::mul_forward(A* o, const A* a, const A* b, int64_t n) {
  fp32.mul_forward(in(o, n), in(a, n), in(b, n), n);
  out(o, n);
}

void CpuBf16Backend::mul_backward(A* da, A* db, const A* dout, const A* a, const A* b, int64_t n) {
  fp32.mul_backward(in(da, n), in(db, n), in(dout, n), in(a, n), in(b, n), n);
  out(da, n);
  out(db, n);
}

void CpuBf16Backend::add_forward(A* o, const A* a, const A* b, int64_t n) {
  fp32.add_forward(in(o, n), in(a, n), in(b, n), n);
  out(o, n);
}

void CpuBf16Backend::scale_channels_forward(A* o, const A* x, const F* vec, int64_t n, int64_t C) {
  fp32.scale_channels_forward(in(o, n * C), in(x, n * C), vec, n, C);
  out(o, n * C);
}

void CpuBf16Backend::scale_channels_backward(A* dx, F* dvec, const A* dout, const A* x,
                                             const F* vec, int64_t n, int64_t C) {
  fp32.scale_channels_backward(in(dx, n * C), dvec, in(dout, n * C), in(x, n * C), vec, n, C);
  out(dx, n * C);
}

void CpuBf16Backend::bias_sigmoid_forward(A* o, const F* bias, const A* z, int64_t n, int64_t C) {
  fp32.bias_sigmoid_forward(in(o, n * C), bias, in(z, n * C), n, C);
  out(o, n * C);
}

void CpuBf16Backend::bias_sigmoid_backward(F* dbias, A* dz, const A* dout, const A* o, int64_t n,
                                           int64_t C) {
  fp32.bias_sigmoid_backward(dbias, in(dz, n * C), in(dout, n * C), in(o, n * C), n, C);
  out(dz, n * C);
}

void CpuBf16Backend::shift_diff_forward(A* xx, const A* x, const F* prev, int64_t B, int64_t T,
                                        int64_t C) {
  fp32.shift_diff_forward(in(xx, B * T * C), in(x, B * T * C), prev, B, T, C);
  out(xx, B * T * C);
}

void CpuBf16Backend::shift_diff_backward(A* dx, F* dprev, const A* dxx, int64_t B, int64_t T,
                                         int64_t C) {
  fp32.shift_diff_backward(in(dx, B * T * C), dprev, in(dxx, B * T * C), B, T, C);
  out(dx, B * T * C);
}

void CpuBf16Backend::shift_last(F* last, const A* x, int64_t B, int64_t T, int64_t C) {
  fp32.shift_last(last, in(x, B * T * C), B, T, C);
}

void CpuBf16Backend::mix_forward(std::span<A* const> outs, const A* x, const A* xx,
                                 std::span<const F* const> coefs, std::span<const A* const> ms,
                                 bool one_minus, int64_t n, int64_t C) {
  std::vector<F*> o;
  for (A* p : outs) o.push_back(in(p, n * C));
  std::vector<const F*> m;
  for (const A* p : ms) m.push_back(in(p, n * C));
  fp32.mix_forward(o, in(x, n * C), in(xx, n * C), coefs, m, one_minus, n, C);
  for (A* p : outs) out(p, n * C);
}

void CpuBf16Backend::mix_backward(A* dx, A* dxx, std::span<F* const> dcoefs,
                                  std::span<A* const> dms, std::span<const A* const> douts,
                                  const A* xx, std::span<const F* const> coefs,
                                  std::span<const A* const> ms, bool one_minus, int64_t n,
                                  int64_t C) {
  const int64_t s = n * C;
  std::vector<F*> dm;
  for (A* p : dms) dm.push_back(in(p, s));
  std::vector<const F*> d, m;
  for (const A* p : douts) d.push_back(in(p, s));
  for (const A* p : ms) m.push_back(in(p, s));
  fp32.mix_backward(in(dx, s), in(dxx, s), dcoefs, dm, d, in(xx, s), coefs, m, one_minus, n, C);
  out(dx, s);
  out(dxx, s);
  for (A* p : dms) out(p, s);
}

void CpuBf16Backend::decay_v4_forward(F* w, const F* time_decay, int64_t C) {
  fp32.decay_v4_forward(w, time_decay, C);
}

void CpuBf16Backend::decay_v4_backward(F* dtime_decay, const F* dw, const F* time_decay,
                                       int64_t C) {
  fp32.decay_v4_backward(dtime_decay, dw, time_decay, C);
}

void CpuBf16Backend::decay_v6_forward(A* lw, const F* time_decay, const A* ww, int64_t n,
                                      int64_t C) {
  fp32.decay_v6_forward(in(lw, n * C), time_decay, in(ww, n * C), n, C);
  out(lw, n * C);
}

void CpuBf16Backend::decay_v6_backward(F* dtime_decay, A* dww, const A* dlw, const A* lw, int64_t n,
                                       int64_t C) {
  fp32.decay_v6_backward(dtime_decay, in(dww, n * C), in(dlw, n * C), in(lw, n * C), n, C);
  out(dww, n * C);
}

void CpuBf16Backend::decay_v7_forward(A* lw, const F* w0, const A* z, int64_t n, int64_t C) {
  fp32.decay_v7_forward(in(lw, n * C), w0, in(z, n * C), n, C);
  out(lw, n * C);
}

void CpuBf16Backend::decay_v7_backward(F* dw0, A* dz, const A* dlw, const F* w0, const A* z,
                                       int64_t n, int64_t C) {
  fp32.decay_v7_backward(dw0, in(dz, n * C), in(dlw, n * C), w0, in(z, n * C), n, C);
  out(dz, n * C);
}

void CpuBf16Backend::value_residual_forward(A* o, const A* v, const A* v_first, const A* s,
                                            int64_t n) {
  fp32.value_residual_forward(in(o, n), in(v, n), in(v_first, n), in(s, n), n);
  out(o, n);
}

void CpuBf16Backend::value_residual_backward(A* dv, A* dv_first, A* ds, const A* dout, const A* v,
                                             const A* v_first, const A* s, int64_t n) {
  fp32.value_residual_backward(in(dv, n), in(dv_first, n), in(ds, n), in(dout, n), in(v, n),
                               in(v_first, n), in(s, n), n);
  out(dv, n);
  out(dv_first, n);
  out(ds, n);
}

void CpuBf16Backend::key_adjust_forward(A* o, const A* k, const A* a, const F* k_a, int64_t n,
                                        int64_t C) {
  fp32.key_adjust_forward(in(o, n * C), in(k, n * C), in(a, n * C), k_a, n, C);
  out(o, n * C);
}

void CpuBf16Backend::key_adjust_backward(A* dk, A* da, F* dk_a, const A* dout, const A* k,
                                         const A* a, const F* k_a, int64_t n, int64_t C) {
  const int64_t s = n * C;
  fp32.key_adjust_backward(in(dk, s), in(da, s), dk_a, in(dout, s), in(k, s), in(a, s), k_a, n, C);
  out(dk, s);
  out(da, s);
}

void CpuBf16Backend::wkv7_ab_forward(A* wa, A* wb, const A* kk, const A* a, int64_t n) {
  fp32.wkv7_ab_forward(in(wa, n), in(wb, n), in(kk, n), in(a, n), n);
  out(wa, n);
  out(wb, n);
}

void CpuBf16Backend::wkv7_ab_backward(A* dkk, A* da, const A* dwa, const A* dwb, const A* kk,
                                      const A* a, int64_t n) {
  fp32.wkv7_ab_backward(in(dkk, n), in(da, n), in(dwa, n), in(dwb, n), in(kk, n), in(a, n), n);
  out(dkk, n);
  out(da, n);
}

void CpuBf16Backend::bonus_v7_forward(A* o, const A* r, const A* k, const A* v, const F* r_k,
                                      const A* g, int64_t n, int64_t H, int64_t N) {
  const int64_t s = n * H * N;
  fp32.bonus_v7_forward(in(o, s), in(r, s), in(k, s), in(v, s), r_k, in(g, s), n, H, N);
  out(o, s);
}

void CpuBf16Backend::bonus_v7_backward(A* dr, A* dk, A* dv, F* dr_k, A* dg, const A* dout,
                                       const A* r, const A* k, const A* v, const F* r_k, const A* g,
                                       int64_t n, int64_t H, int64_t N) {
  const int64_t s = n * H * N;
  fp32.bonus_v7_backward(in(dr, s), in(dk, s), in(dv, s), dr_k, in(dg, s), in(dout, s), in(r, s),
                         in(k, s), in(v, s), r_k, in(g, s), n, H, N);
  for (A* p : {dr, dk, dv, dg}) out(p, s);
}

void CpuBf16Backend::wkv4_forward(int B, int T, int C, int c0, int c1, const F* w, const F* u,
                                  const A* k, const A* v, A* y, const F* state_in, F* state_out) {
  const int64_t s = int64_t(B) * T * C;
  fp32.wkv4_forward(B, T, C, c0, c1, w, u, in(k, s), in(v, s), in(y, s), state_in, state_out);
  out(y, s);
}

void CpuBf16Backend::wkv4_backward(int B, int T, int C, int c0, int c1, const F* w, const F* u,
                                   const A* k, const A* v, const A* dy, F* dw, F* du, A* dk,
                                   A* dv) {
  const int64_t s = int64_t(B) * T * C;
  fp32.wkv4_backward(B, T, C, c0, c1, w, u, in(k, s), in(v, s), in(dy, s), dw, du, in(dk, s),
                     in(dv, s));
  out(dk, s);
  out(dv, s);
}

void CpuBf16Backend::wkv6_forward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1,
                                  const A* r, const A* k, const A* v, const A* lw, const F* u, A* y,
                                  const F* state_in, F* state_out) {
  const int64_t s = int64_t(B) * T * H * N;
  fp32.wkv6_forward(algo, B, T, H, N, h0, h1, in(r, s), in(k, s), in(v, s), in(lw, s), u, in(y, s),
                    state_in, state_out);
  out(y, s);
}

void CpuBf16Backend::wkv6_backward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1,
                                   const A* r, const A* k, const A* v, const A* lw, const F* u,
                                   const A* dy, A* dr, A* dk, A* dv, A* dlw, F* du) {
  const int64_t s = int64_t(B) * T * H * N;
  fp32.wkv6_backward(algo, B, T, H, N, h0, h1, in(r, s), in(k, s), in(v, s), in(lw, s), u,
                     in(dy, s), in(dr, s), in(dk, s), in(dv, s), in(dlw, s), du);
  for (A* p : {dr, dk, dv, dlw}) out(p, s);
}

void CpuBf16Backend::wkv7_forward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1,
                                  const A* r, const A* lw, const A* k, const A* v, const A* a,
                                  const A* b, A* y, const F* state_in, F* state_out) {
  const int64_t s = int64_t(B) * T * H * N;
  fp32.wkv7_forward(algo, B, T, H, N, h0, h1, in(r, s), in(lw, s), in(k, s), in(v, s), in(a, s),
                    in(b, s), in(y, s), state_in, state_out);
  out(y, s);
}

void CpuBf16Backend::wkv7_backward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1,
                                   const A* r, const A* lw, const A* k, const A* v, const A* a,
                                   const A* b, const A* dy, A* dr, A* dlw, A* dk, A* dv, A* da,
                                   A* db) {
  const int64_t s = int64_t(B) * T * H * N;
  fp32.wkv7_backward(algo, B, T, H, N, h0, h1, in(r, s), in(lw, s), in(k, s), in(v, s), in(a, s),
                     in(b, s), in(dy, s), in(dr, s), in(dlw, s), in(dk, s), in(dv, s), in(da, s),
                     in(db, s));
  for (A* p : {dr, dlw, dk, dv, da, db}) out(p, s);
}

void CpuBf16Backend::ce_local_max(F* max, int32_t* argmax, const A* logits, int64_t n, int64_t Vl,
                                  int64_t v0) {
  fp32.ce_local_max(max, argmax, in(logits, n * Vl), n, Vl, v0);
}

void CpuBf16Backend::ce_local_sums(F* sumexp, F* target_logit, const A* logits,
                                   const int32_t* targets, const F* max, int64_t n, int64_t Vl,
                                   int64_t v0) {
  fp32.ce_local_sums(sumexp, target_logit, in(logits, n * Vl), targets, max, n, Vl, v0);
}

void CpuBf16Backend::ce_loss(F* losses, const F* max, const F* sumexp, const F* target_logit,
                             int64_t n) {
  fp32.ce_loss(losses, max, sumexp, target_logit, n);
}

void CpuBf16Backend::ce_backward(A* dlogits, const A* logits, const int32_t* targets, const F* max,
                                 const F* sumexp, const int32_t* argmax, int64_t n, int64_t Vl,
                                 int64_t v0, F scale, F l2wrap_factor) {
  // dlogits may be logits: both widen into the same shadow first.
  const F* l = in(logits, n * Vl);
  fp32.ce_backward(in(dlogits, n * Vl), l, targets, max, sumexp, argmax, n, Vl, v0, scale,
                   l2wrap_factor);
  out(dlogits, n * Vl);
}

}  // namespace rwkv::kernels
