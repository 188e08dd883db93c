#include "kernels/cpu/wkv6.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <memory>
#include <vector>

#include "kernels/cpu/wkv_common.h"

namespace rwkv::kernels {
namespace {

using wkv_detail::check_heads;
using wkv_detail::gemm;
using wkv_detail::load_state;
using wkv_detail::mul_rows;

}  // namespace

template <typename F>
void wkv6_forward_naive(int B, int T, int H, int N, int h0, int h1, const F* r, const F* k,
                        const F* v, const F* lw, const F* u, F* y,
                        const std::type_identity_t<F>* state_in,
                        std::type_identity_t<F>* state_out) {
  check_heads("wkv6_forward_naive", B, T, H, N, h0, h1, 1);
  const size_t NN = size_t(N) * N;
  std::vector<F> S(NN), yt(N);
  for (int b = 0; b < B; ++b) {
    for (int h = h0; h < h1; ++h) {
      const size_t sofs = (size_t(b) * H + h) * NN;
      load_state(S, state_in, sofs);
      const F* uh = u + size_t(h) * N;
      for (int t = 0; t < T; ++t) {
        const size_t o = ((size_t(b) * T + t) * H + h) * N;
        const F *rt = r + o, *kt = k + o, *vt = v + o;
        std::fill(yt.begin(), yt.end(), F(0));
        for (int i = 0; i < N; ++i) {
          const F ri = rt[i], ki = kt[i], uki = uh[i] * ki, wi = std::exp(lw[o + i]);
          F* Si = S.data() + size_t(i) * N;
          for (int j = 0; j < N; ++j) {
            yt[j] += ri * (uki * vt[j] + Si[j]);
            Si[j] = wi * Si[j] + ki * vt[j];
          }
        }
        std::copy(yt.begin(), yt.end(), y + o);
      }
      if (state_out) std::copy(S.begin(), S.end(), state_out + sofs);
    }
  }
}

// Reverse-mode of the recurrence with dS_t = dL/dS_t (from the tokens after t):
//   dS_{t-1}  = r_t dy_t^T + diag(w_t) dS_t,     dS_{T-1} = 0
//   dr_t[i]   = sum_j dy_t[j] (u[i] k_t[i] v_t[j] + S_{t-1}[i][j])
//   dk_t[i]   = r_t[i] u[i] (dy_t . v_t) + sum_j dS_t[i][j] v_t[j]
//   dv_t[j]   = (sum_i r_t[i] u[i] k_t[i]) dy_t[j] + sum_i dS_t[i][j] k_t[i]
//   dlw_t[i]  = w_t[i] sum_j dS_t[i][j] S_{t-1}[i][j]
//   du[i]     = sum_t r_t[i] k_t[i] (dy_t . v_t)
// The states S_{t-1} of one (b, h) are kept ([T, N, N]).
template <typename F>
void wkv6_backward_naive(int B, int T, int H, int N, int h0, int h1, const F* r, const F* k,
                         const F* v, const F* lw, const F* u, const F* dy, F* dr, F* dk, F* dv,
                         F* dlw, F* du) {
  check_heads("wkv6_backward_naive", B, T, H, N, h0, h1, 1);
  const size_t NN = size_t(N) * N;
  std::vector<F> hist(size_t(std::max(T, 1)) * NN), dS(NN), dut(size_t(H) * N, F(0));
  for (int b = 0; b < B; ++b) {
    for (int h = h0; h < h1; ++h) {
      const F* uh = u + size_t(h) * N;
      F* duh = dut.data() + size_t(h) * N;
      // Forward: hist[t] = S_{t-1}.
      std::fill(hist.begin(), hist.begin() + NN, F(0));
      for (int t = 0; t + 1 < T; ++t) {
        const size_t o = ((size_t(b) * T + t) * H + h) * N;
        const F* Sp = hist.data() + size_t(t) * NN;
        F* Sn = hist.data() + size_t(t + 1) * NN;
        for (int i = 0; i < N; ++i) {
          const F wi = std::exp(lw[o + i]), ki = k[o + i];
          for (int j = 0; j < N; ++j) Sn[i * N + j] = wi * Sp[i * N + j] + ki * v[o + j];
        }
      }
      std::fill(dS.begin(), dS.end(), F(0));
      for (int t = T - 1; t >= 0; --t) {
        const size_t o = ((size_t(b) * T + t) * H + h) * N;
        const F *rt = r + o, *kt = k + o, *vt = v + o, *gt = dy + o;
        const F* Sp = hist.data() + size_t(t) * NN;
        F dyv = 0, ruk = 0;
        for (int j = 0; j < N; ++j) dyv += gt[j] * vt[j];
        for (int i = 0; i < N; ++i) ruk += rt[i] * uh[i] * kt[i];
        for (int j = 0; j < N; ++j) dv[o + j] = ruk * gt[j];
        for (int i = 0; i < N; ++i) {
          const F* Si = Sp + size_t(i) * N;
          F* dSi = dS.data() + size_t(i) * N;
          const F wi = std::exp(lw[o + i]);
          F gS = 0, dSv = 0, dSS = 0;
          for (int j = 0; j < N; ++j) {
            gS += gt[j] * Si[j];
            dSv += dSi[j] * vt[j];
            dSS += dSi[j] * Si[j];
            dv[o + j] += dSi[j] * kt[i];
          }
          dr[o + i] = uh[i] * kt[i] * dyv + gS;
          dk[o + i] = rt[i] * uh[i] * dyv + dSv;
          dlw[o + i] = wi * dSS;
          duh[i] += rt[i] * kt[i] * dyv;
          for (int j = 0; j < N; ++j) dSi[j] = wi * dSi[j] + rt[i] * gt[j];
        }
      }
    }
  }
  std::copy(dut.begin() + size_t(h0) * N, dut.begin() + size_t(h1) * N, du + size_t(h0) * N);
}

// Chunked form. For one head and a chunk of L tokens t = 0..L-1 (local index), with
// the cumulative log decay inside the chunk cum_0 = 0, cum_{t+1} = cum_t + lw_t (so
// every exp below is of a difference cum_a - cum_b with a >= b: a value in (0, 1],
// whatever lw <= 0 is; computed as products of per-step factors,
// wkv_detail::chunk_decays), and S_in the state before the chunk:
//   R~[t][i]  = r_t[i] e^{cum_t[i]}                       [L, N]
//   K^[s][i]  = k_s[i] e^{cum_L[i] - cum_{s+1}[i]}        [L, N]
//   A[t][s]   = sum_i r_t[i] k_s[i] e^{cum_t[i] - cum_{s+1}[i]}   (s < t)
//   A[t][t]   = sum_i r_t[i] u[i] k_t[i],  A[t][s] = 0 (s > t)    [L, L]
//   Y         = R~ S_in + A V
//   S_out     = diag(e^{cum_L}) S_in + K^^T V
// Backward, given dY and dS_out (the gradient of the state after the chunk):
//   dA = dY V^T (lower part), dV = A^T dY + K^ dS_out, dR~ = dY S_in^T, dK^ = V dS_out^T,
//   dS_in = diag(e^{cum_L}) dS_out + R~^T dY,
//   dr, dk from dR~, dK^ and the entries of A; du from the diagonal of A.
// dlw_m[i] is the sum of the terms whose decay spans step m, i.e. the pairs
// (key s, query t') with s < m < t' (the state before the chunk counts as s < 0, the
// gradient after it as t' >= L):
//   e^{cum_L[i]} sum_j S_in[i][j] dS_out[i][j]              (state in, gradient out)
//   + sum_{t' > m} R~[t'][i] dR~[t'][i]                     (state in, query in chunk)
//   + sum_{s < m} K^[s][i] dK^[s][i]                        (key in chunk, gradient out)
//   + sum_{s < m < t'} dA[t'][s] r_t'[i] k_s[i] e^{cum_t'[i] - cum_{s+1}[i]}.
// All are sums of terms that each carry the decay of step m, so a tiny decay gives a
// tiny dlw without cancellation.
//
// Factored pairs. Where a chunk's decays are mild (no step below -kMaxStepLogDecay but
// the last, cum_{L-1} >= -kMaxChunkLogDecay in every channel of the head: what
// wkv_detail::chunk_length would not cut; a model's v5/v6 decays at initialisation,
// lw in [-0.37, 0), always are), the pair decay splits as e^{cum_t} e^{-cum_{s+1}}
// (as in the chunked WKV7, wkv7.cpp) and the pairs become products with
//   K~[s][i] = k_s[i] e^{-cum_{s+1}[i]}  (s < L-1; row L-1 = 0)              [L, N]
//   A = R~ K~^T (strictly lower),  dR~ += dA K~,  dK~ = dA^T R~  (dA strictly lower),
// dk_s += dK~[s] e^{-cum_{s+1}}, and the pair term of dlw_m becomes
//   sum_{t' > m} R~[t'] dR~[t'] (now the whole dR~) - sum_{s >= m} K~[s] dK~[s]:
// the pairs that do not straddle m cancel between the two sums, which
// kMaxStepLogDecay keeps accurate (wkv_common.h). Other chunks take the exact pair loops.
namespace {

// Dot products in 16 interleaved partial sums: they vectorise without -ffast-math (as
// wkv_detail::dot, which keeps 8), and an AVX-512 clone keeps them in one register.
// The partial sums are added in halves, written out (as a loop GCC keeps them on the
// stack).
template <typename F>
[[gnu::always_inline]] inline F sum16(const F* acc) {
  F h8[8], h4[4];
  for (int l = 0; l < 8; ++l) h8[l] = acc[l] + acc[l + 8];
  for (int l = 0; l < 4; ++l) h4[l] = h8[l] + h8[l + 4];
  return (h4[0] + h4[2]) + (h4[1] + h4[3]);
}

// sum_i x[i] y[i]
template <typename F>
[[gnu::always_inline]] inline F dot16(const F* __restrict x, const F* __restrict y, int n) {
  F acc[16] = {};
  int j = 0;
  for (; j + 16 <= n; j += 16)
    for (int l = 0; l < 16; ++l) acc[l] += x[j + l] * y[j + l];
  F tail = 0;
  for (; j < n; ++j) tail += x[j] * y[j];
  return sum16(acc) + tail;
}

// sum_i x[i] y[i] z[i]
template <typename F>
[[gnu::always_inline]] inline F dot3(const F* __restrict x, const F* __restrict y,
                                     const F* __restrict z, int n) {
  F acc[16] = {};
  int j = 0;
  for (; j + 16 <= n; j += 16)
    for (int l = 0; l < 16; ++l) acc[l] += x[j + l] * y[j + l] * z[j + l];
  F tail = 0;
  for (; j < n; ++j) tail += x[j] * y[j] * z[j];
  return sum16(acc) + tail;
}

// x[s][i] *= f[i] for s < n rows of N (x and f disjoint).
template <typename F>
[[gnu::always_inline]] inline void scale_rows(int n, int N, F* __restrict x,
                                              const F* __restrict f) {
  for (int s = 0; s < n; ++s)
    for (int i = 0; i < N; ++i) x[size_t(s) * N + i] *= f[i];
}

// out[i][j] = x[i][j] f[j] for an N x N matrix (out may be x).
template <typename F>
[[gnu::always_inline]] inline void scale_columns(int N, const F* __restrict f, const F* x, F* out) {
  for (int i = 0; i < N; ++i)
    for (int j = 0; j < N; ++j) out[size_t(i) * N + j] = x[size_t(i) * N + j] * f[j];
}

template <typename F>
struct Chunk6 {
  int L;  // tokens in this chunk
  int N;
  bool factored = false;      // the pairs as products (the chunk's decays are mild)
  std::vector<F> w, Q;        // [Lmax, N]: e^{lw_t}, e^{cum_L - cum_{t+1}}
  std::vector<F> P;           // [Lmax+1, N]: e^{cum_t}
  std::vector<F> Pinv;        // [Lmax, N]: e^{-cum_{t+1}} (row L-1: 0), when factored
  std::vector<F> Rt, Kh, Kt;  // [Lmax, N]: R~, K^, K~ (when factored)
  std::vector<F> A;           // [Lmax, Lmax]
  std::vector<F> E;           // [Lmax, N] scratch
  std::vector<F> cum;         // [N] scratch
  Chunk6(int Lmax, int n)
      : L(0),
        N(n),
        w(size_t(Lmax) * n),
        Q(w.size()),
        P(size_t(Lmax + 1) * n),
        Pinv(w.size()),
        Rt(w.size()),
        Kh(w.size()),
        Kt(w.size()),
        A(size_t(Lmax) * Lmax),
        E(w.size()),
        cum(n) {}

