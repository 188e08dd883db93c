// The bf16 storage of the kernel bodies (kernels/cuda/bf16.h) on the GPU (label gpu):
// from_float<Bf16> gives the bits of CUDA's __float2bfloat16_rn for every float but NaN
// (a NaN for a NaN), and to_float those of __bfloat162float for every bf16, so the
// bodies' bf16 instances round on the GPU exactly as the block emulator's do on the CPU
// (test_bf16.cpp checks the rounding there).
#include <cuda_bf16.h>
#include <gtest/gtest.h>

#include <cstdint>

#include "kernels/cuda/bf16.h"
#include "kernels/cuda/cuda_check.h"
#include "tests/kernels/cuda_test_util.h"

namespace {

// counts[0]: floats whose from_float differs from __float2bfloat16_rn (NaN: that is not a
// NaN); counts[1]: bf16 whose to_float differs from __bfloat162float (bits). first[k]: the
// lowest such input (atomicMin).
__global__ void compare_conversions(unsigned long long* counts, uint32_t* first) {
  const uint64_t stride = uint64_t(gridDim.x) * blockDim.x;
  for (uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; i < (uint64_t(1) << 32);
       i += stride) {
    const uint32_t u = uint32_t(i);
    const float x = __uint_as_float(u);
    const uint16_t ours = rwkv::cuda::from_float<rwkv::cuda::Bf16>(x).bits;
    const uint16_t cuda = __bfloat16_as_ushort(__float2bfloat16_rn(x));
    const bool nan = (u & 0x7fffffffu) > 0x7f800000u;
    const bool ours_nan = (ours & 0x7fffu) > 0x7f80u;
    if (nan ? !ours_nan : ours != cuda) {
      atomicAdd(&counts[0], 1ull);
      atomicMin(&first[0], u);
    }
    if (u < 0x10000u) {
      const rwkv::cuda::Bf16 b{uint16_t(u)};
      const float a = rwkv::cuda::to_float(b), c = __bfloat162float(__ushort_as_bfloat16(b.bits));
      if (__float_as_uint(a) != __float_as_uint(c)) {
        atomicAdd(&counts[1], 1ull);
        atomicMin(&first[1], u);
      }
    }
  }
}

TEST(CudaBf16, ConversionsMatchCudasForEveryValue) {
  SKIP_WITHOUT_GPU();
  unsigned long long* counts = nullptr;
  uint32_t* first = nullptr;
  CUDA_CHECK(cudaMalloc(&counts, 2 * sizeof(unsigned long long)));
  CUDA_CHECK(cudaMalloc(&first, 2 * sizeof(uint32_t)));
  CUDA_CHECK(cudaMemset(counts, 0, 2 * sizeof(unsigned long long)));
  CUDA_CHECK(cudaMemset(first, 0xff, 2 * sizeof(uint32_t)));
  compare_conversions<<<1024, 256>>>(counts, first);
  CUDA_CHECK_LAUNCH();
  unsigned long long c[2];
  uint32_t f[2];
  CUDA_CHECK(cudaMemcpy(c, counts, sizeof c, cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaMemcpy(f, first, sizeof f, cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaFree(counts));
  CUDA_CHECK(cudaFree(first));
  const uint16_t host = rwkv::cuda::from_float<rwkv::cuda::Bf16>(rwkv::cuda::bits_float(f[0])).bits;
  EXPECT_EQ(c[0], 0ull) << "from_float differs from __float2bfloat16_rn, first at float bits 0x"
                        << std::hex << f[0] << " (the host's from_float gives 0x" << host << ")";
  EXPECT_EQ(c[1], 0ull) << "to_float differs from __bfloat162float, first at bf16 bits 0x"
                        << std::hex << f[1];
}

}  // namespace
