#pragma once
// Comparison of a per-head WKV result on the GPU with the CPU reference (the WKV5/6
// and WKV7 tests). Measure: ||gpu - cpu||_2 / ||cpu||_2 over the heads in range,
// <= 1e-5 in fp32; the failure message also gives the max abs error and where. An
// element in range that is not finite (e.g. still the poison) fails, and one outside
// the range must still hold the poison.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "tests/kernels/cuda_test_util.h"

struct Case {
  int B, T, H, N, h0, h1;
  double lw_lo, lw_hi;
  unsigned seed;
};

inline std::string describe(const Case& c) {
  std::ostringstream s;
  s << "B=" << c.B << " T=" << c.T << " H=" << c.H << " N=" << c.N << " heads [" << c.h0 << ", "
    << c.h1 << ") lw in [" << c.lw_lo << ", " << c.lw_hi << "]";
  return s.str();
}

// got vs ref for a tensor of rows of H heads with n elements each: [B, T, H, N]
// (n = N, the default), the state [B, H, N, N] (n = N * N, T = 1), du [H, N] (n = N,
// B = T = 1). Element i is in head (i / n) % H, row i / (H n) = b T + t.
inline ::testing::AssertionResult close(const char* name, const Case& c, const std::vector<float>& got,
                                 const std::vector<float>& ref, int n = 0, int T = 0) {
  const double tol = 1e-5;
  if (n == 0) n = c.N;
  if (T == 0) T = c.T;
  double num = 0, den = 0, max_abs = 0;
  size_t worst = 0, bad = 0, first_bad = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const int h = int(i / n) % c.H;
    if (h < c.h0 || h >= c.h1) {
      if (!is_poison(got[i]) && bad++ == 0) first_bad = i;
      continue;
    }
    const double d = double(got[i]) - double(ref[i]);
    if (!std::isfinite(d)) {
      if (bad++ == 0) first_bad = i;
      continue;
    }
    num += d * d;
    den += double(ref[i]) * double(ref[i]);
    if (std::abs(d) > max_abs) max_abs = std::abs(d), worst = i;
  }
  const double rel = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  const auto where = [&](size_t i) {
    std::ostringstream s;
    const size_t row = i / (size_t(c.H) * n);
    s << "[flat " << i << ": b=" << row / T << " t=" << row % T << " h=" << (i / n) % c.H
      << " n=" << i % n << "] gpu " << got[i] << " cpu " << ref[i];
    return s.str();
  };
  if (bad == 0 && rel <= tol) return ::testing::AssertionSuccess();
  auto r = ::testing::AssertionFailure();
  r << name << " (" << describe(c) << "): relative L2 error " << rel << " (tol " << tol
    << "), max abs error " << max_abs << " at " << where(worst);
  if (bad)
    r << "; " << bad << " elements unwritten or non-finite in range, or written outside it;"
      << " first " << where(first_bad);
  return r;
}
