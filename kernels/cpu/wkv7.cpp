#include "kernels/cpu/wkv7.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "kernels/cpu/wkv_common.h"

namespace rwkv::kernels {
namespace {

using wkv_detail::check_heads;
using wkv_detail::dot;
using wkv_detail::gemm;
using wkv_detail::load_state;
using wkv_detail::mul2_rows;
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
// The decays are products of per-step factors, one exp per token and channel: P_t =
// e^{cum_t} = prod_{m<t} e^{lw_m}, Q_s = e^{cum_L - cum_{s+1}} = P_L / P_{s+1}. Inside
// the chunk a decay between two tokens factors as e^{cum_t} e^{-cum_{s+1}}, which turns
// the token pairs into matrix products (the decay-scaled form of flash-linear-attention's
// chunked DPLR kernels); wkv_detail::chunk_length cuts a chunk short where e^{-cum}
// would grow past e^{30} or a step decays faster than e^{-2} (there the factored dlw
// would lose accuracy). With
//   A~[t] = a_t P_t,   R~[t] = r_t P_{t+1},                                 [L, N]
//   K~[s] = k_s / P_{s+1},  B~[s] = b_s / P_{s+1}  (s < L-1; row L-1 = 0),    [L, N]
//   K^[s] = k_s Q_s,   B^[s] = b_s Q_s,                                     [L, N]
//   Aak = A~ K~^T, Aab = A~ B~^T        (strictly lower: s < t)             [L, L]
//   Ark = R~ K~^T, Arb = R~ B~^T        (s < t), diagonals r_t.k_t, r_t.b_t  [L, L]
// (entry (t, s) of Aak is sum_j a_t[j] k_s[j] e^{cum_t[j] - cum_{s+1}[j]}), the values
// SA [L, N] (row t = sa_t) solve the unit lower-triangular system
//   (I - Aab) SA = A~ S_in^T + Aak V                    (forward substitution)
// and
//   Y     = R~ S_in^T + Ark V + Arb SA
//   S_out = S_in diag(P_L) + V^T K^ + SA^T B^.
// Row blocks are stacked so that each pair of products is one GEMM: AR = [A~; R~],
// KB = [K~; B~], KBh = [K^; B^], VS = [V; SA] ([2L, N] each) and M = AR KB^T =
// [Aak Aab; Ark Arb] [2L, 2L].
namespace {

// Token t of Chunk7::prepare over the channels j: P_{t+1} = P_t e^{lw_t},
// Pinv = 1 / P_{t+1}, A~ = a P_t, K~ = k Pinv, B~ = b Pinv, in one loop.
template <typename F>
[[gnu::always_inline]] inline void scale_token(int N, const F* __restrict lw, const F* __restrict a,
                                               const F* __restrict k, const F* __restrict b,
                                               const F* __restrict Pt, F* __restrict Pt1,
                                               F* __restrict Pinv, F* __restrict At,
                                               F* __restrict Kt, F* __restrict Bt) {
  for (int j = 0; j < N; ++j) {
    const F p1 = Pt[j] * fast::exp(lw[j]), inv = F(1) / p1;
    Pt1[j] = p1;
    Pinv[j] = inv;
    At[j] = a[j] * Pt[j];
    Kt[j] = k[j] * inv;
    Bt[j] = b[j] * inv;
  }
}

// Q_t = P_L / P_{t+1} (1 for the last token), K^ = k Q_t, B^ = b Q_t.
template <typename F>
[[gnu::always_inline]] inline void scale_token_end(int N, bool last, const F* __restrict k,
                                                   const F* __restrict b, const F* __restrict PL,
                                                   const F* __restrict Pinv, F* __restrict Qt,
                                                   F* __restrict Kh, F* __restrict Bh) {
  if (last) {
    for (int j = 0; j < N; ++j) {
      Qt[j] = F(1);
      Kh[j] = k[j];
      Bh[j] = b[j];
    }
    return;
  }
  for (int j = 0; j < N; ++j) {
    const F q = PL[j] * Pinv[j];
    Qt[j] = q;
    Kh[j] = k[j] * q;
    Bh[j] = b[j] * q;
  }
}

// The quantities of one chunk of one head; buffers for up to Lmax tokens, a chunk of L
// tokens packs its 2L-row blocks at the front (row L starts the second block). VS points
// at own_VS unless the caller points it elsewhere (the backward's buffer of [V; SA] for
// every chunk, so SA is never copied out and back).
template <typename F, int NC>
struct Chunk7 {
  int Lmax, n_rt, L = 0;
  std::vector<F> Q, Pinv;              // [Lmax, N]: Q_t, 1/P_{t+1} (row L-1: 0)
  std::vector<F> P;                    // [Lmax+1, N]: P_t
  std::vector<F> AR, KB, KBh, own_VS;  // [2 Lmax, N]
  std::vector<F> KBt;                  // [N, 2 Lmax]: KB^T, row stride 2L
  std::vector<F> St;                   // [N, N]: S_in^T
  std::vector<F> M;                    // [2 Lmax, 2 Lmax], row stride 2L
  F* VS;                               // [2L, N]: [V; SA]
  Chunk7(int lmax, int n)
      : Lmax(lmax),
        n_rt(n),
        Q(size_t(lmax) * n),
        Pinv(Q.size()),
        P(size_t(lmax + 1) * n),
        AR(2 * Q.size()),
        KB(AR.size()),
        KBh(AR.size()),
        own_VS(AR.size()),
        KBt(AR.size()),
        St(size_t(n) * n),
        M(size_t(4) * lmax * lmax),
        VS(own_VS.data()) {}
  Chunk7(const Chunk7&) = delete;  // VS may point into itself
  Chunk7& operator=(const Chunk7&) = delete;

