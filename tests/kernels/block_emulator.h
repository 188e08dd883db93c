#pragma once
// Runs block bodies written against kernels/cuda/block.h on the CPU: every thread of a
// block is a std::thread, __syncthreads() a std::barrier, the block's shared memory a
// struct of floats filled with NaN bytes (0xFF, as the GPU tests poison their outputs:
// a read before the write shows in the results); the blocks of a grid run one after the
// other in a shuffled order (CUDA gives no order: a block that reads what another block of
// the same grid writes gets unwritten, NaN-poisoned or stale data in about half of such
// pairs, where in index order it would pass whenever the writer comes first). A body that relies on
// a barrier it does not call, reads shared memory another thread has not written yet, or indexes
// out of its arrays behaves here as it would on a GPU (wrong results or a sanitizer report), so the
// tests of such bodies check their indexing and barriers without a GPU.
//
// At every barrier the emulator also checks what a GPU leaves undefined, and aborts naming
// the threads and what they did:
//   - every thread of the block must be at the same barrier (the same line of the body):
//     a __syncthreads that some threads skip or return before;
//   - warps are groups of 32 consecutive threads for the tensor-core tiles
//     (kernels/cuda/warp_tile.h: the warp's lane 0 computes the tile); since the last
//     barrier the lanes of each warp must have made the same tile calls with the same
//     arguments (HostBlock::warp_collective), in a warp of 32 threads: not a tile under a
//     lane-dependent branch or in a partial warp;
//   - no tile may read an element an earlier tile of its warp wrote since the last barrier
//     (HostBlock::warp_access; on a GPU that needs a __syncwarp between).
// What it cannot check: the GPU's memory model beyond the barriers, and wmma's own
// behaviour (tests/kernels/test_cuda_warp_tile.cu does, on a GPU).
#include <algorithm>
#include <barrier>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <source_location>
#include <thread>
#include <unordered_set>
#include <vector>

#include "kernels/cuda/block.h"

namespace rwkv::cuda::test {

constexpr int kEmulatedWarp = 32;

// What the threads of a block did since its last barrier: where each is waiting now, the
// tile calls of each, the elements each warp's tiles wrote. check() runs when all threads
// have arrived at a barrier, then clears them.
struct BlockChecks {
  std::vector<std::source_location> at;                   // by thread
  std::vector<std::vector<WarpCall>> calls;               // by thread
  std::vector<std::unordered_set<const float*>> written;  // by warp

  explicit BlockChecks(int threads)
      : at(size_t(threads)),
        calls(size_t(threads)),
        written(size_t((threads + kEmulatedWarp - 1) / kEmulatedWarp)) {}

  int threads() const { return int(at.size()); }

  // A tile of the warp of thread `tid` (its computing lane) reads and writes these: none of
  // the reads may be an element an earlier tile of the warp wrote since the last barrier.
  void access(int tid, const std::vector<const float*>& reads,
              const std::vector<const float*>& writes) {
    auto& w = written[size_t(tid / kEmulatedWarp)];
    for (const float* r : reads)
      if (w.count(r))
        fail_warp(tid / kEmulatedWarp * kEmulatedWarp,
                  "reads in a tile an element an earlier tile of the warp wrote, with no "
                  "barrier between (the lanes' parts of a tile are not ordered without one)");
    w.insert(writes.begin(), writes.end());
  }

  void check() noexcept {
    for (int t = 1; t < threads(); ++t)
      if (at[size_t(t)].line() != at[0].line() ||
          std::strcmp(at[size_t(t)].file_name(), at[0].file_name()) != 0) {
        std::fprintf(stderr,
                     "block emulator: the threads of a block are at different barriers: thread "
                     "0 at %s:%u, thread %d at %s:%u (a barrier that not every thread of the "
                     "block reaches)\n",
                     at[0].file_name(), unsigned(at[0].line()), t, at[size_t(t)].file_name(),
                     unsigned(at[size_t(t)].line()));
        std::abort();
      }
    for (int w0 = 0; w0 < threads(); w0 += kEmulatedWarp) check_warp(w0);
    for (auto& c : calls) c.clear();
    for (auto& w : written) w.clear();
  }

  void check_warp(int w0) const {
    const int lanes = std::min(kEmulatedWarp, threads() - w0);
    bool any = false;
    for (int l = 0; l < lanes; ++l) any = any || !calls[size_t(w0 + l)].empty();
    if (!any) return;
    char msg[256];
    if (lanes < kEmulatedWarp) {
      std::snprintf(msg, sizeof msg, "has %d threads: warp-collective calls need all 32 lanes",
                    lanes);
      fail_warp(w0, msg);
    }
    const auto& first = calls[size_t(w0)];
    for (int l = 1; l < lanes; ++l) {
      const auto& mine = calls[size_t(w0 + l)];
      if (mine == first) continue;
      size_t i = 0;
      while (i < mine.size() && i < first.size() && mine[i] == first[i]) ++i;
      std::snprintf(msg, sizeof msg,
                    "made different warp-collective calls between two barriers: lane 0 made "
                    "%zu, lane %d %zu, the first difference at call %zu (%s)",
                    first.size(), l, mine.size(), i,
                    i < first.size() ? first[i].what : mine[i].what);
      fail_warp(w0, msg);
    }
  }

  [[noreturn]] void fail_warp(int w0, const char* msg) const {
    const int last = std::min(w0 + kEmulatedWarp, threads()) - 1;
    std::fprintf(stderr, "block emulator: warp %d (threads %d..%d) %s\n", w0 / kEmulatedWarp, w0,
                 last, msg);
    std::abort();
  }
};

// The completion of every barrier of an emulated block.
struct CheckAtBarrier {
  BlockChecks* checks;
  void operator()() noexcept { checks->check(); }
};

struct HostBlock {
  int tid, nthreads;
  std::barrier<CheckAtBarrier>* bar;
  BlockChecks* checks;
  int thread() const { return tid; }
  int threads() const { return nthreads; }
  // The caller's line is where this thread waits (the default argument is evaluated there).
  void sync(std::source_location loc = std::source_location::current()) const {
    checks->at[size_t(tid)] = loc;
    bar->arrive_and_wait();
  }
  void warp_collective(const WarpCall& c) const { checks->calls[size_t(tid)].push_back(c); }
  void warp_access(const std::vector<const float*>& reads,
                   const std::vector<const float*>& writes) const {
    checks->access(tid, reads, writes);
  }
};

// body(const HostBlock&, int block, Shared&) for every block of the grid, by one pool
// of `threads` threads that takes the blocks in turn, in an order shuffled by a generator
// seeded with the block count (the same order every run; shared memory re-poisoned before
// each block).
template <typename Shared, typename Body>
void run_grid(int blocks, int threads, Body&& body) {
  std::vector<int> order(size_t(std::max(blocks, 0)));
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937(unsigned(blocks)));
  auto shared = std::make_unique<Shared>();
  BlockChecks checks(threads);
  std::barrier<CheckAtBarrier> bar(threads, CheckAtBarrier{&checks});
  const auto worker = [&](int t) {
    const HostBlock blk{t, threads, &bar, &checks};
    for (int block : order) {
      if (t == 0) std::memset(static_cast<void*>(shared.get()), 0xFF, sizeof(Shared));
      blk.sync();
      body(blk, block, *shared);
      blk.sync();  // the block is done before its shared memory is poisoned
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(size_t(threads));
  for (int t = 0; t < threads; ++t) pool.emplace_back(worker, t);
  for (std::thread& th : pool) th.join();
}

}  // namespace rwkv::cuda::test
