#pragma once
// One 16 x 16 tile of a matrix product by a warp on the tensor cores, for the block
// bodies of kernels/cuda/block.h (the chunked WKV kernels), with fp32 accuracy: each
// operand is split into two TF32 parts, x = hi + lo with hi = tf32(x), lo = tf32(x - hi),
// and the tile takes three TF32 products, lo*hi + hi*lo + hi*hi (the lo*lo term is
// below fp32's rounding), accumulated in fp32: the "3xTF32" scheme of NVIDIA's CUTLASS
// (examples/27_ampere_3xtf32_fast_accurate_tensorop_gemm). Its error is that of an fp32
// product (~1e-7 relative), so the WKV kernels' fp32 tolerances hold; one TF32 product
// alone would be ~5e-4.
//
// On the GPU (sm_80 and later) it is nvcuda::wmma's m16n16k8 TF32 product. The host
// compiler (the block emulator of tests/kernels/block_emulator.h) gets the same
// arithmetic on the warp's lane 0: the tile's reads happen in its call, its writes land
// before the block's next barrier, as on the GPU, where the warp's lanes share the
// tile's elements in a layout the program cannot rely on. The emulation also rejects the
// pointers and leading dimensions the GPU's wmma loads and stores do not take (32-byte
// aligned tiles, leading dimensions a multiple of 4 floats), which on a GPU would give
// wrong results, not an error.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/cuda/block.h"

#if defined(__CUDACC__)
#include <mma.h>
#endif

namespace rwkv::cuda {

constexpr int kWarpSize = 32;
constexpr int kTile = 16;  // the tile's rows and columns
constexpr int kTileK = 8;  // the depth of one TF32 product

// How a tile operand is laid out: row: element [m][k] at m ld + k; col: at k ld + m.
enum class Layout { row, col };

#if !defined(__CUDA_ARCH__)
// x rounded to TF32 (10 mantissa bits) to nearest, ties away from zero, as the GPU's
// cvt.rna.tf32.f32 (wmma::__float_to_tf32); infinities and NaN unchanged.
inline float round_tf32(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & ~0x1fffu;
  std::memcpy(&x, &u, sizeof u);
  return x;
}

inline void check_tile_operand(const float* p, int ld, const char* what) {
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0 || ld % 4 != 0) {
    std::fprintf(stderr,
                 "warp_tile_product: %s at %p with leading dimension %d: wmma needs a 32-byte "
                 "aligned tile and a leading dimension that is a multiple of 4\n",
                 what, static_cast<const void*>(p), ld);
    std::abort();
  }
}
#endif

