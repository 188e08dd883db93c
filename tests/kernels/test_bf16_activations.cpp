// The reference of bf16 activations (kernels/cpu/bf16_activations.h) against the fp32
// CPU backend on the same bf16-valued inputs: every bf16 output is the fp32 op's output
// rounded once, bit for bit; an accumulating gradient is the old value plus the fp32
// contribution, rounded once; F outputs (statistics, parameter gradients) are the fp32
// op's exactly; every op of the interface but the products and WKV, one by one
// (backend_op_cases.h), and those two in tests of their own here. Also the memory ops and
// the buffer bookkeeping.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "backend_op_cases.h"
#include "bf16_test_util.h"
#include "common/error.h"
#include "kernels/cpu/backend_cpu.h"
#include "kernels/cpu/bf16_activations.h"

namespace rwkv::kernels {
namespace {

using cuda::test::expect_rounded_once;
using cuda::test::round_to_bf16;
using cuda::test::stored_as;

std::vector<float> bf16_values(size_t n, uint64_t seed, float lo = -2.f, float hi = 2.f) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> x(n);
  for (float& e : x) e = u(gen);
  round_to_bf16(x);
  return x;
}

// The same host tensors on both backends.
struct Pair {
  CpuBackend<float> f32{16, 1};
  CpuBf16Backend b16{16, 1};
  std::vector<std::pair<float*, Bf16*>> bufs;
  std::pair<float*, Bf16*> put(const std::vector<float>& host) {
    const int64_t n = static_cast<int64_t>(host.size());
    float* f = f32.alloc(n);
    Bf16* b = b16.alloc_act(n);
    f32.upload(f, host.data(), n);
    b16.upload_act(b, host.data(), n);
    return {f, b};
  }
  // The fp32 result and the bf16 result (bits) of a buffer of n values.
  std::vector<float> f32_of(const float* p, int64_t n) {
    std::vector<float> h(static_cast<size_t>(n));
    f32.download(h.data(), p, n);
    return h;
  }
  std::vector<Bf16> b16_of(const Bf16* p, int64_t n) {
    std::vector<float> h(static_cast<size_t>(n));
    b16.download_act(h.data(), p, n);
    return stored_as<Bf16>(h);
  }
};

TEST(Bf16Activations, LayerNormRoundsOutputsOnceAndKeepsStatisticsFp32) {
  const int64_t n = 37, C = 48;
  Pair p;
  const auto x = p.put(bf16_values(n * C, 1));
  const auto out = p.put(std::vector<float>(n * C, 0.f));
  const auto w = bf16_values(C, 2), b = bf16_values(C, 3);
  float *wf = p.f32.alloc(C), *bf = p.f32.alloc(C);
  p.f32.upload(wf, w.data(), C);
  p.f32.upload(bf, b.data(), C);
  float *mean32 = p.f32.alloc(n), *rstd32 = p.f32.alloc(n);
  float *mean16 = p.b16.alloc(n), *rstd16 = p.b16.alloc(n);
  float *wb = p.b16.alloc(C), *bb = p.b16.alloc(C);
  p.b16.upload(wb, w.data(), C);
  p.b16.upload(bb, b.data(), C);
  p.f32.layernorm_forward(out.first, mean32, rstd32, x.first, wf, bf, n, C, 1e-5f);
  p.b16.layernorm_forward(out.second, mean16, rstd16, x.second, wb, bb, n, C, 1e-5f);
  expect_rounded_once("out", p.b16_of(out.second, n * C), p.f32_of(out.first, n * C));
  EXPECT_EQ(p.f32_of(mean32, n), p.f32_of(mean16, n));
  EXPECT_EQ(p.f32_of(rstd32, n), p.f32_of(rstd16, n));

  // Backward into a dx that already holds values: old + contribution, rounded once; the
  // parameter gradients (F) exactly the fp32 ones.
  const auto dout = p.put(bf16_values(n * C, 4));
  const auto dx = p.put(bf16_values(n * C, 5));
  float *dw32 = p.f32.alloc(C), *db32 = p.f32.alloc(C);
  float *dw16 = p.b16.alloc(C), *db16 = p.b16.alloc(C);
  p.f32.layernorm_backward(dx.first, dw32, db32, dout.first, x.first, wf, mean32, rstd32, n, C);
  p.b16.layernorm_backward(dx.second, dw16, db16, dout.second, x.second, wb, mean16, rstd16, n, C);
  expect_rounded_once("dx", p.b16_of(dx.second, n * C), p.f32_of(dx.first, n * C));
  EXPECT_EQ(p.f32_of(dw32, C), p.f32_of(dw16, C));
  EXPECT_EQ(p.f32_of(db32, C), p.f32_of(db16, C));
}

// A product into columns [0, N) of rows ldo apart leaves the other columns alone, and
// reads x with its own leading dimension.
TEST(Bf16Activations, StridedProductWritesOnlyItsColumns) {
  const int64_t M = 9, K = 12, N = 5, ldx = 20, ldo = 8;
  Pair p;
  const auto x = p.put(bf16_values(M * ldx, 6));
  const auto w = p.put(bf16_values(N * K, 7));
  const auto out = p.put(bf16_values(M * ldo, 8));
  for (bool acc : {false, true}) {
    p.f32.matmul_forward(out.first, ldo, x.first, ldx, w.first, M, K, N, WLayout::OutIn, acc);
    p.b16.matmul_forward(out.second, ldo, x.second, ldx, w.second, M, K, N, WLayout::OutIn, acc);
    // The fp32 side starts from the bf16 side's result for the next round.
    const auto got = p.b16_of(out.second, M * ldo);
    expect_rounded_once(acc ? "out (accumulate)" : "out", got, p.f32_of(out.first, M * ldo));
    const std::vector<float> wide = cuda::test::widen(got);
    p.f32.upload(out.first, wide.data(), M * ldo);
  }
  const auto dout = p.put(bf16_values(M * ldo, 9));
  const auto dx = p.put(bf16_values(M * ldx, 10));
  float* dw32 = p.f32.alloc(N * K);
  float* dw16 = p.b16.alloc(N * K);
  p.f32.matmul_backward(dx.first, dw32, dout.first, ldo, x.first, ldx, w.first, M, K, N,
                        WLayout::OutIn, true);
  p.b16.matmul_backward(dx.second, dw16, dout.second, ldo, x.second, ldx, w.second, M, K, N,
                        WLayout::OutIn, true);
  expect_rounded_once("dx", p.b16_of(dx.second, M * ldx), p.f32_of(dx.first, M * ldx));
  EXPECT_EQ(p.f32_of(dw32, N * K), p.f32_of(dw16, N * K));
}

// The cross-entropy gradient written over the logits, as the model calls it.
TEST(Bf16Activations, CrossEntropyGradientOverTheLogits) {
  const int64_t n = 6, V = 50;
  Pair p;
  const auto logits = p.put(bf16_values(n * V, 11, -4.f, 4.f));
  const std::vector<int32_t> targets = {0, 7, 49, 3, 3, 20};
  int32_t* t32 = p.f32.alloc_ids(n);
  int32_t* t16 = p.b16.alloc_ids(n);
  p.f32.upload_ids(t32, targets.data(), n);
  p.b16.upload_ids(t16, targets.data(), n);
  float *max32 = p.f32.alloc(n), *sum32 = p.f32.alloc(2 * n), *loss32 = p.f32.alloc(n);
  float *max16 = p.b16.alloc(n), *sum16 = p.b16.alloc(2 * n), *loss16 = p.b16.alloc(n);
  int32_t* arg32 = p.f32.alloc_ids(n);
  int32_t* arg16 = p.b16.alloc_ids(n);
  p.f32.ce_local_max(max32, arg32, logits.first, n, V, 0);
  p.b16.ce_local_max(max16, arg16, logits.second, n, V, 0);
  p.f32.ce_local_sums(sum32, sum32 + n, logits.first, t32, max32, n, V, 0);
  p.b16.ce_local_sums(sum16, sum16 + n, logits.second, t16, max16, n, V, 0);
  p.f32.ce_loss(loss32, max32, sum32, sum32 + n, n);
  p.b16.ce_loss(loss16, max16, sum16, sum16 + n, n);
  EXPECT_EQ(p.f32_of(loss32, n), p.f32_of(loss16, n));
  p.f32.ce_backward(logits.first, logits.first, t32, max32, sum32, arg32, n, V, 0, 0.25f, 1e-3f);
  p.b16.ce_backward(logits.second, logits.second, t16, max16, sum16, arg16, n, V, 0, 0.25f, 1e-3f);
  expect_rounded_once("dlogits", p.b16_of(logits.second, n * V), p.f32_of(logits.first, n * V));
}

// The chunked WKV7 backward finds the forward's checkpoints through r's fixed shadow; a
// recomputation of them would give the same values, so also check the naive form.
TEST(Bf16Activations, Wkv7ForwardAndBackward) {
  const int B = 2, T = 37, H = 2, N = 8;
  const int64_t s = int64_t(B) * T * H * N;
  for (WkvAlgo algo : {WkvAlgo::chunked, WkvAlgo::naive}) {
    Pair p;
    const auto r = p.put(bf16_values(s, 20)), k = p.put(bf16_values(s, 21));
    const auto v = p.put(bf16_values(s, 22)), dy = p.put(bf16_values(s, 23));
    const auto lw = p.put(bf16_values(s, 24, -2.f, -0.01f));
    // a = -kk, b = kk * a as in the model: unit-norm kk keeps the state bounded.
    std::vector<float> kk = bf16_values(s, 25, -0.25f, 0.25f), bb(s);
    const std::vector<float> aa = bf16_values(s, 26, 0.f, 1.f);
    for (int64_t e = 0; e < s; ++e) bb[e] = kk[e] * aa[e];
    for (float& e : kk) e = -e;
    round_to_bf16(bb);
    const auto a = p.put(kk), b = p.put(bb);
    const auto y = p.put(std::vector<float>(s, 0.f));
    p.f32.wkv7_forward(algo, B, T, H, N, 0, H, r.first, lw.first, k.first, v.first, a.first,
                       b.first, y.first, nullptr, nullptr);
    p.b16.wkv7_forward(algo, B, T, H, N, 0, H, r.second, lw.second, k.second, v.second, a.second,
                       b.second, y.second, nullptr, nullptr);
    expect_rounded_once("y", p.b16_of(y.second, s), p.f32_of(y.first, s));
    std::vector<std::pair<float*, Bf16*>> grads;
    for (int i = 0; i < 6; ++i) grads.push_back(p.put(std::vector<float>(s, 0.f)));
    p.f32.wkv7_backward(algo, B, T, H, N, 0, H, r.first, lw.first, k.first, v.first, a.first,
                        b.first, dy.first, grads[0].first, grads[1].first, grads[2].first,
                        grads[3].first, grads[4].first, grads[5].first);
    p.b16.wkv7_backward(algo, B, T, H, N, 0, H, r.second, lw.second, k.second, v.second, a.second,
                        b.second, dy.second, grads[0].second, grads[1].second, grads[2].second,
                        grads[3].second, grads[4].second, grads[5].second);
    const char* names[6] = {"dr", "dlw", "dk", "dv", "da", "db"};
    for (int i = 0; i < 6; ++i)
      expect_rounded_once(names[i], p.b16_of(grads[i].second, s), p.f32_of(grads[i].first, s));
  }
}

TEST(Bf16Activations, MemoryOps) {
  CpuBf16Backend be(16, 1);
  const int64_t n = 10;
  Bf16* p = be.alloc_act(n);
  std::vector<float> back(n, 1.f);
  be.download_act(back.data(), p, n);
  EXPECT_EQ(back, std::vector<float>(n, 0.f)) << "alloc_act is zeroed";
  const std::vector<float> host = {1.f,  1.00390625f, 1.005859375f, -3.f, 1e30f,
                                   0.1f, -0.1f,       65504.f,      0.f,  -0.f};
  be.upload_act(p, host.data(), n);
  be.download_act(back.data(), p, n);
  for (int64_t i = 0; i < n; ++i)
    EXPECT_EQ(back[i], cuda::to_float(cuda::from_float<Bf16>(host[i]))) << "element " << i;
  Bf16* q = be.alloc_act(n);
  be.copy_act(q, p, n);
  be.accumulate_act(q, p, n);  // 2x, exact in bf16
  std::vector<float> twice(n);
  be.download_act(twice.data(), q, n);
  for (int64_t i = 0; i < n; ++i) EXPECT_EQ(twice[i], 2 * back[i]) << "element " << i;
  be.zero_act(q + 2, 3);
  be.download_act(twice.data(), q, n);
  EXPECT_EQ(twice[1], 2 * back[1]);
  EXPECT_EQ(twice[3], 0.f);
  EXPECT_EQ(twice[5], 2 * back[5]);
  float* f = be.alloc(n);
  be.upload(f, host.data(), n);
  be.round_act(q, f, n);
  be.download_act(twice.data(), q, n);
  EXPECT_EQ(twice, back);
  // A range running past its buffer is an error, not a read of other memory.
  EXPECT_THROW(be.act_forward(Act::tanh, q, p + 5, n), Error);
  be.free_act(p);
  be.free_act(q);
  be.free(f);
}

TEST(Bf16Activations, EveryOpIsTheFp32OpRoundedOnce) {
  const std::vector<test::OpCase> cases = test::backend_op_cases();
  uint32_t seed = 100;
  for (const test::OpCase& c : cases) {
    SCOPED_TRACE(c.name);
    const auto init = test::initial_values(c, seed++);
    CpuBackend<float> f32(16, 1);
    CpuBf16Backend b16(16, 1);
    const auto want = test::run_op_case(f32, c, init);
    const auto got = test::run_op_case(b16, c, init);
    for (size_t i = 0; i < c.bufs.size(); ++i) {
      const std::string what = c.name + ", buffer " + std::to_string(i);
      if (c.bufs[i].kind == test::BufKind::act) {
        expect_rounded_once(what.c_str(), stored_as<Bf16>(got[i]), want[i]);
      } else if (c.bufs[i].kind == test::BufKind::f) {
        EXPECT_EQ(got[i], want[i]) << what;
      }
    }
  }
}

}  // namespace
}  // namespace rwkv::kernels
