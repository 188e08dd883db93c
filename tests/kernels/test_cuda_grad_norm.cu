// Gradient clipping's ops on the GPU (label gpu) against the CPU (kernels/cpu/grad_norm.h)
// through the CUDA backend: sum_squares of random values at sizes below one block, at one
// block, and beyond the first pass's 1024 blocks, relative error <= 1e-12 (double
// accumulation, another order of additions), and the same bits on every call
// (deterministic reduction); scale exact (one float product per element). Also the
// MAXLOC index mask of the NCCL TP collectives (kernels/cuda/maxloc.h), exact.
#include <gtest/gtest.h>

#include <climits>
#include <random>
#include <vector>

#include "kernels/cpu/grad_norm.h"
#include "kernels/cuda/backend_cuda.h"
#include "kernels/cuda/maxloc.h"
#include "tests/kernels/cuda_test_util.h"

namespace {

TEST(CudaGradNorm, SumSquaresAndScale) {
  SKIP_WITHOUT_GPU();
  rwkv::kernels::CudaBackend<float> be(size_t{256} << 20);
  std::mt19937 rng(5);
  for (int64_t n : {int64_t{1}, int64_t{255}, int64_t{256}, int64_t{70001}, int64_t{3} << 20}) {
    const auto h = uniform(static_cast<size_t>(n), -4, 4, rng);
    float* d = be.alloc(n);
    be.upload(d, h.data(), n);
    const double ref = rwkv::kernels::sum_squares(h.data(), n);
    const double got = be.sum_squares(d, n);
    EXPECT_LE(std::abs(got - ref), 1e-12 * ref) << "n " << n;
    EXPECT_EQ(be.sum_squares(d, n), got) << "n " << n << ": not repeatable";
    be.scale(d, -0.61f, n);
    std::vector<float> back(static_cast<size_t>(n));
    be.download(back.data(), d, n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(back[i], h[i] * -0.61f) << "n " << n << " at " << i;
    be.free(d);
  }
}

TEST(CudaMaxloc, KeepIndexOfMax) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(6);
  const size_t n = 3001;
  const auto local = uniform(n, -1, 1, rng);
  std::vector<float> max(n);
  std::vector<int32_t> idx(n);
  for (size_t i = 0; i < n; ++i) {
    max[i] = i % 3 == 0 ? local[i] : local[i] + 0.5f;  // a third hold the maximum
    idx[i] = static_cast<int32_t>(rng() % 1000);
  }
  DevBuf dl(local), dm(max);
  DevIds di(idx);
  rwkv::cuda::maxloc_keep_index(di.p, dl.p, dm.p, static_cast<int64_t>(n), nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  const auto got = di.get();
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(got[i], i % 3 == 0 ? idx[i] : INT32_MAX) << i;
}

}  // namespace
