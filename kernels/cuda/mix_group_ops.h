#pragma once
// The per-element ops of the mix-group kernels (kernels/cuda/token_shift.cu; the math
// is kernels/cpu/token_shift.h's), for activations stored as float or Bf16,
// host-device so that the CPU tests run them too (tests/kernels/test_mix_group_body.cpp).
// Includes only what the host compiler has.
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>

#include "kernels/cuda/bf16.h"
#include "kernels/cuda/block.h"
#include "kernels/cuda/channel_sum_body.h"
#include "kernels/mix_group.h"

namespace rwkv::cuda {

using kernels::kMaxMixes;

// The mix coefficient of channel j at element o: coef (a parameter, fp32) plus m (an
// activation of element type E), or null.
template <typename E>
RWKV_HD inline float mix_coef(const float* c, const E* m, bool one_minus, int64_t o, int64_t j) {
  return (one_minus ? 1.f - c[j] : c[j]) + (m ? to_float(m[o]) : 0.f);
}

// A mix group's pointers, copied into the kernel's arguments; entries k >= K unused.
template <typename T>
struct Group {
  T* p[kMaxMixes] = {};
  Group() = default;
  explicit Group(std::span<T* const> g) {
    for (size_t k = 0; k < g.size(); ++k) p[k] = g[k];
  }
  RWKV_HD T* operator[](int k) const { return p[k]; }
};

// x and xx read once for the K outputs. E: the element type of the activations (every
// tensor but the coefficients), widened as read, rounded once as written.
template <typename E>
struct MixForward {
  Group<E> out;
  Group<const float> coef;
  Group<const E> m;
  const E *x, *xx;
  int K;
  bool one_minus;
  RWKV_HD void operator()(int64_t o, int64_t j) const {
    const float xo = to_float(x[o]), xxo = to_float(xx[o]);
    RWKV_UNROLL
    for (int k = 0; k < kMaxMixes; ++k)
      if (k < K) out[k][o] = from_float<E>(xo + xxo * mix_coef(coef[k], m[k], one_minus, o, j));
  }
};

// dx and dxx read and written once for the K <= S mixes; returns each dcoef's term.
// S, the sums the kernel carries: 1 for groups of one mix (their sum kernel is the
// single-sum one), kMaxMixes for the others.
template <typename E, int S>
struct MixBackward {
  E *dx, *dxx;
  Group<E> dm;
  Group<const E> dout;
  Group<const float> coef;
  Group<const E> m;
  const E* xx;
  int K;
  bool one_minus;
  RWKV_HD pointwise::Sums<S> operator()(int64_t o, int64_t j) const {
    pointwise::Sums<S> s{};
    const float xxo = to_float(xx[o]);
    float gx = dx ? to_float(dx[o]) : 0.f, gxx = dxx ? to_float(dxx[o]) : 0.f;
    RWKV_UNROLL
    for (int k = 0; k < S; ++k)
      if (k < K) {
        const float g = to_float(dout[k][o]);
        gx += g;
        gxx += g * mix_coef(coef[k], m[k], one_minus, o, j);
        if (dm[k]) add_to(dm[k][o], g * xxo);
        s.v[k] = one_minus ? -g * xxo : g * xxo;
      }
    if (dx) dx[o] = from_float<E>(gx);
    if (dxx) dxx[o] = from_float<E>(gxx);
    return s;
  }
};

// fn(integral_constant<int, S>) with the MixBackward instance a group of K mixes runs:
// S = 1 for one mix, else kMaxMixes.
template <typename Fn>
void with_mix_sums(size_t K, Fn&& fn) {
  if (K == 1)
    fn(std::integral_constant<int, 1>{});
  else
    fn(std::integral_constant<int, kMaxMixes>{});
}

}  // namespace rwkv::cuda
