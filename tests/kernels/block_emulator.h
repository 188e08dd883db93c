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
// computes the tile). What it cannot check: the GPU's memory model beyond the barriers,
// and wmma's own behaviour (tests/kernels/test_cuda_warp_tile.cu does, on a GPU).
#include <barrier>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

namespace rwkv::cuda::test {

struct HostBlock {
  int tid, nthreads;
  std::barrier<>* bar;
  int thread() const { return tid; }
  int threads() const { return nthreads; }
  void sync() const { bar->arrive_and_wait(); }
};

// body(const HostBlock&, int block, Shared&) for every block of the grid, by one pool
// of `threads` threads that takes the blocks in turn (shared memory re-poisoned before
// each).
template <typename Shared, typename Body>
void run_grid(int blocks, int threads, Body&& body) {
  auto shared = std::make_unique<Shared>();
  std::barrier<> bar(threads);
  const auto worker = [&](int t) {
    const HostBlock blk{t, threads, &bar};
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
