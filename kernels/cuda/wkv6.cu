#include <string>
#include <type_traits>

#include "common/error.h"
#include "kernels/cuda/bf16.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/wkv6.h"
#include "kernels/cuda/wkv6_chunked_body.h"
#include "kernels/cuda/wkv_segments.h"

// The equations are those of kernels/cpu/wkv6.cpp (naive form). One block per
// (b, h), one thread per channel of the head.
//
// Forward: thread j keeps column j of the state, s[i] = S[i][j], in registers (as
// RWKV-LM RWKV-v5/cuda/wkv6_cuda.cu); r, k, exp(lw) of the token are shared.
//
// Backward: per token, with dS = dL/dS_t from the later tokens,
//   dr_t[i]  = u[i] k_t[i] (dy_t . v_t) + sum_j S_{t-1}[i][j] dy_t[j]
//   dk_t[i]  = r_t[i] u[i] (dy_t . v_t) + sum_j dS[i][j] v_t[j]
//   dv_t[j]  = (sum_i r_t[i] u[i] k_t[i]) dy_t[j] + sum_i dS[i][j] k_t[i]
//   dlw_t[i] = w_t[i] sum_j dS[i][j] S_{t-1}[i][j]
//   dS      <- diag(w_t) dS + r_t dy_t^T
// Thread p keeps both row p and column p of dS in registers (updated by the same
// formula, so the copies agree bitwise), which makes every sum above local to one
// thread: no reduction across threads. S_{t-1} comes from the forward's checkpoints:
// the tokens are walked in segments of kSeg from the last; for each segment the states
// S_{t-1} of its tokens are recomputed from the checkpoint into a per-(b, h) scratch
// (row p by thread p, so no synchronisation) and read back in reverse order. This keeps
// dlw exact for any decay (no division by w, no difference of large sums).
//
// Loops that index the register arrays are unrolled fully (so the arrays stay in
// registers); the other backward loops by 4, which keeps N = 64 within 255 registers.

