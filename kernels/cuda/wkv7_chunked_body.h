#pragma once
// The two kernels of the chunked WKV7 forward (kernels/cuda/wkv7.cu), as block bodies
// (kernels/cuda/block.h) that the tests also run on the CPU; the scan also serves the
// chunked WKV7 backward (wkv7_chunked_backward_body.h) and RWKV-5/6's chunked WKV
// (wkv6_chunked_body.h).
//
// The chunk equations are those of the CPU's chunked form (kernels/cpu/wkv7.cpp), with
// the decay between two tokens taken as one exp of a difference of cumulative log
// decays, e^{cum_t - cum_{s+1}} <= 1, instead of a product of factors e^{cum_t} and
// e^{-cum_{s+1}}: chunks then never need cutting short, whatever the decays (a chunk is
// always kL = 16 tokens, so the states entering the chunks are the checkpoints the
// sequential backward reads). The cumulative sums are kept in double (in shared memory
// only; each exponent is rounded to float before its expf): in fp32 a difference of two
// sums near -750 (decays e^-50 over 15 steps) is off by ~5e-5, and so is its exp
// (measured: dlw 1.1e-5 from the recurrence at decays e^-60..e^-40).
//
// For a chunk of one head, tokens t, s in [0, kL) (tokens past the end of the sequence
// are zero rows with lw = 0), cum_0 = 0, cum_{t+1} = cum_t + lw_t and S_in the state
// entering it (S[i][j]: value i, key j):
//   Aak[t][s] = sum_j a_t k_s e^{cum_t - cum_{s+1}},  Aab alike with b_s     (s < t)
//   Ark[t][s] = sum_j r_t k_s e^{cum_{t+1} - cum_{s+1}},  Arb alike with b_s (s <= t)
//   W  = (I - Aab)^{-1} A~,  A~[t] = a_t e^{cum_t}                  [kL, N] (by keys)
//   U  = (I - Aab)^{-1} Aak V                                       [kL, N] (by values)
//   Ry[t] = r_t e^{cum_{t+1}} + sum_{s<=t} Arb[t][s] W[s]           [kL, N] (by keys)
//   Yl[t] = sum_{s<=t} Ark[t][s] V[s] + Arb[t][s] U[s]              [kL, N] (by values)
//   Kh[s] = k_s e^{cum_kL - cum_{s+1}},  Bh[s] alike with b_s,  P_L = e^{cum_kL}
// and then, with sa_t = S_{t-1} a_t stacked as SA [kL, N],
//   SA = W S_in^T + U,   Y = Ry S_in^T + Yl,   S_out = S_in diag(P_L) + V^T Kh + SA^T Bh.
// (sa_t solves sa_t = A~[t] S_in^T + sum_{s<t} Aak[t][s] v_s + Aab[t][s] sa_s: the state
// after token s, seen from token t, carries v_s k_s^T + sa_s b_s^T decayed by
// e^{cum_t - cum_{s+1}}.)
//
// Kernel 1, prep (one block per chunk of each (b, h), all in parallel): everything above
// that does not involve S_in, to a buffer of chunk_floats(N) per chunk. Kernel 2, scan
// (one block per (b, h) and split g, owning rows [g R, g R + R) of the state, R = N /
// splits: rows evolve on their own, as in the sequential kernel): the chunks in order,
// each SA, Y and S_out of its rows (4 kL R N multiply-adds per chunk, against kL tokens
// of dependent steps in the sequential kernel; on the tensor cores when R is a multiple
// of 16, kernels/cuda/warp_tile.h); it writes the checkpoints and sa_t in the
// sequential forward's workspace layout (kernels/cuda/wkv7.cu, Workspace), so the
// sequential backward runs from either forward.
#include <cmath>
#include <cstddef>

#include "kernels/cuda/bf16.h"
#include "kernels/cuda/block.h"
#include "kernels/cuda/warp_tile.h"

