#pragma once
// bf16 as the storage type of per-token tensors in the CUDA kernels, also in the kernel
// bodies that run on the CPU (kernels/cuda/block.h: standard headers only, so this
// defines its own type rather than use cuda_bf16.h there). A kernel templated on its
// element type E (float or Bf16) reads with to_float and writes with from_float<E>;
// everything between stays fp32, so the bf16 instance computes exactly what the fp32 one
// computes on the same (bf16-representable) inputs and rounds each output once.
//
// Bf16 has the layout of CUDA's __nv_bfloat16 (the upper 16 bits of an IEEE float), so
// the launchers pass their __nv_bfloat16 tensors as Bf16 (as_bf16, in CUDA compilations).
// from_float rounds to the nearest bf16, ties to even, as __float2bfloat16_rn does
// (overflow goes to infinity; NaN stays a NaN, its sign kept).
#include <cstdint>
#include <cstring>

#include "kernels/cuda/block.h"

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#endif

namespace rwkv::cuda {

struct Bf16 {
  uint16_t bits;
};
static_assert(sizeof(Bf16) == 2 && alignof(Bf16) == 2, "the layout of __nv_bfloat16");

RWKV_HD inline uint32_t float_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
#endif
}

RWKV_HD inline float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
#endif
}

RWKV_HD inline float to_float(float x) { return x; }
RWKV_HD inline float to_float(Bf16 x) { return bits_float(uint32_t(x.bits) << 16); }

template <typename E>
RWKV_HD E from_float(float x);

template <>
RWKV_HD inline float from_float<float>(float x) {
  return x;
}

// Adding 0x7FFF plus the lowest kept bit, then truncating, rounds to nearest with ties to
// even; a carry out of the mantissa rounds up the exponent (to infinity past the largest
// finite bf16), which is right.
template <>
RWKV_HD inline Bf16 from_float<Bf16>(float x) {
  const uint32_t u = float_bits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return Bf16{uint16_t((u >> 16) | 0x40u)};  // quiet NaN
  return Bf16{uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16)};
}

// d += g for an element stored as E: widened, added in fp32, rounded once.
template <typename E>
RWKV_HD inline void add_to(E& d, float g) {
  d = from_float<E>(to_float(d) + g);
}

#if defined(__CUDACC__) || defined(RWKV_CUDA_EMULATION)
// A launcher's __nv_bfloat16 tensor as the kernels' Bf16.
inline const Bf16* as_bf16(const __nv_bfloat16* p) { return reinterpret_cast<const Bf16*>(p); }
inline Bf16* as_bf16(__nv_bfloat16* p) { return reinterpret_cast<Bf16*>(p); }
static_assert(sizeof(__nv_bfloat16) == sizeof(Bf16) && alignof(__nv_bfloat16) == alignof(Bf16));
#endif

}  // namespace rwkv::cuda
