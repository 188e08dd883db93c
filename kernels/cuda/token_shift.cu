#include <sstream>

#include "common/error.h"
#include "kernels/cuda/mix_group_ops.h"
#include "kernels/cuda/pointwise_launch.cuh"
#include "kernels/cuda/token_shift.h"
#include "kernels/mix_group.h"

// The formulas and their evaluation order are those of kernels/cpu/token_shift.cpp,
// one thread per element (launch shapes: kernels/cuda/pointwise_launch.cuh). [B, T, C]
// tensors run as channel ops on [B*T, C]. The mix groups' ops are in mix_group_ops.h,
// where the CPU tests run them too.

namespace rwkv::cuda {
namespace {

using kernels::check_mix_backward;
using kernels::check_mix_forward;
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

void mix_forward(std::span<float* const> outs, const float* x, const float* xx,
                 std::span<const float* const> coefs, std::span<const float* const> ms,
                 bool one_minus, int64_t n, int64_t C, cudaStream_t stream) {
  const char* fn = "rwkv::cuda::mix_forward";
  check_mix_forward(fn, outs.size(), coefs.size(), ms.size());
  check_sizes(fn, {{"n", n}, {"C", C}});
  const MixForward op{Group<float>(outs),
                      Group<const float>(coefs),
                      Group<const float>(ms),
                      x,
                      xx,
                      int(outs.size()),
                      one_minus};
  pointwise::launch_channels(fn, op, n, C, stream);
}

void mix_backward(float* dx, float* dxx, std::span<float* const> dcoefs,
                  std::span<float* const> dms, std::span<const float* const> douts, const float* xx,
                  std::span<const float* const> coefs, std::span<const float* const> ms,
                  bool one_minus, int64_t n, int64_t C, cudaStream_t stream) {
  const char* fn = "rwkv::cuda::mix_backward";
  check_mix_backward(fn, douts.size(), coefs.size(), ms.size(), dcoefs.size(), dms.size());
  check_sizes(fn, {{"n", n}, {"C", C}});
  with_mix_sums(douts.size(), [&]<int S>(std::integral_constant<int, S>) {
    const MixBackward<S> op{dx,
                            dxx,
                            Group<float>(dms),
                            Group<const float>(douts),
                            Group<const float>(coefs),
                            Group<const float>(ms),
                            xx,
                            int(douts.size()),
                            one_minus};
    pointwise::SumOutputs<S> sums{};
    for (size_t k = 0; k < dcoefs.size(); ++k) sums.p[k] = dcoefs[k];
    pointwise::launch_channels_sums(fn, op, n, C, sums, stream);
  });
}

}  // namespace rwkv::cuda
