// Where the time of a training step's matrix products goes, product by product, and
// whether cuBLAS's own rounding to bf16 beats converting the operands first. The products
// are those of one step of the rwkv7-0.4b preset (24 layers, C 1024, vocab 65536) at the
// issue's end-to-end shape, B 2, T 4096 (bench_cuda_train's 0.4b run): recorded
// (ProfiledBackend::products, kernels/profiled_backend.h) from one step of the model on
// the CUDA backend at B 1, T 16 (a product's K, N, layout, leading dimensions and flags do
// not depend on the batch), then each distinct one run at M = B * T = 8192 every way:
//   fp32       cuda::matmul_forward / matmul_backward (CUBLAS_COMPUTE_32F, no TF32);
//   bf16       cuda::matmul_*_bf16, what CudaBackend's bf16 precision runs: the operands
//              rounded to bf16 by our conversion kernel, then bf16 GEMMs with fp32
//              accumulation; "convert" is the same conversions alone
//              (cuda::matmul_bf16_convert), so bf16 minus convert is the GEMMs';
//   fast bf16  cuda::matmul_*_fast_bf16: fp32 operands, cuBLAS rounds them inside the
//              product (CUBLAS_COMPUTE_32F_FAST_16BF).
// Each: one warm-up call, then the median of 5 timed with CUDA events. Printed per
// product: calls per step, milliseconds each way, TFLOP/s (2 M K N per GEMM) and, for
// forwards, the relative L2 error of both bf16 ways against the fp32 product (operands
// uniform in [-1, 1]); then the step's totals (each product's time times its calls).
// Command-line arguments are ignored (scripts/gpu_check.sh may pass some).
#include <cstdint>
#include <cstdio>
#include <exception>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/cuda/bench_util.cuh"
#include "kernels/cuda/backend_cuda.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/matmul.h"
#include "kernels/profiled_backend.h"
#include "model/model.h"

