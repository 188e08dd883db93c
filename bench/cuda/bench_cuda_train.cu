// Training speed of the whole model on the CUDA backend (model/model.h on
// kernels/cuda/backend_cuda.h), with fp32 products, with bf16 tensor-core products
// (MatmulPrecision; activations fp32) and with bf16 activations (CudaBackend<Bf16>: every
// per-token tensor in bf16, the products on them as they are): full steps (zero_grad, forward with
// the loss, backward with L2Wrap, AdamW), warm-up steps, then timed steps together with CUDA events
// on the backend's stream. Printed per model and precision: ms per step, tokens/s, the TFLOP/s
// achieved by the model's training FLOPs (model::count_flops, model/param_count.h: 6 per matrix
// weight and token plus the WKV), and the MFU: that rate over the card's dense bf16
// tensor-core rate measured first in the same run (the median of 5 cublasGemmEx
// products of 8192^3, bf16 operands, fp32 output and accumulation, as the model's
// products).
// Models: RWKV-7 0.1b (configs/model/rwkv7-0.1b.yaml: 12 layers, C 768, vocab 65536) at
// B 4, T 1024 and the small preset (6 layers, C 256, vocab 512) at B 16, T 512, both
// precisions; the issue's end-to-end shape, RWKV-7 0.4b (24 layers, C 1024, vocab
// 65536) at T 4096 in bf16 with the largest B of 4, 2, 1 whose step fits in a 60 GB
// arena (0.1b at B 4, T 1024 used 13.3 GB: about 7 MB a token at 0.4b, so B 2 is near
// the limit). Parameters are uniform in [-0.02, 0.02] (the official init's QR of the
// 65536-row embedding takes minutes with the reference LAPACK of GPU machines; the speed
// does not depend on the values); tokens are a fixed random stream. No data files are
// read. Command-line arguments are ignored (scripts/gpu_check.sh may pass some). The
// 0.4b run ends with one more step timed op by op (kernels/profiled_backend.h), printed
// as a table: where the step's time goes; it runs with the sequential WKV kernels, then
// with the chunked ones (CudaBackend's WkvKernels), each with fp32 and with bf16
// activations.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <random>
#include <stdexcept>
#include <vector>

#include "bench/cuda/bench_util.cuh"
#include "common/error.h"
#include "kernels/cuda/arena.h"
#include "kernels/cuda/backend_cuda.h"
#include "kernels/cuda/convert.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/op_clock_cuda.h"
#include "kernels/profiled_backend.h"
#include "model/model.h"
#include "model/param_count.h"

namespace {

using rwkv::kernels::MatmulPrecision;

struct Run {
  const char* name;
  rwkv::model::ModelConfig cfg;
  int B, T;
  MatmulPrecision precision;
  int warmup, steps;
  bool op_profile = false;  // then one more step, timed op by op (CUDA events)
  rwkv::kernels::WkvKernels wkv = rwkv::kernels::WkvKernels::sequential;
  bool bf16_activations = false;  // CudaBackend<Bf16> (then precision is bf16)
};

const char* precision_name(const Run& r) {
  if (r.bf16_activations) return "bf16 activations";
  return r.precision == MatmulPrecision::bf16 ? "bf16" : "fp32";
}

// The dense bf16 tensor-core rate of this card in TFLOP/s: median of 5 timed products
// [n, n] @ [n, n] after one warm-up, random operands (zeros draw less power).
double measure_bf16_gemm_tflops() {
  const int n = 8192;
  const size_t count = size_t{n} * n;
  std::vector<float> host(count);
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (float& x : host) x = u(rng);
  float *src = nullptr, *c = nullptr;
  __nv_bfloat16* a = nullptr;
  CUDA_CHECK(cudaMalloc(&src, count * sizeof(float)));
  CUDA_CHECK(cudaMalloc(&c, count * sizeof(float)));
  CUDA_CHECK(cudaMalloc(&a, count * sizeof(__nv_bfloat16)));
  CUDA_CHECK(cudaMemcpy(src, host.data(), count * sizeof(float), cudaMemcpyHostToDevice));
  rwkv::cuda::to_bf16(a, src, n, n, n, nullptr);
  cublasHandle_t handle;
  CUBLAS_CHECK(cublasCreate(&handle));
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  const float alpha = 1.f, beta = 0.f;
  std::vector<float> ms;
  for (int i = 0; i < 6; ++i) {
    CUDA_CHECK(cudaEventRecord(start, nullptr));
    CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a, CUDA_R_16BF, n,
                              a, CUDA_R_16BF, n, &beta, c, CUDA_R_32F, n, CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT));
    CUDA_CHECK(cudaEventRecord(stop, nullptr));
    CUDA_CHECK(cudaEventSynchronize(stop));
    float t = 0;
    CUDA_CHECK(cudaEventElapsedTime(&t, start, stop));
    if (i > 0) ms.push_back(t);  // the first is the warm-up
  }
  std::sort(ms.begin(), ms.end());
  const double median_ms = ms[ms.size() / 2];
  CUDA_CHECK(cudaEventDestroy(start));
  CUDA_CHECK(cudaEventDestroy(stop));
  CUBLAS_CHECK(cublasDestroy(handle));
  CUDA_CHECK(cudaFree(src));
  CUDA_CHECK(cudaFree(c));
  CUDA_CHECK(cudaFree(a));
  return 2.0 * n * n * double(n) / (median_ms * 1e-3) * 1e-12;
}

// All of the free memory but 2 GiB (cuBLAS's handle, the CUDA context's growth), at
// most max_bytes.
size_t arena_bytes(size_t max_bytes) {
  size_t free_bytes = 0, total_bytes = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  const size_t reserve = size_t{2} << 30;
  if (free_bytes <= 2 * reserve)
    throw std::runtime_error("less than 4 GiB of free device memory for the arena");
  return std::min(free_bytes - reserve, max_bytes);
}

