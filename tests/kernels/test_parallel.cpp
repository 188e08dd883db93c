// The CPU backend's fork-join helpers: every index is covered exactly once, and the
// reductions equal the serial sum.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace rwkv::kernels {
namespace {

TEST(Parallel, CoversEveryIndexOnce) {
  for (int threads : {1, 2, 3, 8})
    for (int64_t n : {0, 1, 5, 64, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      parallel_for(threads, n, 2, [&](int64_t b, int64_t e, int64_t) {
        for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
      });
      for (auto& h : hits) EXPECT_EQ(h.load(), 1) << threads << " threads, n " << n;
    }
}

TEST(Parallel, ReduceMatchesSerialSum) {
  const int64_t n = 1000, C = 3;
  std::array<double, C> a{1, 2, 3}, b{0, 0, 0};
  parallel_for_reduce(4, n, 10, std::array<double*, 2>{a.data(), b.data()}, C,
                      [&](int64_t lo, int64_t hi, std::array<double*, 2> r) {
                        for (int64_t i = lo; i < hi; ++i)
                          for (int64_t c = 0; c < C; ++c) {
                            r[0][c] += static_cast<double>(i);
                            r[1][c] += 1.0;
                          }
                      });
  for (int64_t c = 0; c < C; ++c) {
    EXPECT_EQ(a[static_cast<size_t>(c)], static_cast<double>(c + 1) + n * (n - 1) / 2.0);
    EXPECT_EQ(b[static_cast<size_t>(c)], static_cast<double>(n));
  }
}

}  // namespace
}  // namespace rwkv::kernels
