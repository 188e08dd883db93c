// Pointwise ops: forward against the formula, backward by central differences
// (op_gradcheck.h). Inputs are random in [-2, 2], so none sits at a ReLU kink.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/cpu/elementwise.h"
#include "op_gradcheck.h"

namespace rwkv::kernels {
namespace {

using test::Vec;

double reference(Act act, double x) {
  switch (act) {
    case Act::sigmoid:
      return 1 / (1 + std::exp(-x));
    case Act::silu:
      return x / (1 + std::exp(-x));
    case Act::tanh:
      return std::tanh(x);
    case Act::relu:
      return x > 0 ? x : 0;
    case Act::relu_sq:
      return x > 0 ? x * x : 0;
    case Act::exp:
      return std::exp(x);
  }
  return 0;
}

TEST(Elementwise, Activations) {
  for (Act act : {Act::sigmoid, Act::silu, Act::tanh, Act::relu, Act::relu_sq, Act::exp}) {
    const int64_t n = 17;
    Vec x = test::random_vec(n, 1, -2, 2);
    const Vec R = test::random_vec(n, 2);
    Vec out(n), dx;
    auto loss = [&] {
      act_forward(act, out.data(), x.data(), n);
      return test::dot(out, R);
    };
    loss();
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(out[i], reference(act, x[i]), 1e-14);
    auto backward = [&] { act_backward(act, dx.data(), R.data(), x.data(), n); };
    test::check_gradients(loss, backward, {{"x", &x, &dx}});
  }
}

TEST(Elementwise, MulAddAccumulate) {
  const int64_t n = 9;
  Vec a = test::random_vec(n, 3), b = test::random_vec(n, 4);
  const Vec R = test::random_vec(n, 5);
  Vec out(n), da, db;
  auto loss = [&] {
    mul_forward(out.data(), a.data(), b.data(), n);
    return test::dot(out, R);
  };
  auto backward = [&] { mul_backward(da.data(), db.data(), R.data(), a.data(), b.data(), n); };
  test::check_gradients(loss, backward, {{"a", &a, &da}, {"b", &b, &db}});
  add_forward(out.data(), a.data(), b.data(), n);
  EXPECT_EQ(out[3], a[3] + b[3]);
  Vec dst = a;
  accumulate(dst.data(), b.data(), n);
  EXPECT_EQ(dst[4], a[4] + b[4]);
}

TEST(Elementwise, ScaleChannels) {
  const int64_t n = 3, C = 5;
  Vec x = test::random_vec(n * C, 6), v = test::random_vec(C, 7);
  const Vec R = test::random_vec(n * C, 8);
  Vec out(n * C), dx, dv;
  auto loss = [&] {
    scale_channels_forward(out.data(), x.data(), v.data(), n, C);
    return test::dot(out, R);
  };
  loss();
  EXPECT_EQ(out[C + 2], x[C + 2] * v[2]);
  auto backward = [&] {
    scale_channels_backward(dx.data(), dv.data(), R.data(), x.data(), v.data(), n, C);
  };
  test::check_gradients(loss, backward, {{"x", &x, &dx}, {"vec", &v, &dv}});
}

TEST(Elementwise, BiasSigmoid) {
  const int64_t n = 3, C = 5;
  Vec z = test::random_vec(n * C, 9), bias = test::random_vec(C, 10);
  const Vec R = test::random_vec(n * C, 11);
  Vec out(n * C), dz, dbias;
  auto loss = [&] {
    bias_sigmoid_forward(out.data(), bias.data(), z.data(), n, C);
    return test::dot(out, R);
  };
  loss();
  EXPECT_NEAR(out[C + 1], 1 / (1 + std::exp(-(bias[1] + z[C + 1]))), 1e-15);
  auto backward = [&] {
    loss();
    bias_sigmoid_backward(dbias.data(), dz.data(), R.data(), out.data(), n, C);
  };
  test::check_gradients(loss, backward, {{"z", &z, &dz}, {"bias", &bias, &dbias}});
}

}  // namespace
}  // namespace rwkv::kernels
