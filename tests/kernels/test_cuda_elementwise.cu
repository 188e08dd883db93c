// Elementwise CUDA kernels (label gpu, kernels/cuda/elementwise.h) against the CPU
// kernels (kernels/cpu/elementwise.h) on fresh random inputs: every activation forward
// and backward, mul, add, accumulate, scale_channels and bias_sigmoid, each backward
// for every subset of null gradients; shapes with n and C not multiples of the block
// sizes. Measure (pointwise_test_util.h): relative L2 error <= 1e-5 in fp32, outputs
// poisoned with NaN before each GPU run, gradients pre-filled with random values
// (+= checked). Also: the per-channel sum is bitwise the same on a second run, and the
// argument errors (these need no GPU).
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <sstream>
#include <string>

#include "common/error.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cuda/elementwise.h"
#include "tests/kernels/cuda_test_util.h"
#include "tests/kernels/pointwise_test_util.h"

namespace {

namespace K = rwkv::kernels;
namespace G = rwkv::cuda;
using G::test::close;
using G::test::Grad;
using G::test::In;
using G::test::Out;
using G::test::with_mask;
using K::Act;

struct Shape {
  int64_t n, C;
};
// 32-channel groups and 16 row lanes of the channel sums, 256-thread flat blocks: none
// divides these.
constexpr Shape kShapes[] = {{1, 1}, {37, 45}, {19, 70}};

struct NamedAct {
  Act act;
  const char* name;
};
constexpr NamedAct kActs[] = {{Act::sigmoid, "sigmoid"}, {Act::silu, "silu"},
                              {Act::tanh, "tanh"},       {Act::relu, "relu"},
                              {Act::relu_sq, "relu_sq"}, {Act::exp, "exp"}};

std::string name(const std::string& op, Shape s) {
  std::ostringstream o;
  o << op << " n=" << s.n << " C=" << s.C;
  return o.str();
}

TEST(CudaElementwise, Activations) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(1);
  for (const auto& [act, act_name] : kActs)
    for (Shape s : kShapes) {
      const int64_t n = s.n * s.C;
      const std::string what = name(std::string("act ") + act_name, s);
      In x(n, -3, 3, rng), dout(n, -1, 1, rng);
      Out out(n);
      Grad dx(n, true, rng);
      K::act_forward(act, out.cpu(), x.cpu(), n);
      G::act_forward(act, out.gpu(), x.gpu(), n, nullptr);
      EXPECT_TRUE(out.check(what + " out"));
      K::act_backward(act, dx.cpu(), dout.cpu(), x.cpu(), n);
      G::act_backward(act, dx.gpu(), dout.gpu(), x.gpu(), n, nullptr);
      EXPECT_TRUE(dx.check(what + " dx"));
    }
}

TEST(CudaElementwise, MulAddAccumulate) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(2);
  for (Shape s : kShapes) {
    const int64_t n = s.n * s.C;
    In a(n, -1, 1, rng), b(n, -1, 1, rng), dout(n, -1, 1, rng);
    Out prod(n), sum(n);
    K::mul_forward(prod.cpu(), a.cpu(), b.cpu(), n);
    G::mul_forward(prod.gpu(), a.gpu(), b.gpu(), n, nullptr);
    EXPECT_TRUE(prod.check(name("mul out", s)));
    K::add_forward(sum.cpu(), a.cpu(), b.cpu(), n);
    G::add_forward(sum.gpu(), a.gpu(), b.gpu(), n, nullptr);
    EXPECT_TRUE(sum.check(name("add out", s)));
    Grad dst(n, true, rng);
    K::accumulate(dst.cpu(), a.cpu(), n);
    G::accumulate(dst.gpu(), a.gpu(), n, nullptr);
    EXPECT_TRUE(dst.check(name("accumulate dst", s)));
    for (unsigned mask = 0; mask < 4; ++mask) {
      Grad da(n, mask & 1, rng), db(n, mask & 2, rng);
      K::mul_backward(da.cpu(), db.cpu(), dout.cpu(), a.cpu(), b.cpu(), n);
      G::mul_backward(da.gpu(), db.gpu(), dout.gpu(), a.gpu(), b.gpu(), n, nullptr);
      EXPECT_TRUE(da.check(with_mask(name("mul da", s), mask)));
      EXPECT_TRUE(db.check(with_mask(name("mul db", s), mask)));
    }
  }
}

TEST(CudaElementwise, ScaleChannels) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(3);
  for (Shape s : kShapes) {
    const int64_t n = s.n * s.C;
    In x(n, -1, 1, rng), vec(s.C, -2, 2, rng), dout(n, -1, 1, rng);
    Out out(n);
    K::scale_channels_forward(out.cpu(), x.cpu(), vec.cpu(), s.n, s.C);
    G::scale_channels_forward(out.gpu(), x.gpu(), vec.gpu(), s.n, s.C, nullptr);
    EXPECT_TRUE(out.check(name("scale_channels out", s)));
    for (unsigned mask = 0; mask < 4; ++mask) {
      Grad dx(n, mask & 1, rng), dvec(s.C, mask & 2, rng);
      K::scale_channels_backward(dx.cpu(), dvec.cpu(), dout.cpu(), x.cpu(), vec.cpu(), s.n, s.C);
      G::scale_channels_backward(dx.gpu(), dvec.gpu(), dout.gpu(), x.gpu(), vec.gpu(), s.n, s.C,
                                 nullptr);
      EXPECT_TRUE(dx.check(with_mask(name("scale_channels dx", s), mask)));
      EXPECT_TRUE(dvec.check(with_mask(name("scale_channels dvec", s), mask)));
    }
  }
}

