// The CUDA toolchain end to end (label gpu): the device answers, code built for
// its architecture runs, and checked calls name the failing call, file and line.
#include <gtest/gtest.h>

#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"
#include "tests/kernels/cuda_test_util.h"

namespace {

__global__ void iota_squared(int n, float* out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = static_cast<float>(i) * static_cast<float>(i);
}

}  // namespace

TEST(CudaDevice, ReportsWhyThereIsNoGpu) {
  const auto info = rwkv::cuda::query_devices();
  if (info.count > 0) {
    EXPECT_TRUE(info.reason.empty());
    EXPECT_GE(info.cc_major, 8) << info.name;
  } else {
    EXPECT_FALSE(info.reason.empty());
  }
}

TEST(CudaDevice, KernelBuiltForThisArchitectureRuns) {
  SKIP_WITHOUT_GPU();
  const int n = 100003;  // not a multiple of the block
  float* d = nullptr;
  CUDA_CHECK(cudaMalloc(&d, n * sizeof(float)));
  CUDA_CHECK(cudaMemset(d, 0xff, n * sizeof(float)));  // poison: NaN everywhere
  iota_squared<<<(n + 255) / 256, 256>>>(n, d);
  CUDA_CHECK_LAUNCH();
  std::vector<float> h(n);
  CUDA_CHECK(cudaMemcpy(h.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaFree(d));
  for (int i = 0; i < n; ++i) ASSERT_EQ(h[i], static_cast<float>(i) * static_cast<float>(i)) << i;
}

TEST(CudaDevice, CheckedCallNamesCallFileAndLine) {
  SKIP_WITHOUT_GPU();
  void* p = nullptr;
  try {
    CUDA_CHECK(cudaMalloc(&p, size_t{1} << 62));  // far beyond any card
    FAIL() << "a 4 EiB allocation succeeded";
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("cudaMalloc(&p, size_t{1} << 62)"), std::string::npos) << m;
    EXPECT_NE(m.find("test_cuda_device.cu:"), std::string::npos) << m;
    EXPECT_NE(m.find("cudaErrorMemoryAllocation"), std::string::npos) << m;
  }
}

TEST(CudaDevice, CublasAndNcclLoad) {
  SKIP_WITHOUT_GPU();
  cublasHandle_t h = nullptr;
  CUBLAS_CHECK(cublasCreate(&h));
  CUBLAS_CHECK(cublasDestroy(h));
  const std::string v = rwkv::cuda::library_versions();
  EXPECT_NE(v.find("nccl"), std::string::npos);
  std::printf("%s\n", v.c_str());
}
