#pragma once
// ThreadSanitizer's view of the emulated GPU's threads, for emulated_cuda.cpp (which is
// never instrumented itself). With RWKV_EMULATED_RACES the kernels and their tests are
// compiled with -fsanitize=thread and every emulated thread index of a block is a TSan
// fiber; what orders the threads' memory accesses is told to TSan as the CUDA memory model
// has it, and nothing else, so that TSan reports two threads of a block touching one
// element, one of them writing, with no barrier between them, whatever order the fibers
// happened to run in:
//   - __syncthreads() orders the block's threads, __syncwarp() the warp's lanes: each
//     thread releases the barrier's sync object when it arrives and acquires it when the
//     barrier opens (two objects per barrier, alternating, so that a thread already past
//     the barrier cannot hand its later writes to one still leaving it);
//   - a shuffle exchanges values, not memory (CUDA's __shfl_sync implies no memory
//     ordering), so it adds no order;
//   - the host's work before a launch comes before the launch's threads, their work before
//     what the host does after it; the blocks of a grid are ordered one after the other
//     (they run so, and their `__shared__` variables, function statics here, are one
//     memory for all of them): races between two blocks are not reported.
// A barrier costs TSan O(threads x all threads it has seen) (vector clocks): a 1024-thread
// block's is ~2 ms. So races are looked for in two blocks of each grid, the first and the
// last by index (a grid's inside and its edge, where partial tiles and rows are); the
// other blocks run with TSan ignoring their threads' accesses.
// Without RWKV_EMULATED_RACES every function here is empty.
#include <cstdint>

#if defined(RWKV_EMULATED_RACES)
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <vector>

// TSan's dynamic annotations (not in its public header): the calling thread's (fiber's)
// accesses are ignored between Begin and End.
extern "C" void AnnotateIgnoreReadsBegin(const char* file, int line);
extern "C" void AnnotateIgnoreReadsEnd(const char* file, int line);
extern "C" void AnnotateIgnoreWritesBegin(const char* file, int line);
extern "C" void AnnotateIgnoreWritesEnd(const char* file, int line);
#endif

namespace rwkv::emu::races {

#if defined(RWKV_EMULATED_RACES)

namespace detail {
constexpr int kScopes = 1 + 32;  // the block, then each of its (at most 32) warps
inline char block_begin, block_end;
inline char barriers[kScopes][2];
inline void* host = nullptr;
inline std::vector<void*> fibers;  // by linear thread index, kept from block to block
inline bool tracked = false;       // whether the block running is looked at
}  // namespace detail

// Whether block `b` of a grid of `blocks` (linear indices) is looked at.
inline bool tracks(int64_t b, int64_t blocks) { return b == 0 || b == blocks - 1; }

// The host's side of a launch: it runs the grid.
inline void grid_begin() { detail::host = __tsan_get_current_fiber(); }
inline void block_begin(bool tracked) {
  detail::tracked = tracked;
  __tsan_release(&detail::block_begin);
}
inline void block_end() { __tsan_acquire(&detail::block_end); }

// Just before a switch to thread t (linear index) of the block.
inline void enter(int t) {
  // A TSan fiber costs ~0.4 ms to make: one per thread index, for the whole process.
  while (detail::fibers.size() <= size_t(t)) detail::fibers.push_back(__tsan_create_fiber(0));
  __tsan_switch_to_fiber(detail::fibers[size_t(t)], __tsan_switch_to_fiber_no_sync);
}
// Just before a thread switches back to the host.
inline void leave() { __tsan_switch_to_fiber(detail::host, __tsan_switch_to_fiber_no_sync); }

// The first and last steps of thread t of the block at (bx, by, bz), named so in reports.
inline void thread_begin(int t, unsigned bx, unsigned by, unsigned bz) {
  if (detail::tracked) {
    char name[64];
    std::snprintf(name, sizeof name, "block (%u, %u, %u), thread %d", bx, by, bz, t);
    __tsan_set_fiber_name(__tsan_get_current_fiber(), name);
    __tsan_acquire(&detail::block_begin);
  } else {
    AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
    AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
  }
}
inline void thread_end() {
  if (detail::tracked) {
    __tsan_release(&detail::block_end);
  } else {
    AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
    AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
  }
}

// A thread arriving at the barrier of `scope` (0: __syncthreads; 1 + w: warp w's
// __syncwarp) that has opened `opened` times before: what it passes to depart() when the
// barrier opens.
inline void* arrive(int scope, unsigned opened) {
  if (!detail::tracked) return nullptr;
  void* sync = &detail::barriers[scope][opened % 2];
  __tsan_release(sync);
  return sync;
}
inline void depart(void* sync) {
  if (sync) __tsan_acquire(sync);
}

#else

inline bool tracks(int64_t, int64_t) { return false; }
inline void grid_begin() {}
inline void block_begin(bool) {}
inline void block_end() {}
inline void enter(int) {}
inline void leave() {}
inline void thread_begin(int, unsigned, unsigned, unsigned) {}
inline void thread_end() {}
inline void* arrive(int, unsigned) { return nullptr; }
inline void depart(void*) {}

#endif

}  // namespace rwkv::emu::races
