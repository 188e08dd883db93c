#include "kernels/cpu/parallel.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

namespace rwkv::kernels {

cpu_set_t process_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) return set;
  CPU_ZERO(&set);
  const int cpus = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  for (int c = 0; c < std::min(cpus, CPU_SETSIZE); ++c) CPU_SET(c, &set);
  return set;
}

namespace detail {
namespace {

// Part p of [0, n) in `parts` parts.
void run_part(PartFn fn, void* ctx, int64_t parts, int64_t n, int64_t p) {
  fn(ctx, n * p / parts, n * (p + 1) / parts, p);
}

// How long a waiting thread polls before it sleeps (a futex, through std::atomic::wait):
// long enough to catch the next op of a training step (the model's host code between two
// ops takes microseconds), short enough that MPI ranks sharing CPUs lose little to idle
// polling threads (OpenMP's default of ~300,000 polls halved a 2-rank x 2-thread run on
// 2 CPUs; docs/performance.md).
constexpr auto kPoll = std::chrono::microseconds(50);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Waits until a != old and returns the new value: polls for kPoll, then sleeps.
uint32_t wait_change(const std::atomic<uint32_t>& a, uint32_t old) {
  const auto until = std::chrono::steady_clock::now() + kPoll;
  for (int i = 1;; ++i) {
    const uint32_t v = a.load(std::memory_order_acquire);
    if (v != old) return v;
    if (i % 64 == 0 && std::chrono::steady_clock::now() > until) break;
    cpu_relax();
  }
  for (;;) {
    a.wait(old, std::memory_order_acquire);
    const uint32_t v = a.load(std::memory_order_acquire);
    if (v != old) return v;
  }
}

// The helper threads of the process, started on first use and kept (grown to the
// largest part count asked). Helper i runs part i + 1 of a call; the caller runs part 0.
// Each helper has its own mailbox: a call wakes only the helpers it has parts for.
struct Pool {
  struct alignas(64) Mailbox {
    std::atomic<uint32_t> gen{0};  // bumped once per call that has a part for the helper
  };
  // The current call, written before the mailboxes are bumped, read by its helpers, and
  // not written again until all of them have counted down `pending`.
  PartFn fn = nullptr;
  void* ctx = nullptr;
  int64_t parts = 0, n = 0;
  alignas(64) std::atomic<uint32_t> pending{0};
  std::atomic<bool> busy{false};
  std::vector<std::unique_ptr<Mailbox>> boxes;

  void helper(int i, const Mailbox* box) {
    uint32_t seen = 0;
    for (;;) {
      seen = wait_change(box->gen, seen);
      run_part(fn, ctx, parts, n, i + 1);
      if (pending.fetch_sub(1, std::memory_order_acq_rel) == 1) pending.notify_one();
    }
  }
};

Pool* g_pool = nullptr;

Pool& pool() {
  static const bool once = [] {
    g_pool = new Pool;  // lives as long as the process (its helpers never exit)
    // A forked child has none of the helpers: it starts its own.
    pthread_atfork(nullptr, nullptr, [] { g_pool = new Pool; });
    return true;
  }();
  (void)once;
  return *g_pool;
}

void run_serial(int64_t parts, int64_t n, PartFn fn, void* ctx) {
  for (int64_t p = 0; p < parts; ++p) run_part(fn, ctx, parts, n, p);
}

}  // namespace

void run_parts(int64_t parts, int64_t n, PartFn fn, void* ctx) noexcept {
  Pool& P = pool();
  // Nested inside a part, or a second caller at the same time: its parts run here.
  if (P.busy.exchange(true, std::memory_order_acquire)) {
    run_serial(parts, n, fn, ctx);
    return;
  }
  while (static_cast<int64_t>(P.boxes.size()) < parts - 1) {
    // The helper gets its box, never the vector (which the next push_back may move).
    P.boxes.push_back(std::make_unique<Pool::Mailbox>());
    std::thread(&Pool::helper, &P, static_cast<int>(P.boxes.size()) - 1, P.boxes.back().get())
        .detach();
  }
  P.fn = fn;
  P.ctx = ctx;
  P.parts = parts;
  P.n = n;
  P.pending.store(static_cast<uint32_t>(parts - 1), std::memory_order_relaxed);
  for (int64_t i = 0; i < parts - 1; ++i) {
    Pool::Mailbox& box = *P.boxes[static_cast<size_t>(i)];
    box.gen.fetch_add(1, std::memory_order_release);  // a new value for this helper
    box.gen.notify_one();
  }
  run_part(fn, ctx, parts, n, 0);
  for (uint32_t left = P.pending.load(std::memory_order_acquire); left != 0;)
    left = wait_change(P.pending, left);
  P.busy.store(false, std::memory_order_release);
}

}  // namespace detail
}  // namespace rwkv::kernels
