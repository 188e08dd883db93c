#pragma once
// The bookkeeping of the CUDA backend's device memory arena (the issue: "device memory
// comes from one arena allocated at start; no cudaMalloc in the training loop").
// CudaBackend (kernels/cuda/backend_cuda.h) makes one cudaMalloc of `capacity` bytes
// and hands out offsets from this allocator; the allocator itself is host-only and
// knows nothing of CUDA, so that tests/kernels/test_arena.cpp checks it on the CPU.
//
// Blocks start at multiples of kArenaAlign bytes (as cudaMalloc's, enough for any
// vector load); a request is rounded up to a multiple of it. Best fit over the free
// blocks (the smallest that fits, the lowest offset on ties); a freed block merges with
// free neighbours, so the free blocks are always the maximal free runs.
#include <cstddef>
#include <map>
#include <string>

#include "common/error.h"

namespace rwkv::cuda {

constexpr size_t kArenaAlign = 256;

// No free block fits a request: the out-of-memory error, apart from the other errors
// (a bad free), so that a caller may try a smaller batch (bench/cuda/bench_cuda_train.cu).
struct ArenaFull : Error {
  using Error::Error;
};

struct Arena {
  // capacity is rounded down to a multiple of kArenaAlign.
  explicit Arena(size_t capacity);

  // The offset of a new block of at least `bytes` (0 counts as 1). Throws ArenaFull
  // naming the request, the arena's size, the bytes in use and the largest free block
  // when no free block fits, then what to do about it (`advice`).
  size_t alloc(size_t bytes);
  // Returns the block at `offset` to the arena. Throws rwkv::Error for an offset that
  // is not the start of a block in use.
  void free(size_t offset);
  // The size (rounded up) of the block in use at `offset`; throws like free().
  size_t block_size(size_t offset) const;

  size_t capacity() const { return capacity_; }
  size_t used() const { return used_bytes_; }
  size_t largest_free() const;

  // The end of the out-of-memory error: what the arena's owner can do about it (the
  // trainer names its keys: train.micro_batch_size, train.recompute, train.gpu_memory).
  std::string advice = "give the backend a larger arena";

 private:
  size_t capacity_;
  size_t used_bytes_ = 0;
  std::map<size_t, size_t> free_;   // offset -> size of each free block
  std::map<size_t, size_t> inuse_;  // offset -> size of each block in use
};

}  // namespace rwkv::cuda
