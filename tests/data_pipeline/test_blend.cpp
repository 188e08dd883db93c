// Blending: smooth weighted round-robin keeps every 10,000 consecutive choices
// within 2% of the target proportions; temperature proportions follow n^alpha.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "common/error.h"
#include "data_pipeline/blend.h"

namespace rwkv::data {

namespace {

// Largest |share - target| over all windows of `span` consecutive choices.
double worst_window_error(const std::vector<double>& target, size_t steps, size_t span) {
  const std::vector<int64_t> w = blend_integer_weights(target);
  std::vector<int64_t> credit(target.size(), 0);
  std::vector<size_t> picks;
  for (size_t i = 0; i < steps; ++i) picks.push_back(blend_next(w, credit));
  double worst = 0;
  std::vector<size_t> count(target.size(), 0);
  for (size_t i = 0; i < steps; ++i) {
    count[picks[i]] += 1;
    if (i >= span) count[picks[i - span]] -= 1;
    if (i + 1 >= span) {
      for (size_t g = 0; g < target.size(); ++g)
        worst = std::max(worst, std::abs(static_cast<double>(count[g]) / span - target[g]));
    }
  }
  return worst;
}

}  // namespace

TEST(Blend, EveryTenThousandWindowIsWithinTwoPercent) {
  for (const auto& target : std::vector<std::vector<double>>{{0.5, 0.3, 0.2},
                                                             {0.9, 0.05, 0.05},
                                                             {0.01, 0.01, 0.98},
                                                             {0.123, 0.456, 0.321, 0.1}}) {
    // The deterministic scheme is far inside the 2% bound (i.i.d. sampling is not).
    EXPECT_LT(worst_window_error(target, 40000, 10000), 0.001);
  }
}

TEST(Blend, UnnormalisedWeightsAreProportions) {
  const std::vector<int64_t> w = blend_integer_weights({2, 6});
  std::vector<int64_t> credit(2, 0);
  size_t second = 0;
  for (int i = 0; i < 1000; ++i) second += blend_next(w, credit);
  EXPECT_EQ(second, 750u);
}

TEST(Blend, TemperatureProportionsFollowPowerLaw) {
  const std::vector<double> p = temperature_proportions({100, 400, 0}, 0.5);
  // 100^0.5 = 10, 400^0.5 = 20: 1/3 and 2/3; an empty group gets nothing.
  EXPECT_NEAR(p[0], 1.0 / 3, 1e-12);
  EXPECT_NEAR(p[1], 2.0 / 3, 1e-12);
  EXPECT_EQ(p[2], 0.0);
  const std::vector<double> natural = temperature_proportions({1, 3}, 1.0);
  EXPECT_NEAR(natural[1], 0.75, 1e-12);
}

TEST(Blend, RejectsBadWeights) {
  EXPECT_THROW(blend_integer_weights({0, 0}), Error);
  EXPECT_THROW(blend_integer_weights({1, -1}), Error);
  EXPECT_THROW(blend_integer_weights({1, NAN}), Error);
}

}  // namespace rwkv::data
