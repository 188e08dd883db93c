// The emulated GPU itself (emulated_cuda.h): barriers, warp shuffles, shared memory, the
// launch checks, poisoned allocations, cuBLAS's GemmEx and cub's sort; built twice, the
// second time under ThreadSanitizer (RWKV_EMULATED_RACES, emulated_races.h), where an
// unordered access must be reported as a race. Compiled only through to_host.py (label
// unit), never by nvcc: on a GPU these would test the GPU.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cuda/cuda_check.h"

namespace {

// Death tests run the test again in a new process rather than in a fork: a forked child
// does not keep ThreadSanitizer's fibers (the emulated threads) in a usable state.
void death_tests_in_new_process() { GTEST_FLAG_SET(death_test_style, "threadsafe"); }

// Each thread writes its index, then (after the barrier, when `barrier`) reads its right
// neighbour's: without the barrier some reads come before the neighbour's write.
__global__ void neighbour_kernel(int* out, bool barrier) {
  __shared__ int sh[256];
  const int t = int(threadIdx.x);
  sh[t] = t + 1000 * int(blockIdx.x);
  if (barrier) __syncthreads();
  out[blockIdx.x * blockDim.x + t] = sh[(t + 1) % blockDim.x];
}

std::vector<int> run_neighbours(bool barrier, int blocks, int threads) {
  int* d = nullptr;
  const size_t n = size_t(blocks) * size_t(threads);
  CUDA_CHECK(cudaMalloc(&d, n * sizeof(int)));
  neighbour_kernel<<<blocks, threads>>>(d, barrier);
  CUDA_CHECK_LAUNCH();
  std::vector<int> h(n);
  CUDA_CHECK(cudaMemcpy(h.data(), d, n * sizeof(int), cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaFree(d));
  return h;
}

TEST(EmulatedCuda, BarrierOrdersSharedMemory) {
  death_tests_in_new_process();
  const int blocks = 3, threads = 256;
  const std::vector<int> with = run_neighbours(true, blocks, threads);
  for (int b = 0; b < blocks; ++b)
    for (int t = 0; t < threads; ++t)
      ASSERT_EQ(with[size_t(b * threads + t)], (t + 1) % threads + 1000 * b) << b << " " << t;
#if defined(RWKV_EMULATED_RACES)
  // Without the barrier, TSan reports the first read of a neighbour's element.
  EXPECT_DEATH(run_neighbours(false, blocks, threads), "ThreadSanitizer: data race");
#else
  // Without the barrier, a good share of the reads miss their neighbour's write.
  const std::vector<int> without = run_neighbours(false, blocks, threads);
  int wrong = 0;
  for (int b = 0; b < blocks; ++b)
    for (int t = 0; t < threads; ++t)
      wrong += without[size_t(b * threads + t)] != (t + 1) % threads + 1000 * b;
  EXPECT_GT(wrong, blocks * threads / 8);
#endif
}

#if defined(RWKV_EMULATED_RACES)
// What orders a lane's write of shared memory before another lane's read of it.
enum class Order { block_barrier, warp_barrier, shuffle, none };

// Each thread writes its index, then reads the next lane's of its warp.
__global__ void lane_neighbour_kernel(int* out, Order order) {
  __shared__ int sh[64];
  const int t = int(threadIdx.x);
  sh[t] = t;
  if (order == Order::block_barrier) __syncthreads();
  if (order == Order::warp_barrier) __syncwarp();
  if (order == Order::shuffle) out[t] = __shfl_xor_sync(0xffffffffu, t, 1);
  out[t] = sh[t / 32 * 32 + (t + 1) % 32];
}

std::vector<int> run_lane_neighbours(Order order) {
  int* d = nullptr;
  CUDA_CHECK(cudaMalloc(&d, 64 * sizeof(int)));
  lane_neighbour_kernel<<<1, 64>>>(d, order);
  CUDA_CHECK_LAUNCH();
  std::vector<int> h(64);
  CUDA_CHECK(cudaMemcpy(h.data(), d, 64 * sizeof(int), cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaFree(d));
  return h;
}

// Both barriers order memory; a shuffle (which exchanges values, not memory) does not.
TEST(EmulatedCudaRaces, BarriersOrderMemoryShufflesDoNot) {
  death_tests_in_new_process();
  for (const Order order : {Order::block_barrier, Order::warp_barrier}) {
    const std::vector<int> h = run_lane_neighbours(order);
    for (int t = 0; t < 64; ++t) EXPECT_EQ(h[size_t(t)], t / 32 * 32 + (t + 1) % 32) << t;
  }
  EXPECT_DEATH(run_lane_neighbours(Order::shuffle), "ThreadSanitizer: data race");
  EXPECT_DEATH(run_lane_neighbours(Order::none), "ThreadSanitizer: data race");
}

// Every thread writes one element: a race even though they all write the same value, which
// the shuffled order alone cannot show.
__global__ void same_element_kernel(int* out) { out[0] = 1; }

TEST(EmulatedCudaRaces, ThreadsWritingOneElementRace) {
  death_tests_in_new_process();
  int* d = nullptr;
  CUDA_CHECK(cudaMalloc(&d, sizeof(int)));
  same_element_kernel<<<1, 1>>>(d);
  CUDA_CHECK_LAUNCH();
  EXPECT_DEATH(same_element_kernel<<<1, 2>>>(d), "ThreadSanitizer: data race");
  CUDA_CHECK(cudaFree(d));
}
#endif

// The sum over each warp's lanes by a butterfly of shuffles; a partial last warp too.
__global__ void warp_sum_kernel(float* out) {
  float x = float(threadIdx.x);
  for (int o = 16; o > 0; o /= 2) x += __shfl_xor_sync(0xffffffffu, x, o);
  out[threadIdx.x] = x;
}

TEST(EmulatedCuda, ShuffleSumsTheWarp) {
  const int threads = 96;
  float* d = nullptr;
  CUDA_CHECK(cudaMalloc(&d, threads * sizeof(float)));
  warp_sum_kernel<<<1, threads>>>(d);
  CUDA_CHECK_LAUNCH();
  std::vector<float> h(threads);
  CUDA_CHECK(cudaMemcpy(h.data(), d, threads * sizeof(float), cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaFree(d));
  for (int t = 0; t < threads; ++t) {
    const int w0 = t / 32 * 32;
    EXPECT_EQ(h[size_t(t)], float(32 * w0 + 31 * 32 / 2)) << t;
  }
}

__global__ void dynamic_shared_kernel(float* out, int n) {
  extern __shared__ float dyn[];
  if (threadIdx.x == 0) out[0] = dyn[0];  // never written: the poison
  for (int i = int(threadIdx.x); i < n; i += int(blockDim.x)) dyn[i] = float(i);
  __syncthreads();
  if (threadIdx.x == 0) out[1] = dyn[n - 1];
}

TEST(EmulatedCuda, LaunchChecksAndDynamicSharedMemory) {
  float* d = nullptr;
  CUDA_CHECK(cudaMalloc(&d, 2 * sizeof(float)));
  // More than 1024 threads, an empty grid: invalid configuration, nothing runs.
  dynamic_shared_kernel<<<1, 2048>>>(d, 1);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  dynamic_shared_kernel<<<0, 32>>>(d, 1);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidConfiguration);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);  // read once, then cleared
  // 64 KiB of dynamic shared memory is over the default 48 KiB until a kernel is allowed it.
  const int n = 16384;
  dynamic_shared_kernel<<<1, 128, n * sizeof(float)>>>(d, n);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
  CUDA_CHECK(cudaFuncSetAttribute(
      dynamic_shared_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(n * sizeof(float))));
  dynamic_shared_kernel<<<1, 128, n * sizeof(float)>>>(d, n);
  CUDA_CHECK_LAUNCH();
  float h[2];
  CUDA_CHECK(cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost));
  EXPECT_TRUE(std::isnan(h[0]));
  EXPECT_EQ(h[1], float(n - 1));
  // Over an sm_90 block's 227 KiB: refused whatever the attribute.
  EXPECT_EQ(cudaFuncSetAttribute(dynamic_shared_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 240 * 1024),
            cudaErrorInvalidValue);
  cudaGetLastError();
  CUDA_CHECK(cudaFree(d));
}

__global__ void barrier_skipped_kernel(int* out) {
  if (threadIdx.x == 0) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

__global__ void half_barrier_kernel(int* out) {
  if (threadIdx.x % 2 == 0) {
    __syncthreads();
  } else {
    __syncwarp();
  }
  out[threadIdx.x] = 1;
}

TEST(EmulatedCuda, ThreadsThatReturnDoNotHoldTheBarrierButSplitBarriersAbort) {
  death_tests_in_new_process();
  int* d = nullptr;
  CUDA_CHECK(cudaMalloc(&d, 64 * sizeof(int)));
  // As on sm_70 and later: a thread that has returned is not waited for.
  barrier_skipped_kernel<<<1, 64>>>(d);
  CUDA_CHECK_LAUNCH();
  std::vector<int> h(64);
  CUDA_CHECK(cudaMemcpy(h.data(), d, 64 * sizeof(int), cudaMemcpyDeviceToHost));
  for (int t = 1; t < 64; ++t) EXPECT_EQ(h[size_t(t)], 1) << t;
  EXPECT_DEATH(half_barrier_kernel<<<1, 64>>>(d),
               "cannot go on: of its 64 threads 32 wait at "
               "__syncthreads, 32 at a warp barrier");
  CUDA_CHECK(cudaFree(d));
}

TEST(EmulatedCuda, AllocationsArePoisonedWithNaN) {
  float* f = nullptr;
  __nv_bfloat16* b = nullptr;
  CUDA_CHECK(cudaMalloc(&f, 4 * sizeof(float)));
  CUDA_CHECK(cudaMalloc(&b, 4 * sizeof(__nv_bfloat16)));
  float hf[4];
  __nv_bfloat16 hb[4];
  CUDA_CHECK(cudaMemcpy(hf, f, sizeof hf, cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaMemcpy(hb, b, sizeof hb, cudaMemcpyDeviceToHost));
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(std::isnan(hf[i]));
    EXPECT_TRUE(std::isnan(__bfloat162float(hb[i])));
  }
  CUDA_CHECK(cudaFree(f));
  CUDA_CHECK(cudaFree(b));
}

__global__ void write_at_kernel(float* p, int i) { p[i] = 1.f; }

// A kernel reaching past either end of its buffer stops at a guard page, naming the
// allocation; a write within the 256-byte rounding of the size is found when it is freed.
TEST(EmulatedCuda, AccessesOutsideAnAllocationStop) {
  death_tests_in_new_process();
  float* d = nullptr;
  CUDA_CHECK(cudaMalloc(&d, 1024 * sizeof(float)));  // a whole page: no rounding
  write_at_kernel<<<1, 1>>>(d, 1023);
  CUDA_CHECK_LAUNCH();
  EXPECT_DEATH(write_at_kernel<<<1, 1>>>(d, 1024),
               "an access at byte 4096 of a device allocation of 4096 bytes at 0x[0-9a-f]+, "
               "outside it");
  EXPECT_DEATH(write_at_kernel<<<1, 1>>>(d, -1),
               "an access at byte -4 of a device allocation of 4096 bytes");
  float* e = nullptr;
  CUDA_CHECK(cudaMalloc(&e, 10 * sizeof(float)));
  EXPECT_DEATH(
      {
        write_at_kernel<<<1, 1>>>(e, 10);
        CUDA_CHECK_LAUNCH();
        CUDA_CHECK(cudaFree(e));
      },
      "a device allocation of 40 bytes at 0x[0-9a-f]+ was written past its end \\(byte 0 "
      "after it changed\\)");
  CUDA_CHECK(cudaFree(e));
  CUDA_CHECK(cudaFree(d));
  EXPECT_EQ(cudaFree(d), cudaErrorInvalidValue);  // freed already
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
}

// Column-major C = A B with every transpose, against a plain loop; bf16 operands and a bf16
// output rounded once; beta 1 accumulates; beta 0 ignores a NaN in C.
TEST(EmulatedCuda, GemmExIsTheColumnMajorProduct) {
  const int m = 5, n = 4, k = 3;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> a(size_t(m * k)), b(size_t(k * n));
  for (float& x : a) x = u(rng);
  for (float& x : b) x = u(rng);
  cublasHandle_t h = nullptr;
  CUBLAS_CHECK(cublasCreate(&h));
  for (const bool ta : {false, true})
    for (const bool tb : {false, true}) {
      // A stored as op(A) requires: [m, k] column-major (lda m), or its transpose (lda k).
      const auto a_at = [&](int i, int p) {
        return ta ? a[size_t(i * k + p)] : a[size_t(p * m + i)];
      };
      const auto b_at = [&](int p, int j) {
        return tb ? b[size_t(p * n + j)] : b[size_t(j * k + p)];
      };
      const auto want = [&](int i, int j) {
        double sum = 0;
        for (int p = 0; p < k; ++p) sum += double(a_at(i, p)) * b_at(p, j);
        return sum;
      };
      std::vector<float> c(size_t(m * n), NAN);
      const auto gemm = [&](float beta) {
        const float one = 1.f;
        CUBLAS_CHECK(cublasGemmEx(h, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                                  m, n, k, &one, a.data(), CUDA_R_32F, ta ? k : m, b.data(),
                                  CUDA_R_32F, tb ? n : k, &beta, c.data(), CUDA_R_32F, m,
                                  CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      };
      gemm(0.f);  // C holds NaN: beta 0 must not read it
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j)
          EXPECT_NEAR(c[size_t(j * m + i)], want(i, j), 1e-6) << ta << tb << i << j;
      gemm(1.f);
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) EXPECT_NEAR(c[size_t(j * m + i)], 2 * want(i, j), 2e-6);
    }
  std::vector<__nv_bfloat16> ab(a.size()), bb(b.size()), cb(size_t(m * n));
  for (size_t i = 0; i < a.size(); ++i) ab[i] = __float2bfloat16(a[i]);
  for (size_t i = 0; i < b.size(); ++i) bb[i] = __float2bfloat16(b[i]);
  const float one = 1.f, zero = 0.f;
  CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, ab.data(), CUDA_R_16BF, m,
                            bb.data(), CUDA_R_16BF, k, &zero, cb.data(), CUDA_R_16BF, m,
                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double want = 0;
      for (int p = 0; p < k; ++p)
        want += double(__bfloat162float(ab[size_t(p * m + i)])) *
                __bfloat162float(bb[size_t(j * k + p)]);
      EXPECT_EQ(__bfloat162float(cb[size_t(j * m + i)]),
                __bfloat162float(__float2bfloat16(float(want))));
    }
  EXPECT_EQ(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, a.data(), CUDA_R_32F, m - 1,
                         b.data(), CUDA_R_32F, k, &zero, std::vector<float>(size_t(m * n)).data(),
                         CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_INVALID_VALUE);
  CUBLAS_CHECK(cublasDestroy(h));
}

TEST(EmulatedCuda, RadixSortIsStableOnTheKeyBits) {
  // Keys 0..7 in the low 3 bits, a high bit that the sort must ignore.
  const std::vector<uint32_t> keys = {5, 3 | 256, 5 | 256, 0, 3, 7, 0 | 256, 5};
  std::vector<int32_t> values(keys.size());
  for (size_t i = 0; i < values.size(); ++i) values[i] = int32_t(i);
  std::vector<uint32_t> keys_out(keys.size());
  std::vector<int32_t> values_out(keys.size());
  size_t bytes = 0;
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, keys.data(), keys_out.data(),
                                             values.data(), values_out.data(), int(keys.size()), 0,
                                             3));
  std::vector<char> temp(bytes);
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.data(), bytes, keys.data(), keys_out.data(),
                                             values.data(), values_out.data(), int(keys.size()), 0,
                                             3));
  EXPECT_EQ(values_out, (std::vector<int32_t>{3, 6, 1, 4, 0, 2, 7, 5}));
  EXPECT_EQ(keys_out[2], 3u | 256u);
}

}  // namespace