  // r, k, lw point at token 0 of the chunk for this head; consecutive tokens are ld apart.
  RWKV_CPU_SIMD void decays(int len, const F* k, const F* lw, int ld) {
    L = len;
    wkv_detail::chunk_decays(L, N, lw, ld, w.data(), P.data(), Q.data());
    mul_rows(L, N, k, ld, Q.data(), Kh.data(), N);
  }

  // After decays, for the pairs of the chunk (attention, Back6::chunk): whether they
  // are factored, and then Pinv and K~.
  RWKV_CPU_SIMD void pair_factors(const F* k, const F* lw, int ld) {
    factored = wkv_detail::chunk_length(L, 0, L, N, lw, ld, cum.data()) == L;
    if (!factored) return;
    for (int t = 0; t + 1 < L; ++t)
      for (int i = 0; i < N; ++i) Pinv[size_t(t) * N + i] = F(1) / P[size_t(t + 1) * N + i];
    std::fill(Pinv.begin() + size_t(L - 1) * N, Pinv.begin() + size_t(L) * N, F(0));
    mul_rows(L, N, k, ld, Pinv.data(), Kt.data(), N);
  }

  RWKV_CPU_SIMD void attention(const F* r, const F* k, const F* u, int ld, int lda) {
    mul_rows(L, N, r, ld, P.data(), Rt.data(), N);
    if (factored) {
      gemm(false, true, L, L, N, F(1), Rt.data(), N, Kt.data(), N, F(0), A.data(), lda);
      for (int t = 0; t < L; ++t) {
        F* At = A.data() + size_t(t) * lda;
        At[t] = dot3(r + size_t(t) * ld, u, k + size_t(t) * ld, N);
        std::fill(At + t + 1, At + lda, F(0));
      }
      return;
    }
    for (int t = 0; t < L; ++t) {
      const F* rt = r + size_t(t) * ld;
      F* At = A.data() + size_t(t) * lda;
      // E[s][i] = k_s[i] e^{cum_t[i] - cum_{s+1}[i]}: the previous token's rows times
      // w_{t-1}, and row t-1 = k_{t-1}; then A[t][0:t] = E r_t.
      if (t > 0) {
        scale_rows(t - 1, N, E.data(), w.data() + size_t(t - 1) * N);
        std::copy(k + size_t(t - 1) * ld, k + size_t(t - 1) * ld + N,
                  E.begin() + size_t(t - 1) * N);
      }
      for (int s = 0; s < t; ++s) At[s] = dot16(E.data() + size_t(s) * N, rt, N);
      At[t] = dot3(rt, u, k + size_t(t) * ld, N);
      std::fill(At + t + 1, At + lda, F(0));
    }
  }

