#pragma once
// Shared by the tests of the tensor-core tile product (kernels/cuda/warp_tile.h) on the
// CPU (test_warp_tile.cpp, its emulation) and on the GPU (test_cuda_warp_tile.cu): the
// operands, the reference in double and the error measure.
#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <random>
#include <vector>

#include "kernels/cuda/warp_tile.h"

namespace rwkv::cuda::test {

constexpr int kMaxK = 64;
constexpr int kLd = 68;   // the operands' leading dimension: a multiple of 4, as wmma needs
constexpr int kLdc = 20;  // the result's
constexpr size_t kOperandFloats = size_t(kMaxK) * kLd;
constexpr size_t kResultFloats = size_t(kTile) * kLdc;

// Where element [x][y] of an operand of layout l is (kernels/cuda/warp_tile.h).
inline size_t tile_index(Layout l, int x, int y) {
  return l == Layout::row ? size_t(x) * kLd + y : size_t(y) * kLd + x;
}

// A [16, K] in layout la and B [K, 16] in layout lb, each in a buffer of kOperandFloats
// (NaN where no element is), with entries u 2^e, u uniform in [-1, 1] and e an integer
// in [-8, 8]: magnitudes far apart, so the low TF32 parts matter.
struct TileOperands {
  int K;
  Layout la, lb;
  std::vector<float> a, b;
  TileOperands(int K_, Layout la_, Layout lb_, unsigned seed)
      : K(K_), la(la_), lb(lb_), a(kOperandFloats, NAN), b(kOperandFloats, NAN) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    std::uniform_int_distribution<int> e(-8, 8);
    for (int m = 0; m < kTile; ++m)
      for (int k = 0; k < K; ++k) {
        a[tile_index(la, m, k)] = std::ldexp(u(rng), e(rng));
        b[tile_index(lb, k, m)] = std::ldexp(u(rng), e(rng));
      }
  }
  double a_at(int m, int k) const { return a[tile_index(la, m, k)]; }
  double b_at(int k, int n) const { return b[tile_index(lb, k, n)]; }
};

// max over the tile of |c[m][n] - want| / (sum of the magnitudes of want's terms), want
// = c0[m][n] (with c0) + sum_k A[m][k] B[k][n] (+ the same of x2, with x2), the sums in
// double; c and c0 row-major with leading dimension kLdc. NaN in c gives NaN.
inline double tile_error(const TileOperands& x, const float* c, const float* c0 = nullptr,
                         const TileOperands* x2 = nullptr) {
  double worst = 0.0;
  for (int m = 0; m < kTile; ++m)
    for (int n = 0; n < kTile; ++n) {
      const double init = c0 ? c0[size_t(m) * kLdc + n] : 0.0;
      double want = init, mag = std::fabs(init);
      for (const TileOperands* o : {&x, x2})
        for (int k = 0; o && k < o->K; ++k) {
          want += o->a_at(m, k) * o->b_at(k, n);
          mag += std::fabs(o->a_at(m, k) * o->b_at(k, n));
        }
      const double err = std::fabs(double(c[size_t(m) * kLdc + n]) - want) / mag;
      if (!(err <= worst)) worst = err;  // NaN sticks
    }
  return worst;
}

// fp32 products have errors of a few 2^-24 of sum |a b|; one TF32 product alone
// (10-bit mantissas) about 2^-11.
constexpr double kTileTolerance = 1e-6;

// tile.template operator()<K, LA, LB>(x): x's product as the tile computes it, row-major
// with leading dimension kLdc (kResultFloats values), within kTileTolerance.
template <int K, Layout LA, Layout LB, typename Tile>
void expect_tile_case(const Tile& tile, unsigned seed) {
  const TileOperands x(K, LA, LB, seed);
  const std::vector<float> c = tile.template operator()<K, LA, LB>(x);
  EXPECT_LE(tile_error(x, c.data()), kTileTolerance)
      << "K " << K << (LA == Layout::row ? ", A row" : ", A col")
      << (LB == Layout::row ? ", B row" : ", B col") << ", seed " << seed;
}

// The cases both tests run: every layout pair, depths 8 to 64, three seeds.
template <typename Tile>
void expect_fp32_accuracy(const Tile& tile) {
  constexpr Layout row = Layout::row, col = Layout::col;
  for (unsigned seed = 1; seed <= 3; ++seed) {
    expect_tile_case<8, row, row>(tile, seed);
    expect_tile_case<16, row, col>(tile, seed);
    expect_tile_case<32, col, row>(tile, seed);
    expect_tile_case<64, col, col>(tile, seed);
    expect_tile_case<64, row, col>(tile, seed);
  }
}

}  // namespace rwkv::cuda::test
