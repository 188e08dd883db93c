#pragma once
// The chunked WKV7 backward (kernels/cuda/wkv7.cu: wkv7_backward_chunked) as block
// bodies the tests also run on the CPU (kernels/cuda/block.h). It reads the forward's
// workspace (the state entering every chunk, S_in, and every sa_t), from either forward.
//
// For one chunk (notation of wkv7_chunked_body.h), given dY and dS = dL/dS_out, the
// gradient of sa_t through everything after it, dX[t] ("dsa"), solves
//   dX[s] = Bh[s] dS^T + sum_{t>=s} Arb[t][s] dy_t + sum_{t>s} Aab[t][s] dX[t],
// i.e. dX = Wb dS^T + Ub with Wb = (I - Aab)^{-T} Bh (by keys) and Ub = (I - Aab)^{-T}
// Arb^T dY (by values), and the gradient of the state entering the chunk is
//   dS_in = dS diag(P_L) + dX^T A~ + dY^T R~,   A~[t] = a_t e^{cum_t}, R~[t] = r_t e^{cum_{t+1}}.
// That has the forward scan's form (SA = W S^T + U; S <- S diag(P_L) + V^T Kh + SA^T Bh)
// with W = Wb, U = Ub, V = dY, Kh = R~, Bh = A~, so the forward's scan runs it, chunks in
// reverse (ScanArgs::reverse), from dS = 0 after the last token; it stores dS of every chunk
// where the forward stores S_in, and dX where the forward stores sa. Three kernels:
// bprep (per chunk, in parallel: Wb, Ub, A~, R~, P_L), the scan, then grad (per chunk,
// in parallel), with sa_s as a value of key b_s beside v_s (key k_s), a_t a query of
// gradient dX[t] and decay to cum_t (pairs s < t), r_t one of gradient dy_t and decay to
// cum_{t+1} (pairs s <= t):
//   Gxv[t][s] = dX[t].v_s, Gxs = dX[t].sa_s, Gyv = dy_t.v_s, Gys = dy_t.sa_s     [kL, kL]
//   da_t = e^{cum_t} (dX[t]^T S_in) + sum_{s<t} e^{cum_t - cum_{s+1}} (Gxv k_s + Gxs b_s)
//   dr_t = e^{cum_{t+1}} (dy_t^T S_in) + sum_{s<=t} e^{cum_{t+1} - cum_{s+1}} (Gyv k_s + Gys b_s)
//   dk_s = e^{cum_L - cum_{s+1}} (dS^T v_s) + sum_{t>s} e^{cum_t - cum_{s+1}} Gxv[t][s] a_t
//          + sum_{t>=s} e^{cum_{t+1} - cum_{s+1}} Gyv[t][s] r_t         (db_s: sa_s, Gxs, Gys)
//   dv_s = dS Kh[s] + sum_{t>s} Aak[t][s] dX[t] + sum_{t>=s} Ark[t][s] dy_t
// and dlw_u sums every term whose exponent holds lw_u, each with its own decay: the S_in
// terms of a_t (t > u) and r_t (t >= u), e^{cum_L} sum_i dS S_in (all u), the dS terms
// of k_s, b_s (s < u), and the pairs that cross u (a pairs s < u < t, r pairs s < u <=
// t). No term is a difference of larger ones (the reverse cumulative sums of
// flash-linear-attention's gated kernels cancel when decays are tiny), so decays like
// e^{-60} keep dlw accurate relative to itself, as in the sequential kernel.
#include <cmath>
#include <cstddef>

#include "kernels/cuda/block.h"
#include "kernels/cuda/warp_tile.h"
#include "kernels/cuda/wkv7_chunked_body.h"

