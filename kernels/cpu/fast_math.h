#pragma once
// fp32 exp, sigmoid, tanh and sqrt that GCC vectorises, and two loop helpers. No libm
// calls (without -ffast-math libm's expf and tanhf stay scalar calls, and sqrtf gets a
// branch to one for errno), no branches (under the default -ftrapping-math GCC may not
// turn a branch around float arithmetic into a select, and the loop stays scalar):
// ranges are tested on the integer bits, choices are bitwise selects. The double
// overloads are libm's: double is the precision of the gradient checks and stays exact.
// Accuracy against libm in double, in ulps of the exact result (denormal results
// included), largest error over every 17th float (every 7th for sqrt) in SSE2 code
// (no fused multiply-add): exp 0.98, sigmoid 2.4, tanh 1.3, sqrt 0.85;
// tests/kernels/test_fast_math.cpp checks 1.5, 3, 2 and 1 ulp.
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

// The loops that call these functions are compiled three times, for AVX-512, AVX2 and
// the baseline (SSE2: the build has no -march), and the loader picks one for the CPU (an
// ifunc: ELF/glibc only; GCC only, Clang does not multiversion templates). Results of
// the versions differ by rounding only (AVX2 and AVX-512 code fuses a * b + c).
#if defined(__x86_64__) && defined(__ELF__) && defined(__GNUC__) && !defined(__clang__)
#define RWKV_CPU_SIMD __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define RWKV_CPU_SIMD
#endif

