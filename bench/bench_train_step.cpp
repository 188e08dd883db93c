// One full training step (forward + backward + AdamW) on the CPU backend, fp32, for a
// 6-layer C = 512 model at vocab 8192, B = 4, T = 512 (head size 64, official
// dim_ffn), one benchmark per version. Reports tokens/s and the achieved GFLOP/s
// (training FLOPs per token from model/param_count.h), next to the rate OpenBLAS's
// sgemm reaches on its own threads (OPENBLAS_NUM_THREADS, default one per CPU) for the
// block's product shape, [2048 x 512] x [512 x 2048]:
//   - BM_Sgemm: that sgemm alone, timed before the steps;
//   - in each BM_TrainStep, "sgemm GFLOP/s": the best of 3 of it right before each
//     step (then 0.3 s for OpenBLAS's threads to stop spinning), and "% of sgemm", the
//     step's rate over it: the two rates of the same minute on the shared machine,
//     rather than a step against a rate measured once before all of them.
// The second argument: 1 = with activation recomputation (train.recompute: full);
// "activation MB" is what the step's forward allocates (Model::activation_bytes).
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include "bench/train_step_shape.h"
#include "kernels/cpu/backend_cpu.h"
#include "model/param_count.h"

namespace {

using bench::kB, bench::kEmbd, bench::kT;

constexpr int kM = kB * kT, kK = kEmbd, kN = 4 * kEmbd;

// The block's product shape on OpenBLAS's threads: c = a b^T.
struct Sgemm {
  std::vector<float> a = std::vector<float>(size_t(kM) * kK, 0.5f);
  std::vector<float> b = std::vector<float>(size_t(kN) * kK, 0.25f);
  std::vector<float> c = std::vector<float>(size_t(kM) * kN);
  static constexpr double kFlops = 2.0 * kM * kN * kK;
  void operator()() {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, kM, kN, kK, 1.0f, a.data(), kK, b.data(),
                kK, 0.0f, c.data(), kN);
    benchmark::DoNotOptimize(c.data());
  }
};

// OpenBLAS's thread control: every CPU backend sets one thread for its own calls, so
// the count OpenBLAS starts with is read before any exists.
extern "C" int openblas_get_num_threads();
extern "C" void openblas_set_num_threads(int);
const int kBlasThreads = openblas_get_num_threads();

void BM_Sgemm(benchmark::State& state) {
  Sgemm sgemm;
  for (auto _ : state) sgemm();
  state.counters["GFLOP/s"] = benchmark::Counter(Sgemm::kFlops * double(state.iterations()) / 1e9,
                                                 benchmark::Counter::kIsRate);
}

void BM_TrainStep(benchmark::State& state) {
  rwkv::kernels::CpuBackend<float> be;  // WKV chunk 16, one thread per CPU
  const bool recompute = state.range(1) != 0;
  bench::TrainStep train_step(static_cast<int>(state.range(0)), be, recompute);
  Sgemm sgemm;
  train_step();  // warm-up: allocates and first-touches the activations
  double sgemm_seconds = 0;
  for (auto _ : state) {
    openblas_set_num_threads(kBlasThreads);
    double best = 1e30;
    for (int r = 0; r < 3; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      sgemm();
      best = std::min(best,
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    sgemm_seconds += best;
    openblas_set_num_threads(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(train_step());
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  const double steps = double(state.iterations());
  const double tokens = double(kB) * kT * steps;
  const double gflop =
      tokens * double(rwkv::model::count_flops(train_step.cfg).training_per_token) / 1e9;
  const double sgemm_gflops = Sgemm::kFlops * steps / sgemm_seconds / 1e9;
  state.counters["tokens/s"] = benchmark::Counter(tokens, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] = benchmark::Counter(gflop, benchmark::Counter::kIsRate);
  state.counters["sgemm GFLOP/s"] = sgemm_gflops;
  state.counters["% of sgemm"] =
      benchmark::Counter(gflop / sgemm_gflops * 100, benchmark::Counter::kIsRate);
  state.counters["activation MB"] =
      double(rwkv::model::Model<float>::activation_bytes(train_step.cfg, train_step.model.ranges,
                                                         recompute, kB, kT)) /
      1e6;
}

}  // namespace

BENCHMARK(BM_Sgemm)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_TrainStep)
    ->ArgNames({"version", "recompute"})
    ->ArgsProduct({{4, 5, 6, 7}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseManualTime()
    ->Iterations(3);
