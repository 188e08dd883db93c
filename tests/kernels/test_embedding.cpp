// Embedding over vocabulary slabs: gather forward, scatter-add backward (repeated ids
// accumulate) checked by central differences on a slab; ids outside the slab give zero
// rows and no gradient, and the slabs' outputs sum to the whole table's gather.
#include <gtest/gtest.h>

#include <vector>

#include "kernels/cpu/backend_cpu.h"
#include "kernels/cpu/embedding.h"
#include "op_gradcheck.h"

namespace rwkv::kernels {
namespace {

using test::Vec;

TEST(Embedding, ForwardAndGradientsOnASlab) {
  const int64_t C = 3, n = 7, v0 = 2, v1 = 5;
  const std::vector<int32_t> idx{4, 0, 4, 2, 1, 4, 6};
  Vec emb = test::random_vec((v1 - v0) * C, 1);
  const Vec R = test::random_vec(n * C, 2);
  Vec out(n * C), demb;
  auto loss = [&] {
    embedding_forward(out.data(), idx.data(), emb.data(), n, C, v0, v1);
    return test::dot(out, R);
  };
  loss();
  EXPECT_EQ(out[3 * C + 1], emb[(2 - v0) * C + 1]);
  auto backward = [&] { embedding_backward(demb.data(), R.data(), idx.data(), n, C, v0, v1); };
  test::check_gradients(loss, backward, {{"emb", &emb, &demb}});
}

// Through a 3-thread backend (enough rows to split the forward): slabs {0, 3, 7} and
// {0, 2, 5, 7} of a V = 7 table.
TEST(Embedding, SlabsSumToTheWholeTable) {
  const int64_t V = 7, C = 5, n = 300;
  const Vec emb = test::random_vec(V * C, 3);
  const Vec dout = test::random_vec(n * C, 4);
  std::vector<int32_t> idx(n);
  for (int64_t i = 0; i < n; ++i) idx[i] = static_cast<int32_t>((i * 5 + i / 7) % V);
  CpuBackend<double> be(16, 3);

  Vec whole(n * C, 9.0), dwhole(V * C, 0.0);
  be.embedding_forward(whole.data(), idx.data(), emb.data(), n, C, 0, V);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < C; ++c) ASSERT_EQ(whole[i * C + c], emb[idx[i] * C + c]) << i;
  be.embedding_backward(dwhole.data(), dout.data(), idx.data(), n, C, 0, V);

  for (const std::vector<int64_t>& bounds :
       {std::vector<int64_t>{0, 3, V}, std::vector<int64_t>{0, 2, 5, V}}) {
    Vec sum(n * C, 0.0);
    for (size_t r = 0; r + 1 < bounds.size(); ++r) {
      const int64_t v0 = bounds[r], v1 = bounds[r + 1];
      const Vec slab(emb.begin() + v0 * C, emb.begin() + v1 * C);
      Vec out(n * C, 9.0);
      be.embedding_forward(out.data(), idx.data(), slab.data(), n, C, v0, v1);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t c = 0; c < C; ++c) {
          if (idx[i] < v0 || idx[i] >= v1) {
            ASSERT_EQ(out[i * C + c], 0.0) << i;
          }
          sum[i * C + c] += out[i * C + c];
        }
      // The slab's gradient, on top of a random start: its rows of the whole one.
      const Vec start = test::random_vec((v1 - v0) * C, 5 + r);
      Vec dslab = start;
      be.embedding_backward(dslab.data(), dout.data(), idx.data(), n, C, v0, v1);
      for (int64_t k = 0; k < (v1 - v0) * C; ++k)
        EXPECT_NEAR(dslab[k] - start[k], dwhole[v0 * C + k], 1e-12) << "slab " << r << " " << k;
    }
    EXPECT_EQ(sum, whole) << bounds.size() - 1 << " slabs";
  }
}

}  // namespace
}  // namespace rwkv::kernels
