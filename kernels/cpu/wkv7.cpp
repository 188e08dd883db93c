#include "kernels/cpu/wkv7.h"

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

// One token: S <- S diag(w) + (S a) b^T + v k^T; then y = S r unless y is null (r is
// not read then). S [N, N]; w = exp(lw) [N].
template <typename F>
void step(int N, F* S, const F* w, const F* k, const F* v, const F* a, const F* b, const F* r,
          F* y) {
  for (int i = 0; i < N; ++i) {
    F* Si = S + size_t(i) * N;
    F sa = 0;
    for (int j = 0; j < N; ++j) sa += Si[j] * a[j];
    for (int j = 0; j < N; ++j) Si[j] = Si[j] * w[j] + sa * b[j] + v[i] * k[j];
    if (!y) continue;
    F yi = 0;
    for (int j = 0; j < N; ++j) yi += Si[j] * r[j];
    y[i] = yi;
  }
}

// Scratch of the reverse recurrence, [N] each.
template <typename F>
struct BackScratch {
  std::vector<F> w, dr, dw, dk, da, db;
  explicit BackScratch(int N) : w(N), dr(N), dw(N), dk(N), da(N), db(N) {}
};

// Reverse recurrence over L tokens of one head (pointers at the first token,
// consecutive tokens ld apart). hist [L+1, N, N] holds S_{-1} .. S_{L-1}; dS [N, N] is
// dL/dS_{L-1} from later tokens on entry and dL/dS_{-1} on exit. Per token, with
// sa = S_{t-1} a_t, dS += dy_t r_t^T (from y_t = S_t r_t) and then
//   dr_t = S_t^T dy_t              dv_t = dS k_t           dk_t = dS^T v_t
//   dsa  = dS b_t                  db_t = dS^T sa          da_t = S_{t-1}^T dsa
//   dlw_t[j] = w_t[j] sum_i dS[i][j] S_{t-1}[i][j]
//   dS  <- dS diag(w_t) + dsa a_t^T          (= dL/dS_{t-1})
template <typename F>
void backward_span(int L, int N, int ld, const F* r, const F* lw, const F* k, const F* v,
                   const F* a, const F* b, const F* dy, F* dr, F* dlw, F* dk, F* dv, F* da, F* db,
                   const F* hist, F* dS, BackScratch<F>& sc) {
  const size_t NN = size_t(N) * N;
  for (int t = L - 1; t >= 0; --t) {
    const size_t o = size_t(t) * ld;
    const F *rt = r + o, *kt = k + o, *vt = v + o, *at = a + o, *bt = b + o, *gt = dy + o;
    const F* Sp = hist + size_t(t) * NN;
    const F* Sc = hist + size_t(t + 1) * NN;
    for (int j = 0; j < N; ++j) sc.w[j] = std::exp(lw[o + j]);
    std::fill(sc.dr.begin(), sc.dr.end(), F(0));
    std::fill(sc.dw.begin(), sc.dw.end(), F(0));
    std::fill(sc.dk.begin(), sc.dk.end(), F(0));
    std::fill(sc.da.begin(), sc.da.end(), F(0));
    std::fill(sc.db.begin(), sc.db.end(), F(0));
    for (int i = 0; i < N; ++i) {
      F* dSi = dS + size_t(i) * N;
      const F* Spi = Sp + size_t(i) * N;
      const F* Sci = Sc + size_t(i) * N;
      const F gi = gt[i], vi = vt[i];
      F sa = 0, dsa = 0, dvi = 0;
      for (int j = 0; j < N; ++j) {
        dSi[j] += gi * rt[j];
        sc.dr[j] += gi * Sci[j];
        sa += Spi[j] * at[j];
        dsa += dSi[j] * bt[j];
        dvi += dSi[j] * kt[j];
      }
      dv[o + i] = dvi;
      for (int j = 0; j < N; ++j) {
        sc.dw[j] += dSi[j] * Spi[j];
        sc.db[j] += sa * dSi[j];
        sc.dk[j] += vi * dSi[j];
        sc.da[j] += dsa * Spi[j];
        dSi[j] = dSi[j] * sc.w[j] + dsa * at[j];
      }
    }
    for (int j = 0; j < N; ++j) {
      dr[o + j] = sc.dr[j];
      dlw[o + j] = sc.dw[j] * sc.w[j];
      dk[o + j] = sc.dk[j];
      da[o + j] = sc.da[j];
      db[o + j] = sc.db[j];
    }
  }
}

