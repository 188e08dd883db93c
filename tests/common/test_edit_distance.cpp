#include <gtest/gtest.h>

#include "common/edit_distance.h"

using rwkv::closest_match;
using rwkv::edit_distance;

TEST(EditDistance, ClassicCases) {
  EXPECT_EQ(edit_distance("", ""), 0u);
  EXPECT_EQ(edit_distance("abc", ""), 3u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("n_embed", "n_embd"), 1u);
  EXPECT_EQ(edit_distance("flaw", "lawn"), 2u);
}

TEST(EditDistance, ClosestMatchPicksNearestWithinLimit) {
  const std::vector<std::string> keys = {"n_layer", "n_embd", "head_size"};
  EXPECT_EQ(closest_match("n_embed", keys), "n_embd");
  EXPECT_EQ(closest_match("nlayer", keys), "n_layer");
  EXPECT_EQ(closest_match("completely_different", keys), "");
}
