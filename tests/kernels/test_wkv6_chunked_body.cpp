// The chunked WKV of RWKV-5/6 (kernels/cuda/wkv6_chunked_body.h, on the scan of
// wkv7_chunked_body.h) run on the CPU by the block emulator (tests/kernels/
// block_emulator.h), against the CPU's naive kernels in double: y, the final state, the
// checkpoints (the state entering every 16th token, as the sequential CUDA kernel stores
// them) and every gradient, du included (the backward from the emulated forward's
// checkpoints). Shapes, head ranges, splits, decays near 0 and near 1, an initial state.
// The GPU runs the same bodies (test_cuda_wkv6.cu). Measure: ||x - ref||_2 / ||ref||_2
// over the heads in range, <= 1e-5; outputs start as NaN and must stay NaN outside.
// With bf16 per-token tensors (the bf16 launchers): the fp32 results rounded once, bit
// for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/wkv6.h"
#include "kernels/cuda/wkv6_chunked_body.h"
#include "tests/kernels/block_emulator.h"
#include "tests/kernels/chunked_body_test_util.h"
#include "tests/kernels/wkv_test_util.h"

namespace {

namespace ch = rwkv::cuda::wkv6_chunked;
namespace ch7 = rwkv::cuda::wkv7_chunked;
using rwkv::cuda::Bf16;
using rwkv::cuda::test::Case;
using rwkv::cuda::test::compare;
using rwkv::cuda::test::describe;
using rwkv::cuda::test::expect_rounded_once;
using rwkv::cuda::test::expect_same_bits;
using rwkv::cuda::test::round_to_bf16;
using rwkv::cuda::test::run_grid;
using rwkv::cuda::test::to_double;
using rwkv::cuda::test::with_instance;
using rwkv::kernels::test::uniform;

template <int N, int R, typename E>
void run_forward(const Case& c, const ch::Args<E>& x) {
  const int nh = c.h1 - c.h0;
  run_grid<ch::PrepShared<N>>(c.B * nh * ch::chunks(c.T), ch::kThreads,
                              [&](const auto& blk, int block, ch::PrepShared<N>& sh) {
                                ch::prep_body<N>(blk, block, sh, x);
                              });
  run_grid<ch7::ScanShared<N, R>>(
      c.B * nh * (N / R), ch::kThreads, [&](const auto& blk, int block, ch7::ScanShared<N, R>& sh) {
        ch7::scan_body<N, R, false>(blk, block, sh, ch::forward_scan_args(x));
      });
}

template <int N, int R, typename E>
void run_backward(const Case& c, const ch::Args<E>& x) {
  const int nh = c.h1 - c.h0, blocks = c.B * nh * ch::chunks(c.T);
  run_grid<ch::PrepShared<N>>(blocks, ch::kThreads,
                              [&](const auto& blk, int block, ch::PrepShared<N>& sh) {
                                ch::bprep_body<N>(blk, block, sh, x);
                              });
  run_grid<ch7::ScanShared<N, R>>(
      c.B * nh * (N / R), ch::kThreads, [&](const auto& blk, int block, ch7::ScanShared<N, R>& sh) {
        ch7::scan_body<N, R, false>(blk, block, sh, ch::backward_scan_args(x));
      });
  run_grid<ch::GradShared<N>>(blocks, ch::kThreads,
                              [&](const auto& blk, int block, ch::GradShared<N>& sh) {
                                ch::grad_body<N>(blk, block, sh, x);
                              });
  for (int hh = 0; hh < nh; ++hh)
    for (int i = 0; i < N; ++i) ch::sum_du<N>(x, hh, i);
}

struct Inputs {
  std::vector<float> r, k, v, lw, u, s0, dy;  // [B, T, H, N]; u [H, N]; s0 [B, H, N, N]
  explicit Inputs(const Case& c) {
    std::mt19937 rng(c.seed);
    const size_t sz = size_t(c.B) * c.T * c.H * c.N;
    r = uniform<float>(sz, -1, 1, rng);
    k = uniform<float>(sz, -1, 1, rng);
    v = uniform<float>(sz, -1, 1, rng);
    lw = uniform<float>(sz, c.lw_lo, c.lw_hi, rng);
    u = uniform<float>(size_t(c.H) * c.N, -1, 1, rng);
    if (c.initial_state) s0 = uniform<float>(size_t(c.B) * c.H * c.N * c.N, -1, 1, rng);
    dy = uniform<float>(sz, -1, 1, rng);
  }
};

// The state before every 16th token ([B, H, chunks, N, N], [i][j] at i N + j), from the
// recurrence in double.
std::vector<double> reference_checkpoints(const Case& c, const Inputs& in) {
  const int N = c.N, nc = ch::chunks(c.T);
  const size_t NN = size_t(N) * N, C = size_t(c.H) * N;
  std::vector<double> ckpt(size_t(c.B) * c.H * nc * NN, 0.0), S(NN);
  for (int bi = 0; bi < c.B; ++bi)
    for (int h = c.h0; h < c.h1; ++h) {
      const size_t bh = size_t(bi) * c.H + h;
      for (size_t e = 0; e < NN; ++e) S[e] = in.s0.empty() ? 0.0 : in.s0[bh * NN + e];
      for (int t = 0; t < c.T; ++t) {
        if (t % ch::kL == 0)
          std::copy(S.begin(), S.end(), ckpt.begin() + (bh * nc + t / ch::kL) * NN);
        const size_t x = (size_t(bi) * c.T + t) * C + size_t(h) * N;
        for (int i = 0; i < N; ++i)
          for (int j = 0; j < N; ++j)
            S[size_t(i) * N + j] = std::exp(double(in.lw[x + i])) * S[size_t(i) * N + j] +
                                   double(in.k[x + i]) * in.v[x + j];
      }
    }
  return ckpt;
}

// What the chunked kernels write, per-token tensors as E: y, the final state, the
// checkpoints, and (when run) the gradients dr, dk, dv, dlw and du. Every output starts
// as NaN.
template <typename E>
struct Results {
  std::vector<E> y, g[4];
  std::vector<float> state, ckpt, du;
};

// The forward, then (with `backward`) the backward from its checkpoints, on the
// per-token inputs as E (exact when E is bf16 and the inputs are bf16 values).
template <typename E>
Results<E> run_chunked(const Case& c, const Inputs& in, bool backward) {
  using rwkv::cuda::from_float;
  const auto as_e = rwkv::cuda::test::stored_as<E>;
  const std::vector<E> r = as_e(in.r), k = as_e(in.k), v = as_e(in.v), lw = as_e(in.lw),
                       dy = as_e(in.dy);
  const float nan = std::nanf("");
  const int nh = c.h1 - c.h0, nc = ch::chunks(c.T);
  const size_t sz = in.r.size(), NN = size_t(c.N) * c.N;
  Results<E> o;
  o.y.assign(sz, from_float<E>(nan));
  o.state.assign(size_t(c.B) * c.H * NN, nan);
  o.ckpt.assign(size_t(c.B) * c.H * nc * NN, nan);
  o.du.assign(size_t(c.H) * c.N, nan);
  for (auto& x : o.g) x.assign(sz, from_float<E>(nan));
  std::vector<float> prep(size_t(c.B) * nh * nc * ch::chunk_floats(c.N), nan),
      dS(o.ckpt.size(), nan), dup(size_t(c.B) * nh * nc * c.N, nan);
  const ch::Args<E> x{.B = c.B,
                      .T = c.T,
                      .H = c.H,
                      .h0 = c.h0,
                      .nh = nh,
                      .r = r.data(),
                      .k = k.data(),
                      .v = v.data(),
                      .lw = lw.data(),
                      .u = in.u.data(),
                      .y = o.y.data(),
                      .state_in = in.s0.empty() ? nullptr : in.s0.data(),
                      .state_out = o.state.data(),
                      .ckpt = o.ckpt.data(),
                      .prep = prep.data(),
                      .dy = dy.data(),
                      .dr = o.g[0].data(),
                      .dk = o.g[1].data(),
                      .dv = o.g[2].data(),
                      .dlw = o.g[3].data(),
                      .du = o.du.data(),
                      .dS = dS.data(),
                      .dup = dup.data()};
  with_instance(c, [&](auto n, auto r) { run_forward<n(), r()>(c, x); });
  if (!backward) return o;
  std::fill(prep.begin(), prep.end(), nan);
  with_instance(c, [&](auto n, auto r) { run_backward<n(), r()>(c, x); });
  return o;
}

const char* const kGradNames[] = {"dr", "dk", "dv", "dlw"};

void check(const Case& c) {
  SCOPED_TRACE(describe(c));
  const Inputs in(c);
  const int nc = ch::chunks(c.T);
  const size_t sz = in.r.size(), NN = size_t(c.N) * c.N;
  const auto rd = to_double(in.r), kd = to_double(in.k), vd = to_double(in.v),
             lwd = to_double(in.lw), ud = to_double(in.u), s0d = to_double(in.s0),
             dyd = to_double(in.dy);
  std::vector<double> y_ref(sz, 0.0), s_ref(size_t(c.B) * c.H * NN, 0.0);
  rwkv::kernels::wkv6_forward_naive(c.B, c.T, c.H, c.N, c.h0, c.h1, rd.data(), kd.data(), vd.data(),
                                    lwd.data(), ud.data(), y_ref.data(),
                                    in.s0.empty() ? nullptr : s0d.data(), s_ref.data());
  // The CPU's naive backward starts from a zero state: no backward with an initial one.
  const Results<float> got = run_chunked<float>(c, in, !c.initial_state);
  compare(c, "y", got.y, y_ref, c.N);
  compare(c, "state_out", got.state, s_ref, NN);
  compare(c, "ckpt", got.ckpt, reference_checkpoints(c, in), NN * nc);
  if (c.initial_state) return;

  std::vector<double> gref[4], du_ref(got.du.size(), 0.0);
  for (auto& e : gref) e.assign(sz, 0.0);
  rwkv::kernels::wkv6_backward_naive(c.B, c.T, c.H, c.N, c.h0, c.h1, rd.data(), kd.data(),
                                     vd.data(), lwd.data(), ud.data(), dyd.data(), gref[0].data(),
                                     gref[1].data(), gref[2].data(), gref[3].data(), du_ref.data());
  for (int q = 0; q < 4; ++q) compare(c, kGradNames[q], got.g[q], gref[q], c.N);
  compare(c, "du", got.du, du_ref, c.N);
}

// bf16 per-token tensors (the bf16 launchers of kernels/cuda/wkv6.h): on inputs that are
// bf16 values, every per-token output is the fp32 kernels' rounded once, bit for bit,
// and the fp32 ones (state, checkpoints, du) are the fp32 kernels' exactly; NaN stays
// outside the head range.
void check_bf16(const Case& c) {
  SCOPED_TRACE(describe(c) + ", bf16");
  Inputs in(c);
  for (auto* x : {&in.r, &in.k, &in.v, &in.lw, &in.dy}) round_to_bf16(*x);
  const Results<float> f = run_chunked<float>(c, in, true);
  const Results<Bf16> b = run_chunked<Bf16>(c, in, true);
  expect_rounded_once("y", b.y, f.y);
  expect_same_bits("state_out", b.state, f.state);
  expect_same_bits("ckpt", b.ckpt, f.ckpt);
  for (int q = 0; q < 4; ++q) expect_rounded_once(kGradNames[q], b.g[q], f.g[q]);
  expect_same_bits("du", b.du, f.du);
}

TEST(Wkv6ChunkedBody, MatchesNaive) {
  check({1, 37, 1, 64, 0, 1, 1, -2.0, -0.01, false, 1});
  check({2, 100, 4, 64, 1, 3, 1, -1.0, -0.05, false, 2});
  check({2, 32, 3, 32, 2, 3, 1, -2.0, -0.01, false, 3});  // T a multiple of the chunk
  check({3, 21, 4, 16, 0, 4, 1, -2.0, -0.01, false, 4});
  check({2, 1, 2, 64, 0, 2, 1, -2.0, -0.01, false, 5});  // one token
}

TEST(Wkv6ChunkedBody, SplitRowsMatchNaive) {
  for (const int splits : {2, 4, 8}) check({2, 45, 3, 64, 1, 3, splits, -1.0, -0.01, false, 6});
}

// Decays e^{-60} .. e^{-40} and e^{-2e-4} .. e^{-5e-5}; RWKV-6's own reach about e^-7.
TEST(Wkv6ChunkedBody, ExtremeDecays) {
  check({2, 37, 2, 64, 0, 2, 4, -60.0, -40.0, false, 7});
  check({2, 100, 2, 64, 0, 2, 2, -2e-4, -5e-5, false, 8});
  check({2, 50, 2, 64, 0, 2, 1, -7.0, -3.0, false, 9});
}

TEST(Wkv6ChunkedBody, InitialState) {
  check({2, 45, 3, 64, 1, 3, 1, -1.0, -0.01, true, 10});
  check({1, 20, 2, 32, 0, 2, 1, -1.0, -0.01, true, 11});
}

// bf16 inputs and outputs: a head range, T not a multiple of the chunk, split scan rows,
// an initial state.
TEST(Wkv6ChunkedBody, Bf16IsFp32RoundedOnce) {
  check_bf16({2, 37, 3, 64, 1, 3, 4, -1.0, -0.01, true, 12});
  check_bf16({1, 20, 2, 32, 0, 2, 1, -2.0, -0.01, false, 13});
}

}  // namespace