// hist[t+1] = S after token t, from hist[0]; L tokens.
template <typename F>
void states(int L, int N, int ld, const F* lw, const F* k, const F* v, const F* a, const F* b,
            F* hist, std::vector<F>& w) {
  const size_t NN = size_t(N) * N;
  for (int t = 0; t < L; ++t) {
    const size_t o = size_t(t) * ld;
    for (int j = 0; j < N; ++j) w[j] = std::exp(lw[o + j]);
    F* S = hist + size_t(t + 1) * NN;
    std::copy(hist + size_t(t) * NN, hist + size_t(t + 1) * NN, S);
    step(N, S, w.data(), k + o, v + o, a + o, b + o, static_cast<const F*>(nullptr),
         static_cast<F*>(nullptr));
  }
}

}  // namespace

template <typename F>
void wkv7_forward_naive(int B, int T, int H, int N, int h0, int h1, const F* r, const F* lw,
                        const F* k, const F* v, const F* a, const F* b, F* y,
                        const std::type_identity_t<F>* state_in,
                        std::type_identity_t<F>* state_out) {
  check_heads("wkv7_forward_naive", B, T, H, N, h0, h1, 1);
  const size_t NN = size_t(N) * N;
  std::vector<F> S(NN), w(N);
  for (int bi = 0; bi < B; ++bi) {
    for (int h = h0; h < h1; ++h) {
      const size_t sofs = (size_t(bi) * H + h) * NN;
      load_state(S, state_in, sofs);
      for (int t = 0; t < T; ++t) {
        const size_t o = ((size_t(bi) * T + t) * H + h) * N;
        for (int j = 0; j < N; ++j) w[j] = std::exp(lw[o + j]);
        step(N, S.data(), w.data(), k + o, v + o, a + o, b + o, r + o, y + o);
      }
      if (state_out) std::copy(S.begin(), S.end(), state_out + sofs);
    }
  }
}

template <typename F>
void wkv7_backward_naive(int B, int T, int H, int N, int h0, int h1, const F* r, const F* lw,
                         const F* k, const F* v, const F* a, const F* b, const F* dy, F* dr, F* dlw,
                         F* dk, F* dv, F* da, F* db) {
  check_heads("wkv7_backward_naive", B, T, H, N, h0, h1, 1);
  const size_t NN = size_t(N) * N;
  const int ld = H * N;
  std::vector<F> hist(size_t(T + 1) * NN), dS(NN), w(N);
  BackScratch<F> sc(N);
  for (int bi = 0; bi < B; ++bi) {
    for (int h = h0; h < h1; ++h) {
      const size_t o = (size_t(bi) * T * H + h) * N;
      std::fill(hist.begin(), hist.begin() + NN, F(0));
      states(T, N, ld, lw + o, k + o, v + o, a + o, b + o, hist.data(), w);
      std::fill(dS.begin(), dS.end(), F(0));
      backward_span(T, N, ld, r + o, lw + o, k + o, v + o, a + o, b + o, dy + o, dr + o, dlw + o,
                    dk + o, dv + o, da + o, db + o, hist.data(), dS.data(), sc);
    }
  }
}