  // The head size: NC where the caller instantiated for it (the loops over the channels
  // then have a constant trip count: the models' 64), else the one given at run time.
  [[gnu::always_inline]] int width() const { return NC > 0 ? NC : n_rt; }

  // Decays, AR, KB, KBh and M of L tokens from the pointers (consecutive tokens ld
  // apart), and V into VS when copy_v (the backward's second pass finds it there).
  // with_r false: only what the state needs (no R~, no Ark, Arb; r is not read).
  RWKV_CPU_SIMD void prepare(int l, int ld, const F* r, const F* lw, const F* k, const F* v,
                             const F* a, const F* b, bool with_r, bool copy_v) {
    const int N = width();
    L = l;
    const int L2 = 2 * L;
    const size_t LN = size_t(L) * N;
    std::fill(P.begin(), P.begin() + N, F(1));
    for (int t = 0; t < L; ++t) {
      const size_t o = size_t(t) * ld, tj = size_t(t) * N;
      scale_token(N, lw + o, a + o, k + o, b + o, P.data() + tj, P.data() + tj + N,
                  Pinv.data() + tj, AR.data() + tj, KB.data() + tj, KB.data() + LN + tj);
    }
    if (copy_v)
      for (int t = 0; t < L; ++t)
        std::copy(v + size_t(t) * ld, v + size_t(t) * ld + N, VS + size_t(t) * N);
    // Pinv of the last token (1 / P_L) is never used and may not be finite; K~, B~ there 0.
    std::fill(Pinv.begin() + (LN - N), Pinv.begin() + LN, F(0));
    std::fill(KB.begin() + (LN - N), KB.begin() + LN, F(0));
    std::fill(KB.begin() + (2 * LN - N), KB.begin() + 2 * LN, F(0));
    for (int t = 0; t < L; ++t) {
      const size_t o = size_t(t) * ld, tj = size_t(t) * N;
      scale_token_end(N, t == L - 1, k + o, b + o, P.data() + LN, Pinv.data() + tj, Q.data() + tj,
                      KBh.data() + tj, KBh.data() + LN + tj);
    }
    if (with_r) mul_rows(L, N, r, ld, P.data() + N, AR.data() + LN, N);
    const int rows = with_r ? L2 : L;
    wkv_detail::transpose(L2, N, KB.data(), N, KBt.data(), L2);
    gemm(false, false, rows, L2, N, F(1), AR.data(), N, KBt.data(), L2, F(0), M.data(), L2);
    // Keep the strictly lower triangle of each L x L block (the pairs s < t).
    for (int t = 0; t < rows; ++t) {
      F* row = M.data() + size_t(t) * L2;
      const int tt = t % L;
      std::fill(row + tt, row + L, F(0));
      std::fill(row + L + tt, row + L2, F(0));
    }
    if (!with_r) return;
    for (int t = 0; t < L; ++t) {
      const F* rt = r + size_t(t) * ld;
      F* row = M.data() + size_t(L + t) * L2;
      row[t] = dot(rt, k + size_t(t) * ld, N);
      row[L + t] = dot(rt, b + size_t(t) * ld, N);
    }
  }

