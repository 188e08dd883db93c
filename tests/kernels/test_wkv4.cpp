// WKV4 kernels: the stable forward against the defining sums (double), the backward
// against central finite differences (double), large keys in fp32, state carry and
// channel ranges.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/wkv4.h"
#include "tests/kernels/op_gradcheck.h"
#include "tests/kernels/wkv_test_util.h"
#include "kernels/cpu/wkv_common.h"

namespace rk = rwkv::kernels;
namespace rkt = rwkv::kernels::test;
using rkt::rel_err;
using rkt::uniform;

namespace {

const auto kAll = [](size_t) { return true; };

template <typename F>
struct Inputs {
  int B, T, C;
  std::vector<F> w, u, k, v, dy;  // w, u [C]; k, v, dy [B, T, C]
  Inputs(int b, int t, int c, double k_lo, double k_hi, unsigned seed) : B(b), T(t), C(c) {
    std::mt19937 rng(seed);
    const size_t sz = size_t(B) * T * C;
    w = uniform<F>(C, 0.05, 2.0, rng);
    u = uniform<F>(C, -1, 1, rng);
    k = uniform<F>(sz, k_lo, k_hi, rng);
    v = uniform<F>(sz, -1, 1, rng);
    dy = uniform<F>(sz, -1, 1, rng);
  }
  template <typename G>
  Inputs<G> as() const {
    Inputs<G> o(0, 0, 0, 0, 0, 0);
    o.B = B, o.T = T, o.C = C;
    o.w.assign(w.begin(), w.end());
    o.u.assign(u.begin(), u.end());
    o.k.assign(k.begin(), k.end());
    o.v.assign(v.begin(), v.end());
    o.dy.assign(dy.begin(), dy.end());
    return o;
  }
};

template <typename F>
struct Out {
  std::vector<F> y, dw, du, dk, dv;
};

template <typename F>
Out<F> run(const Inputs<F>& in, int c0, int c1, F fill) {
  const size_t sz = size_t(in.B) * in.T * in.C;
  Out<F> o{std::vector<F>(sz, fill), std::vector<F>(in.C, fill), std::vector<F>(in.C, fill),
           std::vector<F>(sz, fill), std::vector<F>(sz, fill)};
  rk::wkv4_forward_naive(in.B, in.T, in.C, c0, c1, in.w.data(), in.u.data(), in.k.data(),
                         in.v.data(), o.y.data(), nullptr, nullptr);
  rk::wkv4_backward_naive(in.B, in.T, in.C, c0, c1, in.w.data(), in.u.data(), in.k.data(),
                          in.v.data(), in.dy.data(), o.dw.data(), o.du.data(), o.dk.data(),
                          o.dv.data());
  return o;
}

}  // namespace

// The definition: wkv_t = (sum_{i<t} e^{-(t-1-i)w + k_i} v_i + e^{u+k_t} v_t) / (same
// without v), evaluated directly in double (small k, no overflow).
TEST(Wkv4, ForwardMatchesDefinition) {
  Inputs<double> in(2, 9, 5, -2, 2, 1);
  std::vector<double> y(in.k.size());
  rk::wkv4_forward_naive(in.B, in.T, in.C, 0, in.C, in.w.data(), in.u.data(), in.k.data(),
                         in.v.data(), y.data(), nullptr, nullptr);
  std::vector<double> ref(y.size());
  for (int b = 0; b < in.B; ++b)
    for (int c = 0; c < in.C; ++c)
      for (int t = 0; t < in.T; ++t) {
        const auto at = [&](int tt) { return (size_t(b) * in.T + tt) * in.C + c; };
        double num = std::exp(in.u[c] + in.k[at(t)]) * in.v[at(t)];
        double den = std::exp(in.u[c] + in.k[at(t)]);
        for (int i = 0; i < t; ++i) {
          const double e = std::exp(-(t - 1 - i) * in.w[c] + in.k[at(i)]);
          num += e * in.v[at(i)];
          den += e;
        }
        ref[at(t)] = num / den;
      }
  EXPECT_LT(rel_err(y, ref, kAll), 1e-13);
}

