// The CUDA toolchain end to end (label gpu): the device answers, code built for
// its architecture runs, and checked calls name the failing call, file and line.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/error.h"
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

// The message of a kernel that needs more shared memory than the card allows names
// the kernel, both sizes and the card (no GPU needed).
TEST(CudaDevice, SharedMemoryErrorNamesNeedLimitAndCard) {
  const std::string m = rwkv::cuda::shared_memory_error("wkv7_backward_chunked at head size 64",
                                                        164096, 101376, "NVIDIA L40S (sm_89)");
  EXPECT_EQ(m,
            "wkv7_backward_chunked at head size 64 needs 164096 bytes of shared memory per "
            "block; this GPU, NVIDIA L40S (sm_89), allows 101376");
}

// This card's opt-in limit: more than the 48 KB every block gets; require_shared_memory
// passes at the limit and throws one byte above it, naming the card.
TEST(CudaDevice, RequireSharedMemoryAtTheCardsLimit) {
  SKIP_WITHOUT_GPU();
  const size_t limit = rwkv::cuda::shared_memory_optin();
  EXPECT_GT(limit, size_t{48} << 10);
  EXPECT_NO_THROW(rwkv::cuda::require_shared_memory("at the limit", limit));
  const auto info = rwkv::cuda::query_devices();
  expect_error_with([&] { rwkv::cuda::require_shared_memory("one byte more", limit + 1); },
                    "one byte more needs " + std::to_string(limit + 1) +
                        " bytes of shared memory per block; this GPU, " + info.name);
  std::printf("opt-in shared memory per block: %zu bytes (%s)\n", limit,
              rwkv::cuda::device_description().c_str());
}
