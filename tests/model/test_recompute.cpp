// Activation recomputation (ModelOptions::recompute, `train.recompute: full`): the
// backward runs each block's forward again instead of keeping its activations, and the
// head's logits are computed chunk of rows by chunk in the forward's loss and again in
// the backward. Losses and gradients, accumulated over two micro-batches, equal those
// without it for every version and both WKV forms (double; measure: |a - b| / max |b|
// over the loss and over the gradient buffer <= 1e-13: the blocks recompute the same
// bits, the chunked head sums its gradient in another order); and the activations
// shrink by all blocks but one and all logit rows but a chunk.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/backend_cpu.h"
#include "model/activations.h"
#include "model_test_util.h"

namespace rwkv::model {
namespace {

struct Result {
  std::vector<double> losses, grads;
};

// Two micro-batches (the second with the roles of the token arrays swapped) of a
// 3-layer model: the last block keeps its activations from the forward, block 1 is
// recomputed between other blocks' backwards, block 0 feeds v7's v_first. 74 rows of
// logits over a vocabulary of 90 at C 64: chunks of 53 and 21 rows when recomputing.
Result two_micro_batches(int version, kernels::WkvAlgo wkv, bool recompute) {
  const ModelConfig cfg = make_model_config(version, 3, 64, 16, 90, 64);
  const int B = 2, T = 37;  // T not a multiple of the WKV chunk
  const auto idx = test::random_tokens(B * T, cfg.vocab_size, 3);
  const auto tgt = test::random_tokens(B * T, cfg.vocab_size, 4);
  kernels::CpuBackend<double> be(16, 2);
  ModelOptions opts;
  opts.wkv = wkv;
  opts.recompute = recompute;
  Model<double> m(cfg, be, opts);
  m.set_params(test::random_params<double>(cfg, m.table, 5));
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
      for (size_t i = 0; i < kept.losses.size(); ++i)
        EXPECT_NEAR(again.losses[i], kept.losses[i], 1e-13 * kept.losses[i])
            << "v" << v << ", " << form << " WKV, micro-batch " << i;
      ASSERT_EQ(kept.grads.size(), again.grads.size());
      double diff = 0, mx = 0;
      for (size_t i = 0; i < kept.grads.size(); ++i) {
        diff = std::max(diff, std::abs(again.grads[i] - kept.grads[i]));
        mx = std::max(mx, std::abs(kept.grads[i]));
      }
      EXPECT_LE(diff, 1e-13 * mx) << "gradients, v" << v << ", " << form << " WKV";
    }
}

// Without recomputation the activations hold every block's and every row's logits; with
// it one block's (and v7's v_first) and a chunk of ceil(n C / V) rows of logits.
TEST(Recompute, ActivationsOfOneBlock) {
  for (int v : {4, 5, 6, 7}) {
    const ModelConfig cfg = make_model_config(v, 6, 128, 32, 300, 256);
    const int B = 3, T = 200;
    const TpRanges ranges = tp_ranges(cfg, {});
    Arena<float> block, block_stats;
    LayerActs<float> la;
    plan_layer_acts(cfg, ranges, int64_t{B} * T, la, block, block_stats);
    const int64_t n = int64_t{B} * T, V = cfg.vocab_size;
    const int64_t v_first = v == 7 ? n * cfg.n_embd : 0;
    const int64_t chunk = (n * cfg.n_embd + V - 1) / V;  // 256 of the 600 rows
    ASSERT_LT(chunk, n);
    EXPECT_EQ(Model<float>::activation_bytes(cfg, ranges, false, B, T) -
                  Model<float>::activation_bytes(cfg, ranges, true, B, T),
              ((cfg.n_layer - 1) * (block.total + block_stats.total) - v_first + (n - chunk) * V) *
                  int64_t{sizeof(float)})
        << "v" << v;
  }
}

}  // namespace
}  // namespace rwkv::model
