// `rwkv train` on two GPUs (train.device: cuda; labels gpu and mpi, two ranks; skipped
// with the reason unless every rank sees at least two GPUs): the NCCL collectives.
//   - data parallel, 2 ranks x micro-batch 1 vs 1 rank x micro-batch 2 (the same global
//     batch): every step's loss within 1e-5 relative, final parameters within 1e-5
//     relative L2 (the DP all-reduce on its own stream, overlapped with backward);
//   - tensor parallel, tp 2 vs 1 rank: the same bounds (NCCL all-reduces on the
//     backend's stream, MAXLOC as max + masked min for the vocab-parallel loss);
//   - tensor parallel with bf16 activations (the blocks' all-reduces in ncclBfloat16) vs
//     1 rank in fp32: losses and final parameters within 2e-2 relative (the bound of the
//     bf16 run on one rank against fp32, test_train_loop.cpp).
#include <gtest/gtest.h>

#include "kernels/cuda/device.h"
#include "test_train_util.h"

namespace rwkv::trainer {
namespace {

using namespace train_test;

#define SKIP_WITHOUT_TWO_GPUS()                                                      \
  do {                                                                               \
    const auto info = rwkv::cuda::query_devices();                                   \
    if (info.count < 2)                                                              \
      GTEST_SKIP() << "needs 2 GPUs, " << info.count << " visible. " << info.reason; \
  } while (0)

struct Env {
  fs::path dir = fresh_dir("cuda_multi");
  std::string data = make_dataset(dir);
  // Known now: the destructor runs at exit, after MPI_Finalize, when MPI may not be asked.
  bool owner = world_rank() == 0;
  ~Env() {
    if (owner) fs::remove_all(dir);
  }
};

const Env& env() {
  static const Env e;
  return e;
}

MPI_Comm solo() {  // world rank 0 alone
  static MPI_Comm c = [] {
    MPI_Comm out;
    MPI_Comm_split(MPI_COMM_WORLD, world_rank() == 0 ? 0 : MPI_UNDEFINED, 0, &out);
    return out;
  }();
  return c;
}

void compare_with_one_rank(const std::string& name, std::vector<std::string> sets_two,
                           std::vector<std::string> sets_one, double tol = 1e-5) {
  // solo() splits MPI_COMM_WORLD, a collective: every rank makes it here, before rank 0
  // alone trains on it (made there, only rank 0 would call the split, and wait forever).
  const MPI_Comm one_rank = solo();
  const fs::path two = env().dir / (name + "_two"), one = env().dir / (name + "_one");
  const std::vector<std::string> common = {"train.steps=8", "train.device=cuda",
                                           "train.gpu_memory=4"};
  sets_two.insert(sets_two.end(), common.begin(), common.end());
  sets_one.insert(sets_one.end(), common.begin(), common.end());
  std::string log;
  const TrainResult a =
      run_training(tiny_config(env().data, two, sets_two), MPI_COMM_WORLD, {}, &log);
  if (world_rank() != 0) return;
  EXPECT_NE(log.find("GPU"), std::string::npos) << log;
  const TrainResult b = run_training(tiny_config(env().data, one, sets_one), one_rank);
  const auto la = losses(two), lb = losses(one);
  ASSERT_EQ(la.size(), lb.size());
  for (size_t i = 0; i < la.size(); ++i) EXPECT_NEAR(la[i], lb[i], tol * lb[i]) << "step " << i + 1;
  const Config cfg = tiny_config(env().data, one, sets_one);
  EXPECT_LE(relative_l2(params_of(cfg, b.checkpoint), params_of(cfg, a.checkpoint)), tol);
}

TEST(TrainCudaMulti, DataParallelMatchesOneRank) {
  SKIP_WITHOUT_TWO_GPUS();
  compare_with_one_rank("dp", {"train.micro_batch_size=1"}, {"train.micro_batch_size=2"});
}

TEST(TrainCudaMulti, TensorParallelMatchesOneRank) {
  SKIP_WITHOUT_TWO_GPUS();
  compare_with_one_rank("tp", {"parallel.tp=2"}, {});
}

TEST(TrainCudaMulti, TensorParallelBf16ActivationsTrackFp32) {
  SKIP_WITHOUT_TWO_GPUS();
  compare_with_one_rank("tp_bf16", {"parallel.tp=2", "train.activations=bf16"}, {}, 2e-2);
}

}  // namespace
}  // namespace rwkv::trainer