namespace rwkv::cuda::wkv7_chunked {

// The backward's tensors. fwd: the forward's Args (r, lw, k, v, a, b, ckpt = S_in of
// every chunk, sa); dy and the gradients [B, T, H, N]; scratch: bprep [B, nh,
// chunks(T), chunk_floats(N)] (parts kW = Wb, kU = Ub, kKh = R~, kBh = A~, P_L), dS
// [B, H, chunks(T), N, N] (dS after chunk c, element [i][j] at j N + i), dX [B, H, T, N].
// E: the per-token tensors' element type (Args); the scratch is fp32.
template <typename E>
struct BackArgs {
  Args<E> fwd;
  const E* dy;
  E *dr, *dlw, *dk, *dv, *da, *db;
  float *bprep, *dS, *dX;
};

// The backward's scan (see the header comment).
template <typename E>
RWKV_HD ScanArgs<E> scan_args(const BackArgs<E>& x) {
  const Args<E>& f = x.fwd;
  ScanArgs<E> s{f.B, f.T, f.H, f.h0, f.nh, x.dy, nullptr, nullptr, nullptr, x.dS, x.dX, x.bprep};
  s.reverse = true;
  return s;
}

// Block `block` = (b * nh + hh) * chunks(T) + c; sh.v holds dy.
template <int N, typename E, typename Block>
RWKV_HD void bprep_body(const Block& blk, int block, PrepShared<N>& sh, const BackArgs<E>& bx) {
  const Args<E>& x = bx.fwd;
  const int tid = blk.thread(), nt = blk.threads();
  const ChunkPos p = chunk_pos<N>(x, block);
  load_chunk<N>(blk, x, p, bx.dy, sh);
  pair_matrices<N>(blk, sh, CumDecay<PrepShared<N>>{sh});
  // Back substitution, one column per thread: Wb (columns 0..N-1), Ub (N..2N-1).
  for (int e = tid; e < 2 * N; e += nt) {
    const int j = e % N;
    for (int s = kL - 1; s >= 0; --s) {
      float w;
      if (e < N) {
        w = sh.b[s][j] * expf(float(sh.cum[kL][j] - sh.cum[s + 1][j]));
        for (int t = s + 1; t < kL; ++t) w += sh.Aab[t][s] * sh.W[t][j];
        sh.W[s][j] = w;
      } else {
        w = 0.f;
        for (int t = s; t < kL; ++t) w += sh.Arb[t][s] * sh.v[t][j];
        for (int t = s + 1; t < kL; ++t) w += sh.Aab[t][s] * sh.U[t][j];
        sh.U[s][j] = w;
      }
    }
  }
  blk.sync();
  float* out = bx.bprep + size_t(block) * chunk_floats(N);
  constexpr size_t LN = size_t(kL) * N;
  for (int e = tid; e < kL * N; e += nt) {
    const int t = e / N, j = e % N;
    out[kW * LN + e] = sh.W[t][j];
    out[kU * LN + e] = sh.U[t][j];
    out[kKh * LN + e] = sh.r[t][j] * expf(float(sh.cum[t + 1][j]));
    out[kBh * LN + e] = sh.a[t][j] * expf(float(sh.cum[t][j]));
  }
  for (int j = tid; j < N; j += nt) out[kParts * LN + j] = expf(float(sh.cum[kL][j]));
}

// More than the 48 KB of static shared memory at N = 64 (~160 KB, under an A100's 163 KB
// per block): the launcher asks for it as dynamic shared memory. The operands and results
// of the tensor-core tiles (kernels/cuda/warp_tile.h) have rows of P = N + 4 floats and
// 32-byte alignment.
template <int N>
struct GradShared {
  static constexpr int P = N + 4;
  float r[kL][N + 1], k[kL][N + 1], a[kL][N + 1], b[kL][N + 1], lw[kL][N + 1];
  alignas(32) float v[kL][P];
  alignas(32) float dy[kL][P];
  alignas(32) float sa[kL][P];
  alignas(32) float dX[kL][P];
  alignas(32) float Kh[kL][P];
  double cum[kL + 1][N + 1];  // double: see wkv7_chunked_body.h
  float D[kTri][N + 1];       // every decay between two positions (decay_table)
  // S_in and dS transposed, as the workspace holds them: SinT[j][i] = S_in[i][j].
  alignas(32) float SinT[N][P];
  alignas(32) float dST[N][P];
  // dX^T S_in, dY^T S_in, dS^T v, dS^T sa (by keys), dS Kh (by values)
  alignas(32) float QA[kL][P];
  alignas(32) float QR[kL][P];
  alignas(32) float KO[kL][P];
  alignas(32) float BO[kL][P];
  alignas(32) float dvO[kL][P];
  alignas(32) float Gxv[kL][kL];
  alignas(32) float Gxs[kL][kL];
  alignas(32) float Gyv[kL][kL];
  alignas(32) float Gys[kL][kL];
  float Aak[kL][kL], Aab[kL][kL], Ark[kL][kL], Arb[kL][kL];
  float PLG[N];                // sum_i dS[i][j] S_in[i][j]
  float dlp[kDlParts][kL][N];  // dlw's pair terms by part of the queries (dlw_by_parts)
};

// dlw's pair terms of the queries t in [T0, T1) for channel j (dlw_by_parts): each pair
// (t, s) that crosses u added to dl[u] (a pairs s < u < t, r pairs s < u <= t). In
// registers: every loop unrolls (the indices are constants).
template <int N, typename Decay>
struct DlwPairs {
  const GradShared<N>& sh;
  const Decay& dec;
  template <int T0, int T1>
  RWKV_HD void operator()(int j, float (&dl)[kL]) const {
    RWKV_UNROLL
    for (int t = T0; t < T1; ++t) {
      RWKV_UNROLL
      for (int s = 0; s <= t; ++s) {
        const float pr = sh.r[t][j] * dec(t + 1, s + 1, j) *
                         (sh.Gyv[t][s] * sh.k[s][j] + sh.Gys[t][s] * sh.b[s][j]);
        RWKV_UNROLL
        for (int u = s + 1; u <= t; ++u) dl[u] += pr;
        if (s < t) {
          const float pa = sh.a[t][j] * dec(t, s + 1, j) *
                           (sh.Gxv[t][s] * sh.k[s][j] + sh.Gxs[t][s] * sh.b[s][j]);
          RWKV_UNROLL
          for (int u = s + 1; u < t; ++u) dl[u] += pa;
        }
      }
    }
  }
};

// The products of the gradient that are plain matrix products, as 16 x 16 tiles on the
// tensor cores (a warp per tile, in turn): with S_in and dS (by rows t and columns j)
//   QA = dX S_in, QR = dY S_in, KO = V dS, BO = SA dS, dvO = Kh dS^T,
// and the pair products (by rows t and columns s) Gxv = dX V^T, Gxs = dX SA^T,
// Gyv = dY V^T, Gys = dY SA^T. Ends with a barrier.
template <int N, typename Block>
RWKV_HD void grad_products(const Block& blk, GradShared<N>& sh) {
  constexpr int P = GradShared<N>::P, NT = N / kTile;
  // Tile q: product q / NT at columns n0 (the first five), then the four G.
  for (int q = blk.thread() / kWarpSize; q < 5 * NT + 4; q += blk.threads() / kWarpSize) {
    const int n0 = q % NT * kTile, op = q < 5 * NT ? q / NT : 5 + q - 5 * NT;
    // The left operand, by rows t: dX for QA, Gxv, Gxs; dY for QR, Gyv, Gys.
    const float* left = op == 0 || op == 5 || op == 6 ? &sh.dX[0][0]
                        : op == 1 || op >= 7          ? &sh.dy[0][0]
                        : op == 2                     ? &sh.v[0][0]
                        : op == 3                     ? &sh.sa[0][0]
                                                      : &sh.Kh[0][0];
    if (op == 4) {  // [k = i][n = j] = dS[j][i] = dST[i][j]: row-major
      warp_tile_product<N, Layout::row, Layout::row>(blk, left, P, &sh.dST[0][n0], P,
                                                     &sh.dvO[0][n0], P);
    } else if (op < 4) {  // [k = i][n = j] = S_in[i][j] = SinT[j][i] (dS alike): column-major
      float* out = op == 0   ? &sh.QA[0][n0]
                   : op == 1 ? &sh.QR[0][n0]
                   : op == 2 ? &sh.KO[0][n0]
                             : &sh.BO[0][n0];
      warp_tile_product<N, Layout::row, Layout::col>(
          blk, left, P, op < 2 ? &sh.SinT[n0][0] : &sh.dST[n0][0], P, out, P);
    } else {  // [k = i][n = s] = v_s[i] (sa_s alike): column-major
      float* out = op == 5   ? &sh.Gxv[0][0]
                   : op == 6 ? &sh.Gxs[0][0]
                   : op == 7 ? &sh.Gyv[0][0]
                             : &sh.Gys[0][0];
      warp_tile_product<N, Layout::row, Layout::col>(
          blk, left, P, op % 2 ? &sh.v[0][0] : &sh.sa[0][0], P, out, kL);
    }
  }
  blk.sync();
}

// Block `block` = (b * nh + hh) * chunks(T) + c.
template <int N, typename E, typename Block>
RWKV_HD void grad_body(const Block& blk, int block, GradShared<N>& sh, const BackArgs<E>& bx) {
  const Args<E>& x = bx.fwd;
  const int tid = blk.thread(), nt = blk.threads();
  const ChunkPos p = chunk_pos<N>(x, block);
  constexpr size_t NN = size_t(N) * N;
  const int nc = chunks(x.T);
  const size_t bh = size_t(p.bi) * x.H + p.h;
  // sa_t and dX[t] of the chunk ([B, H, T, N]); S_in and dS ([B, H, nc, N, N], [i][j] at
  // j N + i).
  const float* sa = x.sa + (bh * x.T + p.t0) * N;
  const float* dX = bx.dX + (bh * x.T + p.t0) * N;
  const float* Sin = x.ckpt + (bh * nc + p.c) * NN;
  const float* dS = bx.dS + (bh * nc + p.c) * NN;
  for (int e = tid; e < kL * N; e += nt) {
    const int t = e / N, j = e % N;
    const bool in = t < p.len;
    sh.dy[t][j] = in ? to_float(bx.dy[p.o0 + size_t(t) * p.C + j]) : 0.f;
    sh.sa[t][j] = in ? sa[e] : 0.f;
    sh.dX[t][j] = in ? dX[e] : 0.f;
  }
  for (int e = tid; e < N * N; e += nt) {
    sh.SinT[e / N][e % N] = Sin[e];
    sh.dST[e / N][e % N] = dS[e];
  }
  load_chunk<N>(blk, x, p, x.v, sh);
  decay_table<N>(blk, sh);
  blk.sync();
  const TableDecay<GradShared<N>> dec{sh};
  pair_matrices<N>(blk, sh, dec);
  for (int e = tid; e < kL * N; e += nt) {
    const int t = e / N, j = e % N;
    sh.Kh[t][j] = sh.k[t][j] * dec(kL, t + 1, j);
  }
  for (int j = tid; j < N; j += nt) {
    float s = 0.f;
    for (int i = 0; i < N; ++i) s += sh.dST[j][i] * sh.SinT[j][i];
    sh.PLG[j] = s;
  }
  blk.sync();
  grad_products<N>(blk, sh);
  // da, dr of token t and dk, db, dv of token t (as the s of the pairs), items (t, j).
  for (int e = tid; e < kL * N; e += nt) {
    const int t = e / N, j = e % N;
    float da = dec(t, 0, j) * sh.QA[t][j], dr = dec(t + 1, 0, j) * sh.QR[t][j];
    for (int s = 0; s <= t; ++s) {
      dr += dec(t + 1, s + 1, j) * (sh.Gyv[t][s] * sh.k[s][j] + sh.Gys[t][s] * sh.b[s][j]);
      if (s < t) da += dec(t, s + 1, j) * (sh.Gxv[t][s] * sh.k[s][j] + sh.Gxs[t][s] * sh.b[s][j]);
    }
    const float q = dec(kL, t + 1, j);  // e^{cum_L - cum_{t+1}}
    float dk = q * sh.KO[t][j], db = q * sh.BO[t][j];
    float dv = sh.dvO[t][j];
    for (int u = t; u < kL; ++u) {  // the queries u >= t of the pairs with s = t
      const float er = dec(u + 1, t + 1, j);
      dk += er * sh.Gyv[u][t] * sh.r[u][j];
      db += er * sh.Gys[u][t] * sh.r[u][j];
      dv += sh.Ark[u][t] * sh.dy[u][j];
      if (u > t) {
        const float ea = dec(u, t + 1, j);
        dk += ea * sh.Gxv[u][t] * sh.a[u][j];
        db += ea * sh.Gxs[u][t] * sh.a[u][j];
        dv += sh.Aak[u][t] * sh.dX[u][j];
      }
    }
    if (t < p.len) {
      const size_t o = p.o0 + size_t(t) * p.C + j;
      bx.da[o] = from_float<E>(da);
      bx.dr[o] = from_float<E>(dr);
      bx.dk[o] = from_float<E>(dk);
      bx.db[o] = from_float<E>(db);
      bx.dv[o] = from_float<E>(dv);
    }
  }
  // dlw: the pair terms by part of the queries, [0, 9), [9, 13), [13, 16) (81, 88 and 87
  // of the 256 pairs), then their sum and the per-token terms, one channel per thread.
  dlw_by_parts<N, 9, 13>(blk, sh.dlp, DlwPairs<N, TableDecay<GradShared<N>>>{sh, dec});
  for (int j = tid; j < N; j += nt) {
    float dl[kL];
    RWKV_UNROLL
    for (int u = 0; u < kL; ++u) dl[u] = dlw_parts_sum<N>(sh.dlp, u, j);
    // The per-token terms: a_t's S_in term for u < t, r_t's for u <= t (suffix sums),
    // the dS terms of k_s, b_s for u > s (prefix sums), e^{cum_L} sum dS S_in for all u.
    float suffix = 0.f;
    RWKV_UNROLL
    for (int u = kL - 1; u >= 0; --u) {
      suffix += sh.r[u][j] * dec(u + 1, 0, j) * sh.QR[u][j];
      dl[u] += suffix;
      suffix += sh.a[u][j] * dec(u, 0, j) * sh.QA[u][j];
    }
    float prefix = dec(kL, 0, j) * sh.PLG[j];
    RWKV_UNROLL
    for (int u = 0; u < kL; ++u) {
      dl[u] += prefix;
      prefix += dec(kL, u + 1, j) * (sh.k[u][j] * sh.KO[u][j] + sh.b[u][j] * sh.BO[u][j]);
    }
    RWKV_UNROLL
    for (int u = 0; u < kL; ++u)
      if (u < p.len) bx.dlw[p.o0 + size_t(u) * p.C + j] = from_float<E>(dl[u]);
  }
}

}  // namespace rwkv::cuda::wkv7_chunked
