// WKV5/6 kernels: the naive backward against central finite differences (double), the
// chunked forward and backward against the naive ones (fp32), state carry, head ranges.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/wkv6.h"
#include "kernels/cpu/wkv_common.h"
#include "tests/kernels/op_gradcheck.h"
#include "tests/kernels/wkv_test_util.h"

namespace rk = rwkv::kernels;
namespace rkt = rwkv::kernels::test;
using rkt::expect_untouched;
using rkt::kSentinel;
using rkt::rel_err;
using rkt::uniform;

namespace {

// Inputs of one test case, [B, T, H, N] each, u [H, N].
template <typename F>
struct Inputs {
  int B, T, H, N;
  std::vector<F> r, k, v, lw, u, dy;
  Inputs(int b, int t, int h, int n, double lw_lo, double lw_hi, unsigned seed)
      : B(b), T(t), H(h), N(n) {
    std::mt19937 rng(seed);
    const size_t sz = size_t(B) * T * H * N;
    r = uniform<F>(sz, -1, 1, rng);
    k = uniform<F>(sz, -1, 1, rng);
    v = uniform<F>(sz, -1, 1, rng);
    lw = uniform<F>(sz, lw_lo, lw_hi, rng);
    u = uniform<F>(size_t(H) * N, -1, 1, rng);
    dy = uniform<F>(sz, -1, 1, rng);
  }
  size_t size() const { return r.size(); }
  // True for elements of [B, T, H, N] in heads [h0, h1).
  std::function<bool(size_t)> in_heads(int h0, int h1) const {
    const int n = N, hh = H;
    return [=](size_t i) {
      const int h = int(i / n) % hh;
      return h >= h0 && h < h1;
    };
  }
};

struct Grads {
  std::vector<float> y, dr, dk, dv, dlw, du;
};

Grads run(const Inputs<float>& in, int h0, int h1, int chunk) {
  Grads g;
  const size_t sz = in.size();
  g.y.assign(sz, kSentinel);
  g.dr.assign(sz, kSentinel);
  g.dk.assign(sz, kSentinel);
  g.dv.assign(sz, kSentinel);
  g.dlw.assign(sz, kSentinel);
  g.du.assign(size_t(in.H) * in.N, kSentinel);
  if (chunk == 0) {
    rk::wkv6_forward_naive(in.B, in.T, in.H, in.N, h0, h1, in.r.data(), in.k.data(), in.v.data(),
                           in.lw.data(), in.u.data(), g.y.data(), nullptr, nullptr);
    rk::wkv6_backward_naive(in.B, in.T, in.H, in.N, h0, h1, in.r.data(), in.k.data(), in.v.data(),
                            in.lw.data(), in.u.data(), in.dy.data(), g.dr.data(), g.dk.data(),
                            g.dv.data(), g.dlw.data(), g.du.data());
  } else {
    rk::wkv6_forward_chunked(in.B, in.T, in.H, in.N, h0, h1, in.r.data(), in.k.data(), in.v.data(),
                             in.lw.data(), in.u.data(), g.y.data(), nullptr, nullptr, chunk);
    rk::wkv6_backward_chunked(in.B, in.T, in.H, in.N, h0, h1, in.r.data(), in.k.data(), in.v.data(),
                              in.lw.data(), in.u.data(), in.dy.data(), g.dr.data(), g.dk.data(),
                              g.dv.data(), g.dlw.data(), g.du.data(), chunk);
  }
  return g;
}

void expect_chunked_matches_naive(const Inputs<float>& in) {
  const int h0 = 1, h1 = 3;
  const Grads ref = run(in, h0, h1, 0);
  const Grads got = run(in, h0, h1, 16);
  const auto m = in.in_heads(h0, h1);
  const auto mu = [&](size_t i) { return int(i) / in.N >= h0 && int(i) / in.N < h1; };
  const double tol = 1e-5;
  EXPECT_LT(rel_err(got.y, ref.y, m), tol);
  EXPECT_LT(rel_err(got.dr, ref.dr, m), tol);
  EXPECT_LT(rel_err(got.dk, ref.dk, m), tol);
  EXPECT_LT(rel_err(got.dv, ref.dv, m), tol);
  EXPECT_LT(rel_err(got.dlw, ref.dlw, m), tol);
  EXPECT_LT(rel_err(got.du, ref.du, mu), tol);
  // Heads outside [h0, h1) are left as they were.
  expect_untouched({&got.y, &got.dr, &got.dk, &got.dv, &got.dlw}, m);
  expect_untouched({&got.du}, mu);
}

// B = 2, T = 37, H = 4, heads [1, 3), chunk 16.
void expect_chunked_matches_naive(double lw_lo, double lw_hi, unsigned seed, int N = 8) {
  expect_chunked_matches_naive(Inputs<float>(2, 37, 4, N, lw_lo, lw_hi, seed));
}

}  // namespace

