// Embedding: gather forward, scatter-add backward (repeated ids accumulate), checked
// by central differences.
#include <gtest/gtest.h>

#include "kernels/cpu/embedding.h"
#include "op_gradcheck.h"

namespace rwkv::kernels {
namespace {

using test::Vec;

TEST(Embedding, ForwardAndGradients) {
  const int64_t V = 5, C = 3, n = 6;
  const std::vector<int32_t> idx{4, 0, 4, 2, 1, 4};
  Vec emb = test::random_vec(V * C, 1);
  const Vec R = test::random_vec(n * C, 2);
  Vec out(n * C), demb;
  auto loss = [&] {
    embedding_forward(out.data(), idx.data(), emb.data(), n, C);
    return test::dot(out, R);
  };
  loss();
  EXPECT_EQ(out[3 * C + 1], emb[2 * C + 1]);
  auto backward = [&] { embedding_backward(demb.data(), R.data(), idx.data(), n, C); };
  test::check_gradients(loss, backward, {{"emb", &emb, &demb}});
}

}  // namespace
}  // namespace rwkv::kernels
