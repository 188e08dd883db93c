// Data parallelism on 2 ranks (tiny model, byte-level dataset):
//   - DP=2 with micro-batch 2, and DP=1 accumulating 2 micro-batches of 2, equal DP=1
//     with micro-batch 4 (the same global batch, the same windows): after 20 steps the
//     per-step losses and the final parameters agree within 1e-6 relative, the gradient
//     norms within 1e-5 (fp32; the runs sum the batch's gradients in different orders,
//     so they are close, not bitwise equal);
//   - a stop signal on one rank stops both after the same step with one checkpoint,
//     and resuming gives bitwise the parameters of an uninterrupted run.
#include <gtest/gtest.h>

#include <cmath>
#include <csignal>
#include <sstream>
#include <tuple>

#include "model/model_config.h"
#include "model/param_table.h"
#include "test_train_util.h"
#include "trainer/checkpoint.h"
#include "trainer/train_loop.h"

namespace rwkv::trainer {
namespace {

using namespace train_test;

// The same global batch of 4 windows per step three ways: one rank with micro-batch 4,
// two ranks with 2 each, one rank accumulating two micro-batches of 2.
TEST(TrainDataParallel, TwoRanksAndAccumulationEqualOneRankWithTheSameGlobalBatch) {
  const fs::path dir = fresh_dir("dp");
  const RemoveDir cleanup{dir};
  const std::string data = make_dataset(dir);
  const Config one = tiny_config(data, dir / "dp1", {"train.micro_batch_size=4"});
  const Config two = tiny_config(data, dir / "dp2", {"train.micro_batch_size=2"});
  const Config acc =
      tiny_config(data, dir / "acc", {"train.micro_batch_size=2", "train.grad_accum=2"});
  std::string ckpt1, ckpt_acc;
  if (world_rank() == 0) {
    ckpt1 = run_training(one, MPI_COMM_SELF).checkpoint;
    ckpt_acc = run_training(acc, MPI_COMM_SELF).checkpoint;
  }
  const TrainResult r2 = run_training(two, MPI_COMM_WORLD);
  if (world_rank() != 0) return;
  const auto l1 = series(dir / "dp1", "loss"), g1 = series(dir / "dp1", "grad_norm");
  ASSERT_EQ(l1.size(), 20u);
  EXPECT_LT(l1.back(), l1.front());
  const auto p1 = params_of(one, ckpt1);
  for (const auto& [name, cfg, ckpt] :
       {std::tuple{"dp2", two, r2.checkpoint}, std::tuple{"acc", acc, ckpt_acc}}) {
    const auto l = series(dir / name, "loss"), g = series(dir / name, "grad_norm");
    ASSERT_EQ(l.size(), 20u) << name;
    for (size_t i = 0; i < l1.size(); ++i) {
      EXPECT_NEAR(l[i], l1[i], 1e-6 * std::abs(l1[i])) << name << " step " << i + 1;
      // The gradient norm (before clipping) shows the averaging: AdamW and clipping
      // would hide a gradient off by a constant factor in the parameters.
      EXPECT_NEAR(g[i], g1[i], 1e-5 * g1[i]) << name << " step " << i + 1;
    }
    const double rel = relative_l2(p1, params_of(cfg, ckpt));
    EXPECT_LT(rel, 1e-6) << name;
    std::printf("%s vs one rank after 20 steps: relative L2 difference of the parameters %.3g\n",
                name, rel);
  }
}

TEST(TrainDataParallel, StopSignalOnOneRankThenResumeIsExact) {
  const fs::path dir = fresh_dir("dp_resume");
  const RemoveDir cleanup{dir};
  const std::string data = make_dataset(dir);
  const auto sets = std::vector<std::string>{"train.steps=10"};
  const Config full = tiny_config(data, dir / "full", sets);
  const Config split = tiny_config(data, dir / "split", sets);
  const TrainResult a = run_training(full, MPI_COMM_WORLD);
  const TrainResult b = run_training(split, MPI_COMM_WORLD, [](int64_t step, std::span<float>) {
    if (step == 4 && world_rank() == 1) std::raise(SIGUSR1);
  });
  EXPECT_EQ(b.outcome, TrainOutcome::preempted);
  EXPECT_EQ(b.step, 4);          // both ranks stop after the same step
  EXPECT_EQ(b.signal, SIGUSR1);  // on both ranks
  const TrainResult c = run_training(split, MPI_COMM_WORLD);
  EXPECT_EQ(c.outcome, TrainOutcome::finished);
  if (world_rank() != 0) return;
  std::map<double, double> la, lc;  // by step; the resumed run logs steps 1-4 then 5-10
  for (const auto& l : metrics_lines(dir / "full", "train"))
    la[json_number(l, "step")] = json_number(l, "loss");
  for (const auto& l : metrics_lines(dir / "split", "train"))
    lc[json_number(l, "step")] = json_number(l, "loss");
  EXPECT_EQ(la, lc);
  EXPECT_EQ(params_of(full, a.checkpoint), params_of(split, c.checkpoint));
}

}  // namespace
}  // namespace rwkv::trainer
