// Softmax cross-entropy: loss against log-sum-exp, gradient by central differences of
// scale * sum(losses); the L2Wrap term adds factor * max at the argmax only.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/cpu/cross_entropy.h"
#include "op_gradcheck.h"

namespace rwkv::kernels {
namespace {

using test::Vec;

TEST(CrossEntropy, LossAndGradient) {
  const int64_t n = 4, V = 7;
  const std::vector<int32_t> tgt{3, 0, 6, 3};
  Vec logits = test::random_vec(n * V, 1, -3, 3);
  Vec losses(n), dlogits;
  const double scale = 1.0 / n;
  auto loss = [&] {
    cross_entropy_forward(losses.data(), logits.data(), tgt.data(), n, V);
    double s = 0;
    for (double l : losses) s += l * scale;
    return s;
  };
  loss();
  double z = 0;
  for (int64_t j = 0; j < V; ++j) z += std::exp(logits[V + j]);
  EXPECT_NEAR(losses[1], std::log(z) - logits[V + 0], 1e-13);
  auto backward = [&] {
    cross_entropy_backward(dlogits.data(), logits.data(), tgt.data(), n, V, scale, 0.0);
  };
  test::check_gradients(loss, backward, {{"logits", &logits, &dlogits}}, false);
}

TEST(CrossEntropy, L2WrapTerm) {
  const int64_t n = 2, V = 5;
  const std::vector<int32_t> tgt{1, 4};
  const Vec logits{0.1, 2.5, -1.0, 0.3, 0.0, -0.5, -0.2, -3.0, -0.1, -0.4};
  Vec plain(n * V), wrapped(n * V);
  cross_entropy_backward(plain.data(), logits.data(), tgt.data(), n, V, 0.5, 0.0);
  const double factor = 1e-4 / n;  // RWKV-LM: 1e-4 / (B*T)
  cross_entropy_backward(wrapped.data(), logits.data(), tgt.data(), n, V, 0.5, factor);
  for (int64_t i = 0; i < n * V; ++i) {
    const double extra = (i == 1) ? factor * 2.5 : (i == V + 3 ? factor * -0.1 : 0.0);
    EXPECT_NEAR(wrapped[i] - plain[i], extra, 1e-17) << i;
  }
}

}  // namespace
}  // namespace rwkv::kernels
