#pragma once
// Gradient checks of the CPU ops in double: an op's backward against central finite
// differences of L = sum(out * R), R a fixed random tensor (dout = R). Measure, per
// input: ||g_backward - g_fd||_2 / ||g_fd||_2 < 1e-6 over all entries.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace rwkv::kernels::test {

using Vec = std::vector<double>;

inline Vec random_vec(size_t n, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  Vec v(n);
  for (double& x : v) x = u(gen);
  return v;
}

inline double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

struct Input {
  std::string name;
  Vec* value;  // perturbed in place
  Vec* grad;   // filled by backward (accumulating into zeros)
};

// loss(): runs the forward and returns sum(out * R). backward(): adds the gradients of
// that loss into every Input::grad. With `accumulates`, backward must add: a second
// call doubles the gradients.
inline void check_gradients(const std::function<double()>& loss,
                            const std::function<void()>& backward, std::vector<Input> inputs,
                            bool accumulates = true, double h = 1e-5) {
  for (Input& in : inputs) in.grad->assign(in.value->size(), 0.0);
  backward();
  std::vector<Vec> first;
  for (Input& in : inputs) first.push_back(*in.grad);
  if (accumulates) {
    backward();
    for (size_t k = 0; k < inputs.size(); ++k)
      for (size_t i = 0; i < first[k].size(); ++i)
        ASSERT_NEAR((*inputs[k].grad)[i], 2 * first[k][i], 1e-12 * (1 + std::abs(first[k][i])))
            << inputs[k].name << " does not accumulate";
  }
  for (size_t k = 0; k < inputs.size(); ++k) {
    Vec& x = *inputs[k].value;
    double num = 0, den = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double saved = x[i];
      x[i] = saved + h;
      const double lp = loss();
      x[i] = saved - h;
      const double lm = loss();
      x[i] = saved;
      const double fd = (lp - lm) / (2 * h);
      num += (first[k][i] - fd) * (first[k][i] - fd);
      den += fd * fd;
    }
    ASSERT_GT(den, 0.0) << inputs[k].name << ": zero gradient, the check cannot fail";
    EXPECT_LT(std::sqrt(num / den), 1e-6) << inputs[k].name;
  }
}

}  // namespace rwkv::kernels::test
