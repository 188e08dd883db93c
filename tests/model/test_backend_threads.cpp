// The CPU backend gives the same loss and gradients with 1 and with 3 threads (double;
// measure: max |a - b| / max |b| over the gradient buffer < 1e-12; the split changes
// only the order of some sums), for every version, on shapes large enough that every
// split op really splits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "kernels/cpu/backend_cpu.h"
#include "model_test_util.h"

namespace rwkv::model {
namespace {

TEST(BackendThreads, SameGradients) {
  for (int v : {4, 5, 6, 7}) {
    const ModelConfig cfg = make_model_config(v, 2, 128, 16, 200, 512);
    const int B = 2, T = 260;
    const auto idx = test::random_tokens(B * T, cfg.vocab_size, 1);
    const auto tgt = test::random_tokens(B * T, cfg.vocab_size, 2);
    std::vector<double> loss, grads[2];
    for (int threads : {1, 3}) {
      kernels::CpuBackend<double> be(16, threads);
      Model<double> m(cfg, be);
      m.set_params(test::random_params<double>(cfg, m.table, 5));
      m.zero_grad();
      loss.push_back(m.forward(idx, tgt, B, T));
      m.backward();
      grads[threads == 1 ? 0 : 1] = m.get_grads();
    }
    EXPECT_NEAR(loss[0], loss[1], 1e-12 * loss[0]) << "version " << v;
    double diff = 0, mx = 0;
    for (size_t i = 0; i < grads[0].size(); ++i) {
      diff = std::max(diff, std::abs(grads[0][i] - grads[1][i]));
      mx = std::max(mx, std::abs(grads[0][i]));
    }
    EXPECT_LT(diff / mx, 1e-12) << "version " << v;
  }
}

}  // namespace
}  // namespace rwkv::model
