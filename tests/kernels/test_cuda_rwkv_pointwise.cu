// RWKV pointwise CUDA kernels (label gpu, kernels/cuda/rwkv_pointwise.h) against the
// CPU kernels (kernels/cpu/rwkv_pointwise.h) on fresh random inputs: the RWKV-5/6 and
// RWKV-7 decays, value residual, key adjustment, the WKV7 a/b vectors and the RWKV-7
// bonus, forward and backward, each backward for every subset of null gradients;
// shapes with n, C (and the bonus's H*N) not multiples of the block sizes. Measure
// (pointwise_test_util.h): relative L2 error <= 1e-5 in fp32, outputs poisoned with NaN
// before each GPU run (the bonus adds into its output: it starts from random values),
// gradients pre-filled with random values (+= checked). Also the argument errors
// (these need no GPU).
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <sstream>
#include <string>

#include "common/error.h"
#include "kernels/cpu/rwkv_pointwise.h"
#include "kernels/cuda/rwkv_pointwise.h"
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
  int64_t n, C;
};
constexpr Shape kShapes[] = {{1, 1}, {37, 45}, {19, 70}};

std::string name(const std::string& op, Shape s) {
  std::ostringstream o;
  o << op << " n=" << s.n << " C=" << s.C;
  return o.str();
}

TEST(CudaRwkvPointwise, DecayV6) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(1);
  for (Shape s : kShapes)
    for (bool with_ww : {false, true}) {
      const int64_t nC = s.n * s.C;
      const std::string tag = with_ww ? " with ww" : "";
      In td(s.C, -2, 1, rng), ww(nC, -1, 1, rng), dlw(nC, -1, 1, rng), lw(nC, -3, -0.01, rng);
      Out out(nC);
      K::decay_v6_forward(out.cpu(), td.cpu(), with_ww ? ww.cpu() : nullptr, s.n, s.C);
      G::decay_v6_forward(out.gpu(), td.gpu(), with_ww ? ww.gpu() : nullptr, s.n, s.C, nullptr);
      EXPECT_TRUE(out.check(name("decay_v6 lw" + tag, s)));
      for (unsigned mask = 0; mask < 4; ++mask) {
        Grad dtd(s.C, mask & 1, rng), dww(nC, mask & 2, rng);
        K::decay_v6_backward(dtd.cpu(), dww.cpu(), dlw.cpu(), lw.cpu(), s.n, s.C);
        G::decay_v6_backward(dtd.gpu(), dww.gpu(), dlw.gpu(), lw.gpu(), s.n, s.C, nullptr);
        EXPECT_TRUE(dtd.check(with_mask(name("decay_v6 dtime_decay", s), mask)));
        EXPECT_TRUE(dww.check(with_mask(name("decay_v6 dww", s), mask)));
      }
    }
}

TEST(CudaRwkvPointwise, DecayV7) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(2);
  for (Shape s : kShapes) {
    const int64_t nC = s.n * s.C;
    In w0(s.C, -2, 2, rng), z(nC, -2, 2, rng), dlw(nC, -1, 1, rng);
    Out lw(nC);
    K::decay_v7_forward(lw.cpu(), w0.cpu(), z.cpu(), s.n, s.C);
    G::decay_v7_forward(lw.gpu(), w0.gpu(), z.gpu(), s.n, s.C, nullptr);
    EXPECT_TRUE(lw.check(name("decay_v7 lw", s)));
    for (unsigned mask = 0; mask < 4; ++mask) {
      Grad dw0(s.C, mask & 1, rng), dz(nC, mask & 2, rng);
      K::decay_v7_backward(dw0.cpu(), dz.cpu(), dlw.cpu(), w0.cpu(), z.cpu(), s.n, s.C);
      G::decay_v7_backward(dw0.gpu(), dz.gpu(), dlw.gpu(), w0.gpu(), z.gpu(), s.n, s.C, nullptr);
      EXPECT_TRUE(dw0.check(with_mask(name("decay_v7 dw0", s), mask)));
      EXPECT_TRUE(dz.check(with_mask(name("decay_v7 dz", s), mask)));
    }
  }
}

