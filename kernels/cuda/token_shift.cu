#include <sstream>

#include "common/error.h"
#include "kernels/cuda/pointwise_launch.cuh"
#include "kernels/cuda/token_shift.h"

// The formulas and their evaluation order are those of kernels/cpu/token_shift.cpp,
// one thread per element (launch shapes: kernels/cuda/pointwise_launch.cuh). [B, T, C]
// tensors run as channel ops on [B*T, C].

namespace rwkv::cuda {
namespace {

using pointwise::check_sizes;

struct ShiftDiffForward {
  float* xx;
  const float *x, *prev;
  int64_t T, C;
  __device__ void operator()(int64_t o, int64_t c) const {
    const int64_t row = o / C, t = row % T;  // row = b T + t
    const float before = t > 0 ? x[o - C] : (prev ? prev[row / T * C + c] : 0.f);
    xx[o] = before - x[o];
  }
};

// Token t's gradient: dx[t] = (dx[t] - dxx[t]) + dxx[t+1] (the CPU's order); dxx[b, 0]
// goes to dprev.
struct ShiftDiffBackward {
  float *dx, *dprev;
  const float* dxx;
  int64_t T, C;
  __device__ void operator()(int64_t o, int64_t c) const {
    const int64_t row = o / C, t = row % T;
    if (dx) {
      float d = dx[o] - dxx[o];
      if (t + 1 < T) d += dxx[o + C];
      dx[o] = d;
    }
    if (dprev && t == 0) dprev[row / T * C + c] += dxx[o];
  }
};

// Over [B, C].
struct ShiftLast {
  float* last;
  const float* x;
  int64_t T, C;
  __device__ void operator()(int64_t o, int64_t c) const {
    last[o] = x[((o / C) * T + T - 1) * C + c];
  }
};

__device__ float mix_coef(const float* c, const float* m, bool one_minus, int64_t o, int64_t j) {
  return (one_minus ? 1.f - c[j] : c[j]) + (m ? m[o] : 0.f);
}

struct MixForward {
  float* out;
  const float *x, *xx, *c, *m;
  bool one_minus;
  __device__ void operator()(int64_t o, int64_t j) const {
    out[o] = x[o] + xx[o] * mix_coef(c, m, one_minus, o, j);
  }
};

// Returns dc's term.
struct MixBackward {
  float *dx, *dxx, *dm;
  const float *dout, *xx, *c, *m;
  bool one_minus;
  __device__ float operator()(int64_t o, int64_t j) const {
    const float g = dout[o];
    if (dx) dx[o] += g;
    if (dxx) dxx[o] += g * mix_coef(c, m, one_minus, o, j);
    if (dm) dm[o] += g * xx[o];
    return one_minus ? -g * xx[o] : g * xx[o];
  }
};

}  // namespace

void shift_diff_forward(float* xx, const float* x, const float* prev, int64_t B, int64_t T,
                        int64_t C, cudaStream_t stream) {
  const char* fn = "rwkv::cuda::shift_diff_forward";
  check_sizes(fn, {{"B", B}, {"T", T}, {"C", C}});
  pointwise::launch_channels(fn, ShiftDiffForward{xx, x, prev, T, C}, B * T, C, stream);
}

void shift_diff_backward(float* dx, float* dprev, const float* dxx, int64_t B, int64_t T, int64_t C,
                         cudaStream_t stream) {
  const char* fn = "rwkv::cuda::shift_diff_backward";
  check_sizes(fn, {{"B", B}, {"T", T}, {"C", C}});
  if (dx || dprev)
    pointwise::launch_channels(fn, ShiftDiffBackward{dx, dprev, dxx, T, C}, B * T, C, stream);
}

void shift_last(float* last, const float* x, int64_t B, int64_t T, int64_t C, cudaStream_t stream) {
  const char* fn = "rwkv::cuda::shift_last";
  check_sizes(fn, {{"B", B}, {"T", T}, {"C", C}});
  if (T == 0 && B * C > 0) {
    std::ostringstream msg;
    msg << fn << ": T = 0 (no last token) for B = " << B << ", C = " << C;
    throw Error(msg.str());
  }
  pointwise::launch_channels(fn, ShiftLast{last, x, T, C}, B, C, stream);
}

void mix_forward(float* out, const float* x, const float* xx, const float* c, const float* m,
                 bool one_minus, int64_t n, int64_t C, cudaStream_t stream) {
  const char* fn = "rwkv::cuda::mix_forward";
  check_sizes(fn, {{"n", n}, {"C", C}});
  pointwise::launch_channels(fn, MixForward{out, x, xx, c, m, one_minus}, n, C, stream);
}

void mix_backward(float* dx, float* dxx, float* dc, float* dm, const float* dout, const float* xx,
                  const float* c, const float* m, bool one_minus, int64_t n, int64_t C,
                  cudaStream_t stream) {
  const char* fn = "rwkv::cuda::mix_backward";
  check_sizes(fn, {{"n", n}, {"C", C}});
  if (dx || dxx || dc || dm)
    pointwise::launch_channels_sum(fn, MixBackward{dx, dxx, dm, dout, xx, c, m, one_minus}, n, C,
                                   dc, stream);
}

}  // namespace rwkv::cuda
