// One full training step (forward + backward + AdamW) on the CPU backend, fp32, for a
// 6-layer C = 512 model at vocab 8192, B = 4, T = 512 (head size 64, official
// dim_ffn), one benchmark per version. Reports tokens/s and the achieved GFLOP/s
// (training FLOPs per token from model/param_count.h), next to the sgemm rate
// OpenBLAS reaches on this machine in the same run: a [2048 x 512] x [512 x 2048]
// product, the shape of the block's matmuls. Thread count: OPENBLAS_NUM_THREADS.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <vector>

#include "bench/train_step_shape.h"
#include "kernels/cpu/backend_cpu.h"
#include "model/param_count.h"

namespace {

using bench::kB, bench::kEmbd, bench::kT;

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
  rwkv::kernels::CpuBackend<float> be;  // WKV chunk 16, one thread per CPU
  bench::TrainStep train_step(static_cast<int>(state.range(0)), be);
  train_step();  // warm-up: allocates and first-touches the activations
  for (auto _ : state) benchmark::DoNotOptimize(train_step());
  const double tokens = double(kB) * kT * double(state.iterations());
  const double flops = double(rwkv::model::count_flops(train_step.cfg).training_per_token);
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
