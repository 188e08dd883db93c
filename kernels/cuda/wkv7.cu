#include "common/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/wkv_segments.h"
#include "kernels/cuda/wkv7.h"

// The equations are those of kernels/cpu/wkv7.cpp (naive form). One block per
// (b, h), one thread per channel of the head.
//
// Forward: thread i keeps row i of the state, S[i][:], in registers (as RWKV-LM
// RWKV-v7/train_temp/cuda/wkv7_cuda.cu); r, exp(lw), k, a, b of the token are shared.
// With a workspace it stores the state before every kSeg-th token.
//
// Backward: per token, with dS = dL/dS_t from the later tokens and sa = S_{t-1} a_t,
// first dS += dy_t r_t^T, then
//   dr_t = S_t^T dy_t          dv_t = dS k_t          dk_t = dS^T v_t
//   dsa  = dS b_t              db_t = dS^T sa         da_t = S_{t-1}^T dsa
//   dlw_t[j] = w_t[j] sum_i dS[i][j] S_{t-1}[i][j]
//   dS  <- dS diag(w_t) + dsa a_t^T
// Thread p owns column p of everything: of dS (in registers) and of the states, so
// the sums over i (dr, dk, db, da, dlw) are local to a thread. The two sums over j
// (dv, dsa) go through a padded N x (N + 1) shared copy of dS, written by columns and
// read by rows (both without bank conflicts). The states come from the forward's
// checkpoints: the tokens are walked in segments of kSeg from the last; for each segment
// the states S_{t0-1} .. S_{t0+len-2} are recomputed by columns from its checkpoint,
// which needs sa_t = S_{t-1} a_t: the forward stores it in the workspace. Every kKeep-th
// of them goes to a per-(b, h) scratch; the reverse walk loads the nearest earlier one
// and steps it forward again in registers (the same formula, so the same values; this
// halves the scratch's memory traffic for one extra step every other token). Thread p
// only ever touches column p of the scratch, so the scratch needs no barrier, and every
// warp access to it is coalesced. dr_t is computed during the recompute, where S_t is
// at hand. No division by w (the official kernel inverts the step, which needs w bounded
// away from 0), so any lw <= 0 works.
//
// Loops that index the register arrays are unrolled fully (so the arrays stay in
// registers).

