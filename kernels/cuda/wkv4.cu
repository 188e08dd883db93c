#include <sstream>

#include "common/error.h"
#include "kernels/cuda/bf16.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/wkv4.h"

// The equations are those of kernels/cpu/wkv4.cpp (stable form of RWKV-LM
// RWKV-v4neo/cuda/wkv_cuda.cu); each thread runs the CPU loop body for one channel of
// one batch row. Threads of a warp take consecutive channels, so every [B, T, C] access
// of a step is coalesced.

namespace rwkv::cuda {
namespace {

constexpr float kEmptyPP = -1e38f;  // pp of the empty state: e^pp = 0, pp - w finite
constexpr int kSeg = 16;            // tokens between backward checkpoints
constexpr int kThreads = 128;

void check_args(const char* fn, int B, int T, int C, int c0, int c1) {
  if (B < 0 || T < 0 || C < 0 || c0 < 0 || c1 > C || c0 > c1) {
    std::ostringstream msg;
    msg << fn << ": bad shape B=" << B << " T=" << T << " C=" << C << " or channel range [" << c0
        << ", " << c1 << ")";
    throw Error(msg.str());
  }
}

__host__ __device__ int nseg(int T) { return (T + kSeg - 1) / kSeg; }

// E: the per-token tensors' element type, float or Bf16 (kernels/cuda/bf16.h): values are
// widened to fp32 as they are read and rounded as they are written.
template <typename E>
__global__ void wkv4_forward_kernel(int B, int T, int C, int c0, int nc,
                                    const float* __restrict__ w, const float* __restrict__ u,
                                    const E* __restrict__ k, const E* __restrict__ v,
                                    E* __restrict__ y, const float* __restrict__ state_in,
                                    float* __restrict__ state_out) {
  const int tid = blockIdx.x * blockDim.x + threadIdx.x;
  if (tid >= B * nc) return;
  const int b = tid / nc, c = c0 + tid % nc;
  const float ww = w[c], uu = u[c];
  const size_t base = size_t(b) * T * C + c;  // token t at base + t * C
  float aa = 0.f, bb = 0.f, pp = kEmptyPP;
  if (state_in) {
    const float* s = state_in + (size_t(b) * C + c) * 3;
    aa = s[0];
    bb = s[1];
    pp = s[2];
  }
  for (int t = 0; t < T; ++t) {
    const size_t o = base + size_t(t) * C;
    const float kk = to_float(k[o]), vv = to_float(v[o]);
    const float uk = uu + kk;
    float p = fmaxf(pp, uk);
    float e1 = expf(pp - p), e2 = expf(uk - p);
    y[o] = from_float<E>((e1 * aa + e2 * vv) / (e1 * bb + e2));
    const float wd = pp - ww;
    p = fmaxf(wd, kk);
    e1 = expf(wd - p);
    e2 = expf(kk - p);
    aa = e1 * aa + e2 * vv;
    bb = e1 * bb + e2;
    pp = p;
  }
  if (state_out) {
    float* s = state_out + (size_t(b) * C + c) * 3;
    s[0] = aa;
    s[1] = bb;
    s[2] = pp;
  }
}

// One thread per (b, c), tid = b * nc + (c - c0). Pass 1 runs the forward with the
// dw, du sums (as the CPU backward), storing (aa, bb, pp) before every kSeg-th token in
// ckpt [nseg, 3, B * nc]; partial [2, B * nc] gets this row's dw, du. Pass 2 walks the
// segments from the last: it recomputes the segment's y_t, g_t, p_t from its checkpoint
// into registers (arrays indexed by unrolled constants), then runs the reverse scan of
// the CPU backward over them.
template <typename E>
__global__ void wkv4_backward_kernel(int B, int T, int C, int c0, int nc,
                                     const float* __restrict__ w, const float* __restrict__ u,
                                     const E* __restrict__ k, const E* __restrict__ v,
                                     const E* __restrict__ dy, E* __restrict__ dk,
                                     E* __restrict__ dv, float* ckpt, float* partial) {
  const int nt = B * nc;
  const int tid = blockIdx.x * blockDim.x + threadIdx.x;
  if (tid >= nt) return;
  const int b = tid / nc, c = c0 + tid % nc;
  const float ww = w[c], uu = u[c];
  const size_t base = size_t(b) * T * C + c;
  const size_t seg_stride = size_t(3) * nt;

  float aa = 0.f, bb = 0.f, pp = kEmptyPP, ga = 0.f, gb = 0.f, sw = 0.f, su = 0.f;
  for (int t = 0; t < T; ++t) {
    if (t % kSeg == 0) {
      float* s = ckpt + size_t(t / kSeg) * seg_stride + tid;
      s[0] = aa;
      s[nt] = bb;
      s[2 * nt] = pp;
    }
    const size_t o = base + size_t(t) * C;
    const float kk = to_float(k[o]), vv = to_float(v[o]);
    const float uk = uu + kk;
    float p = fmaxf(pp, uk);
    float e1 = expf(pp - p), e2 = expf(uk - p);
    const float den = e1 * bb + e2;
    const float yy = (e1 * aa + e2 * vv) / den;
    const float g = to_float(dy[o]) / den;
    su += g * e2 * (vv - yy);
    sw += g * e1 * (yy * gb - ga);
    const float wd = pp - ww;
    p = fmaxf(wd, kk);
    e1 = expf(wd - p);
    e2 = expf(kk - p);
    ga = e1 * (ga + aa);
    gb = e1 * (gb + bb);
    aa = e1 * aa + e2 * vv;
    bb = e1 * bb + e2;
    pp = p;
  }
  partial[tid] = sw;
  partial[nt + tid] = su;

  // Reverse scan state: A_t, Bq_t and their log scale (ra, rb, rp).
  float ra = 0.f, rb = 0.f, rp = kEmptyPP;
  for (int sg = nseg(T) - 1; sg >= 0; --sg) {
    const int t0 = sg * kSeg, len = min(kSeg, T - t0);
    const float* s = ckpt + size_t(sg) * seg_stride + tid;
    aa = s[0];
    bb = s[nt];
    pp = s[2 * nt];
    float ys[kSeg], gs[kSeg], ps[kSeg];
#pragma unroll
    for (int i = 0; i < kSeg; ++i) {
      if (i < len) {
        const size_t o = base + size_t(t0 + i) * C;
        const float kk = to_float(k[o]), vv = to_float(v[o]);
        const float uk = uu + kk;
        float p = fmaxf(pp, uk);
        float e1 = expf(pp - p), e2 = expf(uk - p);
        const float den = e1 * bb + e2;
        ys[i] = (e1 * aa + e2 * vv) / den;
        gs[i] = to_float(dy[o]) / den;
        ps[i] = p;
        const float wd = pp - ww;
        p = fmaxf(wd, kk);
        e1 = expf(wd - p);
        e2 = expf(kk - p);
        aa = e1 * aa + e2 * vv;
        bb = e1 * bb + e2;
        pp = p;
      }
    }
#pragma unroll
    for (int i = kSeg - 1; i >= 0; --i) {
      if (i < len) {
        const size_t o = base + size_t(t0 + i) * C;
        const float kk = to_float(k[o]), vv = to_float(v[o]), yy = ys[i], g = gs[i], pt = ps[i];
        const float qe = g * expf(uu + kk - pt);  // q_t e^{u+k_t}
        const float ek = expf(kk + rp);           // e^{k_t} x scale of A_t
        dk[o] = from_float<E>(qe * (vv - yy) + ek * (vv * ra - rb));
        dv[o] = from_float<E>(qe + ek * ra);
        const float wd = rp - ww;
        const float p = fmaxf(wd, -pt);
        const float e1 = expf(wd - p), e2 = expf(-pt - p) * g;
        ra = e1 * ra + e2;
        rb = e1 * rb + e2 * yy;
        rp = p;
      }
    }
  }
}

// dw[c], du[c] = sums over b of the per-row partials, b in increasing order.
__global__ void wkv4_reduce_kernel(int B, int c0, int nc, const float* partial, float* dw,
                                   float* du) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= nc) return;
  const int nt = B * nc;
  float sw = 0.f, su = 0.f;
  for (int b = 0; b < B; ++b) {
    sw += partial[b * nc + i];
    su += partial[nt + b * nc + i];
  }
  dw[c0 + i] = sw;
  du[c0 + i] = su;
}

