// Token-shift CUDA kernels (label gpu, kernels/cuda/token_shift.h) against the CPU
// kernels (kernels/cpu/token_shift.h) on fresh random inputs: shift_diff forward and
// backward with and without the carried state, shift_last, and mix forward and backward
// in both coefficient forms, with and without the LoRA term m, each backward for every
// subset of null gradients; shapes with C and B*T not multiples of the block sizes.
// Measure (pointwise_test_util.h): relative L2 error <= 1e-5 in fp32, outputs poisoned
// with NaN before each GPU run, gradients pre-filled with random values (+= checked).
// Also the argument errors (these need no GPU).
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <sstream>
#include <string>

#include "common/error.h"
#include "kernels/cpu/token_shift.h"
#include "kernels/cuda/token_shift.h"
#include "tests/kernels/cuda_test_util.h"
#include "tests/kernels/pointwise_test_util.h"

namespace {

namespace K = rwkv::kernels;
namespace G = rwkv::cuda;
using G::test::Grad;
using G::test::In;
using G::test::Out;
using G::test::with_mask;

struct Shape {
  int64_t B, T, C;
};
constexpr Shape kShapes[] = {{1, 1, 1}, {2, 5, 37}, {3, 1, 40}, {2, 9, 70}};

std::string name(const std::string& op, Shape s, bool flag) {
  std::ostringstream o;
  o << op << " B=" << s.B << " T=" << s.T << " C=" << s.C << " (" << flag << ")";
  return o.str();
}

// Flag: with the carried state prev / dprev.
TEST(CudaTokenShift, ShiftDiff) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(1);
  for (Shape s : kShapes)
    for (bool with_prev : {false, true}) {
      const int64_t n = s.B * s.T * s.C;
      In x(n, -1, 1, rng), prev(s.B * s.C, -1, 1, rng), dxx(n, -1, 1, rng);
      Out xx(n);
      K::shift_diff_forward(xx.cpu(), x.cpu(), with_prev ? prev.cpu() : nullptr, s.B, s.T, s.C);
      G::shift_diff_forward(xx.gpu(), x.gpu(), with_prev ? prev.gpu() : nullptr, s.B, s.T, s.C,
                            nullptr);
      EXPECT_TRUE(xx.check(name("shift_diff xx", s, with_prev)));
      Grad dx(n, true, rng), dprev(s.B * s.C, with_prev, rng);
      K::shift_diff_backward(dx.cpu(), dprev.cpu(), dxx.cpu(), s.B, s.T, s.C);
      G::shift_diff_backward(dx.gpu(), dprev.gpu(), dxx.gpu(), s.B, s.T, s.C, nullptr);
      EXPECT_TRUE(dx.check(name("shift_diff dx", s, with_prev)));
      EXPECT_TRUE(dprev.check(name("shift_diff dprev", s, with_prev)));
    }
}

// dx null (the CPU needs it, so its reference goes to a scratch copy) with dprev.
TEST(CudaTokenShift, ShiftDiffStateGradientOnly) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(2);
  for (Shape s : kShapes) {
    const int64_t n = s.B * s.T * s.C;
    In dxx(n, -1, 1, rng);
    Grad scratch(n, true, rng), dprev(s.B * s.C, true, rng);
    K::shift_diff_backward(scratch.cpu(), dprev.cpu(), dxx.cpu(), s.B, s.T, s.C);
    G::shift_diff_backward(nullptr, dprev.gpu(), dxx.gpu(), s.B, s.T, s.C, nullptr);
    EXPECT_TRUE(dprev.check(name("shift_diff dprev", s, true)));
  }
}

TEST(CudaTokenShift, ShiftLast) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(3);
  for (Shape s : kShapes) {
    In x(s.B * s.T * s.C, -1, 1, rng);
    Out last(s.B * s.C);
    K::shift_last(last.cpu(), x.cpu(), s.B, s.T, s.C);
    G::shift_last(last.gpu(), x.gpu(), s.B, s.T, s.C, nullptr);
    EXPECT_TRUE(last.check(name("shift_last", s, false)));
  }
}