// Chunked forward. For one head and a chunk of L tokens t = 0..L-1 (local index), with
// cum_0 = 0, cum_{t+1} = cum_t + lw_t and S_in the state before the chunk, unrolling
// the recurrence with sa_t = S_{t-1} a_t treated as a second value injected with key
// b_t gives
//   S_t = S_in diag(e^{cum_{t+1}})
//         + sum_{s<=t} (v_s k_s^T + sa_s b_s^T) diag(e^{cum_{t+1} - cum_{s+1}}).
// Every exp is of cum_x - cum_y with x >= y, a decay in (0, 1] for any lw <= 0, computed
// as a product of per-step factors (wkv_detail::chunk_decays). With
//   A~[t] = a_t e^{cum_t},  R~[t] = r_t e^{cum_{t+1}},                       [L, N]
//   K^[s] = k_s e^{cum_L - cum_{s+1}},  B^[s] = b_s e^{cum_L - cum_{s+1}},      [L, N]
//   Aak[t][s] = sum_j a_t[j] k_s[j] e^{cum_t[j] - cum_{s+1}[j]}    (s < t; Aab with b_s)
//   Ark[t][s] = sum_j r_t[j] k_s[j] e^{cum_{t+1}[j] - cum_{s+1}[j]} (s <= t; Arb with b_s)
// the values SA [L, N] (row t = sa_t) solve the unit lower-triangular system
//   (I - Aab) SA = A~ S_in^T + Aak V                    (forward substitution)
// and
//   Y     = R~ S_in^T + Ark V + Arb SA
//   S_out = S_in diag(e^{cum_L}) + V^T K^ + SA^T B^.
namespace {

// Scratch of Chunk7::run: Ek, Eb [Lmax, N], rw [N].
template <typename F>
struct PairScratch7 {
  std::vector<F> Ek, Eb, rw;
  PairScratch7(int Lmax, int N) : Ek(size_t(Lmax) * N), Eb(Ek.size()), rw(N) {}
};

// The quantities of one chunk that the backward reuses.
template <typename F>
struct Chunk7 {
  int Lmax, N;
  std::vector<F> w, Q;                // [Lmax, N]: e^{lw_t}, e^{cum_L - cum_{t+1}}
  std::vector<F> P;                   // [Lmax+1, N]: e^{cum_t}
  std::vector<F> At, Rt, Kh, Bh, SA;  // [Lmax, N]
  std::vector<F> Aak, Aab, Ark, Arb;  // [Lmax, Lmax]
  Chunk7(int lmax, int n)
      : Lmax(lmax),
        N(n),
        w(size_t(lmax) * n),
        Q(w.size()),
        P(size_t(lmax + 1) * n),
        At(w.size()),
        Rt(w.size()),
        Kh(w.size()),
        Bh(w.size()),
        SA(w.size()),
        Aak(size_t(lmax) * lmax),
        Aab(Aak.size()),
        Ark(Aak.size()),
        Arb(Aak.size()) {}

