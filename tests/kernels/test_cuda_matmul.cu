// cuBLAS products (kernels/cuda/matmul.h, label gpu) against the CPU kernels
// (kernels/cpu/matmul.h) on random inputs: both weight layouts, forward with and without
// accumulation, backward with dx and dw each present or null, odd sizes, leading
// dimensions wider than the rows, and LoRA-like column slices of wider tensors; the
// same for the bf16 tensor-core variants (*_bf16, *_fast_bf16) against the CPU's fp32
// product.
// Measure: ||gpu - cpu||_2 / ||cpu||_2 over the elements the op writes, <= 1e-5 in fp32,
// <= 5e-3 for bf16 (the issue's bf16 tolerance; rounding both operands to bf16 gives
// at most 2^-8 relative error on a single product, ~2e-3 relative L2 on random sums);
// every element outside them must be left bitwise as it was. A non-accumulating
// forward's output is poisoned with NaN (bytes 0xFF) first, so that an element left
// unwritten fails; gradients start from random values (the op accumulates). Argument
// errors need no GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/matmul.h"
#include "tests/kernels/cuda_test_util.h"

namespace {

using rwkv::kernels::WLayout;

// x is the columns [xoff, xoff + K) of a [M, ldx] tensor; out the columns
// [ooff, ooff + N) of a [M, ldo] tensor.
struct Case {
  int64_t M, K, N, ldx, xoff, ldo, ooff;
  WLayout layout;
  unsigned seed;
};

std::string describe(const Case& c) {
  std::ostringstream s;
  s << "M=" << c.M << " K=" << c.K << " N=" << c.N << " ldx=" << c.ldx << " xoff=" << c.xoff
    << " ldo=" << c.ldo << " ooff=" << c.ooff << " layout "
    << (c.layout == WLayout::OutIn ? "OutIn" : "InOut");
  return s.str();
}

const std::vector<Case> kCases = {
    {1, 1, 1, 1, 0, 1, 0, WLayout::OutIn, 1},
    {37, 19, 23, 19, 0, 23, 0, WLayout::OutIn, 2},
    {37, 19, 23, 19, 0, 23, 0, WLayout::InOut, 3},
    {50, 33, 65, 40, 5, 70, 3, WLayout::OutIn, 4},  // slices of wider rows
    {50, 33, 65, 40, 7, 70, 0, WLayout::InOut, 5},
    // LoRA-like: x [n, 5 * 24] holds five mixes; one of them times a [24, 8] weight,
    // written into a column slice of an [n, 5 * 8] output.
    {29, 24, 8, 120, 48, 40, 16, WLayout::InOut, 6},
    {29, 8, 24, 40, 16, 120, 72, WLayout::InOut, 7},
    {64, 96, 80, 96, 0, 80, 0, WLayout::OutIn, 8},
};

// The CPU's matmul_backward from dx = gx0, dw = gw0 (dx accumulated into or overwritten),
// and dx's values before the GPU's call: gx0, or NaN in dx's columns when it is
// overwritten (a product that read them would fail).
struct BackwardRef {
  std::vector<float> gx, gw, start;
};

BackwardRef backward_ref(const Case& c, const std::vector<float>& x, const std::vector<float>& w,
                         const std::vector<float>& dout, const std::vector<float>& gx0,
                         const std::vector<float>& gw0, bool accumulate_dx) {
  BackwardRef r{gx0, gw0, gx0};
  rwkv::kernels::matmul_backward<float>(r.gx.data() + c.xoff, r.gw.data(), dout.data() + c.ooff,
                                        c.ldo, x.data() + c.xoff, c.ldx, w.data(), c.M, c.K, c.N,
                                        c.layout, accumulate_dx);
  if (!accumulate_dx)
    for (int64_t i = 0; i < c.M; ++i)
      std::memset(&r.start[static_cast<size_t>(i * c.ldx + c.xoff)], 0xff,
                  static_cast<size_t>(c.K) * sizeof(float));
  return r;
}

// Relative L2 error of got vs ref over the columns [off, off + width) of [rows, ld];
// the other elements must equal `before` bitwise.
::testing::AssertionResult close(const char* what, const Case& c, const std::vector<float>& got,
                                 const std::vector<float>& ref, const std::vector<float>& before,
                                 int64_t rows, int64_t ld, int64_t off, int64_t width,
                                 double tol = 1e-5) {
  double num = 0, den = 0;
  size_t changed = 0;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < ld; ++j) {
      const size_t e = static_cast<size_t>(i * ld + j);
      if (j < off || j >= off + width) {
        if (std::memcmp(&got[e], &before[e], sizeof(float)) != 0) ++changed;
        continue;
      }
      const double d = double(got[e]) - double(ref[e]);
      num += std::isfinite(d) ? d * d : 1e30;  // an unwritten (NaN) element fails
      den += double(ref[e]) * double(ref[e]);
    }
  const double rel = std::sqrt(num / den);
  if (rel <= tol && changed == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << " (" << describe(c) << "): relative L2 error "
                                       << rel << " (tol " << tol << "), " << changed
                                       << " elements outside the written part changed";
}

// A product under test, with the arguments of matmul_forward / matmul_backward after
// their handle and stream (the fixture's).
using Forward = std::function<void(float* out, int64_t ldo, const float* x, int64_t ldx,
                                   const float* w, const Case& c, bool accumulate)>;
using Backward =
    std::function<void(float* dx, float* dw, const float* dout, int64_t ldo, const float* x,
                       int64_t ldx, const float* w, const Case& c, bool accumulate_dx)>;

struct CudaMatmul : ::testing::Test {
  void SetUp() override {
    SKIP_WITHOUT_GPU();
    CUDA_CHECK(cudaStreamCreate(&stream));
    CUBLAS_CHECK(cublasCreate(&handle));
  }
  void TearDown() override {
    if (handle) CUBLAS_CHECK(cublasDestroy(handle));
    if (stream) CUDA_CHECK(cudaStreamDestroy(stream));
  }
  std::vector<float> get(const DevBuf& d) {
    CUDA_CHECK(cudaStreamSynchronize(stream));
    return d.get();
  }