// Loss = sum(y * dy). Measure per tensor (tests/kernels/op_gradcheck.h):
// ||g_backward - g_fd||_2 / ||g_fd||_2 < 1e-6.
TEST(Wkv6, NaiveBackwardMatchesFiniteDifferences) {
  Inputs<double> in(2, 6, 2, 3, -1.5, -0.05, 1);
  const size_t sz = in.size();
  const auto loss = [&]() {
    std::vector<double> y(sz);
    rk::wkv6_forward_naive(in.B, in.T, in.H, in.N, 0, in.H, in.r.data(), in.k.data(), in.v.data(),
                           in.lw.data(), in.u.data(), y.data(), nullptr, nullptr);
    double l = 0;
    for (size_t i = 0; i < sz; ++i) l += y[i] * in.dy[i];
    return l;
  };
  std::vector<double> dr, dk, dv, dlw, du;
  const auto backward = [&]() {
    rk::wkv6_backward_naive(in.B, in.T, in.H, in.N, 0, in.H, in.r.data(), in.k.data(), in.v.data(),
                            in.lw.data(), in.u.data(), in.dy.data(), dr.data(), dk.data(),
                            dv.data(), dlw.data(), du.data());
  };
  rkt::check_gradients(loss, backward,
                       {{"r", &in.r, &dr},
                        {"k", &in.k, &dk},
                        {"v", &in.v, &dv},
                        {"lw", &in.lw, &dlw},
                        {"u", &in.u, &du}},
                       /*accumulates=*/false);
}

// Relative error ||chunked - naive|| / ||naive|| < 1e-5 in fp32, T = 37 with chunk 16,
// B = 2, H = 4, heads [1, 3). Chunks whose decays are mild (every step but the last >=
// -2, their sum >= -30) take the factored pairs, the others the exact pair loops
// (wkv6.cpp): moderate decays and decays near one the first, decays near zero the
// second.
TEST(Wkv6, ChunkedMatchesNaiveModerateDecay) { expect_chunked_matches_naive(-2.0, -0.01, 2); }
TEST(Wkv6, ChunkedMatchesNaiveDecayNearOne) { expect_chunked_matches_naive(-2e-4, -5e-5, 3); }
TEST(Wkv6, ChunkedMatchesNaiveDecayNearZero) { expect_chunked_matches_naive(-80.0, -50.0, 4); }
// lw just above -kMaxChunkLogDecay / 15 (= -kMaxStepLogDecay): chunks of 16 are factored
// and their scale e^{-cum} reaches e^{~30}.
TEST(Wkv6, ChunkedMatchesNaiveAtLargestDecayScale) {
  const double lo = -rk::wkv_detail::kMaxChunkLogDecay / 15;
  expect_chunked_matches_naive(0.995 * lo, 0.98 * lo, 12);
}
// Factored and exact chunks side by side: head 2 decays by e^{-80} at token 20 of row 0
// (its chunk [16, 32) takes the exact loops; factored, e^{-cum} would overflow) and at
// token 31 of row 1 (the last token of a chunk does not count: factored), the other
// chunks and heads are factored.
TEST(Wkv6, ChunkedMatchesNaiveMixedDecays) {
  Inputs<float> in(2, 37, 4, 8, -1.0, -0.05, 13);
  for (int j = 0; j < in.N; ++j) {
    in.lw[((size_t(0) * in.T + 20) * in.H + 2) * in.N + j] = -80.0f;
    in.lw[((size_t(1) * in.T + 31) * in.H + 2) * in.N + j] = -80.0f;
  }
  expect_chunked_matches_naive(in);
}

// The exact pair loops work on blocks of 16, 8 or 1 channels, chosen by N (the tests
// above use N = 8): N = 64 (the models' head size), 32 (blocks of 16) and 6 (single
// channels), decays near zero (exact) and moderate (factored).
TEST(Wkv6, ChunkedMatchesNaiveChannelBlocks) {
  for (int N : {64, 32, 6}) {
    SCOPED_TRACE(N);
    expect_chunked_matches_naive(-80.0, -50.0, 10, N);
    expect_chunked_matches_naive(-2.0, -0.01, 10, N);
  }
}

// lw down to -1e4: decays underflow to 0, nothing overflows, results stay finite and
// equal the naive ones.
TEST(Wkv6, ChunkedFiniteForExtremeDecay) {
  Inputs<float> in(1, 37, 2, 8, -1e4, -1e3, 5);
  const Grads ref = run(in, 0, 2, 0);
  const Grads got = run(in, 0, 2, 16);
  const auto all = [](size_t) { return true; };
  for (const auto* x : {&got.y, &got.dr, &got.dk, &got.dv, &got.dlw, &got.du})
    for (float e : *x) ASSERT_TRUE(std::isfinite(e));
  EXPECT_LT(rel_err(got.y, ref.y, all), 1e-5);
  EXPECT_LT(rel_err(got.dr, ref.dr, all), 1e-5);
  EXPECT_LT(rel_err(got.dk, ref.dk, all), 1e-5);
  EXPECT_LT(rel_err(got.dv, ref.dv, all), 1e-5);
  EXPECT_LT(rel_err(got.dlw, ref.dlw, all), 1e-5);
}

