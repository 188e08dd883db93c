// A few AdamW steps on one fixed batch, from the official init, every version: the
// loss must fall well below its start (the model can memorise 2 x 16 tokens), and
// the naive and chunked WKV give the same first 10 losses (fp32, |difference| < 1e-4 x the
// first loss).
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/cpu/backend_cpu.h"
#include "model_test_util.h"

namespace rwkv::model {
namespace {

std::vector<double> train(int version, kernels::WkvAlgo algo) {
  const ModelConfig cfg = make_model_config(version, 2, 32, 8, 24, 32);
  kernels::CpuBackend<float> be(8);
  Model<float> m(cfg, be, {algo, true});
  m.init(3);
  const int B = 2, T = 16;
  const auto idx = test::random_tokens(B * T, cfg.vocab_size, 8);
  const auto tgt = test::random_tokens(B * T, cfg.vocab_size, 9);
  const kernels::AdamWHyper h{3e-2, 0.9, 0.99, 1e-8, 0.01};
  std::vector<double> losses;
  for (int step = 1; step <= 40; ++step) {
    m.zero_grad();
    losses.push_back(m.forward(idx, tgt, B, T));
    m.backward();
    m.adamw_step(h, step);
  }
  return losses;
}

TEST(Training, LossFalls) {
  for (int v : {4, 5, 6, 7}) {
    const auto chunked = train(v, kernels::WkvAlgo::chunked);
    EXPECT_NEAR(chunked.front(), std::log(24.0), 0.2) << "version " << v;  // near-uniform at init
    EXPECT_LT(chunked.back(), 0.5 * chunked.front()) << "version " << v;
    if (v == 4) continue;  // RWKV-4 has only the naive WKV
    const auto naive = train(v, kernels::WkvAlgo::naive);
    for (size_t i = 0; i < 10; ++i)  // later steps amplify fp32 rounding differences
      EXPECT_NEAR(chunked[i], naive[i], 1e-4 * naive.front()) << "version " << v << " step " << i;
  }
}

}  // namespace
}  // namespace rwkv::model
