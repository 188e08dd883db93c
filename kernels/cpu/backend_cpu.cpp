#include "kernels/cpu/backend_cpu.h"

#include <cblas.h>

#include <algorithm>
#include <array>
#include <functional>
#include <vector>

#include "kernels/cpu/adamw.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/grad_norm.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/norm.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/rwkv_pointwise.h"
#include "kernels/cpu/token_shift.h"
#include "kernels/cpu/wkv4.h"
#include "kernels/cpu/wkv6.h"
#include "kernels/cpu/wkv7.h"

namespace rwkv::kernels {

namespace {

// Smallest parts worth a thread: elements of pointwise ops, rows of row-wise ops (of
// C ~ 512 floats), weight rows of a weight gradient.
constexpr int64_t kMinElems = 1 << 15;
constexpr int64_t kMinRows = 64;
constexpr int64_t kMinWeightRows = 16;

// Weight-gradient rows per part: at least kMinWeightRows, and about 2^18 multiply-adds
// (rows of length `len` summed over `batch` tokens), so that tiny products stay whole.
int64_t min_weight_rows(int64_t batch, int64_t len) {
  return std::max<int64_t>(kMinWeightRows, (int64_t{1} << 18) / std::max<int64_t>(1, batch * len));
}

// Heads (or RWKV-4 channels, N = 16 as a cost proxy) per WKV part: about 2^18 state
// updates, so that small problems stay on one thread.
int64_t min_heads(int B, int T, int N) {
  return std::max<int64_t>(1, (int64_t{1} << 18) / (int64_t{B} * T * N * N));
}

// Rows of Vl logits per cross-entropy part: about kMinElems logits.
int64_t min_logit_rows(int64_t Vl) { return std::max<int64_t>(1, kMinElems / Vl); }

// One thread per CPU this process may run on.
int default_threads() {
  const cpu_set_t cpus = process_cpus();
  return CPU_COUNT(&cpus);
}

// p + o, keeping null (an unwanted gradient) null.
template <typename T>
T* offset(T* p, int64_t o) {
  return p ? p + o : p;
}

// A mix group's tensors (kernels/mix_group.h) from row offset o on, for one thread's rows.
template <typename T>
struct MixRows {
  std::array<T*, kMaxMixes> p{};
  size_t K;
  MixRows(std::span<T* const> group, int64_t o) : K(group.size()) {
    for (size_t k = 0; k < K; ++k) p[k] = offset(group[k], o);
  }
  std::span<T* const> span() const { return {p.data(), K}; }
};

}  // namespace

// OpenBLAS's thread control. Other CBLAS builds (the reference BLAS that GPU-only
// builds link, scripts/gpu_check.sh) lack it and are single-threaded anyway: a weak
// declaration leaves it null there.
extern "C" void openblas_set_num_threads(int) __attribute__((weak));

template <typename F>
CpuBackend<F>::CpuBackend(int wkv_chunk, int n_threads)
    : wkv_chunk(wkv_chunk), threads(n_threads > 0 ? n_threads : default_threads()) {
  // The backend runs its own threads; OpenBLAS threads would compete with them (and
  // spin between calls), so every sgemm / dgemm call is single-threaded.
  if (openblas_set_num_threads) openblas_set_num_threads(1);
}

template <typename F>
F* CpuBackend<F>::alloc(int64_t n) {
  F* p = new F[static_cast<size_t>(n)]();
  sizes_[p] = static_cast<size_t>(n);
  return p;
}

template <typename F>
void CpuBackend<F>::free(F* p) {
  if (p == nullptr) return;
  // The checkpoints kept for an r inside this block go with it.
  const auto block = sizes_.find(p);
  if (block != sizes_.end()) {
    const std::less<const F*> before;
    std::erase_if(wkv_ckpt_, [&](const auto& kv) {
      return !before(kv.first, p) && before(kv.first, p + block->second);
    });
    sizes_.erase(block);
  }
  delete[] p;
}

template <typename F>
size_t CpuBackend<F>::checkpoint_floats() const {
  size_t total = 0;
  for (const auto& [r, c] : wkv_ckpt_) total += c.data.size();
  return total;
}

template <typename F>
int32_t* CpuBackend<F>::alloc_ids(int64_t n) {
  return new int32_t[static_cast<size_t>(n)]();
}

template <typename F>
void CpuBackend<F>::free_ids(int32_t* p) {
  delete[] p;
}

template <typename F>
void CpuBackend<F>::zero(F* p, int64_t n) {
  parallel_for(threads, n, kMinElems,
               [&](int64_t i, int64_t e, int64_t) { std::fill(p + i, p + e, F(0)); });
}

template <typename F>
void CpuBackend<F>::copy(F* dst, const F* src, int64_t n) {
  parallel_for(threads, n, kMinElems,
               [&](int64_t i, int64_t e, int64_t) { std::copy(src + i, src + e, dst + i); });
}

template <typename F>
void CpuBackend<F>::upload(F* dst, const F* host, int64_t n) {
  std::copy(host, host + n, dst);
}

template <typename F>
void CpuBackend<F>::download(F* host, const F* src, int64_t n) {
  std::copy(src, src + n, host);
}

template <typename F>
void CpuBackend<F>::upload_ids(int32_t* dst, const int32_t* host, int64_t n) {
  std::copy(host, host + n, dst);
}

template <typename F>
void CpuBackend<F>::embedding_forward(F* out, const int32_t* idx, const F* emb, int64_t n,
                                      int64_t C, int64_t v0, int64_t v1) {
  parallel_for(threads, n, kMinRows, [&](int64_t i, int64_t e, int64_t) {
    kernels::embedding_forward(out + i * C, idx + i, emb, e - i, C, v0, v1);
  });
}

// Serial: two parts could scatter into the same row (a repeated id).
template <typename F>
void CpuBackend<F>::embedding_backward(F* demb, const F* dout, const int32_t* idx, int64_t n,
                                       int64_t C, int64_t v0, int64_t v1) {
  kernels::embedding_backward(demb, dout, idx, n, C, v0, v1);
}

template <typename F>
void CpuBackend<F>::layernorm_forward(F* out, F* mean, F* rstd, const F* x, const F* w, const F* b,
                                      int64_t n, int64_t C, F eps) {
  parallel_for(threads, n, kMinRows, [&](int64_t r, int64_t e, int64_t) {
    kernels::layernorm_forward(out + r * C, mean + r, rstd + r, x + r * C, w, b, e - r, C, eps);
  });
}

template <typename F>
void CpuBackend<F>::layernorm_backward(F* dx, F* dw, F* db, const F* dout, const F* x, const F* w,
                                       const F* mean, const F* rstd, int64_t n, int64_t C) {
  parallel_for_reduce(threads, n, kMinRows, std::array<F*, 2>{dw, db}, C,
                      [&](int64_t b, int64_t e, std::array<F*, 2> r) {
                        kernels::layernorm_backward(dx + b * C, r[0], r[1], dout + b * C, x + b * C,
                                                    w, mean + b, rstd + b, e - b, C);
                      });
}

template <typename F>
void CpuBackend<F>::rmsnorm_forward(F* out, F* rstd, const F* x, const F* w, int64_t n, int64_t C,
                                    F eps) {
  parallel_for(threads, n, kMinRows, [&](int64_t i, int64_t e, int64_t) {
    kernels::rmsnorm_forward(out + i * C, rstd + i, x + i * C, w, e - i, C, eps);
  });
}

template <typename F>
void CpuBackend<F>::rmsnorm_backward(F* dx, F* dw, const F* dout, const F* x, const F* w,
                                     const F* rstd, int64_t n, int64_t C) {
  parallel_for_reduce(threads, n, kMinRows, std::array<F*, 1>{dw}, C,
                      [&](int64_t i, int64_t e, std::array<F*, 1> r) {
                        kernels::rmsnorm_backward(dx + i * C, r[0], dout + i * C, x + i * C, w,
                                                  rstd + i, e - i, C);
                      });
}

template <typename F>
void CpuBackend<F>::groupnorm_forward(F* out, F* mean, F* rstd, const F* x, const F* w, const F* b,
                                      const F* g, int64_t n, int64_t H, int64_t N, F eps) {
  parallel_for(threads, n, kMinRows, [&](int64_t r, int64_t e, int64_t) {
    kernels::groupnorm_forward(out + r * H * N, mean + r * H, rstd + r * H, x + r * H * N, w, b,
                               offset(g, r * H * N), e - r, H, N, eps);
  });
}

template <typename F>
void CpuBackend<F>::groupnorm_backward(F* dx, F* dw, F* db, F* dg, const F* dout, const F* x,
                                       const F* w, const F* b, const F* g, const F* mean,
                                       const F* rstd, int64_t n, int64_t H, int64_t N) {
  parallel_for_reduce(threads, n, kMinRows, std::array<F*, 2>{dw, db}, H * N,
                      [&](int64_t i, int64_t e, std::array<F*, 2> r) {
                        const int64_t o = i * H * N;
                        kernels::groupnorm_backward(dx + o, r[0], r[1], offset(dg, o), dout + o,
                                                    x + o, w, b, offset(g, o), mean + i * H,
                                                    rstd + i * H, e - i, H, N);
                      });
}

template <typename F>
void CpuBackend<F>::l2norm_heads_forward(F* out, F* norm, const F* x, int64_t n, int64_t H,
                                         int64_t N, F eps) {
  parallel_for(threads, n, kMinRows, [&](int64_t i, int64_t e, int64_t) {
    kernels::l2norm_heads_forward(out + i * H * N, norm + i * H, x + i * H * N, e - i, H, N, eps);
  });
}

template <typename F>
void CpuBackend<F>::l2norm_heads_backward(F* dx, const F* dout, const F* out, const F* norm,
                                          const F* x, int64_t n, int64_t H, int64_t N, F eps) {
  parallel_for(threads, n, kMinRows, [&](int64_t i, int64_t e, int64_t) {
    kernels::l2norm_heads_backward(dx + i * H * N, dout + i * H * N, out + i * H * N, norm + i * H,
                                   x + i * H * N, e - i, H, N, eps);
  });
}

template <typename F>
void CpuBackend<F>::matmul_forward(F* out, int64_t ldo, const F* x, int64_t ldx, const F* w,
                                   int64_t M, int64_t K, int64_t N, WLayout layout,
                                   bool accumulate) {
  parallel_for(threads, M, kMinRows, [&](int64_t b, int64_t e, int64_t) {
    kernels::matmul_forward(out + b * ldo, ldo, x + b * ldx, ldx, w, e - b, K, N, layout,
                            accumulate);
  });
}

template <typename F>
void CpuBackend<F>::matmul_backward(F* dx, F* dw, const F* dout, int64_t ldo, const F* x,
                                    int64_t ldx, const F* w, int64_t M, int64_t K, int64_t N,
                                    WLayout layout, bool accumulate_dx) {
  // dx by rows of the batch; dw by rows of the weight (N rows for OutIn, K for InOut).
  if (dx)
    parallel_for(threads, M, kMinRows, [&](int64_t b, int64_t e, int64_t) {
      kernels::matmul_backward(dx + b * ldx, static_cast<F*>(nullptr), dout + b * ldo, ldo,
                               x + b * ldx, ldx, w, e - b, K, N, layout, accumulate_dx);
    });
  if (!dw) return;
  if (layout == WLayout::OutIn)
    parallel_for(threads, N, min_weight_rows(M, K), [&](int64_t b, int64_t e, int64_t) {
      kernels::matmul_backward(static_cast<F*>(nullptr), dw + b * K, dout + b, ldo, x, ldx,
                               w + b * K, M, K, e - b, layout, true);
    });
  else
    parallel_for(threads, K, min_weight_rows(M, N), [&](int64_t b, int64_t e, int64_t) {
      kernels::matmul_backward(static_cast<F*>(nullptr), dw + b * N, dout, ldo, x + b, ldx,
                               w + b * N, M, e - b, N, layout, true);
    });
}

template <typename F>
void CpuBackend<F>::act_forward(Act act, F* out, const F* x, int64_t n) {
  parallel_for(threads, n, kMinElems, [&](int64_t b, int64_t e, int64_t) {
    kernels::act_forward(act, out + b, x + b, e - b);
  });
}

template <typename F>
void CpuBackend<F>::act_backward(Act act, F* dx, const F* dout, const F* x, int64_t n) {
  parallel_for(threads, n, kMinElems, [&](int64_t b, int64_t e, int64_t) {
    kernels::act_backward(act, dx + b, dout + b, x + b, e - b);
  });
}

template <typename F>
void CpuBackend<F>::mul_forward(F* out, const F* a, const F* b, int64_t n) {
  parallel_for(threads, n, kMinElems, [&](int64_t i, int64_t e, int64_t) {
    kernels::mul_forward(out + i, a + i, b + i, e - i);
  });
}

template <typename F>
void CpuBackend<F>::mul_backward(F* da, F* db, const F* dout, const F* a, const F* b, int64_t n) {
  parallel_for(threads, n, kMinElems, [&](int64_t i, int64_t e, int64_t) {
    kernels::mul_backward(offset(da, i), offset(db, i), dout + i, a + i, b + i, e - i);
  });
}

template <typename F>
void CpuBackend<F>::add_forward(F* out, const F* a, const F* b, int64_t n) {
  parallel_for(threads, n, kMinElems, [&](int64_t i, int64_t e, int64_t) {
    kernels::add_forward(out + i, a + i, b + i, e - i);
  });
}

template <typename F>
void CpuBackend<F>::accumulate(F* dst, const F* src, int64_t n) {
  parallel_for(threads, n, kMinElems, [&](int64_t b, int64_t e, int64_t) {
    kernels::accumulate(dst + b, src + b, e - b);
  });
}

template <typename F>
void CpuBackend<F>::scale_channels_forward(F* out, const F* x, const F* vec, int64_t n, int64_t C) {
  parallel_for(threads, n, kMinRows, [&](int64_t i, int64_t e, int64_t) {
    kernels::scale_channels_forward(out + i * C, x + i * C, vec, e - i, C);
  });
}

template <typename F>
void CpuBackend<F>::scale_channels_backward(F* dx, F* dvec, const F* dout, const F* x, const F* vec,
                                            int64_t n, int64_t C) {
  parallel_for_reduce(threads, n, kMinRows, std::array<F*, 1>{dvec}, C,
                      [&](int64_t i, int64_t e, std::array<F*, 1> r) {
                        kernels::scale_channels_backward(offset(dx, i * C), r[0], dout + i * C,
                                                         x + i * C, vec, e - i, C);
                      });
}

template <typename F>
void CpuBackend<F>::bias_sigmoid_forward(F* out, const F* bias, const F* z, int64_t n, int64_t C) {
  parallel_for(threads, n, kMinRows, [&](int64_t i, int64_t e, int64_t) {
    kernels::bias_sigmoid_forward(out + i * C, bias, z + i * C, e - i, C);
  });
}

template <typename F>
void CpuBackend<F>::bias_sigmoid_backward(F* dbias, F* dz, const F* dout, const F* out, int64_t n,
                                          int64_t C) {
  parallel_for_reduce(threads, n, kMinRows, std::array<F*, 1>{dbias}, C,
                      [&](int64_t i, int64_t e, std::array<F*, 1> r) {
                        kernels::bias_sigmoid_backward(r[0], offset(dz, i * C), dout + i * C,
                                                       out + i * C, e - i, C);
                      });
}

template <typename F>
void CpuBackend<F>::shift_diff_forward(F* xx, const F* x, const F* prev, int64_t B, int64_t T,
                                       int64_t C) {
  parallel_for(threads, B, std::max<int64_t>(1, kMinElems / (T * C)),
               [&](int64_t i, int64_t e, int64_t) {
                 kernels::shift_diff_forward(xx + i * T * C, x + i * T * C, offset(prev, i * C),
                                             e - i, T, C);
               });
}

template <typename F>
void CpuBackend<F>::shift_diff_backward(F* dx, F* dprev, const F* dxx, int64_t B, int64_t T,
                                        int64_t C) {
  parallel_for(threads, B, std::max<int64_t>(1, kMinElems / (T * C)),
               [&](int64_t i, int64_t e, int64_t) {
                 kernels::shift_diff_backward(dx + i * T * C, offset(dprev, i * C), dxx + i * T * C,
                                              e - i, T, C);
               });
}

template <typename F>
void CpuBackend<F>::shift_last(F* last, const F* x, int64_t B, int64_t T, int64_t C) {
  kernels::shift_last(last, x, B, T, C);
}

template <typename F>
void CpuBackend<F>::mix_forward(std::span<F* const> outs, const F* x, const F* xx,
                                std::span<const F* const> coefs, std::span<const F* const> ms,
                                bool one_minus, int64_t n, int64_t C) {
  check_mix_forward("rwkv::kernels::mix_forward", outs.size(), coefs.size(), ms.size());
  parallel_for(threads, n, kMinRows, [&](int64_t b, int64_t e, int64_t) {
    const MixRows<F> o(outs, b * C);
    const MixRows<const F> m(ms, b * C);
    kernels::mix_forward(o.span(), x + b * C, xx + b * C, coefs, m.span(), one_minus, e - b, C);
  });
}

template <typename F>
void CpuBackend<F>::mix_backward(F* dx, F* dxx, std::span<F* const> dcoefs, std::span<F* const> dms,
                                 std::span<const F* const> douts, const F* xx,
                                 std::span<const F* const> coefs, std::span<const F* const> ms,
                                 bool one_minus, int64_t n, int64_t C) {
  check_mix_backward("rwkv::kernels::mix_backward", douts.size(), coefs.size(), ms.size(),
                     dcoefs.size(), dms.size());
  std::array<F*, kMaxMixes> reds{};
  std::copy(dcoefs.begin(), dcoefs.end(), reds.begin());
  parallel_for_reduce(
      threads, n, kMinRows, reds, C, [&](int64_t b, int64_t e, std::array<F*, kMaxMixes> r) {
        const MixRows<F> dm(dms, b * C);
        const MixRows<const F> d(douts, b * C), m(ms, b * C);
        kernels::mix_backward(offset(dx, b * C), offset(dxx, b * C),
                              std::span<F* const>(r.data(), dcoefs.size()), dm.span(), d.span(),
                              xx + b * C, coefs, m.span(), one_minus, e - b, C);
      });
}

// RWKV-4's w = exp(time_decay): the activation op on the F vector.
template <typename F>
void CpuBackend<F>::decay_v4_forward(F* w, const F* time_decay, int64_t C) {
  act_forward(Act::exp, w, time_decay, C);
}

template <typename F>
void CpuBackend<F>::decay_v4_backward(F* dtime_decay, const F* dw, const F* time_decay, int64_t C) {
  act_backward(Act::exp, dtime_decay, dw, time_decay, C);
}

template <typename F>
void CpuBackend<F>::decay_v6_forward(F* lw, const F* time_decay, const F* ww, int64_t n,
                                     int64_t C) {
  parallel_for(threads, n, kMinRows, [&](int64_t i, int64_t e, int64_t) {
    kernels::decay_v6_forward(lw + i * C, time_decay, offset(ww, i * C), e - i, C);
  });
}

template <typename F>
void CpuBackend<F>::decay_v6_backward(F* dtime_decay, F* dww, const F* dlw, const F* lw, int64_t n,
                                      int64_t C) {
  parallel_for_reduce(threads, n, kMinRows, std::array<F*, 1>{dtime_decay}, C,
                      [&](int64_t i, int64_t e, std::array<F*, 1> r) {
                        kernels::decay_v6_backward(r[0], offset(dww, i * C), dlw + i * C,
                                                   lw + i * C, e - i, C);
                      });
}

template <typename F>
void CpuBackend<F>::decay_v7_forward(F* lw, const F* w0, const F* z, int64_t n, int64_t C) {
  parallel_for(threads, n, kMinRows, [&](int64_t i, int64_t e, int64_t) {
    kernels::decay_v7_forward(lw + i * C, w0, z + i * C, e - i, C);
  });
}

template <typename F>
void CpuBackend<F>::decay_v7_backward(F* dw0, F* dz, const F* dlw, const F* w0, const F* z,
                                      int64_t n, int64_t C) {
  parallel_for_reduce(threads, n, kMinRows, std::array<F*, 1>{dw0}, C,
                      [&](int64_t i, int64_t e, std::array<F*, 1> r) {
                        kernels::decay_v7_backward(r[0], offset(dz, i * C), dlw + i * C, w0,
                                                   z + i * C, e - i, C);
                      });
}

template <typename F>
void CpuBackend<F>::value_residual_forward(F* out, const F* v, const F* v_first, const F* s,
                                           int64_t n) {
  parallel_for(threads, n, kMinElems, [&](int64_t i, int64_t e, int64_t) {
    kernels::value_residual_forward(out + i, v + i, v_first + i, s + i, e - i);
  });
}

template <typename F>
void CpuBackend<F>::value_residual_backward(F* dv, F* dv_first, F* ds, const F* dout, const F* v,
                                            const F* v_first, const F* s, int64_t n) {
  parallel_for(threads, n, kMinElems, [&](int64_t i, int64_t e, int64_t) {
    kernels::value_residual_backward(offset(dv, i), offset(dv_first, i), offset(ds, i), dout + i,
                                     v + i, v_first + i, s + i, e - i);
  });
}

template <typename F>
void CpuBackend<F>::key_adjust_forward(F* out, const F* k, const F* a, const F* k_a, int64_t n,
                                       int64_t C) {
  parallel_for(threads, n, kMinRows, [&](int64_t i, int64_t e, int64_t) {
    kernels::key_adjust_forward(out + i * C, k + i * C, a + i * C, k_a, e - i, C);
  });
}

template <typename F>
void CpuBackend<F>::key_adjust_backward(F* dk, F* da, F* dk_a, const F* dout, const F* k,
                                        const F* a, const F* k_a, int64_t n, int64_t C) {
  parallel_for_reduce(threads, n, kMinRows, std::array<F*, 1>{dk_a}, C,
                      [&](int64_t i, int64_t e, std::array<F*, 1> r) {
                        kernels::key_adjust_backward(offset(dk, i * C), offset(da, i * C), r[0],
                                                     dout + i * C, k + i * C, a + i * C, k_a, e - i,
                                                     C);
                      });
}

template <typename F>
void CpuBackend<F>::bonus_v7_forward(F* out, const F* r, const F* k, const F* v, const F* r_k,
                                     const F* g, int64_t n, int64_t H, int64_t N) {
  parallel_for(threads, n, kMinRows, [&](int64_t i, int64_t e, int64_t) {
    const int64_t o = i * H * N;
    kernels::bonus_v7_forward(out + o, r + o, k + o, v + o, r_k, offset(g, o), e - i, H, N);
  });
}

template <typename F>
void CpuBackend<F>::bonus_v7_backward(F* dr, F* dk, F* dv, F* dr_k, F* dg, const F* dout,
                                      const F* r, const F* k, const F* v, const F* r_k, const F* g,
                                      int64_t n, int64_t H, int64_t N) {
  parallel_for_reduce(threads, n, kMinRows, std::array<F*, 1>{dr_k}, H * N,
                      [&](int64_t i, int64_t e, std::array<F*, 1> red) {
                        const int64_t o = i * H * N;
                        kernels::bonus_v7_backward(offset(dr, o), offset(dk, o), offset(dv, o),
                                                   red[0], offset(dg, o), dout + o, r + o, k + o,
                                                   v + o, r_k, offset(g, o), e - i, H, N);
                      });
}

template <typename F>
void CpuBackend<F>::ce_local_max(F* max, int32_t* argmax, const F* logits, int64_t n, int64_t Vl,
                                 int64_t v0) {
  parallel_for(threads, n, min_logit_rows(Vl), [&](int64_t b, int64_t e, int64_t) {
    kernels::ce_local_max(max + b, argmax + b, logits + b * Vl, e - b, Vl, v0);
  });
}

template <typename F>
void CpuBackend<F>::ce_local_sums(F* sumexp, F* target_logit, const F* logits,
                                  const int32_t* targets, const F* max, int64_t n, int64_t Vl,
                                  int64_t v0) {
  parallel_for(threads, n, min_logit_rows(Vl), [&](int64_t b, int64_t e, int64_t) {
    kernels::ce_local_sums(sumexp + b, target_logit + b, logits + b * Vl, targets + b, max + b,
                           e - b, Vl, v0);
  });
}

template <typename F>
void CpuBackend<F>::ce_loss(F* losses, const F* max, const F* sumexp, const F* target_logit,
                            int64_t n) {
  parallel_for(threads, n, kMinElems, [&](int64_t b, int64_t e, int64_t) {
    kernels::ce_loss(losses + b, max + b, sumexp + b, target_logit + b, e - b);
  });
}

template <typename F>
void CpuBackend<F>::ce_backward(F* dlogits, const F* logits, const int32_t* targets, const F* max,
                                const F* sumexp, const int32_t* argmax, int64_t n, int64_t Vl,
                                int64_t v0, F scale, F l2wrap_factor) {
  parallel_for(threads, n, min_logit_rows(Vl), [&](int64_t b, int64_t e, int64_t) {
    kernels::ce_backward(dlogits + b * Vl, logits + b * Vl, targets + b, max + b, sumexp + b,
                         argmax + b, e - b, Vl, v0, scale, l2wrap_factor);
  });
}

template <typename F>
void CpuBackend<F>::adamw_step(F* p, const F* g, F* m, F* v, std::span<const AdamWSegment> segments,
                               const AdamWHyper& h, int64_t t) {
  for (const AdamWSegment& s : segments)
    parallel_for(threads, s.size, kMinElems, [&](int64_t b, int64_t e, int64_t) {
      const AdamWSegment part{s.offset + b, e - b, s.lr_mult, s.wd_mult};
      kernels::adamw_step(p, g, m, v, std::span<const AdamWSegment>(&part, 1), h, t);
    });
}

// The parts' sums are added in part order: the same bits for the same thread count.
template <typename F>
double CpuBackend<F>::sum_squares(const F* x, int64_t n) {
  std::vector<double> part(static_cast<size_t>(threads), 0.0);
  parallel_for(threads, n, kMinElems, [&](int64_t b, int64_t e, int64_t p) {
    part[static_cast<size_t>(p)] = kernels::sum_squares(x + b, e - b);
  });
  double s = 0;
  for (double v : part) s += v;
  return s;
}

template <typename F>
void CpuBackend<F>::scale(F* x, F s, int64_t n) {
  parallel_for(threads, n, kMinElems,
               [&](int64_t b, int64_t e, int64_t) { kernels::scale(x + b, s, e - b); });
}

template <typename F>
void CpuBackend<F>::wkv7_ab_forward(F* wa, F* wb, const F* kk, const F* a, int64_t n) {
  parallel_for(threads, n, kMinElems, [&](int64_t i, int64_t e, int64_t) {
    kernels::wkv7_ab_forward(wa + i, wb + i, kk + i, a + i, e - i);
  });
}

template <typename F>
void CpuBackend<F>::wkv7_ab_backward(F* dkk, F* da, const F* dwa, const F* dwb, const F* kk,
                                     const F* a, int64_t n) {
  parallel_for(threads, n, kMinElems, [&](int64_t i, int64_t e, int64_t) {
    kernels::wkv7_ab_backward(offset(dkk, i), offset(da, i), dwa + i, dwb + i, kk + i, a + i,
                              e - i);
  });
}

template <typename F>
void CpuBackend<F>::wkv4_forward(int B, int T, int C, int c0, int c1, const F* w, const F* u,
                                 const F* k, const F* v, F* y, const F* state_in, F* state_out) {
  parallel_for(threads, c1 - c0, min_heads(B, T, 16), [&](int64_t b, int64_t e, int64_t) {
    wkv4_forward_naive(B, T, C, c0 + static_cast<int>(b), c0 + static_cast<int>(e), w, u, k, v, y,
                       state_in, state_out);
  });
}

template <typename F>
void CpuBackend<F>::wkv4_backward(int B, int T, int C, int c0, int c1, const F* w, const F* u,
                                  const F* k, const F* v, const F* dy, F* dw, F* du, F* dk, F* dv) {
  parallel_for(threads, c1 - c0, min_heads(B, T, 16), [&](int64_t b, int64_t e, int64_t) {
    wkv4_backward_naive(B, T, C, c0 + static_cast<int>(b), c0 + static_cast<int>(e), w, u, k, v, dy,
                        dw, du, dk, dv);
  });
}

template <typename F>
F* CpuBackend<F>::forward_checkpoints(WkvAlgo algo, const F* r, size_t floats, int B, int T, int H,
                                      int N, int h0, int h1) {
  if (algo != WkvAlgo::chunked) {
    wkv_ckpt_.erase(r);
    return nullptr;
  }
  WkvCheckpoints& c = wkv_ckpt_[r];
  if (c.data.size() < floats) c.data.resize(floats);
  c.B = B, c.T = T, c.H = H, c.N = N, c.h0 = h0, c.h1 = h1, c.chunk = wkv_chunk;
  c.threads = threads;
  return c.data.data();
}

template <typename F>
const F* CpuBackend<F>::saved_checkpoints(WkvAlgo algo, const F* r, int B, int T, int H, int N,
                                          int h0, int h1) const {
  const auto it = wkv_ckpt_.find(r);
  if (algo != WkvAlgo::chunked || it == wkv_ckpt_.end()) return nullptr;
  const WkvCheckpoints& c = it->second;
  const bool same = c.B == B && c.T == T && c.H == H && c.N == N && c.h0 == h0 && c.h1 == h1 &&
                    c.chunk == wkv_chunk && c.threads == threads;
  return same ? c.data.data() : nullptr;
}

template <typename F>
void CpuBackend<F>::wkv6_forward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1,
                                 const F* r, const F* k, const F* v, const F* lw, const F* u, F* y,
                                 const F* state_in, F* state_out) {
  parallel_for(threads, h1 - h0, min_heads(B, T, N), [&](int64_t b0, int64_t e0, int64_t) {
    const int hb = h0 + static_cast<int>(b0), he = h0 + static_cast<int>(e0);
    if (algo == WkvAlgo::chunked)
      wkv6_forward_chunked(B, T, H, N, hb, he, r, k, v, lw, u, y, state_in, state_out, wkv_chunk);
    else
      wkv6_forward_naive(B, T, H, N, hb, he, r, k, v, lw, u, y, state_in, state_out);
  });
}