  // After prepare: SA into VS rows L.., y = Y (rows ld apart) unless y is null (then
  // prepare may have skipped R~), S_out = the state after the chunk (may be S). S and
  // S_out are [N, N], S[i][j] (value i, key j).
  RWKV_CPU_SIMD void forward(int ld, const F* S, F* S_out, F* y) {
    const int N = width();
    const int L2 = 2 * L;
    const size_t LN = size_t(L) * N;
    F* SA = VS + LN;
    wkv_detail::transpose(N, N, S, N, St.data(), N);
    gemm(false, false, L, N, N, F(1), AR.data(), N, St.data(), N, F(0), SA, N);
    gemm(false, false, L, N, L, F(1), M.data(), L2, VS, N, F(1), SA, N);
    substitute_forward(SA);
    if (y) {
      gemm(false, false, L, N, N, F(1), AR.data() + LN, N, St.data(), N, F(0), y, ld);
      gemm(false, false, L, N, L2, F(1), M.data() + size_t(L) * L2, L2, VS, N, F(1), y, ld);
    }
    const F* PL = P.data() + LN;
    for (int i = 0; i < N; ++i)
      for (int j = 0; j < N; ++j) S_out[size_t(i) * N + j] = S[size_t(i) * N + j] * PL[j];
    gemm(true, false, N, N, L2, F(1), VS, N, KBh.data(), N, F(1), S_out, N);
  }

  // X <- (I - Aab)^{-1} X, X [L, N]: X[t] += sum_{s<t} Aab[t][s] X[s], t ascending.
  RWKV_CPU_SIMD void substitute_forward(F* X) const {
    const int N = width();
    for (int t = 1; t < L; ++t) {
      F* Xt = X + size_t(t) * N;
      const F* Mt = M.data() + size_t(t) * 2 * L + L;
      for (int s = 0; s < t; ++s) {
        const F c = Mt[s];
        const F* Xs = X + size_t(s) * N;
        for (int i = 0; i < N; ++i) Xt[i] += c * Xs[i];
      }
    }
  }

