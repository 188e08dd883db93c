#pragma once
// Shared by the tests of the chunked WKV kernel bodies run on the CPU
// (test_wkv6_chunked_body.cpp, test_wkv7_chunked_body.cpp): the case, the instance
// dispatch, the comparison with a reference, and the bit-exact comparison of the fp32
// outputs of the bf16 instances with the fp32 ones.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "tests/kernels/bf16_test_util.h"
#include "tests/kernels/wkv_test_util.h"

namespace rwkv::cuda::test {

// A shape with heads [h0, h1) and the scan's splits; lw uniform in [lw_lo, lw_hi].
struct Case {
  int B, T, H, N, h0, h1, splits;
  double lw_lo, lw_hi;
  bool initial_state;
  unsigned seed;
};

inline std::string describe(const Case& c) {
  return "B=" + std::to_string(c.B) + " T=" + std::to_string(c.T) + " H=" + std::to_string(c.H) +
         " N=" + std::to_string(c.N) + " heads [" + std::to_string(c.h0) + ", " +
         std::to_string(c.h1) + ") splits " + std::to_string(c.splits) + " lw in [" +
         std::to_string(c.lw_lo) + ", " + std::to_string(c.lw_hi) + "]" +
         (c.initial_state ? " with initial state" : "");
}

// The instances the chunked launchers (wkv6.cu, wkv7.cu) take: N 16 and 32 one
// scan block per head, N 64 1, 2, 4 or 8 (R = N / splits rows each).
template <typename Fn>
void with_instance(const Case& c, Fn&& fn) {
  using std::integral_constant;
  if (c.N == 16) return fn(integral_constant<int, 16>{}, integral_constant<int, 16>{});
  if (c.N == 32) return fn(integral_constant<int, 32>{}, integral_constant<int, 32>{});
  ASSERT_EQ(c.N, 64);
  if (c.splits == 1) return fn(integral_constant<int, 64>{}, integral_constant<int, 64>{});
  if (c.splits == 2) return fn(integral_constant<int, 64>{}, integral_constant<int, 32>{});
  if (c.splits == 4) return fn(integral_constant<int, 64>{}, integral_constant<int, 16>{});
  ASSERT_EQ(c.splits, 8);
  fn(integral_constant<int, 64>{}, integral_constant<int, 8>{});
}

// ||got - want||_2 / ||want||_2 <= 1e-5 over the heads in range, NaN outside: element e
// of a tensor of rows of H heads with n elements each is in head (e / n) % H.
template <typename G>
void compare(const Case& c, const char* name, const std::vector<float>& got,
             const std::vector<G>& want, size_t n) {
  const auto in_range = [&](size_t e) {
    const int h = int(e / n % size_t(c.H));
    return h >= c.h0 && h < c.h1;
  };
  const double err = rwkv::kernels::test::rel_err(got, want, in_range);
  EXPECT_LE(err, 1e-5) << name;  // also fails on NaN (a comparison with NaN is false)
  for (size_t e = 0; e < got.size(); ++e)
    if (!in_range(e)) {
      ASSERT_TRUE(std::isnan(got[e])) << name << " written outside the head range at " << e;
    }
}

// x as double.
inline std::vector<double> to_double(const std::vector<float>& x) {
  return std::vector<double>(x.begin(), x.end());
}

// The same bits (NaN poison included).
inline void expect_same_bits(const char* name, const std::vector<float>& got,
                             const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size()) << name;
  EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0) << name;
}

}  // namespace rwkv::cuda::test