  // S <- diag(e^{cum_L}) S + K^^T V
  RWKV_CPU_SIMD void advance(F* S, const F* v, int ld) const {
    const F* PL = P.data() + size_t(L) * N;
    for (int i = 0; i < N; ++i)
      for (int j = 0; j < N; ++j) S[size_t(i) * N + j] *= PL[i];
    gemm(true, false, N, N, L, F(1), Kh.data(), N, v, ld, F(1), S, N);
  }

  // The same on transposed states (St = S^T): Stn = Stc diag(e^{cum_L}) + V^T K^.
  RWKV_CPU_SIMD void advance_transposed(const F* Stc, F* Stn, const F* v, int ld) const {
    scale_columns(N, P.data() + size_t(L) * N, Stc, Stn);
    gemm(true, false, N, N, L, F(1), v, ld, Kh.data(), N, F(1), Stn, N);
  }
};

// Rows [0, L) of n values, ld apart, of each tensor in xs, into the cache.
template <typename F>
inline void prefetch_chunk(std::initializer_list<const F*> xs, size_t o, int L, int ld, int n) {
  for (const F* x : xs) wkv_detail::prefetch_rows(x + o, L, ld, n);
}

// The same for rows about to be written (the gradients: fetched for writing, so the
// first store does not wait for them).
template <typename F>
inline void prefetch_chunk_for_write(std::initializer_list<F*> xs, size_t o, int L, int ld, int n) {
  for (F* x : xs)
    for (int t = 0; t < L; ++t)
      for (int j = 0; j < n; j += 64 / int(sizeof(F)))
        __builtin_prefetch(x + o + size_t(t) * ld + j, 1, 2);
}

}  // namespace

template <typename F>
void wkv6_forward_chunked(int B, int T, int H, int N, int h0, int h1, const F* r, const F* k,
                          const F* v, const F* lw, const F* u, F* y,
                          const std::type_identity_t<F>* state_in,
                          std::type_identity_t<F>* state_out, int chunk) {
  check_heads("wkv6_forward_chunked", B, T, H, N, h0, h1, chunk);
  const size_t NN = size_t(N) * N;
  const int ld = H * N;
  const int Lmax = std::min(chunk, std::max(T, 1));
  Chunk6<F> ch(Lmax, N);
  // Chunks outermost, heads inside: a chunk of all heads is L contiguous token rows, read
  // in order (head by head, the rows of one head are N-float pieces H N floats apart).
  // While a head computes, its rows of the next chunk are prefetched.
  std::vector<F> S(size_t(h1 - h0) * NN);  // [h1-h0, N, N]
  for (int b = 0; b < B; ++b) {
    const size_t sofs = (size_t(b) * H + h0) * NN;
    load_state(S, state_in, sofs);
    for (int t0 = 0; t0 < T; t0 += Lmax) {
      const int L = std::min(Lmax, T - t0), Ln = std::min(Lmax, std::max(T - t0 - L, 0));
      for (int h = h0; h < h1; ++h) {
        const size_t o = ((size_t(b) * T + t0) * H + h) * N;
        F* Sh = S.data() + size_t(h - h0) * NN;
        // Prefetch the rows of the next head of this chunk, or of the next chunk's first
        // head after the last (as wkv7.cpp; the same head's next chunk, a whole round of
        // heads ahead, was ~3% slower at B 4, T 1024, C 512).
        const bool last = h + 1 == h1;
        const size_t on = last ? ((size_t(b) * T + t0 + L) * H + h0) * N : o + N;
        prefetch_chunk({r, k, v, lw}, on, last ? Ln : L, ld, N);
        prefetch_chunk_for_write({y}, on, last ? Ln : L, ld, N);
        ch.decays(L, k + o, lw + o, ld);
        ch.pair_factors(k + o, lw + o, ld);
        ch.attention(r + o, k + o, u + size_t(h) * N, ld, Lmax);
        gemm(false, false, L, N, N, F(1), ch.Rt.data(), N, Sh, N, F(0), y + o, ld);
        gemm(false, false, L, N, L, F(1), ch.A.data(), Lmax, v + o, ld, F(1), y + o, ld);
        ch.advance(Sh, v + o, ld);
      }
    }
    if (state_out) std::copy(S.begin(), S.end(), state_out + sofs);
  }
}

namespace {

// The pairs (t, s), s < t, of row t of the chunked backward, over the channels i in
// blocks of W (N a multiple of W): with g = dA[t][s], e = e^{cum_t - cum_{s+1}} (E[s]),
//   dr_t[i] += g e[i] k_s[i],  dk_s[i] += g e[i] r_t[i],
//   D_s[i]  += sum_{s' < s} g' e'[i] r_t[i] k_s'[i]   (the pairs of row t before s).
// Blocks of channels outside, pairs inside: dr_t and the running prefix of a block stay
// in registers, each pair loads and stores only its dk_s and D_s.
template <typename F, int W>
[[gnu::always_inline]] inline void pair_row(int N, int t, const F* __restrict dAt,
                                            const F* __restrict E, const F* __restrict rt,
                                            const F* __restrict k, int ld, F* __restrict drt,
                                            F* __restrict dk, F* __restrict D) {
  for (int i0 = 0; i0 < N; i0 += W) {
    F dra[W], acc[W], rb[W];
    for (int l = 0; l < W; ++l) {
      dra[l] = drt[i0 + l];
      acc[l] = 0;
      rb[l] = rt[i0 + l];
    }
    for (int s = 0; s < t; ++s) {
      const F g = dAt[s];
      const F* e = E + size_t(s) * N + i0;
      const F* ks = k + size_t(s) * ld + i0;
      F* dks = dk + size_t(s) * ld + i0;
      F* Ds = D + size_t(s) * N + i0;
      for (int l = 0; l < W; ++l) {
        const F ge = g * e[l], gr = ge * rb[l];
        dra[l] += ge * ks[l];
        dks[l] += gr;
        Ds[l] += acc[l];
        acc[l] += gr * ks[l];
      }
    }
    for (int l = 0; l < W; ++l) drt[i0 + l] = dra[l];
  }
}

// out[j] = sum_i x[i][j] y[i][j] for N x N matrices.
template <typename F>
[[gnu::always_inline]] inline void column_dots(int N, const F* __restrict x, const F* __restrict y,
                                               F* __restrict out) {
  std::fill(out, out + N, F(0));
  for (int i = 0; i < N; ++i)
    for (int j = 0; j < N; ++j) out[j] += x[size_t(i) * N + j] * y[size_t(i) * N + j];
}

// The diagonal pair (t, t) with g = dA[t][t]: dr_t += g u k_t, dk_t += g u r_t,
// du += g r_t k_t.
template <typename F>
[[gnu::always_inline]] inline void diag_grads(int N, F g, const F* __restrict u,
                                              const F* __restrict rt, const F* __restrict kt,
                                              F* __restrict drt, F* __restrict dkt,
                                              F* __restrict du) {
  for (int i = 0; i < N; ++i) {
    drt[i] += g * u[i] * kt[i];
    dkt[i] += g * u[i] * rt[i];
    du[i] += g * rt[i] * kt[i];
  }
}

// Scratch and the per-chunk step of the chunked backward.
template <typename F>
struct Back6 {
  std::vector<F> dA;                   // [Lmax, Lmax]
  std::vector<F> dRt, dKh, dKt, D, E;  // [Lmax, N]
  std::vector<F> gd;                   // [Lmax]: the diagonal of dA
  std::vector<F> X, run;               // [N]
  Back6(int Lmax, int N)
      : dA(size_t(Lmax) * Lmax),
        dRt(size_t(Lmax) * N),
        dKh(dRt.size()),
        dKt(dRt.size()),
        D(dRt.size()),
        E(dRt.size()),
        gd(Lmax),
        X(N),
        run(N) {}