  // X <- (I - Aab)^{-T} X: X[s] += sum_{t>s} Aab[t][s] X[t], s descending.
  RWKV_CPU_SIMD void substitute_backward(F* X) const {
    const int N = width();
    for (int s = L - 2; s >= 0; --s) {
      F* Xs = X + size_t(s) * N;
      for (int t = s + 1; t < L; ++t) {
        const F c = M[size_t(t) * 2 * L + L + s];
        const F* Xt = X + size_t(t) * N;
        for (int i = 0; i < N; ++i) Xs[i] += c * Xt[i];
      }
    }
  }
};

// Asks for rows [0, L) of n values, ld apart, to be brought into the L2 cache for
// writing (wkv_detail::prefetch_rows for the outputs).
template <typename F>
inline void prefetch_rows_for_write(F* p, int L, int ld, int n) {
  for (int t = 0; t < L; ++t)
    for (int j = 0; j < n; j += 64 / int(sizeof(F)))
      __builtin_prefetch(p + size_t(t) * ld + j, 1, 2);
}

// Where wkv7_forward_chunked keeps, for the backward, the state entering chunk c of head
// h of batch row bi ([B, H, cmax, N, N], S[i][j]) and [V; SA] of the chunk starting at
// token t0 ([B, H, 2T, N]: the chunk's L rows of V, then its L rows of SA). Laid out by
// head, so the threads that split the heads write disjoint parts. The backward keeps
// what it recomputes in the same layout (one batch row, its heads, its chunk count).
// G is F or const F.
template <typename G>
struct Checkpoints7 {
  G* p;
  int B, T, H, N;
  size_t cmax;
  size_t floats() const { return size_t(B) * H * (cmax * N * N + size_t(2) * T * N); }
  G* state(int bi, int h, size_t c) const { return p + ((size_t(bi) * H + h) * cmax + c) * N * N; }
  G* vs(int bi, int h, int t0) const {
    return p + size_t(B) * H * cmax * N * N + ((size_t(bi) * H + h) * 2 * T + 2 * size_t(t0)) * N;
  }
};

// The number of chunks of T tokens uncut: the state slots of the checkpoints.
inline size_t max_chunks(int T, int Lmax) { return size_t(T + Lmax - 1) / Lmax; }

}  // namespace

size_t wkv7_checkpoint_floats(int B, int T, int H, int N, int chunk) {
  const int Lmax = std::min(std::max(chunk, 1), std::max(T, 1));
  return Checkpoints7<float>{nullptr, B, T, H, N, max_chunks(T, Lmax)}.floats();
}

namespace {

template <typename F, int NC>
void forward_chunked(int B, int T, int H, int N, int h0, int h1, const F* r, const F* lw,
                     const F* k, const F* v, const F* a, const F* b, F* y, const F* state_in,
                     F* state_out, int chunk, F* ckpt) {
  const size_t NN = size_t(N) * N;
  const int ld = H * N;
  const int Lmax = std::min(chunk, std::max(T, 1));
  const Checkpoints7<F> cp{ckpt, B, T, H, N, max_chunks(T, Lmax)};
  Chunk7<F, NC> ch(Lmax, N);
  std::vector<F> cum(size_t(h1 - h0) * N);
  // Chunks outermost, heads inside: a chunk of all heads is L contiguous token rows, read
  // in order (head by head, the rows of one head are N-float pieces H N floats apart).
  // Checkpoints go out with stores that bypass the cache (wkv_detail::stream_copy): the
  // backward reads them long after.
  std::vector<F> S(size_t(h1 - h0) * NN);  // [h1-h0, N, N]
  for (int bi = 0; bi < B; ++bi) {
    const size_t sofs = (size_t(bi) * H + h0) * NN;
    load_state(S, state_in, sofs);
    size_t c = 0;
    for (int t0 = 0, L = 0; t0 < T; t0 += L, ++c) {
      const size_t row = (size_t(bi) * T + t0) * H;
      L = wkv_detail::chunk_length(T, t0, Lmax, (h1 - h0) * N, lw + (row + h0) * N, ld, cum.data());
      const int Ln = std::min(Lmax, T - t0 - L);
      for (int h = h0; h < h1; ++h) {
        const size_t o = (row + h) * N;
        // Prefetch the rows of the next head of this chunk, or of the next chunk's first
        // head after the last (at most Ln rows).
        const bool last = h + 1 == h1;
        const size_t on = last ? (row + size_t(L) * H + h0) * N : o + N;
        const int Lnx = last ? Ln : L;
        for (const F* x : {r, lw, k, v, a, b}) wkv_detail::prefetch_rows(x + on, Lnx, ld, N);
        prefetch_rows_for_write(y + on, Lnx, ld, N);
        F* Sh = S.data() + size_t(h - h0) * NN;
        // Chunks cut short by strong decays can outnumber the slots; the backward then
        // recomputes the states (it finds the same chunks).
        if (ckpt && c < cp.cmax) wkv_detail::stream_copy(Sh, NN, cp.state(bi, h, c));
        ch.prepare(L, ld, r + o, lw + o, k + o, v + o, a + o, b + o, true, true);
        ch.forward(ld, Sh, Sh, y + o);
        if (ckpt) wkv_detail::stream_copy(ch.VS, 2 * size_t(L) * N, cp.vs(bi, h, t0));
      }
    }
    if (state_out) std::copy(S.begin(), S.end(), state_out + sofs);
  }
  wkv_detail::stream_fence();
}

}  // namespace

template <typename F>
void wkv7_forward_chunked(int B, int T, int H, int N, int h0, int h1, const F* r, const F* lw,
                          const F* k, const F* v, const F* a, const F* b, F* y,
                          const std::type_identity_t<F>* state_in,
                          std::type_identity_t<F>* state_out, int chunk,
                          std::type_identity_t<F>* ckpt) {
  check_heads("wkv7_forward_chunked", B, T, H, N, h0, h1, chunk);
  // The models' head size gets its own instance, with constant trip counts in every
  // loop over the channels (measured, one thread, data in cache: forward 10% and
  // backward 6% faster per chunk than the instance for any N).
  if (N == 64) {
    forward_chunked<F, 64>(B, T, H, N, h0, h1, r, lw, k, v, a, b, y, state_in, state_out, chunk,
                           ckpt);
  } else {
    forward_chunked<F, 0>(B, T, H, N, h0, h1, r, lw, k, v, a, b, y, state_in, state_out, chunk,
                          ckpt);
  }
}

// Chunked backward: reverse-mode of the chunk equations above. Given dY and dS_out
// (the gradient of the state after the chunk), with DY = [dX; dY] [2L, N]:
//   [dV^; dSA^] = KBh dS_out^T                         (the S_out terms of dV, dSA)
//   dSA   = dSA^ + Arb^T dY
//   dX    = (I - Aab)^{-T} dSA                         (back substitution)
//   dM    = DY VS^T = [dAak dAab; dArk dArb], kept where M is a product (s < t); the
//           diagonals of dArk, dArb give r.k, r.b terms
//   dV    = dV^ + [Aak; Ark]^T DY
//   dAR   = DY S_in + dM KB,   dKB = dM^T AR,   dKBh = VS dS_out
//   dS_in = dS_out diag(P_L) + DY^T AR
// then da = dA~ P_t, dr = dR~ P_{t+1}, dk = dK^ Q + dK~ / P_{s+1} (db alike) plus the
// diagonal terms. dlw_m sums x dx (d/dcum of x e^{cum}) over the factors whose exponent
// holds lw_m: A~[t] (m < t), R~[t] (m <= t), K~[s] and B~[s] with a minus (m <= s),
// K^[s] and B^[s] (m > s), P_L (all m).
namespace {

// The loops of Back7::chunk over the channels of one token, with __restrict pointers
// (the rows of several [B, T, C] tensors: without it GCC does not vectorise them).

// X[j] = P_L[j] sum_i dS[i][j] S[i][j] (X zero on entry), then dS <- dS diag(P_L).
template <typename F>
[[gnu::always_inline]] inline void state_decay_grad(int N, const F* __restrict PL,
                                                    const F* __restrict S, F* __restrict dS,
                                                    F* __restrict X) {
  for (int i = 0; i < N; ++i)
    for (int j = 0; j < N; ++j) {
      const size_t ij = size_t(i) * N + j;
      X[j] += dS[ij] * S[ij];
      dS[ij] *= PL[j];
    }
  for (int j = 0; j < N; ++j) X[j] *= PL[j];
}

// out += p x.
template <typename F>
[[gnu::always_inline]] inline void axpy(int N, F p, const F* __restrict x, F* __restrict out) {
  for (int j = 0; j < N; ++j) out[j] += p * x[j];
}

// dl = Xs + run, then run += x1 dx1 + x2 dx2.
template <typename F>
[[gnu::always_inline]] inline void dlw_prefix(int N, const F* __restrict x1,
                                              const F* __restrict dx1, const F* __restrict x2,
                                              const F* __restrict dx2, const F* __restrict Xs,
                                              F* __restrict run, F* __restrict dl) {
  for (int j = 0; j < N; ++j) {
    dl[j] = Xs[j] + run[j];
    run[j] += x1[j] * dx1[j] + x2[j] * dx2[j];
  }
}

// run += R~ dR~ - K~ dK~ - B~ dB~, dl += run, then run += A~ dA~.
template <typename F>
[[gnu::always_inline]] inline void dlw_suffix(int N, const F* __restrict at,
                                              const F* __restrict dat, const F* __restrict rt,
                                              const F* __restrict drt, const F* __restrict kt,
                                              const F* __restrict dkt, const F* __restrict bt,
                                              const F* __restrict dbt, F* __restrict run,
                                              F* __restrict dl) {
  for (int j = 0; j < N; ++j) {
    run[j] += rt[j] * drt[j] - kt[j] * dkt[j] - bt[j] * dbt[j];
    dl[j] += run[j];
    run[j] += at[j] * dat[j];
  }
}

template <typename F, int NC>
struct Back7 {
  std::vector<F> DY, dAR, dKB, dKBh;  // [2 Lmax, N]
  std::vector<F> VSt;                 // [N, 2 Lmax]: VS^T, row stride 2L
  std::vector<F> dSt;                 // [N, N]: dS_out^T
  std::vector<F> dM;                  // [2 Lmax, 2 Lmax], row stride 2L
  std::vector<F> gk, gb;              // [Lmax]: diagonals of dArk, dArb
  std::vector<F> Xs, run;             // [N]
  Back7(int Lmax, int N)
      : DY(size_t(2) * Lmax * N),
        dAR(DY.size()),
        dKB(DY.size()),
        dKBh(DY.size()),
        VSt(DY.size()),
        dSt(size_t(N) * N),
        dM(size_t(4) * Lmax * Lmax),
        gk(Lmax),
        gb(Lmax),
        Xs(N),
        run(N) {}

