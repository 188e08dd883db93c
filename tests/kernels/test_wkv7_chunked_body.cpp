// The chunked WKV7 kernels (kernels/cuda/wkv7_chunked_body.h, forward, and
// wkv7_chunked_backward_body.h) run on the CPU by the block emulator
// (tests/kernels/block_emulator.h: 256 std::threads per block, barriers, NaN-filled
// shared memory). Forward against the recurrence in double: y, the final state, the
// checkpoints (the state entering every 16th token) and sa_t = S_{t-1} a_t, which the
// backward reads. Backward (from the emulated forward's checkpoints and sa) against the
// CPU's naive backward in double: every gradient. Inputs as the model makes them (a =
// -kk, b = kk * sigmoid(x), kk L2-normalised per head), several shapes, head ranges,
// splits, decays near 0 and near 1, an initial state. The GPU runs the same bodies
// (test_cuda_wkv7.cu). Measure: ||x - ref||_2 / ||ref||_2 over the heads in range,
// <= 1e-5; outputs start as NaN, and outside the head range they must stay NaN. With
// bf16 per-token tensors (the bf16 launchers): the fp32 results rounded once, bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/wkv7.h"
#include "kernels/cuda/wkv7_chunked_backward_body.h"
#include "kernels/cuda/wkv7_chunked_body.h"
#include "tests/kernels/block_emulator.h"
#include "tests/kernels/chunked_body_test_util.h"
#include "tests/kernels/wkv_test_util.h"

