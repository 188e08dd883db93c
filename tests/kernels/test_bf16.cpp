// The bf16 storage of the kernel bodies (kernels/cuda/bf16.h) on the CPU: to_float is
// exact, from_float rounds to the nearest bf16 with ties to even, overflows to infinity
// and keeps NaN a NaN. (test_cuda_bf16.cu checks the device's from_float against CUDA's
// __float2bfloat16_rn.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/cuda/bf16.h"

namespace {

using rwkv::cuda::Bf16;
using rwkv::cuda::bits_float;
using rwkv::cuda::float_bits;
using rwkv::cuda::from_float;
using rwkv::cuda::to_float;

uint16_t bf16_bits(float x) { return from_float<Bf16>(x).bits; }

TEST(Bf16, ToFloatIsTheUpperHalfOfAFloat) {
  EXPECT_EQ(to_float(Bf16{0x3f80}), 1.0f);
  EXPECT_EQ(to_float(Bf16{0xc040}), -3.0f);
  EXPECT_EQ(to_float(Bf16{0x0001}), bits_float(0x00010000u));  // a subnormal
  EXPECT_EQ(to_float(Bf16{0x7f80}), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(to_float(Bf16{0x7fc0})));
  // Every bf16 converts to a float and back to itself.
  for (uint32_t b = 0; b < 0x10000u; ++b) {
    const Bf16 x{uint16_t(b)};
    if (!std::isnan(to_float(x))) {
      ASSERT_EQ(bf16_bits(to_float(x)), b);
    }
  }
}

TEST(Bf16, RoundsToNearestTiesToEven) {
  const float e = std::ldexp(1.0f, -8);                             // half a bf16 ulp at 1
  EXPECT_EQ(to_float(from_float<Bf16>(1 + e)), 1.0f);               // a tie, to the even 1
  EXPECT_EQ(to_float(from_float<Bf16>(1 + 3 * e)), 1 + 4 * e);      // a tie, up to the even
  EXPECT_EQ(to_float(from_float<Bf16>(1 + e + e / 4)), 1 + 2 * e);  // past the tie: up
  EXPECT_EQ(to_float(from_float<Bf16>(1 + e - e / 4)), 1.0f);       // short of it: down
  EXPECT_EQ(to_float(from_float<Bf16>(-(1 + 3 * e))), -(1 + 4 * e));
  // A carry out of the mantissa raises the exponent: 2 - 2^-9 rounds to 2.
  EXPECT_EQ(to_float(from_float<Bf16>(2 - std::ldexp(1.0f, -9))), 2.0f);
}

TEST(Bf16, OverflowAndSpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(to_float(from_float<Bf16>(std::numeric_limits<float>::max())), inf);
  EXPECT_EQ(to_float(from_float<Bf16>(-std::numeric_limits<float>::max())), -inf);
  EXPECT_EQ(bf16_bits(inf), 0x7f80);
  EXPECT_EQ(bf16_bits(-0.0f), 0x8000);
  // The largest finite bf16 stays finite.
  EXPECT_EQ(bf16_bits(bits_float(0x7f7f0000u)), 0x7f7f);
  // NaN stays a NaN, its sign kept, even one whose payload is in the low half only
  // (truncating would make it infinity).
  const float low_nan = bits_float(0x7f800001u);
  ASSERT_TRUE(std::isnan(low_nan));
  EXPECT_TRUE(std::isnan(to_float(from_float<Bf16>(low_nan))));
  EXPECT_TRUE(std::isnan(to_float(from_float<Bf16>(-std::nanf("")))));
  EXPECT_TRUE(std::signbit(to_float(from_float<Bf16>(-std::nanf("")))));
}

// Against rounding by hand on a sweep of floats: the nearest of the two neighbouring
// bf16 values (the float range between them is exact in double), the even one on a tie;
// up to the largest finite bf16 (past it, OverflowAndSpecialValues).
TEST(Bf16, NearestOfTheTwoNeighbours) {
  for (uint32_t u = 0; u < 0x7f7f0000u; u += 0x1235u) {
    for (const float x : {bits_float(u), -bits_float(u)}) {
      const uint32_t down = float_bits(x) & 0xffff0000u;
      const double lo = bits_float(down), hi = bits_float(down + 0x10000u);  // |hi| > |lo|
      const double dl = std::abs(x - lo), dh = std::abs(hi - x);
      const uint16_t want = dl < dh || (dl == dh && ((down >> 16) & 1u) == 0)
                                ? uint16_t(down >> 16)
                                : uint16_t((down >> 16) + 1);
      ASSERT_EQ(bf16_bits(x), want) << x;
    }
  }
}

}  // namespace
