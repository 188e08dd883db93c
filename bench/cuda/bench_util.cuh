#pragma once
// What the GPU benchmarks share: device buffers, random fills made on the device (no host
// round trip for gigabytes of operands), the median time of a call by CUDA events, and
// main's device check and error report.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"

namespace bench {

// Uniform in [lo, hi) from a hash of (seed, index): reproducible, no host round trip.
__device__ inline float hash_uniform(uint32_t seed, size_t i, float lo, float hi) {
  uint32_t x = uint32_t(i) * 0x9e3779b9u ^ uint32_t(i >> 32) ^ (seed * 0x85ebca6bu);
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return lo + (hi - lo) * float(x >> 8) * (1.0f / 16777216.0f);
}

__global__ inline void fill_uniform(float* x, size_t n, uint32_t seed, float lo, float hi) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    x[i] = hash_uniform(seed, i, lo, hi);
}

inline void fill(float* x, size_t n, uint32_t seed, float lo, float hi) {
  fill_uniform<<<4096, 256>>>(x, n, seed, lo, hi);
  CUDA_CHECK_LAUNCH();
}

// n values of type T of device memory, freed with it.
template <typename T>
struct DevOf {
  T* p = nullptr;
  explicit DevOf(size_t n) { CUDA_CHECK(cudaMalloc(&p, n * sizeof(T))); }
  DevOf(const DevOf&) = delete;
  DevOf& operator=(const DevOf&) = delete;
  ~DevOf() { cudaFree(p); }
};
using Dev = DevOf<float>;

// Median milliseconds of `reps` calls of f after `warmup`, each timed with events on
// `stream` (f queues its work there).
inline double median_ms(const std::function<void()>& f, int warmup, int reps,
                        cudaStream_t stream = nullptr) {
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  for (int i = 0; i < warmup; ++i) f();
  CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<float> ms(static_cast<size_t>(reps));
  for (auto& m : ms) {
    CUDA_CHECK(cudaEventRecord(start, stream));
    f();
    CUDA_CHECK(cudaEventRecord(stop, stream));
    CUDA_CHECK(cudaEventSynchronize(stop));
    CUDA_CHECK(cudaEventElapsedTime(&m, start, stop));
  }
  CUDA_CHECK(cudaEventDestroy(start));
  CUDA_CHECK(cudaEventDestroy(stop));
  CUDA_CHECK(cudaDeviceSynchronize());  // errors of the calls surface here
  std::nth_element(ms.begin(), ms.begin() + reps / 2, ms.end());
  return ms[static_cast<size_t>(reps / 2)];
}

// A benchmark's main: run(info of device 0) when a GPU can be used; exit status 1 with the
// reason (no GPU, or what run threw) on stderr, prefixed by the benchmark's name.
inline int main_on_gpu(const char* name,
                       const std::function<void(const rwkv::cuda::DeviceInfo&)>& run) {
  const auto info = rwkv::cuda::query_devices();
  if (info.count == 0) {
    std::fprintf(stderr, "%s: no usable GPU: %s\n", name, info.reason.c_str());
    return 1;
  }
  try {
    run(info);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
    return 1;
  }
  return 0;
}

}  // namespace bench
