// The chunked WKV7 forward's two kernels (kernels/cuda/wkv7_chunked_body.h) run on the
// CPU by the block emulator (tests/kernels/block_emulator.h: 256 std::threads per block,
// barriers, NaN-filled shared memory), against the recurrence in double: y, the final
// state, the checkpoints (the state entering every 16th token) and sa_t = S_{t-1} a_t,
// which the sequential backward reads. Inputs as the model makes them (a = -kk, b = kk *
// sigmoid(x), kk L2-normalised per head), several shapes, head ranges, splits, decays
// near 0 and near 1, an initial state. The GPU runs the same bodies (test_cuda_wkv7.cu).
// Measure: ||x - ref||_2 / ||ref||_2 over the heads in range, <= 1e-5; outputs start as
// NaN, and outside the head range they must stay NaN.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda/wkv7_chunked_body.h"
#include "tests/kernels/block_emulator.h"
#include "tests/kernels/wkv_test_util.h"

namespace {

namespace ch = rwkv::cuda::wkv7_chunked;
using rwkv::kernels::test::rel_err;
using rwkv::kernels::test::uniform;

struct Case {
  int B, T, H, N, h0, h1, splits;
  double lw_lo, lw_hi;
  bool initial_state;
  unsigned seed;
};

std::string describe(const Case& c) {
  return "B=" + std::to_string(c.B) + " T=" + std::to_string(c.T) + " H=" + std::to_string(c.H) +
         " N=" + std::to_string(c.N) + " heads [" + std::to_string(c.h0) + ", " +
         std::to_string(c.h1) + ") splits " + std::to_string(c.splits) + " lw in [" +
         std::to_string(c.lw_lo) + ", " + std::to_string(c.lw_hi) + "]" +
         (c.initial_state ? " with initial state" : "");
}

struct Inputs {
  std::vector<float> r, lw, k, v, a, b, s0;  // [B, T, H, N]; s0 [B, H, N, N] or empty
  explicit Inputs(const Case& c) {
    std::mt19937 rng(c.seed);
    const size_t sz = size_t(c.B) * c.T * c.H * c.N;
    r = uniform<float>(sz, -1, 1, rng);
    lw = uniform<float>(sz, c.lw_lo, c.lw_hi, rng);
    k = uniform<float>(sz, -1, 1, rng);
    v = uniform<float>(sz, -1, 1, rng);
    std::normal_distribution<double> g;
    std::uniform_real_distribution<double> x(-3, 3);
    a.resize(sz);
    b.resize(sz);
    std::vector<double> kk(c.N);
    for (size_t o = 0; o < sz; o += c.N) {
      double norm = 0;
      for (auto& e : kk) {
        e = g(rng);
        norm += e * e;
      }
      norm = std::sqrt(norm);
      for (int j = 0; j < c.N; ++j) {
        a[o + j] = float(-kk[j] / norm);
        b[o + j] = float(kk[j] / norm / (1 + std::exp(-x(rng))));
      }
    }
    if (c.initial_state) s0 = uniform<float>(size_t(c.B) * c.H * c.N * c.N, -1, 1, rng);
  }
};

// y [B, T, H, N], state [B, H, N, N], ckpt [B, H, chunks, N, N] (S[i][j] at j N + i),
// sa [B, H, T, N].
struct Outputs {
  std::vector<double> y, state, ckpt, sa;
};

// The recurrence S_t = S_{t-1} diag(e^{lw_t}) + (S_{t-1} a_t) b_t^T + v_t k_t^T, y_t =
// S_t r_t, in double, recording what the chunked forward writes.
Outputs reference(const Case& c, const Inputs& in) {
  const int N = c.N, nc = ch::chunks(c.T);
  const size_t NN = size_t(N) * N, C = size_t(c.H) * N;
  Outputs o;
  o.y.assign(size_t(c.B) * c.T * C, 0);
  o.state.assign(size_t(c.B) * c.H * NN, 0);
  o.ckpt.assign(size_t(c.B) * c.H * nc * NN, 0);
  o.sa.assign(size_t(c.B) * c.H * c.T * N, 0);
  std::vector<double> S(NN), sa(N);
  for (int bi = 0; bi < c.B; ++bi)
    for (int h = c.h0; h < c.h1; ++h) {
      const size_t bh = size_t(bi) * c.H + h;
      for (size_t e = 0; e < NN; ++e) S[e] = in.s0.empty() ? 0.0 : in.s0[bh * NN + e];
      for (int t = 0; t < c.T; ++t) {
        const size_t x = (size_t(bi) * c.T + t) * C + size_t(h) * N;
        if (t % ch::kL == 0)
          for (int i = 0; i < N; ++i)
            for (int j = 0; j < N; ++j)
              o.ckpt[(bh * nc + t / ch::kL) * NN + size_t(j) * N + i] = S[size_t(i) * N + j];
        for (int i = 0; i < N; ++i) {
          double s = 0;
          for (int j = 0; j < N; ++j) s += S[size_t(i) * N + j] * in.a[x + j];
          sa[i] = s;
          o.sa[(bh * c.T + t) * N + i] = s;
        }
        for (int i = 0; i < N; ++i) {
          double yi = 0;
          for (int j = 0; j < N; ++j) {
            double& s = S[size_t(i) * N + j];
            s = s * std::exp(double(in.lw[x + j])) + sa[i] * in.b[x + j] +
                in.v[x + i] * in.k[x + j];
            yi += s * in.r[x + j];
          }
          o.y[x + i] = yi;
        }
      }
      std::copy(S.begin(), S.end(), o.state.begin() + bh * NN);
    }
  return o;
}

template <int N, int R>
void run_kernels(const Case& c, const ch::Args& args) {
  const int nh = c.h1 - c.h0;
  rwkv::cuda::test::run_grid<ch::PrepShared<N>>(
      c.B * nh * ch::chunks(c.T), ch::kThreads,
      [&](const auto& blk, int block, ch::PrepShared<N>& sh) {
        ch::prep_body<N>(blk, block, sh, args);
      });
  rwkv::cuda::test::run_grid<ch::ScanShared<N, R>>(
      c.B * nh * (N / R), ch::kThreads, [&](const auto& blk, int block, ch::ScanShared<N, R>& sh) {
        ch::scan_body<N, R>(blk, block, sh, args);
      });
}

void check(const Case& c) {
  SCOPED_TRACE(describe(c));
  const Inputs in(c);
  const Outputs ref = reference(c, in);
  const float nan = std::nanf("");
  const int nh = c.h1 - c.h0;
  std::vector<float> y(ref.y.size(), nan), state(ref.state.size(), nan), ckpt(ref.ckpt.size(), nan),
      sa(ref.sa.size(), nan);
  std::vector<float> prep(size_t(c.B) * nh * ch::chunks(c.T) * ch::chunk_floats(c.N), nan);
  const ch::Args args{.B = c.B,
                      .T = c.T,
                      .H = c.H,
                      .h0 = c.h0,
                      .nh = nh,
                      .r = in.r.data(),
                      .lw = in.lw.data(),
                      .k = in.k.data(),
                      .v = in.v.data(),
                      .a = in.a.data(),
                      .b = in.b.data(),
                      .y = y.data(),
                      .state_in = in.s0.empty() ? nullptr : in.s0.data(),
                      .state_out = state.data(),
                      .ckpt = ckpt.data(),
                      .sa = sa.data(),
                      .prep = prep.data()};
  // The instances wkv7_forward_chunked launches: N 16 and 32 one scan block per head, N 64
  // 1, 2, 4 or 8 (R = N / splits rows each).
  if (c.N == 16) {
    run_kernels<16, 16>(c, args);
  } else if (c.N == 32) {
    run_kernels<32, 32>(c, args);
  } else if (c.splits == 1) {
    run_kernels<64, 64>(c, args);
  } else if (c.splits == 2) {
    run_kernels<64, 32>(c, args);
  } else if (c.splits == 4) {
    run_kernels<64, 16>(c, args);
  } else {
    ASSERT_EQ(c.splits, 8);
    run_kernels<64, 8>(c, args);
  }
  // Element e of a tensor of rows of H heads with n elements each is in head (e / n) % H.
  const auto compare = [&](const char* name, const std::vector<float>& got,
                           const std::vector<double>& want, size_t n) {
    const auto in_range = [&](size_t e) {
      const int h = int(e / n % size_t(c.H));
      return h >= c.h0 && h < c.h1;
    };
    const double err = rel_err(got, want, in_range);
    EXPECT_LE(err, 1e-5) << name;  // also fails on NaN (a comparison with NaN is false)
    for (size_t e = 0; e < got.size(); ++e)
      if (!in_range(e)) {
        ASSERT_TRUE(std::isnan(got[e])) << name << " written outside the head range at " << e;
      }
  };
  const size_t NN = size_t(c.N) * c.N;
  compare("y", y, ref.y, c.N);
  compare("state_out", state, ref.state, NN);
  compare("ckpt", ckpt, ref.ckpt, NN * ch::chunks(c.T));
  compare("sa", sa, ref.sa, size_t(c.N) * c.T);
}

TEST(Wkv7ChunkedBody, MatchesRecurrence) {
  check({1, 37, 1, 64, 0, 1, 1, -2.0, -0.01, false, 1});
  check({2, 100, 4, 64, 1, 3, 1, -std::exp(-0.5), -1e-3, false, 2});  // the model's decays
  check({2, 32, 3, 32, 2, 3, 1, -2.0, -0.01, false, 3});              // T a multiple of the chunk
  check({3, 21, 4, 16, 0, 4, 1, -2.0, -0.01, false, 4});
  check({2, 1, 2, 64, 0, 2, 1, -2.0, -0.01, false, 5});  // one token
}

// Each (b, h) as 2, 4 or 8 scan blocks of rows.
TEST(Wkv7ChunkedBody, SplitRowsMatchRecurrence) {
  for (const int splits : {2, 4, 8}) check({2, 45, 3, 64, 1, 3, splits, -1.0, -0.01, false, 6});
}

// Decays e^{-60} .. e^{-40} (every pair decay in a chunk underflows to 0) and e^{-2e-4}
// .. e^{-5e-5} (nothing decays over a chunk).
TEST(Wkv7ChunkedBody, ExtremeDecays) {
  check({2, 37, 2, 64, 0, 2, 4, -60.0, -40.0, false, 7});
  check({2, 100, 2, 64, 0, 2, 2, -2e-4, -5e-5, false, 8});
}

TEST(Wkv7ChunkedBody, InitialState) {
  check({2, 45, 3, 64, 1, 3, 1, -1.0, -0.01, true, 9});
  check({2, 45, 3, 64, 0, 3, 8, -1.0, -0.01, true, 10});
  check({1, 20, 2, 32, 0, 2, 1, -1.0, -0.01, true, 11});
}

}  // namespace
