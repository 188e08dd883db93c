// WKV5/6 CUDA kernels (label gpu) against the CPU naive kernels (kernels/cpu/wkv6.h) on
// random inputs: output, final state and every gradient, for several shapes, head
// ranges and decays; bitwise determinism; argument errors (these need no GPU).
// Measure: ||gpu - cpu||_2 / ||cpu||_2 over the heads in range, <= 1e-5 in fp32; the
// failure message also gives the max abs error and where. GPU outputs are poisoned with
// NaN (bytes 0xFF) before each run: an element left unwritten in range fails, and one
// outside the range must still hold the poison.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/wkv6.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/wkv6.h"
#include "tests/kernels/wkv_heads_check.h"

namespace {

struct Inputs {
  std::vector<float> r, k, v, lw, u, dy;  // u [H, N], the others [B, T, H, N]
  Inputs(const Case& c) {
    std::mt19937 rng(c.seed);
    const size_t sz = size_t(c.B) * c.T * c.H * c.N;
    r = uniform(sz, -1, 1, rng);
    k = uniform(sz, -1, 1, rng);
    v = uniform(sz, -1, 1, rng);
    lw = uniform(sz, c.lw_lo, c.lw_hi, rng);
    u = uniform(size_t(c.H) * c.N, -1, 1, rng);
    dy = uniform(sz, -1, 1, rng);
  }
};

struct Outputs {
  std::vector<float> y, state, dr, dk, dv, dlw, du;
};

Outputs run_cpu(const Case& c, const Inputs& in) {
  const size_t sz = in.r.size();
  Outputs o;
  for (auto* x : {&o.y, &o.dr, &o.dk, &o.dv, &o.dlw}) x->assign(sz, 0.f);
  o.state.assign(size_t(c.B) * c.H * c.N * c.N, 0.f);
  o.du.assign(in.u.size(), 0.f);
  rwkv::kernels::wkv6_forward_naive(c.B, c.T, c.H, c.N, c.h0, c.h1, in.r.data(), in.k.data(),
                                    in.v.data(), in.lw.data(), in.u.data(), o.y.data(), nullptr,
                                    o.state.data());
  rwkv::kernels::wkv6_backward_naive(
      c.B, c.T, c.H, c.N, c.h0, c.h1, in.r.data(), in.k.data(), in.v.data(), in.lw.data(),
      in.u.data(), in.dy.data(), o.dr.data(), o.dk.data(), o.dv.data(), o.dlw.data(), o.du.data());
  return o;
}

// Forward (with checkpoints and the final state) then backward, on poisoned outputs;
// chunked: both in chunked form (wkv6_forward_chunked, wkv6_backward_chunked) with the
// state split over `splits` scan blocks, on a poisoned scratch.
Outputs run_gpu(const Case& c, const Inputs& in, bool chunked = false, int splits = 1) {
  const DevBuf r(in.r), k(in.k), v(in.v), lw(in.lw), u(in.u), dy(in.dy);
  const size_t sz = in.r.size();
  DevBuf y(sz), state(size_t(c.B) * c.H * c.N * c.N), dr(sz), dk(sz), dv(sz), dlw(sz),
      du(in.u.size());
  for (DevBuf* b : {&y, &state, &dr, &dk, &dv, &dlw, &du}) b->poison();
  void* ws = nullptr;
  CUDA_CHECK(cudaMalloc(&ws, rwkv::cuda::wkv6_workspace_bytes(c.B, c.T, c.H, c.N)));
  if (chunked) {
    DevBuf scratch(rwkv::cuda::wkv6_chunked_scratch_bytes(c.B, c.T, c.H, c.h1 - c.h0, c.N) /
                   sizeof(float));
    scratch.poison();
    CUDA_CHECK(cudaMemset(ws, 0xFF, rwkv::cuda::wkv6_workspace_bytes(c.B, c.T, c.H, c.N)));
    rwkv::cuda::wkv6_forward_chunked(c.B, c.T, c.H, c.N, c.h0, c.h1, r.p, k.p, v.p, lw.p, u.p, y.p,
                                     nullptr, state.p, ws, scratch.p, splits, nullptr);
    scratch.poison();
    rwkv::cuda::wkv6_backward_chunked(c.B, c.T, c.H, c.N, c.h0, c.h1, r.p, k.p, v.p, lw.p, u.p,
                                      dy.p, dr.p, dk.p, dv.p, dlw.p, du.p, ws, scratch.p, splits,
                                      nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
  } else {
    rwkv::cuda::wkv6_forward(c.B, c.T, c.H, c.N, c.h0, c.h1, r.p, k.p, v.p, lw.p, u.p, y.p, nullptr,
                             state.p, ws, nullptr);
    rwkv::cuda::wkv6_backward(c.B, c.T, c.H, c.N, c.h0, c.h1, r.p, k.p, v.p, lw.p, u.p, dy.p, dr.p,
                              dk.p, dv.p, dlw.p, du.p, ws, nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
  }
  CUDA_CHECK(cudaFree(ws));
  return {y.get(), state.get(), dr.get(), dk.get(), dv.get(), dlw.get(), du.get()};
}

void expect_matches_cpu(const Case& c, bool chunked = false, int splits = 1) {
  SCOPED_TRACE(chunked ? "chunked, splits " + std::to_string(splits) : "sequential");
  const Inputs in(c);
  const Outputs ref = run_cpu(c, in), got = run_gpu(c, in, chunked, splits);
  EXPECT_TRUE(close("y", c, got.y, ref.y));
  EXPECT_TRUE(close("state_out", c, got.state, ref.state, c.N * c.N, 1));
  EXPECT_TRUE(close("dr", c, got.dr, ref.dr));
  EXPECT_TRUE(close("dk", c, got.dk, ref.dk));
  EXPECT_TRUE(close("dv", c, got.dv, ref.dv));
  EXPECT_TRUE(close("dlw", c, got.dlw, ref.dlw));
  EXPECT_TRUE(close("du", c, got.du, ref.du, c.N, 1));
}

// run_gpu with bf16 per-token tensors (wkv6.h's bf16 launchers), on poisoned outputs,
// workspace and scratch: r, k, v, lw, dy as bf16 (they must be bf16 values already); y
// and the gradients bf16, the state and du fp32.
struct Bf16Outputs {
  std::vector<rwkv::cuda::Bf16> y, dr, dk, dv, dlw;
  std::vector<float> state, du;
};

Bf16Outputs run_gpu_bf16(const Case& c, const Inputs& in, bool chunked, int splits) {
  const auto to_bf16 = rwkv::cuda::test::stored_as<rwkv::cuda::Bf16>;
  const DevBf16 r(to_bf16(in.r)), k(to_bf16(in.k)), v(to_bf16(in.v)), lw(to_bf16(in.lw)),
      dy(to_bf16(in.dy));
  const DevBuf u(in.u);
  const size_t sz = in.r.size();
  DevBf16 y(sz), dr(sz), dk(sz), dv(sz), dlw(sz);
  DevBuf state(size_t(c.B) * c.H * c.N * c.N), du(in.u.size());
  for (DevBf16* b : {&y, &dr, &dk, &dv, &dlw}) b->poison();
  state.poison();
  du.poison();
  DevBuf ws(rwkv::cuda::wkv6_workspace_bytes(c.B, c.T, c.H, c.N) / sizeof(float)),
      scratch(rwkv::cuda::wkv6_chunked_scratch_bytes(c.B, c.T, c.H, c.h1 - c.h0, c.N) /
              sizeof(float));
  ws.poison();
  scratch.poison();
  if (chunked) {
    rwkv::cuda::wkv6_forward_chunked(c.B, c.T, c.H, c.N, c.h0, c.h1, r.p, k.p, v.p, lw.p, u.p, y.p,
                                     nullptr, state.p, ws.p, scratch.p, splits, nullptr);
    scratch.poison();
    rwkv::cuda::wkv6_backward_chunked(c.B, c.T, c.H, c.N, c.h0, c.h1, r.p, k.p, v.p, lw.p, u.p,
                                      dy.p, dr.p, dk.p, dv.p, dlw.p, du.p, ws.p, scratch.p, splits,
                                      nullptr);
  } else {
    rwkv::cuda::wkv6_forward(c.B, c.T, c.H, c.N, c.h0, c.h1, r.p, k.p, v.p, lw.p, u.p, y.p, nullptr,
                             state.p, ws.p, nullptr);
    rwkv::cuda::wkv6_backward(c.B, c.T, c.H, c.N, c.h0, c.h1, r.p, k.p, v.p, lw.p, u.p, dy.p, dr.p,
                              dk.p, dv.p, dlw.p, du.p, ws.p, nullptr);
  }
  CUDA_CHECK(cudaDeviceSynchronize());
  return {y.get(), dr.get(), dk.get(), dv.get(), dlw.get(), state.get(), du.get()};
}

// bf16 per-token tensors (the bf16 launchers) on inputs that are bf16 values: each
// output against the fp32 kernels' of the same form and the CPU's (expect_bf16_close); the
// state and du (fp32) within 1e-5 of the fp32 kernels'.
void expect_bf16_matches(const Case& c, bool chunked, int splits) {
  SCOPED_TRACE(describe(c) + (chunked ? ", chunked, splits " + std::to_string(splits)
                                      : std::string(", sequential")));
  Inputs in(c);
  for (auto* x : {&in.r, &in.k, &in.v, &in.lw, &in.dy}) rwkv::cuda::test::round_to_bf16(*x);
  const Outputs f = run_gpu(c, in, chunked, splits), ref = run_cpu(c, in);
  const Bf16Outputs b = run_gpu_bf16(c, in, chunked, splits);
  expect_bf16_close("y", c, b.y, f.y, ref.y);
  expect_bf16_close("dr", c, b.dr, f.dr, ref.dr);
  expect_bf16_close("dk", c, b.dk, f.dk, ref.dk);
  expect_bf16_close("dv", c, b.dv, f.dv, ref.dv);
  expect_bf16_close("dlw", c, b.dlw, f.dlw, ref.dlw);
  EXPECT_TRUE(close("state_out", c, b.state, f.state, c.N * c.N, 1));
  EXPECT_TRUE(close("du", c, b.du, f.du, c.N, 1));
}

// Null tensors for the argument checks' calls, typed to pick the fp32 or the bf16
// overload of a launcher.
constexpr const float* nf = nullptr;
constexpr const __nv_bfloat16* nb = nullptr;

}  // namespace

TEST(CudaWkv6, MatchesCpuOneHead) {
  SKIP_WITHOUT_GPU();
  expect_matches_cpu({1, 37, 1, 64, 0, 1, -2.0, -0.01, 1});
}

// T = 100 (not a multiple of the 16-token segments), B = 3, heads [1, 3) of 4.
TEST(CudaWkv6, MatchesCpuHeadRange) {
  SKIP_WITHOUT_GPU();
  expect_matches_cpu({3, 100, 4, 64, 1, 3, -2.0, -0.01, 2});
}

TEST(CudaWkv6, MatchesCpuSmallHeads) {
  SKIP_WITHOUT_GPU();
  expect_matches_cpu({3, 37, 4, 16, 0, 4, -2.0, -0.01, 3});
  expect_matches_cpu({2, 32, 3, 32, 2, 3, -2.0, -0.01, 4});  // T a multiple of 16
  expect_matches_cpu({2, 1, 2, 64, 0, 2, -2.0, -0.01, 5});   // one token
}

// Decays e^{-60} .. e^{-40}: dlw ~ 1e-18 must still be right relative to itself.
TEST(CudaWkv6, MatchesCpuDecayNearZero) {
  SKIP_WITHOUT_GPU();
  expect_matches_cpu({2, 37, 2, 64, 0, 2, -60.0, -40.0, 6});
}

TEST(CudaWkv6, MatchesCpuDecayNearOne) {
  SKIP_WITHOUT_GPU();
  expect_matches_cpu({2, 100, 2, 64, 0, 2, -2e-4, -5e-5, 7});
}

TEST(CudaWkv6, MatchesCpuLongSequence) {
  SKIP_WITHOUT_GPU();
  expect_matches_cpu({1, 4096, 1, 64, 0, 1, -1.0, -1e-3, 8});
  expect_matches_cpu({1, 16384, 1, 64, 0, 1, -1.0, -1e-3, 12});  // the issue's longest T
}

// A nonzero initial state: output and final state against the CPU; the forward
// without a workspace gives the same output bitwise; the chunked forward against the CPU
// too.
TEST(CudaWkv6, ForwardWithInitialState) {
  SKIP_WITHOUT_GPU();
  const Case c{2, 45, 3, 64, 1, 3, -1.0, -0.01, 9};
  const Inputs in(c);
  std::mt19937 rng(10);
  const auto s0 = uniform(size_t(c.B) * c.H * c.N * c.N, -1, 1, rng);
  std::vector<float> y_ref(in.r.size()), s_ref(s0.size());
  rwkv::kernels::wkv6_forward_naive(c.B, c.T, c.H, c.N, c.h0, c.h1, in.r.data(), in.k.data(),
                                    in.v.data(), in.lw.data(), in.u.data(), y_ref.data(), s0.data(),
                                    s_ref.data());
  const DevBuf r(in.r), k(in.k), v(in.v), lw(in.lw), u(in.u), sin(s0);
  DevBuf y(in.r.size()), y2(in.r.size()), sout(s0.size());
  for (DevBuf* b : {&y, &y2, &sout}) b->poison();
  void* ws = nullptr;
  CUDA_CHECK(cudaMalloc(&ws, rwkv::cuda::wkv6_workspace_bytes(c.B, c.T, c.H, c.N)));
  rwkv::cuda::wkv6_forward(c.B, c.T, c.H, c.N, c.h0, c.h1, r.p, k.p, v.p, lw.p, u.p, y.p, sin.p,
                           sout.p, ws, nullptr);
  rwkv::cuda::wkv6_forward(c.B, c.T, c.H, c.N, c.h0, c.h1, r.p, k.p, v.p, lw.p, u.p, y2.p, sin.p,
                           nullptr, nullptr, nullptr);
  // The chunked forward (four scan blocks), with and without a workspace.
  DevBuf scratch(rwkv::cuda::wkv6_chunked_scratch_bytes(c.B, c.T, c.H, c.h1 - c.h0, c.N) /
                 sizeof(float));
  for (void* cws : {ws, static_cast<void*>(nullptr)}) {
    SCOPED_TRACE(cws ? "chunked, with workspace" : "chunked, without workspace");
    DevBuf y3(in.r.size()), sout3(s0.size());
    y3.poison();
    sout3.poison();
    scratch.poison();
    rwkv::cuda::wkv6_forward_chunked(c.B, c.T, c.H, c.N, c.h0, c.h1, r.p, k.p, v.p, lw.p, u.p, y3.p,
                                     sin.p, sout3.p, cws, scratch.p, 4, nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
    EXPECT_TRUE(close("y", c, y3.get(), y_ref));
    EXPECT_TRUE(close("state_out", c, sout3.get(), s_ref, c.N * c.N, 1));
  }
  CUDA_CHECK(cudaDeviceSynchronize());
  CUDA_CHECK(cudaFree(ws));
  EXPECT_TRUE(close("y", c, y.get(), y_ref));
  EXPECT_TRUE(close("state_out", c, sout.get(), s_ref, c.N * c.N, 1));
  const auto a = y.get(), b = y2.get();
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0)
      << "forward without workspace differs";
}

// The chunked forward and backward (kernels/cuda/wkv6_chunked_body.h; their bodies are
// also tested on the CPU by test_wkv6_chunked_body) with every split count, head ranges,
// T not a multiple of 16, decays near 0 and 1, long sequences.
TEST(CudaWkv6, ChunkedMatchesCpu) {
  SKIP_WITHOUT_GPU();
  expect_matches_cpu({1, 37, 1, 64, 0, 1, -2.0, -0.01, 1}, true);
  expect_matches_cpu({3, 37, 4, 16, 0, 4, -2.0, -0.01, 3}, true);
  expect_matches_cpu({2, 32, 3, 32, 2, 3, -2.0, -0.01, 4}, true);
  for (const int splits : {1, 2, 4, 8}) {
    expect_matches_cpu({3, 100, 4, 64, 1, 3, -2.0, -0.01, 2}, true, splits);
    expect_matches_cpu({2, 1, 2, 64, 0, 2, -2.0, -0.01, 5}, true, splits);
    expect_matches_cpu({2, 37, 2, 64, 0, 2, -60.0, -40.0, 6}, true, splits);
    expect_matches_cpu({2, 100, 2, 64, 0, 2, -2e-4, -5e-5, 7}, true, splits);
  }
  expect_matches_cpu({1, 4096, 1, 64, 0, 1, -1.0, -1e-3, 8}, true, 8);
  expect_matches_cpu({1, 16384, 1, 64, 0, 1, -1.0, -1e-3, 12}, true);
}

// Small cases (scripts/gpu_check.sh runs these under compute-sanitizer's memcheck).
TEST(CudaWkv6, ChunkedBf16IsFp32RoundedOnce) {
  SKIP_WITHOUT_GPU();
  expect_bf16_matches({3, 100, 4, 64, 1, 3, -2.0, -0.01, 20}, true, 4);
  expect_bf16_matches({2, 37, 2, 32, 0, 2, -1.0, -0.05, 21}, true, 1);
}

TEST(CudaWkv6, Bf16IsFp32RoundedOnce) {
  SKIP_WITHOUT_GPU();
  expect_bf16_matches({3, 100, 4, 64, 1, 3, -2.0, -0.01, 23}, false, 1);
  expect_bf16_matches({2, 37, 2, 32, 0, 2, -1.0, -0.05, 24}, false, 1);
}

TEST(CudaWkv6, Bf16LongSequence) {
  SKIP_WITHOUT_GPU();
  const Case c{1, 4096, 1, 64, 0, 1, -1.0, -1e-3, 22};
  expect_bf16_matches(c, true, 8);
  expect_bf16_matches(c, false, 1);
}

// Two runs on the same inputs give bitwise-identical outputs and gradients, sequential
// and chunked.
TEST(CudaWkv6, Deterministic) {
  SKIP_WITHOUT_GPU();
  const Case c{3, 100, 4, 64, 0, 4, -2.0, -0.01, 11};
  const Inputs in(c);
  for (const bool chunked : {false, true}) {
    SCOPED_TRACE(chunked ? "chunked" : "sequential");
    const Outputs a = run_gpu(c, in, chunked, 4), b = run_gpu(c, in, chunked, 4);
    const char* names[] = {"y", "state", "dr", "dk", "dv", "dlw", "du"};
    const std::vector<float>* xa[] = {&a.y, &a.state, &a.dr, &a.dk, &a.dv, &a.dlw, &a.du};
    const std::vector<float>* xb[] = {&b.y, &b.state, &b.dr, &b.dk, &b.dv, &b.dlw, &b.du};
    for (int i = 0; i < 7; ++i)
      EXPECT_EQ(std::memcmp(xa[i]->data(), xb[i]->data(), xa[i]->size() * sizeof(float)), 0)
          << names[i];
  }
}

// Argument checks run before any CUDA call: no GPU needed.
TEST(CudaWkv6, RejectsUnsupportedHeadSize) {
  try {
    rwkv::cuda::wkv6_forward(1, 4, 1, 48, 0, 1, nf, nullptr, nullptr, nullptr, nullptr, nullptr,
                             nullptr, nullptr, nullptr, nullptr);
    FAIL() << "N=48 accepted";
  } catch (const rwkv::Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("wkv6_forward"), std::string::npos) << m;
    EXPECT_NE(m.find("N=48"), std::string::npos) << m;
  }
  EXPECT_THROW(rwkv::cuda::wkv6_workspace_bytes(1, 4, 1, 128), rwkv::Error);
}

// The chunked backward's shared memory per block fits an A100 (166,912 bytes) at every
// head size; no GPU needed.
TEST(CudaWkv6, ChunkedSharedMemoryFitsAnA100) {
  for (int N : {16, 32, 64}) EXPECT_LE(rwkv::cuda::wkv6_chunked_shared_bytes(N), 166912u) << N;
  expect_error_with([] { rwkv::cuda::wkv6_chunked_shared_bytes(48); }, "N=48");
}

// The chunked launchers' argument errors name the function and the value.
TEST(CudaWkv6, ChunkedRejectsBadSplitsAndMissingBuffers) {
  expect_error_with(
      [] {
        rwkv::cuda::wkv6_forward_chunked(1, 4, 1, 32, 0, 1, nf, nullptr, nullptr, nullptr, nullptr,
                                         nullptr, nullptr, nullptr, nullptr, nullptr, 2, nullptr);
      },
      "wkv6_forward_chunked: splits=2");
  expect_error_with(
      [] {
        rwkv::cuda::wkv6_forward_chunked(1, 4, 1, 64, 0, 1, nf, nullptr, nullptr, nullptr, nullptr,
                                         nullptr, nullptr, nullptr, nullptr, nullptr, 1, nullptr);
      },
      "wkv6_forward_chunked: scratch is null");
  float dummy = 0.f;
  expect_error_with(
      [&] {
        rwkv::cuda::wkv6_backward_chunked(1, 4, 1, 64, 0, 1, nf, nullptr, nullptr, nullptr, nullptr,
                                          nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                          nullptr, &dummy, 1, nullptr);
      },
      "wkv6_backward_chunked: workspace is null");
  expect_error_with(
      [&] {
        rwkv::cuda::wkv6_forward_chunked(1, 4, 1, 32, 0, 1, nb, nullptr, nullptr, nullptr, nullptr,
                                         nullptr, nullptr, nullptr, nullptr, nullptr, 4, nullptr);
      },
      "wkv6_forward_chunked: splits=4");
  expect_error_with(
      [&] {
        rwkv::cuda::wkv6_backward_chunked(1, 4, 1, 64, 0, 1, nb, nullptr, nullptr, nullptr, nullptr,
                                          nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                          &dummy, nullptr, 1, nullptr);
      },
      "wkv6_backward_chunked: scratch is null");
  EXPECT_EQ(rwkv::cuda::wkv6_chunked_scratch_bytes(2, 17, 4, 3, 64),
            (size_t(2) * 3 * 2 * (6 * 16 * 64 + 64) + size_t(2) * 4 * 2 * 64 * 64 +
             size_t(2) * 3 * 2 * 64) *
                sizeof(float));
}

TEST(CudaWkv6, RejectsBadHeadRangeAndMissingWorkspace) {
  EXPECT_THROW(rwkv::cuda::wkv6_forward(1, 4, 2, 64, 1, 3, nf, nullptr, nullptr, nullptr, nullptr,
                                        nullptr, nullptr, nullptr, nullptr, nullptr),
               rwkv::Error);
  EXPECT_THROW(
      rwkv::cuda::wkv6_backward(1, 4, 2, 64, 0, 2, nf, nullptr, nullptr, nullptr, nullptr, nullptr,
                                nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr),
      rwkv::Error);
  expect_error_with(
      [] {
        rwkv::cuda::wkv6_backward(1, 4, 2, 64, 0, 2, nb, nullptr, nullptr, nullptr, nullptr,
                                  nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                  nullptr);
      },
      "wkv6_backward: workspace is null");
}
