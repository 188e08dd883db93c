// The tensor-core tile product (kernels/cuda/warp_tile.h) as the host compiler builds it
// for the block emulator: TF32 rounding as the GPU's cvt.rna.tf32.f32, the 3xTF32
// product against a product in double on fresh random operands of mixed magnitudes
// (every layout pair, depths 8 to 64; error measure and bound in
// warp_tile_test_util.h), only a warp's lane 0 writing, and the wmma operand rules
// (alignment, leading dimension) enforced. The GPU runs the same cases
// (test_cuda_warp_tile.cu).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include "kernels/cuda/warp_tile.h"
#include "tests/kernels/warp_tile_test_util.h"

namespace {

using rwkv::cuda::Layout;
using rwkv::cuda::round_tf32;
namespace t = rwkv::cuda::test;

// One thread of a warp called alone (the product reads only thread(); with no other lane
// there is nothing to compare its calls with).
struct Lane {
  int lane;
  int thread() const { return lane; }
  void warp_collective(const rwkv::cuda::WarpCall&) const {}
  void warp_access(const std::vector<const float*>&, const std::vector<const float*>&) const {}
};

// 32-byte aligned float buffers.
struct alignas(32) Operand {
  float x[t::kOperandFloats];
};
struct alignas(32) Result {
  float x[t::kResultFloats];
};

// The emulated tile of a warp's lane 0, on aligned copies of the operands.
struct CpuTile {
  template <int K, Layout LA, Layout LB>
  std::vector<float> operator()(const t::TileOperands& in) const {
    auto a = std::make_unique<Operand>(), b = std::make_unique<Operand>();
    auto c = std::make_unique<Result>();
    std::copy(in.a.begin(), in.a.end(), a->x);
    std::copy(in.b.begin(), in.b.end(), b->x);
    std::fill(c->x, c->x + t::kResultFloats, NAN);
    rwkv::cuda::warp_tile_product<K, LA, LB>(Lane{0}, a->x, t::kLd, b->x, t::kLd, c->x, t::kLdc);
    return std::vector<float>(c->x, c->x + t::kResultFloats);
  }
};

TEST(WarpTile, RoundsToTf32LikeTheGpu) {
  const float ulp = std::ldexp(1.f, -10);  // TF32's unit in the last place at 1
  EXPECT_EQ(round_tf32(1.f), 1.f);
  EXPECT_EQ(round_tf32(1.f + ulp / 4), 1.f);
  EXPECT_EQ(round_tf32(1.f + ulp / 2), 1.f + ulp);  // a tie: away from zero
  EXPECT_EQ(round_tf32(-(1.f + ulp / 2)), -(1.f + ulp));
  EXPECT_EQ(round_tf32(1.f + ulp * 3 / 4), 1.f + ulp);
  EXPECT_EQ(round_tf32(1.f + ulp + std::ldexp(1.f, -20)), 1.f + ulp);
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(round_tf32(inf), inf);
  EXPECT_EQ(round_tf32(-inf), -inf);
  EXPECT_TRUE(std::isnan(round_tf32(NAN)));
  // The low part of the split is exact where the value has at most 22 significant bits.
  const float x = 1.f + ulp * 3 + std::ldexp(1.f, -21), hi = round_tf32(x);
  EXPECT_EQ(hi + round_tf32(x - hi), x);
}

TEST(WarpTile, ThreeTf32ProductsHaveFp32Accuracy) { t::expect_fp32_accuracy(CpuTile{}); }

// The other lanes leave the tile to lane 0 (on the GPU they hold parts of it).
TEST(WarpTile, OnlyLaneZeroOfAWarpWrites) {
  const t::TileOperands in(16, Layout::row, Layout::row, 4);
  auto a = std::make_unique<Operand>(), b = std::make_unique<Operand>();
  auto c = std::make_unique<Result>();
  std::copy(in.a.begin(), in.a.end(), a->x);
  std::copy(in.b.begin(), in.b.end(), b->x);
  std::fill(c->x, c->x + t::kResultFloats, NAN);
  for (const int lane : {1, 17, 31, 33})
    rwkv::cuda::warp_tile_product<16, Layout::row, Layout::row>(Lane{lane}, a->x, t::kLd, b->x,
                                                                t::kLd, c->x, t::kLdc);
  for (float v : c->x) ASSERT_TRUE(std::isnan(v));
  rwkv::cuda::warp_tile_product<16, Layout::row, Layout::row>(Lane{32}, a->x, t::kLd, b->x, t::kLd,
                                                              c->x, t::kLdc);
  EXPECT_LE(t::tile_error(in, c->x), t::kTileTolerance);
}

// C += A B + A2 B2 (the chunked scan's state update: A column-major, B row-major).
TEST(WarpTile, AccumulatesTwoProducts) {
  const t::TileOperands x(16, Layout::col, Layout::row, 5), x2(16, Layout::col, Layout::row, 6);
  auto a = std::make_unique<Operand>(), b = std::make_unique<Operand>();
  auto a2 = std::make_unique<Operand>(), b2 = std::make_unique<Operand>();
  auto c = std::make_unique<Result>();
  std::copy(x.a.begin(), x.a.end(), a->x);
  std::copy(x.b.begin(), x.b.end(), b->x);
  std::copy(x2.a.begin(), x2.a.end(), a2->x);
  std::copy(x2.b.begin(), x2.b.end(), b2->x);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-4.f, 4.f);
  for (float& v : c->x) v = u(rng);
  const std::vector<float> c0(c->x, c->x + t::kResultFloats);
  rwkv::cuda::warp_tile_product<16, Layout::col, Layout::row>(Lane{0}, a->x, t::kLd, b->x, t::kLd,
                                                              c->x, t::kLdc, true, a2->x, b2->x);
  EXPECT_LE(t::tile_error(x, c->x, c0.data(), &x2), t::kTileTolerance);
  // Without the second term, or without the accumulation, the error is of order 1.
  EXPECT_GT(t::tile_error(x, c->x, c0.data()), 1e-3);
  EXPECT_GT(t::tile_error(x, c->x, nullptr, &x2), 1e-3);
}

// What wmma's loads and stores do not take stops the emulation with the reason.
TEST(WarpTileDeathTest, RejectsMisalignedTilesAndLeadingDimensions) {
  auto a = std::make_unique<Operand>(), b = std::make_unique<Operand>();
  auto c = std::make_unique<Result>();
  std::fill(a->x, a->x + t::kOperandFloats, 1.f);
  std::fill(b->x, b->x + t::kOperandFloats, 1.f);
  const auto call = [&](const float* pa, int lda, float* pc, int ldc) {
    rwkv::cuda::warp_tile_product<8, Layout::row, Layout::row>(Lane{0}, pa, lda, b->x, t::kLd, pc,
                                                               ldc);
  };
  EXPECT_DEATH(call(a->x + 4, t::kLd, c->x, t::kLdc), "A at .* 32-byte aligned");
  EXPECT_DEATH(call(a->x, 66, c->x, t::kLdc), "A at .* leading dimension 66");
  EXPECT_DEATH(call(a->x, t::kLd, c->x + 1, t::kLdc), "C at .* 32-byte aligned");
  EXPECT_DEATH(call(a->x, t::kLd, c->x, 18), "C at .* leading dimension 18");
}

}  // namespace