template <typename E>
void forward(int B, int T, int C, int c0, int c1, const float* w, const float* u, const E* k,
             const E* v, E* y, const float* state_in, float* state_out, cudaStream_t stream) {
  check_args("rwkv::cuda::wkv4_forward", B, T, C, c0, c1);
  const int nt = B * (c1 - c0);
  if (nt == 0) return;
  wkv4_forward_kernel<E><<<(nt + kThreads - 1) / kThreads, kThreads, 0, stream>>>(
      B, T, C, c0, c1 - c0, w, u, k, v, y, state_in, state_out);
  CUDA_CHECK_LAUNCH();
}

template <typename E>
void backward(int B, int T, int C, int c0, int c1, const float* w, const float* u, const E* k,
              const E* v, const E* dy, float* dw, float* du, E* dk, E* dv, void* workspace,
              cudaStream_t stream) {
  check_args("rwkv::cuda::wkv4_backward", B, T, C, c0, c1);
  const int nc = c1 - c0, nt = B * nc;
  if (nc == 0) return;
  if (workspace == nullptr && nt > 0)
    throw Error("rwkv::cuda::wkv4_backward: workspace is null (size: wkv4_workspace_bytes)");
  // Layout inside the workspace: ckpt [nseg, 3, B * nc], then partial [2, B * nc].
  float* ckpt = static_cast<float*>(workspace);
  float* partial = ckpt + size_t(nseg(T)) * 3 * nt;
  if (nt > 0) {
    wkv4_backward_kernel<E><<<(nt + kThreads - 1) / kThreads, kThreads, 0, stream>>>(
        B, T, C, c0, nc, w, u, k, v, dy, dk, dv, ckpt, partial);
    CUDA_CHECK_LAUNCH();
  }
  // With B = 0 this writes zeros.
  wkv4_reduce_kernel<<<(nc + kThreads - 1) / kThreads, kThreads, 0, stream>>>(B, c0, nc, partial,
                                                                              dw, du);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void wkv4_forward(int B, int T, int C, int c0, int c1, const float* w, const float* u,
                  const float* k, const float* v, float* y, const float* state_in, float* state_out,
                  cudaStream_t stream) {
  forward(B, T, C, c0, c1, w, u, k, v, y, state_in, state_out, stream);
}

void wkv4_forward(int B, int T, int C, int c0, int c1, const float* w, const float* u,
                  const __nv_bfloat16* k, const __nv_bfloat16* v, __nv_bfloat16* y,
                  const float* state_in, float* state_out, cudaStream_t stream) {
  forward(B, T, C, c0, c1, w, u, as_bf16(k), as_bf16(v), as_bf16(y), state_in, state_out, stream);
}

size_t wkv4_workspace_bytes(int B, int T, int C) {
  check_args("rwkv::cuda::wkv4_workspace_bytes", B, T, C, 0, C);
  return (size_t(nseg(T)) * 3 + 2) * size_t(B) * C * sizeof(float);
}

void wkv4_backward(int B, int T, int C, int c0, int c1, const float* w, const float* u,
                   const float* k, const float* v, const float* dy, float* dw, float* du, float* dk,
                   float* dv, void* workspace, cudaStream_t stream) {
  backward(B, T, C, c0, c1, w, u, k, v, dy, dw, du, dk, dv, workspace, stream);
}

void wkv4_backward(int B, int T, int C, int c0, int c1, const float* w, const float* u,
                   const __nv_bfloat16* k, const __nv_bfloat16* v, const __nv_bfloat16* dy,
                   float* dw, float* du, __nv_bfloat16* dk, __nv_bfloat16* dv, void* workspace,
                   cudaStream_t stream) {
  backward(B, T, C, c0, c1, w, u, as_bf16(k), as_bf16(v), as_bf16(dy), dw, du, as_bf16(dk),
           as_bf16(dv), workspace, stream);
}

}  // namespace rwkv::cuda
