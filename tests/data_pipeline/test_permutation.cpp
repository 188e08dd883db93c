// The window order: a bijection of [0, n) for every n, keyed, stable.
#include <gtest/gtest.h>

#include <vector>

#include "data_pipeline/permutation.h"

namespace rwkv::data {

TEST(Permutation, IsABijectionForEveryDomainSize) {
  for (const uint64_t n : {1ull, 2ull, 3ull, 4ull, 5ull, 15ull, 16ull, 17ull, 100ull, 1000ull, 4097ull, 65537ull}) {
    for (const uint64_t key : {0ull, 1ull, 0xdeadbeefull}) {
      const Permutation p(n, key);
      std::vector<char> seen(n, 0);
      for (uint64_t i = 0; i < n; ++i) {
        const uint64_t v = p(i);
        ASSERT_LT(v, n) << "n=" << n;
        ASSERT_FALSE(seen[v]) << "n=" << n << " key=" << key << " value " << v << " twice";
        seen[v] = 1;
      }
    }
  }
}

TEST(Permutation, DependsOnTheKeyAndShuffles) {
  const uint64_t n = 10000;
  const Permutation a(n, 1), b(n, 2);
  uint64_t same = 0, fixed = 0;
  for (uint64_t i = 0; i < n; ++i) {
    same += a(i) == b(i);
    fixed += a(i) == i;
  }
  // A random permutation agrees with another (or with identity) in ~1 place.
  EXPECT_LT(same, 20u);
  EXPECT_LT(fixed, 20u);
}

// The order is part of the data format (a resumed run on another machine must
// see the same windows): pin a few values.
TEST(Permutation, ValuesAreStable) {
  const Permutation p(1000, 42);
  std::vector<uint64_t> got;
  for (uint64_t i = 0; i < 5; ++i) got.push_back(p(i));
  const Permutation q(1000, 42);
  for (uint64_t i = 0; i < 5; ++i) EXPECT_EQ(q(i), got[i]);
  EXPECT_EQ(got, (std::vector<uint64_t>{55, 91, 674, 392, 460}));
}

}  // namespace rwkv::data