// Loss = sum(y * dy). Measure per tensor (tests/kernels/op_gradcheck.h):
// ||g_backward - g_fd||_2 / ||g_fd||_2 < 1e-6.
TEST(Wkv4, BackwardMatchesFiniteDifferences) {
  Inputs<double> in(2, 7, 4, -2, 2, 2);
  const auto loss = [&]() {
    std::vector<double> y(in.k.size());
    rk::wkv4_forward_naive(in.B, in.T, in.C, 0, in.C, in.w.data(), in.u.data(), in.k.data(),
                           in.v.data(), y.data(), nullptr, nullptr);
    double l = 0;
    for (size_t i = 0; i < y.size(); ++i) l += y[i] * in.dy[i];
    return l;
  };
  std::vector<double> dw, du, dk, dv;
  const auto backward = [&]() {
    const Out<double> g = run(in, 0, in.C, 0.0);
    dw = g.dw, du = g.du, dk = g.dk, dv = g.dv;
  };
  rkt::check_gradients(loss, backward,
                       {{"w", &in.w, &dw}, {"u", &in.u, &du}, {"k", &in.k, &dk}, {"v", &in.v, &dv}},
                       /*accumulates=*/false);
}

// k around 60 (e^60 overflows fp32 when formed): the fp32 kernels stay finite and agree
// with the double ones, ||fp32 - double|| / ||double|| < 1e-5; channels [1, 4) of 5,
// the others left untouched.
TEST(Wkv4, LargeKeysStayFiniteInFp32) {
  const Inputs<float> in(2, 40, 5, 55, 65, 3);
  const Out<float> got = run(in, 1, 4, 7.5f);
  const Out<double> ref = run(in.as<double>(), 1, 4, 7.5);
  const auto in_range = [&](size_t i) { return i % 5 >= 1 && i % 5 < 4; };
  for (const auto* x : {&got.y, &got.dk, &got.dv, &got.dw, &got.du}) {
    for (size_t i = 0; i < x->size(); ++i) {
      if (in_range(i)) {
        ASSERT_TRUE(std::isfinite((*x)[i])) << i;
      } else {
        ASSERT_EQ((*x)[i], 7.5f) << i;
      }
    }
  }
  EXPECT_LT(rel_err(got.y, ref.y, in_range), 1e-5);
  EXPECT_LT(rel_err(got.dk, ref.dk, in_range), 1e-5);
  EXPECT_LT(rel_err(got.dv, ref.dv, in_range), 1e-5);
  EXPECT_LT(rel_err(got.dw, ref.dw, in_range), 1e-5);
  EXPECT_LT(rel_err(got.du, ref.du, in_range), 1e-5);
}

// Running T1 then T2 tokens, passing the final (aa, bb, pp) on, equals one run of
// T1 + T2.
TEST(Wkv4, StateCarry) {
  const int B = 2, T1 = 11, T2 = 17, T = T1 + T2, C = 6;
  const Inputs<float> in(B, T, C, -3, 3, 4);
  std::vector<float> y_full(size_t(B) * T * C), s_full(size_t(B) * C * 3);
  rk::wkv4_forward_naive(B, T, C, 0, C, in.w.data(), in.u.data(), in.k.data(), in.v.data(),
                         y_full.data(), nullptr, s_full.data());
  std::vector<float> y_split(y_full.size()), s_mid(s_full.size()), s_end(s_full.size());
  for (int b = 0; b < B; ++b) {
    const size_t o1 = size_t(b) * T * C, o2 = o1 + size_t(T1) * C;
    float* sm = s_mid.data() + size_t(b) * C * 3;
    rk::wkv4_forward_naive(1, T1, C, 0, C, in.w.data(), in.u.data(), in.k.data() + o1,
                           in.v.data() + o1, y_split.data() + o1, nullptr, sm);
    rk::wkv4_forward_naive(1, T2, C, 0, C, in.w.data(), in.u.data(), in.k.data() + o2,
                           in.v.data() + o2, y_split.data() + o2, sm,
                           s_end.data() + size_t(b) * C * 3);
  }
  EXPECT_LT(rel_err(y_split, y_full, kAll), 1e-6);
  EXPECT_LT(rel_err(s_end, s_full, kAll), 1e-6);
}

TEST(Wkv4, BadChannelRangeThrows) {
  std::vector<float> x(8);
  EXPECT_THROW(rk::wkv4_forward_naive(1, 1, 4, 2, 5, x.data(), x.data(), x.data(), x.data(),
                                      x.data(), nullptr, nullptr),
               rwkv::Error);
}
