// Token shift: xx = shift(x) - x with a carried state, the static and data-dependent
// mixes; forward against the definition, backward by central differences.
#include <gtest/gtest.h>

#include "kernels/cpu/token_shift.h"
#include "op_gradcheck.h"

namespace rwkv::kernels {
namespace {

using test::Vec;

TEST(TokenShift, ShiftDiffForward) {
  const int64_t B = 2, T = 3, C = 4;
  const Vec x = test::random_vec(B * T * C, 1), prev = test::random_vec(B * C, 2);
  Vec xx(B * T * C);
  shift_diff_forward(xx.data(), x.data(), static_cast<const double*>(nullptr), B, T, C);
  EXPECT_EQ(xx[(1 * T + 0) * C + 2], -x[(1 * T + 0) * C + 2]);  // zero before t = 0
  EXPECT_EQ(xx[(1 * T + 2) * C + 1], x[(1 * T + 1) * C + 1] - x[(1 * T + 2) * C + 1]);
  shift_diff_forward(xx.data(), x.data(), prev.data(), B, T, C);
  EXPECT_EQ(xx[(1 * T + 0) * C + 3], prev[1 * C + 3] - x[(1 * T + 0) * C + 3]);
  Vec last(B * C);
  shift_last(last.data(), x.data(), B, T, C);
  EXPECT_EQ(last[1 * C + 2], x[(1 * T + 2) * C + 2]);
}

TEST(TokenShift, ShiftDiffGradients) {
  const int64_t B = 2, T = 3, C = 4;
  Vec x = test::random_vec(B * T * C, 3), prev = test::random_vec(B * C, 4);
  const Vec R = test::random_vec(B * T * C, 5);
  Vec xx(B * T * C), dx, dprev;
  auto loss = [&] {
    shift_diff_forward(xx.data(), x.data(), prev.data(), B, T, C);
    return test::dot(xx, R);
  };
  auto backward = [&] { shift_diff_backward(dx.data(), dprev.data(), R.data(), B, T, C); };
  test::check_gradients(loss, backward, {{"x", &x, &dx}, {"prev", &prev, &dprev}});
}

TEST(TokenShift, MixForms) {
  const int64_t n = 3, C = 4;
  Vec x = test::random_vec(n * C, 6), xx = test::random_vec(n * C, 7);
  Vec c = test::random_vec(C, 8), m = test::random_vec(n * C, 9);
  const Vec R = test::random_vec(n * C, 10);
  Vec out(n * C);
  // v4/v5: x * mu + shift(x) * (1 - mu) = x + xx * (1 - mu)
  mix_forward(out.data(), x.data(), xx.data(), c.data(), static_cast<const double*>(nullptr), true,
              n, C);
  const double prev = xx[5] + x[5];
  EXPECT_NEAR(out[5], x[5] * c[1] + prev * (1 - c[1]), 1e-15);
  for (bool one_minus : {false, true}) {
    Vec dx, dxx, dc, dm;
    auto loss = [&] {
      mix_forward(out.data(), x.data(), xx.data(), c.data(), m.data(), one_minus, n, C);
      return test::dot(out, R);
    };
    auto backward = [&] {
      mix_backward(dx.data(), dxx.data(), dc.data(), dm.data(), R.data(), xx.data(), c.data(),
                   m.data(), one_minus, n, C);
    };
    test::check_gradients(loss, backward,
                          {{"x", &x, &dx}, {"xx", &xx, &dxx}, {"c", &c, &dc}, {"m", &m, &dm}});
  }
}

}  // namespace
}  // namespace rwkv::kernels
