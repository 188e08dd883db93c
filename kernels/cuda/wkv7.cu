#include <cstdint>
#include <sstream>
#include <string>
#include <type_traits>

#include "common/error.h"
#include "kernels/cuda/bf16.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/wkv7.h"
#include "kernels/cuda/wkv7_chunked_backward_body.h"
#include "kernels/cuda/wkv7_chunked_body.h"
#include "kernels/cuda/wkv_segments.h"

// The equations are those of kernels/cpu/wkv7.cpp (naive form). Each (b, h) runs as
// `splits` = G thread blocks of N threads; block g owns rows [g R, g R + R) of the state,
// R = N / G (the rows of S are the value channels, and each row evolves on its own:
// S_t[i] = S_{t-1}[i] diag(w_t) + (S_{t-1}[i] . a_t) b_t^T + v_t[i] k_t^T). With few
// heads (the 0.4B preset at batch 2 has 32 (b, h) pairs for 132 SMs) one block per head
// leaves most of the GPU idle and every token waits on a chain of N dependent steps;
// G blocks per head use G times the SMs and shorten the chains to N / G.
//
// Forward: G consecutive threads (lanes) share row i, lane l keeping the columns
// l, l + G, ... of S[i] in registers (for G = 1 thread i keeps the whole row, as RWKV-LM
// RWKV-v7/train_temp/cuda/wkv7_cuda.cu); the two sums over a row, S a and S r, end in a
// warp shuffle over the lanes. The inputs are loaded a segment of kSeg tokens at a time
// into shared memory. With a workspace it stores the state before every kSeg-th token
// and every token's sa_t = S_{t-1} a_t.
//
// Backward: per token, with dS = dL/dS_t from the later tokens and sa = S_{t-1} a_t,
// first dS += dy_t r_t^T, then
//   dr_t = S_t^T dy_t          dv_t = dS k_t          dk_t = dS^T v_t
//   dsa  = dS b_t              db_t = dS^T sa         da_t = S_{t-1}^T dsa
//   dlw_t[j] = w_t[j] sum_i dS[i][j] S_{t-1}[i][j]
//   dS  <- dS diag(w_t) + dsa a_t^T
// The rows of dS evolve on their own too (dsa[i] needs row i only). Thread p owns column
// p of the block's rows: of dS (in registers) and of the states, so the sums over those
// rows (dr, dk, db, da, dlw) are local to a thread; with G > 1 each block writes its
// partial sums to scratch and wkv7_sum_splits_kernel adds the G of them in a fixed order
// (deterministic, no atomics). The two sums over j (dv, dsa) go through a padded
// R x (N + G) shared copy of dS, written by columns and read by rows (both without bank
// conflicts), G lanes per row as in the forward. The states come from the forward's
// checkpoints: the tokens are walked in segments of kSeg from the last; for each segment
// the states S_{t0-1} .. S_{t0+len-2} are recomputed by columns from its checkpoint,
// which needs sa_t = S_{t-1} a_t: the forward stores it in the workspace. Every kKeep-th
// of them goes to a per-(b, h) scratch; the reverse walk loads the nearest earlier one
// and steps it forward again in registers (the same formula, so the same values; this
// halves the scratch's memory traffic for one extra step every other token). Thread p
// only ever touches column p of the block's rows in the scratch, so the scratch needs
// no barrier, and every warp access to it is coalesced. dr_t is computed during the
// recompute, where S_t is at hand. No division by w (the official kernel inverts the
// step, which needs w bounded away from 0), so any lw <= 0 works.
//
// Loops that index the register arrays are unrolled fully (so the arrays stay in
// registers).

