#pragma once
// Comparison of a per-head WKV result on the GPU with the CPU reference (the WKV5/6
// and WKV7 tests). Measure: ||gpu - cpu||_2 / ||cpu||_2 over the heads in range,
// <= 1e-5 in fp32; the failure message also gives the max abs error and where. An
// element in range that is not finite (e.g. still the poison) fails, and one outside
// the range must still hold the poison.
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "tests/kernels/bf16_test_util.h"
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
// tol: 1e-5 (fp32), or the bf16 tolerance for the bf16 kernels.
inline ::testing::AssertionResult close(const char* name, const Case& c,
                                        const std::vector<float>& got,
                                        const std::vector<float>& ref, int n = 0, int T = 0,
                                        double tol = 1e-5) {
  return rwkv::cuda::test::close_groups(std::string(name) + " (" + describe(c) + ")", got, ref, c.H,
                                        n == 0 ? c.N : n, c.h0, c.h1, T == 0 ? c.T : T, "h", tol);
}

// A per-token result of a bf16 kernel, got, on inputs that are bf16 values: its fp32
// twin's on the same inputs (fp32) rounded once (or a neighbour of it: the two instances
// may contract multiply-adds differently), and within the bf16 tolerance, 5e-3 relative
// L2, of the CPU's (cpu); the poison kept outside the head range.
inline void expect_bf16_close(const char* name, const Case& c,
                              const std::vector<rwkv::cuda::Bf16>& got,
                              const std::vector<float>& fp32, const std::vector<float>& cpu) {
  rwkv::cuda::test::expect_rounded_once(name, got, fp32, 1);
  EXPECT_TRUE(close(name, c, rwkv::cuda::test::widen(got), cpu, 0, 0, 5e-3)) << "against the CPU";
}