// Flag: one_minus (RWKV-4/5 form); each runs without and with m.
TEST(CudaTokenShift, Mix) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(4);
  for (Shape s : kShapes)
    for (bool one_minus : {false, true})
      for (bool with_m : {false, true}) {
        const int64_t n = s.B * s.T, C = s.C, nC = n * C;
        const std::string tag = with_m ? " with m" : "";
        In x(nC, -1, 1, rng), xx(nC, -1, 1, rng), c(C, 0, 1, rng), m(nC, -0.5, 0.5, rng),
            dout(nC, -1, 1, rng);
        const float* m_cpu = with_m ? m.cpu() : nullptr;
        const float* m_gpu = with_m ? m.gpu() : nullptr;
        Out out(nC);
        K::mix_forward(out.cpu(), x.cpu(), xx.cpu(), c.cpu(), m_cpu, one_minus, n, C);
        G::mix_forward(out.gpu(), x.gpu(), xx.gpu(), c.gpu(), m_gpu, one_minus, n, C, nullptr);
        EXPECT_TRUE(out.check(name("mix out" + tag, s, one_minus)));
        for (unsigned mask = 0; mask < 16; ++mask) {
          Grad dx(nC, mask & 1, rng), dxx(nC, mask & 2, rng), dc(C, mask & 4, rng),
              dm(nC, mask & 8, rng);
          K::mix_backward(dx.cpu(), dxx.cpu(), dc.cpu(), dm.cpu(), dout.cpu(), xx.cpu(), c.cpu(),
                          m_cpu, one_minus, n, C);
          G::mix_backward(dx.gpu(), dxx.gpu(), dc.gpu(), dm.gpu(), dout.gpu(), xx.gpu(), c.gpu(),
                          m_gpu, one_minus, n, C, nullptr);
          EXPECT_TRUE(dx.check(with_mask(name("mix dx" + tag, s, one_minus), mask)));
          EXPECT_TRUE(dxx.check(with_mask(name("mix dxx" + tag, s, one_minus), mask)));
          EXPECT_TRUE(dc.check(with_mask(name("mix dc" + tag, s, one_minus), mask)));
          EXPECT_TRUE(dm.check(with_mask(name("mix dm" + tag, s, one_minus), mask)));
        }
      }
}

// Checked before any launch, so these need no GPU.
TEST(CudaTokenShift, ArgumentErrors) {
  using G::test::throws_naming;
  EXPECT_TRUE(
      throws_naming([] { G::shift_diff_forward(nullptr, nullptr, nullptr, 2, -3, 4, nullptr); },
                    "rwkv::cuda::shift_diff_forward: T = -3"));
  EXPECT_TRUE(
      throws_naming([] { G::shift_diff_backward(nullptr, nullptr, nullptr, -1, 3, 4, nullptr); },
                    "rwkv::cuda::shift_diff_backward: B = -1"));
  EXPECT_TRUE(throws_naming([] { G::shift_last(nullptr, nullptr, 2, 0, 4, nullptr); },
                            "rwkv::cuda::shift_last: T = 0"));
  EXPECT_TRUE(throws_naming(
      [] {
        G::mix_backward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                        false, 5, -2, nullptr);
      },
      "rwkv::cuda::mix_backward: C = -2"));
}

// Empty shapes return before any launch (a launch of 0 blocks is an error), so these
// need no GPU either.
TEST(CudaTokenShift, EmptyShapesLaunchNothing) {
  float* null = nullptr;
  float* untouched = reinterpret_cast<float*>(16);  // a gradient sum never dereferenced
  EXPECT_NO_THROW(G::shift_diff_forward(null, null, null, 0, 3, 4, nullptr));
  EXPECT_NO_THROW(G::shift_last(null, null, 0, 0, 4, nullptr));
  EXPECT_NO_THROW(
      G::mix_backward(null, null, untouched, null, null, null, null, null, true, 0, 4, nullptr));
}

}  // namespace