namespace rwkv::cuda {
namespace {

using wkv_detail::check_args;
using wkv_detail::check_splits;
using wkv_detail::kSeg;
using wkv_detail::launch_large_shared;
using wkv_detail::nseg;
using wkv_detail::with_instance;

constexpr int kKeep = 2;  // the backward's scratch holds every kKeep-th state of a segment

// Workspace: ckpt [B, H, nseg, N, N] (element S[i][j] at j * N + i), then sa
// [B, H, T, N] (sa_t = S_{t-1} a_t of the forward), then scratch
// [B, H, kSeg / kKeep, N, N] (slot q holds S_{t0+q*kKeep-1}, element S[i][j] at
// (q * N + i) * N + j).
struct Workspace {
  float *ckpt, *sa, *scratch;
};

Workspace carve(void* ws, int B, int T, int H, int N) {
  const size_t NN = size_t(N) * N, BH = size_t(B) * H;
  float* base = static_cast<float*>(ws);
  float* sa = base + BH * nseg(T) * NN;
  return {base, sa, sa + BH * size_t(T) * N};
}

// The backward's per-block sums over its rows when G > 1: [G, B, T, nh, N] each (nh =
// heads in range), from the caller's scratch.
struct Partials {
  float *dr, *dlw, *dk, *da, *db;
};

constexpr int kPartials = 5;

Partials carve_partials(void* scratch, size_t one) {
  float* base = static_cast<float*>(scratch);
  return {base, base + one, base + 2 * one, base + 3 * one, base + 4 * one};
}

// x summed over the G lanes of a row (G consecutive threads of one warp, G a power of 2),
// the result in every lane; fixed order, so deterministic.
template <int G>
__device__ __forceinline__ float lane_sum(float x, unsigned mask) {
#pragma unroll
  for (int o = G / 2; o > 0; o /= 2) x += __shfl_xor_sync(mask, x, o);
  return x;
}

// The lanes of a warp in a block of N threads (a partial warp when N < 32).
template <int N>
constexpr unsigned kWarpMask = N >= 32 ? 0xffffffffu : (1u << N) - 1u;

// E: the per-token tensors' element type, float or Bf16 (kernels/cuda/bf16.h): values are
// widened to fp32 as they are read and rounded as they are written.
template <int N, int G, typename E>
__global__ void __launch_bounds__(N)
    wkv7_forward_kernel(int T, int H, int h0, int nh, const E* __restrict__ r,
                        const E* __restrict__ lw, const E* __restrict__ k, const E* __restrict__ v,
                        const E* __restrict__ a, const E* __restrict__ b, E* __restrict__ y,
                        const float* __restrict__ state_in, float* __restrict__ state_out,
                        float* __restrict__ ckpt, float* __restrict__ sa_ws) {
  constexpr int R = N / G, M = N / G;  // rows per block; columns per lane
  constexpr size_t NN = size_t(N) * N;
  const int hb = blockIdx.x / G, g = blockIdx.x % G, tid = threadIdx.x;
  const int bi = hb / nh, h = h0 + hb % nh;
  const int i = g * R + tid / G, lane = tid % G;  // row i, columns lane + G m
  const size_t C = size_t(H) * N, bh = size_t(bi) * H + h;
  __shared__ float sr[kSeg][N], sw[kSeg][N], sk[kSeg][N], sv[kSeg][N], sa[kSeg][N], sb[kSeg][N];
  float S[M];  // S[i][lane + G m]
#pragma unroll
  for (int m = 0; m < M; ++m) S[m] = state_in ? state_in[bh * NN + i * N + lane + G * m] : 0.f;
  float* ck = ckpt ? ckpt + bh * nseg(T) * NN + i : nullptr;  // S[i][j] at ck[sg * NN + j * N]
  float* sa_out = sa_ws && lane == 0 ? sa_ws + bh * size_t(T) * N + i : nullptr;  // at [t * N]
  // The inputs of one segment of kSeg tokens, [kSeg, N] each (sw = exp(lw)): thread tid
  // loads channel tid of every token at once (all the loads in flight together, one
  // barrier per segment instead of two per token).
  const size_t o0 = size_t(bi) * T * C + size_t(h) * N;  // token 0, channel 0 of the head
  for (int t0 = 0; t0 < T; t0 += kSeg) {
    const int len = min(kSeg, T - t0);
    if (ck) {
      float* c = ck + size_t(t0 / kSeg) * NN;
#pragma unroll
      for (int m = 0; m < M; ++m) c[(lane + G * m) * N] = S[m];
    }
    __syncthreads();  // the previous segment's reads of the shared arrays are done
#pragma unroll
    for (int s = 0; s < kSeg; ++s) {
      if (s >= len) break;
      const size_t o = o0 + size_t(t0 + s) * C + tid;
      sr[s][tid] = to_float(r[o]);
      sw[s][tid] = expf(to_float(lw[o]));
      sk[s][tid] = to_float(k[o]);
      sv[s][tid] = to_float(v[o]);
      sa[s][tid] = to_float(a[o]);
      sb[s][tid] = to_float(b[o]);
    }
    __syncthreads();
    for (int s = 0; s < len; ++s) {
      float sai = 0.f;
#pragma unroll
      for (int m = 0; m < M; ++m) sai += S[m] * sa[s][lane + G * m];
      sai = lane_sum<G>(sai, kWarpMask<N>);
      const float xv = sv[s][i];
      float yi = 0.f;
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const int j = lane + G * m;
        S[m] = S[m] * sw[s][j] + sai * sb[s][j] + xv * sk[s][j];
        yi += S[m] * sr[s][j];
      }
      yi = lane_sum<G>(yi, kWarpMask<N>);
      if (lane == 0) y[o0 + size_t(t0 + s) * C + i] = from_float<E>(yi);
      if (sa_out) sa_out[size_t(t0 + s) * N] = sai;
    }
  }
  if (state_out) {
#pragma unroll
    for (int m = 0; m < M; ++m) state_out[bh * NN + i * N + lane + G * m] = S[m];
  }
}

template <int N, int G, typename E>
__global__ void __launch_bounds__(N)
    wkv7_backward_kernel(int B, int T, int H, int h0, int nh, const E* __restrict__ r,
                         const E* __restrict__ lw, const E* __restrict__ k, const E* __restrict__ v,
                         const E* __restrict__ a, const E* __restrict__ b, const E* __restrict__ dy,
                         E* __restrict__ dr, E* __restrict__ dlw, E* __restrict__ dk,
                         E* __restrict__ dv, E* __restrict__ da, E* __restrict__ db, Workspace ws,
                         Partials part) {
  constexpr int R = N / G, M = N / G;  // rows per block; columns per lane of the row sums
  constexpr size_t NN = size_t(N) * N;
  const int hb = blockIdx.x / G, g = blockIdx.x % G, p = threadIdx.x;
  const int bi = hb / nh, h = h0 + hb % nh, i0 = g * R;
  const int rl = p / G, lane = p % G;  // the row sums: row i0 + rl, columns lane + G m
  const size_t C = size_t(H) * N, bh = size_t(bi) * H + h;
  // The inputs of one segment that are read at every index, [kSeg, N] each (sw =
  // exp(lw); ssa[s] = S_{t-1} a_t of its tokens, from the forward); sdS = the block's rows
  // of the current dS (rows padded to N + G floats: the column writes and the row reads
  // are both free of bank conflicts); sdsa = dsa of the current token.
  __shared__ float sw[kSeg][N], sk[kSeg][N], sv[kSeg][N], sb[kSeg][N], sdy[kSeg][N], ssa[kSeg][N],
      sdS[R][N + G], sdsa[R];
  // S[i0 + ii][p] at ck[sg * NN + ii]
  const float* ck = ws.ckpt + bh * nseg(T) * NN + size_t(p) * N + i0;
  const float* sag = ws.sa + bh * size_t(T) * N + p;  // sa_t[p] at sag[t * N]
  // S[i0 + ii][p] of slot q: sc[q * NN + ii * N]
  float* sc = ws.scratch + bh * (kSeg / kKeep) * NN + size_t(i0) * N + p;
  const size_t ob = size_t(bi) * T * C + size_t(h) * N + p;          // token 0, channel p
  const size_t orow = size_t(bi) * T * C + size_t(h) * N + i0 + rl;  // token 0, channel i0+rl
  // Where a column sum of token t goes: the output itself when G = 1, else this block's
  // partial [g, bi, t, h - h0, p].
  const size_t pstride = size_t(B) * T * nh * N;
  const size_t pb = g * pstride + size_t(bi) * T * nh * N + size_t(h - h0) * N + p;
  const auto put = [&](E* out, float* partial, int t, float x) {
    if (G == 1)
      out[ob + size_t(t) * C] = from_float<E>(x);
    else
      partial[pb + size_t(t) * nh * N] = x;
  };
  float dS[R];  // dS[i0 + ii][p]
#pragma unroll
  for (int ii = 0; ii < R; ++ii) dS[ii] = 0.f;
  for (int sg = nseg(T) - 1; sg >= 0; --sg) {
    const int t0 = sg * kSeg, len = min(kSeg, T - t0);
    __syncthreads();  // the previous segment's reads of shared memory are done
#pragma unroll
    for (int s = 0; s < kSeg; ++s) {  // unrolled: all the segment's loads in flight at once
      if (s >= len) break;
      const size_t o = ob + size_t(t0 + s) * C;
      sw[s][p] = expf(to_float(lw[o]));
      sk[s][p] = to_float(k[o]);
      sv[s][p] = to_float(v[o]);
      sb[s][p] = to_float(b[o]);
      sdy[s][p] = to_float(dy[o]);
      ssa[s][p] = sag[size_t(t0 + s) * N];
    }
    __syncthreads();
    {
      // Column p of S_{t0+s} from S_{t0+s-1}, the forward's formula; slot s / kKeep gets
      // S_{t0+s-1} when kKeep divides s; dr_t = S_t^T dy_t on the way.
      float S[R];
#pragma unroll
      for (int ii = 0; ii < R; ++ii) S[ii] = ck[size_t(sg) * NN + ii];
      for (int s = 0; s < len; ++s) {
        if (s % kKeep == 0) {
          float* slot = sc + size_t(s / kKeep) * NN;
#pragma unroll
          for (int ii = 0; ii < R; ++ii) slot[ii * N] = S[ii];
        }
        const float wp = sw[s][p], kp = sk[s][p], bp = sb[s][p];
        float drp = 0.f;
#pragma unroll
        for (int ii = 0; ii < R; ++ii) {
          S[ii] = S[ii] * wp + ssa[s][i0 + ii] * bp + sv[s][i0 + ii] * kp;
          drp += sdy[s][i0 + ii] * S[ii];
        }
        put(dr, part.dr, t0 + s, drp);
      }
    }
    // r_t[p] and a_t[p] are loaded one token ahead (their latency overlaps a token).
    float nr = to_float(r[ob + size_t(t0 + len - 1) * C]);
    float na = to_float(a[ob + size_t(t0 + len - 1) * C]);
    for (int s = len - 1; s >= 0; --s) {
      const size_t o = ob + size_t(t0 + s) * C;
      const float rp = nr, ap = na, wp = sw[s][p];
      if (s > 0) {
        nr = to_float(r[o - C]);
        na = to_float(a[o - C]);
      }
      float Sp[R];  // S_{t-1}[i0 + ii][p]: the stored S_{t0+q-1}, stepped through tokens q .. s-1
      const int q0 = s - s % kKeep;
      const float* slot = sc + size_t(q0 / kKeep) * NN;
#pragma unroll
      for (int ii = 0; ii < R; ++ii) Sp[ii] = slot[ii * N];
#pragma unroll
      for (int ii = 0; ii < R; ++ii) {
        dS[ii] = fmaf(sdy[s][i0 + ii], rp, dS[ii]);
        sdS[ii][p] = dS[ii];
      }
      __syncthreads();  // sdS holds dS
      // Row i0 + rl of dS: dsa, dv (lane's columns, then the sum over the lanes).
      float dsap = 0.f, dvp = 0.f;
#pragma unroll 8
      for (int m = 0; m < M; ++m) {
        const int j = lane + G * m;
        const float x = sdS[rl][j];
        dsap += x * sb[s][j];
        dvp += x * sk[s][j];
      }
      dsap = lane_sum<G>(dsap, kWarpMask<N>);
      dvp = lane_sum<G>(dvp, kWarpMask<N>);
      if (lane == 0) {
        sdsa[rl] = dsap;
        dv[orow + size_t(t0 + s) * C] = from_float<E>(dvp);
      }
      // Here, so that the latency of the scratch loads overlaps the work above.
      for (int q = q0; q < s; ++q) {
        const float wq = sw[q][p], kq = sk[q][p], bq = sb[q][p];
#pragma unroll
        for (int ii = 0; ii < R; ++ii)
          Sp[ii] = Sp[ii] * wq + ssa[q][i0 + ii] * bq + sv[q][i0 + ii] * kq;
      }
      __syncthreads();  // sdsa is complete; the reads of sdS are done
      float dwp = 0.f, dbp = 0.f, dkp = 0.f, dap = 0.f;
#pragma unroll
      for (int ii = 0; ii < R; ++ii) {
        dwp += dS[ii] * Sp[ii];
        dbp += ssa[s][i0 + ii] * dS[ii];
        dkp += sv[s][i0 + ii] * dS[ii];
        dap += sdsa[ii] * Sp[ii];
      }
      put(dlw, part.dlw, t0 + s, dwp * wp);
      put(dk, part.dk, t0 + s, dkp);
      put(da, part.da, t0 + s, dap);
      put(db, part.db, t0 + s, dbp);
#pragma unroll
      for (int ii = 0; ii < R; ++ii) dS[ii] = fmaf(dS[ii], wp, sdsa[ii] * ap);
      // The next token writes sdS only after this token's second barrier (every row read
      // done) and sdsa only after its own first barrier (every read of this sdsa done).
    }
  }
}

// out[b, t, h0 + hh, n] = sum over g of the G partials [g, b, t, hh, n], g ascending.
template <typename E>
__global__ void wkv7_sum_splits_kernel(int64_t n, int G, int nhN, int HN, int h0N, Partials part,
                                       E* __restrict__ dr, E* __restrict__ dlw, E* __restrict__ dk,
                                       E* __restrict__ da, E* __restrict__ db) {
  const int64_t x = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (x >= n) return;
  const int64_t o = (x / nhN) * HN + h0N + x % nhN;
  E* outs[kPartials] = {dr, dlw, dk, da, db};
  const float* parts[kPartials] = {part.dr, part.dlw, part.dk, part.da, part.db};
#pragma unroll
  for (int q = 0; q < kPartials; ++q) {
    float s = 0.f;
    for (int g = 0; g < G; ++g) s += parts[q][g * n + x];
    outs[q][o] = from_float<E>(s);
  }
}

template <int N, int G, typename E>
void launch_forward(int B, int T, int H, int h0, int h1, const E* r, const E* lw, const E* k,
                    const E* v, const E* a, const E* b, E* y, const float* state_in,
                    float* state_out, float* ckpt, float* sa, cudaStream_t stream) {
  const int nh = h1 - h0;
  wkv7_forward_kernel<N, G, E><<<B * nh * G, N, 0, stream>>>(T, H, h0, nh, r, lw, k, v, a, b, y,
                                                             state_in, state_out, ckpt, sa);
  CUDA_CHECK_LAUNCH();
}

template <int N, int G, typename E>
void launch_backward(int B, int T, int H, int h0, int h1, const E* r, const E* lw, const E* k,
                     const E* v, const E* a, const E* b, const E* dy, E* dr, E* dlw, E* dk, E* dv,
                     E* da, E* db, Workspace ws, void* scratch, cudaStream_t stream) {
  const int nh = h1 - h0;
  const size_t one = size_t(B) * T * nh * N;  // one partial of one split
  const Partials part = G > 1 ? carve_partials(scratch, G * one) : Partials{};
  wkv7_backward_kernel<N, G, E><<<B * nh * G, N, 0, stream>>>(
      B, T, H, h0, nh, r, lw, k, v, a, b, dy, dr, dlw, dk, dv, da, db, ws, part);
  CUDA_CHECK_LAUNCH();
  if (G > 1) {
    constexpr int kThreads = 256;
    const int blocks = int((one + kThreads - 1) / kThreads);
    wkv7_sum_splits_kernel<E><<<blocks, kThreads, 0, stream>>>(int64_t(one), G, nh * N, H * N,
                                                               h0 * N, part, dr, dlw, dk, da, db);
    CUDA_CHECK_LAUNCH();
  }
}

// The chunked forward (kernels/cuda/wkv7_chunked_body.h): the prep of every chunk in
// parallel, then the scan over the chunks, G blocks of N / G state rows per (b, h). The
// scan's blocks are few (B x heads x G), so it asks for registers rather than
// occupancy (min 1 block per SM: without it ptxas spilled a few bytes in some instances).
// E: the per-token tensors' element type, float or Bf16 (kernels/cuda/bf16.h).
template <int N, typename E>
__global__ void __launch_bounds__(wkv7_chunked::kThreads)
    wkv7_chunk_prep_kernel(wkv7_chunked::Args<E> x) {
  __shared__ wkv7_chunked::PrepShared<N> sh;
  wkv7_chunked::prep_body<N>(DeviceBlock{}, int(blockIdx.x), sh, x);
}

template <int N, int G, typename E>
__global__ void __launch_bounds__(wkv7_chunked::kThreads, 1)
    wkv7_chunk_scan_kernel(wkv7_chunked::ScanArgs<E> x) {
  __shared__ wkv7_chunked::ScanShared<N, N / G> sh;
  wkv7_chunked::scan_body<N, N / G, true>(DeviceBlock{}, int(blockIdx.x), sh, x);
}

// The chunked backward (kernels/cuda/wkv7_chunked_backward_body.h); its scan is
// wkv7_chunk_scan_kernel with wkv7_chunked::scan_args.
template <int N, typename E>
__global__ void __launch_bounds__(wkv7_chunked::kThreads)
    wkv7_chunk_bprep_kernel(wkv7_chunked::BackArgs<E> x) {
  __shared__ wkv7_chunked::PrepShared<N> sh;
  wkv7_chunked::bprep_body<N>(DeviceBlock{}, int(blockIdx.x), sh, x);
}

// Min. blocks 1: without it ptxas spilled at 40 registers (124 now, dlw in registers);
// ~160 KB of shared memory at N = 64 leave room for one block per SM anyway.
template <int N, typename E>
__global__ void __launch_bounds__(wkv7_chunked::kThreads, 1)
    wkv7_chunk_grad_kernel(wkv7_chunked::BackArgs<E> x) {
  extern __shared__ __align__(32) float4 grad_smem[];  // as aligned as the struct (the tiles)
  static_assert(alignof(wkv7_chunked::GradShared<N>) <= 32, "the shared memory's alignment");
  auto& sh = *reinterpret_cast<wkv7_chunked::GradShared<N>*>(grad_smem);
  wkv7_chunked::grad_body<N>(DeviceBlock{}, int(blockIdx.x), sh, x);
}

// The backward's scratch: bprep, then dS, then dX (wkv7_chunked::BackArgs).
struct ChunkedScratch {
  float *bprep, *dS, *dX;
};

ChunkedScratch carve_chunked(void* scratch, int B, int T, int H, int nh, int N) {
  float* base = static_cast<float*>(scratch);
  const size_t nc = wkv7_chunked::chunks(T);
  float* dS = base + size_t(B) * nh * nc * wkv7_chunked::chunk_floats(N);
  return {base, dS, dS + size_t(B) * H * nc * N * N};
}

}  // namespace