  // The pairs (t, s <= t) one by one, with the decays e^{cum_t - cum_{s+1}} as running
  // products (E): dr, dk from dRt, dKh and the pairs, D, and A (the forward's, for dv).
  [[gnu::always_inline]] inline void pairs_exact(Chunk6<F>& ch, int L, int Lmax, int ld, const F* r,
                                                 const F* k, const F* uh, F* dr, F* dk, F* duh) {
    const int N = ch.N;
    std::fill(D.begin(), D.begin() + size_t(L) * N, F(0));
    mul_rows(L, N, r, ld, ch.P.data(), ch.Rt.data(), N);
    mul_rows(L, N, dRt.data(), N, ch.P.data(), dr, ld);
    mul_rows(L, N, dKh.data(), N, ch.Q.data(), dk, ld);
    // Row t: E[s] = e^{cum_t - cum_{s+1}} (s < t; the previous row's values times
    // w_{t-1}), the row A[t] of the forward, then the pairs (t, s <= t).
    for (int t = 0; t < L; ++t) {
      const F* rt = r + size_t(t) * ld;
      const F* kt = k + size_t(t) * ld;
      F* drt = dr + size_t(t) * ld;
      F* At = ch.A.data() + size_t(t) * Lmax;
      const F* dAt = dA.data() + size_t(t) * Lmax;
      if (t > 0) {
        scale_rows(t - 1, N, E.data(), ch.w.data() + size_t(t - 1) * N);
        std::fill(E.begin() + size_t(t - 1) * N, E.begin() + size_t(t) * N, F(1));
      }
      for (int s = 0; s < t; ++s) At[s] = dot3(E.data() + size_t(s) * N, k + size_t(s) * ld, rt, N);
      At[t] = dot3(rt, uh, kt, N);
      std::fill(At + t + 1, At + L, F(0));
      if (N % 16 == 0) {
        pair_row<F, 16>(N, t, dAt, E.data(), rt, k, ld, drt, dk, D.data());
      } else if (N % 8 == 0) {
        pair_row<F, 8>(N, t, dAt, E.data(), rt, k, ld, drt, dk, D.data());
      } else {
        pair_row<F, 1>(N, t, dAt, E.data(), rt, k, ld, drt, dk, D.data());
      }
      diag_grads(N, dAt[t], uh, rt, kt, drt, dk + size_t(t) * ld, duh);
    }
  }

