// fast_math.h: the fp32 exp, sigmoid, tanh and sqrt against libm in double, and the float
// versions of the ops that use them against their double versions.
//
// Functions: error in ulps, |y - ref| / ulp(ref), ulp(ref) the spacing of floats at the
// exact value (2^-149 below the smallest normal float, so denormal results count too);
// a +-inf result counts as +-2^128 (one ulp beyond FLT_MAX), and so does an exact value
// beyond. Points: every 4093rd bit pattern of all 2^32 (about a million floats of every
// sign and exponent: NaNs, infinities, denormals among them), a dense grid and random
// points over the range where the function is not constant in float, and the edge
// cases by name. Each point is computed in a vectorised loop and alone.
//
// Ops: relative L2 error ||float - double||_2 / ||double||_2 <= 1e-6, both computed from
// the same (float) inputs; gradients start from the same random values.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/fast_math.h"
#include "kernels/cpu/rwkv_pointwise.h"

namespace rwkv::kernels {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

double ulp_error(float y, double ref) {
  if (std::isnan(ref)) return std::isnan(y) ? 0 : kInf;
  if (std::isnan(y)) return kInf;
  if (std::isinf(ref)) return double(y) == ref ? 0 : kInf;
  const double yd = std::isinf(y) ? std::copysign(0x1p128, double(y)) : double(y);
  ref = std::clamp(ref, -0x1p128, 0x1p128);  // beyond: the float result is +-inf
  const double a = std::abs(ref);
  const double ulp = a < double(FLT_MIN) ? 0x1p-149 : std::ldexp(1.0, std::ilogb(a) - 23);
  return std::abs(yd - ref) / ulp;
}

std::vector<float> test_points(float lo, float hi) {
  std::vector<float> x;
  for (uint64_t b = 0; b < (uint64_t(1) << 32); b += 4093)
    x.push_back(std::bit_cast<float>(static_cast<uint32_t>(b)));
  const int grid = 1 << 16;
  for (int i = 0; i <= grid; ++i) x.push_back(lo + (hi - lo) * float(i) / float(grid));
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(lo, hi);
  for (int i = 0; i < grid; ++i) x.push_back(u(rng));
  // Denormals and the ends of the float range; the tanh branch point; where exp
  // overflows (88.7228), leaves the normals (87.3365), underflows to 0 (103.972) and is
  // clamped (89, 104); each with both signs.
  const float tiny[] = {0.0f, FLT_TRUE_MIN, 0x1.fffffcp-127f, FLT_MIN, 1e-30f, 1e-6f};
  const float big[] = {0.625f,    std::nextafter(0.625f, 0.0f),
                       1.0f,      9.0f,
                       87.33654f, 88.72283f,
                       88.72284f, 89.0f,
                       103.2789f, 103.9721f,
                       104.0f,    1e30f,
                       FLT_MAX,   INFINITY};
  std::vector<float> named(std::begin(tiny), std::end(tiny));
  named.insert(named.end(), std::begin(big), std::end(big));
  for (float v : named) {
    x.push_back(v);
    x.push_back(-v);
  }
  x.push_back(kNaN);
  x.push_back(-kNaN);
  return x;
}

enum class Fn { exp, sigmoid, tanh, sqrt };

// y = fn(x) over arrays: the loops vectorise, and the function is compiled per CPU like
// the ops, so the code checked is the code the ops run on this machine.
RWKV_CPU_SIMD void apply(Fn fn, const float* x, float* y, size_t n) {
  switch (fn) {
    case Fn::exp:
      for (size_t i = 0; i < n; ++i) y[i] = fast::exp(x[i]);
      break;
    case Fn::sigmoid:
      for (size_t i = 0; i < n; ++i) y[i] = fast::sigmoid(x[i]);
      break;
    case Fn::tanh:
      for (size_t i = 0; i < n; ++i) y[i] = fast::tanh(x[i]);
      break;
    case Fn::sqrt:
      for (size_t i = 0; i < n; ++i) y[i] = fast::sqrt(x[i]);
      break;
  }
}

// The largest ulp error of fn over xs, in the loop above and one value at a time.
template <typename Ref>
double max_ulp_error(Fn fn, const std::vector<float>& xs, Ref ref, float* worst) {
  std::vector<float> ys(xs.size());
  apply(fn, xs.data(), ys.data(), xs.size());
  double mx = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    float one;
    apply(fn, &xs[i], &one, 1);
    for (float y : {ys[i], one}) {
      const double e = ulp_error(y, ref(double(xs[i])));
      if (!(e <= mx)) {
        mx = e;
        *worst = xs[i];
      }
    }
  }
  return mx;
}