// Running T1 then T2 tokens, passing the final state on, equals one run of T1 + T2;
// naive and chunked, with a nonzero state entering the first run.
TEST(Wkv6, StateCarry) {
  const int B = 2, T1 = 13, T2 = 20, T = T1 + T2, H = 2, N = 4;
  Inputs<float> in(B, T, H, N, -1.0, -0.01, 6);
  std::mt19937 rng(7);
  const auto s0 = uniform<float>(size_t(B) * H * N * N, -1, 1, rng);
  const size_t NN = size_t(N) * N, C = size_t(H) * N;
  for (int chunk : {0, 8}) {
    std::vector<float> y_full(in.size()), s_full(s0.size());
    std::vector<float> y_split(in.size()), s_mid(s0.size()), s_end(s0.size());
    const auto fwd = [&](int b0, int tlen, int tstart, const float* sin, float* y, float* sout) {
      // One batch row b0 of tokens [tstart, tstart + tlen).
      const size_t o = (size_t(b0) * T + tstart) * C;
      std::vector<float> r(in.r.begin() + o, in.r.begin() + o + tlen * C);
      std::vector<float> k(in.k.begin() + o, in.k.begin() + o + tlen * C);
      std::vector<float> v(in.v.begin() + o, in.v.begin() + o + tlen * C);
      std::vector<float> lw(in.lw.begin() + o, in.lw.begin() + o + tlen * C);
      if (chunk == 0) {
        rk::wkv6_forward_naive(1, tlen, H, N, 0, H, r.data(), k.data(), v.data(), lw.data(),
                               in.u.data(), y + o, sin, sout);
      } else {
        rk::wkv6_forward_chunked(1, tlen, H, N, 0, H, r.data(), k.data(), v.data(), lw.data(),
                                 in.u.data(), y + o, sin, sout, chunk);
      }
    };
    for (int b = 0; b < B; ++b) {
      const float* sb = s0.data() + size_t(b) * H * NN;
      fwd(b, T, 0, sb, y_full.data(), s_full.data() + size_t(b) * H * NN);
      fwd(b, T1, 0, sb, y_split.data(), s_mid.data() + size_t(b) * H * NN);
      fwd(b, T2, T1, s_mid.data() + size_t(b) * H * NN, y_split.data(),
          s_end.data() + size_t(b) * H * NN);
    }
    const auto all = [](size_t) { return true; };
    EXPECT_LT(rel_err(y_split, y_full, all), 1e-6) << "chunk " << chunk;
    EXPECT_LT(rel_err(s_end, s_full, all), 1e-6) << "chunk " << chunk;
  }
}

// The chunked forward with a nonzero initial state equals the naive one.
TEST(Wkv6, ChunkedForwardWithInitialState) {
  const int B = 2, T = 29, H = 3, N = 8;
  Inputs<float> in(B, T, H, N, -1.0, -0.01, 8);
  std::mt19937 rng(9);
  const auto s0 = uniform<float>(size_t(B) * H * N * N, -1, 1, rng);
  std::vector<float> y0(in.size()), y1(in.size()), s_ref(s0.size()), s_got(s0.size());
  rk::wkv6_forward_naive(B, T, H, N, 0, H, in.r.data(), in.k.data(), in.v.data(), in.lw.data(),
                         in.u.data(), y0.data(), s0.data(), s_ref.data());
  rk::wkv6_forward_chunked(B, T, H, N, 0, H, in.r.data(), in.k.data(), in.v.data(), in.lw.data(),
                           in.u.data(), y1.data(), s0.data(), s_got.data(), 8);
  const auto all = [](size_t) { return true; };
  EXPECT_LT(rel_err(y1, y0, all), 1e-5);
  EXPECT_LT(rel_err(s_got, s_ref, all), 1e-5);
}

TEST(Wkv6, BadHeadRangeThrows) {
  std::vector<float> x(16);
  EXPECT_THROW(rk::wkv6_forward_naive(1, 1, 2, 8, 1, 3, x.data(), x.data(), x.data(), x.data(),
                                      x.data(), x.data(), nullptr, nullptr),
               rwkv::Error);
  EXPECT_THROW(rk::wkv6_forward_chunked(1, 1, 2, 8, 0, 2, x.data(), x.data(), x.data(), x.data(),
                                        x.data(), x.data(), nullptr, nullptr, 0),
               rwkv::Error);
}