TEST(CudaRwkvPointwise, ValueResidual) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(3);
  for (Shape s : kShapes) {
    const int64_t n = s.n * s.C;
    In v(n, -1, 1, rng), vf(n, -1, 1, rng), sg(n, 0, 1, rng), dout(n, -1, 1, rng);
    Out out(n);
    K::value_residual_forward(out.cpu(), v.cpu(), vf.cpu(), sg.cpu(), n);
    G::value_residual_forward(out.gpu(), v.gpu(), vf.gpu(), sg.gpu(), n, nullptr);
    EXPECT_TRUE(out.check(name("value_residual out", s)));
    for (unsigned mask = 0; mask < 8; ++mask) {
      Grad dv(n, mask & 1, rng), dvf(n, mask & 2, rng), ds(n, mask & 4, rng);
      K::value_residual_backward(dv.cpu(), dvf.cpu(), ds.cpu(), dout.cpu(), v.cpu(), vf.cpu(),
                                 sg.cpu(), n);
      G::value_residual_backward(dv.gpu(), dvf.gpu(), ds.gpu(), dout.gpu(), v.gpu(), vf.gpu(),
                                 sg.gpu(), n, nullptr);
      EXPECT_TRUE(dv.check(with_mask(name("value_residual dv", s), mask)));
      EXPECT_TRUE(dvf.check(with_mask(name("value_residual dv_first", s), mask)));
      EXPECT_TRUE(ds.check(with_mask(name("value_residual ds", s), mask)));
    }
  }
}

TEST(CudaRwkvPointwise, KeyAdjust) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(4);
  for (Shape s : kShapes) {
    const int64_t nC = s.n * s.C;
    In k(nC, -1, 1, rng), a(nC, 0, 1, rng), k_a(s.C, -1, 1, rng), dout(nC, -1, 1, rng);
    Out out(nC);
    K::key_adjust_forward(out.cpu(), k.cpu(), a.cpu(), k_a.cpu(), s.n, s.C);
    G::key_adjust_forward(out.gpu(), k.gpu(), a.gpu(), k_a.gpu(), s.n, s.C, nullptr);
    EXPECT_TRUE(out.check(name("key_adjust out", s)));
    for (unsigned mask = 0; mask < 8; ++mask) {
      Grad dk(nC, mask & 1, rng), da(nC, mask & 2, rng), dk_a(s.C, mask & 4, rng);
      K::key_adjust_backward(dk.cpu(), da.cpu(), dk_a.cpu(), dout.cpu(), k.cpu(), a.cpu(),
                             k_a.cpu(), s.n, s.C);
      G::key_adjust_backward(dk.gpu(), da.gpu(), dk_a.gpu(), dout.gpu(), k.gpu(), a.gpu(),
                             k_a.gpu(), s.n, s.C, nullptr);
      EXPECT_TRUE(dk.check(with_mask(name("key_adjust dk", s), mask)));
      EXPECT_TRUE(da.check(with_mask(name("key_adjust da", s), mask)));
      EXPECT_TRUE(dk_a.check(with_mask(name("key_adjust dk_a", s), mask)));
    }
  }
}

TEST(CudaRwkvPointwise, Wkv7Ab) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(5);
  for (Shape s : kShapes) {
    const int64_t n = s.n * s.C;
    In kk(n, -1, 1, rng), a(n, 0, 1, rng), dwa(n, -1, 1, rng), dwb(n, -1, 1, rng);
    Out wa(n), wb(n);
    K::wkv7_ab_forward(wa.cpu(), wb.cpu(), kk.cpu(), a.cpu(), n);
    G::wkv7_ab_forward(wa.gpu(), wb.gpu(), kk.gpu(), a.gpu(), n, nullptr);
    EXPECT_TRUE(wa.check(name("wkv7_ab wa", s)));
    EXPECT_TRUE(wb.check(name("wkv7_ab wb", s)));
    for (unsigned mask = 0; mask < 4; ++mask) {
      Grad dkk(n, mask & 1, rng), da(n, mask & 2, rng);
      K::wkv7_ab_backward(dkk.cpu(), da.cpu(), dwa.cpu(), dwb.cpu(), kk.cpu(), a.cpu(), n);
      G::wkv7_ab_backward(dkk.gpu(), da.gpu(), dwa.gpu(), dwb.gpu(), kk.gpu(), a.gpu(), n, nullptr);
      EXPECT_TRUE(dkk.check(with_mask(name("wkv7_ab dkk", s), mask)));
      EXPECT_TRUE(da.check(with_mask(name("wkv7_ab da", s), mask)));
    }
  }
}

