#pragma once
// Runs block bodies written against kernels/cuda/block.h on the CPU: every thread of a
// block is a std::thread, __syncthreads() a std::barrier, the block's shared memory a
// struct of floats filled with NaN bytes (0xFF, as the GPU tests poison their outputs:
// a read before the write shows in the results); the blocks of a grid run one after the
// other (CUDA gives no order either). A body that relies on a barrier it does not call, reads
// shared memory another thread has not written yet, or indexes out of its arrays behaves here as it
// would on a GPU (wrong results or a sanitizer report), so the tests of such bodies
// check their indexing and barriers without a GPU. Warps are groups of 32 consecutive
// threads only for the tensor-core tiles (kernels/cuda/warp_tile.h: the warp's lane 0
// computes the tile); every lane reports its tile calls (HostBlock::warp_collective), and
// at every barrier the lanes of each warp must have made the same calls with the same
// arguments since the one before, in a warp of 32 threads: on a GPU a tile called under a
// lane-dependent branch or by a partial warp is undefined, here it aborts naming the warp
// and the lanes. A tile that reads an element an earlier tile of its warp wrote since the
// last barrier aborts too (on a GPU it needs a __syncwarp between). What it cannot check: the GPU's
// memory model beyond the barriers, and wmma's own behaviour (tests/kernels/test_cuda_warp_tile.cu
// does, on a GPU).
#include <algorithm>
#include <barrier>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <unordered_set>
#include <vector>

#include "kernels/cuda/block.h"

namespace rwkv::cuda::test {

constexpr int kEmulatedWarp = 32;

// The warp-collective calls of each thread of a block since its last barrier, and the
// elements each warp's tiles wrote since then; check() runs when all threads have arrived
// at the next one.
struct WarpCalls {
  std::vector<std::vector<WarpCall>> by_thread;
  std::vector<std::unordered_set<const float*>> written;  // by warp

  // A tile of the warp of thread `tid` (its computing lane) reads and writes these: none of
  // the reads may be an element an earlier tile of the warp wrote since the last barrier.
  void access(int tid, const std::vector<const float*>& reads,
              const std::vector<const float*>& writes) {
    auto& w = written[size_t(tid / kEmulatedWarp)];
    for (const float* r : reads)
      if (w.count(r)) {
        const int w0 = tid / kEmulatedWarp * kEmulatedWarp;
        fail(w0, std::min(kEmulatedWarp, int(by_thread.size()) - w0),
             "reads in a tile an element an earlier tile of the warp wrote, with no barrier "
             "between (the lanes' parts of a tile are not ordered without one)");
      }
    w.insert(writes.begin(), writes.end());
  }

  void check() noexcept {
    const int n = int(by_thread.size());
    for (int w0 = 0; w0 < n; w0 += kEmulatedWarp) {
      const int lanes = std::min(kEmulatedWarp, n - w0);
      bool any = false;
      for (int l = 0; l < lanes; ++l) any = any || !by_thread[size_t(w0 + l)].empty();
      if (!any) continue;
      char msg[256];
      if (lanes < kEmulatedWarp) {
        std::snprintf(msg, sizeof msg, "has %d threads: warp-collective calls need all 32 lanes",
                      lanes);
        fail(w0, lanes, msg);
      }
      const auto& first = by_thread[size_t(w0)];
      for (int l = 1; l < lanes; ++l) {
        const auto& mine = by_thread[size_t(w0 + l)];
        if (mine == first) continue;
        size_t i = 0;
        while (i < mine.size() && i < first.size() && mine[i] == first[i]) ++i;
        std::snprintf(msg, sizeof msg,
                      "made different warp-collective calls between two barriers: lane 0 made %zu, "
                      "lane %d %zu, the first difference at call %zu (%s)",
                      first.size(), l, mine.size(), i,
                      i < first.size() ? first[i].what : mine[i].what);
        fail(w0, lanes, msg);
      }
    }
    for (auto& calls : by_thread) calls.clear();
    for (auto& w : written) w.clear();
  }

  [[noreturn]] static void fail(int w0, int lanes, const char* msg) {
    std::fprintf(stderr, "block emulator: warp %d (threads %d..%d) %s\n", w0 / kEmulatedWarp, w0,
                 w0 + lanes - 1, msg);
    std::abort();
  }
};

// The completion of every barrier of an emulated block.
struct CheckWarps {
  WarpCalls* calls;
  void operator()() noexcept { calls->check(); }
};

struct HostBlock {
  int tid, nthreads;
  std::barrier<CheckWarps>* bar;
  WarpCalls* calls;
  int thread() const { return tid; }
  int threads() const { return nthreads; }
  void sync() const { bar->arrive_and_wait(); }
  void warp_collective(const WarpCall& c) const { calls->by_thread[size_t(tid)].push_back(c); }
  void warp_access(const std::vector<const float*>& reads,
                   const std::vector<const float*>& writes) const {
    calls->access(tid, reads, writes);
  }
};

// body(const HostBlock&, int block, Shared&) for every block of the grid, by one pool
// of `threads` threads that takes the blocks in turn (shared memory re-poisoned before
// each).
template <typename Shared, typename Body>
void run_grid(int blocks, int threads, Body&& body) {
  auto shared = std::make_unique<Shared>();
  WarpCalls calls{std::vector<std::vector<WarpCall>>(size_t(threads)),
                  std::vector<std::unordered_set<const float*>>(
                      size_t((threads + kEmulatedWarp - 1) / kEmulatedWarp))};
  std::barrier<CheckWarps> bar(threads, CheckWarps{&calls});
  const auto worker = [&](int t) {
    const HostBlock blk{t, threads, &bar, &calls};
    for (int block = 0; block < blocks; ++block) {
      if (t == 0) std::memset(static_cast<void*>(shared.get()), 0xFF, sizeof(Shared));
      bar.arrive_and_wait();
      body(blk, block, *shared);
      bar.arrive_and_wait();  // the block is done before its shared memory is poisoned
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(size_t(threads));
  for (int t = 0; t < threads; ++t) pool.emplace_back(worker, t);
  for (std::thread& th : pool) th.join();
}

}  // namespace rwkv::cuda::test