size_t wkv7_workspace_bytes(int B, int T, int H, int N) {
  check_args("rwkv::cuda::wkv7_workspace_bytes", B, T, H, N, 0, H);
  const size_t NN = size_t(N) * N, BH = size_t(B) * H;
  return (BH * (nseg(T) + kSeg / kKeep) * NN + BH * size_t(T) * N) * sizeof(float);
}

int wkv7_default_splits(int B, int nh, int N) {
  if (N != 64) return 1;
  int dev = 0, sms = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  int g = 1;
  while (g < 8 && int64_t(B) * nh * g < sms) g *= 2;
  return g;
}

size_t wkv7_backward_scratch_bytes(int B, int T, int nh, int N, int splits) {
  check_args("rwkv::cuda::wkv7_backward_scratch_bytes", B, T, nh, N, 0, nh);
  check_splits("rwkv::cuda::wkv7_backward_scratch_bytes", N, splits);
  if (splits == 1) return 0;
  return size_t(kPartials) * splits * B * size_t(T) * nh * N * sizeof(float);
}

namespace {

template <typename E>
void forward_sequential(int B, int T, int H, int N, int h0, int h1, const E* r, const E* lw,
                        const E* k, const E* v, const E* a, const E* b, E* y, const float* state_in,
                        float* state_out, void* workspace, int splits, cudaStream_t stream) {
  check_args("rwkv::cuda::wkv7_forward", B, T, H, N, h0, h1);
  check_splits("rwkv::cuda::wkv7_forward", N, splits);
  if (B == 0 || h0 == h1) return;
  const Workspace ws = workspace ? carve(workspace, B, T, H, N) : Workspace{};
  with_instance(N, splits, [&](auto n, auto g) {
    launch_forward<n(), g()>(B, T, H, h0, h1, r, lw, k, v, a, b, y, state_in, state_out, ws.ckpt,
                             ws.sa, stream);
  });
}

template <typename E>
void backward_sequential(int B, int T, int H, int N, int h0, int h1, const E* r, const E* lw,
                         const E* k, const E* v, const E* a, const E* b, const E* dy, E* dr, E* dlw,
                         E* dk, E* dv, E* da, E* db, void* workspace, void* scratch, int splits,
                         cudaStream_t stream) {
  const char* fn = "rwkv::cuda::wkv7_backward";
  check_args(fn, B, T, H, N, h0, h1);
  check_splits(fn, N, splits);
  if (B == 0 || h0 == h1 || T == 0) return;
  if (workspace == nullptr)
    throw Error(
        "rwkv::cuda::wkv7_backward: workspace is null (it must hold the forward's "
        "checkpoints; size: wkv7_workspace_bytes)");
  if (splits > 1 && scratch == nullptr) {
    std::ostringstream msg;
    msg << fn << ": scratch is null with splits=" << splits
        << " (size: wkv7_backward_scratch_bytes)";
    throw Error(msg.str());
  }
  const Workspace ws = carve(workspace, B, T, H, N);
  with_instance(N, splits, [&](auto n, auto g) {
    launch_backward<n(), g()>(B, T, H, h0, h1, r, lw, k, v, a, b, dy, dr, dlw, dk, dv, da, db, ws,
                              scratch, stream);
  });
}

}  // namespace

