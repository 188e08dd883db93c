// Whole-model gradient check in double, every version: backward() against central
// (five-point) finite differences of forward()'s loss, on randomised parameters (L2Wrap off, it
// changes only the gradient). Measure, per parameter tensor over the sampled entries:
//   ||g_backward - g_fd||_2 / ||g_fd||_2 < 1e-6.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "kernels/cpu/backend_cpu.h"
#include "model_test_util.h"

namespace rwkv::model {
namespace {

void check_model_gradients(int version, kernels::WkvAlgo algo, NormKind norm, FfnActivation act) {
  ModelConfig cfg = test::tiny_config(version);
  cfg.norm = norm;
  cfg.ffn_activation = act;
  kernels::CpuBackend<double> be(4);  // chunk 4: T = 9 spans three chunks
  Model<double> m(cfg, be, {algo, false});
  std::vector<double> p = test::random_params<double>(cfg, m.table, 7 + version);
  m.set_params(p);
  const int B = 2, T = 9;
  const auto idx = test::random_tokens(B * T, cfg.vocab_size, 11);
  const auto tgt = test::random_tokens(B * T, cfg.vocab_size, 12);
  m.zero_grad();
  m.forward(idx, tgt, B, T);
  m.backward();
  const std::vector<double> g = m.get_grads();

  std::mt19937_64 gen(3);
  const double h = 1e-4;
  int64_t skipped = 0, checked = 0;
  for (const ParamInfo& info : m.table.params) {
    double num = 0, den = 0;
    const int64_t samples = std::min<int64_t>(info.size, 12);
    for (int64_t s = 0; s < samples; ++s, ++checked) {
      const int64_t i =
          info.offset + (samples == info.size
                             ? s
                             : static_cast<int64_t>(gen() % static_cast<uint64_t>(info.size)));
      const double saved = p[static_cast<size_t>(i)];
      auto loss_at = [&](double delta) {
        p[static_cast<size_t>(i)] = saved + delta;
        m.set_params(p);
        return m.forward(idx, tgt, B, T);
      };
      // Five-point central difference: truncation error O(h^4).
      const double lp1 = loss_at(h), lm1 = loss_at(-h), lp2 = loss_at(2 * h), lm2 = loss_at(-2 * h);
      p[static_cast<size_t>(i)] = saved;
      const double fd = (8 * (lp1 - lm1) - (lp2 - lm2)) / (12 * h);
      // With plain ReLU the loss has kinks; an entry whose steps straddle one shows as
      // disagreeing 3-point estimates at h and 2h, and is left out.
      const double c1 = (lp1 - lm1) / (2 * h), c2 = (lp2 - lm2) / (4 * h);
      if (act == FfnActivation::relu && std::abs(c1 - c2) > 1e-5 * std::max(std::abs(c1), 1e-2)) {
        ++skipped;
        continue;
      }
      num += (g[static_cast<size_t>(i)] - fd) * (g[static_cast<size_t>(i)] - fd);
      den += fd * fd;
    }
    m.set_params(p);
    if (den == 0.0) {  // e.g. v7 layer 0's value-residual LoRA, unused by design
      EXPECT_EQ(num, 0.0) << info.name;
      continue;
    }
    EXPECT_LT(std::sqrt(num / den), 1e-6) << info.name << " (version " << version << ")";
  }
  EXPECT_LT(skipped * 20, checked) << "too many entries at ReLU kinks";
}

TEST(ModelGradcheck, V4) {
  check_model_gradients(4, kernels::WkvAlgo::naive, NormKind::layernorm,
                        FfnActivation::relu_squared);
}
TEST(ModelGradcheck, V5Chunked) {
  check_model_gradients(5, kernels::WkvAlgo::chunked, NormKind::layernorm,
                        FfnActivation::relu_squared);
}
TEST(ModelGradcheck, V6Chunked) {
  check_model_gradients(6, kernels::WkvAlgo::chunked, NormKind::layernorm,
                        FfnActivation::relu_squared);
}
TEST(ModelGradcheck, V6Naive) {
  check_model_gradients(6, kernels::WkvAlgo::naive, NormKind::layernorm,
                        FfnActivation::relu_squared);
}
TEST(ModelGradcheck, V7Chunked) {
  check_model_gradients(7, kernels::WkvAlgo::chunked, NormKind::layernorm,
                        FfnActivation::relu_squared);
}
TEST(ModelGradcheck, V7Naive) {
  check_model_gradients(7, kernels::WkvAlgo::naive, NormKind::layernorm,
                        FfnActivation::relu_squared);
}
TEST(ModelGradcheck, V7RmsNormRelu) {
  check_model_gradients(7, kernels::WkvAlgo::chunked, NormKind::rmsnorm, FfnActivation::relu);
}
TEST(ModelGradcheck, V5RmsNormRelu) {
  check_model_gradients(5, kernels::WkvAlgo::naive, NormKind::rmsnorm, FfnActivation::relu);
}

}  // namespace
}  // namespace rwkv::model
