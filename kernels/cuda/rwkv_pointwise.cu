#include <cmath>
#include <sstream>

#include "common/error.h"
#include "kernels/cuda/pointwise_launch.cuh"
#include "kernels/cuda/rwkv_pointwise.h"

// The formulas and their evaluation order are those of kernels/cpu/rwkv_pointwise.cpp,
// one thread per element (launch shapes: kernels/cuda/pointwise_launch.cuh).

namespace rwkv::cuda {
namespace {

using pointwise::check_sizes;

struct DecayV6Forward {
  float* lw;
  const float *time_decay, *ww;
  __device__ void operator()(int64_t o, int64_t c) const {
    lw[o] = -expf(time_decay[c] + (ww ? ww[o] : 0.f));
  }
};

// d lw / d (time_decay + ww) = lw. Returns dtime_decay's term.
struct DecayV6Backward {
  float* dww;
  const float *dlw, *lw;
  __device__ float operator()(int64_t o, int64_t) const {
    const float g = dlw[o] * lw[o];
    if (dww) dww[o] += g;
    return g;
  }
};

// scale = exp(-0.5), computed on the host like the CPU's.
struct DecayV7Forward {
  float* lw;
  const float *w0, *z;
  float scale;
  __device__ void operator()(int64_t o, int64_t c) const {
    lw[o] = -scale / (1.f + expf(-(w0[c] + z[o])));
  }
};

// Returns dw0's term.
struct DecayV7Backward {
  float* dz;
  const float *dlw, *w0, *z;
  float scale;
  __device__ float operator()(int64_t o, int64_t c) const {
    const float s = 1.f / (1.f + expf(-(w0[c] + z[o])));
    const float g = -scale * s * (1.f - s) * dlw[o];
    if (dz) dz[o] += g;
    return g;
  }
};

struct ValueResidualForward {
  float* out;
  const float *v, *v_first, *s;
  __device__ void operator()(int64_t o) const { out[o] = v[o] + (v_first[o] - v[o]) * s[o]; }
};

struct ValueResidualBackward {
  float *dv, *dv_first, *ds;
  const float *dout, *v, *v_first, *s;
  __device__ void operator()(int64_t o) const {
    if (dv) dv[o] += dout[o] * (1.f - s[o]);
    if (dv_first) dv_first[o] += dout[o] * s[o];
    if (ds) ds[o] += dout[o] * (v_first[o] - v[o]);
  }
};

struct KeyAdjustForward {
  float* out;
  const float *k, *a, *k_a;
  __device__ void operator()(int64_t o, int64_t c) const {
    out[o] = k[o] * (1.f + (a[o] - 1.f) * k_a[c]);
  }
};

// Returns dk_a's term.
struct KeyAdjustBackward {
  float *dk, *da;
  const float *dout, *k, *a, *k_a;
  __device__ float operator()(int64_t o, int64_t c) const {
    if (dk) dk[o] += dout[o] * (1.f + (a[o] - 1.f) * k_a[c]);
    if (da) da[o] += dout[o] * k[o] * k_a[c];
    return dout[o] * k[o] * (a[o] - 1.f);
  }
};

struct Wkv7AbForward {
  float *wa, *wb;
  const float *kk, *a;
  __device__ void operator()(int64_t o) const {
    wa[o] = -kk[o];
    wb[o] = kk[o] * a[o];
  }
};

struct Wkv7AbBackward {
  float *dkk, *da;
  const float *dwa, *dwb, *kk, *a;
  __device__ void operator()(int64_t o) const {
    if (dkk) dkk[o] += -dwa[o] + dwb[o] * a[o];
    if (da) da[o] += dwb[o] * kk[o];
  }
};

// The bonus needs two sums per (row, head) over the head's N channels: dot = sum r k r_k
// and, in the backward, ddot = sum dout v. head_dots_kernel computes them once into
// scratch (one warp per (row, head): lanes stride the channels, then a fixed-order
// shuffle tree, so deterministic; the order differs from the CPU's left-to-right sum in
// rounding only); the per-element ops then read them (x = o / N = row H + h). Summing
// in every element's thread instead cost N loads per element: 6.7% of a 0.4B training
// step on an H200.
constexpr int kWarp = 32;

// ddot sums dout * g * v where g (the output gate) is given.
__global__ void head_dots_kernel(int64_t nH, int64_t H, int64_t N, const float* __restrict__ r,
                                 const float* __restrict__ k, const float* __restrict__ r_k,
                                 const float* __restrict__ dout, const float* __restrict__ v,
                                 const float* __restrict__ g, float* __restrict__ dots) {
  const int64_t x = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  float dot = 0.f, ddot = 0.f;
  if (x < nH) {  // the whole warp shares x, so it takes the shuffles below together
    const int64_t base = x * N, rk = (x % H) * N;
    for (int64_t q = lane; q < N; q += kWarp) {
      dot += r[base + q] * k[base + q] * r_k[rk + q];
      if (dout) ddot += (g ? dout[base + q] * g[base + q] : dout[base + q]) * v[base + q];
    }
  }
  for (int o = kWarp / 2; o > 0; o /= 2) {
    dot += __shfl_xor_sync(0xffffffffu, dot, o);
    ddot += __shfl_xor_sync(0xffffffffu, ddot, o);
  }
  if (x < nH && lane == 0) {
    dots[x] = dot;
    if (dout) dots[nH + x] = ddot;
  }
}

struct BonusV7Forward {
  float* out;
  const float *v, *g, *dot;
  int64_t N;
  __device__ void operator()(int64_t o, int64_t) const {
    out[o] += g ? dot[o / N] * v[o] * g[o] : dot[o / N] * v[o];
  }
};

// Returns dr_k's term. With the gate g: dg += dout * dot * v, dv gets dout * g * dot.
struct BonusV7Backward {
  float *dr, *dk, *dv, *dg;
  const float *dout, *r, *k, *v, *r_k, *g, *dot, *ddot;
  int64_t N;
  __device__ float operator()(int64_t o, int64_t c) const {
    const int64_t x = o / N;
    if (dv) dv[o] += (g ? dout[o] * g[o] : dout[o]) * dot[x];
    if (dg && g) dg[o] += dout[o] * dot[x] * v[o];
    if (dr) dr[o] += ddot[x] * k[o] * r_k[c];
    if (dk) dk[o] += ddot[x] * r[o] * r_k[c];
    return ddot[x] * r[o] * k[o];
  }
};

// The head sums of n rows of H heads into scratch (dout null: dot only).
void head_dots(const char* fn, const float* r, const float* k, const float* r_k, const float* dout,
               const float* v, const float* g, int64_t n, int64_t H, int64_t N, float* scratch,
               cudaStream_t stream) {
  if (scratch == nullptr) {
    std::ostringstream msg;
    msg << fn << ": scratch is null (it needs bonus_v7_scratch_floats(n, H) floats)";
    throw Error(msg.str());
  }
  const int64_t nH = n * H;
  const int blocks = pointwise::flat_blocks(fn, nH * kWarp);
  head_dots_kernel<<<blocks, pointwise::kThreads, 0, stream>>>(nH, H, N, r, k, r_k, dout, v, g,
                                                               scratch);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void decay_v6_forward(float* lw, const float* time_decay, const float* ww, int64_t n, int64_t C,
                      cudaStream_t stream) {
  const char* fn = "rwkv::cuda::decay_v6_forward";
  check_sizes(fn, {{"n", n}, {"C", C}});
  pointwise::launch_channels(fn, DecayV6Forward{lw, time_decay, ww}, n, C, stream);
}

void decay_v6_backward(float* dtime_decay, float* dww, const float* dlw, const float* lw, int64_t n,
                       int64_t C, cudaStream_t stream) {
  const char* fn = "rwkv::cuda::decay_v6_backward";
  check_sizes(fn, {{"n", n}, {"C", C}});
  if (dtime_decay || dww)
    pointwise::launch_channels_sum(fn, DecayV6Backward{dww, dlw, lw}, n, C, dtime_decay, stream);
}

void decay_v7_forward(float* lw, const float* w0, const float* z, int64_t n, int64_t C,
                      cudaStream_t stream) {
  const char* fn = "rwkv::cuda::decay_v7_forward";
  check_sizes(fn, {{"n", n}, {"C", C}});
  pointwise::launch_channels(fn, DecayV7Forward{lw, w0, z, std::exp(-0.5f)}, n, C, stream);
}

void decay_v7_backward(float* dw0, float* dz, const float* dlw, const float* w0, const float* z,
                       int64_t n, int64_t C, cudaStream_t stream) {
  const char* fn = "rwkv::cuda::decay_v7_backward";
  check_sizes(fn, {{"n", n}, {"C", C}});
  if (dw0 || dz)
    pointwise::launch_channels_sum(fn, DecayV7Backward{dz, dlw, w0, z, std::exp(-0.5f)}, n, C, dw0,
                                   stream);
}

void value_residual_forward(float* out, const float* v, const float* v_first, const float* s,
                            int64_t n, cudaStream_t stream) {
  const char* fn = "rwkv::cuda::value_residual_forward";
  check_sizes(fn, {{"n", n}});
  pointwise::launch_flat(fn, ValueResidualForward{out, v, v_first, s}, n, stream);
}

void value_residual_backward(float* dv, float* dv_first, float* ds, const float* dout,
                             const float* v, const float* v_first, const float* s, int64_t n,
                             cudaStream_t stream) {
  const char* fn = "rwkv::cuda::value_residual_backward";
  check_sizes(fn, {{"n", n}});
  if (dv || dv_first || ds)
    pointwise::launch_flat(fn, ValueResidualBackward{dv, dv_first, ds, dout, v, v_first, s}, n,
                           stream);
}

void key_adjust_forward(float* out, const float* k, const float* a, const float* k_a, int64_t n,
                        int64_t C, cudaStream_t stream) {
  const char* fn = "rwkv::cuda::key_adjust_forward";
  check_sizes(fn, {{"n", n}, {"C", C}});
  pointwise::launch_channels(fn, KeyAdjustForward{out, k, a, k_a}, n, C, stream);
}

void key_adjust_backward(float* dk, float* da, float* dk_a, const float* dout, const float* k,
                         const float* a, const float* k_a, int64_t n, int64_t C,
                         cudaStream_t stream) {
  const char* fn = "rwkv::cuda::key_adjust_backward";
  check_sizes(fn, {{"n", n}, {"C", C}});
  if (dk || da || dk_a)
    pointwise::launch_channels_sum(fn, KeyAdjustBackward{dk, da, dout, k, a, k_a}, n, C, dk_a,
                                   stream);
}

void wkv7_ab_forward(float* wa, float* wb, const float* kk, const float* a, int64_t n,
                     cudaStream_t stream) {
  const char* fn = "rwkv::cuda::wkv7_ab_forward";
  check_sizes(fn, {{"n", n}});
  pointwise::launch_flat(fn, Wkv7AbForward{wa, wb, kk, a}, n, stream);
}

void wkv7_ab_backward(float* dkk, float* da, const float* dwa, const float* dwb, const float* kk,
                      const float* a, int64_t n, cudaStream_t stream) {
  const char* fn = "rwkv::cuda::wkv7_ab_backward";
  check_sizes(fn, {{"n", n}});
  if (dkk || da) pointwise::launch_flat(fn, Wkv7AbBackward{dkk, da, dwa, dwb, kk, a}, n, stream);
}

int64_t bonus_v7_scratch_floats(int64_t n, int64_t H) { return 2 * n * H; }

void bonus_v7_forward(float* out, const float* r, const float* k, const float* v, const float* r_k,
                      const float* g, int64_t n, int64_t H, int64_t N, float* scratch,
                      cudaStream_t stream) {
  const char* fn = "rwkv::cuda::bonus_v7_forward";
  check_sizes(fn, {{"n", n}, {"H", H}, {"N", N}});
  if (n * H * N == 0) return;
  head_dots(fn, r, k, r_k, nullptr, nullptr, nullptr, n, H, N, scratch, stream);
  pointwise::launch_channels(fn, BonusV7Forward{out, v, g, scratch, N}, n, H * N, stream);
}

void bonus_v7_backward(float* dr, float* dk, float* dv, float* dr_k, float* dg, const float* dout,
                       const float* r, const float* k, const float* v, const float* r_k,
                       const float* g, int64_t n, int64_t H, int64_t N, float* scratch,
                       cudaStream_t stream) {
  const char* fn = "rwkv::cuda::bonus_v7_backward";
  check_sizes(fn, {{"n", n}, {"H", H}, {"N", N}});
  if (!(dr || dk || dv || dr_k || (dg && g)) || n * H * N == 0) return;
  head_dots(fn, r, k, r_k, dout, v, g, n, H, N, scratch, stream);
  pointwise::launch_channels_sum(
      fn, BonusV7Backward{dr, dk, dv, dg, dout, r, k, v, r_k, g, scratch, scratch + n * H, N}, n,
      H * N, dr_k, stream);
}

}  // namespace rwkv::cuda
