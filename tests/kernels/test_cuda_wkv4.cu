// WKV4 CUDA kernels (label gpu) against the CPU kernels (kernels/cpu/wkv4.h) on random
// inputs: output, final state and every gradient, for several shapes, channel ranges,
// decay rates and large keys; bitwise determinism; argument errors (these need no GPU).
// The bf16 launchers against the fp32 ones (each output rounded once) and the CPU (5e-3).
// Measure: ||gpu - cpu||_2 / ||cpu||_2 over the channels in range, <= 1e-5 in fp32; the
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
#include <vector>

#include "common/error.h"
#include "kernels/cpu/wkv4.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/wkv4.h"
#include "tests/kernels/bf16_test_util.h"
#include "tests/kernels/cuda_test_util.h"

namespace {

struct Case {
  int B, T, C, c0, c1;
  double w_lo, w_hi;  // decay rate w > 0 (per token the state is scaled by e^{-w})
  double k_lo, k_hi;
  unsigned seed;
};

std::string describe(const Case& c) {
  std::ostringstream s;
  s << "B=" << c.B << " T=" << c.T << " C=" << c.C << " channels [" << c.c0 << ", " << c.c1
    << ") w in [" << c.w_lo << ", " << c.w_hi << "] k in [" << c.k_lo << ", " << c.k_hi << "]";
  return s.str();
}

// got vs ref for a tensor of rows of C channels with n elements each: [B, T, C] (n = 1,
// the default), the state [B, C, 3] (n = 3, T = 1), dw, du [C] (n = 1, B = T = 1).
// Element i is in channel (i / n) % C, row i / (C n) = b T + t.
// tol: 1e-5 (fp32), or the bf16 tolerance for the bf16 kernels.
::testing::AssertionResult close(const char* name, const Case& c, const std::vector<float>& got,
                                 const std::vector<float>& ref, int n = 1, int T = 0,
                                 double tol = 1e-5) {
  return rwkv::cuda::test::close_groups(std::string(name) + " (" + describe(c) + ")", got, ref, c.C,
                                        n, c.c0, c.c1, T == 0 ? c.T : T, "c", tol);
}

struct Inputs {
  std::vector<float> w, u, k, v, dy;  // w, u [C]; k, v, dy [B, T, C]
  Inputs(const Case& c) {
    std::mt19937 rng(c.seed);
    const size_t sz = size_t(c.B) * c.T * c.C;
    w = uniform(c.C, c.w_lo, c.w_hi, rng);
    u = uniform(c.C, -1, 1, rng);
    k = uniform(sz, c.k_lo, c.k_hi, rng);
    v = uniform(sz, -1, 1, rng);
    dy = uniform(sz, -1, 1, rng);
  }
};

struct Outputs {
  std::vector<float> y, state, dk, dv, dw, du;
};

Outputs run_cpu(const Case& c, const Inputs& in) {
  const size_t sz = in.k.size();
  Outputs o;
  for (auto* x : {&o.y, &o.dk, &o.dv}) x->assign(sz, 0.f);
  o.state.assign(size_t(c.B) * c.C * 3, 0.f);
  for (auto* x : {&o.dw, &o.du}) x->assign(c.C, 0.f);
  rwkv::kernels::wkv4_forward_naive(c.B, c.T, c.C, c.c0, c.c1, in.w.data(), in.u.data(),
                                    in.k.data(), in.v.data(), o.y.data(), nullptr, o.state.data());
  rwkv::kernels::wkv4_backward_naive(c.B, c.T, c.C, c.c0, c.c1, in.w.data(), in.u.data(),
                                     in.k.data(), in.v.data(), in.dy.data(), o.dw.data(),
                                     o.du.data(), o.dk.data(), o.dv.data());
  return o;
}

// Forward (with the final state) then backward, on poisoned outputs.
Outputs run_gpu(const Case& c, const Inputs& in) {
  const DevBuf w(in.w), u(in.u), k(in.k), v(in.v), dy(in.dy);
  const size_t sz = in.k.size();
  DevBuf y(sz), state(size_t(c.B) * c.C * 3), dk(sz), dv(sz), dw(c.C), du(c.C);
  for (DevBuf* b : {&y, &state, &dk, &dv, &dw, &du}) b->poison();
  void* ws = nullptr;
  CUDA_CHECK(cudaMalloc(&ws, rwkv::cuda::wkv4_workspace_bytes(c.B, c.T, c.C)));
  rwkv::cuda::wkv4_forward(c.B, c.T, c.C, c.c0, c.c1, w.p, u.p, k.p, v.p, y.p, nullptr, state.p,
                           nullptr);
  rwkv::cuda::wkv4_backward(c.B, c.T, c.C, c.c0, c.c1, w.p, u.p, k.p, v.p, dy.p, dw.p, du.p, dk.p,
                            dv.p, ws, nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  CUDA_CHECK(cudaFree(ws));
  return {y.get(), state.get(), dk.get(), dv.get(), dw.get(), du.get()};
}

void expect_matches_cpu(const Case& c) {
  const Inputs in(c);
  const Outputs ref = run_cpu(c, in), got = run_gpu(c, in);
  EXPECT_TRUE(close("y", c, got.y, ref.y));
  EXPECT_TRUE(close("state_out", c, got.state, ref.state, 3, 1));
  EXPECT_TRUE(close("dk", c, got.dk, ref.dk));
  EXPECT_TRUE(close("dv", c, got.dv, ref.dv));
  EXPECT_TRUE(close("dw", c, got.dw, ref.dw, 1, 1));
  EXPECT_TRUE(close("du", c, got.du, ref.du, 1, 1));
}

// run_gpu with bf16 k, v, dy (they must be bf16 values already): y, dk, dv bf16; the
// state, dw, du fp32.
struct Bf16Outputs {
  std::vector<rwkv::cuda::Bf16> y, dk, dv;
  std::vector<float> state, dw, du;
};

Bf16Outputs run_gpu_bf16(const Case& c, const Inputs& in) {
  const auto to_bf16 = rwkv::cuda::test::stored_as<rwkv::cuda::Bf16>;
  const DevBuf w(in.w), u(in.u);
  const DevBf16 k(to_bf16(in.k)), v(to_bf16(in.v)), dy(to_bf16(in.dy));
  const size_t sz = in.k.size();
  DevBf16 y(sz), dk(sz), dv(sz);
  DevBuf state(size_t(c.B) * c.C * 3), dw(c.C), du(c.C),
      ws(rwkv::cuda::wkv4_workspace_bytes(c.B, c.T, c.C) / sizeof(float));
  for (DevBf16* b : {&y, &dk, &dv}) b->poison();
  for (DevBuf* b : {&state, &dw, &du, &ws}) b->poison();
  rwkv::cuda::wkv4_forward(c.B, c.T, c.C, c.c0, c.c1, w.p, u.p, k.p, v.p, y.p, nullptr, state.p,
                           nullptr);
  rwkv::cuda::wkv4_backward(c.B, c.T, c.C, c.c0, c.c1, w.p, u.p, k.p, v.p, dy.p, dw.p, du.p, dk.p,
                            dv.p, ws.p, nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  return {y.get(), dk.get(), dv.get(), state.get(), dw.get(), du.get()};
}

// On inputs that are bf16 values: y, dk, dv the fp32 kernels' rounded once (or a
// neighbour: the two instances may contract multiply-adds differently) and within 5e-3
// relative L2 of the CPU's; the state, dw, du within 1e-5 of the fp32 kernels'.
void expect_bf16_matches(const Case& c) {
  SCOPED_TRACE(describe(c) + ", bf16");
  Inputs in(c);
  for (auto* x : {&in.k, &in.v, &in.dy}) rwkv::cuda::test::round_to_bf16(*x);
  const Outputs f = run_gpu(c, in), ref = run_cpu(c, in);
  const Bf16Outputs b = run_gpu_bf16(c, in);
  using rwkv::cuda::test::expect_rounded_once;
  using rwkv::cuda::test::widen;
  expect_rounded_once("y", b.y, f.y, 1);
  expect_rounded_once("dk", b.dk, f.dk, 1);
  expect_rounded_once("dv", b.dv, f.dv, 1);
  EXPECT_TRUE(close("y vs cpu", c, widen(b.y), ref.y, 1, 0, 5e-3));
  EXPECT_TRUE(close("dk vs cpu", c, widen(b.dk), ref.dk, 1, 0, 5e-3));
  EXPECT_TRUE(close("dv vs cpu", c, widen(b.dv), ref.dv, 1, 0, 5e-3));
  EXPECT_TRUE(close("state_out", c, b.state, f.state, 3, 1));
  EXPECT_TRUE(close("dw", c, b.dw, f.dw, 1, 1));
  EXPECT_TRUE(close("du", c, b.du, f.du, 1, 1));
}

// Null tensors for the argument checks' calls, typed to pick the fp32 or the bf16
// overload of a launcher.
constexpr const float* nf = nullptr;
constexpr const __nv_bfloat16* nb = nullptr;

}  // namespace

TEST(CudaWkv4, MatchesCpuAllChannels) {
  SKIP_WITHOUT_GPU();
  expect_matches_cpu({1, 37, 64, 0, 64, 0.05, 2.0, -1.0, 1.0, 1});
}

// T = 100 (not a multiple of the 16-token checkpoints), B = 3, channels [37, 165) of
// 200 (not a multiple of the warp or the block).
TEST(CudaWkv4, MatchesCpuChannelRange) {
  SKIP_WITHOUT_GPU();
  expect_matches_cpu({3, 100, 200, 37, 165, 0.05, 2.0, -1.0, 1.0, 2});
}

TEST(CudaWkv4, MatchesCpuShortSequences) {
  SKIP_WITHOUT_GPU();
  expect_matches_cpu({2, 16, 40, 3, 40, 0.05, 2.0, -1.0, 1.0, 3});  // T a multiple of 16
  expect_matches_cpu({3, 1, 40, 0, 33, 0.05, 2.0, -1.0, 1.0, 4});   // one token
}

// Per-token decay e^{-w} near 0 (w in [40, 60]) and near 1 (w in [1e-4, 2e-4]).
TEST(CudaWkv4, MatchesCpuDecayNearZero) {
  SKIP_WITHOUT_GPU();
  expect_matches_cpu({2, 100, 48, 0, 48, 40.0, 60.0, -1.0, 1.0, 5});
}

TEST(CudaWkv4, MatchesCpuDecayNearOne) {
  SKIP_WITHOUT_GPU();
  expect_matches_cpu({2, 100, 48, 0, 48, 1e-4, 2e-4, -1.0, 1.0, 6});
}

// k around 60: e^k overflows fp32 if ever formed.
TEST(CudaWkv4, MatchesCpuLargeKeys) {
  SKIP_WITHOUT_GPU();
  expect_matches_cpu({2, 40, 48, 5, 40, 0.05, 2.0, 55.0, 65.0, 7});
}

TEST(CudaWkv4, MatchesCpuLongSequence) {
  SKIP_WITHOUT_GPU();
  expect_matches_cpu({1, 4096, 64, 0, 64, 1e-3, 1.0, -2.0, 2.0, 8});
  expect_matches_cpu({1, 16384, 64, 0, 64, 1e-3, 1.0, -2.0, 2.0, 12});  // the issue's longest T
}

// A state from running the first 23 tokens on the CPU, carried into the GPU forward of
// the next 30: output and final state against the CPU run of the same 30 tokens.
TEST(CudaWkv4, ForwardWithInitialState) {
  SKIP_WITHOUT_GPU();
  const Case c{2, 30, 48, 4, 44, 0.05, 2.0, -2.0, 2.0, 9};
  const Case pre{2, 23, 48, 0, 48, 0.05, 2.0, -2.0, 2.0, 10};
  const Inputs in(c), in_pre(pre);
  std::vector<float> y_pre(in_pre.k.size()), s0(size_t(c.B) * c.C * 3);
  rwkv::kernels::wkv4_forward_naive(pre.B, pre.T, pre.C, 0, pre.C, in.w.data(), in.u.data(),
                                    in_pre.k.data(), in_pre.v.data(), y_pre.data(), nullptr,
                                    s0.data());
  std::vector<float> y_ref(in.k.size()), s_ref(s0.size());
  rwkv::kernels::wkv4_forward_naive(c.B, c.T, c.C, c.c0, c.c1, in.w.data(), in.u.data(),
                                    in.k.data(), in.v.data(), y_ref.data(), s0.data(),
                                    s_ref.data());
  const DevBuf w(in.w), u(in.u), k(in.k), v(in.v), sin(s0);
  DevBuf y(in.k.size()), sout(s0.size());
  for (DevBuf* b : {&y, &sout}) b->poison();
  rwkv::cuda::wkv4_forward(c.B, c.T, c.C, c.c0, c.c1, w.p, u.p, k.p, v.p, y.p, sin.p, sout.p,
                           nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_TRUE(close("y", c, y.get(), y_ref));
  EXPECT_TRUE(close("state_out", c, sout.get(), s_ref, 3, 1));
}

// bf16 k, v, y, dy, dk, dv (the bf16 launchers): a channel range, T not a multiple of
// the checkpoints, large keys, a long sequence.
TEST(CudaWkv4, Bf16IsFp32RoundedOnce) {
  SKIP_WITHOUT_GPU();
  expect_bf16_matches({3, 100, 200, 37, 165, 0.05, 2.0, -1.0, 1.0, 20});
  expect_bf16_matches({2, 40, 48, 5, 40, 0.05, 2.0, 55.0, 65.0, 21});
  expect_bf16_matches({1, 4096, 64, 0, 64, 1e-3, 1.0, -2.0, 2.0, 22});
}

// Two runs on the same inputs give bitwise-identical outputs and gradients.
TEST(CudaWkv4, Deterministic) {
  SKIP_WITHOUT_GPU();
  const Case c{3, 100, 200, 0, 200, 0.05, 2.0, -1.0, 1.0, 11};
  const Inputs in(c);
  const Outputs a = run_gpu(c, in), b = run_gpu(c, in);
  const char* names[] = {"y", "state", "dk", "dv", "dw", "du"};
  const std::vector<float>* xa[] = {&a.y, &a.state, &a.dk, &a.dv, &a.dw, &a.du};
  const std::vector<float>* xb[] = {&b.y, &b.state, &b.dk, &b.dv, &b.dw, &b.du};
  for (int i = 0; i < 6; ++i)
    EXPECT_EQ(std::memcmp(xa[i]->data(), xb[i]->data(), xa[i]->size() * sizeof(float)), 0)
        << names[i];
}

// Argument checks run before any CUDA call: no GPU needed.
TEST(CudaWkv4, RejectsBadChannelRangeAndMissingWorkspace) {
  try {
    rwkv::cuda::wkv4_forward(1, 4, 8, 2, 9, nullptr, nullptr, nf, nullptr, nullptr, nullptr,
                             nullptr, nullptr);
    FAIL() << "channel range [2, 9) of 8 accepted";
  } catch (const rwkv::Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("wkv4_forward"), std::string::npos) << m;
    EXPECT_NE(m.find("[2, 9)"), std::string::npos) << m;
  }
  EXPECT_THROW(rwkv::cuda::wkv4_backward(1, 4, 8, 0, 8, nullptr, nullptr, nf, nullptr, nullptr,
                                         nullptr, nullptr, nullptr, nullptr, nullptr, nullptr),
               rwkv::Error);
  expect_error_with(
      [] {
        rwkv::cuda::wkv4_backward(1, 4, 8, 0, 8, nullptr, nullptr, nb, nullptr, nullptr, nullptr,
                                  nullptr, nullptr, nullptr, nullptr, nullptr);
      },
      "wkv4_backward: workspace is null");
}
