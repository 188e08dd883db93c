// Overlapping the data-parallel gradient reduction with backward (2 ranks):
//   - Model::backward's completion callback, every version: ready_from never increases,
//     there is one call after head/ln_out, one per block and one at the end, the last is
//     0, and at each call the gradients at offsets >= ready_from already hold their
//     final values (bitwise: a copy taken at the call equals the gradients after
//     backward);
//   - GradReducer driven by the callback during the last of two accumulated
//     micro-batches gives bitwise the gradients (and, after an AdamW step, the
//     parameters) of reducing every bucket after backward; buckets are issued before
//     backward ends.
#include <gtest/gtest.h>
#include <mpi.h>

#include <random>
#include <vector>

#include "kernels/cpu/backend_cpu.h"
#include "model/model.h"
#include "model/model_config.h"
#include "trainer/data_parallel.h"

namespace rwkv::trainer {
namespace {

int rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

// Official init plus U(-0.2, 0.2) noise: no gradient is zero by construction.
void randomise(model::Model<float>& m, uint64_t seed) {
  m.init(seed);
  std::vector<float> p = m.get_params();
  std::mt19937_64 gen(seed + 1);
  std::uniform_real_distribution<float> u(-0.2f, 0.2f);
  for (float& x : p) x += u(gen);
  m.set_params(p);
}

std::vector<int32_t> random_tokens(int n, int vocab, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::vector<int32_t> out(static_cast<size_t>(n));
  for (int32_t& t : out) t = static_cast<int32_t>(gen() % static_cast<uint64_t>(vocab));
  return out;
}

constexpr int B = 2, T = 8;

TEST(BackwardCallback, ReportsOnlyFinalGradientsDownToZero) {
  for (int version = 4; version <= 7; ++version) {
    const model::ModelConfig cfg = model::make_model_config(version, 3, 16, 8, 12, 64);
    kernels::CpuBackend<float> be(4);
    model::Model<float> m(cfg, be);
    randomise(m, 5 + static_cast<uint64_t>(version));
    const auto idx = random_tokens(B * T, cfg.vocab_size, 21);
    const auto tgt = random_tokens(B * T, cfg.vocab_size, 22);
    m.zero_grad();
    // A first micro-batch, so the gradients accumulate onto non-zero values.
    m.forward(idx, tgt, B, T);
    m.backward();
    m.forward(tgt, idx, B, T);
    std::vector<int64_t> ready;
    std::vector<std::vector<float>> seen;
    m.backward([&](int64_t from) {
      ready.push_back(from);
      seen.push_back(m.get_grads());
    });
    const std::vector<float> final_grads = m.get_grads();
    ASSERT_EQ(ready.size(), static_cast<size_t>(cfg.n_layer + 2)) << "v" << version;
    EXPECT_LT(ready.front(), m.table.total) << "v" << version;  // the head is ready first
    EXPECT_EQ(ready.back(), 0) << "v" << version;
    for (size_t c = 0; c < ready.size(); ++c) {
      // Never increasing; in fact every call makes progress.
      if (c > 0) {
        EXPECT_LT(ready[c], ready[c - 1]) << "v" << version << " call " << c;
      }
      int64_t wrong = 0;
      for (int64_t i = ready[c]; i < m.table.total; ++i)
        wrong += seen[c][static_cast<size_t>(i)] != final_grads[static_cast<size_t>(i)];
      EXPECT_EQ(wrong, 0) << "v" << version << " call " << c << ": ready_from " << ready[c];
    }
  }
}

TEST(GradReducer, OverlappedEqualsReducingAfterBackwardBitwise) {
  ASSERT_EQ([] {
    int s = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &s);
    return s;
  }(), 2);
  for (int version : {4, 7}) {
    const model::ModelConfig cfg = model::make_model_config(version, 3, 16, 8, 12, 64);
    kernels::CpuBackend<float> be(4);
    model::Model<float> m(cfg, be);
    randomise(m, 9);  // the same parameters on both ranks
    const std::vector<float> p0 = m.get_params();
    const auto r = static_cast<uint64_t>(rank());
    const auto idx1 = random_tokens(B * T, cfg.vocab_size, 100 + r);
    const auto tgt1 = random_tokens(B * T, cfg.vocab_size, 200 + r);
    const auto idx2 = random_tokens(B * T, cfg.vocab_size, 300 + r);
    const auto tgt2 = random_tokens(B * T, cfg.vocab_size, 400 + r);
    // Small buckets: several per block, so issuing interleaves with backward.
    const std::vector<GradBucket> buckets = make_grad_buckets(m.table, 200);
    ASSERT_GT(buckets.size(), static_cast<size_t>(cfg.n_layer + 2));
    const double scale = 1.0 / 4;  // 2 micro-batches x 2 ranks
    kernels::AdamWHyper h;
    h.lr = 1e-2;

    m.zero_grad();
    m.forward(idx1, tgt1, B, T);
    m.backward();
    m.forward(idx2, tgt2, B, T);
    m.backward();
    const std::vector<float> local = m.get_grads();
    allreduce_gradients(m.grads, buckets, scale, MPI_COMM_WORLD);
    const std::vector<float> after = m.get_grads();
    m.adamw_step(h, 1);
    const std::vector<float> p_after = m.get_params();

    model::Model<float> m2(cfg, be);
    m2.set_params(p0);
    m2.zero_grad();
    GradReducer reducer(m2.grads, buckets, MPI_COMM_WORLD);
    m2.forward(idx1, tgt1, B, T);
    m2.backward();
    m2.forward(idx2, tgt2, B, T);
    size_t issued_before_end = 0;
    m2.backward([&](int64_t from) {
      if (from > 0) issued_before_end = reducer.issued;
      reducer.ready(from);
    });
    reducer.finish(scale);
    EXPECT_GT(issued_before_end, 0u) << "v" << version;
    EXPECT_EQ(m2.get_grads(), after) << "v" << version;
    std::vector<float> local_scaled = local;  // what a rank alone would have
    for (float& g : local_scaled) g *= static_cast<float>(scale);
    EXPECT_NE(after, local_scaled) << "v" << version;
    m2.adamw_step(h, 1);
    EXPECT_EQ(m2.get_params(), p_after) << "v" << version;
  }
}

}  // namespace
}  // namespace rwkv::trainer