TEST(FastMath, Exp) {
  float worst = 0;
  const double err = max_ulp_error(
      Fn::exp, test_points(-105.0f, 90.0f), [](double x) { return std::exp(x); }, &worst);
  EXPECT_LE(err, 1.5) << "at x = " << worst;
  EXPECT_EQ(fast::exp(0.0f), 1.0f);
  EXPECT_EQ(fast::exp(88.73f), INFINITY);
  EXPECT_EQ(fast::exp(INFINITY), INFINITY);
  EXPECT_EQ(fast::exp(-104.0f), 0.0f);
  EXPECT_EQ(fast::exp(-INFINITY), 0.0f);
  EXPECT_TRUE(std::isnan(fast::exp(kNaN)));
  EXPECT_TRUE(std::isnan(fast::exp(-kNaN)));
}

TEST(FastMath, Sigmoid) {
  float worst = 0;
  const double err = max_ulp_error(
      Fn::sigmoid, test_points(-105.0f, 20.0f), [](double x) { return 1 / (1 + std::exp(-x)); },
      &worst);
  EXPECT_LE(err, 3.0) << "at x = " << worst;
  EXPECT_EQ(fast::sigmoid(0.0f), 0.5f);
  EXPECT_EQ(fast::sigmoid(INFINITY), 1.0f);
  EXPECT_EQ(fast::sigmoid(-INFINITY), 0.0f);
  EXPECT_TRUE(std::isnan(fast::sigmoid(kNaN)));
}

TEST(FastMath, Tanh) {
  float worst = 0;
  const double err = max_ulp_error(
      Fn::tanh, test_points(-10.0f, 10.0f), [](double x) { return std::tanh(x); }, &worst);
  EXPECT_LE(err, 2.0) << "at x = " << worst;
  EXPECT_EQ(fast::tanh(FLT_TRUE_MIN), FLT_TRUE_MIN);
  EXPECT_TRUE(std::signbit(fast::tanh(-0.0f)));
  EXPECT_EQ(fast::tanh(INFINITY), 1.0f);
  EXPECT_EQ(fast::tanh(-INFINITY), -1.0f);
  EXPECT_TRUE(std::isnan(fast::tanh(kNaN)));
}

TEST(FastMath, Sqrt) {
  float worst = 0;
  const double err = max_ulp_error(
      Fn::sqrt, test_points(0.0f, 1e4f), [](double x) { return std::sqrt(x); }, &worst);
  EXPECT_LE(err, 1.0) << "at x = " << worst;
  EXPECT_EQ(fast::sqrt(0.0f), 0.0f);
  EXPECT_TRUE(std::signbit(fast::sqrt(-0.0f)));
  EXPECT_EQ(fast::sqrt(INFINITY), INFINITY);
  EXPECT_TRUE(std::isnan(fast::sqrt(-1.0f)));
  EXPECT_TRUE(std::isnan(fast::sqrt(-INFINITY)));
  EXPECT_TRUE(std::isnan(fast::sqrt(kNaN)));
}

TEST(FastMath, SumAddsEveryTermOnce) {
  // Integers: every order gives the exact sum, so a term left out or added twice shows.
  for (int64_t n : {0, 1, 15, 16, 17, 100}) {
    const double s = fast::sum<double>(n, [](int64_t i) { return double(i + 1); });
    EXPECT_EQ(s, double(n * (n + 1) / 2)) << n;
  }
}

// The same random inputs in float and in double.
struct Inputs {
  std::vector<float> f;
  std::vector<double> d;
  Inputs(size_t n, float lo, float hi, uint32_t seed) : f(n), d(n) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(lo, hi);
    for (size_t i = 0; i < n; ++i) d[i] = f[i] = u(rng);
  }
};

double rel_l2(const std::vector<float>& f, const std::vector<double>& d) {
  double num = 0, den = 0;
  for (size_t i = 0; i < d.size(); ++i) {
    num += (double(f[i]) - d[i]) * (double(f[i]) - d[i]);
    den += d[i] * d[i];
  }
  return std::sqrt(num / den);
}

// n not a multiple of any vector width, so the loops' remainders run too.
constexpr int64_t kRows = 37, kC = 45, kN = kRows * kC;

