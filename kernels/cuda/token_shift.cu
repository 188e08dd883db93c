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

template <typename E>
struct ShiftDiffForward {
  E* xx;
  const E* x;
  const float* prev;
  int64_t T, C;
  __device__ void operator()(int64_t o, int64_t c) const {
    const int64_t row = o / C, t = row % T;  // row = b T + t
    const float before = t > 0 ? to_float(x[o - C]) : (prev ? prev[row / T * C + c] : 0.f);
    xx[o] = from_float<E>(before - to_float(x[o]));
  }
};

// Token t's gradient: dx[t] = (dx[t] - dxx[t]) + dxx[t+1] (the CPU's order); dxx[b, 0]
// goes to dprev.
template <typename E>
struct ShiftDiffBackward {
  E* dx;
  float* dprev;
  const E* dxx;
  int64_t T, C;
  __device__ void operator()(int64_t o, int64_t c) const {
    const int64_t row = o / C, t = row % T;
    if (dx) {
      float d = to_float(dx[o]) - to_float(dxx[o]);
      if (t + 1 < T) d += to_float(dxx[o + C]);
      dx[o] = from_float<E>(d);
    }
    if (dprev && t == 0) dprev[row / T * C + c] += to_float(dxx[o]);
  }
};

// Over [B, C].
template <typename E>
struct ShiftLast {
  float* last;
  const E* x;
  int64_t T, C;
  __device__ void operator()(int64_t o, int64_t c) const {
    last[o] = to_float(x[((o / C) * T + T - 1) * C + c]);
  }
};

}  // namespace

template <typename E>
void shift_diff_forward(E* xx, const E* x, const float* prev, int64_t B, int64_t T, int64_t C,
                        cudaStream_t stream) {
  const char* fn = "rwkv::cuda::shift_diff_forward";
  check_sizes(fn, {{"B", B}, {"T", T}, {"C", C}});
  pointwise::launch_channels(fn, ShiftDiffForward<E>{xx, x, prev, T, C}, B * T, C, stream);
}

template <typename E>
void shift_diff_backward(E* dx, float* dprev, const E* dxx, int64_t B, int64_t T, int64_t C,
                         cudaStream_t stream) {
  const char* fn = "rwkv::cuda::shift_diff_backward";
  check_sizes(fn, {{"B", B}, {"T", T}, {"C", C}});
  if (dx || dprev)
    pointwise::launch_channels(fn, ShiftDiffBackward<E>{dx, dprev, dxx, T, C}, B * T, C, stream);
}

template <typename E>
void shift_last(float* last, const E* x, int64_t B, int64_t T, int64_t C, cudaStream_t stream) {
  const char* fn = "rwkv::cuda::shift_last";
  check_sizes(fn, {{"B", B}, {"T", T}, {"C", C}});
  if (T == 0 && B * C > 0) {
    std::ostringstream msg;
    msg << fn << ": T = 0 (no last token) for B = " << B << ", C = " << C;
    throw Error(msg.str());
  }
  pointwise::launch_channels(fn, ShiftLast<E>{last, x, T, C}, B, C, stream);
}

template <typename E>
void mix_forward(std::span<E* const> outs, const E* x, const E* xx,
                 std::span<const float* const> coefs, std::span<const E* const> ms, bool one_minus,
                 int64_t n, int64_t C, cudaStream_t stream) {
  const char* fn = "rwkv::cuda::mix_forward";
  check_mix_forward(fn, outs.size(), coefs.size(), ms.size());
  check_sizes(fn, {{"n", n}, {"C", C}});
  const MixForward<E> op{
      Group<E>(outs), Group<const float>(coefs), Group<const E>(ms), x, xx, int(outs.size()),
      one_minus};
  pointwise::launch_channels(fn, op, n, C, stream);
}

template <typename E>
void mix_backward(E* dx, E* dxx, std::span<float* const> dcoefs, std::span<E* const> dms,
                  std::span<const E* const> douts, const E* xx, std::span<const float* const> coefs,
                  std::span<const E* const> ms, bool one_minus, int64_t n, int64_t C,
                  cudaStream_t stream) {
  const char* fn = "rwkv::cuda::mix_backward";
  check_mix_backward(fn, douts.size(), coefs.size(), ms.size(), dcoefs.size(), dms.size());
  check_sizes(fn, {{"n", n}, {"C", C}});
  with_mix_sums(douts.size(), [&]<int S>(std::integral_constant<int, S>) {
    const MixBackward<E, S> op{dx,
                               dxx,
                               Group<E>(dms),
                               Group<const E>(douts),
                               Group<const float>(coefs),
                               Group<const E>(ms),
                               xx,
                               int(douts.size()),
                               one_minus};
    pointwise::SumOutputs<S> sums{};
    for (size_t k = 0; k < dcoefs.size(); ++k) sums.p[k] = dcoefs[k];
    pointwise::launch_channels_sums(fn, op, n, C, sums, stream);
  });
}

#define RWKV_INSTANTIATE(E)                                                                     \
  template void shift_diff_forward<E>(E*, const E*, const float*, int64_t, int64_t, int64_t,    \
                                      cudaStream_t);                                            \
  template void shift_diff_backward<E>(E*, float*, const E*, int64_t, int64_t, int64_t,         \
                                       cudaStream_t);                                           \
  template void shift_last<E>(float*, const E*, int64_t, int64_t, int64_t, cudaStream_t);       \
  template void mix_forward<E>(std::span<E* const>, const E*, const E*,                         \
                               std::span<const float* const>, std::span<const E* const>, bool,  \
                               int64_t, int64_t, cudaStream_t);                                 \
  template void mix_backward<E>(E*, E*, std::span<float* const>, std::span<E* const>,           \
                                std::span<const E* const>, const E*,                            \
                                std::span<const float* const>, std::span<const E* const>, bool, \
                                int64_t, int64_t, cudaStream_t);
RWKV_INSTANTIATE(float)
RWKV_INSTANTIATE(Bf16)
#undef RWKV_INSTANTIATE

}  // namespace rwkv::cuda