  // L tokens from the pointers (consecutive tokens ld apart); S the state before the
  // chunk, S_out [N, N] the state after it (may be S); y may be null (only the state is
  // wanted).
  RWKV_WKV_SIMD void run(int L, int ld, const F* r, const F* lw, const F* k, const F* v, const F* a,
                         const F* b, const F* S, F* S_out, F* y, PairScratch7<F>& sc) {
    F *Ek = sc.Ek.data(), *Eb = sc.Eb.data(), *rw = sc.rw.data();
    wkv_detail::chunk_decays(L, N, lw, ld, w.data(), P.data(), Q.data());
    mul_rows(L, N, a, ld, P.data(), At.data(), N);
    mul_rows(L, N, r, ld, P.data() + N, Rt.data(), N);
    mul_rows(L, N, k, ld, Q.data(), Kh.data(), N);
    mul_rows(L, N, b, ld, Q.data(), Bh.data(), N);
    for (int t = 0; t < L; ++t) {
      const F *at = a + size_t(t) * ld, *rt = r + size_t(t) * ld;
      const F* wt = w.data() + size_t(t) * N;
      const size_t row = size_t(t) * Lmax;
      // Ek[s][j] = k_s[j] e^{cum_t[j] - cum_{s+1}[j]} (Eb with b_s), s < t: the rows of
      // the previous token times w_{t-1}, and row t-1 = k_{t-1}. Then the rows t of
      // Aak, Aab are Ek a_t, Eb a_t and of Ark, Arb Ek (w_t r_t), Eb (w_t r_t).
      if (t > 0) {
        const F* wp = w.data() + size_t(t - 1) * N;
        for (int s = 0; s + 1 < t; ++s) {
          F* Eks = Ek + size_t(s) * N;
          F* Ebs = Eb + size_t(s) * N;
          for (int j = 0; j < N; ++j) {
            Eks[j] *= wp[j];
            Ebs[j] *= wp[j];
          }
        }
        std::copy(k + size_t(t - 1) * ld, k + size_t(t - 1) * ld + N, Ek + size_t(t - 1) * N);
        std::copy(b + size_t(t - 1) * ld, b + size_t(t - 1) * ld + N, Eb + size_t(t - 1) * N);
      }
      for (int j = 0; j < N; ++j) rw[j] = rt[j] * wt[j];
      for (int s = 0; s < t; ++s) {
        const F* Eks = Ek + size_t(s) * N;
        const F* Ebs = Eb + size_t(s) * N;
        Aak[row + s] = dot(Eks, at, N);
        Aab[row + s] = dot(Ebs, at, N);
        Ark[row + s] = dot(Eks, rw, N);
        Arb[row + s] = dot(Ebs, rw, N);
      }
      Ark[row + t] = dot(rt, k + size_t(t) * ld, N);
      Arb[row + t] = dot(rt, b + size_t(t) * ld, N);
      std::fill(Aak.begin() + row + t, Aak.begin() + row + Lmax, F(0));
      std::fill(Aab.begin() + row + t, Aab.begin() + row + Lmax, F(0));
      std::fill(Ark.begin() + row + t + 1, Ark.begin() + row + Lmax, F(0));
      std::fill(Arb.begin() + row + t + 1, Arb.begin() + row + Lmax, F(0));
    }
    gemm(false, true, L, N, N, F(1), At.data(), N, S, N, F(0), SA.data(), N);
    gemm(false, false, L, N, L, F(1), Aak.data(), Lmax, v, ld, F(1), SA.data(), N);
    for (int t = 1; t < L; ++t) {
      F* SAt = SA.data() + size_t(t) * N;
      for (int s = 0; s < t; ++s) {
        const F c = Aab[size_t(t) * Lmax + s];
        const F* SAs = SA.data() + size_t(s) * N;
        for (int i = 0; i < N; ++i) SAt[i] += c * SAs[i];
      }
    }
    if (y) {
      gemm(false, true, L, N, N, F(1), Rt.data(), N, S, N, F(0), y, ld);
      gemm(false, false, L, N, L, F(1), Ark.data(), Lmax, v, ld, F(1), y, ld);
      gemm(false, false, L, N, L, F(1), Arb.data(), Lmax, SA.data(), N, F(1), y, ld);
    }
    const F* PL = P.data() + size_t(L) * N;
    for (int i = 0; i < N; ++i)
      for (int j = 0; j < N; ++j) S_out[size_t(i) * N + j] = S[size_t(i) * N + j] * PL[j];
    gemm(true, false, N, N, L, F(1), v, ld, Kh.data(), N, F(1), S_out, N);
    gemm(true, false, N, N, L, F(1), SA.data(), N, Bh.data(), N, F(1), S_out, N);
  }
};

}  // namespace