void wkv7_forward(int B, int T, int H, int N, int h0, int h1, const float* r, const float* lw,
                  const float* k, const float* v, const float* a, const float* b, float* y,
                  const float* state_in, float* state_out, void* workspace, int splits,
                  cudaStream_t stream) {
  forward_sequential(B, T, H, N, h0, h1, r, lw, k, v, a, b, y, state_in, state_out, workspace,
                     splits, stream);
}

void wkv7_forward(int B, int T, int H, int N, int h0, int h1, const __nv_bfloat16* r,
                  const __nv_bfloat16* lw, const __nv_bfloat16* k, const __nv_bfloat16* v,
                  const __nv_bfloat16* a, const __nv_bfloat16* b, __nv_bfloat16* y,
                  const float* state_in, float* state_out, void* workspace, int splits,
                  cudaStream_t stream) {
  forward_sequential(B, T, H, N, h0, h1, as_bf16(r), as_bf16(lw), as_bf16(k), as_bf16(v),
                     as_bf16(a), as_bf16(b), as_bf16(y), state_in, state_out, workspace, splits,
                     stream);
}

void wkv7_backward(int B, int T, int H, int N, int h0, int h1, const float* r, const float* lw,
                   const float* k, const float* v, const float* a, const float* b, const float* dy,
                   float* dr, float* dlw, float* dk, float* dv, float* da, float* db,
                   void* workspace, void* scratch, int splits, cudaStream_t stream) {
  backward_sequential(B, T, H, N, h0, h1, r, lw, k, v, a, b, dy, dr, dlw, dk, dv, da, db, workspace,
                      scratch, splits, stream);
}