TEST(FastMathOps, Activations) {
  for (Act act : {Act::sigmoid, Act::silu, Act::tanh, Act::relu, Act::relu_sq, Act::exp}) {
    const float span = act == Act::exp ? 20.0f : 12.0f;
    Inputs x(kN, -span, span, 1), dout(kN, -1, 1, 2), dx(kN, -1, 1, 3);
    std::vector<float> of(kN);
    std::vector<double> od(kN);
    act_forward(act, of.data(), x.f.data(), kN);
    act_forward(act, od.data(), x.d.data(), kN);
    EXPECT_LE(rel_l2(of, od), 1e-6) << "forward of act " << int(act);
    act_backward(act, dx.f.data(), dout.f.data(), x.f.data(), kN);
    act_backward(act, dx.d.data(), dout.d.data(), x.d.data(), kN);
    EXPECT_LE(rel_l2(dx.f, dx.d), 1e-6) << "backward of act " << int(act);
  }
}

TEST(FastMathOps, BiasSigmoidAndDecays) {
  Inputs bias(kC, -3, 3, 4), z(kN, -6, 6, 5), dout(kN, -1, 1, 6);
  Inputs dbias(kC, -1, 1, 7), dz(kN, -1, 1, 8);
  std::vector<float> of(kN);
  std::vector<double> od(kN);
  bias_sigmoid_forward(of.data(), bias.f.data(), z.f.data(), kRows, kC);
  bias_sigmoid_forward(od.data(), bias.d.data(), z.d.data(), kRows, kC);
  EXPECT_LE(rel_l2(of, od), 1e-6) << "bias_sigmoid_forward";
  bias_sigmoid_backward(dbias.f.data(), dz.f.data(), dout.f.data(), of.data(), kRows, kC);
  bias_sigmoid_backward(dbias.d.data(), dz.d.data(), dout.d.data(), od.data(), kRows, kC);
  EXPECT_LE(rel_l2(dbias.f, dbias.d), 1e-6) << "bias_sigmoid_backward dbias";
  EXPECT_LE(rel_l2(dz.f, dz.d), 1e-6) << "bias_sigmoid_backward dz";

  decay_v6_forward(of.data(), bias.f.data(), z.f.data(), kRows, kC);
  decay_v6_forward(od.data(), bias.d.data(), z.d.data(), kRows, kC);
  EXPECT_LE(rel_l2(of, od), 1e-6) << "decay_v6_forward";

  Inputs dw0(kC, -1, 1, 9);
  decay_v7_forward(of.data(), bias.f.data(), z.f.data(), kRows, kC);
  decay_v7_forward(od.data(), bias.d.data(), z.d.data(), kRows, kC);
  EXPECT_LE(rel_l2(of, od), 1e-6) << "decay_v7_forward";
  decay_v7_backward(dw0.f.data(), dz.f.data(), dout.f.data(), bias.f.data(), z.f.data(), kRows, kC);
  decay_v7_backward(dw0.d.data(), dz.d.data(), dout.d.data(), bias.d.data(), z.d.data(), kRows, kC);
  EXPECT_LE(rel_l2(dw0.f, dw0.d), 1e-6) << "decay_v7_backward dw0";
  EXPECT_LE(rel_l2(dz.f, dz.d), 1e-6) << "decay_v7_backward dz";
}

TEST(FastMathOps, CrossEntropy) {
  const int64_t n = 5, V = 1000;
  Inputs logits(n * V, -8, 8, 10);
  const std::vector<int32_t> tgt{0, 999, 17, 500, 3};
  std::vector<float> mf(n), sf(n), tf(n), lf(n), gf(n * V);
  std::vector<double> md(n), sd(n), td(n), ld(n), gd(n * V);
  std::vector<int32_t> af(n), ad(n);
  ce_local_max(mf.data(), af.data(), logits.f.data(), n, V, 0);
  ce_local_max(md.data(), ad.data(), logits.d.data(), n, V, 0);
  EXPECT_EQ(af, ad);
  ce_local_sums(sf.data(), tf.data(), logits.f.data(), tgt.data(), mf.data(), n, V, 0);
  ce_local_sums(sd.data(), td.data(), logits.d.data(), tgt.data(), md.data(), n, V, 0);
  EXPECT_LE(rel_l2(sf, sd), 1e-6) << "ce_local_sums";
  ce_backward(gf.data(), logits.f.data(), tgt.data(), mf.data(), sf.data(), af.data(), n, V, 0,
              0.5f, 1e-4f);
  ce_backward(gd.data(), logits.d.data(), tgt.data(), md.data(), sd.data(), ad.data(), n, V, 0, 0.5,
              1e-4);
  EXPECT_LE(rel_l2(gf, gd), 1e-6) << "ce_backward";
}

}  // namespace
}  // namespace rwkv::kernels