  // One chunk; ch is prepared (with_r) for it, VS [2L, N] = [V; SA] of the chunk.
  // Pointers at the chunk's first token, tokens ld apart. dS: dS_out on entry, dS_in on
  // exit.
  RWKV_CPU_SIMD void chunk(const Chunk7<F, NC>& ch, const F* VS, int ld, const F* r, const F* k,
                           const F* b, const F* dy, const F* S_in, F* dS, F* dr, F* dlw, F* dk,
                           F* dv, F* da, F* db) {
    const int N = ch.width(), L = ch.L, L2 = 2 * L;
    const size_t LN = size_t(L) * N;
    const F* M = ch.M.data();
    F* dX = DY.data();
    for (int t = 0; t < L; ++t)
      std::copy(dy + size_t(t) * ld, dy + size_t(t) * ld + N, DY.data() + LN + size_t(t) * N);
    // KBh dS_out^T as two products of L rows, straight into dv and dX.
    wkv_detail::transpose(N, N, dS, N, dSt.data(), N);
    gemm(false, false, L, N, N, F(1), ch.KBh.data(), N, dSt.data(), N, F(0), dv, ld);
    gemm(false, false, L, N, N, F(1), ch.KBh.data() + LN, N, dSt.data(), N, F(0), dX, N);
    gemm(true, false, L, N, L, F(1), M + size_t(L) * L2 + L, L2, DY.data() + LN, N, F(1), dX, N);
    ch.substitute_backward(dX);
    wkv_detail::transpose(L2, N, VS, N, VSt.data(), L2);
    gemm(false, false, L2, L2, N, F(1), DY.data(), N, VSt.data(), L2, F(0), dM.data(), L2);
    for (int t = 0; t < L2; ++t) {
      F* row = dM.data() + size_t(t) * L2;
      const int tt = t % L;
      if (t >= L) {
        gk[tt] = row[tt];
        gb[tt] = row[L + tt];
      }
      std::fill(row + tt, row + L, F(0));
      std::fill(row + L + tt, row + L2, F(0));
    }
    gemm(true, false, L, N, L2, F(1), M, L2, DY.data(), N, F(1), dv, ld);
    gemm(false, false, L2, N, N, F(1), DY.data(), N, S_in, N, F(0), dAR.data(), N);
    gemm(false, false, L2, N, L2, F(1), dM.data(), L2, ch.KB.data(), N, F(1), dAR.data(), N);
    gemm(true, false, L2, N, L2, F(1), dM.data(), L2, ch.AR.data(), N, F(0), dKB.data(), N);
    gemm(false, false, L2, N, N, F(1), VS, N, dS, N, F(0), dKBh.data(), N);
    // The P_L term of dlw, before dS becomes dS_in.
    const F* PL = ch.P.data() + LN;
    std::fill(Xs.begin(), Xs.end(), F(0));
    state_decay_grad(N, PL, S_in, dS, Xs.data());
    gemm(true, false, N, N, L2, F(1), DY.data(), N, ch.AR.data(), N, F(1), dS, N);

    const F *P = ch.P.data(), *Q = ch.Q.data(), *Pinv = ch.Pinv.data();
    mul_rows(L, N, dAR.data(), N, P, da, ld);
    mul_rows(L, N, dAR.data() + LN, N, P + N, dr, ld);
    mul2_rows(L, N, dKBh.data(), dKB.data(), Q, Pinv, dk, ld);
    mul2_rows(L, N, dKBh.data() + LN, dKB.data() + LN, Q, Pinv, db, ld);
    for (int t = 0; t < L; ++t) {
      const size_t o = size_t(t) * ld;
      axpy(N, gk[t], k + o, dr + o);
      axpy(N, gb[t], b + o, dr + o);
      axpy(N, gk[t], r + o, dk + o);
      axpy(N, gb[t], r + o, db + o);
    }
    // dlw: prefix sums of K^ dK^ + B^ dB^ (s < m), then suffix sums of R~ dR~ - K~ dK~ -
    // B~ dB~ (t >= m) and A~ dA~ (t > m).
    const F *AR = ch.AR.data(), *KB = ch.KB.data(), *KBh = ch.KBh.data();
    std::fill(run.begin(), run.end(), F(0));
    for (int t = 0; t < L; ++t) {
      const size_t tj = size_t(t) * N;
      dlw_prefix(N, KBh + tj, dKBh.data() + tj, KBh + LN + tj, dKBh.data() + LN + tj, Xs.data(),
                 run.data(), dlw + size_t(t) * ld);
    }
    std::fill(run.begin(), run.end(), F(0));
    for (int t = L - 1; t >= 0; --t) {
      const size_t tj = size_t(t) * N;
      dlw_suffix(N, AR + tj, dAR.data() + tj, AR + LN + tj, dAR.data() + LN + tj, KB + tj,
                 dKB.data() + tj, KB + LN + tj, dKB.data() + LN + tj, run.data(),
                 dlw + size_t(t) * ld);
    }
  }
};

template <typename F, int NC>
void backward_chunked(int B, int T, int H, int N, int h0, int h1, const F* r, const F* lw,
                      const F* k, const F* v, const F* a, const F* b, const F* dy, F* dr, F* dlw,
                      F* dk, F* dv, F* da, F* db, int chunk, const F* ckpt) {
  const size_t NN = size_t(N) * N;
  const int ld = H * N;
  const int Lmax = std::min(chunk, std::max(T, 1));
  const int nh = h1 - h0;
  const Checkpoints7<const F> saved{ckpt, B, T, H, N, max_chunks(T, Lmax)};
  Chunk7<F, NC> ch(Lmax, N);
  Back7<F, NC> bk(Lmax, N);
  std::vector<int> starts;  // first token of each chunk, then T
  std::vector<F> cum(size_t(nh) * N), dS(size_t(nh) * NN);
  // Without the forward's checkpoints (or where strong decays cut more chunks than they
  // have slots), a forward pass over the chunks keeps, per chunk and head, the state
  // entering it and [V; SA] in `own` (one buffer, not zeroed: every value is written
  // before it is read); the backward pass recomputes the rest of the chunk (prepare:
  // O(L N (N + L)) next to the chunk's O(L N^2) products).
  std::unique_ptr<F[]> buf;
  size_t buf_size = 0;
  for (int bi = 0; bi < B; ++bi) {
    starts.clear();
    for (int t0 = 0, L = 0; t0 < T; t0 += L) {
      starts.push_back(t0);
      L = wkv_detail::chunk_length(T, t0, Lmax, nh * N, lw + ((size_t(bi) * T + t0) * H + h0) * N,
                                   ld, cum.data());
    }
    starts.push_back(T);
    const size_t nchunks = starts.size() - 1;
    const bool use_saved = ckpt && nchunks <= saved.cmax;
    Checkpoints7<F> own{nullptr, 1, T, nh, N, nchunks + 1};
    if (!use_saved) {
      if (own.floats() > buf_size) {
        buf_size = own.floats();
        buf = std::make_unique_for_overwrite<F[]>(buf_size);
      }
      own.p = buf.get();
      for (int hh = 0; hh < nh; ++hh) std::fill(own.state(0, hh, 0), own.state(0, hh, 1), F(0));
      for (size_t c = 0; c < nchunks; ++c) {
        const int t0 = starts[c], L = starts[c + 1] - t0;
        const size_t row = (size_t(bi) * T + t0) * H;
        const int Ln = c + 1 < nchunks ? starts[c + 2] - starts[c + 1] : 0;
        for (int h = h0; h < h1; ++h) {
          const size_t o = (row + h) * N;
          const int hh = h - h0;
          for (const F* x : {lw, k, v, a, b})
            wkv_detail::prefetch_rows(x + o + size_t(L) * ld, Ln, ld, N);
          ch.VS = own.vs(0, hh, t0);
          ch.prepare(L, ld, r + o, lw + o, k + o, v + o, a + o, b + o, false, true);
          ch.forward(ld, own.state(0, hh, c), own.state(0, hh, c + 1), static_cast<F*>(nullptr));
        }
      }
    }
    std::fill(dS.begin(), dS.end(), F(0));
    for (size_t c = nchunks; c-- > 0;) {
      const int t0 = starts[c], L = starts[c + 1] - t0;
      const size_t row = (size_t(bi) * T + t0) * H;
      const int Lp = c > 0 ? t0 - starts[c - 1] : 0;
      for (int h = h0; h < h1; ++h) {
        const size_t o = (row + h) * N;
        const int hh = h - h0;
        // Prefetch the rows of the next head of this chunk, or of the previous chunk's
        // first head after the last: inputs to read (not v: [V; SA] is kept), gradients
        // to write.
        const bool last = h + 1 == h1;
        const size_t on = last ? ((size_t(bi) * T + t0 - Lp) * H + h0) * N : o + N;
        const int Lnx = last ? Lp : L;
        for (const F* x : {r, lw, k, a, b, dy}) wkv_detail::prefetch_rows(x + on, Lnx, ld, N);
        for (F* x : {dr, dlw, dk, dv, da, db}) prefetch_rows_for_write(x + on, Lnx, ld, N);
        const F* S_in = use_saved ? saved.state(bi, h, c) : own.state(0, hh, c);
        const F* VS = use_saved ? saved.vs(bi, h, t0) : own.vs(0, hh, t0);
        ch.prepare(L, ld, r + o, lw + o, k + o, v + o, a + o, b + o, true, false);
        bk.chunk(ch, VS, ld, r + o, k + o, b + o, dy + o, S_in, dS.data() + size_t(hh) * NN, dr + o,
                 dlw + o, dk + o, dv + o, da + o, db + o);
      }
    }
  }
}

}  // namespace

template <typename F>
void wkv7_backward_chunked(int B, int T, int H, int N, int h0, int h1, const F* r, const F* lw,
                           const F* k, const F* v, const F* a, const F* b, const F* dy, F* dr,
                           F* dlw, F* dk, F* dv, F* da, F* db, int chunk,
                           const std::type_identity_t<F>* ckpt) {
  check_heads("wkv7_backward_chunked", B, T, H, N, h0, h1, chunk);
  if (N == 64) {
    backward_chunked<F, 64>(B, T, H, N, h0, h1, r, lw, k, v, a, b, dy, dr, dlw, dk, dv, da, db,
                            chunk, ckpt);
  } else {
    backward_chunked<F, 0>(B, T, H, N, h0, h1, r, lw, k, v, a, b, dy, dr, dlw, dk, dv, da, db,
                           chunk, ckpt);
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
                                        int, F*);                                                  \
  template void wkv7_backward_chunked<F>(int, int, int, int, int, int, const F*, const F*,         \
                                         const F*, const F*, const F*, const F*, const F*, F*, F*, \
                                         F*, F*, F*, F*, int, const F*);
RWKV_WKV7_INSTANTIATE(float)
RWKV_WKV7_INSTANTIATE(double)
#undef RWKV_WKV7_INSTANTIATE

}  // namespace rwkv::kernels