template <typename F>
void CpuBackend<F>::wkv6_backward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1,
                                  const F* r, const F* k, const F* v, const F* lw, const F* u,
                                  const F* dy, F* dr, F* dk, F* dv, F* dlw, F* du) {
  parallel_for(threads, h1 - h0, min_heads(B, T, N), [&](int64_t b0, int64_t e0, int64_t) {
    const int hb = h0 + static_cast<int>(b0), he = h0 + static_cast<int>(e0);
    if (algo == WkvAlgo::chunked)
      wkv6_backward_chunked(B, T, H, N, hb, he, r, k, v, lw, u, dy, dr, dk, dv, dlw, du, wkv_chunk);
    else
      wkv6_backward_naive(B, T, H, N, hb, he, r, k, v, lw, u, dy, dr, dk, dv, dlw, du);
  });
}

// The chunked WKV7 forward keeps checkpoints (the state entering each chunk and its values
// S a) that its backward reads instead of recomputing them (docs/performance.md).
template <typename F>
void CpuBackend<F>::wkv7_forward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1,
                                 const F* r, const F* lw, const F* k, const F* v, const F* a,
                                 const F* b, F* y, const F* state_in, F* state_out) {
  F* ckpt = forward_checkpoints(algo, r, wkv7_checkpoint_floats(B, T, H, N, wkv_chunk), B, T, H, N,
                                h0, h1);
  parallel_for(threads, h1 - h0, min_heads(B, T, N), [&](int64_t b0, int64_t e0, int64_t) {
    const int hb = h0 + static_cast<int>(b0), he = h0 + static_cast<int>(e0);
    if (algo == WkvAlgo::chunked)
      wkv7_forward_chunked(B, T, H, N, hb, he, r, lw, k, v, a, b, y, state_in, state_out, wkv_chunk,
                           ckpt);
    else
      wkv7_forward_naive(B, T, H, N, hb, he, r, lw, k, v, a, b, y, state_in, state_out);
  });
}

template <typename F>
void CpuBackend<F>::wkv7_backward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1,
                                  const F* r, const F* lw, const F* k, const F* v, const F* a,
                                  const F* b, const F* dy, F* dr, F* dlw, F* dk, F* dv, F* da,
                                  F* db) {
  const F* ckpt = saved_checkpoints(algo, r, B, T, H, N, h0, h1);
  parallel_for(threads, h1 - h0, min_heads(B, T, N), [&](int64_t b0, int64_t e0, int64_t) {
    const int hb = h0 + static_cast<int>(b0), he = h0 + static_cast<int>(e0);
    if (algo == WkvAlgo::chunked)
      wkv7_backward_chunked(B, T, H, N, hb, he, r, lw, k, v, a, b, dy, dr, dlw, dk, dv, da, db,
                            wkv_chunk, ckpt);
    else
      wkv7_backward_naive(B, T, H, N, hb, he, r, lw, k, v, a, b, dy, dr, dlw, dk, dv, da, db);
  });
}

template struct CpuBackend<float>;
template struct CpuBackend<double>;

}  // namespace rwkv::kernels
