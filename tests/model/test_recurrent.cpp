// Recurrent == parallel, every version, fp32: feeding T tokens one at a time through
// forward_step gives the logits of the parallel forward (naive and chunked WKV).
// Measure: max |step - parallel| / max |parallel| over all T x V logits < 1e-5.
// Also: the state is a plain struct whose size does not depend on how many tokens
// went through it, and saving / restoring it reproduces the continuation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "kernels/cpu/backend_cpu.h"
#include "model_test_util.h"

namespace rwkv::model {
namespace {

void check_recurrent(int version, kernels::WkvAlgo algo) {
  const ModelConfig cfg = make_model_config(version, 3, 32, 8, 40, 64);
  kernels::CpuBackend<float> be(4);
  Model<float> m(cfg, be, {algo, true});
  m.set_params(test::random_params<float>(cfg, m.table, 21 + version));
  const int T = 13;
  const auto idx = test::random_tokens(T, cfg.vocab_size, 5);
  const std::vector<float> par = m.forward_logits(idx, 1, T);

  RecurrentState<float> s = m.new_state();
  const size_t state_floats = s.att_shift.size() + s.ffn_shift.size() + s.wkv.size();
  double max_diff = 0, max_ref = 0;
  RecurrentState<float> saved;
  std::vector<float> after_save;
  for (int t = 0; t < T; ++t) {
    const std::vector<float> step = m.forward_step(idx[static_cast<size_t>(t)], s);
    if (t == 6) saved = s;
    if (t == 7) after_save = step;
    for (int v = 0; v < cfg.vocab_size; ++v) {
      const double ref = par[static_cast<size_t>(t) * cfg.vocab_size + v];
      max_diff = std::max(max_diff, std::abs(step[static_cast<size_t>(v)] - ref));
      max_ref = std::max(max_ref, std::abs(ref));
    }
  }
  EXPECT_LT(max_diff / max_ref, 1e-5) << "version " << version;
  EXPECT_EQ(s.att_shift.size() + s.ffn_shift.size() + s.wkv.size(), state_floats);
  // Restoring the state after token 6 gives token 7's logits again, exactly.
  EXPECT_EQ(m.forward_step(idx[7], saved), after_save);
}

TEST(Recurrent, V4) { check_recurrent(4, kernels::WkvAlgo::naive); }
TEST(Recurrent, V5) { check_recurrent(5, kernels::WkvAlgo::chunked); }
TEST(Recurrent, V6) { check_recurrent(6, kernels::WkvAlgo::chunked); }
TEST(Recurrent, V6Naive) { check_recurrent(6, kernels::WkvAlgo::naive); }
TEST(Recurrent, V7) { check_recurrent(7, kernels::WkvAlgo::chunked); }
TEST(Recurrent, V7Naive) { check_recurrent(7, kernels::WkvAlgo::naive); }

}  // namespace
}  // namespace rwkv::model