  // The pairs s < t as products (the chunk's decays are mild: Chunk6::factored):
  // dR~ += dA K~, dK~ = dA^T R~ with dA strictly lower; then dr, dk, the diagonal pairs,
  // A (for dv) and D = -sum_{s >= m} K~[s] dK~[s], which with the suffix sums of R~ dR~
  // in chunk (dR~ now includes the pairs) makes the pair term of dlw.
  [[gnu::always_inline]] inline void pairs_factored(Chunk6<F>& ch, int L, int Lmax, int ld,
                                                    const F* r, const F* k, const F* uh, F* dr,
                                                    F* dk, F* duh) {
    const int N = ch.N;
    ch.attention(r, k, uh, ld, Lmax);
    for (int t = 0; t < L; ++t) {
      F* dAt = dA.data() + size_t(t) * Lmax;
      gd[t] = dAt[t];
      std::fill(dAt + t, dAt + L, F(0));
    }
    gemm(false, false, L, N, L, F(1), dA.data(), Lmax, ch.Kt.data(), N, F(1), dRt.data(), N);
    gemm(true, false, L, N, L, F(1), dA.data(), Lmax, ch.Rt.data(), N, F(0), dKt.data(), N);
    mul_rows(L, N, dRt.data(), N, ch.P.data(), dr, ld);
    wkv_detail::mul2_rows(L, N, dKh.data(), dKt.data(), ch.Q.data(), ch.Pinv.data(), dk, ld);
    for (int t = 0; t < L; ++t)
      diag_grads(N, gd[t], uh, r + size_t(t) * ld, k + size_t(t) * ld, dr + size_t(t) * ld,
                 dk + size_t(t) * ld, duh);
    for (int t = L - 1; t >= 0; --t) {
      const size_t ti = size_t(t) * N;
      for (int i = 0; i < N; ++i)
        D[ti + i] = (t + 1 < L ? D[ti + N + i] : F(0)) - ch.Kt[ti + i] * dKt[ti + i];
    }
  }