namespace rwkv::cuda {
namespace {

using wkv_detail::check_args;
using wkv_detail::check_splits;
using wkv_detail::kSeg;
using wkv_detail::launch_large_shared;
using wkv_detail::nseg;
using wkv_detail::with_instance;

// Workspace: ckpt [B, H, nseg, N, N] (element S[i][j] at i * N + j), scratch
// [B, H, kSeg, N, N] (slot s holds S_{t0+s-1}, element S[p][j] at (s * N + j) * N + p),
// partial [B, H, N] (du of one batch row).
struct Workspace {
  float *ckpt, *scratch, *partial;
};

Workspace carve(void* ws, int B, int T, int H, int N) {
  const size_t NN = size_t(N) * N, BH = size_t(B) * H;
  float* base = static_cast<float*>(ws);
  return {base, base + BH * nseg(T) * NN, base + BH * (nseg(T) + kSeg) * NN};
}

// E: the per-token tensors' element type, float or Bf16 (kernels/cuda/bf16.h): values are
// widened to fp32 as they are read and rounded as they are written. The two kernels below
// run it.
template <int N, typename E>
__device__ __forceinline__ void wkv6_forward_body(int T, int H, int h0, int nh,
                                                  const E* __restrict__ r, const E* __restrict__ k,
                                                  const E* __restrict__ v, const E* __restrict__ lw,
                                                  const float* __restrict__ u, E* __restrict__ y,
                                                  const float* __restrict__ state_in,
                                                  float* __restrict__ state_out,
                                                  float* __restrict__ ckpt) {
  constexpr size_t NN = size_t(N) * N;
  const int b = blockIdx.x / nh, h = h0 + blockIdx.x % nh, j = threadIdx.x;
  const size_t C = size_t(H) * N, bh = size_t(b) * H + h;
  __shared__ float sr[N], sk[N], sw[N], su[N];
  float s[N];
#pragma unroll
  for (int i = 0; i < N; ++i) s[i] = state_in ? state_in[bh * NN + i * N + j] : 0.f;
  su[j] = u[h * N + j];  // read after the first __syncthreads of the loop
  float* ck = ckpt ? ckpt + bh * nseg(T) * NN + j : nullptr;
  // Each token's inputs are loaded one token ahead, so that their latency overlaps the
  // arithmetic of the token before.
  const size_t o0 = size_t(b) * T * C + size_t(h) * N + j;  // token 0, channel j
  float nr = 0.f, nk = 0.f, nlw = 0.f, nv = 0.f;            // the next token's
  const auto load_next = [&](size_t o) {
    nr = to_float(r[o]);
    nk = to_float(k[o]);
    nlw = to_float(lw[o]);
    nv = to_float(v[o]);
  };
  if (T > 0) load_next(o0);
  for (int t = 0; t < T; ++t) {
    const size_t o = o0 + size_t(t) * C;
    const float xr = nr, xk = nk, xlw = nlw, vj = nv;
    if (t + 1 < T) load_next(o + C);
    if (ck && t % kSeg == 0) {
      float* c = ck + size_t(t / kSeg) * NN;
#pragma unroll
      for (int i = 0; i < N; ++i) c[i * N] = s[i];
    }
    __syncthreads();  // the previous token's reads of the shared arrays are done
    sr[j] = xr;
    sk[j] = xk;
    sw[j] = expf(xlw);
    __syncthreads();
    float yj = 0.f;
#pragma unroll
    for (int i = 0; i < N; ++i) {
      yj += sr[i] * (su[i] * sk[i] * vj + s[i]);
      s[i] = sw[i] * s[i] + sk[i] * vj;
    }
    y[o] = from_float<E>(yj);
  }
  if (state_out) {
#pragma unroll
    for (int i = 0; i < N; ++i) state_out[bh * NN + i * N + j] = s[i];
  }
}

template <int N>
__global__ void __launch_bounds__(N)
    wkv6_forward_kernel(int T, int H, int h0, int nh, const float* __restrict__ r,
                        const float* __restrict__ k, const float* __restrict__ v,
                        const float* __restrict__ lw, const float* __restrict__ u,
                        float* __restrict__ y, const float* __restrict__ state_in,
                        float* __restrict__ state_out, float* __restrict__ ckpt) {
  wkv6_forward_body<N>(T, H, h0, nh, r, k, v, lw, u, y, state_in, state_out, ckpt);
}

// The bf16 instance may take as many registers as one block per SM allows: with the fp32
// kernel's bounds ptxas held it at N 64 to 128 registers and spilled 8 bytes (sm_80).
template <int N>
__global__ void __launch_bounds__(N, 1)
    wkv6_forward_kernel_bf16(int T, int H, int h0, int nh, const Bf16* __restrict__ r,
                             const Bf16* __restrict__ k, const Bf16* __restrict__ v,
                             const Bf16* __restrict__ lw, const float* __restrict__ u,
                             Bf16* __restrict__ y, const float* __restrict__ state_in,
                             float* __restrict__ state_out, float* __restrict__ ckpt) {
  wkv6_forward_body<N>(T, H, h0, nh, r, k, v, lw, u, y, state_in, state_out, ckpt);
}

template <int N, typename E>
__global__ void __launch_bounds__(N)
    wkv6_backward_kernel(int T, int H, int h0, int nh, const E* __restrict__ r,
                         const E* __restrict__ k, const E* __restrict__ v, const E* __restrict__ lw,
                         const float* __restrict__ u, const E* __restrict__ dy, E* __restrict__ dr,
                         E* __restrict__ dk, E* __restrict__ dv, E* __restrict__ dlw,
                         Workspace ws) {
  constexpr size_t NN = size_t(N) * N;
  const int b = blockIdx.x / nh, h = h0 + blockIdx.x % nh, p = threadIdx.x;
  const size_t C = size_t(H) * N, bh = size_t(b) * H + h;
  // The inputs of one segment, [kSeg, N] each; sw = exp(lw).
  __shared__ float sr[kSeg][N], sk[kSeg][N], sv[kSeg][N], sw[kSeg][N], sdy[kSeg][N], su[N];
  const float up = u[h * N + p];
  su[p] = up;
  const float* ck = ws.ckpt + bh * nseg(T) * NN;
  float* sc = ws.scratch + bh * kSeg * NN + p;  // S_{t0+s-1}[p][j] at sc[(s * N + j) * N]
  float dSr[N], dSc[N];                         // dS[p][j], dS[i][p]
#pragma unroll
  for (int i = 0; i < N; ++i) dSr[i] = dSc[i] = 0.f;
  float du = 0.f;
  for (int sg = nseg(T) - 1; sg >= 0; --sg) {
    const int t0 = sg * kSeg, len = min(kSeg, T - t0);
    __syncthreads();  // the previous segment's reads of the shared arrays are done
    for (int s = 0; s < len; ++s) {
      const size_t o = (size_t(b) * T + t0 + s) * C + size_t(h) * N + p;
      sr[s][p] = to_float(r[o]);
      sk[s][p] = to_float(k[o]);
      sv[s][p] = to_float(v[o]);
      sw[s][p] = expf(to_float(lw[o]));
      sdy[s][p] = to_float(dy[o]);
    }
#pragma unroll
    for (int j = 0; j < N; ++j) sc[j * N] = ck[size_t(sg) * NN + size_t(p) * N + j];
    __syncthreads();
    // Row p of S_{t0+s} = w_p S_{t0+s-1}[p][:] + k_p v^T.
    for (int s = 0; s + 1 < len; ++s) {
      const float wp = sw[s][p], kp = sk[s][p];
      const float* src = sc + size_t(s) * NN;
      float* dst = sc + size_t(s + 1) * NN;
#pragma unroll
      for (int j = 0; j < N; ++j) dst[j * N] = wp * src[j * N] + kp * sv[s][j];
    }
    for (int s = len - 1; s >= 0; --s) {
      const size_t o = (size_t(b) * T + t0 + s) * C + size_t(h) * N + p;
      const float rp = sr[s][p], kp = sk[s][p], wp = sw[s][p], dyp = sdy[s][p];
      const float* Sp = sc + size_t(s) * NN;  // S_{t-1}[p][j] at Sp[j * N]
      float dyv = 0.f, ruk = 0.f;
#pragma unroll 4
      for (int j = 0; j < N; ++j) dyv += sdy[s][j] * sv[s][j];
#pragma unroll 4
      for (int i = 0; i < N; ++i) ruk += sr[s][i] * su[i] * sk[s][i];
      float dvp = ruk * dyp, gS = 0.f, dSv = 0.f, dSS = 0.f;
#pragma unroll
      for (int i = 0; i < N; ++i) dvp += dSc[i] * sk[s][i];
#pragma unroll
      for (int j = 0; j < N; ++j) {
        const float S = Sp[j * N];
        gS += sdy[s][j] * S;
        dSv += dSr[j] * sv[s][j];
        dSS += dSr[j] * S;
      }
      dr[o] = from_float<E>(up * kp * dyv + gS);
      dk[o] = from_float<E>(rp * up * dyv + dSv);
      dv[o] = from_float<E>(dvp);
      dlw[o] = from_float<E>(wp * dSS);
      du += rp * kp * dyv;
#pragma unroll
      for (int j = 0; j < N; ++j) dSr[j] = fmaf(wp, dSr[j], rp * sdy[s][j]);
#pragma unroll
      for (int i = 0; i < N; ++i) dSc[i] = fmaf(sw[s][i], dSc[i], sr[s][i] * dyp);
    }
  }
  ws.partial[bh * N + p] = du;
}

// du[h][p] = sum over b (increasing) of the per-row partials, heads [h0, h1).
__global__ void wkv6_reduce_kernel(int B, int H, int N, int h0, int nh, const float* partial,
                                   float* du) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= nh * N) return;
  const int h = h0 + i / N, p = i % N;
  float s = 0.f;
  for (int b = 0; b < B; ++b) s += partial[(size_t(b) * H + h) * N + p];
  du[size_t(h) * N + p] = s;
}