// Heads of N channels: N = 7 and 40 put heads across the 8-channel groups of dr_k's
// sum and across warps; N = 40 gives lanes of the head-sum warp two channels, and the
// scratch of those sums is poisoned with NaN. Without and with the output gate g (then
// also its gradient dg, in every subset of the wanted gradients).
TEST(CudaRwkvPointwise, BonusV7) {
  SKIP_WITHOUT_GPU();
  struct HeadShape {
    int64_t n, H, N;
  };
  std::mt19937 rng(6);
  for (bool gated : {false, true})
    for (HeadShape s : {HeadShape{1, 1, 1}, HeadShape{5, 3, 7}, HeadShape{9, 2, 40}}) {
      const int64_t nC = s.n * s.H * s.N;
      std::ostringstream what;
      what << (gated ? "gated " : "") << "bonus_v7 n=" << s.n << " H=" << s.H << " N=" << s.N;
      In r(nC, -1, 1, rng), k(nC, -1, 1, rng), v(nC, -1, 1, rng), r_k(s.H * s.N, -1, 1, rng),
          dout(nC, -1, 1, rng), g(nC, -2, 2, rng);
      const float* gc = gated ? g.cpu() : nullptr;
      const float* gg = gated ? g.gpu() : nullptr;
      Out out(nC, rng), scratch(size_t(G::bonus_v7_scratch_floats(s.n, s.H)));  // NaN
      K::bonus_v7_forward(out.cpu(), r.cpu(), k.cpu(), v.cpu(), r_k.cpu(), gc, s.n, s.H, s.N);
      G::bonus_v7_forward(out.gpu(), r.gpu(), k.gpu(), v.gpu(), r_k.gpu(), gg, s.n, s.H, s.N,
                          scratch.gpu(), nullptr);
      EXPECT_TRUE(out.check(what.str() + " out"));
      for (unsigned mask = 0; mask < (gated ? 32u : 16u); ++mask) {
        Grad dr(nC, mask & 1, rng), dk(nC, mask & 2, rng), dv(nC, mask & 4, rng),
            dr_k(s.H * s.N, mask & 8, rng), dg(nC, mask & 16, rng);
        K::bonus_v7_backward(dr.cpu(), dk.cpu(), dv.cpu(), dr_k.cpu(), dg.cpu(), dout.cpu(),
                             r.cpu(), k.cpu(), v.cpu(), r_k.cpu(), gc, s.n, s.H, s.N);
        G::bonus_v7_backward(dr.gpu(), dk.gpu(), dv.gpu(), dr_k.gpu(), dg.gpu(), dout.gpu(),
                             r.gpu(), k.gpu(), v.gpu(), r_k.gpu(), gg, s.n, s.H, s.N, scratch.gpu(),
                             nullptr);
        EXPECT_TRUE(dr.check(with_mask(what.str() + " dr", mask)));
        EXPECT_TRUE(dk.check(with_mask(what.str() + " dk", mask)));
        EXPECT_TRUE(dv.check(with_mask(what.str() + " dv", mask)));
        EXPECT_TRUE(dr_k.check(with_mask(what.str() + " dr_k", mask)));
        EXPECT_TRUE(dg.check(with_mask(what.str() + " dg", mask)));
      }
    }
}

// Checked before any launch, so these need no GPU.
TEST(CudaRwkvPointwise, ArgumentErrors) {
  using G::test::throws_naming;
  EXPECT_TRUE(
      throws_naming([] { G::decay_v6_forward<float>(nullptr, nullptr, nullptr, -1, 4, nullptr); },
                    "rwkv::cuda::decay_v6_forward: n = -1"));
  EXPECT_TRUE(throws_naming(
      [] {
        G::decay_v7_backward<float>(nullptr, nullptr, nullptr, nullptr, nullptr, 3, -4, nullptr);
      },
      "rwkv::cuda::decay_v7_backward: C = -4"));
  EXPECT_TRUE(throws_naming(
      [] { G::value_residual_forward<float>(nullptr, nullptr, nullptr, nullptr, -5, nullptr); },
      "rwkv::cuda::value_residual_forward: n = -5"));
  EXPECT_TRUE(throws_naming(
      [] {
        G::bonus_v7_backward<float>(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                    nullptr, nullptr, nullptr, nullptr, 2, 3, -1, nullptr, nullptr);
      },
      "rwkv::cuda::bonus_v7_backward: N = -1"));
  float dummy = 0.f;
  EXPECT_TRUE(throws_naming(
      [&] {
        G::bonus_v7_forward<float>(&dummy, &dummy, &dummy, &dummy, &dummy, nullptr, 2, 3, 4,
                                   nullptr, nullptr);
      },
      "rwkv::cuda::bonus_v7_forward: scratch is null"));
}

}  // namespace