  // One chunk of L tokens of head h (pointers at its first token, tokens ld apart; uh,
  // duh the head's u and du [N]); St the state entering the chunk, transposed; dSt:
  // dS_out^T on entry, dS_in^T on exit. ch is this struct's forward scratch (overwritten).
  // The states are kept transposed so that the products dY S^T and V dS^T are plain
  // (OpenBLAS's small-matrix kernel for row-major X Y^T is about half as fast).
  RWKV_CPU_SIMD void chunk(Chunk6<F>& ch, int L, int Lmax, int ld, const F* r, const F* k,
                           const F* v, const F* lw, const F* uh, const F* dy, const F* St, F* dSt,
                           F* dr, F* dk, F* dv, F* dlw, F* duh) {
    const int N = ch.N;
    ch.decays(L, k, lw, ld);
    ch.pair_factors(k, lw, ld);
    const F* P = ch.P.data();
    const F* PL = P + size_t(L) * N;  // e^{cum_L}
    gemm(false, true, L, L, N, F(1), dy, ld, v, ld, F(0), dA.data(), Lmax);
    gemm(false, false, L, N, N, F(1), dy, ld, St, N, F(0), dRt.data(), N);
    gemm(false, false, L, N, N, F(1), v, ld, dSt, N, F(0), dKh.data(), N);
    if (ch.factored) {
      pairs_factored(ch, L, Lmax, ld, r, k, uh, dr, dk, duh);
    } else {
      pairs_exact(ch, L, Lmax, ld, r, k, uh, dr, dk, duh);
    }
    gemm(true, false, L, N, L, F(1), ch.A.data(), Lmax, dy, ld, F(0), dv, ld);
    gemm(false, true, L, N, N, F(1), ch.Kh.data(), N, dSt, N, F(1), dv, ld);
    // X[i] = e^{cum_L[i]} sum_j S[i][j] dS[i][j]
    column_dots(N, St, dSt, X.data());
    for (int i = 0; i < N; ++i) X[i] *= PL[i];
    // dlw = X + D + prefix sums of K^ dK^ (forward) + suffix sums of R~ dR~ (backward).
    std::fill(run.begin(), run.end(), F(0));
    for (int t = 0; t < L; ++t) {
      F* dl = dlw + size_t(t) * ld;
      const size_t ti = size_t(t) * N;
      for (int i = 0; i < N; ++i) {
        dl[i] = X[i] + D[ti + i] + run[i];
        run[i] += ch.Kh[ti + i] * dKh[ti + i];
      }
    }
    std::fill(run.begin(), run.end(), F(0));
    for (int t = L - 1; t >= 0; --t) {
      F* dl = dlw + size_t(t) * ld;
      const size_t ti = size_t(t) * N;
      for (int i = 0; i < N; ++i) {
        dl[i] += run[i];
        run[i] += ch.Rt[ti + i] * dRt[ti + i];
      }
    }
    // dS_in^T = dS_out^T diag(e^{cum_L}) + dY^T R~
    scale_columns(N, PL, dSt, dSt);
    gemm(true, false, N, N, L, F(1), dy, ld, ch.Rt.data(), N, F(1), dSt, N);
  }
};

}  // namespace

template <typename F>
void wkv6_backward_chunked(int B, int T, int H, int N, int h0, int h1, const F* r, const F* k,
                           const F* v, const F* lw, const F* u, const F* dy, F* dr, F* dk, F* dv,
                           F* dlw, F* du, int chunk) {
  check_heads("wkv6_backward_chunked", B, T, H, N, h0, h1, chunk);
  const size_t NN = size_t(N) * N;
  const int ld = H * N;
  const int Lmax = std::min(chunk, std::max(T, 1));
  const int nchunks = (T + Lmax - 1) / Lmax;
  const int nh = h1 - h0;
  Chunk6<F> ch(Lmax, N);
  Back6<F> bk(Lmax, N);
  // Sin[c][h] = the state entering chunk c, transposed (one buffer, not zeroed: every
  // state is written before it is read; the first pass advances Srun, the running
  // states, and copies them out); dS [nh, N, N], transposed. Chunks outermost, heads
  // inside, as in the forward; each (chunk, head) prefetches the rows of the next.
  const auto Sin = std::make_unique_for_overwrite<F[]>(size_t(std::max(nchunks, 1)) * nh * NN);
  std::vector<F> dS(size_t(nh) * NN), dut(size_t(H) * N, F(0));
  std::vector<F> Srun(size_t(nh) * NN);
  for (int b = 0; b < B; ++b) {
    std::fill(Sin.get(), Sin.get() + size_t(nh) * NN, F(0));
    std::fill(Srun.begin(), Srun.end(), F(0));
    for (int c = 0; c + 1 < nchunks; ++c) {
      for (int h = h0; h < h1; ++h) {
        const size_t o = ((size_t(b) * T + size_t(c) * Lmax) * H + h) * N;
        F* cur = Srun.data() + size_t(h - h0) * NN;
        F* next = Sin.get() + (size_t(c + 1) * nh + (h - h0)) * NN;
        const bool last = h + 1 == h1;
        const size_t on = last ? ((size_t(b) * T + size_t(c + 1) * Lmax) * H + h0) * N : o + N;
        prefetch_chunk({k, v, lw}, on, last ? std::min(Lmax, T - (c + 1) * Lmax) : Lmax, ld, N);
        ch.decays(Lmax, k + o, lw + o, ld);
        // The running state stays in cache; its copy for the second pass goes out with
        // stores that bypass the cache (no read of the lines they fill).
        ch.advance_transposed(cur, cur, v + o, ld);
        wkv_detail::stream_copy(cur, NN, next);
      }
    }
    std::fill(dS.begin(), dS.end(), F(0));
    for (int c = nchunks - 1; c >= 0; --c) {
      const int t0 = c * Lmax, L = std::min(Lmax, T - t0), Lp = c > 0 ? Lmax : 0;
      for (int h = h0; h < h1; ++h) {
        const size_t o = ((size_t(b) * T + t0) * H + h) * N;
        const bool last = h + 1 == h1;
        const size_t on = last ? ((size_t(b) * T + t0 - Lp) * H + h0) * N : o + N;
        prefetch_chunk({r, k, v, lw, dy}, on, last ? Lp : L, ld, N);
        prefetch_chunk_for_write({dr, dk, dv, dlw}, on, last ? Lp : L, ld, N);
        bk.chunk(ch, L, Lmax, ld, r + o, k + o, v + o, lw + o, u + size_t(h) * N, dy + o,
                 Sin.get() + (size_t(c) * nh + (h - h0)) * NN, dS.data() + size_t(h - h0) * NN,
                 dr + o, dk + o, dv + o, dlw + o, dut.data() + size_t(h) * N);
      }
    }
  }
  std::copy(dut.begin() + size_t(h0) * N, dut.begin() + size_t(h1) * N, du + size_t(h0) * N);
}

#define RWKV_WKV6_INSTANTIATE(F)                                                                   \
  template void wkv6_forward_naive<F>(int, int, int, int, int, int, const F*, const F*, const F*,  \
                                      const F*, const F*, F*, const F*, F*);                       \
  template void wkv6_backward_naive<F>(int, int, int, int, int, int, const F*, const F*, const F*, \
                                       const F*, const F*, const F*, F*, F*, F*, F*, F*);          \
  template void wkv6_forward_chunked<F>(int, int, int, int, int, int, const F*, const F*,          \
                                        const F*, const F*, const F*, F*, const F*, F*, int);      \
  template void wkv6_backward_chunked<F>(int, int, int, int, int, int, const F*, const F*,         \
                                         const F*, const F*, const F*, const F*, F*, F*, F*, F*,   \
                                         F*, int);
RWKV_WKV6_INSTANTIATE(float)
RWKV_WKV6_INSTANTIATE(double)
#undef RWKV_WKV6_INSTANTIATE

}  // namespace rwkv::kernels