namespace rwkv::cuda::wkv7_chunked {

constexpr int kL = 16;         // tokens per chunk: the checkpoint interval kSeg
constexpr int kThreads = 256;  // threads per block, both kernels

RWKV_HD constexpr int imin(int x, int y) { return x < y ? x : y; }
RWKV_HD constexpr int chunks(int T) { return (T + kL - 1) / kL; }

// Per chunk in the prep buffer: W, U, Ry, Yl, Kh, Bh [kL, N] each, then P_L [N].
enum Part { kW = 0, kU, kRy, kYl, kKh, kBh, kParts };
RWKV_HD constexpr size_t chunk_floats(int N) { return size_t(kParts) * kL * N + N; }

// Tensors [B, T, H, N] (heads [h0, h0 + nh)); state_in / state_out [B, H, N, N] or
// null; ckpt [B, H, chunks(T), N, N] (S[i][j] at j N + i) and sa [B, H, T, N] or null;
// prep [B, nh, chunks(T), chunk_floats(N)]. E: the element type of the per-token tensors
// (r .. b, y), float or Bf16 (kernels/cuda/bf16.h); the state, ckpt, sa and prep are fp32.
template <typename E>
struct Args {
  int B, T, H, h0, nh;
  const E *r, *lw, *k, *v, *a, *b;
  E* y;
  const float* state_in;
  float* state_out;
  float *ckpt, *sa, *prep;
};

// What the scan reads and writes. The same scan also runs the backward's state gradient
// (wkv7_chunked_backward_body.h: chunks in reverse, other meanings) and RWKV-5/6's chunked
// WKV (kernels/cuda/wkv6_chunked_body.h: no delta term, the state stored key-major).
template <typename E>
struct ScanArgs {
  int B, T, H, h0, nh;
  const E* v;  // [B, T, H, N]: the values of the update, by rows of the scan's state
  E* y;        // null: no y (the scan then reads no Ry, Yl)
  const float* state_in;
  float* state_out;
  float* ckpt;  // null, or the state before each chunk, [B, H, chunks(T), N, N]
  float* sa;    // null, or sa_t [B, H, T, N] (with the delta term only)
  const float* prep;
  bool reverse = false;    // the chunks last to first
  bool key_major = false;  // state_in / state_out as S[col][row] (RWKV-5/6's [key][value])
};

template <typename E>
RWKV_HD ScanArgs<E> scan_args(const Args<E>& x) {
  return {x.B, x.T, x.H, x.h0, x.nh, x.v, x.y, x.state_in, x.state_out, x.ckpt, x.sa, x.prep};
}

// Where chunk block `block` = (b * nh + hh) * chunks(T) + c of the prep kernels is.
struct ChunkPos {
  int bi, hh, h, c, t0, len;
  size_t C, o0;  // floats per token; token t0, channel 0 of the head
};

template <int N, typename A>
RWKV_HD ChunkPos chunk_pos(const A& x, int block) {
  ChunkPos p;
  const int nc = chunks(x.T), hb = block / nc;
  p.c = block % nc;
  p.bi = hb / x.nh;
  p.hh = hb % x.nh;
  p.h = x.h0 + p.hh;
  p.t0 = p.c * kL;
  p.len = imin(kL, x.T - p.t0);
  p.C = size_t(x.H) * N;
  p.o0 = (size_t(p.bi) * x.T + p.t0) * p.C + size_t(p.h) * N;
  return p;
}

// Rows padded to N + 1 floats where threads of a warp read down a column, to P = N + 4
// (and 32-byte aligned) where the forward prep's tensor-core tiles read or write. After
// the triangular solves a and lw are free: the tiles write Ry and Yl there (46 KB at
// N 64, under the 48 KB of static shared memory).
template <int N>
struct PrepShared {
  static constexpr int P = N + 4;
  float r[kL][N + 1], k[kL][N + 1], b[kL][N + 1];
  alignas(32) float a[kL][P];
  alignas(32) float v[kL][P];
  alignas(32) float lw[kL][P];
  double cum[kL + 1][N + 1];  // double: see the header comment
  alignas(32) float W[kL][P];
  alignas(32) float U[kL][P];
  alignas(32) float Aak[kL][kL];
  alignas(32) float Aab[kL][kL];
  alignas(32) float Ark[kL][kL];
  alignas(32) float Arb[kL][kL];
};

// sh.cum[t][j] = sum of sh.lw[0 .. t-1][j] (the chunk's rows loaded). Sh: any struct
// with those arrays (the WKV5/6 and WKV7 kernels' shared memory). Ends with a barrier.
template <int N, typename Sh, typename Block>
RWKV_HD void cumulative_decays(const Block& blk, Sh& sh) {
  for (int j = blk.thread(); j < N; j += blk.threads()) {
    double cum = 0.0;
    sh.cum[0][j] = 0.0;
    for (int t = 0; t < kL; ++t) {
      cum += sh.lw[t][j];
      sh.cum[t + 1][j] = cum;
    }
  }
  blk.sync();
}

// The chunk's rows of r, k, a, b, lw and of `val` (into sh.v: v, or dy for the
// backward's prep) into shared memory, zero rows past the end of the sequence; then
// cum. Sh: any struct with those arrays. Ends with a barrier.
template <int N, typename E, typename Sh, typename Block>
RWKV_HD void load_chunk(const Block& blk, const Args<E>& x, const ChunkPos& p, const E* val,
                        Sh& sh) {
  const int tid = blk.thread(), nt = blk.threads();
  for (int e = tid; e < kL * N; e += nt) {
    const int t = e / N, j = e % N;
    const bool in = t < p.len;
    const size_t o = p.o0 + size_t(t) * p.C + j;
    sh.r[t][j] = in ? to_float(x.r[o]) : 0.f;
    sh.k[t][j] = in ? to_float(x.k[o]) : 0.f;
    sh.a[t][j] = in ? to_float(x.a[o]) : 0.f;
    sh.b[t][j] = in ? to_float(x.b[o]) : 0.f;
    sh.v[t][j] = in ? to_float(val[o]) : 0.f;
    sh.lw[t][j] = in ? to_float(x.lw[o]) : 0.f;
  }
  blk.sync();
  cumulative_decays<N>(blk, sh);
}

// The decay between two positions of the loaded chunk, dec(tp, sp, j) = e^{cum_tp -
// cum_sp} (<= 1) of channel j for 0 <= sp <= tp <= kL, the exponent rounded to float
// before its expf. CumDecay computes it; the gradient kernels, which need each value up
// to four times, compute every one once into a table (decay_table) and read it there
// (TableDecay): the same numbers.
template <typename Sh>
struct CumDecay {
  const Sh& sh;
  RWKV_HD float operator()(int tp, int sp, int j) const {
    return expf(float(sh.cum[tp][j] - sh.cum[sp][j]));
  }
};

// Table rows: (tp, sp) with 0 <= sp < tp <= kL at row tp (tp - 1) / 2 + sp.
constexpr int kTri = kL * (kL + 1) / 2;
RWKV_HD constexpr int tri_row(int tp, int sp) { return tp * (tp - 1) / 2 + sp; }

// sh.D[tri_row(tp, sp)][j] = CumDecay(tp, sp, j) for every sp < tp (Sh: any struct with
// cum and D [kTri][N + 1]: the pair loops' threads read one column of many rows). No
// barrier.
template <int N, typename Sh, typename Block>
RWKV_HD void decay_table(const Block& blk, Sh& sh) {
  for (int e = blk.thread(); e < kTri * N; e += blk.threads()) {
    const int row = e / N, j = e % N;
    int tp = 1;
    while (tri_row(tp + 1, 0) <= row) ++tp;
    sh.D[row][j] = CumDecay<Sh>{sh}(tp, row - tri_row(tp, 0), j);
  }
}

template <typename Sh>
struct TableDecay {
  const Sh& sh;
  RWKV_HD float operator()(int tp, int sp, int j) const {
    return tp == sp ? 1.f : sh.D[tri_row(tp, sp)][j];  // expf(0.f) is 1 exactly
  }
};

// dlw's pair terms in the gradient kernels go by three parts of the queries t, [0, B1),
// [B1, B2) and [B2, kL) (each kernel picks the bounds for about equal work), a thread per
// part and channel: dlp[part][u][j] = the terms of that part added to u. pairs (the
// kernel's DlwPairs) adds those of the queries [T0, T1) of channel j to dl, in registers,
// by pairs.template operator()<T0, T1>(j, dl). Ends with a barrier.
constexpr int kDlParts = 3;

template <int N, int B1, int B2, typename Pairs, typename Block>
RWKV_HD void dlw_by_parts(const Block& blk, float (*dlp)[kL][N], const Pairs& pairs) {
  for (int e = blk.thread(); e < kDlParts * N; e += blk.threads()) {
    const int part = e / N, j = e % N;  // the part is uniform in a warp
    float dl[kL];
    RWKV_UNROLL
    for (int u = 0; u < kL; ++u) dl[u] = 0.f;
    if (part == 0)
      pairs.template operator()<0, B1>(j, dl);
    else if (part == 1)
      pairs.template operator()<B1, B2>(j, dl);
    else
      pairs.template operator()<B2, kL>(j, dl);
    RWKV_UNROLL
    for (int u = 0; u < kL; ++u) dlp[part][u][j] = dl[u];
  }
  blk.sync();
}

// The parts' sum for (u, j), in a fixed order.
template <int N>
RWKV_HD float dlw_parts_sum(const float (*dlp)[kL][N], int u, int j) {
  return (dlp[0][u][j] + dlp[1][u][j]) + dlp[2][u][j];
}

// Aak, Aab (s < t) and Ark, Arb (s <= t) from the loaded chunk, zero elsewhere, with the
// decays of dec (CumDecay or TableDecay). Ends with a barrier.
template <int N, typename Sh, typename Decay, typename Block>
RWKV_HD void pair_matrices(const Block& blk, Sh& sh, const Decay& dec) {
  for (int e = blk.thread(); e < kL * kL; e += blk.threads()) {
    const int t = e / kL, s = e % kL;
    float ark = 0.f, arb = 0.f, aak = 0.f, aab = 0.f;
    if (s <= t)
      for (int j = 0; j < N; ++j) {
        const float rd = sh.r[t][j] * dec(t + 1, s + 1, j);
        ark += rd * sh.k[s][j];
        arb += rd * sh.b[s][j];
        if (s < t) {
          const float ad = sh.a[t][j] * dec(t, s + 1, j);
          aak += ad * sh.k[s][j];
          aab += ad * sh.b[s][j];
        }
      }
    sh.Ark[t][s] = ark;
    sh.Arb[t][s] = arb;
    sh.Aak[t][s] = aak;
    sh.Aab[t][s] = aab;
  }
  blk.sync();
}

// Block `block` = (b * nh + hh) * chunks(T) + c.
template <int N, typename E, typename Block>
RWKV_HD void prep_body(const Block& blk, int block, PrepShared<N>& sh, const Args<E>& x) {
  const int tid = blk.thread(), nt = blk.threads();
  const ChunkPos p = chunk_pos<N>(x, block);
  load_chunk<N>(blk, x, p, x.v, sh);
  pair_matrices<N>(blk, sh, CumDecay<PrepShared<N>>{sh});
  // Forward substitution, one column per thread: W (columns 0..N-1), U (N..2N-1).
  for (int e = tid; e < 2 * N; e += nt) {
    const int j = e % N;
    if (e < N) {
      for (int t = 0; t < kL; ++t) {
        float w = sh.a[t][j] * expf(float(sh.cum[t][j]));
        for (int s = 0; s < t; ++s) w += sh.Aab[t][s] * sh.W[s][j];
        sh.W[t][j] = w;
      }
    } else {
      for (int t = 0; t < kL; ++t) {
        float u = 0.f;
        for (int s = 0; s < t; ++s) u += sh.Aak[t][s] * sh.v[s][j] + sh.Aab[t][s] * sh.U[s][j];
        sh.U[t][j] = u;
      }
    }
  }
  blk.sync();
  // On the tensor cores (Arb, Ark are zero above the diagonal: the sums over s <= t),
  //   Ry = Arb W (into a), Yl = Ark V + Arb U (into lw).
  constexpr int P = PrepShared<N>::P, NT = N / kTile;
  for (int q = tid / kWarpSize; q < 2 * NT; q += nt / kWarpSize) {
    const int n0 = q % NT * kTile;
    if (q < NT)
      warp_tile_product<kL, Layout::row, Layout::row>(blk, &sh.Arb[0][0], kL, &sh.W[0][n0], P,
                                                      &sh.a[0][n0], P);
    else
      warp_tile_product<kL, Layout::row, Layout::row>(blk, &sh.Ark[0][0], kL, &sh.v[0][n0], P,
                                                      &sh.lw[0][n0], P, false, &sh.Arb[0][0],
                                                      &sh.U[0][n0]);
  }
  blk.sync();
  float* out = x.prep + size_t(block) * chunk_floats(N);
  constexpr size_t LN = size_t(kL) * N;
  for (int e = tid; e < kL * N; e += nt) {
    const int t = e / N, j = e % N;
    const float q = expf(float(sh.cum[kL][j] - sh.cum[t + 1][j]));
    out[kW * LN + e] = sh.W[t][j];
    out[kU * LN + e] = sh.U[t][j];
    out[kRy * LN + e] = sh.r[t][j] * expf(float(sh.cum[t + 1][j])) + sh.a[t][j];
    out[kYl * LN + e] = sh.lw[t][j];
    out[kKh * LN + e] = sh.k[t][j] * q;
    out[kBh * LN + e] = sh.b[t][j] * q;
  }
  for (int j = tid; j < N; j += nt) out[kParts * LN + j] = expf(float(sh.cum[kL][j]));
}

// R rows of the state per block. The kL x N parts indexed by keys are read whole (the
// threads of a warp share a row: broadcasts); those indexed by values, for the block's
// rows only. SA overwrites U in place, Y Yl. The state's R rows live here, in rows of
// P = N + 4 floats (tensor-core tiles: 32-byte aligned, leading dimensions a multiple of
// 4).
template <int N, int R>
struct ScanShared {
  static constexpr int P = N + 4;
  alignas(32) float W[kL][N];
  alignas(32) float Ry[kL][N];
  alignas(32) float Kh[kL][N];
  alignas(32) float Bh[kL][N];
  alignas(32) float SA[kL][R];
  alignas(32) float Yl[kL][R];
  alignas(32) float V[kL][R];
  alignas(32) float S[R][P];
  float PL[N];
};

// One thread's share of a chunk's scan inputs, loaded into registers a chunk ahead so
// the loads overlap the previous chunk's work: element tid + kThreads m of the kL x N
// parts indexed by keys (W, Ry, Kh, Bh) and of the kL x R ones of the block's rows (U,
// Yl, V), and P_L[tid].
template <int N, int R, bool kDelta>
struct ChunkRegs {
  static constexpr int KP = kL * N / kThreads;                   // per thread, key-indexed
  static constexpr int RP = (kL * R + kThreads - 1) / kThreads;  // per thread, row-indexed
  static_assert(KP >= 1 && kL * N % kThreads == 0, "whole rows of keys per thread");
  float W[KP], Ry[KP], Kh[KP], Bh[KP], U[RP], Yl[RP], V[RP], PL;

