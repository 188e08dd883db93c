// Gradient clipping's vector ops (kernels/cpu/grad_norm.h) and their CPU backend
// versions, which split the work over threads: sum_squares against a plain double loop
// over random values (relative error <= 1e-12: only the order of the double additions
// differs), the same bits on every call (with the same thread count), the empty and
// one-element cases; scale exact (one float product per element).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/backend_cpu.h"
#include "kernels/cpu/grad_norm.h"

namespace rwkv::kernels {
namespace {

std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, 3.f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

double reference(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += double(x) * double(x);
  return s;
}

TEST(GradNorm, SumSquaresKernel) {
  const auto v = random_values(1001, 1);
  const double got = sum_squares(v.data(), 1001), ref = reference(v);
  EXPECT_LE(std::abs(got - ref), 1e-12 * ref);
  EXPECT_EQ(sum_squares(v.data(), 1001), got) << "not repeatable";
  EXPECT_EQ(sum_squares(v.data(), 0), 0.0);
  EXPECT_EQ(sum_squares(v.data(), 1), double(v[0]) * v[0]);
  const std::vector<double> d = {1.5, -2.0, 0.25};
  EXPECT_EQ(sum_squares(d.data(), 3), 1.5 * 1.5 + 4.0 + 0.0625);
}

TEST(GradNorm, SumSquaresBackendOverThreads) {
  const size_t n = (size_t{1} << 17) + 7;  // several parts of at least 2^15 elements
  const auto v = random_values(n, 2);
  const double ref = reference(v);
  for (int threads : {1, 2, 3}) {
    CpuBackend<float> be(16, threads);
    const double got = be.sum_squares(v.data(), static_cast<int64_t>(n));
    EXPECT_LE(std::abs(got - ref), 1e-12 * ref) << threads << " threads";
    EXPECT_EQ(be.sum_squares(v.data(), static_cast<int64_t>(n)), got) << "not repeatable";
    EXPECT_EQ(be.sum_squares(v.data(), 0), 0.0);
  }
}

TEST(GradNorm, Scale) {
  const size_t n = (size_t{1} << 16) + 3;
  const auto v = random_values(n, 3);
  for (int threads : {1, 2}) {
    CpuBackend<float> be(16, threads);
    auto x = v;
    be.scale(x.data(), 0.37f, static_cast<int64_t>(n));
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(x[i], v[i] * 0.37f) << i;
  }
}

}  // namespace
}  // namespace rwkv::kernels
