#pragma once
// Shared by the CUDA kernel tests (label gpu): skipping without a GPU, random
// inputs, and device buffers that can be poisoned with NaN (bytes 0xFF) so that an
// element a kernel leaves unwritten is caught.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"
#include "tests/kernels/wkv_test_util.h"

#define SKIP_WITHOUT_GPU()                                                 \
  do {                                                                     \
    const auto info = rwkv::cuda::query_devices();                         \
    if (info.count == 0) GTEST_SKIP() << "no usable GPU: " << info.reason; \
  } while (0)

// fp32 inputs, as the CUDA kernels take.
inline std::vector<float> uniform(size_t n, double lo, double hi, std::mt19937& rng) {
  return rwkv::kernels::test::uniform<float>(n, lo, hi, rng);
}

// A device copy of a float vector, freed on scope exit.
struct DevBuf {
  float* p = nullptr;
  size_t n = 0;
  explicit DevBuf(size_t count) : n(count) {
    if (n) CUDA_CHECK(cudaMalloc(&p, n * sizeof(float)));
  }
  explicit DevBuf(const std::vector<float>& h) : DevBuf(h.size()) {
    if (n) CUDA_CHECK(cudaMemcpy(p, h.data(), n * sizeof(float), cudaMemcpyHostToDevice));
  }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  ~DevBuf() { cudaFree(p); }
  void poison() {
    if (n) CUDA_CHECK(cudaMemset(p, 0xff, n * sizeof(float)));
  }
  std::vector<float> get() const {
    std::vector<float> h(n);
    if (n) CUDA_CHECK(cudaMemcpy(h.data(), p, n * sizeof(float), cudaMemcpyDeviceToHost));
    return h;
  }
};

inline bool is_poison(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u == 0xffffffffu;
}
