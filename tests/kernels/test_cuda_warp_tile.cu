// The tensor-core tile product (kernels/cuda/warp_tile.h: nvcuda::wmma, m16n16k8 TF32,
// three products per step) on the GPU, the cases of its CPU emulation's test
// (test_warp_tile.cpp): every layout pair, depths 8 to 64, operands of mixed magnitudes
// in shared memory, against a product in double; the result poisoned with NaN first.
// Measure (warp_tile_test_util.h): max over the tile of |c - ref| / sum_k |a b| <= 1e-6,
// which one TF32 product alone (~5e-4) does not meet. A failure here explains one of the
// chunked WKV gradient kernels' failures.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "kernels/cuda/block.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/warp_tile.h"
#include "tests/kernels/cuda_test_util.h"
#include "tests/kernels/warp_tile_test_util.h"

namespace {

using rwkv::cuda::Layout;
namespace t = rwkv::cuda::test;

constexpr int kSmemBytes = int((4 * t::kOperandFloats + t::kResultFloats) * sizeof(float));

// One warp: the operands into shared memory, the tile (C = A B, or with a2: C = c0 +
// A B + A2 B2), the result back.
template <int K, Layout LA, Layout LB>
__global__ void tile_kernel(const float* a, const float* b, const float* a2, const float* b2,
                            float* c) {
  extern __shared__ __align__(32) float smem[];  // kSmemBytes: four operands, the result
  float *sa = smem, *sb = sa + t::kOperandFloats, *sa2 = sb + t::kOperandFloats;
  float *sb2 = sa2 + t::kOperandFloats, *sc = sb2 + t::kOperandFloats;
  for (int e = threadIdx.x; e < int(t::kOperandFloats); e += blockDim.x) {
    sa[e] = a[e];
    sb[e] = b[e];
    if (a2) {
      sa2[e] = a2[e];
      sb2[e] = b2[e];
    }
  }
  for (int e = threadIdx.x; e < int(t::kResultFloats); e += blockDim.x) sc[e] = c[e];
  __syncthreads();
  rwkv::cuda::warp_tile_product<K, LA, LB>(rwkv::cuda::DeviceBlock{}, sa, t::kLd, sb, t::kLd, sc,
                                           t::kLdc, a2 != nullptr, a2 ? sa2 : nullptr,
                                           a2 ? sb2 : nullptr);
  __syncthreads();
  for (int e = threadIdx.x; e < int(t::kResultFloats); e += blockDim.x) c[e] = sc[e];
}

// The tile on the GPU: C = x's product, or c0 + x's + x2's with x2.
template <int K, Layout LA, Layout LB>
std::vector<float> gpu_tile(const t::TileOperands& x, const t::TileOperands* x2 = nullptr,
                            const std::vector<float>* c0 = nullptr) {
  DevBuf a(x.a), b(x.b), a2(x2 ? x2->a : x.a), b2(x2 ? x2->b : x.b), c(t::kResultFloats);
  if (c0)
    CUDA_CHECK(cudaMemcpy(c.p, c0->data(), c0->size() * sizeof(float), cudaMemcpyHostToDevice));
  else
    c.poison();
  CUDA_CHECK(cudaFuncSetAttribute(tile_kernel<K, LA, LB>,
                                  cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes));
  tile_kernel<K, LA, LB><<<1, rwkv::cuda::kWarpSize, kSmemBytes>>>(a.p, b.p, x2 ? a2.p : nullptr,
                                                                   x2 ? b2.p : nullptr, c.p);
  CUDA_CHECK_LAUNCH();
  CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<float> h(t::kResultFloats);
  CUDA_CHECK(cudaMemcpy(h.data(), c.p, h.size() * sizeof(float), cudaMemcpyDeviceToHost));
  return h;
}

struct GpuTile {
  template <int K, Layout LA, Layout LB>
  std::vector<float> operator()(const t::TileOperands& in) const {
    return gpu_tile<K, LA, LB>(in);
  }
};

TEST(CudaWarpTile, ThreeTf32ProductsHaveFp32Accuracy) {
  SKIP_WITHOUT_GPU();
  t::expect_fp32_accuracy(GpuTile{});
}

// C += A B + A2 B2 (the chunked scan's state update: A column-major, B row-major).
TEST(CudaWarpTile, AccumulatesTwoProducts) {
  SKIP_WITHOUT_GPU();
  const t::TileOperands x(16, Layout::col, Layout::row, 5), x2(16, Layout::col, Layout::row, 6);
  std::mt19937 rng(7);
  const std::vector<float> c0 = uniform(t::kResultFloats, -4, 4, rng);
  const std::vector<float> c = gpu_tile<16, Layout::col, Layout::row>(x, &x2, &c0);
  EXPECT_LE(t::tile_error(x, c.data(), c0.data(), &x2), t::kTileTolerance);
}

}  // namespace