template <typename F>
void wkv7_forward_chunked(int B, int T, int H, int N, int h0, int h1, const F* r, const F* lw,
                          const F* k, const F* v, const F* a, const F* b, F* y,
                          const std::type_identity_t<F>* state_in,
                          std::type_identity_t<F>* state_out, int chunk) {
  check_heads("wkv7_forward_chunked", B, T, H, N, h0, h1, chunk);
  const size_t NN = size_t(N) * N;
  const int ld = H * N;
  const int Lmax = std::min(chunk, std::max(T, 1));
  Chunk7<F> ch(Lmax, N);
  PairScratch7<F> sc(Lmax, N);
  // Chunks outermost, heads inside: a chunk of all heads is L contiguous token rows, read
  // in order (head by head, the rows of one head are N-float pieces H N floats apart).
  std::vector<F> S(size_t(h1 - h0) * NN);  // [h1-h0, N, N]
  for (int bi = 0; bi < B; ++bi) {
    const size_t sofs = (size_t(bi) * H + h0) * NN;
    load_state(S, state_in, sofs);
    for (int t0 = 0; t0 < T; t0 += Lmax) {
      for (int h = h0; h < h1; ++h) {
        const size_t o = ((size_t(bi) * T + t0) * H + h) * N;
        F* Sh = S.data() + size_t(h - h0) * NN;
        ch.run(std::min(Lmax, T - t0), ld, r + o, lw + o, k + o, v + o, a + o, b + o, Sh, Sh, y + o,
               sc);
      }
    }
    if (state_out) std::copy(S.begin(), S.end(), state_out + sofs);
  }
}

// Chunked backward: reverse-mode of the chunk equations above. Given dY and dS_out
// (the gradient of the state after the chunk):
//   dSA   = Arb^T dY + B^ dS_out^T
//   dX    = (I - Aab)^{-T} dSA                         (back substitution)
//   dAab  = dX SA^T, dAak = dX V^T  (s < t);   dArk = dY V^T, dArb = dY SA^T  (s <= t)
//   dV    = Aak^T dX + Ark^T dY + K^ dS_out^T
//   dA~   = dX S_in, dR~ = dY S_in, dK^ = V dS_out, dB^ = SA dS_out
//   dS_in = dS_out diag(e^{cum_L}) + dX^T A~ + dY^T R~
// then da, dr, dk, db from these and the entries of the four L x L matrices. dlw_m is
// the sum of the terms whose decay exponent contains lw_m: e^{cum_L} (all m), A~[t]
// (m < t), R~[t] (m <= t), K^[s] and B^[s] (m > s), the a-pairs (t, s) (s < m < t) and
// the r-pairs (s < m <= t). Each is a sum of terms that carry the decay of step m, so
// no cancellation (see wkv6.cpp).
namespace {

// The pair (t, s), s < t, of the chunked backward over the channels j, with
// ea = e^{cum_t - cum_{s+1}} (a-pairs) and ea w_t (r-pairs); ga, gb, hr, hb the entries
// (t, s) of dAak, dAab, dArk, dArb. Adds to da_t, dr_t, dk_s, db_s; D_s gets the a-pair
// prefix acc (pairs s' < s of row t), D_{s+1} the r-pair prefix run (s' <= s). The
// pointers never overlap (__restrict: otherwise GCC does not vectorise the loop).
template <typename F>
inline void pair_grads(int N, F ga, F gb, F hr, F hb, const F* __restrict ea,
                       const F* __restrict wt, const F* __restrict at, const F* __restrict rt,
                       const F* __restrict ks, const F* __restrict bs, F* __restrict dat,
                       F* __restrict drt, F* __restrict dks, F* __restrict dbs, F* __restrict Ds,
                       F* __restrict Ds1, F* __restrict acc, F* __restrict run) {
  for (int j = 0; j < N; ++j) {
    const F e = ea[j], er = e * wt[j];
    const F pa = (ga * ks[j] + gb * bs[j]) * e;
    const F pr = (hr * ks[j] + hb * bs[j]) * er;
    dat[j] += pa;
    drt[j] += pr;
    dks[j] += (ga * e) * at[j] + (hr * er) * rt[j];
    dbs[j] += (gb * e) * at[j] + (hb * er) * rt[j];
    Ds[j] += acc[j];
    acc[j] += pa * at[j];
    run[j] += pr * rt[j];
    Ds1[j] += run[j];
  }
}

template <typename F>
struct Back7 {
  std::vector<F> dX, dAt, dRt, dKh, dBh, D;  // [Lmax, N]
  std::vector<F> E;                          // [Lmax, N]
  std::vector<F> Xs, acc, run;               // [N]
  std::vector<F> dAak, dAab, dArk, dArb;     // [Lmax, Lmax]
  Back7(int Lmax, int N)
      : dX(size_t(Lmax) * N),
        dAt(dX.size()),
        dRt(dX.size()),
        dKh(dX.size()),
        dBh(dX.size()),
        D(dX.size()),
        E(dX.size()),
        Xs(N),
        acc(N),
        run(N),
        dAak(size_t(Lmax) * Lmax),
        dAab(dAak.size()),
        dArk(dAak.size()),
        dArb(dAak.size()) {}