void wkv7_backward(int B, int T, int H, int N, int h0, int h1, const __nv_bfloat16* r,
                   const __nv_bfloat16* lw, const __nv_bfloat16* k, const __nv_bfloat16* v,
                   const __nv_bfloat16* a, const __nv_bfloat16* b, const __nv_bfloat16* dy,
                   __nv_bfloat16* dr, __nv_bfloat16* dlw, __nv_bfloat16* dk, __nv_bfloat16* dv,
                   __nv_bfloat16* da, __nv_bfloat16* db, void* workspace, void* scratch, int splits,
                   cudaStream_t stream) {
  backward_sequential(B, T, H, N, h0, h1, as_bf16(r), as_bf16(lw), as_bf16(k), as_bf16(v),
                      as_bf16(a), as_bf16(b), as_bf16(dy), as_bf16(dr), as_bf16(dlw), as_bf16(dk),
                      as_bf16(dv), as_bf16(da), as_bf16(db), workspace, scratch, splits, stream);
}

size_t wkv7_chunked_scratch_bytes(int B, int T, int nh, int N) {
  check_args("rwkv::cuda::wkv7_chunked_scratch_bytes", B, T, nh, N, 0, nh);
  return size_t(B) * nh * wkv7_chunked::chunks(T) * wkv7_chunked::chunk_floats(N) * sizeof(float);
}

