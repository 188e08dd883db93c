// CUDA embedding (label gpu) against the CPU kernels (kernels/cpu/embedding.h) on random
// ids, for the whole vocabulary and for a tensor-parallel slab [v0, v1) with ids outside
// it: the forward (output poisoned with NaN first, so an unwritten element fails) must
// equal the CPU's exactly (it copies); the backward, into a demb pre-filled with random
// values, with ids repeated many times, must equal the CPU's bitwise too (each row sums
// its tokens in position order, as the CPU loop), which also makes it reproducible.
// Argument errors need no GPU.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cuda/embedding.h"
#include "tests/kernels/cuda_test_util.h"

namespace {

using Vec = std::vector<float>;

struct Case {
  int64_t n, C, V, v0, v1;
  int32_t id_lo, id_hi;  // ids uniform in [id_lo, id_hi]: a narrow range repeats them
  unsigned seed;
};

std::string describe(const Case& c) {
  return "n=" + std::to_string(c.n) + " C=" + std::to_string(c.C) + " slab [" +
         std::to_string(c.v0) + ", " + std::to_string(c.v1) + ") ids in [" +
         std::to_string(c.id_lo) + ", " + std::to_string(c.id_hi) + "]";
}

const std::vector<Case> kCases = {
    {53, 37, 20, 0, 20, 0, 19, 1},    // whole vocabulary, ids repeated ~3 times
    {70, 300, 50, 10, 31, 0, 49, 2},  // a slab; most ids outside; C > one block's threads
    {40, 5, 9, 3, 6, 3, 4, 3},        // two ids only, long runs
    {17, 33, 8, 8, 8, 0, 7, 4},       // an empty slab: out is 0, demb empty
};

std::vector<int32_t> random_ids(const Case& c, std::mt19937& rng) {
  std::uniform_int_distribution<int32_t> d(c.id_lo, c.id_hi);
  std::vector<int32_t> ids(size_t(c.n));
  for (auto& id : ids) id = d(rng);
  return ids;
}

TEST(CudaEmbedding, ForwardMatchesCpu) {
  SKIP_WITHOUT_GPU();
  for (const Case& c : kCases) {
    std::mt19937 rng(c.seed);
    const std::vector<int32_t> ids = random_ids(c, rng);
    const Vec emb = uniform(size_t((c.v1 - c.v0) * c.C), -1, 1, rng);
    Vec out(size_t(c.n * c.C));
    rwkv::kernels::embedding_forward(out.data(), ids.data(), emb.data(), c.n, c.C, c.v0, c.v1);

    const DevIds gids(ids);
    const DevBuf gemb(emb);
    DevBuf gout(out.size());
    gout.poison();
    rwkv::cuda::embedding_forward(gout.p, gids.p, gemb.p, c.n, c.C, c.v0, c.v1, nullptr);
    EXPECT_EQ(gout.get(), out) << describe(c);
  }
}

TEST(CudaEmbedding, BackwardMatchesCpuBitwise) {
  SKIP_WITHOUT_GPU();
  for (const Case& c : kCases) {
    std::mt19937 rng(c.seed);
    const std::vector<int32_t> ids = random_ids(c, rng);
    const Vec dout = uniform(size_t(c.n * c.C), -1, 1, rng);
    const Vec demb0 = uniform(size_t((c.v1 - c.v0) * c.C), -1, 1, rng);
    Vec demb = demb0;
    rwkv::kernels::embedding_backward(demb.data(), dout.data(), ids.data(), c.n, c.C, c.v0, c.v1);

    const DevIds gids(ids);
    const DevBuf gdout(dout);
    const size_t bytes = rwkv::cuda::embedding_backward_scratch_bytes(c.n, c.v0, c.v1);
    for (int run = 0; run < 2; ++run) {
      DevBuf gdemb(demb0), scratch((bytes + 3) / 4);
      scratch.poison();
      rwkv::cuda::embedding_backward(gdemb.p, gdout.p, gids.p, c.n, c.C, c.v0, c.v1, scratch.p,
                                     nullptr);
      EXPECT_EQ(gdemb.get(), demb) << describe(c) << " run " << run;
    }
  }
}

TEST(CudaEmbedding, BadShapesThrow) {
  EXPECT_THROW(
      rwkv::cuda::embedding_forward<float>(nullptr, nullptr, nullptr, 4, 0, 0, 10, nullptr),
      rwkv::Error);
  EXPECT_THROW(rwkv::cuda::embedding_backward_scratch_bytes(-1, 0, 10), rwkv::Error);
  try {
    rwkv::cuda::embedding_backward<float>(nullptr, nullptr, nullptr, 4, 8, 10, 5, nullptr, nullptr);
    FAIL() << "no error";
  } catch (const rwkv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("embedding_backward"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[10, 5)"), std::string::npos) << e.what();
  }
}

}  // namespace
