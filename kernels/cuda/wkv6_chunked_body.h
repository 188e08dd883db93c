#pragma once
// The chunked WKV of RWKV-5/6 (kernels/cuda/wkv6.cu: wkv6_forward_chunked,
// wkv6_backward_chunked) as block bodies the tests also run on the CPU
// (kernels/cuda/block.h), on the scan of kernels/cuda/wkv7_chunked_body.h without its
// delta term. The recurrence (kernels/cuda/wkv6.h; S[i][j]: key i, value j):
//   y_t[j] = sum_i r_t[i] (u[i] k_t[i] v_t[j] + S_{t-1}[i][j]),
//   S_t = diag(w_t) S_{t-1} + k_t v_t^T.
// For a chunk of kL tokens t, s (cum as in the WKV7 chunks, in double), S_in entering it:
//   A[t][s] = sum_i r_t[i] k_s[i] e^{cum_t - cum_{s+1}}[i] (s < t),  A[t][t] = sum_i r_t u k_t
//   R~[t] = r_t e^{cum_t},  Kh[s] = k_s e^{cum_kL - cum_{s+1}},  P_L = e^{cum_kL}
//   Y = R~ S_in + A V,  S_out = diag(P_L) S_in + Kh^T V.
// The scan's state is S^T (rows: values j, columns: keys i; rows evolve on their own),
// stored key-major, so its checkpoints are the sequential kernel's ([i][j] at i N + j).
// Forward: prep (per chunk: Ry = R~, Yl = A V, Kh, P_L), then the scan. Backward: the
// state gradient dS_in = diag(P_L) dS_out + R~^T dY is the scan again (chunks in reverse,
// V = dY, Kh = R~: bprep writes those), storing dS_out of every chunk; then per chunk,
// with G[t][s] = dy_t . v_s,
//   dr_t = e^{cum_t} (S_in dy_t) + sum_{s<t} e^{cum_t - cum_{s+1}} G[t][s] k_s + u k_t G[t][t]
//   dk_s = e^{cum_L - cum_{s+1}} (dS_out v_s) + sum_{t>s} e^{cum_t - cum_{s+1}} G[t][s] r_t
//          + u r_s G[s][s]
//   dv_s = Kh[s] dS_out + sum_{t>=s} A[t][s] dy_t,   du (this chunk) = sum_t r_t k_t G[t][t]
// and dlw_u sums the terms whose exponent holds lw_u, each with its own decay (r_t's S_in
// term for t > u, sum_j dS_out S_in P_L for all u, k_s's dS_out term for s < u, the pairs
// s < u < t), as the WKV7 chunked backward does: accurate at any decay.
#include <cmath>
#include <cstddef>

#include "kernels/cuda/block.h"
#include "kernels/cuda/warp_tile.h"
#include "kernels/cuda/wkv7_chunked_body.h"

