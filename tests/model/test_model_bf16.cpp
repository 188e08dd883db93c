// The model with bf16 activations (Model<float, Bf16>) on the CPU reference of bf16
// activations (kernels/cpu/bf16_activations.h), against the same model in fp32 on the
// same parameters and tokens, for RWKV-4 to 7. Error measures: |loss_bf16 - loss_fp32| /
// loss_fp32, and the relative L2 error ||g_bf16 - g_fp32|| / ||g_fp32|| of the whole
// gradient buffer (bf16 keeps 8 significant bits: one rounding is <= 2^-9 relative).
// Measured here: loss 4e-5 to 2.6e-4, gradients 0.011 to 0.022 (v6 the largest).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/backend_cpu.h"
#include "kernels/cpu/bf16_activations.h"
#include "model/model.h"
#include "model_test_util.h"
#include "tests/kernels/wkv_test_util.h"

namespace rwkv::model {
namespace {

using kernels::Bf16;

struct Result {
  double loss = 0;
  std::vector<float> grads;
};

template <typename M>
Result loss_and_grads(M& m, const std::vector<int32_t>& idx, const std::vector<int32_t>& tgt, int B,
                      int T) {
  m.zero_grad();
  Result r;
  r.loss = m.forward(idx, tgt, B, T);
  m.backward();
  r.grads = m.get_grads();
  return r;
}

ModelConfig config(int version) { return make_model_config(version, 2, 64, 16, 40, 64); }

TEST(Bf16Model, TracksFp32LossAndGradients) {
  for (int v : {4, 5, 6, 7})
    for (bool recompute : {false, true}) {
      const ModelConfig cfg = config(v);
      const int B = 2, T = 37;
      const auto idx = test::random_tokens(B * T, cfg.vocab_size, 1);
      const auto tgt = test::random_tokens(B * T, cfg.vocab_size, 2);
      ModelOptions opts;
      opts.recompute = recompute;
      kernels::CpuBackend<float> f32(16, 1);
      kernels::CpuBf16Backend b16(16, 1);
      Model<float> mf(cfg, f32, opts);
      Model<float, Bf16> mb(cfg, b16, opts);
      const auto params = test::random_params<float>(cfg, mf.table, 3);
      mf.set_params(params);
      mb.set_params(params);
      const Result want = loss_and_grads(mf, idx, tgt, B, T);
      const Result got = loss_and_grads(mb, idx, tgt, B, T);
      const char* how = recompute ? ", recompute" : "";
      EXPECT_LE(std::abs(got.loss - want.loss) / want.loss, 2e-3) << "v" << v << how;
      EXPECT_LE(kernels::test::rel_err(got.grads, want.grads), 3e-2) << "v" << v << how;
      EXPECT_EQ(mb.get_params(), params) << "v" << v << how << ": the parameters stay fp32";
    }
}

// Recomputation runs the same bf16 ops again: the same losses and gradients but for the
// head's, summed chunk of rows by chunk (vocabulary 90 > C 64: chunks of 53 and 21 rows;
// relative L2 2.2e-8 here).
TEST(Bf16Model, RecomputeGivesTheSameLossAndGradients) {
  const ModelConfig cfg = make_model_config(7, 3, 64, 16, 90, 64);
  const int B = 2, T = 37;
  const auto idx = test::random_tokens(B * T, cfg.vocab_size, 4);
  const auto tgt = test::random_tokens(B * T, cfg.vocab_size, 5);
  Result runs[2];
  for (bool recompute : {false, true}) {
    kernels::CpuBf16Backend be(16, 1);
    ModelOptions opts;
    opts.recompute = recompute;
    Model<float, Bf16> m(cfg, be, opts);
    m.set_params(test::random_params<float>(cfg, m.table, 6));
    runs[recompute] = loss_and_grads(m, idx, tgt, B, T);
  }
  EXPECT_EQ(runs[1].loss, runs[0].loss);
  EXPECT_LE(kernels::test::rel_err(runs[1].grads, runs[0].grads), 1e-6);
}

// The products read the bf16 copy of the parameters: set_params and adamw_step refresh
// it (a model given the new parameters afresh computes the same loss, bit for bit).
TEST(Bf16Model, ProductWeightsFollowTheParameters) {
  const ModelConfig cfg = config(7);
  const int B = 1, T = 20;
  const auto idx = test::random_tokens(B * T, cfg.vocab_size, 7);
  const auto tgt = test::random_tokens(B * T, cfg.vocab_size, 8);
  kernels::CpuBf16Backend be(16, 1);
  Model<float, Bf16> m(cfg, be);
  m.set_params(test::random_params<float>(cfg, m.table, 9));
  m.forward(idx, tgt, B, T);
  const auto fresh_loss = [&](const std::vector<float>& params) {
    kernels::CpuBf16Backend be2(16, 1);
    Model<float, Bf16> m2(cfg, be2);
    m2.set_params(params);
    return m2.forward(idx, tgt, B, T);
  };
  const auto p2 = test::random_params<float>(cfg, m.table, 10);
  m.set_params(p2);
  EXPECT_EQ(m.forward(idx, tgt, B, T), fresh_loss(p2)) << "after set_params";
  m.zero_grad();
  m.forward(idx, tgt, B, T);
  m.backward();
  kernels::AdamWHyper h;
  h.lr = 1e-2;
  m.adamw_step(h, 1);
  EXPECT_NE(m.get_params(), p2);
  EXPECT_EQ(m.forward(idx, tgt, B, T), fresh_loss(m.get_params())) << "after adamw_step";
}

// 40 AdamW steps on a short repeated pattern: the bf16 loss curve stays within 2% of the
// fp32 one at every step (at most 0.5% here, near the end), and both
// learn it.
TEST(Bf16Model, TrainingTracksFp32) {
  const ModelConfig cfg = config(7);
  const int B = 2, T = 32;
  std::vector<int32_t> seq(B * T + 1);
  for (size_t i = 0; i < seq.size(); ++i) seq[i] = static_cast<int32_t>((i * 7) % 13);
  const std::vector<int32_t> idx(seq.begin(), seq.end() - 1), tgt(seq.begin() + 1, seq.end());
  kernels::CpuBackend<float> f32(16, 1);
  kernels::CpuBf16Backend b16(16, 1);
  Model<float> mf(cfg, f32);
  Model<float, Bf16> mb(cfg, b16);
  mf.init(11);
  mb.init(11);
  kernels::AdamWHyper h;
  h.lr = 3e-3;
  double first = 0, last_f = 0, last_b = 0;
  for (int step = 1; step <= 40; ++step) {
    mf.zero_grad();
    mb.zero_grad();
    last_f = mf.forward(idx, tgt, B, T);
    last_b = mb.forward(idx, tgt, B, T);
    if (step == 1) first = last_f;
    EXPECT_LE(std::abs(last_b - last_f), 0.02 * last_f) << "step " << step;
    mf.backward();
    mb.backward();
    mf.adamw_step(h, step);
    mb.adamw_step(h, step);
  }
  EXPECT_LT(last_f, 0.5 * first);
  EXPECT_LT(last_b, 0.5 * first);
}

// Inference in bf16: the recurrent form (fp32 state between tokens) gives the logits of
// the parallel form within bf16's error.
TEST(Bf16Model, RecurrentMatchesParallel) {
  for (int v : {4, 5, 6, 7}) {
    const ModelConfig cfg = config(v);
    const int T = 12;
    const auto idx = test::random_tokens(T, cfg.vocab_size, 12);
    kernels::CpuBf16Backend be(16, 1);
    Model<float, Bf16> m(cfg, be);
    m.set_params(test::random_params<float>(cfg, m.table, 13));
    const std::vector<float> parallel = m.forward_logits(idx, 1, T);
    RecurrentState<float> s = m.new_state();
    std::vector<float> recurrent;
    for (int t = 0; t < T; ++t) {
      const std::vector<float> l = m.forward_step(idx[t], s);
      recurrent.insert(recurrent.end(), l.begin(), l.end());
    }
    EXPECT_LE(kernels::test::rel_err(recurrent, parallel), 2e-2) << "v" << v;
  }
}

// Rank 0 of a group of two (the model's), and a group's bf16 sum at `at`; their
// collectives are not called here.
struct TwoRanks final : TpComm<float> {
  TpRank where() const override { return {0, 2}; }
  void all_reduce_sum(float*, int64_t) override { ADD_FAILURE() << "all-reduce called"; }
  void all_reduce_maxloc(float*, int32_t*, int64_t) override { ADD_FAILURE() << "maxloc called"; }
};
struct Bf16Group final : TpAllReduce<Bf16> {
  explicit Bf16Group(TpRank a) : at(a) {}
  TpRank where() const override { return at; }
  void all_reduce_sum(Bf16*, int64_t) override { ADD_FAILURE() << "all-reduce called"; }
  TpRank at;
};

std::string construction_error(TpComm<float>* tp, TpAllReduce<Bf16>* act) {
  kernels::CpuBf16Backend be(16, 1);
  try {
    Model<float, Bf16> m(config(7), be, {}, tp, act);
  } catch (const Error& e) {
    return e.what();
  }
  return "constructed";
}

// Split over tensor-parallel ranks, the model needs the group's bf16 all-reduce, of the
// same group (tests/trainer/test_tp_model.cpp runs it split).
TEST(Bf16Model, TensorParallelismNeedsTheGroupsBf16AllReduce) {
  TwoRanks tp;
  const std::string none = construction_error(&tp, nullptr);
  EXPECT_NE(none.find("split over 2 tensor-parallel ranks needs its group's bf16 all-reduce"),
            std::string::npos)
      << none;
  Bf16Group other({1, 2});
  const std::string wrong = construction_error(&tp, &other);
  EXPECT_NE(wrong.find("(rank 1 of 2) is not the model's (rank 0 of 2)"), std::string::npos)
      << wrong;
  Bf16Group same({0, 2});
  EXPECT_EQ(construction_error(&tp, &same), "constructed");
}

}  // namespace
}  // namespace rwkv::model
