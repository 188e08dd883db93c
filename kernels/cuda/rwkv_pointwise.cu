#include <cmath>
#include <sstream>

#include "common/error.h"
#include "kernels/cuda/bf16.h"
#include "kernels/cuda/pointwise_launch.cuh"
#include "kernels/cuda/rwkv_pointwise.h"

// The formulas and their evaluation order are those of kernels/cpu/rwkv_pointwise.cpp,
// one thread per element (launch shapes: kernels/cuda/pointwise_launch.cuh).

namespace rwkv::cuda {
namespace {

using pointwise::check_sizes;

template <typename E>
struct DecayV6Forward {
  E* lw;
  const float* time_decay;
  const E* ww;
  __device__ void operator()(int64_t o, int64_t c) const {
    lw[o] = from_float<E>(-expf(time_decay[c] + (ww ? to_float(ww[o]) : 0.f)));
  }
};

// d lw / d (time_decay + ww) = lw. Returns dtime_decay's term.
template <typename E>
struct DecayV6Backward {
  E* dww;
  const E *dlw, *lw;
  __device__ float operator()(int64_t o, int64_t) const {
    const float g = to_float(dlw[o]) * to_float(lw[o]);
    if (dww) add_to(dww[o], g);
    return g;
  }
};

// scale = exp(-0.5), computed on the host like the CPU's.
template <typename E>
struct DecayV7Forward {
  E* lw;
  const float* w0;
  const E* z;
  float scale;
  __device__ void operator()(int64_t o, int64_t c) const {
    lw[o] = from_float<E>(-scale / (1.f + expf(-(w0[c] + to_float(z[o])))));
  }
};

// Returns dw0's term.
template <typename E>
struct DecayV7Backward {
  E* dz;
  const E* dlw;
  const float* w0;
  const E* z;
  float scale;
  __device__ float operator()(int64_t o, int64_t c) const {
    const float s = 1.f / (1.f + expf(-(w0[c] + to_float(z[o]))));
    const float g = -scale * s * (1.f - s) * to_float(dlw[o]);
    if (dz) add_to(dz[o], g);
    return g;
  }
};

template <typename E>
struct ValueResidualForward {
  E* out;
  const E *v, *v_first, *s;
  __device__ void operator()(int64_t o) const {
    const float vo = to_float(v[o]);
    out[o] = from_float<E>(vo + (to_float(v_first[o]) - vo) * to_float(s[o]));
  }
};

template <typename E>
struct ValueResidualBackward {
  E *dv, *dv_first, *ds;
  const E *dout, *v, *v_first, *s;
  __device__ void operator()(int64_t o) const {
    const float g = to_float(dout[o]), so = to_float(s[o]);
    if (dv) add_to(dv[o], g * (1.f - so));
    if (dv_first) add_to(dv_first[o], g * so);
    if (ds) add_to(ds[o], g * (to_float(v_first[o]) - to_float(v[o])));
  }
};

template <typename E>
struct KeyAdjustForward {
  E* out;
  const E *k, *a;
  const float* k_a;
  __device__ void operator()(int64_t o, int64_t c) const {
    out[o] = from_float<E>(to_float(k[o]) * (1.f + (to_float(a[o]) - 1.f) * k_a[c]));
  }
};

// Returns dk_a's term.
template <typename E>
struct KeyAdjustBackward {
  E *dk, *da;
  const E *dout, *k, *a;
  const float* k_a;
  __device__ float operator()(int64_t o, int64_t c) const {
    const float g = to_float(dout[o]), ko = to_float(k[o]), ao = to_float(a[o]);
    if (dk) add_to(dk[o], g * (1.f + (ao - 1.f) * k_a[c]));
    if (da) add_to(da[o], g * ko * k_a[c]);
    return g * ko * (ao - 1.f);
  }
};

template <typename E>
struct Wkv7AbForward {
  E *wa, *wb;
  const E *kk, *a;
  __device__ void operator()(int64_t o) const {
    const float kko = to_float(kk[o]);
    wa[o] = from_float<E>(-kko);
    wb[o] = from_float<E>(kko * to_float(a[o]));
  }
};

template <typename E>
struct Wkv7AbBackward {
  E *dkk, *da;
  const E *dwa, *dwb, *kk, *a;
  __device__ void operator()(int64_t o) const {
    const float gb = to_float(dwb[o]);
    if (dkk) add_to(dkk[o], -to_float(dwa[o]) + gb * to_float(a[o]));
    if (da) add_to(da[o], gb * to_float(kk[o]));
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
template <typename E>
__global__ void head_dots_kernel(int64_t nH, int64_t H, int64_t N, const E* __restrict__ r,
                                 const E* __restrict__ k, const float* __restrict__ r_k,
                                 const E* __restrict__ dout, const E* __restrict__ v,
                                 const E* __restrict__ g, float* __restrict__ dots) {
  const int64_t x = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  float dot = 0.f, ddot = 0.f;
  if (x < nH) {  // the whole warp shares x, so it takes the shuffles below together
    const int64_t base = x * N, rk = (x % H) * N;
    for (int64_t q = lane; q < N; q += kWarp) {
      dot += to_float(r[base + q]) * to_float(k[base + q]) * r_k[rk + q];
      if (dout) {
        const float d = to_float(dout[base + q]);
        ddot += (g ? d * to_float(g[base + q]) : d) * to_float(v[base + q]);
      }
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

template <typename E>
struct BonusV7Forward {
  E* out;
  const E *v, *g;
  const float* dot;
  int64_t N;
  __device__ void operator()(int64_t o, int64_t) const {
    const float dv = dot[o / N] * to_float(v[o]);
    add_to(out[o], g ? dv * to_float(g[o]) : dv);
  }
};

// Returns dr_k's term. With the gate g: dg += dout * dot * v, dv gets dout * g * dot.
template <typename E>
struct BonusV7Backward {
  E *dr, *dk, *dv, *dg;
  const E *dout, *r, *k, *v;
  const float* r_k;
  const E* g;
  const float *dot, *ddot;
  int64_t N;
  __device__ float operator()(int64_t o, int64_t c) const {
    const int64_t x = o / N;
    const float d = to_float(dout[o]), ro = to_float(r[o]), ko = to_float(k[o]);
    if (dv) add_to(dv[o], (g ? d * to_float(g[o]) : d) * dot[x]);
    if (dg && g) add_to(dg[o], d * dot[x] * to_float(v[o]));
    if (dr) add_to(dr[o], ddot[x] * ko * r_k[c]);
    if (dk) add_to(dk[o], ddot[x] * ro * r_k[c]);
    return ddot[x] * ro * ko;
  }
};

// The head sums of n rows of H heads into scratch (dout null: dot only).
template <typename E>
void head_dots(const char* fn, const E* r, const E* k, const float* r_k, const E* dout, const E* v,
               const E* g, int64_t n, int64_t H, int64_t N, float* scratch, cudaStream_t stream) {
  if (scratch == nullptr) {
    std::ostringstream msg;
    msg << fn << ": scratch is null (it needs bonus_v7_scratch_floats(n, H) floats)";
    throw Error(msg.str());
  }
  const int64_t nH = n * H;
  const int blocks = pointwise::flat_blocks(fn, nH * kWarp);
  head_dots_kernel<E>
      <<<blocks, pointwise::kThreads, 0, stream>>>(nH, H, N, r, k, r_k, dout, v, g, scratch);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

template <typename E>
void decay_v6_forward(E* lw, const float* time_decay, const E* ww, int64_t n, int64_t C,
                      cudaStream_t stream) {
  const char* fn = "rwkv::cuda::decay_v6_forward";
  check_sizes(fn, {{"n", n}, {"C", C}});
  pointwise::launch_channels(fn, DecayV6Forward<E>{lw, time_decay, ww}, n, C, stream);
}

template <typename E>
void decay_v6_backward(float* dtime_decay, E* dww, const E* dlw, const E* lw, int64_t n, int64_t C,
                       cudaStream_t stream) {
  const char* fn = "rwkv::cuda::decay_v6_backward";
  check_sizes(fn, {{"n", n}, {"C", C}});
  if (dtime_decay || dww)
    pointwise::launch_channels_sum(fn, DecayV6Backward<E>{dww, dlw, lw}, n, C, dtime_decay, stream);
}

template <typename E>
void decay_v7_forward(E* lw, const float* w0, const E* z, int64_t n, int64_t C,
                      cudaStream_t stream) {
  const char* fn = "rwkv::cuda::decay_v7_forward";
  check_sizes(fn, {{"n", n}, {"C", C}});
  pointwise::launch_channels(fn, DecayV7Forward<E>{lw, w0, z, std::exp(-0.5f)}, n, C, stream);
}

template <typename E>
void decay_v7_backward(float* dw0, E* dz, const E* dlw, const float* w0, const E* z, int64_t n,
                       int64_t C, cudaStream_t stream) {
  const char* fn = "rwkv::cuda::decay_v7_backward";
  check_sizes(fn, {{"n", n}, {"C", C}});
  if (dw0 || dz)
    pointwise::launch_channels_sum(fn, DecayV7Backward<E>{dz, dlw, w0, z, std::exp(-0.5f)}, n, C,
                                   dw0, stream);
}

template <typename E>
void value_residual_forward(E* out, const E* v, const E* v_first, const E* s, int64_t n,
                            cudaStream_t stream) {
  const char* fn = "rwkv::cuda::value_residual_forward";
  check_sizes(fn, {{"n", n}});
  pointwise::launch_flat(fn, ValueResidualForward<E>{out, v, v_first, s}, n, stream);
}

template <typename E>
void value_residual_backward(E* dv, E* dv_first, E* ds, const E* dout, const E* v, const E* v_first,
                             const E* s, int64_t n, cudaStream_t stream) {
  const char* fn = "rwkv::cuda::value_residual_backward";
  check_sizes(fn, {{"n", n}});
  if (dv || dv_first || ds)
    pointwise::launch_flat(fn, ValueResidualBackward<E>{dv, dv_first, ds, dout, v, v_first, s}, n,
                           stream);
}

template <typename E>
void key_adjust_forward(E* out, const E* k, const E* a, const float* k_a, int64_t n, int64_t C,
                        cudaStream_t stream) {
  const char* fn = "rwkv::cuda::key_adjust_forward";
  check_sizes(fn, {{"n", n}, {"C", C}});
  pointwise::launch_channels(fn, KeyAdjustForward<E>{out, k, a, k_a}, n, C, stream);
}

template <typename E>
void key_adjust_backward(E* dk, E* da, float* dk_a, const E* dout, const E* k, const E* a,
                         const float* k_a, int64_t n, int64_t C, cudaStream_t stream) {
  const char* fn = "rwkv::cuda::key_adjust_backward";
  check_sizes(fn, {{"n", n}, {"C", C}});
  if (dk || da || dk_a)
    pointwise::launch_channels_sum(fn, KeyAdjustBackward<E>{dk, da, dout, k, a, k_a}, n, C, dk_a,
                                   stream);
}

template <typename E>
void wkv7_ab_forward(E* wa, E* wb, const E* kk, const E* a, int64_t n, cudaStream_t stream) {
  const char* fn = "rwkv::cuda::wkv7_ab_forward";
  check_sizes(fn, {{"n", n}});
  pointwise::launch_flat(fn, Wkv7AbForward<E>{wa, wb, kk, a}, n, stream);
}

template <typename E>
void wkv7_ab_backward(E* dkk, E* da, const E* dwa, const E* dwb, const E* kk, const E* a, int64_t n,
                      cudaStream_t stream) {
  const char* fn = "rwkv::cuda::wkv7_ab_backward";
  check_sizes(fn, {{"n", n}});
  if (dkk || da) pointwise::launch_flat(fn, Wkv7AbBackward<E>{dkk, da, dwa, dwb, kk, a}, n, stream);
}

int64_t bonus_v7_scratch_floats(int64_t n, int64_t H) { return 2 * n * H; }

template <typename E>
void bonus_v7_forward(E* out, const E* r, const E* k, const E* v, const float* r_k, const E* g,
                      int64_t n, int64_t H, int64_t N, float* scratch, cudaStream_t stream) {
  const char* fn = "rwkv::cuda::bonus_v7_forward";
  check_sizes(fn, {{"n", n}, {"H", H}, {"N", N}});
  if (n * H * N == 0) return;
  head_dots<E>(fn, r, k, r_k, nullptr, nullptr, nullptr, n, H, N, scratch, stream);
  pointwise::launch_channels(fn, BonusV7Forward<E>{out, v, g, scratch, N}, n, H * N, stream);
}

template <typename E>
void bonus_v7_backward(E* dr, E* dk, E* dv, float* dr_k, E* dg, const E* dout, const E* r,
                       const E* k, const E* v, const float* r_k, const E* g, int64_t n, int64_t H,
                       int64_t N, float* scratch, cudaStream_t stream) {
  const char* fn = "rwkv::cuda::bonus_v7_backward";
  check_sizes(fn, {{"n", n}, {"H", H}, {"N", N}});
  if (!(dr || dk || dv || dr_k || (dg && g)) || n * H * N == 0) return;
  head_dots<E>(fn, r, k, r_k, dout, v, g, n, H, N, scratch, stream);
  pointwise::launch_channels_sum(
      fn, BonusV7Backward<E>{dr, dk, dv, dg, dout, r, k, v, r_k, g, scratch, scratch + n * H, N}, n,
      H * N, dr_k, stream);
}

#define RWKV_INSTANTIATE(E)                                                                        \
  template void decay_v6_forward<E>(E*, const float*, const E*, int64_t, int64_t, cudaStream_t);   \
  template void decay_v6_backward<E>(float*, E*, const E*, const E*, int64_t, int64_t,             \
                                     cudaStream_t);                                                \
  template void decay_v7_forward<E>(E*, const float*, const E*, int64_t, int64_t, cudaStream_t);   \
  template void decay_v7_backward<E>(float*, E*, const E*, const float*, const E*, int64_t,        \
                                     int64_t, cudaStream_t);                                       \
  template void value_residual_forward<E>(E*, const E*, const E*, const E*, int64_t,               \
                                          cudaStream_t);                                           \
  template void value_residual_backward<E>(E*, E*, E*, const E*, const E*, const E*, const E*,     \
                                           int64_t, cudaStream_t);                                 \
  template void key_adjust_forward<E>(E*, const E*, const E*, const float*, int64_t, int64_t,      \
                                      cudaStream_t);                                               \
  template void key_adjust_backward<E>(E*, E*, float*, const E*, const E*, const E*, const float*, \
                                       int64_t, int64_t, cudaStream_t);                            \
  template void wkv7_ab_forward<E>(E*, E*, const E*, const E*, int64_t, cudaStream_t);             \
  template void wkv7_ab_backward<E>(E*, E*, const E*, const E*, const E*, const E*, int64_t,       \
                                    cudaStream_t);                                                 \
  template void bonus_v7_forward<E>(E*, const E*, const E*, const E*, const float*, const E*,      \
                                    int64_t, int64_t, int64_t, float*, cudaStream_t);              \
  template void bonus_v7_backward<E>(E*, E*, E*, float*, E*, const E*, const E*, const E*,         \
                                     const E*, const float*, const E*, int64_t, int64_t, int64_t,  \
                                     float*, cudaStream_t);
RWKV_INSTANTIATE(float)
RWKV_INSTANTIATE(Bf16)
#undef RWKV_INSTANTIATE

}  // namespace rwkv::cuda