namespace rwkv::cuda {
namespace {

using wkv_detail::check_args;
using wkv_detail::kSeg;
using wkv_detail::nseg;

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

template <int N>
__global__ void __launch_bounds__(N)
    wkv7_forward_kernel(int T, int H, int h0, int nh, const float* __restrict__ r,
                        const float* __restrict__ lw, const float* __restrict__ k,
                        const float* __restrict__ v, const float* __restrict__ a,
                        const float* __restrict__ b, float* __restrict__ y,
                        const float* __restrict__ state_in, float* __restrict__ state_out,
                        float* __restrict__ ckpt, float* __restrict__ sa_ws) {
  constexpr size_t NN = size_t(N) * N;
  const int bi = blockIdx.x / nh, h = h0 + blockIdx.x % nh, i = threadIdx.x;
  const size_t C = size_t(H) * N, bh = size_t(bi) * H + h;
  __shared__ float sr[N], sw[N], sk[N], sa[N], sb[N];
  float S[N];  // S[i][j]
#pragma unroll
  for (int j = 0; j < N; ++j) S[j] = state_in ? state_in[bh * NN + i * N + j] : 0.f;
  float* ck = ckpt ? ckpt + bh * nseg(T) * NN + i : nullptr;
  float* sa_out = sa_ws ? sa_ws + bh * size_t(T) * N + i : nullptr;  // sa_t[i] at sa_out[t * N]
  // Each token's inputs are loaded one token ahead, so that their latency overlaps the
  // arithmetic of the token before.
  const size_t o0 = size_t(bi) * T * C + size_t(h) * N + i;           // token 0, channel i
  float nr = 0.f, nlw = 0.f, nk = 0.f, nv = 0.f, na = 0.f, nb = 0.f;  // the next token's
  const auto load_next = [&](size_t o) {
    nr = r[o];
    nlw = lw[o];
    nk = k[o];
    nv = v[o];
    na = a[o];
    nb = b[o];
  };
  if (T > 0) load_next(o0);
  for (int t = 0; t < T; ++t) {
    const size_t o = o0 + size_t(t) * C;
    const float xr = nr, xlw = nlw, xk = nk, xv = nv, xa = na, xb = nb;
    if (t + 1 < T) load_next(o + C);
    if (ck && t % kSeg == 0) {
      float* c = ck + size_t(t / kSeg) * NN;
#pragma unroll
      for (int j = 0; j < N; ++j) c[j * N] = S[j];
    }
    __syncthreads();  // the previous token's reads of the shared arrays are done
    sr[i] = xr;
    sw[i] = expf(xlw);
    sk[i] = xk;
    sa[i] = xa;
    sb[i] = xb;
    __syncthreads();
    float sai = 0.f;
#pragma unroll
    for (int j = 0; j < N; ++j) sai += S[j] * sa[j];
    if (sa_out) sa_out[size_t(t) * N] = sai;
    float yi = 0.f;
#pragma unroll
    for (int j = 0; j < N; ++j) {
      S[j] = S[j] * sw[j] + sai * sb[j] + xv * sk[j];
      yi += S[j] * sr[j];
    }
    y[o] = yi;
  }
  if (state_out) {
#pragma unroll
    for (int j = 0; j < N; ++j) state_out[bh * NN + i * N + j] = S[j];
  }
}

template <int N>
__global__ void __launch_bounds__(N)
    wkv7_backward_kernel(int T, int H, int h0, int nh, const float* __restrict__ r,
                         const float* __restrict__ lw, const float* __restrict__ k,
                         const float* __restrict__ v, const float* __restrict__ a,
                         const float* __restrict__ b, const float* __restrict__ dy,
                         float* __restrict__ dr, float* __restrict__ dlw, float* __restrict__ dk,
                         float* __restrict__ dv, float* __restrict__ da, float* __restrict__ db,
                         Workspace ws) {
  constexpr size_t NN = size_t(N) * N;
  const int bi = blockIdx.x / nh, h = h0 + blockIdx.x % nh, p = threadIdx.x;
  const size_t C = size_t(H) * N, bh = size_t(bi) * H + h;
  // The inputs of one segment that are read at every index, [kSeg, N] each (sw =
  // exp(lw); ssa[s] = S_{t-1} a_t of its tokens, from the forward); sdS = the current
  // dS (row padded to N + 1 floats: the column writes and the row reads are both free
  // of bank conflicts); sdsa = dsa of the current token.
  __shared__ float sw[kSeg][N], sk[kSeg][N], sv[kSeg][N], sb[kSeg][N], sdy[kSeg][N],
      ssa[kSeg][N], sdS[N][N + 1], sdsa[N];
  const float* ck = ws.ckpt + bh * nseg(T) * NN + size_t(p) * N;  // S[i][p] at ck[sg * NN + i]
  const float* sag = ws.sa + bh * size_t(T) * N + p;              // sa_t[p] at sag[t * N]
  float* sc = ws.scratch + bh * (kSeg / kKeep) * NN + p;  // S[i][p] of slot q: sc[q * NN + i * N]
  const size_t ob = size_t(bi) * T * C + size_t(h) * N + p;  // token 0, channel p
  float dS[N];                                               // dS[i][p]
#pragma unroll
  for (int i = 0; i < N; ++i) dS[i] = 0.f;
  for (int sg = nseg(T) - 1; sg >= 0; --sg) {
    const int t0 = sg * kSeg, len = min(kSeg, T - t0);
    __syncthreads();  // the previous segment's reads of shared memory are done
#pragma unroll
    for (int s = 0; s < kSeg; ++s) {  // unrolled: all the segment's loads in flight at once
      if (s >= len) break;
      const size_t o = ob + size_t(t0 + s) * C;
      sw[s][p] = expf(lw[o]);
      sk[s][p] = k[o];
      sv[s][p] = v[o];
      sb[s][p] = b[o];
      sdy[s][p] = dy[o];
      ssa[s][p] = sag[size_t(t0 + s) * N];
    }
    __syncthreads();
    {
      // Column p of S_{t0+s} from S_{t0+s-1}, the forward's formula; slot s / kKeep gets
      // S_{t0+s-1} when kKeep divides s; dr_t = S_t^T dy_t on the way.
      float S[N];
#pragma unroll
      for (int i = 0; i < N; ++i) S[i] = ck[size_t(sg) * NN + i];
      for (int s = 0; s < len; ++s) {
        if (s % kKeep == 0) {
          float* slot = sc + size_t(s / kKeep) * NN;
#pragma unroll
          for (int i = 0; i < N; ++i) slot[i * N] = S[i];
        }
        const float wp = sw[s][p], kp = sk[s][p], bp = sb[s][p];
        float drp = 0.f;
#pragma unroll
        for (int i = 0; i < N; ++i) {
          S[i] = S[i] * wp + ssa[s][i] * bp + sv[s][i] * kp;
          drp += sdy[s][i] * S[i];
        }
        dr[ob + size_t(t0 + s) * C] = drp;
      }
    }
    // r_t[p] and a_t[p] are loaded one token ahead (their latency overlaps a token).
    float nr = r[ob + size_t(t0 + len - 1) * C], na = a[ob + size_t(t0 + len - 1) * C];
    for (int s = len - 1; s >= 0; --s) {
      const size_t o = ob + size_t(t0 + s) * C;
      const float rp = nr, ap = na, wp = sw[s][p];
      if (s > 0) {
        nr = r[o - C];
        na = a[o - C];
      }
      float Sp[N];  // S_{t-1}[i][p]: the stored S_{t0+q-1}, stepped through tokens q .. s-1
      const int q0 = s - s % kKeep;
      const float* slot = sc + size_t(q0 / kKeep) * NN;
#pragma unroll
      for (int i = 0; i < N; ++i) Sp[i] = slot[i * N];
#pragma unroll
      for (int i = 0; i < N; ++i) {
        dS[i] = fmaf(sdy[s][i], rp, dS[i]);
        sdS[i][p] = dS[i];
      }
      __syncthreads();  // sdS holds dS
      // Row p of dS: dsa[p], dv[p].
      float dsap = 0.f, dvp = 0.f;
#pragma unroll 8
      for (int j = 0; j < N; ++j) {
        const float x = sdS[p][j];
        dsap += x * sb[s][j];
        dvp += x * sk[s][j];
      }
      sdsa[p] = dsap;
      // Here, so that the latency of the scratch loads overlaps the work above.
      for (int q = q0; q < s; ++q) {
        const float wq = sw[q][p], kq = sk[q][p], bq = sb[q][p];
#pragma unroll
        for (int i = 0; i < N; ++i) Sp[i] = Sp[i] * wq + ssa[q][i] * bq + sv[q][i] * kq;
      }
      __syncthreads();  // sdsa is complete; the reads of sdS are done
      float dwp = 0.f, dbp = 0.f, dkp = 0.f, dap = 0.f;
#pragma unroll
      for (int i = 0; i < N; ++i) {
        dwp += dS[i] * Sp[i];
        dbp += ssa[s][i] * dS[i];
        dkp += sv[s][i] * dS[i];
        dap += sdsa[i] * Sp[i];
      }
      dv[o] = dvp;
      dlw[o] = dwp * wp;
      dk[o] = dkp;
      da[o] = dap;
      db[o] = dbp;
#pragma unroll
      for (int i = 0; i < N; ++i) dS[i] = fmaf(dS[i], wp, sdsa[i] * ap);
      // The next token writes sdS only after this token's second barrier (every row read
      // done) and sdsa only after its own first barrier (every read of this sdsa done).
    }
  }
}

template <int N>
void launch_forward(int B, int T, int H, int h0, int h1, const float* r, const float* lw,
                    const float* k, const float* v, const float* a, const float* b, float* y,
                    const float* state_in, float* state_out, float* ckpt, float* sa,
                    cudaStream_t stream) {
  const int nh = h1 - h0;
  wkv7_forward_kernel<N><<<B * nh, N, 0, stream>>>(T, H, h0, nh, r, lw, k, v, a, b, y, state_in,
                                                   state_out, ckpt, sa);
  CUDA_CHECK_LAUNCH();
}

template <int N>
void launch_backward(int B, int T, int H, int h0, int h1, const float* r, const float* lw,
                     const float* k, const float* v, const float* a, const float* b,
                     const float* dy, float* dr, float* dlw, float* dk, float* dv, float* da,
                     float* db, Workspace ws, cudaStream_t stream) {
  const int nh = h1 - h0;
  wkv7_backward_kernel<N>
      <<<B * nh, N, 0, stream>>>(T, H, h0, nh, r, lw, k, v, a, b, dy, dr, dlw, dk, dv, da, db, ws);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

size_t wkv7_workspace_bytes(int B, int T, int H, int N) {
  check_args("rwkv::cuda::wkv7_workspace_bytes", B, T, H, N, 0, H);
  const size_t NN = size_t(N) * N, BH = size_t(B) * H;
  return (BH * (nseg(T) + kSeg / kKeep) * NN + BH * size_t(T) * N) * sizeof(float);
}

void wkv7_forward(int B, int T, int H, int N, int h0, int h1, const float* r, const float* lw,
                  const float* k, const float* v, const float* a, const float* b, float* y,
                  const float* state_in, float* state_out, void* workspace, cudaStream_t stream) {
  check_args("rwkv::cuda::wkv7_forward", B, T, H, N, h0, h1);
  if (B == 0 || h0 == h1) return;
  const Workspace ws = workspace ? carve(workspace, B, T, H, N) : Workspace{};
  switch (N) {
    case 16:
      launch_forward<16>(B, T, H, h0, h1, r, lw, k, v, a, b, y, state_in, state_out, ws.ckpt,
                          ws.sa, stream);
      break;
    case 32:
      launch_forward<32>(B, T, H, h0, h1, r, lw, k, v, a, b, y, state_in, state_out, ws.ckpt,
                          ws.sa, stream);
      break;
    default:
      launch_forward<64>(B, T, H, h0, h1, r, lw, k, v, a, b, y, state_in, state_out, ws.ckpt,
                          ws.sa, stream);
  }
}

void wkv7_backward(int B, int T, int H, int N, int h0, int h1, const float* r, const float* lw,
                   const float* k, const float* v, const float* a, const float* b, const float* dy,
                   float* dr, float* dlw, float* dk, float* dv, float* da, float* db,
                   void* workspace, cudaStream_t stream) {
  check_args("rwkv::cuda::wkv7_backward", B, T, H, N, h0, h1);
  if (B == 0 || h0 == h1 || T == 0) return;
  if (workspace == nullptr)
    throw Error(
        "rwkv::cuda::wkv7_backward: workspace is null (it must hold the forward's "
        "checkpoints; size: wkv7_workspace_bytes)");
  const Workspace ws = carve(workspace, B, T, H, N);
  switch (N) {
    case 16:
      launch_backward<16>(B, T, H, h0, h1, r, lw, k, v, a, b, dy, dr, dlw, dk, dv, da, db, ws,
                          stream);
      break;
    case 32:
      launch_backward<32>(B, T, H, h0, h1, r, lw, k, v, a, b, dy, dr, dlw, dk, dv, da, db, ws,
                          stream);
      break;
    default:
      launch_backward<64>(B, T, H, h0, h1, r, lw, k, v, a, b, dy, dr, dlw, dk, dv, da, db, ws,
                          stream);
  }
}

}  // namespace rwkv::cuda
