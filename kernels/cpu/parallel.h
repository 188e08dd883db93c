#pragma once
// Fork-join parallelism of the CPU backend: [0, n) is cut into up to `threads`
// contiguous parts of at least min_part items; part 0 runs on the calling thread, the
// others on helper threads that persist between calls and wait for the next one polling
// for 50 us, then asleep. A fresh std::thread per part cost ~50 us (and cold caches) on
// each of the hundreds of calls of a training step; a call to the waiting helpers costs a
// few us (docs/performance.md). A part's bounds depend only on (n, parts), so the results
// are the same bits whichever thread runs it. Called inside a part (nested), or while
// another thread's call runs, the parts run one after the other on the calling thread.
// fn(begin, end, part) must not throw (the helpers would be left running: std::terminate).
#include <sched.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

namespace rwkv::kernels {

// The CPUs this process may run on (sched_getaffinity: taskset, cgroups, MPI binding);
// where that cannot be read, CPUs 0 .. hardware_concurrency - 1.
cpu_set_t process_cpus();

namespace detail {
using PartFn = void (*)(void* ctx, int64_t begin, int64_t end, int64_t part);
// Runs fn(ctx, n p / parts, n (p + 1) / parts, p) for p in [0, parts): part 0 on the
// calling thread, the others on the pool's helper threads (kernels/cpu/parallel.cpp).
void run_parts(int64_t parts, int64_t n, PartFn fn, void* ctx) noexcept;
}  // namespace detail

template <typename Fn>
void parallel_for(int threads, int64_t n, int64_t min_part, Fn&& fn) {
  const int64_t parts = std::clamp<int64_t>(n / std::max<int64_t>(min_part, 1), 1, threads);
  if (parts <= 1) {
    fn(int64_t{0}, n, int64_t{0});
    return;
  }
  using Callable = std::remove_reference_t<Fn>;
  detail::run_parts(
      parts, n,
      [](void* ctx, int64_t b, int64_t e, int64_t p) { (*static_cast<Callable*>(ctx))(b, e, p); },
      const_cast<void*>(static_cast<const void*>(std::addressof(fn))));
}

// As parallel_for, for ops that also sum into small per-channel outputs (parameter
// gradients, each [size]; null = not wanted): part 0 adds into them directly, the
// other parts into zeroed private copies that are added in afterwards.
// fn(begin, end, reds_of_this_part).
template <typename F, size_t K, typename Fn>
void parallel_for_reduce(int threads, int64_t n, int64_t min_part, std::array<F*, K> reds,
                         int64_t size, Fn&& fn) {
  const int64_t parts = std::clamp<int64_t>(n / std::max<int64_t>(min_part, 1), 1, threads);
  std::vector<F> priv(static_cast<size_t>((parts - 1) * static_cast<int64_t>(K) * size), F(0));
  auto reds_of = [&](int64_t p) {
    if (p == 0) return reds;
    std::array<F*, K> r{};
    for (size_t k = 0; k < K; ++k)
      r[k] = reds[k] ? priv.data() +
                           ((p - 1) * static_cast<int64_t>(K) + static_cast<int64_t>(k)) * size
                     : nullptr;
    return r;
  };
  parallel_for(threads, n, min_part,
               [&](int64_t b, int64_t e, int64_t p) { fn(b, e, reds_of(p)); });
  for (int64_t p = 1; p < parts; ++p) {
    const std::array<F*, K> r = reds_of(p);
    for (size_t k = 0; k < K; ++k)
      if (reds[k])
        for (int64_t i = 0; i < size; ++i) reds[k][i] += r[k][i];
  }
}

}  // namespace rwkv::kernels
