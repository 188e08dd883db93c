// Model::row_losses (evaluation: a forward that keeps nothing for a backward, in buffers
// of its own, logits by chunks of rows): each row's mean loss equals forward() of that
// row alone (double; relative difference <= 1e-12), for every version; and an evaluation
// between a training forward and its backward leaves that backward's gradients bitwise
// as they were.
#include <gtest/gtest.h>

#include <vector>

#include "kernels/cpu/backend_cpu.h"
#include "model_test_util.h"

namespace rwkv::model {
namespace {

// 3 layers, C 64, a vocabulary of 150: 3 rows of T 30 go in chunks of 39 rows of logits.
ModelConfig eval_config(int version) { return make_model_config(version, 3, 64, 16, 150, 64); }

TEST(RowLosses, EqualOneRowForwards) {
  for (int v : {4, 5, 6, 7}) {
    const ModelConfig cfg = eval_config(v);
    const int B = 3, T = 30;
    const auto idx = test::random_tokens(B * T, cfg.vocab_size, 41);
    const auto tgt = test::random_tokens(B * T, cfg.vocab_size, 42);
    kernels::CpuBackend<double> be(16, 2);
    Model<double> m(cfg, be);
    m.set_params(test::random_params<double>(cfg, m.table, 43));
    const std::vector<double> rows = m.row_losses(idx, tgt, B, T);
    ASSERT_EQ(rows.size(), size_t{B});
    for (int b = 0; b < B; ++b) {
      const std::vector<int32_t> i1(idx.begin() + b * T, idx.begin() + (b + 1) * T);
      const std::vector<int32_t> t1(tgt.begin() + b * T, tgt.begin() + (b + 1) * T);
      const double one = m.forward(i1, t1, 1, T);
      EXPECT_NEAR(rows[size_t(b)], one, 1e-12 * one) << "v" << v << ", row " << b;
    }
  }
}

TEST(RowLosses, LeaveTheTrainingForwardIntact) {
  for (int v : {4, 5, 6, 7}) {
    const ModelConfig cfg = eval_config(v);
    const int B = 2, T = 37;
    const auto idx = test::random_tokens(B * T, cfg.vocab_size, 44);
    const auto tgt = test::random_tokens(B * T, cfg.vocab_size, 45);
    std::vector<float> grads[2];
    for (int evaluate : {0, 1}) {
      kernels::CpuBackend<float> be(16, 2);
      Model<float> m(cfg, be);
      m.set_params(test::random_params<float>(cfg, m.table, 46));
      m.zero_grad();
      m.forward(idx, tgt, B, T);
      if (evaluate)  // the first row, inputs and targets swapped
        m.row_losses(std::vector<int32_t>(tgt.begin(), tgt.begin() + T),
                     std::vector<int32_t>(idx.begin(), idx.begin() + T), 1, T);
      m.backward();
      grads[evaluate] = m.get_grads();
    }
    EXPECT_TRUE(grads[0] == grads[1]) << "v" << v;
  }
}

}  // namespace
}  // namespace rwkv::model