// C[m][n] = sum_{k < K} A[m][k] B[k][n] for m, n < 16: A [16, K] (layout LA, leading
// dimension lda), B [K, 16] (LB, ldb), C row-major (ldc), all in shared memory, every
// pointer 32-byte aligned and every leading dimension a multiple of 4. With
// `accumulate` the product is added to C; with A2 and B2 (as A and B) A2 B2 is added
// too. Called by all 32 threads of a warp with the same arguments (warp-uniform control
// flow; the block emulator checks it); a tile is read and written in one call (a second
// call on the same C by the same warp would need a __syncwarp between).
template <int K, Layout LA, Layout LB, typename Block>
RWKV_HD void warp_tile_product(const Block& blk, const float* A, int lda, const float* B, int ldb,
                               float* C, int ldc, bool accumulate = false,
                               const float* A2 = nullptr, const float* B2 = nullptr) {
  static_assert(K % kTileK == 0, "the depth is a multiple of 8");
#if defined(__CUDA_ARCH__)
  (void)blk;
  namespace wmma = nvcuda::wmma;
  using LayA = std::conditional_t<LA == Layout::row, wmma::row_major, wmma::col_major>;
  using LayB = std::conditional_t<LB == Layout::row, wmma::row_major, wmma::col_major>;
  wmma::fragment<wmma::matrix_a, kTile, kTile, kTileK, wmma::precision::tf32, LayA> a_hi, a_lo;
  wmma::fragment<wmma::matrix_b, kTile, kTile, kTileK, wmma::precision::tf32, LayB> b_hi, b_lo;
  wmma::fragment<wmma::accumulator, kTile, kTile, kTileK, float> c;
  if (accumulate)
    wmma::load_matrix_sync(c, C, ldc, wmma::mem_row_major);
  else
    wmma::fill_fragment(c, 0.f);
  for (int term = 0; term < (A2 ? 2 : 1); ++term) {
    const float* a = term ? A2 : A;
    const float* b = term ? B2 : B;
    RWKV_UNROLL
    for (int k = 0; k < K; k += kTileK) {
      wmma::load_matrix_sync(a_hi, LA == Layout::row ? a + k : a + size_t(k) * lda, lda);
      wmma::load_matrix_sync(b_hi, LB == Layout::row ? b + size_t(k) * ldb : b + k, ldb);
      // Fragments of one type map their elements alike, so lo takes hi's positions.
      RWKV_UNROLL
      for (int e = 0; e < a_hi.num_elements; ++e) {
        const float x = a_hi.x[e], hi = wmma::__float_to_tf32(x);
        a_hi.x[e] = hi;
        a_lo.x[e] = wmma::__float_to_tf32(x - hi);
      }
      RWKV_UNROLL
      for (int e = 0; e < b_hi.num_elements; ++e) {
        const float x = b_hi.x[e], hi = wmma::__float_to_tf32(x);
        b_hi.x[e] = hi;
        b_lo.x[e] = wmma::__float_to_tf32(x - hi);
      }
      wmma::mma_sync(c, a_lo, b_hi, c);
      wmma::mma_sync(c, a_hi, b_lo, c);
      wmma::mma_sync(c, a_hi, b_hi, c);
    }
  }
  wmma::store_matrix_sync(C, c, ldc, wmma::mem_row_major);
#else
  const auto at = [](const void* p) { return reinterpret_cast<uintptr_t>(p); };
  blk.warp_collective(
      {"warp_tile_product",
       {at(A), uintptr_t(lda), at(B), uintptr_t(ldb), at(C), uintptr_t(ldc), uintptr_t(accumulate),
        at(A2), at(B2), uintptr_t(K), uintptr_t(LA), uintptr_t(LB)}});
  if (blk.thread() % kWarpSize != 0) return;
  check_tile_operand(A, lda, "A");
  check_tile_operand(B, ldb, "B");
  check_tile_operand(C, ldc, "C");
  if (A2) check_tile_operand(A2, lda, "A2");
  if (B2) check_tile_operand(B2, ldb, "B2");
  // Every element the tile reads, and the ones it writes (C), for the emulator's check that
  // a tile does not read what an earlier tile of its warp wrote since the last barrier: on a
  // GPU the lanes' parts of a stored tile are not visible to the warp's other lanes without
  // a __syncwarp (or the block barrier) between.
  std::vector<const float*> reads, writes;
  for (int term = 0; term < (A2 ? 2 : 1); ++term)
    for (int m = 0; m < kTile; ++m)
      for (int k = 0; k < K; ++k) {
        const float* a = term ? A2 : A;
        const float* b = term ? B2 : B;
        reads.push_back(LA == Layout::row ? &a[size_t(m) * lda + k] : &a[size_t(k) * lda + m]);
        reads.push_back(LB == Layout::row ? &b[size_t(k) * ldb + m] : &b[size_t(m) * ldb + k]);
      }
  for (int m = 0; m < kTile; ++m)
    for (int n = 0; n < kTile; ++n) {
      if (accumulate) reads.push_back(&C[size_t(m) * ldc + n]);
      writes.push_back(&C[size_t(m) * ldc + n]);
    }
  blk.warp_access(reads, writes);
  float c[kTile][kTile];
  for (int m = 0; m < kTile; ++m)
    for (int n = 0; n < kTile; ++n) c[m][n] = accumulate ? C[size_t(m) * ldc + n] : 0.f;
  for (int term = 0; term < (A2 ? 2 : 1); ++term) {
    const float* a = term ? A2 : A;
    const float* b = term ? B2 : B;
    const auto a_at = [&](int m, int k) {
      return LA == Layout::row ? a[size_t(m) * lda + k] : a[size_t(k) * lda + m];
    };
    const auto b_at = [&](int k, int n) {
      return LB == Layout::row ? b[size_t(k) * ldb + n] : b[size_t(n) * ldb + k];
    };
    for (int k0 = 0; k0 < K; k0 += kTileK)
      for (int m = 0; m < kTile; ++m)
        for (int n = 0; n < kTile; ++n) {
          float lh = 0.f, hl = 0.f, hh = 0.f;
          for (int k = k0; k < k0 + kTileK; ++k) {
            const float x = a_at(m, k), y = b_at(k, n);
            const float xh = round_tf32(x), yh = round_tf32(y);
            const float xl = round_tf32(x - xh), yl = round_tf32(y - yh);
            lh += xl * yh;
            hl += xh * yl;
            hh += xh * yh;
          }
          c[m][n] = ((c[m][n] + lh) + hl) + hh;
        }
  }
  for (int m = 0; m < kTile; ++m)
    for (int n = 0; n < kTile; ++n) C[size_t(m) * ldc + n] = c[m][n];
#endif
}

}  // namespace rwkv::cuda
