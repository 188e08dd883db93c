// Token-shift CUDA kernels (label gpu, kernels/cuda/token_shift.h) against the CPU
// kernels (kernels/cpu/token_shift.h) on fresh random inputs: shift_diff forward and
// backward with and without the carried state, shift_last, and mix groups forward and
// backward in both coefficient forms, with and without the LoRA terms m, each backward
// for every subset of null gradients; shapes with C and B*T not multiples of the block sizes.
// Measure (pointwise_test_util.h): relative L2 error <= 1e-5 in fp32, outputs poisoned
// with NaN before each GPU run, gradients pre-filled with random values (+= checked).
// Also the argument errors (these need no GPU).
#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

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
    G::shift_diff_backward<float>(nullptr, dprev.gpu(), dxx.gpu(), s.B, s.T, s.C, nullptr);
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

// Device and host pointers of a list of tensors, for a mix group's spans; entry `null`
// (when in range) null on both sides.
template <typename T, typename List>
std::pair<std::vector<T*>, std::vector<T*>> group(List& list, size_t null = SIZE_MAX) {
  std::vector<T*> cpu, gpu;
  for (auto& t : list) {
    const bool off = cpu.size() == null;
    cpu.push_back(off ? nullptr : t.cpu());
    gpu.push_back(off ? nullptr : t.gpu());
  }
  return {cpu, gpu};
}

// A group of K mixes (kernels/mix_group.h), K = 1, 2, 5, 6; flag: one_minus (RWKV-4/5
// form); each without and with the LoRA terms m; each backward for every subset of
// {dx, dxx, dcoefs, dms}, dcoefs given with mix 1's null (a frozen coefficient).
TEST(CudaTokenShift, MixGroup) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(4);
  for (Shape s : kShapes)
    for (int mixes : {1, 2, 5, 6})
      for (bool one_minus : {false, true})
        for (bool with_m : {false, true}) {
          const int64_t n = s.B * s.T, C = s.C, nC = n * C;
          std::ostringstream tag;
          tag << " K=" << mixes << (with_m ? " with m" : "");
          In x(nC, -1, 1, rng), xx(nC, -1, 1, rng);
          std::deque<In> c, m, dout;
          std::deque<Out> out;
          for (int k = 0; k < mixes; ++k) {
            c.emplace_back(C, 0, 1, rng);
            m.emplace_back(nC, -0.5, 0.5, rng);
            dout.emplace_back(nC, -1, 1, rng);
            out.emplace_back(nC);
          }
          const auto [c_cpu, c_gpu] = group<const float>(c);
          const auto [d_cpu, d_gpu] = group<const float>(dout);
          const auto [o_cpu, o_gpu] = group<float>(out);
          std::vector<const float*> m_cpu, m_gpu;
          if (with_m) std::tie(m_cpu, m_gpu) = group<const float>(m);
          K::mix_forward<float>(o_cpu, x.cpu(), xx.cpu(), c_cpu, m_cpu, one_minus, n, C);
          G::mix_forward<float>(o_gpu, x.gpu(), xx.gpu(), c_gpu, m_gpu, one_minus, n, C, nullptr);
          for (int k = 0; k < mixes; ++k)
            EXPECT_TRUE(
                out[k].check(name("mix out " + std::to_string(k) + tag.str(), s, one_minus)));
          for (unsigned mask = 0; mask < 16; ++mask) {
            Grad dx(nC, mask & 1, rng), dxx(nC, mask & 2, rng);
            std::deque<Grad> dc, dm;
            for (int k = 0; k < mixes; ++k) {
              dc.emplace_back(C, (mask & 4) != 0, rng);
              dm.emplace_back(nC, (mask & 8) != 0, rng);
            }
            std::vector<float*> dc_cpu, dc_gpu, dm_cpu, dm_gpu;
            if (mask & 4) std::tie(dc_cpu, dc_gpu) = group<float>(dc, 1);
            if (mask & 8) std::tie(dm_cpu, dm_gpu) = group<float>(dm);
            K::mix_backward<float>(dx.cpu(), dxx.cpu(), dc_cpu, dm_cpu, d_cpu, xx.cpu(), c_cpu,
                                   m_cpu, one_minus, n, C);
            G::mix_backward<float>(dx.gpu(), dxx.gpu(), dc_gpu, dm_gpu, d_gpu, xx.gpu(), c_gpu,
                                   m_gpu, one_minus, n, C, nullptr);
            const std::string what = name("mix" + tag.str(), s, one_minus);
            EXPECT_TRUE(dx.check(with_mask(what + " dx", mask)));
            EXPECT_TRUE(dxx.check(with_mask(what + " dxx", mask)));
            for (int k = 0; k < mixes; ++k) {
              const std::string mix = " mix " + std::to_string(k);
              EXPECT_TRUE(dc[k].check(with_mask(what + " dc" + mix, mask)));
              EXPECT_TRUE(dm[k].check(with_mask(what + " dm" + mix, mask)));
            }
          }
        }
}

// Checked before any launch, so these need no GPU.
TEST(CudaTokenShift, ArgumentErrors) {
  using G::test::throws_naming;
  EXPECT_TRUE(throws_naming(
      [] { G::shift_diff_forward<float>(nullptr, nullptr, nullptr, 2, -3, 4, nullptr); },
      "rwkv::cuda::shift_diff_forward: T = -3"));
  EXPECT_TRUE(throws_naming(
      [] { G::shift_diff_backward<float>(nullptr, nullptr, nullptr, -1, 3, 4, nullptr); },
      "rwkv::cuda::shift_diff_backward: B = -1"));
  EXPECT_TRUE(throws_naming([] { G::shift_last<float>(nullptr, nullptr, 2, 0, 4, nullptr); },
                            "rwkv::cuda::shift_last: T = 0"));
  const float* one[1] = {nullptr};
  EXPECT_TRUE(throws_naming(
      [&] {
        G::mix_backward<float>(nullptr, nullptr, {}, {}, one, nullptr, one, {}, false, 5, -2,
                               nullptr);
      },
      "rwkv::cuda::mix_backward: C = -2"));
  float* seven[7] = {};
  const float* cseven[7] = {};
  EXPECT_TRUE(throws_naming(
      [&] { G::mix_forward<float>(seven, nullptr, nullptr, cseven, {}, false, 5, 4, nullptr); },
      "rwkv::cuda::mix_forward: 7 mixes in one group (1 to 6)"));
  EXPECT_TRUE(throws_naming(
      [&] {
        G::mix_backward<float>(nullptr, nullptr, {}, {seven, 1}, {cseven, 2}, nullptr, {cseven, 2},
                               {}, false, 5, 4, nullptr);
      },
      "rwkv::cuda::mix_backward: 1 LoRA term gradients for 2 mixes (0 or 2)"));
}

// Empty shapes return before any launch (a launch of 0 blocks is an error), so these
// need no GPU either.
TEST(CudaTokenShift, EmptyShapesLaunchNothing) {
  float* null = nullptr;
  float* untouched = reinterpret_cast<float*>(16);  // a gradient sum never dereferenced
  EXPECT_NO_THROW(G::shift_diff_forward(null, null, null, 0, 3, 4, nullptr));
  EXPECT_NO_THROW(G::shift_last(null, null, 0, 0, 4, nullptr));
  float* const dc[1] = {untouched};
  const float* const group[1] = {null};
  EXPECT_NO_THROW(
      G::mix_backward<float>(null, null, dc, {}, group, null, group, {}, true, 0, 4, nullptr));
}

}  // namespace
