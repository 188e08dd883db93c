// The `small` preset's 50-step loss curve on the CPU backend against the committed one
// (tests/model/loss_curve.h; the GPU test compares the CUDA backend's curve with
// the same file). Rewrite the file after a change that moves the CPU's numbers:
//   RWKV_WRITE_LOSS_CURVE=1 build/tests/model/test_small_preset_curve
// Measure: |loss - committed| / committed at every step <= 1e-4. The same code sums in
// another order with another thread count, chunk length or OpenBLAS kernel: on the
// development machine 1 vs 2 threads and chunk 8 vs 16 differ by at most 1.1e-7 over
// the 50 steps.
#include <gtest/gtest.h>

#include <cstdlib>

#include "common/config.h"
#include "kernels/cpu/backend_cpu.h"
#include "model/model_config.h"
#include "tests/model/loss_curve.h"

namespace rwkv::model {
namespace {

// The curve's model is the preset's.
TEST(SmallPresetCurve, ConfigIsThePreset) {
  const ModelConfig want = model_config_from(load_config({"", {"model.preset=small"}}));
  const ModelConfig got = test::small_preset_config();
  EXPECT_EQ(got.version, want.version);
  EXPECT_EQ(got.n_layer, want.n_layer);
  EXPECT_EQ(got.n_embd, want.n_embd);
  EXPECT_EQ(got.head_size, want.head_size);
  EXPECT_EQ(got.vocab_size, want.vocab_size);
  EXPECT_EQ(got.ctx_len, want.ctx_len);
  EXPECT_EQ(got.dim_ffn, want.dim_ffn);
  EXPECT_EQ(got.norm, want.norm);
  EXPECT_EQ(got.ffn_activation, want.ffn_activation);
}

TEST(SmallPresetCurve, CpuMatchesTheCommittedCurve) {
  kernels::CpuBackend<float> cpu;
  const std::vector<double> curve = test::small_preset_loss_curve(cpu);
  const std::string path = test::small_preset_curve_path();
  if (std::getenv("RWKV_WRITE_LOSS_CURVE")) {
    test::write_loss_curve(path, curve);
    GTEST_SKIP() << "wrote " << path;
  }
  const std::vector<double> ref = test::read_loss_curve(path);
  ASSERT_EQ(curve.size(), ref.size()) << path;
  for (size_t s = 0; s < ref.size(); ++s)
    EXPECT_NEAR(curve[s], ref[s], 1e-4 * ref[s]) << "step " << s + 1;
  EXPECT_LT(ref.back(), ref.front() - 0.5);  // it trains: the GPU test compares a moving curve
}

}  // namespace
}  // namespace rwkv::model
