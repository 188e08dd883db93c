// The learning-rate schedule against values computed by hand from RWKV-LM's
// formulas (trainer/schedule.h), the gradient buckets, and the metrics records.
#include <gtest/gtest.h>

#include <cmath>

#include "model/param_table.h"
#include "trainer/data_parallel.h"
#include "trainer/metrics_log.h"
#include "trainer/schedule.h"

namespace rwkv::trainer {
namespace {

// lr 1e-3 -> 1e-4 over 100 steps of 100 tokens, 10 of them warmup.
Schedule schedule(DecayKind kind, double lr_final = 1e-4) {
  Schedule s;
  s.lr_init = 1e-3;
  s.lr_final = lr_final;
  s.warmup_steps = 10;
  s.tokens_per_step = 100;
  s.total_tokens = 10000;
  s.decay = kind;
  return s;
}

TEST(Schedule, WarmupThenCosine) {
  const Schedule s = schedule(DecayKind::cosine);
  EXPECT_NEAR(learning_rate(s, 0, 0), 1e-5, 1e-15);       // 1e-3 x 0.01
  EXPECT_NEAR(learning_rate(s, 5, 500), 5.05e-4, 1e-15);  // 1e-3 x (0.01 + 0.99 x 0.5)
  EXPECT_NEAR(learning_rate(s, 10, 1000), 1e-3, 1e-15);   // progress 0
  // progress (5500 - 1000) / 9000 = 0.5: cos = 0, multiplier 0.5 + 0.1/2
  EXPECT_NEAR(learning_rate(s, 55, 5500), 5.5e-4, 1e-15);
  // progress 0.25: (0.55) + (0.45) cos(pi/4)
  EXPECT_NEAR(learning_rate(s, 32, 3250), 1e-3 * (0.55 + 0.45 * std::sqrt(0.5)), 1e-15);
  EXPECT_NEAR(learning_rate(s, 100, 10000), 1e-4, 1e-15);  // lr_final at the end
  EXPECT_NEAR(learning_rate(s, 200, 20000), 1e-4, 1e-15);  // and after
}

TEST(Schedule, Exponential) {
  const Schedule s = schedule(DecayKind::exponential);
  EXPECT_NEAR(learning_rate(s, 10, 1000), 1e-3, 1e-15);
  EXPECT_NEAR(learning_rate(s, 55, 5500), 1e-3 * std::sqrt(0.1), 1e-15);  // exp(ln(0.1) / 2)
  EXPECT_NEAR(learning_rate(s, 100, 10000), 1e-4, 1e-15);
  // lr_final 0: linear, as RWKV-LM does when either end is 0.
  const Schedule z = schedule(DecayKind::exponential, 0.0);
  EXPECT_NEAR(learning_rate(z, 55, 5500), 5e-4, 1e-15);
}

TEST(Schedule, ConstantWhenInitEqualsFinal) {
  const Schedule s = schedule(DecayKind::cosine, 1e-3);
  EXPECT_NEAR(learning_rate(s, 2, 200), 1e-3 * (0.01 + 0.99 * 0.2), 1e-15);
  EXPECT_DOUBLE_EQ(learning_rate(s, 70, 7000), 1e-3);
}

TEST(GradBuckets, CoverTheBufferLastParameterFirst) {
  const model::ParamTable table =
      model::build_param_table(model::make_model_config(7, 2, 64, 16, 512, 32));
  for (int64_t bucket : {int64_t{1}, int64_t{5000}, int64_t{1} << 30}) {
    const auto b = make_grad_buckets(table, bucket);
    ASSERT_FALSE(b.empty());
    EXPECT_EQ(b.front().offset + b.front().size, table.total);
    EXPECT_EQ(b.back().offset, 0);
    for (size_t i = 1; i < b.size(); ++i) {
      EXPECT_EQ(b[i].offset + b[i].size, b[i - 1].offset);  // contiguous, descending
      EXPECT_GE(b[i - 1].size, bucket);                     // only the last may be small
    }
    if (bucket == 1) {
      EXPECT_EQ(b.size(), table.params.size());  // one per parameter
    }
  }
}

TEST(MetricsLog, JsonRecords) {
  StepMetrics s;
  s.step = 7;
  s.loss = 2.5;
  s.lr = 1e-3;
  s.grad_norm = std::nan("");
  s.tokens = 1024;
  s.skipped = true;
  EXPECT_EQ(step_json(s),
            "{\"kind\":\"train\",\"step\":7,\"loss\":2.5,\"lr\":0.001,\"grad_norm\":null,"
            "\"tokens\":1024,\"tokens_per_s\":0,\"elapsed_s\":0,\"skipped\":true}");
  EvalMetrics e;
  e.step = 10;
  e.loss = 1.0;
  e.ppl = std::exp(1.0);
  e.bpb = 2.0;
  e.tokens = 64;
  e.loss_by_lang = {{"de", 0.5}};
  EXPECT_EQ(eval_json(e),
            "{\"kind\":\"eval\",\"step\":10,\"loss\":1,\"ppl\":2.71828183,\"bpb\":2,\"tokens\":64,"
            "\"loss_by_lang\":{\"de\":0.5},\"ppl_by_lang\":{\"de\":1.64872127}}");
}

}  // namespace
}  // namespace rwkv::trainer