  // Every case, with and without accumulation, against the CPU's fp32 product.
  void check_forward(const char* name, const Forward& product, unsigned seed, double tol) {
    for (const Case& c : kCases) {
      std::mt19937 rng(c.seed + seed);
      const auto x = uniform(static_cast<size_t>(c.M * c.ldx), -1, 1, rng);
      const auto w = uniform(static_cast<size_t>(c.K * c.N), -1, 1, rng);
      const auto out0 = uniform(static_cast<size_t>(c.M * c.ldo), -1, 1, rng);
      DevBuf dx(x), dw(w);
      for (bool acc : {false, true}) {
        // CPU: a non-accumulating forward overwrites, so its start does not matter.
        std::vector<float> ref = out0;
        rwkv::kernels::matmul_forward<float>(ref.data() + c.ooff, c.ldo, x.data() + c.xoff, c.ldx,
                                             w.data(), c.M, c.K, c.N, c.layout, acc);
        DevBuf dout(out0);
        if (!acc) {  // poison the written columns only: the rest must keep out0's values
          std::vector<float> start = out0;
          for (int64_t i = 0; i < c.M; ++i)
            std::memset(&start[static_cast<size_t>(i * c.ldo + c.ooff)], 0xff,
                        static_cast<size_t>(c.N) * sizeof(float));
          CUDA_CHECK(cudaMemcpy(dout.p, start.data(), start.size() * sizeof(float),
                                cudaMemcpyHostToDevice));
        }
        product(dout.p + c.ooff, c.ldo, dx.p + c.xoff, c.ldx, dw.p, c, acc);
        const std::string what = std::string(name) + (acc ? " out (accumulate)" : " out");
        EXPECT_TRUE(close(what.c_str(), c, get(dout), ref, out0, c.M, c.ldo, c.ooff, c.N, tol));
      }
    }
  }

  // Every case with dx and dw each wanted or null (dx accumulated into), then both and
  // dx only with dx overwritten (its slice NaN before: the product must not read it).
  void check_backward(const char* name, const Backward& product, unsigned seed, double tol) {
    for (const Case& c : kCases) {
      std::mt19937 rng(c.seed + seed);
      const auto x = uniform(static_cast<size_t>(c.M * c.ldx), -1, 1, rng);
      const auto w = uniform(static_cast<size_t>(c.K * c.N), -1, 1, rng);
      const auto dout = uniform(static_cast<size_t>(c.M * c.ldo), -1, 1, rng);
      const auto gx0 = uniform(static_cast<size_t>(c.M * c.ldx), -1, 1, rng);
      const auto gw0 = uniform(static_cast<size_t>(c.K * c.N), -1, 1, rng);
      DevBuf d_x(x), d_w(w), d_dout(dout);
      // variant: both, dx only, dw only, neither; then both and dx only overwritten.
      for (int variant = 0; variant < 6; ++variant) {
        const bool acc = variant < 4;
        const bool want_dx = variant % 4 <= 1,
                   want_dw = variant == 0 || variant == 2 || variant == 4;
        const BackwardRef ref = backward_ref(c, x, w, dout, gx0, gw0, acc);
        DevBuf gx(ref.start), gw(gw0);
        product(want_dx ? gx.p + c.xoff : nullptr, want_dw ? gw.p : nullptr, d_dout.p + c.ooff,
                c.ldo, d_x.p + c.xoff, c.ldx, d_w.p, c, acc);
        const auto got_gx = get(gx), got_gw = get(gw);
        const std::string dx_what = std::string(name) + (acc ? " dx" : " dx (overwritten)");
        if (want_dx)
          EXPECT_TRUE(close(dx_what.c_str(), c, got_gx, ref.gx, gx0, c.M, c.ldx, c.xoff, c.K, tol));
        else
          EXPECT_EQ(0, std::memcmp(got_gx.data(), gx0.data(), gx0.size() * sizeof(float)))
              << name << ": dx was null but changed: " << describe(c);
        const std::string dw_what = std::string(name) + " dw";
        if (want_dw)
          EXPECT_TRUE(
              close(dw_what.c_str(), c, got_gw, ref.gw, gw0, 1, c.K * c.N, 0, c.K * c.N, tol));
        else
          EXPECT_EQ(0, std::memcmp(got_gw.data(), gw0.data(), gw0.size() * sizeof(float)))
              << name << ": dw was null but changed: " << describe(c);
      }
    }
  }

