// Parameter counts of the official presets against closed-form formulas written here
// from the official shapes (independently of model/param_table.cpp), and the FLOPs
// formula of docs/model.md.
#include <gtest/gtest.h>

#include <cmath>

#include "common/config.h"
#include "model/model_config.h"
#include "model/param_count.h"

namespace rwkv::model {
namespace {

// Official LoRA rank formula of RWKV-v7 train_temp: max(32, round(f sqrt(C) / 32) * 32).
int64_t lora7(double f, int64_t C) {
  return std::max<int64_t>(
      32, static_cast<int64_t>(std::nearbyint(f * std::sqrt(double(C)) / 32)) * 32);
}

// Per-block parameter count of each version (ln1, ln2 = 4C in every version).
int64_t block_params(int v, int64_t C, int64_t Fd) {
  const int64_t ffn_rkv = 2 * C + 2 * C * Fd + C * C;  // mix k, r; key, value; receptance
  switch (v) {
    case 4:
      return 4 * C + (2 * C + 3 * C + 4 * C * C) + ffn_rkv;
    case 5:
      return 4 * C + (4 * C + 2 * C + 5 * C * C + 2 * C) + ffn_rkv;
    case 6:
      return 4 * C + (6 * C + C * 160 + 5 * 32 * C + C + 2 * 64 * C + C + 5 * C * C + 2 * C) +
             ffn_rkv;
    default: {
      const int64_t w = lora7(2.5, C), a = lora7(2.5, C), vv = lora7(1.7, C), g = lora7(5, C);
      return 4 * C +
             (6 * C + (C + 2 * C * w) + (C + 2 * C * a) + (C + 2 * C * vv) + 2 * C * g + 3 * C +
              4 * C * C + 2 * C) +
             (C + 2 * C * Fd);
    }
  }
}

TEST(ParamCount, OfficialPresets) {
  for (int v : {4, 5, 6, 7})
    for (const char* size : {"0.1b", "0.4b", "1.5b", "2.9b", "7.2b"}) {
      const std::string preset = "rwkv" + std::to_string(v) + "-" + size;
      const Config c = load_config({"", {"model.preset=" + preset}});
      const ModelConfig m = model_config_from(c);
      const int64_t C = m.n_embd, V = m.vocab_size, L = m.n_layer, Fd = m.dim_ffn;
      const ParamCounts p = count_params(m);
      EXPECT_EQ(p.embedding, V * C) << preset;
      EXPECT_EQ(p.head, V * C + 2 * C) << preset;
      EXPECT_EQ(p.blocks, L * block_params(v, C, Fd) + 2 * C) << preset;
      EXPECT_EQ(p.total, p.embedding + p.blocks + p.head) << preset;
    }
}

TEST(ParamCount, KnownSizes) {
  // RWKV-7 0.1B (L12 D768, vocab 65536): LoRA ranks 64 / 64 / 32 / 128.
  const Config c = load_config({"", {"model.preset=rwkv7-0.1b"}});
  const ModelConfig m = model_config_from(c);
  EXPECT_EQ(m.v7_decay_lora(), 64);
  EXPECT_EQ(m.v7_aaa_lora(), 64);
  EXPECT_EQ(m.v7_mv_lora(), 32);
  EXPECT_EQ(m.v7_gate_lora(), 128);
  EXPECT_EQ(count_params(m).total, 191084544);
}

TEST(ParamCount, Flops) {
  // v5, C 64, N 16, L 2, V 100: matmuls 5C^2 + 2 C Fd + C^2 per block, plus the head.
  const ModelConfig m = make_model_config(5, 2, 64, 16, 100, 32);
  const FlopCounts f = count_flops(m);
  const int64_t C = 64, Fd = m.dim_ffn;
  EXPECT_EQ(f.matmul_params, 2 * (6 * C * C + 2 * C * Fd) + 100 * C);
  EXPECT_EQ(f.wkv_forward, 2 * 5 * C * 16);
  EXPECT_EQ(f.training_per_token, 6 * f.matmul_params + 3 * f.wkv_forward);
  // v7 layer 0 leaves out the unused value-residual LoRA.
  const ModelConfig m7 = make_model_config(7, 2, 64, 16, 100, 32);
  const int64_t lw = 32, la = 32, lv = 32, lg = 32;
  EXPECT_EQ(count_flops(m7).matmul_params,
            2 * (4 * C * C + 2 * C * 4 * C + 2 * C * (lw + la + lg)) + 2 * C * lv + 100 * C);
}

}  // namespace
}  // namespace rwkv::model
