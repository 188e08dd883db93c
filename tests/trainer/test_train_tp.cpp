// Tensor parallelism in the trainer on 4 ranks (tiny model: 4 heads, byte dataset):
//   - tp = 2 x dp = 2 trains 20 steps like one rank with the same global batch: losses
//     and final parameters within 1e-5 relative;
//   - a run stopped at step 5 with tp = 2 and resumed with tp = 1 (dp = 4) and with
//     tp = 4 (dp = 1), the same global batch, continues like the uninterrupted tp = 2
//     run: steps 6-10 and the final parameters within 1e-5 relative; resumed with
//     tp = 2 again, bitwise;
//   - with bf16 activations (the blocks' all-reduces in bf16), tp = 2 x dp = 2 tracks the
//     fp32 run on one rank within 2% per step (the bound of one rank's bf16 run,
//     test_train_loop.cpp), and a run stopped at step 5 resumes at tp = 2 bitwise.
// Checkpoints are whole tensors whatever tp wrote them, so every run's parameters are
// read here with the one-rank table.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <sstream>
#include <string>
#include <tuple>

#include "model/model_config.h"
#include "model/param_table.h"
#include "test_train_util.h"
#include "trainer/checkpoint.h"
#include "trainer/train_loop.h"

namespace rwkv::trainer {
namespace {

using namespace train_test;

TEST(TrainTensorParallel, TwoByTwoGridMatchesOneRank) {
  const fs::path dir = fresh_dir("tp_grid");
  const RemoveDir cleanup{dir};
  const std::string data = make_dataset(dir);
  const Config one = tiny_config(data, dir / "one", {"train.micro_batch_size=4"});
  const Config grid =
      tiny_config(data, dir / "grid", {"train.micro_batch_size=2", "parallel.tp=2"});
  std::string ckpt_one;
  if (world_rank() == 0) ckpt_one = run_training(one, MPI_COMM_SELF).checkpoint;
  const TrainResult r = run_training(grid, MPI_COMM_WORLD);
  if (world_rank() != 0) return;
  const auto l1 = series(dir / "one", "loss"), l2 = series(dir / "grid", "loss");
  ASSERT_EQ(l1.size(), 20u);
  ASSERT_EQ(l2.size(), 20u);
  EXPECT_LT(l1.back(), l1.front());
  for (size_t i = 0; i < l1.size(); ++i)
    EXPECT_NEAR(l2[i], l1[i], 1e-5 * std::abs(l1[i])) << "step " << i + 1;
  const double rel = relative_l2(params_of(one, ckpt_one), params_of(grid, r.checkpoint));
  EXPECT_LT(rel, 1e-5);
  std::printf("tp 2 x dp 2 vs one rank after 20 steps: parameters differ by %.3g (relative L2)\n",
              rel);
}

TEST(TrainTensorParallel, CheckpointOfTpTwoResumesAtTpOneAndTpFour) {
  const fs::path dir = fresh_dir("tp_reshard");
  const RemoveDir cleanup{dir};
  const std::string data = make_dataset(dir);
  // The same global batch of 4 windows per step on 4 ranks in every layout.
  const std::vector<std::string> tp2 = {"train.steps=10", "parallel.tp=2",
                                        "train.micro_batch_size=2"};
  const Config full = tiny_config(data, dir / "full", tp2);
  const TrainResult a = run_training(full, MPI_COMM_WORLD);
  const Config stopped = tiny_config(data, dir / "stopped", tp2);
  const TrainResult b = run_training(stopped, MPI_COMM_WORLD, [](int64_t step, std::span<float>) {
    if (step == 5 && world_rank() == 3) std::raise(SIGUSR1);
  });
  ASSERT_EQ(b.outcome, TrainOutcome::preempted);
  ASSERT_EQ(b.step, 5);
  const auto full_losses = series(dir / "full", "loss");
  ASSERT_EQ(full_losses.size(), 10u);
  const auto want = params_of(full, a.checkpoint);
  for (const auto& [name, tp, micro] : {std::tuple{"tp1", "1", "1"}, std::tuple{"tp2", "2", "2"},
                                         std::tuple{"tp4", "4", "4"}}) {
    const fs::path run_dir = dir / name;
    if (world_rank() == 0) fs::copy(dir / "stopped", run_dir, fs::copy_options::recursive);
    MPI_Barrier(MPI_COMM_WORLD);
    const Config resumed = tiny_config(data, run_dir,
                                       {"train.steps=10", std::string("parallel.tp=") + tp,
                                        std::string("train.micro_batch_size=") + micro});
    const TrainResult c = run_training(resumed, MPI_COMM_WORLD);
    EXPECT_EQ(c.outcome, TrainOutcome::finished) << name;
    if (world_rank() != 0) continue;
    const auto l = series(run_dir, "loss");  // steps 1-5 from the tp = 2 run, then 6-10 resumed
    ASSERT_EQ(l.size(), 10u) << name;
    for (size_t i = 5; i < 10; ++i)
      EXPECT_NEAR(l[i], full_losses[i], 1e-5 * std::abs(full_losses[i]))
          << name << " step " << i + 1;
    const std::vector<float> got = params_of(resumed, c.checkpoint);
    const double rel = relative_l2(want, got);
    EXPECT_LT(rel, 1e-5) << name;
    // The same layout resumes exactly (the trainer's bitwise resume).
    if (std::string(name) == "tp2") {
      EXPECT_EQ(got, want) << "tp 2 resumed at tp 2 is not bitwise";
    }
    std::printf("stopped at tp 2, resumed at %s: final parameters differ by %.3g (relative L2)\n",
                name, rel);
  }
}

TEST(TrainTensorParallel, Bf16ActivationsOnTheGridTrackFp32AndResumeExactly) {
  const fs::path dir = fresh_dir("tp_bf16");
  const RemoveDir cleanup{dir};
  const std::string data = make_dataset(dir);
  const std::vector<std::string> grid = {"train.steps=10", "parallel.tp=2",
                                         "train.micro_batch_size=2", "train.activations=bf16"};
  const Config one = tiny_config(data, dir / "one", {"train.steps=10", "train.micro_batch_size=4"});
  if (world_rank() == 0) run_training(one, MPI_COMM_SELF);
  const Config full = tiny_config(data, dir / "full", grid);
  std::string log;
  const TrainResult a = run_training(full, MPI_COMM_WORLD, {}, &log);
  if (world_rank() == 0) {
    EXPECT_NE(log.find("bf16 activations"), std::string::npos) << log;
  }
  const Config split = tiny_config(data, dir / "split", grid);
  const TrainResult b = run_training(split, MPI_COMM_WORLD, [](int64_t step, std::span<float>) {
    if (step == 5 && world_rank() == 3) std::raise(SIGUSR1);
  });
  ASSERT_EQ(b.outcome, TrainOutcome::preempted);
  ASSERT_EQ(b.step, 5);
  const TrainResult c = run_training(split, MPI_COMM_WORLD);
  EXPECT_EQ(c.outcome, TrainOutcome::finished);
  if (world_rank() != 0) return;
  const auto l1 = series(dir / "one", "loss"), lg = series(dir / "full", "loss");
  ASSERT_EQ(l1.size(), 10u);
  ASSERT_EQ(lg.size(), 10u);
  double worst = 0;
  for (size_t i = 0; i < l1.size(); ++i) {
    EXPECT_NEAR(lg[i], l1[i], 0.02 * l1[i]) << "step " << i + 1;
    worst = std::max(worst, std::abs(lg[i] - l1[i]) / l1[i]);
  }
  EXPECT_EQ(series(dir / "split", "loss"), lg);
  EXPECT_EQ(params_of(split, c.checkpoint), params_of(full, a.checkpoint))
      << "stopped and resumed at tp 2 with bf16 activations is not bitwise";
  std::printf("bf16 activations, tp 2 x dp 2 vs fp32 on one rank: losses within %.2e relative\n",
              worst);
}

}  // namespace
}  // namespace rwkv::trainer