namespace rwkv::cuda::wkv6_chunked {

using wkv7_chunked::chunk_floats;
using wkv7_chunked::ChunkPos;
using wkv7_chunked::chunks;
using wkv7_chunked::CumDecay;
using wkv7_chunked::decay_table;
using wkv7_chunked::dlw_by_parts;
using wkv7_chunked::dlw_parts_sum;
using wkv7_chunked::kDlParts;
using wkv7_chunked::kKh;
using wkv7_chunked::kL;
using wkv7_chunked::kParts;
using wkv7_chunked::kRy;
using wkv7_chunked::kThreads;
using wkv7_chunked::kTri;
using wkv7_chunked::kYl;
using wkv7_chunked::ScanArgs;
using wkv7_chunked::TableDecay;

// Tensors [B, T, H, N] (heads [h0, h0 + nh)), u [H, N]; state_in / state_out [B, H, N, N]
// (key-major) or null; ckpt: the sequential kernel's workspace checkpoints, [B, H,
// chunks(T), N, N]; prep [B, nh, chunks(T), chunk_floats(N)] (forward: parts kRy, kYl,
// kKh, P_L; backward: kKh = R~, P_L). Backward: dy, dr, dk, dv, dlw [B, T, H, N], du
// [H, N]; dS [B, H, chunks(T), N, N] (dS_out of every chunk, as ckpt), dup [B, nh,
// chunks(T), N] (du of every chunk). E: the element type of the per-token tensors (r, k,
// v, lw, y, dy and their gradients), float or Bf16 (kernels/cuda/bf16.h); u, du, the state
// and the scratch are fp32.
template <typename E>
struct Args {
  int B, T, H, h0, nh;
  const E *r, *k, *v, *lw;
  const float* u;
  E* y;
  const float* state_in;
  float* state_out;
  float *ckpt, *prep;
  const E* dy;
  E *dr, *dk, *dv, *dlw;
  float *du, *dS, *dup;
};

// The forward's scan (y from Ry, Yl; the update from V = v, Kh).
template <typename E>
RWKV_HD ScanArgs<E> forward_scan_args(const Args<E>& x) {
  ScanArgs<E> s{x.B, x.T,        x.H,         x.h0,   x.nh,    x.v,
                x.y, x.state_in, x.state_out, x.ckpt, nullptr, x.prep};
  s.key_major = true;
  return s;
}

// The backward's scan: the state gradient, chunks in reverse, from dS = 0.
template <typename E>
RWKV_HD ScanArgs<E> backward_scan_args(const Args<E>& x) {
  ScanArgs<E> s{x.B, x.T, x.H, x.h0, x.nh, x.dy, nullptr, nullptr, nullptr, x.dS, nullptr, x.prep};
  s.reverse = true;
  s.key_major = true;
  return s;
}

// V, A and lw (free once cum is summed: the forward prep's tile writes Yl there) in rows
// of P = N + 4 floats, 32-byte aligned, for the tensor-core tiles.
template <int N>
struct PrepShared {
  static constexpr int P = N + 4;
  float r[kL][N + 1], k[kL][N + 1];
  alignas(32) float v[kL][P];
  alignas(32) float lw[kL][P];
  double cum[kL + 1][N + 1];
  alignas(32) float A[kL][kL];
  float u[N];
};

// The chunk's rows of r, k, v, lw (zero rows past the end), u of its head, and cum.
// Sh: any struct with those arrays. Ends with a barrier.
template <int N, typename E, typename Sh, typename Block>
RWKV_HD void load_chunk(const Block& blk, const Args<E>& x, const ChunkPos& p, Sh& sh) {
  const int tid = blk.thread(), nt = blk.threads();
  for (int e = tid; e < kL * N; e += nt) {
    const int t = e / N, i = e % N;
    const bool in = t < p.len;
    const size_t o = p.o0 + size_t(t) * p.C + i;
    sh.r[t][i] = in ? to_float(x.r[o]) : 0.f;
    sh.k[t][i] = in ? to_float(x.k[o]) : 0.f;
    sh.v[t][i] = in ? to_float(x.v[o]) : 0.f;
    sh.lw[t][i] = in ? to_float(x.lw[o]) : 0.f;
  }
  for (int i = tid; i < N; i += nt) sh.u[i] = x.u[size_t(p.h) * N + i];
  blk.sync();
  wkv7_chunked::cumulative_decays<N>(blk, sh);
}

// A (s <= t; zero above the diagonal), with the decays of dec (wkv7_chunked::CumDecay or
// TableDecay). Ends with a barrier.
template <int N, typename Sh, typename Decay, typename Block>
RWKV_HD void attention(const Block& blk, Sh& sh, const Decay& dec) {
  for (int e = blk.thread(); e < kL * kL; e += blk.threads()) {
    const int t = e / kL, s = e % kL;
    float a = 0.f;
    if (s < t) {
      for (int i = 0; i < N; ++i) a += sh.r[t][i] * sh.k[s][i] * dec(t, s + 1, i);
    } else if (s == t) {
      for (int i = 0; i < N; ++i) a += sh.r[t][i] * sh.u[i] * sh.k[t][i];
    }
    sh.A[t][s] = a;
  }
  blk.sync();
}

// Block `block` = (b * nh + hh) * chunks(T) + c.
template <int N, typename E, typename Block>
RWKV_HD void prep_body(const Block& blk, int block, PrepShared<N>& sh, const Args<E>& x) {
  const int tid = blk.thread(), nt = blk.threads();
  const ChunkPos p = wkv7_chunked::chunk_pos<N>(x, block);
  load_chunk<N>(blk, x, p, sh);
  attention<N>(blk, sh, CumDecay<PrepShared<N>>{sh});
  // Yl = A V (A is zero above the diagonal) on the tensor cores, into lw.
  constexpr int P = PrepShared<N>::P, NT = N / kTile;
  for (int q = tid / kWarpSize; q < NT; q += nt / kWarpSize)
    warp_tile_product<kL, Layout::row, Layout::row>(blk, &sh.A[0][0], kL, &sh.v[0][q * kTile], P,
                                                    &sh.lw[0][q * kTile], P);
  blk.sync();
  float* out = x.prep + size_t(block) * chunk_floats(N);
  constexpr size_t LN = size_t(kL) * N;
  for (int e = tid; e < kL * N; e += nt) {
    const int t = e / N, i = e % N;  // i: a key for Ry, Kh; a value for Yl
    out[kRy * LN + e] = sh.r[t][i] * expf(float(sh.cum[t][i]));
    out[kYl * LN + e] = sh.lw[t][i];
    out[kKh * LN + e] = sh.k[t][i] * expf(float(sh.cum[kL][i] - sh.cum[t + 1][i]));
  }
  for (int i = tid; i < N; i += nt) out[kParts * LN + i] = expf(float(sh.cum[kL][i]));
}

// The backward scan's inputs: Kh = R~, P_L.
template <int N, typename E, typename Block>
RWKV_HD void bprep_body(const Block& blk, int block, PrepShared<N>& sh, const Args<E>& x) {
  const int tid = blk.thread(), nt = blk.threads();
  const ChunkPos p = wkv7_chunked::chunk_pos<N>(x, block);
  load_chunk<N>(blk, x, p, sh);
  float* out = x.prep + size_t(block) * chunk_floats(N);
  constexpr size_t LN = size_t(kL) * N;
  for (int e = tid; e < kL * N; e += nt) {
    const int t = e / N, i = e % N;
    out[kKh * LN + e] = sh.r[t][i] * expf(float(sh.cum[t][i]));
  }
  for (int i = tid; i < N; i += nt) out[kParts * LN + i] = expf(float(sh.cum[kL][i]));
}

// ~129 KB at N = 64: dynamic shared memory. The operands and results of the tensor-core
// tiles (kernels/cuda/warp_tile.h) have rows of P = N + 4 floats and 32-byte alignment.
template <int N>
struct GradShared {
  static constexpr int P = N + 4;
  float r[kL][N + 1], k[kL][N + 1], lw[kL][N + 1];
  alignas(32) float v[kL][P];
  alignas(32) float dy[kL][P];
  alignas(32) float Kh[kL][P];
  double cum[kL + 1][N + 1];
  float D[kTri][N + 1];         // every decay between two positions (wkv7_chunked::decay_table)
  alignas(32) float Sin[N][P];  // [i][j]: key i, value j
  alignas(32) float dS[N][P];
  // S_in dy_t, dS_out v_s (by keys), Kh[s] dS_out (by values)
  alignas(32) float QR[kL][P];
  alignas(32) float KO[kL][P];
  alignas(32) float dvO[kL][P];
  float A[kL][kL];
  alignas(32) float G[kL][kL];
  float u[N], PLG[N];  // PLG: sum_j dS_out[i][j] S_in[i][j]
  float dlp[kDlParts][kL][N];  // dlw's pair terms by part of the queries (dlw_by_parts)
};

// dlw's pair terms of the queries t in [T0, T1) for key channel i (dlw_by_parts): each
// pair s < u < t added to dl[u], in registers (every loop unrolls: the indices are
// constants).
template <int N, typename Decay>
struct DlwPairs {
  const GradShared<N>& sh;
  const Decay& dec;
  template <int T0, int T1>
  RWKV_HD void operator()(int i, float (&dl)[kL]) const {
    RWKV_UNROLL
    for (int t = T0; t < T1; ++t) {
      RWKV_UNROLL
      for (int s = 0; s + 1 < t; ++s) {
        const float pa = sh.r[t][i] * sh.k[s][i] * dec(t, s + 1, i) * sh.G[t][s];
        RWKV_UNROLL
        for (int u = s + 1; u < t; ++u) dl[u] += pa;
      }
    }
  }
};

// The gradient's plain matrix products as 16 x 16 tiles on the tensor cores (a warp per
// tile, in turn), by rows t and columns i: QR = dY S_in^T, KO = V dS^T, dvO = Kh dS
// (columns: values), and G = dY V^T (columns s). Ends with a barrier.
template <int N, typename Block>
RWKV_HD void grad_products(const Block& blk, GradShared<N>& sh) {
  constexpr int P = GradShared<N>::P, NT = N / kTile;
  constexpr Layout row = Layout::row, col = Layout::col;
  for (int q = blk.thread() / kWarpSize; q < 3 * NT + 1; q += blk.threads() / kWarpSize) {
    const int n0 = q % NT * kTile;
    switch (q < 3 * NT ? q / NT : 3) {
      case 0:  // [k = j][n = i] = S_in[i][j]: column-major
        warp_tile_product<N, row, col>(blk, &sh.dy[0][0], P, &sh.Sin[n0][0], P, &sh.QR[0][n0], P);
        break;
      case 1:
        warp_tile_product<N, row, col>(blk, &sh.v[0][0], P, &sh.dS[n0][0], P, &sh.KO[0][n0], P);
        break;
      case 2:  // [k = j][n = i] = dS[j][i]: row-major
        warp_tile_product<N, row, row>(blk, &sh.Kh[0][0], P, &sh.dS[0][n0], P, &sh.dvO[0][n0], P);
        break;
      default:  // [k = j][n = s] = v_s[j]: column-major
        warp_tile_product<N, row, col>(blk, &sh.dy[0][0], P, &sh.v[0][0], P, &sh.G[0][0], kL);
    }
  }
  blk.sync();
}

// Block `block` = (b * nh + hh) * chunks(T) + c.
template <int N, typename E, typename Block>
RWKV_HD void grad_body(const Block& blk, int block, GradShared<N>& sh, const Args<E>& x) {
  const int tid = blk.thread(), nt = blk.threads();
  const ChunkPos p = wkv7_chunked::chunk_pos<N>(x, block);
  constexpr size_t NN = size_t(N) * N;
  const size_t bh = size_t(p.bi) * x.H + p.h, nc = size_t(chunks(x.T));
  const float* Sin = x.ckpt + (bh * nc + p.c) * NN;
  const float* dS = x.dS + (bh * nc + p.c) * NN;
  for (int e = tid; e < kL * N; e += nt) {
    const int t = e / N, j = e % N;
    sh.dy[t][j] = t < p.len ? to_float(x.dy[p.o0 + size_t(t) * p.C + j]) : 0.f;
  }
  for (int e = tid; e < N * N; e += nt) {
    sh.Sin[e / N][e % N] = Sin[e];
    sh.dS[e / N][e % N] = dS[e];
  }
  load_chunk<N>(blk, x, p, sh);
  decay_table<N>(blk, sh);
  blk.sync();
  const TableDecay<GradShared<N>> dec{sh};
  for (int e = tid; e < kL * N; e += nt) {
    const int t = e / N, i = e % N;
    sh.Kh[t][i] = sh.k[t][i] * dec(kL, t + 1, i);
  }
  attention<N>(blk, sh, dec);
  for (int i = tid; i < N; i += nt) {
    float s = 0.f;
    for (int j = 0; j < N; ++j) s += sh.dS[i][j] * sh.Sin[i][j];
    sh.PLG[i] = s;
  }
  grad_products<N>(blk, sh);
  // dr, dk of token t at key i; dv of token t at value i.
  for (int e = tid; e < kL * N; e += nt) {
    const int t = e / N, i = e % N;
    float dr = dec(t, 0, i) * sh.QR[t][i] + sh.u[i] * sh.k[t][i] * sh.G[t][t];
    for (int s = 0; s < t; ++s) dr += dec(t, s + 1, i) * sh.G[t][s] * sh.k[s][i];
    float dk = dec(kL, t + 1, i) * sh.KO[t][i] + sh.u[i] * sh.r[t][i] * sh.G[t][t];
    float dv = sh.dvO[t][i];
    for (int q = t + 1; q < kL; ++q) dk += dec(q, t + 1, i) * sh.G[q][t] * sh.r[q][i];
    for (int q = t; q < kL; ++q) dv += sh.A[q][t] * sh.dy[q][i];
    if (t < p.len) {
      const size_t o = p.o0 + size_t(t) * p.C + i;
      x.dr[o] = from_float<E>(dr);
      x.dk[o] = from_float<E>(dk);
      x.dv[o] = from_float<E>(dv);
    }
  }
  // dlw: the pair terms by part of the queries, [0, 11), [11, 14), [14, 16) (about equal
  // work: 45, 33 and 27 of the 105 pairs, which cross 165, 199 and 196 u), then their sum,
  // the per-token terms and du, one key channel per thread.
  dlw_by_parts<N, 11, 14>(blk, sh.dlp, DlwPairs<N, TableDecay<GradShared<N>>>{sh, dec});
  for (int i = tid; i < N; i += nt) {
    float du = 0.f, dl[kL];
    RWKV_UNROLL
    for (int u = 0; u < kL; ++u) {
      du += sh.r[u][i] * sh.k[u][i] * sh.G[u][u];
      dl[u] = dlw_parts_sum<N>(sh.dlp, u, i);
    }
    x.dup[size_t(block) * N + i] = du;
    float suffix = 0.f;  // r_t's S_in terms, t > u
    RWKV_UNROLL
    for (int u = kL - 1; u >= 0; --u) {
      dl[u] += suffix;
      suffix += sh.r[u][i] * dec(u, 0, i) * sh.QR[u][i];
    }
    float prefix = dec(kL, 0, i) * sh.PLG[i];  // then k_s's dS terms, s < u
    RWKV_UNROLL
    for (int u = 0; u < kL; ++u) {
      dl[u] += prefix;
      prefix += dec(kL, u + 1, i) * sh.k[u][i] * sh.KO[u][i];
    }
    RWKV_UNROLL
    for (int u = 0; u < kL; ++u)
      if (u < p.len) x.dlw[p.o0 + size_t(u) * p.C + i] = from_float<E>(dl[u]);
  }
}

// du[h0 + hh][i] = the sum of dup over the batch rows and the chunks, in that fixed
// order (bitwise reproducible); one thread per (hh, i) of the heads in range.
template <int N, typename E>
RWKV_HD void sum_du(const Args<E>& x, int hh, int i) {
  const int nc = chunks(x.T);
  float s = 0.f;
  for (int b = 0; b < x.B; ++b)
    for (int c = 0; c < nc; ++c) s += x.dup[((size_t(b) * x.nh + hh) * nc + c) * N + i];
  x.du[size_t(x.h0 + hh) * N + i] = s;
}

}  // namespace rwkv::cuda::wkv6_chunked
