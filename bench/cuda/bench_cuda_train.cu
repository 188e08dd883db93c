// Training speed of the whole model on the CUDA backend, fp32 (model/model.h on
// kernels/cuda/backend_cuda.h): full steps (zero_grad, forward with the loss, backward
// with L2Wrap, AdamW), 2 warm-up steps, then kSteps steps timed together with CUDA
// events on the backend's stream. Printed per model: ms per step, tokens/s, and the
// TFLOP/s achieved by the model's training FLOPs (model::count_flops, model/param_count.h:
// 6 per matrix weight and token plus the WKV). Models: RWKV-7 0.1b
// (configs/model/rwkv7-0.1b.yaml: 12 layers, C 768, vocab 65536) at B 4, T 1024, and
// the small preset (configs/model/small.yaml: 6 layers, C 256, vocab 512) at B 16, T 512.
// Parameters are uniform in [-0.02, 0.02] (the official init's QR of the 65536-row
// embedding takes minutes with the reference LAPACK of GPU machines; the speed does not
// depend on the values); tokens are a fixed random stream. No data files are read.
// Command-line arguments are ignored (scripts/gpu_check.sh may pass some).
#include <cstdint>
#include <cstdio>
#include <exception>
#include <random>
#include <stdexcept>
#include <vector>

#include "kernels/cuda/backend_cuda.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"
#include "model/model.h"
#include "model/param_count.h"

namespace {

constexpr int kWarmup = 2, kSteps = 10;

struct Run {
  const char* name;
  rwkv::model::ModelConfig cfg;
  int B, T;
};

void bench(const Run& run) {
  using rwkv::kernels::CudaBackend;
  size_t free_bytes = 0, total_bytes = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  // All of the free memory but 2 GiB (cuBLAS's handle, the CUDA context's growth).
  const size_t reserve = size_t{2} << 30;
  if (free_bytes <= 2 * reserve)
    throw std::runtime_error("less than 4 GiB of free device memory for the arena");
  CudaBackend<float> be(free_bytes - reserve);
  rwkv::model::Model<float> m(run.cfg, be);

  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-0.02f, 0.02f);
  std::vector<float> p(static_cast<size_t>(m.table.total));
  for (float& x : p) x = u(rng);
  m.set_params(p);
  const int n = run.B * run.T;
  std::vector<int32_t> idx(static_cast<size_t>(n)), tgt(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    idx[static_cast<size_t>(i)] = static_cast<int32_t>(rng() % uint32_t(run.cfg.vocab_size));
    tgt[static_cast<size_t>(i)] = static_cast<int32_t>(rng() % uint32_t(run.cfg.vocab_size));
  }
  const rwkv::kernels::AdamWHyper h{1e-4, 0.9, 0.99, 1e-8, 0.1};
  double loss = 0;
  auto step = [&](int64_t t) {
    m.zero_grad();
    loss = m.forward(idx, tgt, run.B, run.T);
    m.backward();
    m.adamw_step(h, t);
  };
  for (int s = 1; s <= kWarmup; ++s) step(s);
  be.synchronize();

  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  CUDA_CHECK(cudaEventRecord(start, be.stream));
  for (int s = 1; s <= kSteps; ++s) step(kWarmup + s);
  CUDA_CHECK(cudaEventRecord(stop, be.stream));
  CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0;
  CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  CUDA_CHECK(cudaEventDestroy(start));
  CUDA_CHECK(cudaEventDestroy(stop));

  const double step_ms = ms / kSteps, tokens_per_s = n / (step_ms * 1e-3);
  const auto flops = rwkv::model::count_flops(run.cfg);
  const auto params = rwkv::model::count_params(run.cfg);
  std::printf(
      "train fp32 %-34s B=%-2d T=%-4d %6.1f M params: %8.2f ms/step, %9.0f tokens/s, %6.2f "
      "TFLOP/s (%.2f GFLOP/token), arena %.2f GB in use, last loss %.4f\n",
      run.name, run.B, run.T, params.total * 1e-6, step_ms, tokens_per_s,
      tokens_per_s * double(flops.training_per_token) * 1e-12,
      double(flops.training_per_token) * 1e-9, be.arena.used() * 1e-9, loss);
  std::fflush(stdout);
}

}  // namespace

int main() {
  const auto info = rwkv::cuda::query_devices();
  if (info.count == 0) {
    std::fprintf(stderr, "bench_cuda_train: no usable GPU: %s\n", info.reason.c_str());
    return 1;
  }
  std::printf("bench_cuda_train on %s (%d SMs), %d warm-up + %d timed steps\n", info.name.c_str(),
              info.sm_count, kWarmup, kSteps);
  using rwkv::model::make_model_config;
  const Run runs[] = {
      {"rwkv7-0.1b (L12 C768 V65536)", make_model_config(7, 12, 768, 64, 65536, 1024), 4, 1024},
      {"small (v7 L6 C256 V512)", make_model_config(7, 6, 256, 64, 512, 512), 16, 512},
  };
  try {
    for (const Run& r : runs) bench(r);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda_train: %s\n", e.what());
    return 1;
  }
  return 0;
}
