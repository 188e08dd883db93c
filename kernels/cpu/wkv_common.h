#pragma once
// Helpers shared by the WKV kernels (wkv4.cpp, wkv6.cpp, wkv7.cpp), beside fast_math.h
// (exp; RWKV_CPU_SIMD, the per-CPU clones of the chunk code, whose loops over the N
// channels of a head run 16 lanes wide with AVX-512: 1.2x to 2.3x faster chunked
// WKV6/7, docs/performance.md): chunk decays, chunk lengths, prefetching, stores that
// bypass the cache, small vector loops, small transposes, a row-major GEMM wrapper over
// OpenBLAS, state loading, argument checks.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <type_traits>
#include <utility>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/fast_math.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace rwkv::kernels::wkv_detail {

// The decay factors of one chunk of L tokens (lw at its first token, tokens ld apart),
// with cum_0 = 0, cum_{t+1} = cum_t + lw_t:
//   w[t] = e^{lw_t}                                     [L, N]
//   P[t] = e^{cum_t}         = prod_{m < t} w[m]        [L+1, N]  (P[0] = 1)
//   Q[s] = e^{cum_L - cum_{s+1}} = prod_{s < m < L} w[m]  [L, N]  (Q[L-1] = 1)
// Every decay of the chunked forms is such a product of per-step factors in [0, 1]:
// one exp per token and channel instead of one per pair, and no cumulative sums. Each
// factor is off by a few ulp plus |lw| eps (fast::exp rounds its argument), so a
// product over L steps is as accurate as the exp of an exact difference of cumulative
// sums rounded to F (off by |cum_x - cum_y| eps). Products underflow to 0 gradually;
// nothing overflows.
template <typename F>
[[gnu::always_inline]] inline void chunk_decays(int L, int N, const F* __restrict lw, int ld,
                                                F* __restrict w, F* __restrict P, F* __restrict Q) {
  for (int t = 0; t < L; ++t)
    for (int j = 0; j < N; ++j) w[size_t(t) * N + j] = fast::exp(lw[size_t(t) * ld + j]);
  std::fill(P, P + N, F(1));
  for (int t = 0; t < L; ++t)
    for (int j = 0; j < N; ++j)
      P[size_t(t + 1) * N + j] = P[size_t(t) * N + j] * w[size_t(t) * N + j];
  std::fill(Q + size_t(L - 1) * N, Q + size_t(L) * N, F(1));
  for (int s = L - 2; s >= 0; --s)
    for (int j = 0; j < N; ++j)
      Q[size_t(s) * N + j] = Q[size_t(s + 1) * N + j] * w[size_t(s + 1) * N + j];
}

// Bounds of the factored chunk forms (wkv7.cpp; wkv6.cpp's factored pairs). They write
// a decay e^{cum_t - cum_s} (s < t, cum the running sum of lw inside the chunk) as
// e^{cum_t} times e^{-cum_s}:
// - kMaxChunkLogDecay bounds -cum_s over the chunk: e^{cum_s} >= 9.4e-14 and
//   e^{-cum_s} <= 1.1e13 stay far inside fp32 (normal from e^{-87}, finite to e^{88})
//   with room for the values and gradients they multiply.
// - kMaxStepLogDecay bounds -lw of every step but the chunk's last: in dlw_m the token
//   pairs that do not straddle step m enter twice with opposite signs and cancel, and
//   their rounding is amplified next to the straddling pairs (which carry e^{lw_m}) by
//   up to about e^{-lw_m}; at 2 that is below 8. The last step of a chunk has no such
//   pairs.
inline constexpr double kMaxChunkLogDecay = 30;
inline constexpr double kMaxStepLogDecay = 2;

// The length of the chunk that starts at token t0 of a batch row: at most Lmax tokens
// (and T - t0), at least one, and ended early after a token with lw < -kMaxStepLogDecay
// or where the sum of lw over the first L-1 tokens would fall below -kMaxChunkLogDecay,
// in any channel. lw points at token t0, C channels per token (the heads in use), rows
// ld apart; cum [C] is scratch. RWKV-7's lw >= -e^{-0.5} (RWKV-LM RWKV-v7/train_temp:
// decay exp(-exp(w)), w <= -0.5) sums to -9.7 over 16 steps, so a model's chunks of up
// to 50 tokens are never cut; stronger decays (the tests go down to lw = -1e4) cut them,
// down to single tokens.
template <typename F>
int chunk_length(int T, int t0, int Lmax, int C, const F* lw, int ld, F* __restrict cum) {
  const F lo_step = F(-kMaxStepLogDecay), lo_sum = F(-kMaxChunkLogDecay);
  std::fill(cum, cum + C, F(0));
  int L = 1;
  for (; L < Lmax && t0 + L < T; ++L) {
    const F* __restrict row = lw + size_t(L - 1) * ld;
    int cut = 0;
    for (int j = 0; j < C; ++j) {
      cum[j] += row[j];
      cut |= (row[j] < lo_step) | (cum[j] < lo_sum);
    }
    if (cut) break;
  }
  return L;
}

