// One full training step (forward + backward + AdamW) on the CPU backend, fp32, for a
// 6-layer C = 512 model at vocab 8192, B = 4, T = 512 (head size 64, official
// dim_ffn), one benchmark per version. Reports tokens/s and the achieved GFLOP/s
// (training FLOPs per token from model/param_count.h), next to the sgemm rate
// OpenBLAS reaches on this machine in the same run: a [2048 x 512] x [512 x 2048]
// product, the shape of the block's matmuls. Thread count: OPENBLAS_NUM_THREADS.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <random>
#include <vector>

#include "kernels/cpu/backend_cpu.h"
#include "model/model.h"
#include "model/param_count.h"

namespace {

constexpr int kLayers = 6, kEmbd = 512, kHead = 64, kVocab = 8192, kB = 4, kT = 512;

void BM_Sgemm(benchmark::State& state) {
  const int M = kB * kT, K = kEmbd, N = 4 * kEmbd;
  std::vector<float> a(size_t(M) * K, 0.5f), b(size_t(K) * N, 0.25f), c(size_t(M) * N);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a.data(), K, b.data(), K,
                0.0f, c.data(), N);
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * M * N * K * double(state.iterations()) / 1e9,
                                                 benchmark::Counter::kIsRate);
}

void BM_TrainStep(benchmark::State& state) {
  const int version = static_cast<int>(state.range(0));
  const rwkv::model::ModelConfig cfg =
      rwkv::model::make_model_config(version, kLayers, kEmbd, kHead, kVocab, kT);
  rwkv::kernels::CpuBackend<float> be;  // WKV chunk 16, one thread per CPU
  rwkv::model::Model<float> m(cfg, be);
  m.init(1);
  std::mt19937 rng(2);
  std::vector<int32_t> idx(size_t(kB) * kT), tgt(size_t(kB) * kT);
  for (auto& x : idx) x = static_cast<int32_t>(rng() % kVocab);
  for (auto& x : tgt) x = static_cast<int32_t>(rng() % kVocab);
  const rwkv::kernels::AdamWHyper h{6e-4, 0.9, 0.99, 1e-8, 0.1};
  int64_t step = 0;
  auto train_step = [&] {
    m.zero_grad();
    benchmark::DoNotOptimize(m.forward(idx, tgt, kB, kT));
    m.backward();
    m.adamw_step(h, ++step);
  };
  train_step();  // warm-up: allocates and first-touches the activations
  for (auto _ : state) train_step();
  const double tokens = double(kB) * kT * double(state.iterations());
  const double flops = double(rwkv::model::count_flops(cfg).training_per_token);
  state.counters["tokens/s"] = benchmark::Counter(tokens, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] = benchmark::Counter(tokens * flops / 1e9, benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK(BM_Sgemm)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_TrainStep)
    ->Arg(4)
    ->Arg(5)
    ->Arg(6)
    ->Arg(7)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(3);