template <int N, typename E>
void launch_forward(int B, int T, int H, int h0, int h1, const E* r, const E* k, const E* v,
                    const E* lw, const float* u, E* y, const float* state_in, float* state_out,
                    float* ckpt, cudaStream_t stream) {
  const int nh = h1 - h0;
  if constexpr (std::is_same_v<E, float>)
    wkv6_forward_kernel<N>
        <<<B * nh, N, 0, stream>>>(T, H, h0, nh, r, k, v, lw, u, y, state_in, state_out, ckpt);
  else
    wkv6_forward_kernel_bf16<N>
        <<<B * nh, N, 0, stream>>>(T, H, h0, nh, r, k, v, lw, u, y, state_in, state_out, ckpt);
  CUDA_CHECK_LAUNCH();
}

template <int N, typename E>
void launch_backward(int B, int T, int H, int h0, int h1, const E* r, const E* k, const E* v,
                     const E* lw, const float* u, const E* dy, E* dr, E* dk, E* dv, E* dlw,
                     Workspace ws, cudaStream_t stream) {
  const int nh = h1 - h0;
  wkv6_backward_kernel<N, E>
      <<<B * nh, N, 0, stream>>>(T, H, h0, nh, r, k, v, lw, u, dy, dr, dk, dv, dlw, ws);
  CUDA_CHECK_LAUNCH();
}

