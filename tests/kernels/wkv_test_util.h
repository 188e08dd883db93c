#pragma once
// Shared by the CPU WKV tests (test_wkv4/6/7.cpp): random inputs, the relative error
// of a result against its reference over a subset of elements, and the check that a
// kernel left the elements outside its head range untouched.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <initializer_list>
#include <random>
#include <vector>

namespace rwkv::kernels::test {

template <typename F>
std::vector<F> uniform(size_t n, double lo, double hi, std::mt19937& rng) {
  std::uniform_real_distribution<double> d(lo, hi);
  std::vector<F> x(n);
  for (auto& e : x) e = F(d(rng));
  return x;
}

// RWKV-7's a = -kk and b = kk * sigmoid(x) as the model makes them: kk Gaussian and
// L2-normalised per row of N (a head of one token), x uniform in [-3, 3]; n a multiple
// of N.
template <typename F>
void model_v7_ab(size_t n, int N, std::mt19937& rng, std::vector<F>& a, std::vector<F>& b) {
  std::normal_distribution<double> g;
  std::uniform_real_distribution<double> x(-3, 3);
  a.resize(n);
  b.resize(n);
  std::vector<double> kk(static_cast<size_t>(N));
  for (size_t o = 0; o < n; o += size_t(N)) {
    double norm = 0;
    for (auto& e : kk) {
      e = g(rng);
      norm += e * e;
    }
    norm = std::sqrt(norm);
    for (int j = 0; j < N; ++j) {
      a[o + j] = F(-kk[j] / norm);
      b[o + j] = F(kk[j] / norm / (1 + std::exp(-x(rng))));
    }
  }
}

// ||x - ref||_2 / ||ref||_2 over the elements where mask is true (||x - ref||_2 when the
// reference is 0 there).
template <typename F, typename G>
double rel_err(const std::vector<F>& x, const std::vector<G>& ref,
               const std::function<bool(size_t)>& mask) {
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!mask(i)) continue;
    num += (double(x[i]) - double(ref[i])) * (double(x[i]) - double(ref[i]));
    den += double(ref[i]) * double(ref[i]);
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

// The same over every element.
template <typename F, typename G>
double rel_err(const std::vector<F>& x, const std::vector<G>& ref) {
  return rel_err(x, ref, [](size_t) { return true; });
}

// Outputs start as a sentinel so the test sees what the kernel left untouched.
constexpr float kSentinel = 7.5f;

// Every element of each of xs where mask is false still holds kSentinel.
inline void expect_untouched(std::initializer_list<const std::vector<float>*> xs,
                             const std::function<bool(size_t)>& mask) {
  for (const auto* x : xs) {
    for (size_t i = 0; i < x->size(); ++i) {
      if (!mask(i)) {
        ASSERT_EQ((*x)[i], kSentinel) << i;
      }
    }
  }
}

}  // namespace rwkv::kernels::test
