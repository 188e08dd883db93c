// Model::row_losses (evaluation: a forward that keeps nothing for a backward, in buffers
// of its own, logits by chunks of rows): each row's mean loss equals forward() of that
// row alone (double; relative difference <= 1e-12), for every version; and an evaluation
// between a training forward and its backward leaves that backward's gradients bitwise
// as they were.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "kernels/cpu/backend_cpu.h"
#include "model_test_util.h"

namespace rwkv::model {
namespace {

// A model of `version` (3 layers, C 64, a vocabulary of 150: 3 rows of T 30 go in chunks
// of 39 rows of logits) with random parameters, on the CPU, and B x T random inputs and
// targets: seeds `seed` (inputs), seed + 1 (targets), seed + 2 (parameters).
template <typename F>
struct EvalCase {
  ModelConfig cfg;
  std::vector<int32_t> idx, tgt;
  kernels::CpuBackend<F> be{16, 2};
  Model<F> m;
  EvalCase(int version, int B, int T, uint64_t seed)
      : cfg(make_model_config(version, 3, 64, 16, 150, 64)),
        idx(test::random_tokens(B * T, cfg.vocab_size, seed)),
        tgt(test::random_tokens(B * T, cfg.vocab_size, seed + 1)),
        m(cfg, be) {
    m.set_params(test::random_params<F>(cfg, m.table, seed + 2));
  }
};

TEST(RowLosses, EqualOneRowForwards) {
  for (int v : {4, 5, 6, 7}) {
    const int B = 3, T = 30;
    EvalCase<double> e(v, B, T, 41);
    const std::vector<double> rows = e.m.row_losses(e.idx, e.tgt, B, T);
    ASSERT_EQ(rows.size(), size_t{B});
    for (int b = 0; b < B; ++b) {
      const std::vector<int32_t> i1(e.idx.begin() + b * T, e.idx.begin() + (b + 1) * T);
      const std::vector<int32_t> t1(e.tgt.begin() + b * T, e.tgt.begin() + (b + 1) * T);
      const double one = e.m.forward(i1, t1, 1, T);
      EXPECT_NEAR(rows[size_t(b)], one, 1e-12 * one) << "v" << v << ", row " << b;
    }
  }
}

TEST(RowLosses, LeaveTheTrainingForwardIntact) {
  for (int v : {4, 5, 6, 7}) {
    const int B = 2, T = 37;
    std::vector<float> grads[2];
    for (int evaluate : {0, 1}) {
      EvalCase<float> e(v, B, T, 44);
      e.m.zero_grad();
      e.m.forward(e.idx, e.tgt, B, T);
      if (evaluate)  // the first row, inputs and targets swapped
        e.m.row_losses(std::vector<int32_t>(e.tgt.begin(), e.tgt.begin() + T),
                       std::vector<int32_t>(e.idx.begin(), e.idx.begin() + T), 1, T);
      e.m.backward();
      grads[evaluate] = e.m.get_grads();
    }
    EXPECT_TRUE(grads[0] == grads[1]) << "v" << v;
  }
}

}  // namespace
}  // namespace rwkv::model