// Times one run with activations of type A and prints its line; throws
// rwkv::cuda::ArenaFull when the arena is too small.
template <typename A>
void time_run_as(const Run& run, size_t max_arena_bytes, double peak_tflops) {
  using rwkv::kernels::CudaBackend;
  CudaBackend<A> be(arena_bytes(max_arena_bytes), run.precision, run.wkv);
  // Ops forwarded through ProfiledBackend, with no clock until the op profile.
  rwkv::kernels::ProfiledBackend<float, A> profiled(be, nullptr);
  rwkv::model::Model<float, A> m(run.cfg, profiled);

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
  for (int s = 1; s <= run.warmup; ++s) step(s);
  be.synchronize();

  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  CUDA_CHECK(cudaEventRecord(start, be.stream));
  for (int s = 1; s <= run.steps; ++s) step(run.warmup + s);
  CUDA_CHECK(cudaEventRecord(stop, be.stream));
  CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0;
  CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  CUDA_CHECK(cudaEventDestroy(start));
  CUDA_CHECK(cudaEventDestroy(stop));

  const double step_ms = ms / run.steps, tokens_per_s = n / (step_ms * 1e-3);
  const auto flops = rwkv::model::count_flops(run.cfg);
  const auto params = rwkv::model::count_params(run.cfg);
  const double tflops = tokens_per_s * double(flops.training_per_token) * 1e-12;
  std::printf(
      "train %s %-30s%s B=%-2d T=%-4d %6.1f M params: %8.2f ms/step, %9.0f tokens/s, %6.2f "
      "TFLOP/s, MFU %5.1f%% (%.2f GFLOP/token), arena %.2f GB in use, last loss %.4f\n",
      precision_name(run), run.name,
      run.wkv == rwkv::kernels::WkvKernels::chunked ? " chunked WKV" : "", run.B, run.T,
      params.total * 1e-6, step_ms, tokens_per_s, tflops, 100.0 * tflops / peak_tflops,
      double(flops.training_per_token) * 1e-9, be.arena.used() * 1e-9, loss);
  if (run.op_profile) {
    rwkv::cuda::CudaOpClock clock(be.stream);
    profiled.clock = &clock;
    step(run.warmup + run.steps + 1);
    profiled.clock = nullptr;
    std::printf("one step of the run above, op by op (CUDA events around each op):\n%s",
                rwkv::kernels::format_op_profile(clock.totals(), 1).c_str());
  }
  std::fflush(stdout);
}

void time_run(const Run& run, size_t max_arena_bytes, double peak_tflops) {
  if (run.bf16_activations)
    time_run_as<rwkv::kernels::Bf16>(run, max_arena_bytes, peak_tflops);
  else
    time_run_as<float>(run, max_arena_bytes, peak_tflops);
}

}  // namespace

int main() {
  return bench::main_on_gpu("bench_cuda_train", [](const rwkv::cuda::DeviceInfo& info) {
    using rwkv::model::make_model_config;
    const size_t all = SIZE_MAX, sixty_gb = size_t{60} * 1000 * 1000 * 1000;
    const double peak = measure_bf16_gemm_tflops();
    std::printf(
        "bench_cuda_train on %s (%d SMs); dense bf16 GEMM 8192^3 (fp32 accumulation and "
        "output): %.1f TFLOP/s, the MFU's denominator\n",
        info.name.c_str(), info.sm_count, peak);
    for (MatmulPrecision prec : {MatmulPrecision::fp32, MatmulPrecision::bf16}) {
      const Run runs[] = {
          {"rwkv7-0.1b (L12 C768 V65536)", make_model_config(7, 12, 768, 64, 65536, 1024), 4, 1024,
           prec, 2, 10},
          {"small (v7 L6 C256 V512)", make_model_config(7, 6, 256, 64, 512, 512), 16, 512, prec, 2,
           10},
      };
      for (const Run& r : runs) time_run(r, all, peak);
    }
    Run acts{"rwkv7-0.1b (L12 C768 V65536)",
             make_model_config(7, 12, 768, 64, 65536, 1024),
             4,
             1024,
             MatmulPrecision::bf16,
             2,
             10};
    acts.bf16_activations = true;
    time_run(acts, all, peak);
    // The issue's end-to-end shape: the largest batch that fits, fewer steps (each
    // takes seconds).
    for (auto wkv : {rwkv::kernels::WkvKernels::sequential, rwkv::kernels::WkvKernels::chunked})
      for (bool bf16_activations : {false, true})
        for (int B : {4, 2, 1}) {
          const Run r{"rwkv7-0.4b (L24 C1024 V65536)",
                      make_model_config(7, 24, 1024, 64, 65536, 4096),
                      B,
                      4096,
                      MatmulPrecision::bf16,
                      1,
                      3,
                      true,
                      wkv,
                      bf16_activations};
          try {
            time_run(r, sixty_gb, peak);
            break;
          } catch (const rwkv::cuda::ArenaFull& e) {  // try half the batch
            std::printf("rwkv7-0.4b %s B=%d T=4096 does not fit in a 60 GB arena (%s)\n",
                        precision_name(r), B, e.what());
          } catch (const rwkv::Error& e) {  // the next WKV form still runs
            std::printf("rwkv7-0.4b %s B=%d T=4096%s failed: %s\n", precision_name(r), B,
                        wkv == rwkv::kernels::WkvKernels::chunked ? " chunked WKV" : "", e.what());
            break;
          }
        }
  });
}