  template <typename E>
  RWKV_HD void load(const ScanArgs<E>& x, int bi, int hh, int c, int i0, int tid) {
    const bool with_y = x.y != nullptr;
    constexpr size_t LN = size_t(kL) * N;
    const int nc = chunks(x.T), t0 = c * kL, len = imin(kL, x.T - t0), h = x.h0 + hh;
    const float* in = x.prep + ((size_t(bi) * x.nh + hh) * nc + c) * chunk_floats(N);
    RWKV_UNROLL
    for (int m = 0; m < KP; ++m) {
      const int e = tid + kThreads * m;
      W[m] = kDelta ? in[kW * LN + e] : 0.f;
      Ry[m] = with_y ? in[kRy * LN + e] : 0.f;
      Kh[m] = in[kKh * LN + e];
      Bh[m] = kDelta ? in[kBh * LN + e] : 0.f;
    }
    const size_t C = size_t(x.H) * N;
    RWKV_UNROLL
    for (int m = 0; m < RP; ++m) {
      const int e = tid + kThreads * m, t = e / R, i = e % R;
      const bool own = e < kL * R;  // (a partial last round when kL R < kThreads)
      U[m] = own && kDelta ? in[kU * LN + size_t(t) * N + i0 + i] : 0.f;
      Yl[m] = own && with_y ? in[kYl * LN + size_t(t) * N + i0 + i] : 0.f;
      V[m] = own && t < len
                 ? to_float(x.v[(size_t(bi) * x.T + t0 + t) * C + size_t(h) * N + i0 + i])
                 : 0.f;
    }
    PL = tid < N ? in[kParts * LN + tid] : 0.f;
  }

