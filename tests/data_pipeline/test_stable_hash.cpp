// The content hash and the validation split it drives are part of the data
// format: pinned values, and the split fraction on many documents.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "data_pipeline/stable_hash.h"

namespace rwkv::data {

TEST(StableHash, PinnedValues) {
  EXPECT_EQ(content_hash64(""), 0x2cb0f69f4abea221ull);
  EXPECT_EQ(content_hash64("abc"), 0x534336681e009987ull);
  EXPECT_EQ(content_hash64("hello world, this is longer"), 0x658e42f3001b5006ull);
}

TEST(StableHash, EveryByteAndTheLengthMatter) {
  const std::string base = "0123456789abcdefXYZ";
  for (size_t i = 0; i < base.size(); ++i) {
    std::string s = base;
    s[i] ^= 1;
    EXPECT_NE(content_hash64(s), content_hash64(base)) << "byte " << i;
  }
  EXPECT_NE(content_hash64(std::string("a\0", 2)), content_hash64("a"));
}

TEST(StableHash, ValidationFractionIsRespected) {
  std::mt19937_64 rng(7);
  const int n = 100000;
  int val = 0;
  for (int i = 0; i < n; ++i) val += is_validation_doc("doc " + std::to_string(rng()), 0.05);
  // Binomial(100000, 0.05): sd = 69; allow 6 sd.
  EXPECT_NEAR(val, 5000, 415);
  EXPECT_FALSE(is_validation_doc("anything", 0.0));
  EXPECT_TRUE(is_validation_doc("anything", 1.0));
}

}  // namespace rwkv::data