namespace rwkv::kernels::fast {

// c ? a : b on the bits: vectorises to and/andnot/or where a branch (or a ?: that GCC
// turns into one) would keep the loop scalar.
template <typename F>
inline F select(bool c, F a, F b) {
  using U = std::conditional_t<sizeof(F) == 4, uint32_t, uint64_t>;
  const U m = U(0) - U(c);
  return std::bit_cast<F>((std::bit_cast<U>(a) & m) | (std::bit_cast<U>(b) & ~m));
}

// 2^k for -126 <= k <= 127, built in the exponent bits.
inline float pow2i(int32_t k) { return std::bit_cast<float>(uint32_t(k + 127) << 23); }

// e^x. Cephes expf (S. Moshier): x = n ln2 + r with |r| <= ln2/2 (ln2 split in two
// parts so n ln2 is exact), e^r by a degree-7 polynomial. 2^n is applied as two factors
// 2^(n/2) 2^(n - n/2), both normal floats, so that results that overflow (x > 88.72)
// give +inf and results below the smallest normal float (x < -87.34) round once into
// the denormals, down to 0 for x < -103.97. x is clamped to [-104, 89] first (keeps n in
// range; the ends already give 0 and +inf); NaN passes through the clamp and the
// arithmetic as NaN.
inline float exp(float x) {
  // The clamp on the bits: positive floats order like their bits, negative ones like
  // their bits reversed; +-inf clamp, NaN (bits beyond +-inf) does not.
  const uint32_t b = std::bit_cast<uint32_t>(x);
  const bool too_big = (b > std::bit_cast<uint32_t>(89.0f)) & (b <= 0x7f800000u);
  const bool too_small = (b > std::bit_cast<uint32_t>(-104.0f)) & (b <= 0xff800000u);
  x = select(too_big, 89.0f, select(too_small, -104.0f, x));
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float t = x * 1.44269504088896341f + magic;
  const float n = t - magic;
  const int32_t ni = int32_t(std::bit_cast<uint32_t>(t) - std::bit_cast<uint32_t>(magic));
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t n1 = ni >> 1;
  return p * pow2i(n1) * pow2i(ni - n1);
}
inline double exp(double x) { return std::exp(x); }

// 1 / (1 + e^-x) from e = e^{-|x|} in [0, 1]: 1 / (1 + e) for x >= 0, e / (1 + e) for
// x < 0. Nothing overflows, and for x << 0 the result keeps its relative accuracy down
// into the denormals (1 / (1 + e^-x) would give 0 below x = -88.7).
inline float sigmoid(float x) {
  const uint32_t b = std::bit_cast<uint32_t>(x);
  const float e = exp(std::bit_cast<float>(b | 0x80000000u));
  return select(b >> 31 != 0, e, 1.0f) / (1.0f + e);
}
inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// tanh x = sign(x) tanh|x|. For |x| < 0.625 Cephes tanhf's odd polynomial
// a + a^3 P(a^2), a = |x| (the form 1 - 2 / (e^{2a} + 1) loses the relative accuracy of
// small results to cancellation); beyond, 1 - 2 / (e^{2a} + 1), which goes to 1 as
// e^{2a} -> inf. Both are computed and one is selected by a's bits.
inline float tanh(float x) {
  const uint32_t b = std::bit_cast<uint32_t>(x);
  const uint32_t abs_bits = b & 0x7fffffffu;
  const float a = std::bit_cast<float>(abs_bits);
  const float z = a * a;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = a + a * z * p;
  const float big = 1.0f - 2.0f / (exp(2.0f * a) + 1.0f);
  const float t = select(abs_bits < std::bit_cast<uint32_t>(0.625f), small, big);
  return std::bit_cast<float>(std::bit_cast<uint32_t>(t) | (b & 0x80000000u));
}
inline double tanh(double x) { return std::tanh(x); }

// sqrt x (libm's sqrtf is a vector instruction, but with -fmath-errno, the default, GCC
// adds a branch to a libm call for x < 0 that keeps the loop scalar). The root r = x y,
// y ~ 1/sqrt(x) from the bits (the 0x5f3759df estimate, relative error < 3.5%) and two
// Newton steps y <- y (3 - x y^2) / 2 (error 5e-6), then one correction
// r <- r + y (x - r^2) / 2, which squares the remaining error. x is scaled by 2^64
// below 2^-100 (denormals included) and by 2^-64 above 2^100, the root back by 2^-32
// or 2^32, so the estimate is in range and r^2 does not overflow. +0, -0, +inf and NaN
// give themselves, x < 0 NaN.
inline float sqrt(float x) {
  const uint32_t b = std::bit_cast<uint32_t>(x);
  const uint32_t a = b & 0x7fffffffu;
  const bool tiny = b < std::bit_cast<uint32_t>(0x1p-100f);
  const bool huge = (b > std::bit_cast<uint32_t>(0x1p100f)) & (b < 0x7f800000u);
  const float xs = x * select(tiny, 0x1p64f, select(huge, 0x1p-64f, 1.0f));
  float y = std::bit_cast<float>(0x5f3759dfu - (std::bit_cast<uint32_t>(xs) >> 1));
  y = y * (1.5f - 0.5f * xs * y * y);
  y = y * (1.5f - 0.5f * xs * y * y);
  float r = xs * y;
  r = r + 0.5f * y * (xs - r * r);
  r = r * select(tiny, 0x1p-32f, select(huge, 0x1p32f, 1.0f));
  const bool negative = b > 0x80000000u;  // -0 excluded; negative NaNs included
  const bool itself = (a == 0) | (a >= 0x7f800000u);
  return select(negative, std::numeric_limits<float>::quiet_NaN(), select(itself, x, r));
}
inline double sqrt(double x) { return std::sqrt(x); }

// sum_{i < n} term(i) in 16 interleaved partial sums, added pairwise at the end: GCC
// vectorises this without -ffast-math (one running sum is a reduction it may not
// reorder, so it stays scalar). The order is fixed, the same for every vector width.
template <typename F, typename Term>
[[gnu::always_inline]] inline F sum(int64_t n, Term&& term) {
  F acc[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int64_t l = 0; l < 16; ++l) acc[l] += term(i + l);
  for (int64_t l = 0; i + l < n; ++l) acc[l] += term(i + l);
  for (int64_t w = 8; w >= 1; w /= 2)
    for (int64_t l = 0; l < w; ++l) acc[l] += acc[l + w];
  return acc[0];
}

// out[i] = a[i] b[i] for i < n (out must not overlap a or b).
template <typename F>
[[gnu::always_inline]] inline void product(F* __restrict out, const F* __restrict a,
                                           const F* __restrict b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] * b[i];
}

// acc[i] += a[i] b[i] for i < n, e.g. one row's share of a per-channel parameter
// gradient. The __restrict lets GCC vectorise it: written inline in a loop that also
// writes other outputs that might alias, it stays scalar.
template <typename F>
[[gnu::always_inline]] inline void add_product(F* __restrict acc, const F* __restrict a,
                                               const F* __restrict b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] += a[i] * b[i];
}

}  // namespace rwkv::kernels::fast