namespace {

namespace ch = rwkv::cuda::wkv7_chunked;
using rwkv::cuda::Bf16;
using rwkv::cuda::test::Case;
using rwkv::cuda::test::compare;
using rwkv::cuda::test::describe;
using rwkv::cuda::test::expect_rounded_once;
using rwkv::cuda::test::expect_same_bits;
using rwkv::cuda::test::round_to_bf16;
using rwkv::cuda::test::to_double;
using rwkv::cuda::test::with_instance;
using rwkv::kernels::test::uniform;

struct Inputs {
  std::vector<float> r, lw, k, v, a, b, s0, dy;  // [B, T, H, N]; s0 [B, H, N, N] or empty
  explicit Inputs(const Case& c) {
    std::mt19937 rng(c.seed);
    const size_t sz = size_t(c.B) * c.T * c.H * c.N;
    r = uniform<float>(sz, -1, 1, rng);
    lw = uniform<float>(sz, c.lw_lo, c.lw_hi, rng);
    k = uniform<float>(sz, -1, 1, rng);
    v = uniform<float>(sz, -1, 1, rng);
    rwkv::kernels::test::model_v7_ab(sz, c.N, rng, a, b);
    if (c.initial_state) s0 = uniform<float>(size_t(c.B) * c.H * c.N * c.N, -1, 1, rng);
    dy = uniform<float>(sz, -1, 1, rng);
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

template <int N, int R, typename E>
void run_forward(const Case& c, const ch::Args<E>& args) {
  const int nh = c.h1 - c.h0;
  rwkv::cuda::test::run_grid<ch::PrepShared<N>>(
      c.B * nh * ch::chunks(c.T), ch::kThreads,
      [&](const auto& blk, int block, ch::PrepShared<N>& sh) {
        ch::prep_body<N>(blk, block, sh, args);
      });
  rwkv::cuda::test::run_grid<ch::ScanShared<N, R>>(
      c.B * nh * (N / R), ch::kThreads, [&](const auto& blk, int block, ch::ScanShared<N, R>& sh) {
        ch::scan_body<N, R, true>(blk, block, sh, ch::scan_args(args));
      });
}

template <int N, int R, typename E>
void run_backward(const Case& c, const ch::BackArgs<E>& args) {
  const int nh = c.h1 - c.h0, blocks = c.B * nh * ch::chunks(c.T);
  rwkv::cuda::test::run_grid<ch::PrepShared<N>>(
      blocks, ch::kThreads, [&](const auto& blk, int block, ch::PrepShared<N>& sh) {
        ch::bprep_body<N>(blk, block, sh, args);
      });
  const ch::ScanArgs<E> scan = ch::scan_args(args);
  rwkv::cuda::test::run_grid<ch::ScanShared<N, R>>(
      c.B * nh * (N / R), ch::kThreads, [&](const auto& blk, int block, ch::ScanShared<N, R>& sh) {
        ch::scan_body<N, R, true>(blk, block, sh, scan);
      });
  rwkv::cuda::test::run_grid<ch::GradShared<N>>(
      blocks, ch::kThreads, [&](const auto& blk, int block, ch::GradShared<N>& sh) {
        ch::grad_body<N>(blk, block, sh, args);
      });
}

// What the chunked kernels write, per-token tensors as E: y, the final state, the
// checkpoints, sa, and (when run) the gradients dr, dlw, dk, dv, da, db. Every output
// starts as NaN.
template <typename E>
struct Results {
  std::vector<E> y, g[6];
  std::vector<float> state, ckpt, sa;
};

// The forward, then (with `backward`) the backward from its checkpoints and sa, on the
// inputs as E (exact when E is bf16 and the inputs are bf16 values).
template <typename E>
Results<E> run_chunked(const Case& c, const Inputs& in, bool backward) {
  using rwkv::cuda::from_float;
  const auto as_e = rwkv::cuda::test::stored_as<E>;
  const std::vector<E> r = as_e(in.r), lw = as_e(in.lw), k = as_e(in.k), v = as_e(in.v),
                       a = as_e(in.a), b = as_e(in.b), dy = as_e(in.dy);
  const float nan = std::nanf("");
  const int nh = c.h1 - c.h0, nc = ch::chunks(c.T);
  const size_t sz = in.r.size(), NN = size_t(c.N) * c.N;
  Results<E> o;
  o.y.assign(sz, from_float<E>(nan));
  o.state.assign(size_t(c.B) * c.H * NN, nan);
  o.ckpt.assign(size_t(c.B) * c.H * nc * NN, nan);
  o.sa.assign(size_t(c.B) * c.H * c.T * c.N, nan);
  std::vector<float> prep(size_t(c.B) * nh * nc * ch::chunk_floats(c.N), nan);
  const ch::Args<E> args{.B = c.B,
                         .T = c.T,
                         .H = c.H,
                         .h0 = c.h0,
                         .nh = nh,
                         .r = r.data(),
                         .lw = lw.data(),
                         .k = k.data(),
                         .v = v.data(),
                         .a = a.data(),
                         .b = b.data(),
                         .y = o.y.data(),
                         .state_in = in.s0.empty() ? nullptr : in.s0.data(),
                         .state_out = o.state.data(),
                         .ckpt = o.ckpt.data(),
                         .sa = o.sa.data(),
                         .prep = prep.data()};
  with_instance(c, [&](auto n, auto r) { run_forward<n(), r()>(c, args); });
  if (!backward) return o;
  for (auto& x : o.g) x.assign(sz, from_float<E>(nan));
  std::vector<float> bprep(prep.size(), nan), dS(o.ckpt.size(), nan), dX(o.sa.size(), nan);
  const ch::BackArgs<E> bargs{.fwd = args,
                              .dy = dy.data(),
                              .dr = o.g[0].data(),
                              .dlw = o.g[1].data(),
                              .dk = o.g[2].data(),
                              .dv = o.g[3].data(),
                              .da = o.g[4].data(),
                              .db = o.g[5].data(),
                              .bprep = bprep.data(),
                              .dS = dS.data(),
                              .dX = dX.data()};
  with_instance(c, [&](auto n, auto r) { run_backward<n(), r()>(c, bargs); });
  return o;
}

const char* const kGradNames[] = {"dr", "dlw", "dk", "dv", "da", "db"};

void check(const Case& c) {
  SCOPED_TRACE(describe(c));
  const Inputs in(c);
  const Outputs ref = reference(c, in);
  // The CPU's naive backward starts from a zero state: no backward with an initial one.
  const Results<float> got = run_chunked<float>(c, in, !c.initial_state);
  const size_t NN = size_t(c.N) * c.N;
  compare(c, "y", got.y, ref.y, c.N);
  compare(c, "state_out", got.state, ref.state, NN);
  compare(c, "ckpt", got.ckpt, ref.ckpt, NN * ch::chunks(c.T));
  compare(c, "sa", got.sa, ref.sa, size_t(c.N) * c.T);
  if (c.initial_state) return;

  const size_t sz = in.r.size();
  const auto rd = to_double(in.r), lwd = to_double(in.lw), kd = to_double(in.k),
             vd = to_double(in.v), ad = to_double(in.a), bd = to_double(in.b),
             dyd = to_double(in.dy);
  std::vector<double> gref[6];
  for (auto& g : gref) g.assign(sz, 0.0);
  rwkv::kernels::wkv7_backward_naive(c.B, c.T, c.H, c.N, c.h0, c.h1, rd.data(), lwd.data(),
                                     kd.data(), vd.data(), ad.data(), bd.data(), dyd.data(),
                                     gref[0].data(), gref[1].data(), gref[2].data(), gref[3].data(),
                                     gref[4].data(), gref[5].data());
  for (int q = 0; q < 6; ++q) compare(c, kGradNames[q], got.g[q], gref[q], c.N);
}

// bf16 per-token tensors (the bf16 launchers of kernels/cuda/wkv7.h): on inputs that are
// bf16 values, every output is the fp32 kernels' rounded once, bit for bit, and the fp32
// ones (state, checkpoints, sa) are the fp32 kernels' exactly; NaN stays outside the
// head range.
void check_bf16(const Case& c) {
  SCOPED_TRACE(describe(c) + ", bf16");
  Inputs in(c);
  for (auto* x : {&in.r, &in.lw, &in.k, &in.v, &in.a, &in.b, &in.dy}) round_to_bf16(*x);
  const Results<float> f = run_chunked<float>(c, in, true);
  const Results<Bf16> b = run_chunked<Bf16>(c, in, true);
  expect_rounded_once("y", b.y, f.y);
  expect_same_bits("state_out", b.state, f.state);
  expect_same_bits("ckpt", b.ckpt, f.ckpt);
  expect_same_bits("sa", b.sa, f.sa);
  for (int q = 0; q < 6; ++q) expect_rounded_once(kGradNames[q], b.g[q], f.g[q]);
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

// bf16 inputs and outputs: a head range, T not a multiple of the chunk, split scan rows,
// an initial state; the model's decays.
TEST(Wkv7ChunkedBody, Bf16IsFp32RoundedOnce) {
  check_bf16({2, 37, 3, 64, 1, 3, 4, -std::exp(-0.5), -1e-3, true, 12});
  check_bf16({1, 20, 2, 32, 0, 2, 1, -1.0, -0.01, false, 13});
}

}  // namespace