// Asks for rows [0, L) of n values, ld apart, to be brought into the L2 cache. The chunk
// loops do this for the next chunk of a head (short pieces H N values apart) while the
// current one computes (measured: chunked WKV7 at B 4, T 512, 4 of 8 heads, forward 7%
// and backward 2% faster).
template <typename F>
inline void prefetch_rows(const F* p, int L, int ld, int n) {
  for (int t = 0; t < L; ++t)
    for (int j = 0; j < n; j += 64 / int(sizeof(F)))
      __builtin_prefetch(p + size_t(t) * ld + j, 0, 2);
}

// out[0, n) = x[0, n), for floats 16-byte aligned with n % 4 == 0 on x86-64 by stores
// that bypass the cache (_mm_stream_ps), else std::copy. The chunked forwards write
// their checkpoints with it: the backward reads them long after, and a normal store
// would first read each cache line it fills (measured: chunked WKV7 forward with
// checkpoints, B 4 T 1024 C 512, +6 ms with std::copy, +2 to 3 ms with this, on ~30 ms).
// The writing thread calls stream_fence() before others read the values.
template <typename F>
inline void stream_copy(const F* x, size_t n, F* out) {
#if defined(__x86_64__)
  if constexpr (std::is_same_v<F, float>) {
    if ((reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(out)) % 16 == 0 &&
        n % 4 == 0) {
      for (size_t i = 0; i < n; i += 4) _mm_stream_ps(out + i, _mm_load_ps(x + i));
      return;
    }
  }
#endif
  std::copy(x, x + n, out);
}

// Orders this thread's stream_copy stores before its later stores.
inline void stream_fence() {
#if defined(__x86_64__)
  _mm_sfence();
#endif
}

// out[t][j] = x[t][j] f[t][j] for t < L, j < N; rows ldx, N and ldo apart. The
// __restrict parameters let GCC vectorise it: written inline in the chunk code, with
// rows of several [B, T, C] tensors that it cannot prove disjoint, the loop stays scalar.
template <typename F>
[[gnu::always_inline]] inline void mul_rows(int L, int N, const F* __restrict x, int ldx,
                                            const F* __restrict f, F* __restrict out, int ldo) {
  for (int t = 0; t < L; ++t)
    for (int j = 0; j < N; ++j)
      out[size_t(t) * ldo + j] = x[size_t(t) * ldx + j] * f[size_t(t) * N + j];
}

// out[t] = x[t] f[t] + y[t] g[t], t < L; x, y, f, g [L, N], out rows ld apart.
template <typename F>
[[gnu::always_inline]] inline void mul2_rows(int L, int N, const F* __restrict x,
                                             const F* __restrict y, const F* __restrict f,
                                             const F* __restrict g, F* __restrict out, int ld) {
  for (int t = 0; t < L; ++t)
    for (int j = 0; j < N; ++j) {
      const size_t i = size_t(t) * N + j;
      out[size_t(t) * ld + j] = x[i] * f[i] + y[i] * g[i];
    }
}

// sum_j x[j] y[j] in 8 interleaved partial sums: GCC vectorises this without
// -ffast-math (one running sum is a reduction it may not reorder, so it stays scalar).
template <typename F>
[[gnu::always_inline]] inline F dot(const F* __restrict x, const F* __restrict y, int n) {
  F acc[8] = {};
  int j = 0;
  for (; j + 8 <= n; j += 8)
    for (int l = 0; l < 8; ++l) acc[l] += x[j + l] * y[j + l];
  F tail = 0;
  for (; j < n; ++j) tail += x[j] * y[j];
  return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7])) + tail;
}

// A 16 x 16 float block transposed in registers (GCC vector extensions, so every
// RWKV_CPU_SIMD clone gets its own code: vpermt2ps with AVX-512). Stage b swaps, in
// each 2b x 2b block, the b x b block above the diagonal with the one below: element
// (i, j) trades bit b of i with bit b of j, and the four stages b = 8, 4, 2, 1 trade
// all four bits, i.e. (i, j) -> (j, i).
// (__builtin_shufflevector is GCC 12's and clang's; older GCCs have __builtin_shuffle.)
using v16f = float __attribute__((vector_size(64), aligned(4)));
using v16i = int32_t __attribute__((vector_size(64)));