namespace {

template <typename E>
void forward_chunked(int B, int T, int H, int N, int h0, int h1, const E* r, const E* lw,
                     const E* k, const E* v, const E* a, const E* b, E* y, const float* state_in,
                     float* state_out, void* workspace, void* scratch, int splits,
                     cudaStream_t stream) {
  const char* fn = "rwkv::cuda::wkv7_forward_chunked";
  check_args(fn, B, T, H, N, h0, h1);
  check_splits(fn, N, splits);
  if (B == 0 || h0 == h1) return;
  if (scratch == nullptr && T > 0)
    throw Error(std::string(fn) + ": scratch is null (size: wkv7_chunked_scratch_bytes)");
  const Workspace ws = workspace ? carve(workspace, B, T, H, N) : Workspace{};
  const int nh = h1 - h0;
  float* prep = static_cast<float*>(scratch);
  const wkv7_chunked::Args<E> x{B, T, H, h0,       nh,        r,       lw,    k,   v,
                                a, b, y, state_in, state_out, ws.ckpt, ws.sa, prep};
  with_instance(N, splits, [&](auto n, auto g) {
    if (T > 0) {
      wkv7_chunk_prep_kernel<n(), E>
          <<<B * nh * wkv7_chunked::chunks(T), wkv7_chunked::kThreads, 0, stream>>>(x);
      CUDA_CHECK_LAUNCH();
    }
    wkv7_chunk_scan_kernel<n(), g(), E>
        <<<B * nh * g(), wkv7_chunked::kThreads, 0, stream>>>(wkv7_chunked::scan_args(x));
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

void wkv7_forward_chunked(int B, int T, int H, int N, int h0, int h1, const float* r,
                          const float* lw, const float* k, const float* v, const float* a,
                          const float* b, float* y, const float* state_in, float* state_out,
                          void* workspace, void* scratch, int splits, cudaStream_t stream) {
  forward_chunked(B, T, H, N, h0, h1, r, lw, k, v, a, b, y, state_in, state_out, workspace, scratch,
                  splits, stream);
}

void wkv7_forward_chunked(int B, int T, int H, int N, int h0, int h1, const __nv_bfloat16* r,
                          const __nv_bfloat16* lw, const __nv_bfloat16* k, const __nv_bfloat16* v,
                          const __nv_bfloat16* a, const __nv_bfloat16* b, __nv_bfloat16* y,
                          const float* state_in, float* state_out, void* workspace, void* scratch,
                          int splits, cudaStream_t stream) {
  forward_chunked(B, T, H, N, h0, h1, as_bf16(r), as_bf16(lw), as_bf16(k), as_bf16(v), as_bf16(a),
                  as_bf16(b), as_bf16(y), state_in, state_out, workspace, scratch, splits, stream);
}

size_t wkv7_chunked_backward_scratch_bytes(int B, int T, int H, int nh, int N) {
  check_args("rwkv::cuda::wkv7_chunked_backward_scratch_bytes", B, T, H, N, 0, nh);
  const size_t nc = wkv7_chunked::chunks(T);
  return (size_t(B) * nh * nc * wkv7_chunked::chunk_floats(N) + size_t(B) * H * nc * N * N +
          size_t(B) * H * T * N) *
         sizeof(float);
}

size_t wkv7_chunked_shared_bytes(int N) {
  check_args("rwkv::cuda::wkv7_chunked_shared_bytes", 1, 1, 1, N, 0, 1);
  size_t bytes = 0;
  with_instance(N, 1, [&](auto n, auto) { bytes = sizeof(wkv7_chunked::GradShared<n()>); });
  return bytes;
}

namespace {

template <typename E>
void backward_chunked(int B, int T, int H, int N, int h0, int h1, const E* r, const E* lw,
                      const E* k, const E* v, const E* a, const E* b, const E* dy, E* dr, E* dlw,
                      E* dk, E* dv, E* da, E* db, void* workspace, void* scratch, int splits,
                      cudaStream_t stream) {
  const char* fn = "rwkv::cuda::wkv7_backward_chunked";
  check_args(fn, B, T, H, N, h0, h1);
  check_splits(fn, N, splits);
  if (B == 0 || h0 == h1 || T == 0) return;
  if (workspace == nullptr)
    throw Error(std::string(fn) +
                ": workspace is null (it must hold the forward's checkpoints; size: "
                "wkv7_workspace_bytes)");
  if (scratch == nullptr)
    throw Error(std::string(fn) + ": scratch is null (size: wkv7_chunked_backward_scratch_bytes)");
  const Workspace ws = carve(workspace, B, T, H, N);
  const int nh = h1 - h0;
  const ChunkedScratch sc = carve_chunked(scratch, B, T, H, nh, N);
  // The forward's inputs and workspace (no y, states or prep: the backward has its own).
  const wkv7_chunked::Args<E> fwd{B, T, H,       h0,      nh,      r,       lw,    k,      v,
                                  a, b, nullptr, nullptr, nullptr, ws.ckpt, ws.sa, nullptr};
  const wkv7_chunked::BackArgs<E> x{fwd, dy, dr, dlw, dk, dv, da, db, sc.bprep, sc.dS, sc.dX};
  const int blocks = B * nh * wkv7_chunked::chunks(T);
  with_instance(N, splits, [&](auto n, auto g) {
    wkv7_chunk_bprep_kernel<n(), E><<<blocks, wkv7_chunked::kThreads, 0, stream>>>(x);
    CUDA_CHECK_LAUNCH();
    wkv7_chunk_scan_kernel<n(), g(), E>
        <<<B * nh * g(), wkv7_chunked::kThreads, 0, stream>>>(wkv7_chunked::scan_args(x));
    CUDA_CHECK_LAUNCH();
    launch_large_shared(wkv7_chunk_grad_kernel<n(), E>, blocks, wkv7_chunked::kThreads,
                        sizeof(wkv7_chunked::GradShared<n()>), stream, fn, n(), x);
  });
}

}  // namespace

void wkv7_backward_chunked(int B, int T, int H, int N, int h0, int h1, const float* r,
                           const float* lw, const float* k, const float* v, const float* a,
                           const float* b, const float* dy, float* dr, float* dlw, float* dk,
                           float* dv, float* da, float* db, void* workspace, void* scratch,
                           int splits, cudaStream_t stream) {
  backward_chunked(B, T, H, N, h0, h1, r, lw, k, v, a, b, dy, dr, dlw, dk, dv, da, db, workspace,
                   scratch, splits, stream);
}

void wkv7_backward_chunked(int B, int T, int H, int N, int h0, int h1, const __nv_bfloat16* r,
                           const __nv_bfloat16* lw, const __nv_bfloat16* k, const __nv_bfloat16* v,
                           const __nv_bfloat16* a, const __nv_bfloat16* b, const __nv_bfloat16* dy,
                           __nv_bfloat16* dr, __nv_bfloat16* dlw, __nv_bfloat16* dk,
                           __nv_bfloat16* dv, __nv_bfloat16* da, __nv_bfloat16* db, void* workspace,
                           void* scratch, int splits, cudaStream_t stream) {
  backward_chunked(B, T, H, N, h0, h1, as_bf16(r), as_bf16(lw), as_bf16(k), as_bf16(v), as_bf16(a),
                   as_bf16(b), as_bf16(dy), as_bf16(dr), as_bf16(dlw), as_bf16(dk), as_bf16(dv),
                   as_bf16(da), as_bf16(db), workspace, scratch, splits, stream);
}

}  // namespace rwkv::cuda
