// AdamW: two steps against the update written out by hand, per-segment lr and
// weight-decay multipliers, float and double.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/cpu/adamw.h"

namespace rwkv::kernels {
namespace {

template <typename F>
void check_adamw(double tol) {
  std::vector<F> p{1.0, -2.0, 0.5, 3.0}, m(4, 0), v(4, 0);
  const std::vector<F> g1{0.1, -0.2, 0.3, 0.0}, g2{-0.05, 0.4, 0.3, 1.0};
  const std::vector<AdamWSegment> segs{{0, 2, 1.0, 1.0}, {2, 2, 2.0, 0.0}};
  const AdamWHyper h{1e-2, 0.9, 0.99, 1e-8, 0.1};
  std::vector<double> pr{1.0, -2.0, 0.5, 3.0}, mr(4, 0), vr(4, 0);
  for (int t = 1; t <= 2; ++t) {
    const auto& g = t == 1 ? g1 : g2;
    adamw_step(p.data(), g.data(), m.data(), v.data(), segs, h, t);
    for (int i = 0; i < 4; ++i) {
      const double lr = h.lr * (i < 2 ? 1.0 : 2.0), wd = h.weight_decay * (i < 2 ? 1.0 : 0.0);
      mr[i] = 0.9 * mr[i] + 0.1 * g[i];
      vr[i] = 0.99 * vr[i] + 0.01 * double(g[i]) * g[i];
      const double mh = mr[i] / (1 - std::pow(0.9, t)), vh = vr[i] / (1 - std::pow(0.99, t));
      pr[i] -= lr * (mh / (std::sqrt(vh) + 1e-8) + wd * pr[i]);
    }
  }
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(p[i], pr[i], tol) << i;
}

TEST(AdamW, Double) { check_adamw<double>(1e-14); }
TEST(AdamW, Float) { check_adamw<float>(1e-6); }

}  // namespace
}  // namespace rwkv::kernels