TEST(CudaElementwise, BiasSigmoid) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(4);
  for (Shape s : kShapes) {
    const int64_t n = s.n * s.C;
    In z(n, -3, 3, rng), bias(s.C, -1, 1, rng), dout(n, -1, 1, rng), sig(n, 0.05, 0.95, rng);
    Out out(n);
    K::bias_sigmoid_forward(out.cpu(), bias.cpu(), z.cpu(), s.n, s.C);
    G::bias_sigmoid_forward(out.gpu(), bias.gpu(), z.gpu(), s.n, s.C, nullptr);
    EXPECT_TRUE(out.check(name("bias_sigmoid out", s)));
    for (unsigned mask = 0; mask < 4; ++mask) {
      Grad dbias(s.C, mask & 1, rng), dz(n, mask & 2, rng);
      K::bias_sigmoid_backward(dbias.cpu(), dz.cpu(), dout.cpu(), sig.cpu(), s.n, s.C);
      G::bias_sigmoid_backward(dbias.gpu(), dz.gpu(), dout.gpu(), sig.gpu(), s.n, s.C, nullptr);
      EXPECT_TRUE(dbias.check(with_mask(name("bias_sigmoid dbias", s), mask)));
      EXPECT_TRUE(dz.check(with_mask(name("bias_sigmoid dz", s), mask)));
    }
  }
}

// The per-channel sum over many rows: the CPU's value, and bitwise the same twice.
TEST(CudaElementwise, ChannelSumManyRowsReproducible) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(5);
  const Shape s{1000, 67};
  const int64_t n = s.n * s.C;
  In x(n, -1, 1, rng), vec(s.C, -1, 1, rng), dout(n, -1, 1, rng), start(s.C, -1, 1, rng);
  std::vector<float> runs[2];
  for (auto& got : runs) {
    DevBuf dvec(start.h);
    G::scale_channels_backward<float>(nullptr, dvec.p, dout.gpu(), x.gpu(), vec.gpu(), s.n, s.C,
                                      nullptr);
    got = dvec.get();
  }
  std::vector<float> ref = start.h;
  K::scale_channels_backward<float>(nullptr, ref.data(), dout.cpu(), x.cpu(), vec.cpu(), s.n, s.C);
  EXPECT_TRUE(close(name("scale_channels dvec", s), runs[0], ref));
  EXPECT_EQ(runs[0], runs[1]);
}

// Checked before any launch, so these need no GPU.
TEST(CudaElementwise, ArgumentErrors) {
  using G::test::throws_naming;
  EXPECT_TRUE(throws_naming([] { G::act_forward<float>(Act(99), nullptr, nullptr, 0, nullptr); },
                            "rwkv::cuda::act_forward: unknown activation 99"));
  EXPECT_TRUE(throws_naming(
      [] { G::act_backward<float>(Act::exp, nullptr, nullptr, nullptr, -1, nullptr); },
      "rwkv::cuda::act_backward: n = -1"));
  EXPECT_TRUE(throws_naming([] { G::mul_forward<float>(nullptr, nullptr, nullptr, -2, nullptr); },
                            "rwkv::cuda::mul_forward: n = -2"));
  EXPECT_TRUE(throws_naming(
      [] {
        G::scale_channels_backward<float>(nullptr, nullptr, nullptr, nullptr, nullptr, 3, -1,
                                          nullptr);
      },
      "rwkv::cuda::scale_channels_backward: C = -1"));
  EXPECT_TRUE(throws_naming(
      [] { G::bias_sigmoid_forward<float>(nullptr, nullptr, nullptr, -1, 4, nullptr); },
      "rwkv::cuda::bias_sigmoid_forward: n = -1"));
}

// Empty shapes return before any launch (a launch of 0 blocks is an error), so these
// need no GPU either.
TEST(CudaElementwise, EmptyShapesLaunchNothing) {
  float* null = nullptr;
  float* untouched = reinterpret_cast<float*>(16);  // a gradient sum never dereferenced
  EXPECT_NO_THROW(G::act_forward(Act::tanh, null, null, 0, nullptr));
  EXPECT_NO_THROW(G::mul_backward(null, null, null, null, null, 0, nullptr));
  EXPECT_NO_THROW(G::scale_channels_forward(null, null, null, 5, 0, nullptr));
  EXPECT_NO_THROW(G::scale_channels_backward(null, null, null, null, null, 0, 5, nullptr));
  EXPECT_NO_THROW(G::bias_sigmoid_backward(untouched, null, null, null, 0, 5, nullptr));
}

}  // namespace
