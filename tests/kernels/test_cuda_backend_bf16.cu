// CudaBackend<Bf16>'s own pieces (label gpu), against the CPU reference of bf16
// activations (kernels/cpu/bf16_activations.h) on the same bf16 values: the memory ops
// (upload_act and round_act round to nearest even, download_act widens exactly, copy,
// zero and accumulate of bf16 buffers) bit for bit, and the products on bf16 operands
// with bf16 outputs (both weight layouts, column slices of wider tensors, accumulate or
// not; fp32 weight gradients) within 5e-3 relative L2 (cuBLAS and the CPU sum in other
// orders; each output is rounded once), with the columns outside a slice left untouched.
// The other ops: test_cuda_backend_ops.cu one by one, the WKV kernels in
// test_cuda_wkv{4,6,7}.cu, whole steps in tests/model/test_cuda_model.cu
// (Bf16ActivationsMatchCpuReference).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/bf16_activations.h"
#include "kernels/cuda/backend_cuda.h"
#include "tests/kernels/bf16_test_util.h"
#include "tests/kernels/cuda_test_util.h"

namespace rwkv::kernels {
namespace {

constexpr size_t kArenaBytes = size_t{64} << 20;

std::vector<float> bf16_values(size_t n, std::mt19937& rng, double lo = -1, double hi = 1) {
  std::vector<float> v = uniform(n, lo, hi, rng);
  cuda::test::round_to_bf16(v);
  return v;
}

// The same host values in a CudaBackend<Bf16> buffer and a CpuBf16Backend one.
struct Both {
  CudaBackend<Bf16> gpu{kArenaBytes, MatmulPrecision::bf16};
  CpuBf16Backend cpu{16, 1};
  std::pair<Bf16*, Bf16*> put(const std::vector<float>& host) {
    const int64_t n = int64_t(host.size());
    Bf16* g = gpu.alloc_act(n);
    Bf16* c = cpu.alloc_act(n);
    gpu.upload_act(g, host.data(), n);
    cpu.upload_act(c, host.data(), n);
    return {g, c};
  }
  std::pair<float*, float*> put_f(const std::vector<float>& host) {
    const int64_t n = int64_t(host.size());
    float* g = gpu.alloc(n);
    float* c = cpu.alloc(n);
    gpu.upload(g, host.data(), n);
    cpu.upload(c, host.data(), n);
    return {g, c};
  }
  std::pair<std::vector<float>, std::vector<float>> get(std::pair<Bf16*, Bf16*> p, int64_t n) {
    std::vector<float> g(static_cast<size_t>(n)), c(static_cast<size_t>(n));
    gpu.download_act(g.data(), p.first, n);
    cpu.download_act(c.data(), p.second, n);
    return {g, c};
  }
  std::pair<std::vector<float>, std::vector<float>> get_f(std::pair<float*, float*> p, int64_t n) {
    std::vector<float> g(static_cast<size_t>(n)), c(static_cast<size_t>(n));
    gpu.download(g.data(), p.first, n);
    cpu.download(c.data(), p.second, n);
    return {g, c};
  }
};

TEST(CudaBackendBf16, MemoryOpsRoundAndWiden) {
  SKIP_WITHOUT_GPU();
  Both b;
  std::mt19937 rng(1);
  // Values off the bf16 grid (ties to even among them), NaN, infinities, overflow.
  std::vector<float> host = uniform(1000, -3, 3, rng);
  for (float t : {1.00390625f, 1.01171875f, -1.00390625f, 3.4e38f, -3.4e38f, 1e-40f})
    host.push_back(t);
  host.push_back(INFINITY);
  const int64_t n = int64_t(host.size());
  const auto p = b.put(host);
  auto [g, c] = b.get(p, n);
  for (int64_t i = 0; i < n; ++i)
    EXPECT_EQ(g[size_t(i)], cuda::to_float(cuda::from_float<Bf16>(host[size_t(i)])))
        << "upload_act, element " << i;
  // round_act on the device from an fp32 buffer: the same rounding.
  float* f = b.gpu.alloc(n);
  b.gpu.upload(f, host.data(), n);
  Bf16* r = b.gpu.alloc_act(n);
  b.gpu.round_act(r, f, n);
  std::vector<float> rounded(static_cast<size_t>(n));
  b.gpu.download_act(rounded.data(), r, n);
  EXPECT_EQ(rounded, g) << "round_act";
  // copy, accumulate (a + a: exact in bf16 but for overflow), zero of a range.
  const auto q = std::make_pair(b.gpu.alloc_act(n), b.cpu.alloc_act(n));
  b.gpu.copy_act(q.first, p.first, n);
  b.cpu.copy_act(q.second, p.second, n);
  b.gpu.accumulate_act(q.first, p.first, n);
  b.cpu.accumulate_act(q.second, p.second, n);
  b.gpu.zero_act(q.first + 10, 20);
  b.cpu.zero_act(q.second + 10, 20);
  std::tie(g, c) = b.get(q, n);
  for (int64_t i = 0; i < n; ++i) {
    const bool same =
        g[size_t(i)] == c[size_t(i)] || (std::isnan(g[size_t(i)]) && std::isnan(c[size_t(i)]));
    EXPECT_TRUE(same) << "element " << i << ": " << g[size_t(i)] << " vs " << c[size_t(i)];
  }
}

// out [M, N] in columns of a row ldo wide; x [M, K] in columns of rows ldx wide.
TEST(CudaBackendBf16, ProductsMatchTheReference) {
  SKIP_WITHOUT_GPU();
  const int64_t M = 37, K = 48, N = 40, ldx = 56, ldo = 44;
  std::mt19937 rng(2);
  for (WLayout layout : {WLayout::OutIn, WLayout::InOut})
    for (bool acc : {false, true}) {
      const std::string where =
          std::string(layout == WLayout::OutIn ? "OutIn" : "InOut") + (acc ? ", +=" : "");
      Both b;
      const auto x = b.put(bf16_values(size_t(M * ldx), rng));
      const auto w = b.put(bf16_values(size_t(K * N), rng, -0.3, 0.3));
      const std::vector<float> out0 = bf16_values(size_t(M * ldo), rng);
      const auto out = b.put(out0);
      b.gpu.matmul_forward(out.first, ldo, x.first, ldx, w.first, M, K, N, layout, acc);
      b.cpu.matmul_forward(out.second, ldo, x.second, ldx, w.second, M, K, N, layout, acc);
      auto [g, c] = b.get(out, M * ldo);
      EXPECT_LE(test::rel_err(g, c), 5e-3) << "out, " << where;
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = N; j < ldo; ++j)
          ASSERT_EQ(g[size_t(i * ldo + j)], out0[size_t(i * ldo + j)])
              << "out outside the slice, row " << i << ", " << where;

      const auto dout = b.put(bf16_values(size_t(M * ldo), rng));
      const std::vector<float> dx0 = bf16_values(size_t(M * ldx), rng);
      const auto dx = b.put(dx0);
      const auto dw = b.put_f(uniform(size_t(K * N), -1, 1, rng));
      b.gpu.matmul_backward(dx.first, dw.first, dout.first, ldo, x.first, ldx, w.first, M, K, N,
                            layout, acc);
      b.cpu.matmul_backward(dx.second, dw.second, dout.second, ldo, x.second, ldx, w.second, M, K,
                            N, layout, acc);
      std::tie(g, c) = b.get(dx, M * ldx);
      EXPECT_LE(test::rel_err(g, c), 5e-3) << "dx, " << where;
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = K; j < ldx; ++j)
          ASSERT_EQ(g[size_t(i * ldx + j)], dx0[size_t(i * ldx + j)])
              << "dx outside the slice, row " << i << ", " << where;
      const auto [gw, cw] = b.get_f(dw, K * N);
      EXPECT_LE(test::rel_err(gw, cw), 1e-4)
          << "dw (fp32 output of exact bf16 products), " << where;
    }
}

// bf16 activations multiply their bf16 tensors as they are: asking for fp32 products is
// an error, before any CUDA call (no GPU needed).
TEST(CudaBackendBf16, Fp32ProductsAreRejected) {
  try {
    CudaBackend<Bf16> be(kArenaBytes, MatmulPrecision::fp32);
    FAIL() << "constructed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("MatmulPrecision::bf16"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace rwkv::kernels
