// Activation recomputation (ModelOptions::recompute, `train.recompute: full`): the
// backward runs each block's forward again instead of keeping its activations. Losses
// and gradients, accumulated over two micro-batches, are the same bits as without it
// (the CPU forward is deterministic), for every version and both WKV forms; and the
// activations shrink by all blocks but one.
#include <gtest/gtest.h>

#include <vector>

#include "kernels/cpu/backend_cpu.h"
#include "model/activations.h"
#include "model_test_util.h"

namespace rwkv::model {
namespace {

struct Result {
  std::vector<double> losses;
  std::vector<float> grads;
};

// Two micro-batches (the second with the roles of the token arrays swapped) of a
// 3-layer model: the last block keeps its activations from the forward, block 1 is
// recomputed between other blocks' backwards, block 0 feeds v7's v_first.
Result two_micro_batches(int version, kernels::WkvAlgo wkv, bool recompute) {
  const ModelConfig cfg = make_model_config(version, 3, 64, 16, 90, 64);
  const int B = 2, T = 37;  // T not a multiple of the WKV chunk
  const auto idx = test::random_tokens(B * T, cfg.vocab_size, 3);
  const auto tgt = test::random_tokens(B * T, cfg.vocab_size, 4);
  kernels::CpuBackend<float> be(16, 2);
  ModelOptions opts;
  opts.wkv = wkv;
  opts.recompute = recompute;
  Model<float> m(cfg, be, opts);
  m.set_params(test::random_params<float>(cfg, m.table, 5));
  m.zero_grad();
  Result r;
  r.losses.push_back(m.forward(idx, tgt, B, T));
  m.backward();
  r.losses.push_back(m.forward(tgt, idx, B, T));
  m.backward();
  r.grads = m.get_grads();
  return r;
}

TEST(Recompute, SameLossesAndGradients) {
  for (int v : {4, 5, 6, 7})
    for (kernels::WkvAlgo wkv : {kernels::WkvAlgo::chunked, kernels::WkvAlgo::naive}) {
      if (v == 4 && wkv == kernels::WkvAlgo::naive) continue;  // WKV4 has one form
      const Result kept = two_micro_batches(v, wkv, false);
      const Result again = two_micro_batches(v, wkv, true);
      const char* form = wkv == kernels::WkvAlgo::naive ? "naive" : "chunked";
      EXPECT_EQ(kept.losses, again.losses) << "v" << v << ", " << form << " WKV";
      ASSERT_EQ(kept.grads.size(), again.grads.size());
      size_t differ = 0;
      for (size_t i = 0; i < kept.grads.size(); ++i) differ += kept.grads[i] != again.grads[i];
      EXPECT_EQ(differ, 0u) << "gradients that differ, v" << v << ", " << form << " WKV";
    }
}

// Without recomputation the activations hold every block's; with it one block's (and
// v7's v_first): L - 1 blocks fewer.
TEST(Recompute, ActivationsOfOneBlock) {
  for (int v : {4, 5, 6, 7}) {
    const ModelConfig cfg = make_model_config(v, 6, 128, 32, 300, 256);
    const int B = 3, T = 200;
    const TpRanges ranges = tp_ranges(cfg, {});
    Arena<float> block;
    LayerActs<float> la;
    plan_layer_acts(cfg, ranges, int64_t{B} * T, la, block);
    const int64_t v_first = v == 7 ? int64_t{B} * T * cfg.n_embd : 0;
    EXPECT_EQ(Model<float>::activation_bytes(cfg, ranges, false, B, T) -
                  Model<float>::activation_bytes(cfg, ranges, true, B, T),
              ((cfg.n_layer - 1) * block.total - v_first) * int64_t{sizeof(float)})
        << "v" << v;
  }
}

}  // namespace
}  // namespace rwkv::model