  cudaStream_t stream = nullptr;
  cublasHandle_t handle = nullptr;
};

TEST_F(CudaMatmul, ForwardMatchesCpu) {
  check_forward(
      "fp32",
      [&](float* out, int64_t ldo, const float* x, int64_t ldx, const float* w, const Case& c,
          bool acc) {
        rwkv::cuda::matmul_forward(out, ldo, x, ldx, w, c.M, c.K, c.N, c.layout, acc, handle,
                                   stream);
      },
      0, 1e-5);
}

TEST_F(CudaMatmul, BackwardMatchesCpuAndSkipsNull) {
  check_backward(
      "fp32",
      [&](float* dx, float* dw, const float* dout, int64_t ldo, const float* x, int64_t ldx,
          const float* w, const Case& c, bool acc) {
        rwkv::cuda::matmul_backward(dx, dw, dout, ldo, x, ldx, w, c.M, c.K, c.N, c.layout, acc,
                                    handle, stream);
      },
      100, 1e-5);
}

TEST_F(CudaMatmul, BitwiseReproducible) {
  const Case c = kCases.back();
  std::mt19937 rng(9);
  DevBuf x(uniform(static_cast<size_t>(c.M * c.ldx), -1, 1, rng));
  DevBuf w(uniform(static_cast<size_t>(c.K * c.N), -1, 1, rng));
  DevBuf out(static_cast<size_t>(c.M * c.ldo));
  std::vector<float> first;
  for (int run = 0; run < 3; ++run) {
    rwkv::cuda::matmul_forward(out.p, c.ldo, x.p, c.ldx, w.p, c.M, c.K, c.N, c.layout, false,
                               handle, stream);
    const auto got = get(out);
    if (run == 0)
      first = got;
    else
      EXPECT_EQ(0, std::memcmp(got.data(), first.data(), got.size() * sizeof(float)));
  }
}

// The bf16 variants' scratch, as a float buffer (cudaMalloc aligns it to 256 bytes).
struct Bf16Scratch : DevBuf {
  Bf16Scratch(int64_t M, int64_t K, int64_t N)
      : DevBuf(rwkv::cuda::matmul_bf16_scratch_bytes(M, K, N) / sizeof(float) + 1) {}
};

TEST_F(CudaMatmul, Bf16ForwardMatchesCpu) {
  check_forward(
      "bf16",
      [&](float* out, int64_t ldo, const float* x, int64_t ldx, const float* w, const Case& c,
          bool acc) {
        Bf16Scratch scratch(c.M, c.K, c.N);
        rwkv::cuda::matmul_forward_bf16(out, ldo, x, ldx, w, c.M, c.K, c.N, c.layout, acc,
                                        scratch.p, handle, stream);
        CUDA_CHECK(cudaStreamSynchronize(stream));  // before the scratch is freed
      },
      200, 5e-3);
}

TEST_F(CudaMatmul, Bf16BackwardMatchesCpuAndSkipsNull) {
  check_backward(
      "bf16",
      [&](float* dx, float* dw, const float* dout, int64_t ldo, const float* x, int64_t ldx,
          const float* w, const Case& c, bool acc) {
        Bf16Scratch scratch(c.M, c.K, c.N);
        rwkv::cuda::matmul_backward_bf16(dx, dw, dout, ldo, x, ldx, w, c.M, c.K, c.N, c.layout, acc,
                                         scratch.p, handle, stream);
        CUDA_CHECK(cudaStreamSynchronize(stream));
      },
      300, 5e-3);
}

// cuBLAS's own rounding to bf16 (CUBLAS_COMPUTE_32F_FAST_16BF): the same tolerance.
TEST_F(CudaMatmul, FastBf16ForwardMatchesCpu) {
  check_forward(
      "fast bf16",
      [&](float* out, int64_t ldo, const float* x, int64_t ldx, const float* w, const Case& c,
          bool acc) {
        rwkv::cuda::matmul_forward_fast_bf16(out, ldo, x, ldx, w, c.M, c.K, c.N, c.layout, acc,
                                             handle, stream);
      },
      400, 5e-3);
}

TEST_F(CudaMatmul, FastBf16BackwardMatchesCpuAndSkipsNull) {
  check_backward(
      "fast bf16",
      [&](float* dx, float* dw, const float* dout, int64_t ldo, const float* x, int64_t ldx,
          const float* w, const Case& c, bool acc) {
        rwkv::cuda::matmul_backward_fast_bf16(dx, dw, dout, ldo, x, ldx, w, c.M, c.K, c.N, c.layout,
                                              acc, handle, stream);
      },
      500, 5e-3);
}

// The operands are rounded to bf16 (7 stored mantissa bits: spacing 2^-7 at 1) to the
// nearest, ties to even, and the product is exact in fp32: out [3, 1] = x [3, 1] @ [[1]].
TEST_F(CudaMatmul, Bf16RoundsOperandsToNearestEven) {
  const float e = std::ldexp(1.0f, -8);
  DevBuf x(std::vector<float>{1 + e, 1 + 3 * e, 1 + e + e / 4}), w(std::vector<float>{1});
  DevBuf out(3);
  Bf16Scratch scratch(3, 1, 1);
  rwkv::cuda::matmul_forward_bf16(out.p, 1, x.p, 1, w.p, 3, 1, 1, WLayout::OutIn, false, scratch.p,
                                  handle, stream);
  // 1 + 2^-8: a tie, to the even 1; 1 + 3 * 2^-8: a tie, to the even 1 + 2^-6 (not
  // 1 + 2^-7, as truncation would give); 1 + 2^-8 + 2^-10: past the tie, up to 1 + 2^-7.
  const auto got = get(out);
  EXPECT_EQ(got[0], 1.0f);
  EXPECT_EQ(got[1], 1.0f + std::ldexp(1.0f, -6));
  EXPECT_EQ(got[2], 1.0f + std::ldexp(1.0f, -7));
}

// Checked before any cuBLAS call, so no GPU is needed.
TEST(CudaMatmulArgs, BadShapesThrow) {
  float* const nf = nullptr;  // the fp32 overloads
  EXPECT_THROW(rwkv::cuda::matmul_forward(nf, 4, nf, 2, nf, 3, 3, 4, WLayout::OutIn, false, nullptr,
                                          nullptr),
               rwkv::Error);  // ldx < K
  EXPECT_THROW(rwkv::cuda::matmul_forward(nf, 3, nf, 3, nf, 3, 3, 4, WLayout::InOut, false, nullptr,
                                          nullptr),
               rwkv::Error);  // ldo < N
  EXPECT_THROW(rwkv::cuda::matmul_backward(nf, nf, nf, 4, nf, 3, nf, 0, 3, 4, WLayout::OutIn, true,
                                           nullptr, nullptr),
               rwkv::Error);  // M = 0
  EXPECT_THROW(rwkv::cuda::matmul_forward_bf16(nullptr, 4, nullptr, 2, nullptr, 3, 3, 4,
                                               WLayout::OutIn, false, nullptr, nullptr, nullptr),
               rwkv::Error);  // ldx < K
  EXPECT_THROW(
      rwkv::cuda::matmul_backward_bf16(nullptr, nullptr, nullptr, 3, nullptr, 3, nullptr, 3, 3, 4,
                                       WLayout::InOut, true, nullptr, nullptr, nullptr),
      rwkv::Error);  // ldo < N
  EXPECT_THROW(rwkv::cuda::matmul_forward_fast_bf16(nullptr, 4, nullptr, 2, nullptr, 3, 3, 4,
                                                    WLayout::OutIn, false, nullptr, nullptr),
               rwkv::Error);  // ldx < K
  EXPECT_THROW(
      rwkv::cuda::matmul_backward_fast_bf16(nullptr, nullptr, nullptr, 4, nullptr, 3, nullptr, 0, 3,
                                            4, WLayout::InOut, true, nullptr, nullptr),
      rwkv::Error);  // M = 0
}

}  // namespace