  // One chunk of L tokens; ch holds the forward quantities of this chunk (run() from
  // S_in). Pointers at the chunk's first token, tokens ld apart. dS: dS_out on entry,
  // dS_in on exit.
  RWKV_WKV_SIMD void chunk(const Chunk7<F>& ch, int L, int ld, const F* r, const F* k, const F* v,
                           const F* a, const F* b, const F* dy, const F* S_in, F* dS, F* dr, F* dlw,
                           F* dk, F* dv, F* da, F* db) {
    const int N = ch.N, Lm = ch.Lmax;
    const F* PL = ch.P.data() + size_t(L) * N;  // e^{cum_L}
    // dX: dSA, then the back substitution dX[s] += sum_{t>s} Aab[t][s] dX[t].
    gemm(true, false, L, N, L, F(1), ch.Arb.data(), Lm, dy, ld, F(0), dX.data(), N);
    gemm(false, true, L, N, N, F(1), ch.Bh.data(), N, dS, N, F(1), dX.data(), N);
    for (int s = L - 2; s >= 0; --s) {
      F* dXs = dX.data() + size_t(s) * N;
      for (int t = s + 1; t < L; ++t) {
        const F c = ch.Aab[size_t(t) * Lm + s];
        const F* dXt = dX.data() + size_t(t) * N;
        for (int i = 0; i < N; ++i) dXs[i] += c * dXt[i];
      }
    }
    gemm(false, true, L, L, N, F(1), dX.data(), N, ch.SA.data(), N, F(0), dAab.data(), Lm);
    gemm(false, true, L, L, N, F(1), dX.data(), N, v, ld, F(0), dAak.data(), Lm);
    gemm(false, true, L, L, N, F(1), dy, ld, v, ld, F(0), dArk.data(), Lm);
    gemm(false, true, L, L, N, F(1), dy, ld, ch.SA.data(), N, F(0), dArb.data(), Lm);
    gemm(true, false, L, N, L, F(1), ch.Aak.data(), Lm, dX.data(), N, F(0), dv, ld);
    gemm(true, false, L, N, L, F(1), ch.Ark.data(), Lm, dy, ld, F(1), dv, ld);
    gemm(false, true, L, N, N, F(1), ch.Kh.data(), N, dS, N, F(1), dv, ld);
    gemm(false, false, L, N, N, F(1), dX.data(), N, S_in, N, F(0), dAt.data(), N);
    gemm(false, false, L, N, N, F(1), dy, ld, S_in, N, F(0), dRt.data(), N);
    gemm(false, false, L, N, N, F(1), v, ld, dS, N, F(0), dKh.data(), N);
    gemm(false, false, L, N, N, F(1), ch.SA.data(), N, dS, N, F(0), dBh.data(), N);
    // The state-in/state-out term of dlw, before dS becomes dS_in.
    for (int j = 0; j < N; ++j) Xs[j] = 0;
    for (int i = 0; i < N; ++i)
      for (int j = 0; j < N; ++j) Xs[j] += dS[size_t(i) * N + j] * S_in[size_t(i) * N + j];
    for (int j = 0; j < N; ++j) Xs[j] *= PL[j];
    for (int i = 0; i < N; ++i)
      for (int j = 0; j < N; ++j) dS[size_t(i) * N + j] *= PL[j];
    gemm(true, false, N, N, L, F(1), dX.data(), N, ch.At.data(), N, F(1), dS, N);
    gemm(true, false, N, N, L, F(1), dy, ld, ch.Rt.data(), N, F(1), dS, N);

    mul_rows(L, N, dAt.data(), N, ch.P.data(), da, ld);
    mul_rows(L, N, dRt.data(), N, ch.P.data() + N, dr, ld);
    mul_rows(L, N, dKh.data(), N, ch.Q.data(), dk, ld);
    mul_rows(L, N, dBh.data(), N, ch.Q.data(), db, ld);
    // Pairs (t, s), s < t: e = e^{cum_t - cum_{s+1}} (a-pairs), e w_t (r-pairs). D[m]
    // collects both crossing sums: a-pairs over s < m < t, r-pairs over s < m <= t.
    std::fill(D.begin(), D.begin() + size_t(L) * N, F(0));
    for (int t = 0; t < L; ++t) {
      const F *at = a + size_t(t) * ld, *rt = r + size_t(t) * ld;
      const F* wt = ch.w.data() + size_t(t) * N;
      F *dat = da + size_t(t) * ld, *drt = dr + size_t(t) * ld;
      std::fill(acc.begin(), acc.end(), F(0));  // a-pair prefix over s
      std::fill(run.begin(), run.end(), F(0));  // r-pair prefix over s
      // E[s] = e^{cum_t - cum_{s+1}}, s < t: the previous token's rows times w_{t-1}.
      if (t > 0) {
        const F* wp = ch.w.data() + size_t(t - 1) * N;
        for (int s = 0; s + 1 < t; ++s)
          for (int j = 0; j < N; ++j) E[size_t(s) * N + j] *= wp[j];
        std::fill(E.begin() + size_t(t - 1) * N, E.begin() + size_t(t) * N, F(1));
      }
      for (int s = 0; s < t; ++s) {
        const size_t ts = size_t(t) * Lm + s;
        pair_grads(N, dAak[ts], dAab[ts], dArk[ts], dArb[ts], E.data() + size_t(s) * N, wt, at, rt,
                   k + size_t(s) * ld, b + size_t(s) * ld, dat, drt, dk + size_t(s) * ld,
                   db + size_t(s) * ld, D.data() + size_t(s) * N, D.data() + size_t(s + 1) * N,
                   acc.data(), run.data());
      }
      const size_t tt = size_t(t) * Lm + t;
      const F hr = dArk[tt], hb = dArb[tt];
      const F *kt = k + size_t(t) * ld, *bt = b + size_t(t) * ld;
      F *dkt = dk + size_t(t) * ld, *dbt = db + size_t(t) * ld;
      for (int j = 0; j < N; ++j) {
        drt[j] += hr * kt[j] + hb * bt[j];
        dkt[j] += hr * rt[j];
        dbt[j] += hb * rt[j];
      }
    }
    // dlw = e^{cum_L} term + D + prefix sums over s of K^ dK^ + B^ dB^ + suffix sums of
    // A~ dA~ (t > m) and R~ dR~ (t >= m).
    std::fill(run.begin(), run.end(), F(0));
    for (int t = 0; t < L; ++t) {
      const size_t tj = size_t(t) * N;
      F* dl = dlw + size_t(t) * ld;
      for (int j = 0; j < N; ++j) {
        dl[j] = Xs[j] + D[tj + j] + run[j];
        run[j] += ch.Kh[tj + j] * dKh[tj + j] + ch.Bh[tj + j] * dBh[tj + j];
      }
    }
    std::fill(run.begin(), run.end(), F(0));
    for (int t = L - 1; t >= 0; --t) {
      const size_t tj = size_t(t) * N;
      F* dl = dlw + size_t(t) * ld;
      for (int j = 0; j < N; ++j) {
        const F rr = ch.Rt[tj + j] * dRt[tj + j];
        dl[j] += run[j] + rr;
        run[j] += rr + ch.At[tj + j] * dAt[tj + j];
      }
    }
  }
};

}  // namespace

