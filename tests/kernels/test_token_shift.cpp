// Token shift: xx = shift(x) - x with a carried state, the static and data-dependent
// mixes; forward against the definition, backward by central differences.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "common/error.h"
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

// The v4/v5 form x * mu + shift(x) * (1 - mu) = x + xx * (1 - mu), one mix.
TEST(TokenShift, MixOneMinusForm) {
  const int64_t n = 3, C = 4;
  const Vec x = test::random_vec(n * C, 6), xx = test::random_vec(n * C, 7);
  const Vec c = test::random_vec(C, 8);
  Vec out(n * C);
  double* const outs[1] = {out.data()};
  const double* const coefs[1] = {c.data()};
  mix_forward<double>(outs, x.data(), xx.data(), coefs, {}, true, n, C);
  const double prev = xx[5] + x[5];
  EXPECT_NEAR(out[5], x[5] * c[1] + prev * (1 - c[1]), 1e-15);
}

// A group of K mixes (RWKV-6's five with LoRA terms, both coefficient forms): every
// input's gradient by central differences of sum_k dot(outs[k], R_k).
TEST(TokenShift, MixGroupGradients) {
  const int64_t n = 3, C = 4;
  for (int K : {1, 3, kMaxMixes})
    for (bool one_minus : {false, true}) {
      SCOPED_TRACE(testing::Message() << "K " << K << " one_minus " << one_minus);
      Vec x = test::random_vec(n * C, 6), xx = test::random_vec(n * C, 7);
      std::vector<Vec> c, m, R, out(K, Vec(n * C)), dc(K), dm(K);
      for (int k = 0; k < K; ++k) {
        c.push_back(test::random_vec(C, 10 + k));
        m.push_back(test::random_vec(n * C, 20 + k));
        R.push_back(test::random_vec(n * C, 30 + k));
      }
      auto ptrs = [K](auto& vs) {
        std::vector<decltype(vs[0].data())> p;
        for (int k = 0; k < K; ++k) p.push_back(vs[k].data());
        return p;
      };
      const auto outs = ptrs(out);
      auto loss = [&] {
        const auto cs = ptrs(c), ms = ptrs(m);
        mix_forward<double>(outs, x.data(), xx.data(), {cs.data(), cs.size()},
                            {ms.data(), ms.size()}, one_minus, n, C);
        double l = 0;
        for (int k = 0; k < K; ++k) l += test::dot(out[k], R[k]);
        return l;
      };
      Vec dx, dxx;
      auto backward = [&] {
        const auto cs = ptrs(c), ms = ptrs(m), dcs = ptrs(dc), dms = ptrs(dm);
        std::vector<const double*> rs;
        for (const Vec& r : R) rs.push_back(r.data());
        mix_backward<double>(dx.data(), dxx.data(), dcs, dms, rs, xx.data(), {cs.data(), cs.size()},
                             {ms.data(), ms.size()}, one_minus, n, C);
      };
      std::vector<test::Input> inputs{{"x", &x, &dx}, {"xx", &xx, &dxx}};
      auto name = [](char tensor, int k) {
        std::string s(1, tensor);
        s += std::to_string(k);
        return s;
      };
      for (int k = 0; k < K; ++k) {
        inputs.push_back({name('c', k), &c[k], &dc[k]});
        inputs.push_back({name('m', k), &m[k], &dm[k]});
      }
      test::check_gradients(loss, backward, inputs);
    }
}

// A group gives the bits of its mixes run one at a time in order (the sums of each
// element in the same order), and skips null gradients.
TEST(TokenShift, MixGroupIsItsMixesInOrder) {
  const int64_t n = 5, C = 7, K = 4;
  const Vec x = test::random_vec(n * C, 1), xx = test::random_vec(n * C, 2);
  std::vector<Vec> c, d;
  for (int k = 0; k < K; ++k) {
    c.push_back(test::random_vec(C, 3 + k));
    d.push_back(test::random_vec(n * C, 9 + k));
  }
  const double* cs[K] = {c[0].data(), c[1].data(), c[2].data(), c[3].data()};
  const double* ds[K] = {d[0].data(), d[1].data(), d[2].data(), d[3].data()};
  std::vector<Vec> out_group(K, Vec(n * C)), out_one(K, Vec(n * C));
  double* og[K] = {out_group[0].data(), out_group[1].data(), out_group[2].data(),
                   out_group[3].data()};
  mix_forward<double>(og, x.data(), xx.data(), cs, {}, false, n, C);
  Vec dx_group = test::random_vec(n * C, 20), dxx_group = test::random_vec(n * C, 21);
  Vec dx_one = dx_group, dxx_one = dxx_group;
  std::vector<Vec> dc_group(K, test::random_vec(C, 22)), dc_one = dc_group;
  double* dcg[K] = {dc_group[0].data(), nullptr, dc_group[2].data(), dc_group[3].data()};
  mix_backward<double>(dx_group.data(), dxx_group.data(), dcg, {}, ds, xx.data(), cs, {}, false, n,
                       C);
  for (int k = 0; k < K; ++k) {
    double* const o[1] = {out_one[k].data()};
    double* const dco[1] = {k == 1 ? nullptr : dc_one[k].data()};
    mix_forward<double>(o, x.data(), xx.data(), {&cs[k], 1}, {}, false, n, C);
    mix_backward<double>(dx_one.data(), dxx_one.data(), dco, {}, {&ds[k], 1}, xx.data(),
                         {&cs[k], 1}, {}, false, n, C);
    EXPECT_EQ(out_group[k], out_one[k]) << "mix " << k;
    EXPECT_EQ(dc_group[k], dc_one[k]) << "mix " << k;
  }
  EXPECT_EQ(dc_group[1], test::random_vec(C, 22)) << "a null gradient was written";
  EXPECT_EQ(dx_group, dx_one);
  EXPECT_EQ(dxx_group, dxx_one);
}

TEST(TokenShift, MixGroupRejectsBadSizes) {
  Vec v(8);
  double* p = v.data();
  double* const seven[7] = {p, p, p, p, p, p, p};
  const double* const cseven[7] = {p, p, p, p, p, p, p};
  auto expect_error = [](const std::function<void()>& call, const std::string& want) {
    try {
      call();
      ADD_FAILURE() << "no error; wanted " << want;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  };
  expect_error([&] { mix_forward<double>({}, p, p, {}, {}, false, 2, 4); },
               "rwkv::kernels::mix_forward: 0 mixes in one group (1 to 6)");
  expect_error([&] { mix_forward<double>(seven, p, p, cseven, {}, false, 2, 4); },
               "rwkv::kernels::mix_forward: 7 mixes in one group");
  expect_error(
      [&] {
        mix_forward<double>({seven, 2}, p, p, {cseven, 3}, {}, false, 2, 4);
      },
      "mix_forward: 3 coefficient vectors for 2 mixes");
  expect_error(
      [&] {
        mix_forward<double>({seven, 2}, p, p, {cseven, 2}, {cseven, 1}, false, 2, 4);
      },
      "mix_forward: 1 LoRA terms for 2 mixes (0 or 2)");
  expect_error(
      [&] {
        mix_backward<double>(p, p, {seven, 3}, {}, {cseven, 2}, p, {cseven, 2}, {}, false, 2, 4);
      },
      "rwkv::kernels::mix_backward: 3 coefficient gradients for 2 mixes");
}

}  // namespace
}  // namespace rwkv::kernels
