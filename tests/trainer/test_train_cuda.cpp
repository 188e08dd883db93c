// `rwkv train` on a GPU (train.device: cuda; labels gpu and mpi, one rank; skipped
// with the reason where no GPU is visible). The tiny model on the byte-level dataset:
//   - 10 steps on the GPU in fp32 track the same 10 steps on the CPU backend: every
//     step's loss within 1e-3 relative (the 50-step curves of tests/model/
//     test_cuda_model.cu stay within 1e-3 as fp32 rounding differences grow), the final
//     parameters within 1e-4 relative L2;
//     with either WKV form (train.wkv: sequential, chunked);
//   - bf16 products: every step's loss within 5e-3 relative of the fp32 GPU run (the
//     issue's bf16 tolerance);
//   - bf16 activations (train.activations: bf16) on the GPU track the same on the CPU
//     (the reference of bf16 activations): every step's loss within 5e-3 relative, and a
//     stop and resume is exact there too;
//   - a stop signal at step 5 and a resume give the uninterrupted run's losses and
//     bitwise-identical parameters (the CUDA kernels are deterministic: no atomics).
#include <gtest/gtest.h>

#include <csignal>

#include "test_train_util.h"
#include "tests/kernels/cuda_test_util.h"

namespace rwkv::trainer {
namespace {

using namespace train_test;

struct Env {
  fs::path dir = fresh_dir("cuda");
  std::string data = make_dataset(dir);
  ~Env() { fs::remove_all(dir); }
};

const Env& env() {
  static const Env e;
  return e;
}

const std::vector<std::string> kSets = {"train.steps=10", "train.grad_accum=2",
                                        "train.gpu_memory=4"};

void expect_curves_close(const std::vector<double>& got, const std::vector<double>& ref, double tol,
                         const char* what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  for (size_t i = 0; i < ref.size(); ++i)
    EXPECT_NEAR(got[i], ref[i], tol * ref[i]) << what << ", step " << i + 1;
}

// The GPU with each WKV form (train.wkv: sequential, chunked) against one CPU run.
TEST(TrainCuda, TracksTheCpuRun) {
  SKIP_WITHOUT_GPU();
  const fs::path cpu = env().dir / "cpu";
  auto with = [&](const fs::path& rd, const std::string& device, const std::string& wkv) {
    auto sets = kSets;
    sets.push_back("train.device=" + device);
    sets.push_back("train.wkv=" + wkv);
    return tiny_config(env().data, rd, sets);
  };
  const TrainResult a = run_training(with(cpu, "cpu", "auto"), MPI_COMM_WORLD);
  const Config cfg = with(cpu, "cpu", "auto");
  for (const std::string wkv : {"sequential", "chunked"}) {
    const fs::path gpu = env().dir / ("gpu_" + wkv);
    const TrainResult b = run_training(with(gpu, "cuda", wkv), MPI_COMM_WORLD);
    ASSERT_EQ(b.outcome, TrainOutcome::finished) << wkv;
    expect_curves_close(losses(gpu), losses(cpu), 1e-3, ("gpu (" + wkv + " WKV) vs cpu").c_str());
    EXPECT_LE(relative_l2(params_of(cfg, a.checkpoint), params_of(cfg, b.checkpoint)), 1e-4) << wkv;
  }
}

TEST(TrainCuda, Bf16ProductsTrackFp32) {
  SKIP_WITHOUT_GPU();
  const fs::path fp32 = env().dir / "fp32", bf16 = env().dir / "bf16";
  auto sets = kSets;
  sets.push_back("train.device=cuda");
  run_training(tiny_config(env().data, fp32, sets), MPI_COMM_WORLD);
  sets.push_back("train.matmul_precision=bf16");
  run_training(tiny_config(env().data, bf16, sets), MPI_COMM_WORLD);
  expect_curves_close(losses(bf16), losses(fp32), 5e-3, "bf16 vs fp32 loss");
}

TEST(TrainCuda, Bf16ActivationsTrackTheCpuReferenceAndResumeExactly) {
  SKIP_WITHOUT_GPU();
  const fs::path cpu = env().dir / "acts_cpu", gpu = env().dir / "acts_gpu",
                 split = env().dir / "acts_gpu_split";
  auto sets = kSets;
  sets.push_back("train.activations=bf16");
  auto on = [&](const fs::path& rd, const std::string& device) {
    auto s = sets;
    s.push_back("train.device=" + device);
    return tiny_config(env().data, rd, s);
  };
  run_training(on(cpu, "cpu"), MPI_COMM_WORLD);
  const TrainResult a = run_training(on(gpu, "cuda"), MPI_COMM_WORLD);
  ASSERT_EQ(a.outcome, TrainOutcome::finished);
  expect_curves_close(losses(gpu), losses(cpu), 5e-3, "bf16 activations, gpu vs cpu");
  const TrainResult b =
      run_training(on(split, "cuda"), MPI_COMM_WORLD, [](int64_t step, std::span<float>) {
        if (step == 5) std::raise(SIGTERM);
      });
  EXPECT_EQ(b.step, 5);
  const TrainResult c = run_training(on(split, "cuda"), MPI_COMM_WORLD);
  EXPECT_EQ(c.outcome, TrainOutcome::finished);
  const Config cfg = on(gpu, "cuda");
  EXPECT_EQ(params_of(cfg, a.checkpoint), params_of(cfg, c.checkpoint));
  EXPECT_EQ(losses(gpu), losses(split));
}

TEST(TrainCuda, StopSignalThenResumeIsExact) {
  SKIP_WITHOUT_GPU();
  const fs::path full = env().dir / "full", split = env().dir / "split";
  auto sets = kSets;
  sets.push_back("train.device=cuda");
  const TrainResult a = run_training(tiny_config(env().data, full, sets), MPI_COMM_WORLD);
  const TrainResult b = run_training(tiny_config(env().data, split, sets), MPI_COMM_WORLD,
                                     [](int64_t step, std::span<float>) {
                                       if (step == 5) std::raise(SIGTERM);
                                     });
  EXPECT_EQ(b.outcome, TrainOutcome::preempted);
  EXPECT_EQ(b.step, 5);
  const TrainResult c = run_training(tiny_config(env().data, split, sets), MPI_COMM_WORLD);
  EXPECT_EQ(c.outcome, TrainOutcome::finished);
  const Config cfg = tiny_config(env().data, full, sets);
  EXPECT_EQ(params_of(cfg, a.checkpoint), params_of(cfg, c.checkpoint));
  EXPECT_EQ(losses(full), losses(split));
}

}  // namespace
}  // namespace rwkv::trainer
