// WKV7 CUDA kernels (label gpu) against the CPU naive kernels (kernels/cpu/wkv7.h) on
// random inputs with the model's a = -kk, b = kk * sigmoid(x) (kk L2-normalised per
// head): output, final state and every gradient, for several shapes, head ranges and
// decays; bitwise determinism; argument errors (these need no GPU).
// Measure: ||gpu - cpu||_2 / ||cpu||_2 over the heads in range, <= 1e-5 in fp32; the
// failure message also gives the max abs error and where. GPU outputs are poisoned with
// NaN (bytes 0xFF) before each run: an element left unwritten in range fails, and one
// outside the range must still hold the poison.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/wkv7.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/wkv7.h"
#include "tests/kernels/wkv_heads_check.h"

namespace {

struct Inputs {
  std::vector<float> r, lw, k, v, a, b, dy;  // [B, T, H, N]
  Inputs(const Case& c) {
    std::mt19937 rng(c.seed);
    const size_t sz = size_t(c.B) * c.T * c.H * c.N;
    r = uniform(sz, -1, 1, rng);
    lw = uniform(sz, c.lw_lo, c.lw_hi, rng);
    k = uniform(sz, -1, 1, rng);
    v = uniform(sz, -1, 1, rng);
    dy = uniform(sz, -1, 1, rng);
    rwkv::kernels::test::model_v7_ab(sz, c.N, rng, a, b);
  }
};

// The case of the initial-state tests: its inputs, a random initial state s0 and the
// CPU's output and final state from s0.
struct InitialStateCase {
  const Case c{2, 45, 3, 64, 1, 3, -1.0, -0.01, 9};
  const Inputs in{c};
  std::vector<float> s0, y_ref, s_ref;
  InitialStateCase() {
    std::mt19937 rng(10);
    s0 = uniform(size_t(c.B) * c.H * c.N * c.N, -1, 1, rng);
    y_ref.resize(in.r.size());
    s_ref.resize(s0.size());
    rwkv::kernels::wkv7_forward_naive(c.B, c.T, c.H, c.N, c.h0, c.h1, in.r.data(), in.lw.data(),
                                      in.k.data(), in.v.data(), in.a.data(), in.b.data(),
                                      y_ref.data(), s0.data(), s_ref.data());
  }
};

struct Outputs {
  std::vector<float> y, state, dr, dlw, dk, dv, da, db;
};

Outputs run_cpu(const Case& c, const Inputs& in) {
  const size_t sz = in.r.size();
  Outputs o;
  for (auto* x : {&o.y, &o.dr, &o.dlw, &o.dk, &o.dv, &o.da, &o.db}) x->assign(sz, 0.f);
  o.state.assign(size_t(c.B) * c.H * c.N * c.N, 0.f);
  rwkv::kernels::wkv7_forward_naive(c.B, c.T, c.H, c.N, c.h0, c.h1, in.r.data(), in.lw.data(),
                                    in.k.data(), in.v.data(), in.a.data(), in.b.data(), o.y.data(),
                                    nullptr, o.state.data());
  rwkv::kernels::wkv7_backward_naive(c.B, c.T, c.H, c.N, c.h0, c.h1, in.r.data(), in.lw.data(),
                                     in.k.data(), in.v.data(), in.a.data(), in.b.data(),
                                     in.dy.data(), o.dr.data(), o.dlw.data(), o.dk.data(),
                                     o.dv.data(), o.da.data(), o.db.data());
  return o;
}

// Which forward fills the workspace, and which backward reads it.
enum class Forward { sequential, chunked };
enum class Backward { sequential, chunked };

// Forward (with checkpoints and the final state) then backward, on poisoned outputs,
// each (b, h) run as `splits` blocks.
Outputs run_gpu(const Case& c, const Inputs& in, int splits = 1, Forward form = Forward::sequential,
                Backward bform = Backward::sequential) {
  const DevBuf r(in.r), lw(in.lw), k(in.k), v(in.v), a(in.a), b(in.b), dy(in.dy);
  const size_t sz = in.r.size();
  DevBuf y(sz), state(size_t(c.B) * c.H * c.N * c.N), dr(sz), dlw(sz), dk(sz), dv(sz), da(sz),
      db(sz);
  for (DevBuf* x : {&y, &state, &dr, &dlw, &dk, &dv, &da, &db}) x->poison();
  void *ws = nullptr, *scratch = nullptr;
  CUDA_CHECK(cudaMalloc(&ws, rwkv::cuda::wkv7_workspace_bytes(c.B, c.T, c.H, c.N)));
  const size_t scratch_bytes =
      rwkv::cuda::wkv7_backward_scratch_bytes(c.B, c.T, c.h1 - c.h0, c.N, splits);
  if (scratch_bytes > 0) {
    CUDA_CHECK(cudaMalloc(&scratch, scratch_bytes));
    CUDA_CHECK(cudaMemset(scratch, 0xFF, scratch_bytes));  // NaN: an unwritten partial fails
  }
  if (form == Forward::chunked) {
    const size_t bytes = rwkv::cuda::wkv7_chunked_scratch_bytes(c.B, c.T, c.h1 - c.h0, c.N);
    void* prep = nullptr;
    CUDA_CHECK(cudaMalloc(&prep, bytes));
    CUDA_CHECK(cudaMemset(prep, 0xFF, bytes));
    CUDA_CHECK(cudaMemset(ws, 0xFF, rwkv::cuda::wkv7_workspace_bytes(c.B, c.T, c.H, c.N)));
    rwkv::cuda::wkv7_forward_chunked(c.B, c.T, c.H, c.N, c.h0, c.h1, r.p, lw.p, k.p, v.p, a.p, b.p,
                                     y.p, nullptr, state.p, ws, prep, splits, nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaFree(prep));
  } else {
    rwkv::cuda::wkv7_forward(c.B, c.T, c.H, c.N, c.h0, c.h1, r.p, lw.p, k.p, v.p, a.p, b.p, y.p,
                             nullptr, state.p, ws, splits, nullptr);
  }
  if (bform == Backward::chunked) {
    const size_t bytes =
        rwkv::cuda::wkv7_chunked_backward_scratch_bytes(c.B, c.T, c.H, c.h1 - c.h0, c.N);
    void* bscratch = nullptr;
    CUDA_CHECK(cudaMalloc(&bscratch, bytes));
    CUDA_CHECK(cudaMemset(bscratch, 0xFF, bytes));
    rwkv::cuda::wkv7_backward_chunked(c.B, c.T, c.H, c.N, c.h0, c.h1, r.p, lw.p, k.p, v.p, a.p, b.p,
                                      dy.p, dr.p, dlw.p, dk.p, dv.p, da.p, db.p, ws, bscratch,
                                      splits, nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaFree(bscratch));
  } else {
    rwkv::cuda::wkv7_backward(c.B, c.T, c.H, c.N, c.h0, c.h1, r.p, lw.p, k.p, v.p, a.p, b.p, dy.p,
                              dr.p, dlw.p, dk.p, dv.p, da.p, db.p, ws, scratch, splits, nullptr);
  }
  CUDA_CHECK(cudaDeviceSynchronize());
  CUDA_CHECK(cudaFree(ws));
  if (scratch) CUDA_CHECK(cudaFree(scratch));
  return {y.get(), state.get(), dr.get(), dlw.get(), dk.get(), dv.get(), da.get(), db.get()};
}

void expect_matches_cpu(const Case& c, int splits = 1, Forward form = Forward::sequential,
                        Backward bform = Backward::sequential) {
  SCOPED_TRACE("splits " + std::to_string(splits) +
               (form == Forward::chunked ? ", chunked forward" : "") +
               (bform == Backward::chunked ? ", chunked backward" : ""));
  const Inputs in(c);
  const Outputs ref = run_cpu(c, in), got = run_gpu(c, in, splits, form, bform);
  EXPECT_TRUE(close("y", c, got.y, ref.y));
  EXPECT_TRUE(close("state_out", c, got.state, ref.state, c.N * c.N, 1));
  EXPECT_TRUE(close("dr", c, got.dr, ref.dr));
  EXPECT_TRUE(close("dlw", c, got.dlw, ref.dlw));
  EXPECT_TRUE(close("dk", c, got.dk, ref.dk));
  EXPECT_TRUE(close("dv", c, got.dv, ref.dv));
  EXPECT_TRUE(close("da", c, got.da, ref.da));
  EXPECT_TRUE(close("db", c, got.db, ref.db));
}

// run_gpu with bf16 per-token tensors (wkv7.h's bf16 launchers), on poisoned outputs,
// workspace and scratch: the inputs as bf16 (they must be bf16 values already), y and
// the gradients bf16, the state fp32.
struct Bf16Outputs {
  std::vector<rwkv::cuda::Bf16> y, dr, dlw, dk, dv, da, db;
  std::vector<float> state;
};

Bf16Outputs run_gpu_bf16(const Case& c, const Inputs& in, int splits, Forward form,
                         Backward bform) {
  const auto to_bf16 = rwkv::cuda::test::stored_as<rwkv::cuda::Bf16>;
  const DevBf16 r(to_bf16(in.r)), lw(to_bf16(in.lw)), k(to_bf16(in.k)), v(to_bf16(in.v)),
      a(to_bf16(in.a)), b(to_bf16(in.b)), dy(to_bf16(in.dy));
  const size_t sz = in.r.size();
  DevBf16 y(sz), dr(sz), dlw(sz), dk(sz), dv(sz), da(sz), db(sz);
  DevBuf state(size_t(c.B) * c.H * c.N * c.N);
  for (DevBf16* x : {&y, &dr, &dlw, &dk, &dv, &da, &db}) x->poison();
  state.poison();
  const int nh = c.h1 - c.h0;
  DevBuf ws(rwkv::cuda::wkv7_workspace_bytes(c.B, c.T, c.H, c.N) / sizeof(float)),
      prep(rwkv::cuda::wkv7_chunked_scratch_bytes(c.B, c.T, nh, c.N) / sizeof(float)),
      bscratch(rwkv::cuda::wkv7_chunked_backward_scratch_bytes(c.B, c.T, c.H, nh, c.N) /
               sizeof(float)),
      scratch(std::max<size_t>(
          rwkv::cuda::wkv7_backward_scratch_bytes(c.B, c.T, nh, c.N, splits) / sizeof(float), 1));
  for (DevBuf* x : {&ws, &prep, &bscratch, &scratch}) x->poison();
  if (form == Forward::chunked)
    rwkv::cuda::wkv7_forward_chunked(c.B, c.T, c.H, c.N, c.h0, c.h1, r.p, lw.p, k.p, v.p, a.p, b.p,
                                     y.p, nullptr, state.p, ws.p, prep.p, splits, nullptr);
  else
    rwkv::cuda::wkv7_forward(c.B, c.T, c.H, c.N, c.h0, c.h1, r.p, lw.p, k.p, v.p, a.p, b.p, y.p,
                             nullptr, state.p, ws.p, splits, nullptr);
  if (bform == Backward::chunked)
    rwkv::cuda::wkv7_backward_chunked(c.B, c.T, c.H, c.N, c.h0, c.h1, r.p, lw.p, k.p, v.p, a.p, b.p,
                                      dy.p, dr.p, dlw.p, dk.p, dv.p, da.p, db.p, ws.p, bscratch.p,
                                      splits, nullptr);
  else
    rwkv::cuda::wkv7_backward(c.B, c.T, c.H, c.N, c.h0, c.h1, r.p, lw.p, k.p, v.p, a.p, b.p, dy.p,
                              dr.p, dlw.p, dk.p, dv.p, da.p, db.p, ws.p, scratch.p, splits,
                              nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  return {y.get(), dr.get(), dlw.get(), dk.get(), dv.get(), da.get(), db.get(), state.get()};
}

// bf16 per-token tensors (the bf16 launchers) on inputs that are bf16 values: each
// output against the fp32 kernels' of the same forms and the CPU's (expect_bf16_close);
// the state (fp32) within 1e-5 of the fp32 kernels'.
void expect_bf16_matches(const Case& c, int splits, Forward form, Backward bform) {
  SCOPED_TRACE(describe(c) + ", splits " + std::to_string(splits) +
               (form == Forward::chunked ? ", chunked forward" : ", sequential forward") +
               (bform == Backward::chunked ? ", chunked backward" : ", sequential backward"));
  Inputs in(c);
  for (auto* x : {&in.r, &in.lw, &in.k, &in.v, &in.a, &in.b, &in.dy})
    rwkv::cuda::test::round_to_bf16(*x);
  const Outputs f = run_gpu(c, in, splits, form, bform), ref = run_cpu(c, in);
  const Bf16Outputs b = run_gpu_bf16(c, in, splits, form, bform);
  expect_bf16_close("y", c, b.y, f.y, ref.y);
  expect_bf16_close("dr", c, b.dr, f.dr, ref.dr);
  expect_bf16_close("dlw", c, b.dlw, f.dlw, ref.dlw);
  expect_bf16_close("dk", c, b.dk, f.dk, ref.dk);
  expect_bf16_close("dv", c, b.dv, f.dv, ref.dv);
  expect_bf16_close("da", c, b.da, f.da, ref.da);
  expect_bf16_close("db", c, b.db, f.db, ref.db);
  EXPECT_TRUE(close("state_out", c, b.state, f.state, c.N * c.N, 1));
}

// Null tensors for the argument checks' calls, typed to pick the fp32 or the bf16
// overload of a launcher.
constexpr const float* nf = nullptr;
constexpr const __nv_bfloat16* nb = nullptr;

}  // namespace

TEST(CudaWkv7, MatchesCpuOneHead) {
  SKIP_WITHOUT_GPU();
  expect_matches_cpu({1, 37, 1, 64, 0, 1, -2.0, -0.01, 1});
}

// T = 100 (not a multiple of the 16-token checkpoints), B = 3, heads [1, 3) of 4.
TEST(CudaWkv7, MatchesCpuHeadRange) {
  SKIP_WITHOUT_GPU();
  expect_matches_cpu({3, 100, 4, 64, 1, 3, -2.0, -0.01, 2});
}

TEST(CudaWkv7, MatchesCpuSmallHeads) {
  SKIP_WITHOUT_GPU();
  expect_matches_cpu({3, 37, 4, 16, 0, 4, -2.0, -0.01, 3});
  expect_matches_cpu({2, 32, 3, 32, 2, 3, -2.0, -0.01, 4});  // T a multiple of 16
  expect_matches_cpu({2, 1, 2, 64, 0, 2, -2.0, -0.01, 5});   // one token
}

// Decays e^{-60} .. e^{-40}: the official kernel's inverse step (division by w) would
// fail here; dlw ~ 1e-20 must still be right relative to itself.
TEST(CudaWkv7, MatchesCpuDecayNearZero) {
  SKIP_WITHOUT_GPU();
  expect_matches_cpu({2, 37, 2, 64, 0, 2, -60.0, -40.0, 6});
}

TEST(CudaWkv7, MatchesCpuDecayNearOne) {
  SKIP_WITHOUT_GPU();
  expect_matches_cpu({2, 100, 2, 64, 0, 2, -2e-4, -5e-5, 7});
}

// lw in [-exp(-0.5), 0) as the model makes it (RWKV-v7 train_temp: w = -softplus(-x) -
// 0.5, decay exp(-exp(w))).
TEST(CudaWkv7, MatchesCpuLongSequence) {
  SKIP_WITHOUT_GPU();
  expect_matches_cpu({1, 4096, 1, 64, 0, 1, -std::exp(-0.5), -1e-3, 8});
  expect_matches_cpu({1, 16384, 1, 64, 0, 1, -std::exp(-0.5), -1e-3, 12});  // the issue's longest T
}

// A nonzero initial state: output and final state against the CPU; the forward
// without a workspace gives the same output bitwise; the split and the chunked forwards
// (without a workspace) against the CPU too.
TEST(CudaWkv7, ForwardWithInitialState) {
  SKIP_WITHOUT_GPU();
  const InitialStateCase ic;
  const Case& c = ic.c;
  const Inputs& in = ic.in;
  const std::vector<float>&s0 = ic.s0, &y_ref = ic.y_ref, &s_ref = ic.s_ref;
  const DevBuf r(in.r), lw(in.lw), k(in.k), v(in.v), a(in.a), b(in.b), sin(s0);
  DevBuf y(in.r.size()), y2(in.r.size()), sout(s0.size());
  for (DevBuf* x : {&y, &y2, &sout}) x->poison();
  void* ws = nullptr;
  CUDA_CHECK(cudaMalloc(&ws, rwkv::cuda::wkv7_workspace_bytes(c.B, c.T, c.H, c.N)));
  rwkv::cuda::wkv7_forward(c.B, c.T, c.H, c.N, c.h0, c.h1, r.p, lw.p, k.p, v.p, a.p, b.p, y.p,
                           sin.p, sout.p, ws, 1, nullptr);
  rwkv::cuda::wkv7_forward(c.B, c.T, c.H, c.N, c.h0, c.h1, r.p, lw.p, k.p, v.p, a.p, b.p, y2.p,
                           sin.p, nullptr, nullptr, 1, nullptr);
  for (const int splits : {2, 8}) {  // the split forward reads the initial state by rows too
    DevBuf y3(in.r.size()), sout3(s0.size());
    y3.poison();
    sout3.poison();
    rwkv::cuda::wkv7_forward(c.B, c.T, c.H, c.N, c.h0, c.h1, r.p, lw.p, k.p, v.p, a.p, b.p, y3.p,
                             sin.p, sout3.p, nullptr, splits, nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
    SCOPED_TRACE("splits " + std::to_string(splits));
    EXPECT_TRUE(close("y", c, y3.get(), y_ref));
    EXPECT_TRUE(close("state_out", c, sout3.get(), s_ref, c.N * c.N, 1));
  }
  // The chunked forward without a workspace (inference), one and four scan blocks.
  DevBuf prep(rwkv::cuda::wkv7_chunked_scratch_bytes(c.B, c.T, c.h1 - c.h0, c.N) / sizeof(float));
  prep.poison();
  for (const int splits : {1, 4}) {
    SCOPED_TRACE("chunked, splits " + std::to_string(splits));
    DevBuf y3(in.r.size()), sout3(s0.size());
    y3.poison();
    sout3.poison();
    rwkv::cuda::wkv7_forward_chunked(c.B, c.T, c.H, c.N, c.h0, c.h1, r.p, lw.p, k.p, v.p, a.p, b.p,
                                     y3.p, sin.p, sout3.p, nullptr, prep.p, splits, nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
    EXPECT_TRUE(close("y", c, y3.get(), y_ref));
    EXPECT_TRUE(close("state_out", c, sout3.get(), s_ref, c.N * c.N, 1));
  }
  CUDA_CHECK(cudaDeviceSynchronize());
  CUDA_CHECK(cudaFree(ws));
  EXPECT_TRUE(close("y", c, y.get(), y_ref));
  EXPECT_TRUE(close("state_out", c, sout.get(), s_ref, c.N * c.N, 1));
  const auto ya = y.get(), yb = y2.get();
  EXPECT_EQ(std::memcmp(ya.data(), yb.data(), ya.size() * sizeof(float)), 0)
      << "forward without workspace differs";
}

// Each (b, h) as 2, 4 or 8 blocks of rows (partial sums added by a second kernel):
// against the CPU with head ranges, T not a multiple of 16, decays near 0 and 1, and the
// model's decays over a long sequence.
TEST(CudaWkv7, SplitRowsMatchCpu) {
  SKIP_WITHOUT_GPU();
  for (const int splits : {2, 4, 8}) {
    expect_matches_cpu({3, 100, 4, 64, 1, 3, -2.0, -0.01, 13}, splits);
    expect_matches_cpu({2, 1, 2, 64, 0, 2, -2.0, -0.01, 14}, splits);  // one token
    expect_matches_cpu({2, 37, 2, 64, 0, 2, -60.0, -40.0, 15}, splits);
    expect_matches_cpu({2, 100, 2, 64, 0, 2, -2e-4, -5e-5, 16}, splits);
  }
  expect_matches_cpu({1, 4096, 2, 64, 0, 2, -std::exp(-0.5), -1e-3, 17}, 8);
}

// The chunked forward (kernels/cuda/wkv7_chunked_body.h; its bodies are also tested on
// the CPU by test_wkv7_chunked_body), then the sequential backward from the workspace
// it filled (poisoned with NaN first: checkpoints or sa_t left unwritten fail the
// gradients): every case of the sequential forward's tests, each split count.
TEST(CudaWkv7, ChunkedForwardMatchesCpu) {
  SKIP_WITHOUT_GPU();
  const Forward ch = Forward::chunked;
  expect_matches_cpu({1, 37, 1, 64, 0, 1, -2.0, -0.01, 1}, 1, ch);
  expect_matches_cpu({3, 37, 4, 16, 0, 4, -2.0, -0.01, 3}, 1, ch);
  expect_matches_cpu({2, 32, 3, 32, 2, 3, -2.0, -0.01, 4}, 1, ch);
  for (const int splits : {1, 2, 4, 8}) {
    expect_matches_cpu({3, 100, 4, 64, 1, 3, -2.0, -0.01, 13}, splits, ch);
    expect_matches_cpu({2, 1, 2, 64, 0, 2, -2.0, -0.01, 14}, splits, ch);
    expect_matches_cpu({2, 37, 2, 64, 0, 2, -60.0, -40.0, 15}, splits, ch);
    expect_matches_cpu({2, 100, 2, 64, 0, 2, -2e-4, -5e-5, 16}, splits, ch);
  }
  expect_matches_cpu({1, 4096, 2, 64, 0, 2, -std::exp(-0.5), -1e-3, 17}, 8, ch);
  expect_matches_cpu({1, 16384, 1, 64, 0, 1, -std::exp(-0.5), -1e-3, 12}, 1, ch);
}

// The chunked backward (kernels/cuda/wkv7_chunked_backward_body.h; also tested on the
// CPU by test_wkv7_chunked_body) from the chunked forward's workspace, every case and
// split count of ChunkedForwardMatchesCpu; and from the sequential forward's.
TEST(CudaWkv7, ChunkedBackwardMatchesCpu) {
  SKIP_WITHOUT_GPU();
  const Forward cf = Forward::chunked;
  const Backward cb = Backward::chunked;
  expect_matches_cpu({1, 37, 1, 64, 0, 1, -2.0, -0.01, 1}, 1, cf, cb);
  expect_matches_cpu({3, 37, 4, 16, 0, 4, -2.0, -0.01, 3}, 1, cf, cb);
  expect_matches_cpu({2, 32, 3, 32, 2, 3, -2.0, -0.01, 4}, 1, cf, cb);
  for (const int splits : {1, 2, 4, 8}) {
    expect_matches_cpu({3, 100, 4, 64, 1, 3, -2.0, -0.01, 13}, splits, cf, cb);
    expect_matches_cpu({2, 1, 2, 64, 0, 2, -2.0, -0.01, 14}, splits, cf, cb);
    expect_matches_cpu({2, 37, 2, 64, 0, 2, -60.0, -40.0, 15}, splits, cf, cb);
    expect_matches_cpu({2, 100, 2, 64, 0, 2, -2e-4, -5e-5, 16}, splits, cf, cb);
  }
  expect_matches_cpu({1, 4096, 2, 64, 0, 2, -std::exp(-0.5), -1e-3, 17}, 8, cf, cb);
  expect_matches_cpu({1, 16384, 1, 64, 0, 1, -std::exp(-0.5), -1e-3, 12}, 1, cf, cb);
  expect_matches_cpu({3, 100, 4, 64, 1, 3, -2.0, -0.01, 13}, 4, Forward::sequential, cb);
}

// Small cases (scripts/gpu_check.sh runs these under compute-sanitizer's memcheck).
TEST(CudaWkv7, ChunkedBf16IsFp32RoundedOnce) {
  SKIP_WITHOUT_GPU();
  const Forward cf = Forward::chunked;
  const Backward cb = Backward::chunked;
  expect_bf16_matches({2, 100, 4, 64, 1, 3, -std::exp(-0.5), -1e-3, 30}, 4, cf, cb);
  expect_bf16_matches({3, 37, 2, 32, 0, 2, -2.0, -0.01, 31}, 1, cf, cb);
}

TEST(CudaWkv7, Bf16IsFp32RoundedOnce) {
  SKIP_WITHOUT_GPU();
  const Forward sf = Forward::sequential;
  const Backward sb = Backward::sequential;
  expect_bf16_matches({2, 100, 4, 64, 1, 3, -std::exp(-0.5), -1e-3, 33}, 4, sf, sb);
  expect_bf16_matches({3, 37, 2, 32, 0, 2, -2.0, -0.01, 34}, 1, sf, sb);
  // The chunked backward from the sequential forward's workspace.
  expect_bf16_matches({2, 45, 3, 64, 0, 3, -1.0, -0.01, 35}, 1, sf, Backward::chunked);
}

TEST(CudaWkv7, Bf16LongSequence) {
  SKIP_WITHOUT_GPU();
  const Case c{1, 4096, 1, 64, 0, 1, -std::exp(-0.5), -1e-3, 32};
  expect_bf16_matches(c, 8, Forward::chunked, Backward::chunked);
  expect_bf16_matches(c, 8, Forward::sequential, Backward::sequential);
}

// With an initial state (which the CPU's naive backward does not take): the chunked
// backward's gradients against the sequential backward's, both from one forward's
// workspace.
TEST(CudaWkv7, ChunkedBackwardWithInitialState) {
  SKIP_WITHOUT_GPU();
  const InitialStateCase ic;
  const Case& c = ic.c;
  const Inputs& in = ic.in;
  const DevBuf r(in.r), lw(in.lw), k(in.k), v(in.v), a(in.a), b(in.b), dy(in.dy), sin(ic.s0);
  const size_t sz = in.r.size();
  DevBuf y(sz), ws(rwkv::cuda::wkv7_workspace_bytes(c.B, c.T, c.H, c.N) / sizeof(float));
  DevBuf bscratch(rwkv::cuda::wkv7_chunked_backward_scratch_bytes(c.B, c.T, c.H, c.h1 - c.h0, c.N) /
                  sizeof(float));
  rwkv::cuda::wkv7_forward(c.B, c.T, c.H, c.N, c.h0, c.h1, r.p, lw.p, k.p, v.p, a.p, b.p, y.p,
                           sin.p, nullptr, ws.p, 1, nullptr);
  std::vector<std::vector<float>> got[2];
  for (const bool chunked : {false, true}) {
    DevBuf g[6] = {DevBuf(sz), DevBuf(sz), DevBuf(sz), DevBuf(sz), DevBuf(sz), DevBuf(sz)};
    for (DevBuf& x : g) x.poison();
    if (chunked) {
      bscratch.poison();
      rwkv::cuda::wkv7_backward_chunked(c.B, c.T, c.H, c.N, c.h0, c.h1, r.p, lw.p, k.p, v.p, a.p,
                                        b.p, dy.p, g[0].p, g[1].p, g[2].p, g[3].p, g[4].p, g[5].p,
                                        ws.p, bscratch.p, 1, nullptr);
    } else {
      rwkv::cuda::wkv7_backward(c.B, c.T, c.H, c.N, c.h0, c.h1, r.p, lw.p, k.p, v.p, a.p, b.p, dy.p,
                                g[0].p, g[1].p, g[2].p, g[3].p, g[4].p, g[5].p, ws.p, nullptr, 1,
                                nullptr);
    }
    CUDA_CHECK(cudaDeviceSynchronize());
    for (DevBuf& x : g) got[chunked].push_back(x.get());
  }
  const char* names[] = {"dr", "dlw", "dk", "dv", "da", "db"};
  for (int q = 0; q < 6; ++q) EXPECT_TRUE(close(names[q], c, got[1][q], got[0][q]));
}

// Two runs on the same inputs give bitwise-identical outputs and gradients, with one
// block per head and with the rows split over 8, sequential and chunked.
TEST(CudaWkv7, Deterministic) {
  SKIP_WITHOUT_GPU();
  const Case c{3, 100, 4, 64, 0, 4, -2.0, -0.01, 11};
  const Inputs in(c);
  for (const auto& [splits, form, bform] :
       {std::tuple{1, Forward::sequential, Backward::sequential},
        std::tuple{8, Forward::sequential, Backward::sequential},
        std::tuple{1, Forward::chunked, Backward::chunked},
        std::tuple{8, Forward::chunked, Backward::chunked}}) {
    SCOPED_TRACE("splits " + std::to_string(splits) +
                 (form == Forward::chunked ? ", chunked forward and backward" : ""));
    const Outputs a = run_gpu(c, in, splits, form, bform), b = run_gpu(c, in, splits, form, bform);
    const char* names[] = {"y", "state", "dr", "dlw", "dk", "dv", "da", "db"};
    const std::vector<float>* xa[] = {&a.y, &a.state, &a.dr, &a.dlw, &a.dk, &a.dv, &a.da, &a.db};
    const std::vector<float>* xb[] = {&b.y, &b.state, &b.dr, &b.dlw, &b.dk, &b.dv, &b.da, &b.db};
    for (int i = 0; i < 8; ++i)
      EXPECT_EQ(std::memcmp(xa[i]->data(), xb[i]->data(), xa[i]->size() * sizeof(float)), 0)
          << names[i];
  }
}

// Argument checks run before any CUDA call: no GPU needed.
TEST(CudaWkv7, RejectsUnsupportedHeadSize) {
  try {
    rwkv::cuda::wkv7_backward(1, 4, 1, 128, 0, 1, nf, nullptr, nullptr, nullptr, nullptr, nullptr,
                              nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                              nullptr, nullptr, 1, nullptr);
    FAIL() << "N=128 accepted";
  } catch (const rwkv::Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("wkv7_backward"), std::string::npos) << m;
    EXPECT_NE(m.find("N=128"), std::string::npos) << m;
  }
  EXPECT_THROW(rwkv::cuda::wkv7_workspace_bytes(1, 4, 1, 8), rwkv::Error);
}

// The chunked backward's shared memory per block fits an A100 (163 KB = 166,912 bytes
// of opt-in shared memory; an H100/H200 allows 232,448) at every head size; no GPU
// needed. A card that allows less gets require_shared_memory's error (test_cuda_device).
TEST(CudaWkv7, ChunkedSharedMemoryFitsAnA100) {
  for (int N : {16, 32, 64}) EXPECT_LE(rwkv::cuda::wkv7_chunked_shared_bytes(N), 166912u) << N;
  EXPECT_GT(rwkv::cuda::wkv7_chunked_shared_bytes(64), 101376u)
      << "fits sm_86/sm_89 (99 KB): the docs and train.wkv's error say it does not";
  expect_error_with([] { rwkv::cuda::wkv7_chunked_shared_bytes(128); }, "N=128");
}

TEST(CudaWkv7, RejectsBadHeadRangeAndMissingWorkspace) {
  EXPECT_THROW(rwkv::cuda::wkv7_forward(1, 4, 2, 64, 2, 1, nf, nullptr, nullptr, nullptr, nullptr,
                                        nullptr, nullptr, nullptr, nullptr, nullptr, 1, nullptr),
               rwkv::Error);
  EXPECT_THROW(rwkv::cuda::wkv7_backward(1, 4, 2, 64, 0, 2, nf, nullptr, nullptr, nullptr, nullptr,
                                         nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                         nullptr, nullptr, nullptr, nullptr, 1, nullptr),
               rwkv::Error);
  expect_error_with(
      [] {
        rwkv::cuda::wkv7_backward(1, 4, 2, 64, 0, 2, nb, nullptr, nullptr, nullptr, nullptr,
                                  nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                  nullptr, nullptr, nullptr, 1, nullptr);
      },
      "wkv7_backward: workspace is null");
}

// Splits the kernels are not built for, and a split backward without its scratch, are
// errors naming the function and the value, before any CUDA call.
TEST(CudaWkv7, RejectsBadSplitsAndMissingScratch) {
  expect_error_with([] { rwkv::cuda::wkv7_backward_scratch_bytes(1, 4, 1, 64, 3); }, "splits=3");
  expect_error_with([] { rwkv::cuda::wkv7_backward_scratch_bytes(1, 4, 1, 32, 2); }, "N=32");
  expect_error_with(
      [] {
        rwkv::cuda::wkv7_forward(1, 4, 1, 64, 0, 1, nf, nullptr, nullptr, nullptr, nullptr, nullptr,
                                 nullptr, nullptr, nullptr, nullptr, 16, nullptr);
      },
      "wkv7_forward: splits=16");
  float dummy = 0.f;
  expect_error_with(
      [&] {
        rwkv::cuda::wkv7_backward(1, 4, 1, 64, 0, 1, nf, nullptr, nullptr, nullptr, nullptr,
                                  nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                  nullptr, &dummy, nullptr, 4, nullptr);
      },
      "scratch is null with splits=4");
  expect_error_with(
      [] {
        rwkv::cuda::wkv7_forward_chunked(1, 4, 1, 64, 0, 1, nf, nullptr, nullptr, nullptr, nullptr,
                                         nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 1,
                                         nullptr);
      },
      "wkv7_forward_chunked: scratch is null");
  expect_error_with(
      [] {
        rwkv::cuda::wkv7_forward_chunked(1, 4, 1, 32, 0, 1, nf, nullptr, nullptr, nullptr, nullptr,
                                         nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 2,
                                         nullptr);
      },
      "wkv7_forward_chunked: splits=2");
  expect_error_with(
      [&] {
        rwkv::cuda::wkv7_backward_chunked(1, 4, 1, 64, 0, 1, nf, nullptr, nullptr, nullptr, nullptr,
                                          nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                          nullptr, nullptr, &dummy, nullptr, 1, nullptr);
      },
      "wkv7_backward_chunked: scratch is null");
  expect_error_with(
      [] {
        rwkv::cuda::wkv7_backward_chunked(1, 4, 1, 64, 0, 1, nf, nullptr, nullptr, nullptr, nullptr,
                                          nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                          nullptr, nullptr, nullptr, nullptr, 1, nullptr);
      },
      "wkv7_backward_chunked: workspace is null");
  expect_error_with(
      [&] {
        rwkv::cuda::wkv7_forward_chunked(1, 4, 1, 64, 0, 1, nb, nullptr, nullptr, nullptr, nullptr,
                                         nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 1,
                                         nullptr);
      },
      "wkv7_forward_chunked: scratch is null");
  expect_error_with(
      [&] {
        rwkv::cuda::wkv7_backward_chunked(1, 4, 1, 64, 0, 1, nb, nullptr, nullptr, nullptr, nullptr,
                                          nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                          nullptr, nullptr, nullptr, nullptr, 1, nullptr);
      },
      "wkv7_backward_chunked: workspace is null");
  EXPECT_EQ(rwkv::cuda::wkv7_chunked_backward_scratch_bytes(2, 17, 4, 3, 64),
            (size_t(2) * 3 * 2 * (6 * 16 * 64 + 64) + size_t(2) * 4 * 2 * 64 * 64 +
             size_t(2) * 4 * 17 * 64) *
                sizeof(float));
  EXPECT_EQ(rwkv::cuda::wkv7_chunked_scratch_bytes(2, 17, 3, 64),
            size_t(2) * 3 * 2 * (6 * 16 * 64 + 64) * sizeof(float));
  EXPECT_EQ(rwkv::cuda::wkv7_backward_scratch_bytes(2, 10, 3, 64, 1), 0u);
  EXPECT_EQ(rwkv::cuda::wkv7_backward_scratch_bytes(2, 10, 3, 64, 4),
            size_t(5) * 4 * 2 * 10 * 3 * 64 * sizeof(float));
}