namespace {

using rwkv::kernels::ProductCall;
using rwkv::kernels::WLayout;

constexpr int kB = 2, kT = 4096, kWarmup = 1, kReps = 5;

// The distinct products of one step of `cfg` with their calls per step, M set to B * T.
std::map<ProductCall, int> record_products(const rwkv::model::ModelConfig& cfg) {
  const int B = 1, T = 16;
  rwkv::kernels::CudaBackend<float> be(size_t{16} << 30);
  rwkv::kernels::ProfiledBackend<float> profiled(be, nullptr);
  std::vector<ProductCall> calls;
  profiled.products = &calls;
  rwkv::model::Model<float> m(cfg, profiled);
  const std::vector<int32_t> idx(B * T, 1), tgt(B * T, 2);
  m.zero_grad();
  m.forward(idx, tgt, B, T);
  m.backward();
  be.synchronize();
  std::map<ProductCall, int> distinct;
  for (ProductCall p : calls) {
    if (p.M != B * T) throw std::runtime_error("a product over other than B * T rows");
    p.M = int64_t{kB} * kT;
    ++distinct[p];
  }
  return distinct;
}

std::string describe(const ProductCall& p) {
  char s[128];
  std::snprintf(s, sizeof s, "%s [%lld, %lld] @ [%lld, %lld]%s%s%s",
                p.backward ? (p.dx && p.dw ? "bwd dx+dw"
                              : p.dx       ? "bwd dx"
                                           : "bwd dw")
                           : "fwd",
                static_cast<long long>(p.M), static_cast<long long>(p.K),
                static_cast<long long>(p.K), static_cast<long long>(p.N),
                p.layout == WLayout::OutIn ? "" : " in-out",
                p.ldx != p.K || p.ldo != p.N ? " sliced" : "", p.accumulate ? " +=" : "");
  return s;
}

struct Times {
  double fp32 = 0, bf16 = 0, convert = 0, fast = 0;
  double err_bf16 = -1, err_fast = -1;  // forwards only
};

// ||a - ref||_2 / ||ref||_2 over n floats; a is overwritten with a - ref.
double relative_l2(float* a, const float* ref, int64_t n, cublasHandle_t handle) {
  const float minus_one = -1.f;
  float diff = 0, norm = 0;
  CUBLAS_CHECK(cublasSaxpy(handle, static_cast<int>(n), &minus_one, ref, 1, a, 1));
  CUBLAS_CHECK(cublasSnrm2(handle, static_cast<int>(n), a, 1, &diff));
  CUBLAS_CHECK(cublasSnrm2(handle, static_cast<int>(n), ref, 1, &norm));
  return double(diff) / double(norm);
}

Times time_product(const ProductCall& p, cublasHandle_t handle, cudaStream_t stream) {
  namespace cu = rwkv::cuda;
  const size_t xs = size_t(p.M * p.ldx), ws = size_t(p.K * p.N), os = size_t(p.M * p.ldo);
  bench::Dev x(xs), w(ws), out(os), dx(xs), dw(ws);
  bench::fill(x.p, xs, 1, -1, 1);
  bench::fill(w.p, ws, 2, -1, 1);
  bench::fill(out.p, os, 3, -1, 1);  // the forward's out, the backward's dout
  bench::fill(dx.p, xs, 4, -1, 1);
  bench::fill(dw.p, ws, 5, -1, 1);
  bench::Dev scratch(cu::matmul_bf16_scratch_bytes(p.M, p.K, p.N) / sizeof(float) + 1);

  Times t;
  float* gx = p.dx ? dx.p : nullptr;
  float* gw = p.dw ? dw.p : nullptr;
  if (!p.backward) {
    t.fp32 = bench::median_ms(
        [&] {
          cu::matmul_forward(out.p, p.ldo, x.p, p.ldx, w.p, p.M, p.K, p.N, p.layout, p.accumulate,
                             handle, stream);
        },
        kWarmup, kReps, stream);
    t.bf16 = bench::median_ms(
        [&] {
          cu::matmul_forward_bf16(out.p, p.ldo, x.p, p.ldx, w.p, p.M, p.K, p.N, p.layout,
                                  p.accumulate, scratch.p, handle, stream);
        },
        kWarmup, kReps, stream);
    t.convert = bench::median_ms(
        [&] {
          cu::matmul_bf16_convert(nullptr, p.ldo, x.p, p.ldx, w.p, p.M, p.K, p.N, scratch.p,
                                  stream);
        },
        kWarmup, kReps, stream);
    t.fast = bench::median_ms(
        [&] {
          cu::matmul_forward_fast_bf16(out.p, p.ldo, x.p, p.ldx, w.p, p.M, p.K, p.N, p.layout,
                                       p.accumulate, handle, stream);
        },
        kWarmup, kReps, stream);
    // Errors of the overwriting product: ref holds the fp32 one, other each bf16 way's.
    bench::Dev ref(os), other(os);
    CUDA_CHECK(cudaMemset(ref.p, 0, os * sizeof(float)));
    CUDA_CHECK(cudaMemset(other.p, 0, os * sizeof(float)));
    cu::matmul_forward(ref.p, p.ldo, x.p, p.ldx, w.p, p.M, p.K, p.N, p.layout, false, handle,
                       stream);
    cu::matmul_forward_bf16(other.p, p.ldo, x.p, p.ldx, w.p, p.M, p.K, p.N, p.layout, false,
                            scratch.p, handle, stream);
    t.err_bf16 = relative_l2(other.p, ref.p, int64_t(os), handle);
    cu::matmul_forward_fast_bf16(other.p, p.ldo, x.p, p.ldx, w.p, p.M, p.K, p.N, p.layout, false,
                                 handle, stream);
    t.err_fast = relative_l2(other.p, ref.p, int64_t(os), handle);
  } else {
    t.fp32 = bench::median_ms(
        [&] {
          cu::matmul_backward(gx, gw, out.p, p.ldo, x.p, p.ldx, w.p, p.M, p.K, p.N, p.layout,
                              p.accumulate, handle, stream);
        },
        kWarmup, kReps, stream);
    t.bf16 = bench::median_ms(
        [&] {
          cu::matmul_backward_bf16(gx, gw, out.p, p.ldo, x.p, p.ldx, w.p, p.M, p.K, p.N, p.layout,
                                   p.accumulate, scratch.p, handle, stream);
        },
        kWarmup, kReps, stream);
    t.convert = bench::median_ms(
        [&] {
          cu::matmul_bf16_convert(out.p, p.ldo, gw ? x.p : nullptr, p.ldx, gx ? w.p : nullptr, p.M,
                                  p.K, p.N, scratch.p, stream);
        },
        kWarmup, kReps, stream);
    t.fast = bench::median_ms(
        [&] {
          cu::matmul_backward_fast_bf16(gx, gw, out.p, p.ldo, x.p, p.ldx, w.p, p.M, p.K, p.N,
                                        p.layout, p.accumulate, handle, stream);
        },
        kWarmup, kReps, stream);
  }
  CUDA_CHECK(cudaDeviceSynchronize());
  return t;
}

void run() {
  const auto cfg = rwkv::model::make_model_config(7, 24, 1024, 64, 65536, 4096);
  const std::map<ProductCall, int> products = record_products(cfg);
  cudaStream_t stream = nullptr;
  CUDA_CHECK(cudaStreamCreate(&stream));
  cublasHandle_t handle = nullptr;
  CUBLAS_CHECK(cublasCreate(&handle));
  CUBLAS_CHECK(cublasSetStream(handle, stream));

  std::printf(
      "products of one rwkv7-0.4b step at B %d, T %d (%zu distinct), ms per call, median of %d\n"
      "| product | calls | fp32 | bf16 | of which convert | fast bf16 | fast / bf16 | bf16 "
      "TFLOP/s | fast TFLOP/s | rel L2 bf16 | rel L2 fast |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|\n",
      kB, kT, products.size(), kReps);
  Times total;
  double flops_total = 0;
  for (const auto& [p, calls] : products) {
    const Times t = time_product(p, handle, stream);
    const int gemms = p.backward ? int(p.dx) + int(p.dw) : 1;
    const double flops = 2.0 * double(p.M) * double(p.K) * double(p.N) * gemms;
    char errs[64] = "| - | - |";
    if (t.err_bf16 >= 0)
      std::snprintf(errs, sizeof errs, "| %.2e | %.2e |", t.err_bf16, t.err_fast);
    std::printf("| %s | %d | %.3f | %.3f | %.3f | %.3f | %.2f | %.0f | %.0f %s\n",
                describe(p).c_str(), calls, t.fp32, t.bf16, t.convert, t.fast, t.fast / t.bf16,
                flops / (t.bf16 * 1e9), flops / (t.fast * 1e9), errs);
    std::fflush(stdout);
    total.fp32 += calls * t.fp32;
    total.bf16 += calls * t.bf16;
    total.convert += calls * t.convert;
    total.fast += calls * t.fast;
    flops_total += calls * flops;
  }
  std::printf(
      "products of the step: fp32 %.1f ms, bf16 %.1f ms (conversions %.1f ms, GEMMs %.1f ms), "
      "fast bf16 %.1f ms (%.2fx bf16's time); %.2f TFLOP: bf16 %.0f TFLOP/s, fast bf16 %.0f "
      "TFLOP/s\n",
      total.fp32, total.bf16, total.convert, total.bf16 - total.convert, total.fast,
      total.fast / total.bf16, flops_total * 1e-12, flops_total / (total.bf16 * 1e9),
      flops_total / (total.fast * 1e9));
  CUBLAS_CHECK(cublasDestroy(handle));
  CUDA_CHECK(cudaStreamDestroy(stream));
}

}  // namespace

int main() {
  return bench::main_on_gpu("bench_cuda_matmul", [](const rwkv::cuda::DeviceInfo& info) {
    std::printf("bench_cuda_matmul on %s (%d SMs)\n", info.name.c_str(), info.sm_count);
    run();
  });
}
