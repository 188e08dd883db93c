// The RWKV-specific pointwise ops: forward against the RWKV-LM formula at one entry,
// backward by central differences.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/cpu/rwkv_pointwise.h"
#include "op_gradcheck.h"

namespace rwkv::kernels {
namespace {

using test::Vec;
const int64_t n = 3, C = 4;

TEST(RwkvPointwise, DecayV6) {
  Vec td = test::random_vec(C, 1), ww = test::random_vec(n * C, 2);
  const Vec R = test::random_vec(n * C, 3);
  Vec lw(n * C), dtd, dww;
  auto loss = [&] {
    decay_v6_forward(lw.data(), td.data(), ww.data(), n, C);
    return test::dot(lw, R);
  };
  loss();
  EXPECT_NEAR(lw[5], -std::exp(td[1] + ww[5]), 1e-15);
  auto backward = [&] {
    loss();
    decay_v6_backward(dtd.data(), dww.data(), R.data(), lw.data(), n, C);
  };
  test::check_gradients(loss, backward, {{"time_decay", &td, &dtd}, {"ww", &ww, &dww}});
}

TEST(RwkvPointwise, DecayV7) {
  Vec w0 = test::random_vec(C, 4), z = test::random_vec(n * C, 5);
  const Vec R = test::random_vec(n * C, 6);
  Vec lw(n * C), dw0, dz;
  auto loss = [&] {
    decay_v7_forward(lw.data(), w0.data(), z.data(), n, C);
    return test::dot(lw, R);
  };
  loss();
  // exp(-exp(w)) with w = -softplus(-(w0 + z)) - 0.5 (RWKV-v7 train_temp)
  const double wr = w0[2] + z[6], w = -std::log1p(std::exp(-wr)) - 0.5;
  EXPECT_NEAR(lw[6], -std::exp(w), 1e-15);
  auto backward = [&] { decay_v7_backward(dw0.data(), dz.data(), R.data(), w0.data(), z.data(), n, C); };
  test::check_gradients(loss, backward, {{"w0", &w0, &dw0}, {"z", &z, &dz}});
}

TEST(RwkvPointwise, ValueResidual) {
  Vec v = test::random_vec(n * C, 7), vf = test::random_vec(n * C, 8), s = test::random_vec(n * C, 9, 0, 1);
  const Vec R = test::random_vec(n * C, 10);
  Vec out(n * C), dv, dvf, ds;
  auto loss = [&] {
    value_residual_forward(out.data(), v.data(), vf.data(), s.data(), n * C);
    return test::dot(out, R);
  };
  auto backward = [&] {
    value_residual_backward(dv.data(), dvf.data(), ds.data(), R.data(), v.data(), vf.data(), s.data(), n * C);
  };
  test::check_gradients(loss, backward, {{"v", &v, &dv}, {"v_first", &vf, &dvf}, {"s", &s, &ds}});
}

TEST(RwkvPointwise, KeyAdjust) {
  Vec k = test::random_vec(n * C, 11), a = test::random_vec(n * C, 12, 0, 1), ka = test::random_vec(C, 13);
  const Vec R = test::random_vec(n * C, 14);
  Vec out(n * C), dk, da, dka;
  auto loss = [&] {
    key_adjust_forward(out.data(), k.data(), a.data(), ka.data(), n, C);
    return test::dot(out, R);
  };
  loss();
  EXPECT_NEAR(out[7], k[7] * (1 + (a[7] - 1) * ka[3]), 1e-15);
  auto backward = [&] {
    key_adjust_backward(dk.data(), da.data(), dka.data(), R.data(), k.data(), a.data(), ka.data(), n, C);
  };
  test::check_gradients(loss, backward, {{"k", &k, &dk}, {"a", &a, &da}, {"k_a", &ka, &dka}});
}

TEST(RwkvPointwise, Wkv7Ab) {
  Vec kk = test::random_vec(n * C, 15), a = test::random_vec(n * C, 16);
  const Vec Ra = test::random_vec(n * C, 17), Rb = test::random_vec(n * C, 18);
  Vec wa(n * C), wb(n * C), dkk, da;
  auto loss = [&] {
    wkv7_ab_forward(wa.data(), wb.data(), kk.data(), a.data(), n * C);
    return test::dot(wa, Ra) + test::dot(wb, Rb);
  };
  loss();
  EXPECT_EQ(wa[2], -kk[2]);
  EXPECT_EQ(wb[2], kk[2] * a[2]);
  auto backward = [&] {
    wkv7_ab_backward(dkk.data(), da.data(), Ra.data(), Rb.data(), kk.data(), a.data(), n * C);
  };
  test::check_gradients(loss, backward, {{"kk", &kk, &dkk}, {"a", &a, &da}});
}

TEST(RwkvPointwise, BonusV7) {
  const int64_t H = 2, N = 2;
  Vec r = test::random_vec(n * C, 19), k = test::random_vec(n * C, 20), v = test::random_vec(n * C, 21);
  Vec rk = test::random_vec(H * N, 22);
  const Vec R = test::random_vec(n * C, 23), base = test::random_vec(n * C, 24);
  Vec out(n * C), dr, dk, dv, drk;
  const double* none = nullptr;
  auto loss = [&] {
    out = base;
    bonus_v7_forward(out.data(), r.data(), k.data(), v.data(), rk.data(), none, n, H, N);
    return test::dot(out, R);
  };
  loss();
  // token 1, head 1: out += (sum_j r k r_k) v
  const int64_t o = 1 * C + 1 * N;
  const double s = r[o] * k[o] * rk[2] + r[o + 1] * k[o + 1] * rk[3];
  EXPECT_NEAR(out[o + 1], base[o + 1] + s * v[o + 1], 1e-15);
  auto backward = [&] {
    bonus_v7_backward(dr.data(), dk.data(), dv.data(), drk.data(), static_cast<double*>(nullptr),
                      R.data(), r.data(), k.data(), v.data(), rk.data(), none, n, H, N);
  };
  test::check_gradients(loss, backward, {{"r", &r, &dr}, {"k", &k, &dk}, {"v", &v, &dv}, {"r_k", &rk, &drk}});
}

// With the output gate g (RWKV-7's (ln_x(y) + bonus) * g): out += bonus * g.
TEST(RwkvPointwise, GatedBonusV7) {
  const int64_t H = 2, N = 2;
  Vec r = test::random_vec(n * C, 25), k = test::random_vec(n * C, 26),
      v = test::random_vec(n * C, 27);
  Vec rk = test::random_vec(H * N, 28), g = test::random_vec(n * C, 29);
  const Vec R = test::random_vec(n * C, 30), base = test::random_vec(n * C, 31);
  Vec out(n * C), dr, dk, dv, drk, dg;
  auto loss = [&] {
    out = base;
    bonus_v7_forward(out.data(), r.data(), k.data(), v.data(), rk.data(), g.data(), n, H, N);
    return test::dot(out, R);
  };
  loss();
  // token 2, head 0: out += (sum_j r k r_k) v g
  const int64_t o = 2 * C;
  const double s = r[o] * k[o] * rk[0] + r[o + 1] * k[o + 1] * rk[1];
  EXPECT_NEAR(out[o + 1], base[o + 1] + s * v[o + 1] * g[o + 1], 1e-15);
  auto backward = [&] {
    bonus_v7_backward(dr.data(), dk.data(), dv.data(), drk.data(), dg.data(), R.data(), r.data(),
                      k.data(), v.data(), rk.data(), g.data(), n, H, N);
  };
  test::check_gradients(
      loss, backward,
      {{"r", &r, &dr}, {"k", &k, &dk}, {"v", &v, &dv}, {"r_k", &rk, &drk}, {"g", &g, &dg}});
}

}  // namespace
}  // namespace rwkv::kernels
