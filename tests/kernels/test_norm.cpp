// LayerNorm, RMSNorm, GroupNorm and per-head L2 normalisation: forward against a
// direct evaluation of the formula (max abs error < 1e-12), backward by central
// differences (op_gradcheck.h).
#include <gtest/gtest.h>

#include "kernels/cpu/norm.h"
#include "op_gradcheck.h"

namespace rwkv::kernels {
namespace {

using test::Vec;

TEST(Norm, LayerNormForwardMatchesFormula) {
  const int64_t n = 3, C = 7;
  Vec x = test::random_vec(n * C, 1, -2, 3), w = test::random_vec(C, 2), b = test::random_vec(C, 3);
  Vec out(n * C), mean(n), rstd(n);
  layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), n, C, 1e-5);
  for (int64_t i = 0; i < n; ++i) {
    double m = 0, v = 0;
    for (int64_t c = 0; c < C; ++c) m += x[i * C + c] / C;
    for (int64_t c = 0; c < C; ++c) v += (x[i * C + c] - m) * (x[i * C + c] - m) / C;
    for (int64_t c = 0; c < C; ++c)
      EXPECT_NEAR(out[i * C + c], (x[i * C + c] - m) / std::sqrt(v + 1e-5) * w[c] + b[c], 1e-12);
  }
}

TEST(Norm, LayerNormGradients) {
  const int64_t n = 3, C = 6;
  Vec x = test::random_vec(n * C, 1), w = test::random_vec(C, 2), b = test::random_vec(C, 3);
  const Vec R = test::random_vec(n * C, 4);
  Vec out(n * C), mean(n), rstd(n), dx, dw, db;
  auto loss = [&] {
    layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), n, C,
                      1e-5);
    return test::dot(out, R);
  };
  auto backward = [&] {
    loss();
    layernorm_backward(dx.data(), dw.data(), db.data(), R.data(), x.data(), w.data(), mean.data(),
                       rstd.data(), n, C);
  };
  test::check_gradients(loss, backward, {{"x", &x, &dx}, {"w", &w, &dw}, {"b", &b, &db}});
}

TEST(Norm, RmsNormForwardAndGradients) {
  const int64_t n = 3, C = 6;
  Vec x = test::random_vec(n * C, 5), w = test::random_vec(C, 6);
  const Vec R = test::random_vec(n * C, 7);
  Vec out(n * C), rstd(n), dx, dw;
  auto loss = [&] {
    rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), n, C, 1e-5);
    return test::dot(out, R);
  };
  loss();
  double ms = 0;
  for (int64_t c = 0; c < C; ++c) ms += x[c] * x[c] / C;
  EXPECT_NEAR(out[2], x[2] / std::sqrt(ms + 1e-5) * w[2], 1e-12);
  auto backward = [&] {
    loss();
    rmsnorm_backward(dx.data(), dw.data(), R.data(), x.data(), w.data(), rstd.data(), n, C);
  };
  test::check_gradients(loss, backward, {{"x", &x, &dx}, {"w", &w, &dw}});
}

TEST(Norm, GroupNormIsLayerNormPerHead) {
  const int64_t n = 2, H = 3, N = 4, C = H * N;
  Vec x = test::random_vec(n * C, 8), w = test::random_vec(C, 9), b = test::random_vec(C, 10);
  Vec out(n * C), mean(n * H), rstd(n * H);
  groupnorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(),
                    static_cast<const double*>(nullptr), n, H, N, 64e-5);
  // Head h of row i is a LayerNorm of its N channels with the affine slice of head h.
  Vec seg(N), m1(1), r1(1);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t h = 0; h < H; ++h) {
      layernorm_forward(seg.data(), m1.data(), r1.data(), x.data() + i * C + h * N,
                        w.data() + h * N, b.data() + h * N, 1, N, 64e-5);
      for (int64_t j = 0; j < N; ++j) EXPECT_NEAR(out[i * C + h * N + j], seg[j], 1e-14);
    }
}

TEST(Norm, GroupNormGradients) {
  const int64_t n = 2, H = 2, N = 4, C = H * N;
  Vec x = test::random_vec(n * C, 11), w = test::random_vec(C, 12), b = test::random_vec(C, 13);
  const Vec R = test::random_vec(n * C, 14);
  Vec out(n * C), mean(n * H), rstd(n * H), dx, dw, db;
  const double* none = nullptr;
  auto loss = [&] {
    groupnorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), none, n,
                      H, N, 64e-5);
    return test::dot(out, R);
  };
  auto backward = [&] {
    loss();
    groupnorm_backward(dx.data(), dw.data(), db.data(), static_cast<double*>(nullptr), R.data(),
                       x.data(), w.data(), b.data(), none, mean.data(), rstd.data(), n, H, N);
  };
  test::check_gradients(loss, backward, {{"x", &x, &dx}, {"w", &w, &dw}, {"b", &b, &db}});
}

// The gated GroupNorm (RWKV-5/6/7's ln_x(y) * g): forward = the ungated norm times g
// exactly, gradients of x, w, b and g by central differences.
TEST(Norm, GatedGroupNormGradients) {
  const int64_t n = 3, H = 2, N = 5, C = H * N;
  Vec x = test::random_vec(n * C, 15), w = test::random_vec(C, 16), b = test::random_vec(C, 17);
  Vec g = test::random_vec(n * C, 18);
  const Vec R = test::random_vec(n * C, 19);
  Vec out(n * C), plain(n * C), mean(n * H), rstd(n * H), dx, dw, db, dg;
  auto loss = [&] {
    groupnorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), g.data(),
                      n, H, N, 64e-5);
    return test::dot(out, R);
  };
  loss();
  groupnorm_forward(plain.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(),
                    static_cast<const double*>(nullptr), n, H, N, 64e-5);
  for (int64_t i = 0; i < n * C; ++i) EXPECT_EQ(out[i], plain[i] * g[i]) << i;
  auto backward = [&] {
    loss();
    groupnorm_backward(dx.data(), dw.data(), db.data(), dg.data(), R.data(), x.data(), w.data(),
                       b.data(), g.data(), mean.data(), rstd.data(), n, H, N);
  };
  test::check_gradients(loss, backward,
                        {{"x", &x, &dx}, {"w", &w, &dw}, {"b", &b, &db}, {"g", &g, &dg}});
}

TEST(Norm, L2NormHeads) {
  const int64_t n = 2, H = 3, N = 4;
  Vec x = test::random_vec(n * H * N, 15);
  const Vec R = test::random_vec(n * H * N, 16);
  Vec out(n * H * N), nrm(n * H), dx;
  auto loss = [&] {
    l2norm_heads_forward(out.data(), nrm.data(), x.data(), n, H, N, 1e-12);
    return test::dot(out, R);
  };
  loss();
  double ss = 0;
  for (int64_t j = 0; j < N; ++j) ss += out[N + j] * out[N + j];
  EXPECT_NEAR(ss, 1.0, 1e-14);
  auto backward = [&] {
    loss();
    l2norm_heads_backward(dx.data(), R.data(), out.data(), nrm.data(), x.data(), n, H, N, 1e-12);
  };
  test::check_gradients(loss, backward, {{"x", &x, &dx}});
  // A zero head stays zero (F.normalize divides by max(|x|, eps)).
  Vec z(N, 0.0), zo(N, 1.0), zn(1);
  l2norm_heads_forward(zo.data(), zn.data(), z.data(), 1, 1, N, 1e-12);
  EXPECT_EQ(zo, Vec(N, 0.0));
}

}  // namespace
}  // namespace rwkv::kernels
