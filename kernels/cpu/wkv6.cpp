#include "kernels/cpu/wkv6.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/wkv_common.h"

namespace rwkv::kernels {
namespace {

using wkv_detail::check_heads;
using wkv_detail::dot;
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
namespace {

template <typename F>
struct Chunk6 {
  int L;  // tokens in this chunk
  int N;
  std::vector<F> w, Q;    // [Lmax, N]: e^{lw_t}, e^{cum_L - cum_{t+1}}
  std::vector<F> P;       // [Lmax+1, N]: e^{cum_t}
  std::vector<F> Rt, Kh;  // [Lmax, N]
  std::vector<F> A;       // [Lmax, Lmax]
  std::vector<F> E;       // [Lmax, N] scratch
  Chunk6(int Lmax, int n)
      : L(0),
        N(n),
        w(size_t(Lmax) * n),
        Q(w.size()),
        P(size_t(Lmax + 1) * n),
        Rt(w.size()),
        Kh(w.size()),
        A(size_t(Lmax) * Lmax),
        E(w.size()) {}

  // r, k, lw point at token 0 of the chunk for this head; consecutive tokens are ld apart.
  RWKV_CPU_SIMD void decays(int len, const F* k, const F* lw, int ld) {
    L = len;
    wkv_detail::chunk_decays(L, N, lw, ld, w.data(), P.data(), Q.data());
    mul_rows(L, N, k, ld, Q.data(), Kh.data(), N);
  }

