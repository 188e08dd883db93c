#include <sstream>

#include "common/error.h"
#include "kernels/cuda/cuda_check.h"
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
// Thread p keeps row p and column p of dS in registers (both updated by the same
// formula, so the copies agree bitwise; the official kernel does the same), so the
// sums over j use the row and the sums over i the column; only dsa is exchanged
// through shared memory. The states come from the forward's checkpoints: the tokens
// are walked in segments of kSeg from the last; for each segment the states
// S_{t0-1} .. S_{t0+len-1} are recomputed from its checkpoint into a per-(b, h)
// scratch (row p by thread p) and read back by columns. No division by w (the
// official kernel inverts the step, which needs w bounded away from 0), so any lw <= 0
// works.
//
// Loops that index the register arrays are unrolled fully (so the arrays stay in
// registers); the other backward loops by 4, which keeps N = 64 within 255 registers.

namespace rwkv::cuda {
namespace {

constexpr int kSeg = 16;  // tokens between checkpoints

__host__ __device__ int nseg(int T) { return (T + kSeg - 1) / kSeg; }

void check_args(const char* fn, int B, int T, int H, int N, int h0, int h1) {
  if (B < 0 || T < 0 || H < 0 || h0 < 0 || h1 > H || h0 > h1) {
    std::ostringstream msg;
    msg << fn << ": bad shape B=" << B << " T=" << T << " H=" << H << " or head range [" << h0
        << ", " << h1 << ")";
    throw Error(msg.str());
  }
  if (N != 16 && N != 32 && N != 64) {
    std::ostringstream msg;
    msg << fn << ": head size N=" << N << " is not supported (16, 32 or 64)";
    throw Error(msg.str());
  }
}

// Workspace: ckpt [B, H, nseg, N, N] (element S[i][j] at j * N + i), then scratch
// [B, H, kSeg + 1, N, N] (slot s holds S_{t0+s-1}, element S[i][j] at
// (s * N + i) * N + j).
struct Workspace {
  float *ckpt, *scratch;
};

Workspace carve(void* ws, int B, int T, int H, int N) {
  const size_t NN = size_t(N) * N, BH = size_t(B) * H;
  float* base = static_cast<float*>(ws);
  return {base, base + BH * nseg(T) * NN};
}

template <int N>
__global__ void __launch_bounds__(N)
    wkv7_forward_kernel(int T, int H, int h0, int nh, const float* __restrict__ r,
                        const float* __restrict__ lw, const float* __restrict__ k,
                        const float* __restrict__ v, const float* __restrict__ a,
                        const float* __restrict__ b, float* __restrict__ y,
                        const float* __restrict__ state_in, float* __restrict__ state_out,
                        float* __restrict__ ckpt) {
  constexpr size_t NN = size_t(N) * N;
  const int bi = blockIdx.x / nh, h = h0 + blockIdx.x % nh, i = threadIdx.x;
  const size_t C = size_t(H) * N, bh = size_t(bi) * H + h;
  __shared__ float sr[N], sw[N], sk[N], sa[N], sb[N];
  float S[N];  // S[i][j]
#pragma unroll
  for (int j = 0; j < N; ++j) S[j] = state_in ? state_in[bh * NN + i * N + j] : 0.f;
  float* ck = ckpt ? ckpt + bh * nseg(T) * NN + i : nullptr;
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
  // The inputs of one segment, [kSeg, N] each (sw = exp(lw)); ssa[s] = S_{t-1} a_t of
  // its tokens; sdsa = dsa of the current token.
  __shared__ float sr[kSeg][N], sw[kSeg][N], sk[kSeg][N], sv[kSeg][N], sa[kSeg][N], sb[kSeg][N],
      sdy[kSeg][N], ssa[kSeg][N], sdsa[N];
  const float* ck = ws.ckpt + bh * nseg(T) * NN;
  float* sc = ws.scratch + bh * (kSeg + 1) * NN;
  float dSr[N], dSc[N];  // dS[p][j], dS[i][p]
#pragma unroll
  for (int j = 0; j < N; ++j) dSr[j] = dSc[j] = 0.f;
  for (int sg = nseg(T) - 1; sg >= 0; --sg) {
    const int t0 = sg * kSeg, len = min(kSeg, T - t0);
    __syncthreads();  // the previous segment's reads of shared memory and scratch are done
    for (int s = 0; s < len; ++s) {
      const size_t o = (size_t(bi) * T + t0 + s) * C + size_t(h) * N + p;
      sr[s][p] = r[o];
      sw[s][p] = expf(lw[o]);
      sk[s][p] = k[o];
      sv[s][p] = v[o];
      sa[s][p] = a[o];
      sb[s][p] = b[o];
      sdy[s][p] = dy[o];
    }
    float* row = sc + size_t(p) * N;  // row p of slot s at row[s * NN + j]
#pragma unroll
    for (int j = 0; j < N; ++j) row[j] = ck[size_t(sg) * NN + size_t(j) * N + p];
    __syncthreads();
    // Row p of S_{t0+s} from S_{t0+s-1}, exactly as the forward.
    for (int s = 0; s < len; ++s) {
      const float* src = row + size_t(s) * NN;
      float* dst = row + size_t(s + 1) * NN;
      float sap = 0.f;
#pragma unroll 4
      for (int j = 0; j < N; ++j) sap += src[j] * sa[s][j];
      ssa[s][p] = sap;
      const float vp = sv[s][p];
#pragma unroll 4
      for (int j = 0; j < N; ++j) dst[j] = src[j] * sw[s][j] + sap * sb[s][j] + vp * sk[s][j];
    }
    __syncthreads();  // every row of the scratch and ssa are written
    for (int s = len - 1; s >= 0; --s) {
      const float rp = sr[s][p], wp = sw[s][p], ap = sa[s][p], dyp = sdy[s][p];
      const float* Sprev = sc + size_t(s) * NN + p;  // S_{t-1}[i][p] at Sprev[i * N]
      const float* Scur = Sprev + NN;                // S_t[i][p] at Scur[i * N]
#pragma unroll
      for (int j = 0; j < N; ++j) dSr[j] = fmaf(dyp, sr[s][j], dSr[j]);
#pragma unroll
      for (int i = 0; i < N; ++i) dSc[i] = fmaf(sdy[s][i], rp, dSc[i]);
      float drp = 0.f, dsap = 0.f, dvp = 0.f;
#pragma unroll 4
      for (int i = 0; i < N; ++i) drp += sdy[s][i] * Scur[i * N];
#pragma unroll
      for (int j = 0; j < N; ++j) {
        dsap += dSr[j] * sb[s][j];
        dvp += dSr[j] * sk[s][j];
      }
      sdsa[p] = dsap;
      __syncthreads();
      float dwp = 0.f, dbp = 0.f, dkp = 0.f, dap = 0.f;
#pragma unroll
      for (int i = 0; i < N; ++i) {
        const float S = Sprev[i * N];
        dwp += dSc[i] * S;
        dbp += ssa[s][i] * dSc[i];
        dkp += sv[s][i] * dSc[i];
        dap += sdsa[i] * S;
      }
      const size_t o = (size_t(bi) * T + t0 + s) * C + size_t(h) * N + p;
      dr[o] = drp;
      dlw[o] = dwp * wp;
      dk[o] = dkp;
      dv[o] = dvp;
      da[o] = dap;
      db[o] = dbp;
#pragma unroll
      for (int j = 0; j < N; ++j) dSr[j] = fmaf(dSr[j], sw[s][j], dsap * sa[s][j]);
#pragma unroll
      for (int i = 0; i < N; ++i) dSc[i] = fmaf(dSc[i], wp, sdsa[i] * ap);
      __syncthreads();  // sdsa is rewritten by the next token
    }
  }
}

template <int N>
void launch_forward(int B, int T, int H, int h0, int h1, const float* r, const float* lw,
                    const float* k, const float* v, const float* a, const float* b, float* y,
                    const float* state_in, float* state_out, float* ckpt, cudaStream_t stream) {
  const int nh = h1 - h0;
  wkv7_forward_kernel<N>
      <<<B * nh, N, 0, stream>>>(T, H, h0, nh, r, lw, k, v, a, b, y, state_in, state_out, ckpt);
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
  return BH * (nseg(T) + kSeg + 1) * NN * sizeof(float);
}

void wkv7_forward(int B, int T, int H, int N, int h0, int h1, const float* r, const float* lw,
                  const float* k, const float* v, const float* a, const float* b, float* y,
                  const float* state_in, float* state_out, void* workspace, cudaStream_t stream) {
  check_args("rwkv::cuda::wkv7_forward", B, T, H, N, h0, h1);
  if (B == 0 || h0 == h1) return;
  float* ckpt = workspace ? carve(workspace, B, T, H, N).ckpt : nullptr;
  switch (N) {
    case 16:
      launch_forward<16>(B, T, H, h0, h1, r, lw, k, v, a, b, y, state_in, state_out, ckpt, stream);
      break;
    case 32:
      launch_forward<32>(B, T, H, h0, h1, r, lw, k, v, a, b, y, state_in, state_out, ckpt, stream);
      break;
    default:
      launch_forward<64>(B, T, H, h0, h1, r, lw, k, v, a, b, y, state_in, state_out, ckpt, stream);
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