template <typename F>
void wkv7_backward_chunked(int B, int T, int H, int N, int h0, int h1, const F* r, const F* lw,
                           const F* k, const F* v, const F* a, const F* b, const F* dy, F* dr,
                           F* dlw, F* dk, F* dv, F* da, F* db, int chunk) {
  check_heads("wkv7_backward_chunked", B, T, H, N, h0, h1, chunk);
  const size_t NN = size_t(N) * N;
  const int ld = H * N;
  const int Lmax = std::min(chunk, std::max(T, 1));
  const int nchunks = (T + Lmax - 1) / Lmax;
  const int nh = h1 - h0;
  // One Chunk7 per chunk and head: the forward pass over the chunks keeps each chunk's
  // matrices and SA for the backward pass (about (8 L N + 4 L^2) values each). Chunks
  // outermost, heads inside, as in the forward.
  std::vector<Chunk7<F>> chunks(size_t(nchunks) * nh, Chunk7<F>(Lmax, N));
  PairScratch7<F> sc(Lmax, N);
  Back7<F> bk(Lmax, N);
  // ckpt[c][h] = the state entering chunk c; dS [nh, N, N].
  std::vector<F> ckpt(size_t(nchunks + 1) * nh * NN), dS(size_t(nh) * NN);
  for (int bi = 0; bi < B; ++bi) {
    std::fill(ckpt.begin(), ckpt.begin() + size_t(nh) * NN, F(0));
    for (int c = 0; c < nchunks; ++c) {
      const int t0 = c * Lmax, L = std::min(Lmax, T - t0);
      for (int h = h0; h < h1; ++h) {
        const size_t o = ((size_t(bi) * T + t0) * H + h) * N;
        const F* cur = ckpt.data() + (size_t(c) * nh + (h - h0)) * NN;
        F* next = ckpt.data() + (size_t(c + 1) * nh + (h - h0)) * NN;
        chunks[size_t(c) * nh + (h - h0)].run(L, ld, r + o, lw + o, k + o, v + o, a + o, b + o, cur,
                                              next, static_cast<F*>(nullptr), sc);
      }
    }
    std::fill(dS.begin(), dS.end(), F(0));
    for (int c = nchunks - 1; c >= 0; --c) {
      const int t0 = c * Lmax, L = std::min(Lmax, T - t0);
      for (int h = h0; h < h1; ++h) {
        const size_t o = ((size_t(bi) * T + t0) * H + h) * N;
        bk.chunk(chunks[size_t(c) * nh + (h - h0)], L, ld, r + o, k + o, v + o, a + o, b + o,
                 dy + o, ckpt.data() + (size_t(c) * nh + (h - h0)) * NN,
                 dS.data() + size_t(h - h0) * NN, dr + o, dlw + o, dk + o, dv + o, da + o, db + o);
      }
    }
  }
}

#define RWKV_WKV7_INSTANTIATE(F)                                                                   \
  template void wkv7_forward_naive<F>(int, int, int, int, int, int, const F*, const F*, const F*,  \
                                      const F*, const F*, const F*, F*, const F*, F*);             \
  template void wkv7_backward_naive<F>(int, int, int, int, int, int, const F*, const F*, const F*, \
                                       const F*, const F*, const F*, const F*, F*, F*, F*, F*, F*, \
                                       F*);                                                        \
  template void wkv7_forward_chunked<F>(int, int, int, int, int, int, const F*, const F*,          \
                                        const F*, const F*, const F*, const F*, F*, const F*, F*,  \
                                        int);                                                      \
  template void wkv7_backward_chunked<F>(int, int, int, int, int, int, const F*, const F*,         \
                                         const F*, const F*, const F*, const F*, const F*, F*, F*, \
                                         F*, F*, F*, F*, int);
RWKV_WKV7_INSTANTIATE(float)
RWKV_WKV7_INSTANTIATE(double)
#undef RWKV_WKV7_INSTANTIATE

}  // namespace rwkv::kernels