  RWKV_HD void store(ScanShared<N, R>& sh, int tid) const {
    RWKV_UNROLL
    for (int m = 0; m < KP; ++m) {
      const int e = tid + kThreads * m, t = e / N, j = e % N;
      sh.W[t][j] = W[m];
      sh.Ry[t][j] = Ry[m];
      sh.Kh[t][j] = Kh[m];
      sh.Bh[t][j] = Bh[m];
    }
    RWKV_UNROLL
    for (int m = 0; m < RP; ++m) {
      const int e = tid + kThreads * m;
      if (e < kL * R) {
        sh.SA[e / R][e % R] = U[m];
        sh.Yl[e / R][e % R] = Yl[m];
        sh.V[e / R][e % R] = V[m];
      }
    }
    if (tid < N) sh.PL[tid] = PL;
  }
};

// Where element [row][col] of the scan's state is in a state_in / state_out of N x N.
template <int N>
RWKV_HD constexpr size_t state_index(bool key_major, int row, int col) {
  return key_major ? size_t(col) * N + row : size_t(row) * N + col;
}

// A chunk's outputs of the block's rows i (kDelta: SA, with y: Y), in place:
//   SA[t][i] = U[t][i] + sum_j W[t][j] S[i][j],   Y[t][i] = Yl[t][i] + sum_j Ry[t][j] S[i][j].
// With R a multiple of 16 as tensor-core tiles (kernels/cuda/warp_tile.h), else (R = 8)
// by multiply-adds, a thread per (t, i). Ends with a barrier.
template <int N, int R, bool kDelta, typename Block>
RWKV_HD void chunk_outputs(const Block& blk, ScanShared<N, R>& sh, bool with_y) {
  constexpr int P = ScanShared<N, R>::P;
  if constexpr (R % kTile == 0) {
    constexpr int RT = R / kTile;
    // Tile q: SA's columns q (kDelta), then Y's. [k = j][n = i] = S[i][j]: column-major.
    const int tiles = (kDelta ? RT : 0) + (with_y ? RT : 0);
    for (int q = blk.thread() / kWarpSize; q < tiles; q += blk.threads() / kWarpSize) {
      const bool sa = kDelta && q < RT;
      const int n0 = q % RT * kTile;
      warp_tile_product<N, Layout::row, Layout::col>(blk, sa ? &sh.W[0][0] : &sh.Ry[0][0], N,
                                                     &sh.S[n0][0], P,
                                                     sa ? &sh.SA[0][n0] : &sh.Yl[0][n0], R, true);
    }
  } else {
    for (int e = blk.thread(); e < kL * R; e += blk.threads()) {
      const int t = e / R, i = e % R;
      float sa = 0.f, y = 0.f;
      for (int j = 0; j < N; ++j) {
        if (kDelta) sa += sh.W[t][j] * sh.S[i][j];
        if (with_y) y += sh.Ry[t][j] * sh.S[i][j];
      }
      if (kDelta) sh.SA[t][i] += sa;
      if (with_y) sh.Yl[t][i] += y;
    }
  }
  blk.sync();
}

// The state's update of the block's rows, S <- S + V^T Kh (+ SA^T Bh with kDelta), after
// S's scaling by P_L: as tiles when R is a multiple of 16, else by multiply-adds.
template <int N, int R, bool kDelta, typename Block>
RWKV_HD void update_state(const Block& blk, ScanShared<N, R>& sh) {
  constexpr int P = ScanShared<N, R>::P;
  if constexpr (R % kTile == 0) {
    constexpr int NT = N / kTile;
    // Tile q: rows m0, columns n0. [m = i][k = t] = V[t][i]: column-major.
    for (int q = blk.thread() / kWarpSize; q < R / kTile * NT; q += blk.threads() / kWarpSize) {
      const int m0 = q / NT * kTile, n0 = q % NT * kTile;
      warp_tile_product<kL, Layout::col, Layout::row>(
          blk, &sh.V[0][m0], R, &sh.Kh[0][n0], N, &sh.S[m0][n0], P, true,
          kDelta ? &sh.SA[0][m0] : nullptr, kDelta ? &sh.Bh[0][n0] : nullptr);
    }
  } else {
    for (int e = blk.thread(); e < R * N; e += blk.threads()) {
      const int i = e / N, j = e % N;
      float s = sh.S[i][j];
      for (int t = 0; t < kL; ++t) {
        s += sh.V[t][i] * sh.Kh[t][j];
        if (kDelta) s += sh.SA[t][i] * sh.Bh[t][j];
      }
      sh.S[i][j] = s;
    }
  }
}

// Block `block` = (b * nh + hh) * G + g, G = N / R, with kThreads threads. kDelta false
// (RWKV-5/6): no W, U, Bh parts, no SA (the update is S diag(P_L) + V^T Kh).
template <int N, int R, bool kDelta, typename E, typename Block>
RWKV_HD void scan_body(const Block& blk, int block, ScanShared<N, R>& sh, const ScanArgs<E>& x) {
  constexpr int G = N / R;
  constexpr size_t NN = size_t(N) * N;
  const int tid = blk.thread();
  const int hb = block / G, g = block % G, bi = hb / x.nh, hh = hb % x.nh, h = x.h0 + hh;
  const int i0 = g * R, nc = chunks(x.T);
  const size_t C = size_t(x.H) * N, bh = size_t(bi) * x.H + h;
  const size_t ob = size_t(bi) * x.T * C + size_t(h) * N + i0;  // token 0, row i0
  for (int e = tid; e < R * N; e += kThreads) {
    const int i = e / N, j = e % N;
    sh.S[i][j] = x.state_in ? x.state_in[bh * NN + state_index<N>(x.key_major, i0 + i, j)] : 0.f;
  }
  const int step = x.reverse ? -1 : 1, first = x.reverse ? nc - 1 : 0;
  ChunkRegs<N, R, kDelta> next{};
  if (nc > 0) next.load(x, bi, hh, first, i0, tid);
  for (int ci = 0; ci < nc; ++ci) {
    const int c = first + step * ci, t0 = c * kL, len = imin(kL, x.T - t0);
    blk.sync();  // the previous chunk's update of S and its reads of the inputs are done
    if (x.ckpt) {  // S[i][j] at j N + i: consecutive threads take consecutive rows i
      float* ck = x.ckpt + (bh * nc + c) * NN + i0;
      for (int e = tid; e < R * N; e += kThreads)
        ck[size_t(e / R) * N + e % R] = sh.S[e % R][e / R];
    }
    next.store(sh, tid);
    if (ci + 1 < nc) next.load(x, bi, hh, c + step, i0, tid);  // in flight during this chunk
    blk.sync();
    // Without the delta term and without y (RWKV-5/6's backward) there are no outputs.
    if (kDelta || x.y) {
      chunk_outputs<N, R, kDelta>(blk, sh, x.y != nullptr);
      for (int e = tid; e < kL * R; e += kThreads) {
        const int t = e / R, i = e % R;
        if (t < len) {
          if (x.sa) x.sa[(bh * x.T + t0 + t) * N + i0 + i] = sh.SA[t][i];
          if (x.y) x.y[ob + size_t(t0 + t) * C + i] = from_float<E>(sh.Yl[t][i]);
        }
      }
    }
    for (int e = tid; e < R * N; e += kThreads) sh.S[e / N][e % N] *= sh.PL[e % N];
    blk.sync();
    update_state<N, R, kDelta>(blk, sh);
  }
  blk.sync();
  if (x.state_out)
    for (int e = tid; e < R * N; e += kThreads)
      x.state_out[bh * NN + state_index<N>(x.key_major, i0 + e / N, e % N)] = sh.S[e / N][e % N];
}

}  // namespace rwkv::cuda::wkv7_chunked