template <size_t b, size_t... c>
[[gnu::always_inline]] inline void swap_blocks(v16f& x, v16f& y, std::index_sequence<c...>) {
#if __has_builtin(__builtin_shufflevector)
  const v16f lo = __builtin_shufflevector(x, y, ((c & b) == 0 ? c : 16 + c - b)...);
  const v16f hi = __builtin_shufflevector(x, y, ((c & b) == 0 ? c + b : 16 + c)...);
#else
  const v16f lo = __builtin_shuffle(x, y, v16i{int32_t((c & b) == 0 ? c : 16 + c - b)...});
  const v16f hi = __builtin_shuffle(x, y, v16i{int32_t((c & b) == 0 ? c + b : 16 + c)...});
#endif
  x = lo;
  y = hi;
}

template <size_t b>
[[gnu::always_inline]] inline void transpose_stage(v16f* rows) {
  for (size_t i = 0; i < 16; ++i)
    if ((i & b) == 0) swap_blocks<b>(rows[i], rows[i + b], std::make_index_sequence<16>());
}

// out[j][i] = a[i][j] for i < rows, j < cols (rows lda apart in a, ldo in out). The
// chunked WKV7 transposes a few small matrices per chunk so that every product it hands
// to OpenBLAS has a plain right operand: OpenBLAS 0.3.21's small-matrix kernel for the
// row-major X Y^T runs at ~70 GFLOP/s where X Y runs at ~110 (one core of the dev VM,
// 16..32 x 64 x 64), and transposing a 64 x 64 float matrix here takes ~0.4 us.
template <typename F>
[[gnu::always_inline]] inline void transpose(int rows, int cols, const F* __restrict a, int lda,
                                             F* __restrict out, int ldo) {
  int i0 = 0;
  if constexpr (std::is_same_v<F, float>) {
    for (; i0 + 16 <= rows; i0 += 16) {
      int j0 = 0;
      for (; j0 + 16 <= cols; j0 += 16) {
        v16f blk[16];
        for (int i = 0; i < 16; ++i) std::memcpy(&blk[i], a + size_t(i0 + i) * lda + j0, 64);
        transpose_stage<8>(blk);
        transpose_stage<4>(blk);
        transpose_stage<2>(blk);
        transpose_stage<1>(blk);
        for (int j = 0; j < 16; ++j) std::memcpy(out + size_t(j0 + j) * ldo + i0, &blk[j], 64);
      }
      for (; j0 < cols; ++j0)
        for (int i = i0; i < i0 + 16; ++i) out[size_t(j0) * ldo + i] = a[size_t(i) * lda + j0];
    }
  }
  for (; i0 < rows; ++i0)
    for (int j = 0; j < cols; ++j) out[size_t(j) * ldo + i0] = a[size_t(i0) * lda + j];
}

// Row-major C = alpha op(A) op(B) + beta C; op(X) = X^T when tX.
inline void gemm(bool ta, bool tb, int m, int n, int kd, float alpha, const float* a, int lda,
                 const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
              kd, alpha, a, lda, b, ldb, beta, c, ldc);
}
inline void gemm(bool ta, bool tb, int m, int n, int kd, double alpha, const double* a, int lda,
                 const double* b, int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
              kd, alpha, a, lda, b, ldb, beta, c, ldc);
}

// S <- the states of S.size() / (N N) consecutive heads (of one batch row) from state_in
// [B, H, N, N] at offset ofs, or zeros when there is no initial state.
template <typename F>
void load_state(std::vector<F>& S, const F* state_in, size_t ofs) {
  if (state_in) {
    std::copy(state_in + ofs, state_in + ofs + S.size(), S.begin());
  } else {
    std::fill(S.begin(), S.end(), F(0));
  }
}

// Throws rwkv::Error naming the function unless 0 <= h0 <= h1 <= H, N > 0, chunk > 0.
inline void check_heads(const char* fn, int B, int T, int H, int N, int h0, int h1, int chunk) {
  if (B < 0 || T < 0 || H < 0 || N <= 0 || h0 < 0 || h1 > H || h0 > h1 || chunk <= 0) {
    std::ostringstream msg;
    msg << fn << ": bad shape B=" << B << " T=" << T << " H=" << H << " N=" << N << ", head range ["
        << h0 << ", " << h1 << ") or chunk=" << chunk;
    throw Error(msg.str());
  }
}

}  // namespace rwkv::kernels::wkv_detail