  RWKV_CPU_SIMD void attention(const F* r, const F* k, const F* u, int ld, int lda) {
    mul_rows(L, N, r, ld, P.data(), Rt.data(), N);
    for (int t = 0; t < L; ++t) {
      const F* rt = r + size_t(t) * ld;
      F* At = A.data() + size_t(t) * lda;
      // E[s][i] = k_s[i] e^{cum_t[i] - cum_{s+1}[i]}: the previous token's rows times
      // w_{t-1}, and row t-1 = k_{t-1}; then A[t][0:t] = E r_t.
      if (t > 0) {
        const F* wp = w.data() + size_t(t - 1) * N;
        for (int s = 0; s + 1 < t; ++s)
          for (int i = 0; i < N; ++i) E[size_t(s) * N + i] *= wp[i];
        std::copy(k + size_t(t - 1) * ld, k + size_t(t - 1) * ld + N,
                  E.begin() + size_t(t - 1) * N);
      }
      for (int s = 0; s < t; ++s) At[s] = dot(E.data() + size_t(s) * N, rt, N);
      F diag = 0;
      const F* kt = k + size_t(t) * ld;
      for (int i = 0; i < N; ++i) diag += rt[i] * u[i] * kt[i];
      At[t] = diag;
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
};

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
  std::vector<F> S(size_t(h1 - h0) * NN);  // [h1-h0, N, N]
  for (int b = 0; b < B; ++b) {
    const size_t sofs = (size_t(b) * H + h0) * NN;
    load_state(S, state_in, sofs);
    for (int t0 = 0; t0 < T; t0 += Lmax) {
      const int L = std::min(Lmax, T - t0);
      for (int h = h0; h < h1; ++h) {
        const size_t o = ((size_t(b) * T + t0) * H + h) * N;
        F* Sh = S.data() + size_t(h - h0) * NN;
        ch.decays(L, k + o, lw + o, ld);
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

// The pair (t, s), s < t, of the chunked backward over the channels i: g = dA[t][s],
// e = e^{cum_t - cum_{s+1}}. Adds to dr_t and dk_s; D_s gets the prefix acc (pairs
// s' < s of row t). The pointers never overlap.
template <typename F>
inline void pair_grads(int N, F g, const F* __restrict e, const F* __restrict rt,
                       const F* __restrict ks, F* __restrict drt, F* __restrict dks,
                       F* __restrict Ds, F* __restrict acc) {
  for (int i = 0; i < N; ++i) {
    const F ge = g * e[i];
    drt[i] += ge * ks[i];
    dks[i] += ge * rt[i];
    Ds[i] += acc[i];
    acc[i] += ge * rt[i] * ks[i];
  }
}

// Scratch and the per-chunk step of the chunked backward.
template <typename F>
struct Back6 {
  std::vector<F> dA;              // [Lmax, Lmax]
  std::vector<F> dRt, dKh, D, E;  // [Lmax, N]
  std::vector<F> X, acc, run;     // [N]
  Back6(int Lmax, int N)
      : dA(size_t(Lmax) * Lmax),
        dRt(size_t(Lmax) * N),
        dKh(dRt.size()),
        D(dRt.size()),
        E(dRt.size()),
        X(N),
        acc(N),
        run(N) {}

  // One chunk of L tokens of head h (pointers at its first token, tokens ld apart; uh,
  // duh the head's u and du [N]); S the state entering the chunk; dS: dS_out on entry,
  // dS_in on exit. ch is this struct's forward scratch (overwritten).
  RWKV_CPU_SIMD void chunk(Chunk6<F>& ch, int L, int Lmax, int ld, const F* r, const F* k,
                           const F* v, const F* lw, const F* uh, const F* dy, const F* S, F* dS,
                           F* dr, F* dk, F* dv, F* dlw, F* duh) {
    const int N = ch.N;
    ch.decays(L, k, lw, ld);
    ch.attention(r, k, uh, ld, Lmax);
    const F* P = ch.P.data();
    const F* PL = P + size_t(L) * N;  // e^{cum_L}
    gemm(false, true, L, L, N, F(1), dy, ld, v, ld, F(0), dA.data(), Lmax);
    gemm(true, false, L, N, L, F(1), ch.A.data(), Lmax, dy, ld, F(0), dv, ld);
    gemm(false, false, L, N, N, F(1), ch.Kh.data(), N, dS, N, F(1), dv, ld);
    gemm(false, true, L, N, N, F(1), dy, ld, S, N, F(0), dRt.data(), N);
    gemm(false, true, L, N, N, F(1), v, ld, dS, N, F(0), dKh.data(), N);
    mul_rows(L, N, dRt.data(), N, P, dr, ld);
    mul_rows(L, N, dKh.data(), N, ch.Q.data(), dk, ld);
    std::fill(D.begin(), D.end(), F(0));
    for (int t = 0; t < L; ++t) {
      const F* rt = r + size_t(t) * ld;
      F* drt = dr + size_t(t) * ld;
      std::fill(acc.begin(), acc.end(), F(0));
      // E[s] = e^{cum_t - cum_{s+1}}, s < t: the previous token's rows times w_{t-1}.
      if (t > 0) {
        const F* wp = ch.w.data() + size_t(t - 1) * N;
        for (int s = 0; s + 1 < t; ++s)
          for (int i = 0; i < N; ++i) E[size_t(s) * N + i] *= wp[i];
        std::fill(E.begin() + size_t(t - 1) * N, E.begin() + size_t(t) * N, F(1));
      }
      for (int s = 0; s < t; ++s)
        pair_grads(N, dA[size_t(t) * Lmax + s], E.data() + size_t(s) * N, rt, k + size_t(s) * ld,
                   drt, dk + size_t(s) * ld, D.data() + size_t(s) * N, acc.data());
      const F g = dA[size_t(t) * Lmax + t];
      const F* kt = k + size_t(t) * ld;
      F* dkt = dk + size_t(t) * ld;
      for (int i = 0; i < N; ++i) {
        drt[i] += g * uh[i] * kt[i];
        dkt[i] += g * uh[i] * rt[i];
        duh[i] += g * rt[i] * kt[i];
      }
    }
    for (int i = 0; i < N; ++i) X[i] = PL[i] * dot(S + size_t(i) * N, dS + size_t(i) * N, N);
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
    // dS_in = diag(e^{cum_L}) dS_out + R~^T dY
    for (int i = 0; i < N; ++i)
      for (int j = 0; j < N; ++j) dS[size_t(i) * N + j] *= PL[i];
    gemm(true, false, N, N, L, F(1), ch.Rt.data(), N, dy, ld, F(1), dS, N);
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
  // Sin[c][h] = the state entering chunk c; dS [nh, N, N]. Chunks outermost, heads
  // inside, as in the forward.
  std::vector<F> Sin(size_t(std::max(nchunks, 1)) * nh * NN), dS(size_t(nh) * NN);
  std::vector<F> dut(size_t(H) * N, F(0));
  for (int b = 0; b < B; ++b) {
    std::fill(Sin.begin(), Sin.begin() + size_t(nh) * NN, F(0));
    for (int c = 0; c + 1 < nchunks; ++c) {
      for (int h = h0; h < h1; ++h) {
        const size_t o = ((size_t(b) * T + size_t(c) * Lmax) * H + h) * N;
        const F* cur = Sin.data() + (size_t(c) * nh + (h - h0)) * NN;
        F* next = Sin.data() + (size_t(c + 1) * nh + (h - h0)) * NN;
        std::copy(cur, cur + NN, next);
        ch.decays(Lmax, k + o, lw + o, ld);
        ch.advance(next, v + o, ld);
      }
    }
    std::fill(dS.begin(), dS.end(), F(0));
    for (int c = nchunks - 1; c >= 0; --c) {
      const int t0 = c * Lmax, L = std::min(Lmax, T - t0);
      for (int h = h0; h < h1; ++h) {
        const size_t o = ((size_t(b) * T + t0) * H + h) * N;
        bk.chunk(ch, L, Lmax, ld, r + o, k + o, v + o, lw + o, u + size_t(h) * N, dy + o,
                 Sin.data() + (size_t(c) * nh + (h - h0)) * NN, dS.data() + size_t(h - h0) * NN,
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