// The chunked kernels (kernels/cuda/wkv6_chunked_body.h); the scan is WKV7's without
// its delta term, asking for registers rather than occupancy as there.
namespace ch6 = wkv6_chunked;

// E: the per-token tensors' element type, float or Bf16 (kernels/cuda/bf16.h).
template <int N, typename E>
__global__ void __launch_bounds__(ch6::kThreads) wkv6_chunk_prep_kernel(ch6::Args<E> x) {
  __shared__ ch6::PrepShared<N> sh;
  ch6::prep_body<N>(DeviceBlock{}, int(blockIdx.x), sh, x);
}

template <int N, typename E>
__global__ void __launch_bounds__(ch6::kThreads) wkv6_chunk_bprep_kernel(ch6::Args<E> x) {
  __shared__ ch6::PrepShared<N> sh;
  ch6::bprep_body<N>(DeviceBlock{}, int(blockIdx.x), sh, x);
}

template <int N, int G, typename E>
__global__ void __launch_bounds__(ch6::kThreads, 1) wkv6_chunk_scan_kernel(ch6::ScanArgs<E> x) {
  __shared__ wkv7_chunked::ScanShared<N, N / G> sh;
  wkv7_chunked::scan_body<N, N / G, false>(DeviceBlock{}, int(blockIdx.x), sh, x);
}

template <int N, typename E>
__global__ void __launch_bounds__(ch6::kThreads) wkv6_chunk_grad_kernel(ch6::Args<E> x) {
  extern __shared__ __align__(32) float4 grad6_smem[];  // as aligned as the struct (the tiles)
  static_assert(alignof(ch6::GradShared<N>) <= 32, "the shared memory's alignment");
  auto& sh = *reinterpret_cast<ch6::GradShared<N>*>(grad6_smem);
  ch6::grad_body<N>(DeviceBlock{}, int(blockIdx.x), sh, x);
}

template <int N, typename E>
__global__ void wkv6_chunk_sum_du_kernel(ch6::Args<E> x) {
  const int e = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (e < x.nh * N) ch6::sum_du<N>(x, e / N, e % N);
}

}  // namespace

size_t wkv6_workspace_bytes(int B, int T, int H, int N) {
  check_args("rwkv::cuda::wkv6_workspace_bytes", B, T, H, N, 0, H);
  const size_t NN = size_t(N) * N, BH = size_t(B) * H;
  return (BH * (nseg(T) + kSeg) * NN + BH * N) * sizeof(float);
}

