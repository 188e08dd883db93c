// The CPU backend's fork-join helpers: every index is covered exactly once (nested,
// repeated and concurrent calls too), and the reductions equal the serial sum.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <thread>
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

// A call inside a part runs its parts on the calling thread: all of them, each once,
// with the bounds a top-level call would give them.
TEST(Parallel, NestedCallsCoverEveryIndexOnce) {
  const int64_t outer = 4, inner = 37;
  std::vector<std::atomic<int>> hits(static_cast<size_t>(outer * inner));
  std::vector<std::atomic<int64_t>> bounds(static_cast<size_t>(outer * 3));
  parallel_for(2, outer, 1, [&](int64_t b, int64_t e, int64_t) {
    for (int64_t o = b; o < e; ++o)
      parallel_for(3, inner, 1, [&](int64_t ib, int64_t ie, int64_t p) {
        bounds[static_cast<size_t>(o * 3 + p)] = ib;
        for (int64_t i = ib; i < ie; ++i) hits[static_cast<size_t>(o * inner + i)]++;
      });
  });
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t p = 0; p < 3; ++p)
      EXPECT_EQ(bounds[static_cast<size_t>(o * 3 + p)], inner * p / 3);
}

// The helpers persist between calls: thousands of calls of 2 to 4 parts, with pauses in
// which the helpers go to sleep, and two host threads calling at the same time (one of
// them runs its parts itself), each cover every index once per call. Also built with
// ThreadSanitizer (test_parallel_tsan).
TEST(Parallel, RepeatedAndConcurrentCalls) {
  const int64_t n = 1000;
  std::vector<int> a(n), c(n), d(n);
  for (int it = 0; it < 3000; ++it) {
    parallel_for(2 + it % 3, n, 1, [&](int64_t b, int64_t e, int64_t) {
      for (int64_t i = b; i < e; ++i) a[static_cast<size_t>(i)] += 1;
    });
    if (it % 500 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  auto calls = [n](std::vector<int>& x, int threads) {
    for (int it = 0; it < 500; ++it)
      parallel_for(threads, n, 1, [&](int64_t b, int64_t e, int64_t) {
        for (int64_t i = b; i < e; ++i) x[static_cast<size_t>(i)] += 1;
      });
  };
  std::thread other([&] { calls(c, 2); });
  calls(d, 3);
  other.join();
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(a[static_cast<size_t>(i)], 3000);
    EXPECT_EQ(c[static_cast<size_t>(i)], 500);
    EXPECT_EQ(d[static_cast<size_t>(i)], 500);
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