namespace {

template <typename E>
void forward_sequential(int B, int T, int H, int N, int h0, int h1, const E* r, const E* k,
                        const E* v, const E* lw, const float* u, E* y, const float* state_in,
                        float* state_out, void* workspace, cudaStream_t stream) {
  check_args("rwkv::cuda::wkv6_forward", B, T, H, N, h0, h1);
  if (B == 0 || h0 == h1) return;
  float* ckpt = workspace ? carve(workspace, B, T, H, N).ckpt : nullptr;
  switch (N) {
    case 16:
      launch_forward<16, E>(B, T, H, h0, h1, r, k, v, lw, u, y, state_in, state_out, ckpt, stream);
      break;
    case 32:
      launch_forward<32, E>(B, T, H, h0, h1, r, k, v, lw, u, y, state_in, state_out, ckpt, stream);
      break;
    default:
      launch_forward<64, E>(B, T, H, h0, h1, r, k, v, lw, u, y, state_in, state_out, ckpt, stream);
  }
}

template <typename E>
void backward_sequential(int B, int T, int H, int N, int h0, int h1, const E* r, const E* k,
                         const E* v, const E* lw, const float* u, const E* dy, E* dr, E* dk, E* dv,
                         E* dlw, float* du, void* workspace, cudaStream_t stream) {
  check_args("rwkv::cuda::wkv6_backward", B, T, H, N, h0, h1);
  const int nh = h1 - h0;
  if (nh == 0) return;
  if (B > 0) {
    if (workspace == nullptr)
      throw Error(
          "rwkv::cuda::wkv6_backward: workspace is null (it must hold the forward's "
          "checkpoints; size: wkv6_workspace_bytes)");
    const Workspace ws = carve(workspace, B, T, H, N);
    switch (N) {
      case 16:
        launch_backward<16, E>(B, T, H, h0, h1, r, k, v, lw, u, dy, dr, dk, dv, dlw, ws, stream);
        break;
      case 32:
        launch_backward<32, E>(B, T, H, h0, h1, r, k, v, lw, u, dy, dr, dk, dv, dlw, ws, stream);
        break;
      default:
        launch_backward<64, E>(B, T, H, h0, h1, r, k, v, lw, u, dy, dr, dk, dv, dlw, ws, stream);
    }
  }
  // With B = 0 this writes zeros (the partials are not read).
  const float* partial = workspace ? carve(workspace, B, T, H, N).partial : nullptr;
  const int n = nh * N;
  wkv6_reduce_kernel<<<(n + 127) / 128, 128, 0, stream>>>(B, H, N, h0, nh, partial, du);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void wkv6_forward(int B, int T, int H, int N, int h0, int h1, const float* r, const float* k,
                  const float* v, const float* lw, const float* u, float* y, const float* state_in,
                  float* state_out, void* workspace, cudaStream_t stream) {
  forward_sequential(B, T, H, N, h0, h1, r, k, v, lw, u, y, state_in, state_out, workspace, stream);
}

void wkv6_forward(int B, int T, int H, int N, int h0, int h1, const __nv_bfloat16* r,
                  const __nv_bfloat16* k, const __nv_bfloat16* v, const __nv_bfloat16* lw,
                  const float* u, __nv_bfloat16* y, const float* state_in, float* state_out,
                  void* workspace, cudaStream_t stream) {
  forward_sequential(B, T, H, N, h0, h1, as_bf16(r), as_bf16(k), as_bf16(v), as_bf16(lw), u,
                     as_bf16(y), state_in, state_out, workspace, stream);
}

void wkv6_backward(int B, int T, int H, int N, int h0, int h1, const float* r, const float* k,
                   const float* v, const float* lw, const float* u, const float* dy, float* dr,
                   float* dk, float* dv, float* dlw, float* du, void* workspace,
                   cudaStream_t stream) {
  backward_sequential(B, T, H, N, h0, h1, r, k, v, lw, u, dy, dr, dk, dv, dlw, du, workspace,
                      stream);
}

void wkv6_backward(int B, int T, int H, int N, int h0, int h1, const __nv_bfloat16* r,
                   const __nv_bfloat16* k, const __nv_bfloat16* v, const __nv_bfloat16* lw,
                   const float* u, const __nv_bfloat16* dy, __nv_bfloat16* dr, __nv_bfloat16* dk,
                   __nv_bfloat16* dv, __nv_bfloat16* dlw, float* du, void* workspace,
                   cudaStream_t stream) {
  backward_sequential(B, T, H, N, h0, h1, as_bf16(r), as_bf16(k), as_bf16(v), as_bf16(lw), u,
                      as_bf16(dy), as_bf16(dr), as_bf16(dk), as_bf16(dv), as_bf16(dlw), du,
                      workspace, stream);
}

size_t wkv6_chunked_scratch_bytes(int B, int T, int H, int nh, int N) {
  check_args("rwkv::cuda::wkv6_chunked_scratch_bytes", B, T, H, N, 0, nh);
  const size_t nc = ch6::chunks(T), bn = size_t(B) * nh * nc;
  return (bn * ch6::chunk_floats(N) + size_t(B) * H * nc * N * N + bn * N) * sizeof(float);
}

namespace {

// The chunked kernels' inputs and buffers (the scratch carved as wkv6.h says).
template <typename E>
ch6::Args<E> chunked_args(int B, int T, int H, int N, int h0, int h1, const E* r, const E* k,
                          const E* v, const E* lw, const float* u, void* workspace, void* scratch) {
  ch6::Args<E> x{};
  x.B = B;
  x.T = T;
  x.H = H;
  x.h0 = h0;
  x.nh = h1 - h0;
  x.r = r;
  x.k = k;
  x.v = v;
  x.lw = lw;
  x.u = u;
  x.ckpt = workspace ? carve(workspace, B, T, H, N).ckpt : nullptr;
  const size_t nc = ch6::chunks(T), bn = size_t(B) * x.nh * nc;
  float* base = static_cast<float*>(scratch);
  x.prep = base;
  x.dS = base ? base + bn * ch6::chunk_floats(N) : nullptr;
  x.dup = base ? x.dS + size_t(B) * H * nc * N * N : nullptr;
  return x;
}

template <typename E>
void forward_chunked(int B, int T, int H, int N, int h0, int h1, const E* r, const E* k, const E* v,
                     const E* lw, const float* u, E* y, const float* state_in, float* state_out,
                     void* workspace, void* scratch, int splits, cudaStream_t stream) {
  const char* fn = "rwkv::cuda::wkv6_forward_chunked";
  check_args(fn, B, T, H, N, h0, h1);
  check_splits(fn, N, splits);
  if (B == 0 || h0 == h1) return;
  if (scratch == nullptr && T > 0)
    throw Error(std::string(fn) + ": scratch is null (size: wkv6_chunked_scratch_bytes)");
  ch6::Args<E> x = chunked_args(B, T, H, N, h0, h1, r, k, v, lw, u, workspace, scratch);
  x.y = y;
  x.state_in = state_in;
  x.state_out = state_out;
  const int nh = h1 - h0;
  with_instance(N, splits, [&](auto n, auto g) {
    if (T > 0) {
      wkv6_chunk_prep_kernel<n(), E><<<B * nh * ch6::chunks(T), ch6::kThreads, 0, stream>>>(x);
      CUDA_CHECK_LAUNCH();
    }
    wkv6_chunk_scan_kernel<n(), g(), E>
        <<<B * nh * g(), ch6::kThreads, 0, stream>>>(ch6::forward_scan_args(x));
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

void wkv6_forward_chunked(int B, int T, int H, int N, int h0, int h1, const float* r,
                          const float* k, const float* v, const float* lw, const float* u, float* y,
                          const float* state_in, float* state_out, void* workspace, void* scratch,
                          int splits, cudaStream_t stream) {
  forward_chunked(B, T, H, N, h0, h1, r, k, v, lw, u, y, state_in, state_out, workspace, scratch,
                  splits, stream);
}

void wkv6_forward_chunked(int B, int T, int H, int N, int h0, int h1, const __nv_bfloat16* r,
                          const __nv_bfloat16* k, const __nv_bfloat16* v, const __nv_bfloat16* lw,
                          const float* u, __nv_bfloat16* y, const float* state_in, float* state_out,
                          void* workspace, void* scratch, int splits, cudaStream_t stream) {
  forward_chunked(B, T, H, N, h0, h1, as_bf16(r), as_bf16(k), as_bf16(v), as_bf16(lw), u,
                  as_bf16(y), state_in, state_out, workspace, scratch, splits, stream);
}

size_t wkv6_chunked_shared_bytes(int N) {
  check_args("rwkv::cuda::wkv6_chunked_shared_bytes", 1, 1, 1, N, 0, 1);
  size_t bytes = 0;
  with_instance(N, 1, [&](auto n, auto) { bytes = sizeof(ch6::GradShared<n()>); });
  return bytes;
}

namespace {

template <typename E>
void backward_chunked(int B, int T, int H, int N, int h0, int h1, const E* r, const E* k,
                      const E* v, const E* lw, const float* u, const E* dy, E* dr, E* dk, E* dv,
                      E* dlw, float* du, void* workspace, void* scratch, int splits,
                      cudaStream_t stream) {
  const char* fn = "rwkv::cuda::wkv6_backward_chunked";
  check_args(fn, B, T, H, N, h0, h1);
  check_splits(fn, N, splits);
  const int nh = h1 - h0;
  if (nh == 0) return;
  const bool work = B > 0 && T > 0;
  if (work && workspace == nullptr)
    throw Error(std::string(fn) +
                ": workspace is null (it must hold the forward's checkpoints; size: "
                "wkv6_workspace_bytes)");
  if (work && scratch == nullptr)
    throw Error(std::string(fn) + ": scratch is null (size: wkv6_chunked_scratch_bytes)");
  ch6::Args<E> x = chunked_args(B, T, H, N, h0, h1, r, k, v, lw, u, workspace, scratch);
  x.dy = dy;
  x.dr = dr;
  x.dk = dk;
  x.dv = dv;
  x.dlw = dlw;
  x.du = du;
  with_instance(N, splits, [&](auto n, auto g) {
    if (work) {
      const int blocks = B * nh * ch6::chunks(T);
      wkv6_chunk_bprep_kernel<n(), E><<<blocks, ch6::kThreads, 0, stream>>>(x);
      CUDA_CHECK_LAUNCH();
      wkv6_chunk_scan_kernel<n(), g(), E>
          <<<B * nh * g(), ch6::kThreads, 0, stream>>>(ch6::backward_scan_args(x));
      CUDA_CHECK_LAUNCH();
      launch_large_shared(wkv6_chunk_grad_kernel<n(), E>, blocks, ch6::kThreads,
                          sizeof(ch6::GradShared<n()>), stream, fn, n(), x);
    }
    // With no tokens this writes zeros (no partial is read).
    wkv6_chunk_sum_du_kernel<n(), E><<<(nh * n() + 127) / 128, 128, 0, stream>>>(x);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace

void wkv6_backward_chunked(int B, int T, int H, int N, int h0, int h1, const float* r,
                           const float* k, const float* v, const float* lw, const float* u,
                           const float* dy, float* dr, float* dk, float* dv, float* dlw, float* du,
                           void* workspace, void* scratch, int splits, cudaStream_t stream) {
  backward_chunked(B, T, H, N, h0, h1, r, k, v, lw, u, dy, dr, dk, dv, dlw, du, workspace, scratch,
                   splits, stream);
}

void wkv6_backward_chunked(int B, int T, int H, int N, int h0, int h1, const __nv_bfloat16* r,
                           const __nv_bfloat16* k, const __nv_bfloat16* v, const __nv_bfloat16* lw,
                           const float* u, const __nv_bfloat16* dy, __nv_bfloat16* dr,
                           __nv_bfloat16* dk, __nv_bfloat16* dv, __nv_bfloat16* dlw, float* du,
                           void* workspace, void* scratch, int splits, cudaStream_t stream) {
  backward_chunked(B, T, H, N, h0, h1, as_bf16(r), as_bf16(k), as_bf16(v), as_bf16(lw), u,
                   as_bf16(dy), as_bf16(dr), as_bf16(dk), as_bf16(dv), as_bf16(dlw), du, workspace,
                   scratch, splits, stream);
}

}  // namespace rwkv::cuda
