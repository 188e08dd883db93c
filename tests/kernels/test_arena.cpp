// The CUDA backend's memory arena (kernels/cuda/arena.h), host bookkeeping only: random
// alloc / free sequences against a reference that marks every 256-byte unit in use,
// fragmentation and coalescing, and the errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/cuda/arena.h"

namespace rwkv::cuda {
namespace {

constexpr size_t kUnit = kArenaAlign;

// The reference: one flag per unit. With free neighbours always merged, the arena's
// largest free block is the longest run of free units, and a request fits exactly when
// such a run is long enough.
struct Units {
  std::vector<bool> used;
  size_t longest_free_run() const {
    size_t best = 0, run = 0;
    for (bool u : used) {
      run = u ? 0 : run + 1;
      best = std::max(best, run);
    }
    return best;
  }
  void mark(size_t offset, size_t bytes, bool value) {
    for (size_t i = offset / kUnit; i < (offset + bytes) / kUnit; ++i) {
      ASSERT_NE(used[i], value) << "unit " << i << (value ? " handed out twice" : " freed twice");
      used[i] = value;
    }
  }
};

TEST(Arena, RandomSequencesMatchTheReference) {
  for (unsigned seed : {1u, 2u, 3u}) {
    std::mt19937 rng(seed);
    const size_t units = 200;
    Arena arena(units * kUnit + 100);  // the odd 100 bytes are cut off
    ASSERT_EQ(arena.capacity(), units * kUnit);
    Units ref{std::vector<bool>(units, false)};
    struct Block {
      size_t offset, bytes;
    };
    std::vector<Block> live;
    for (int step = 0; step < 3000; ++step) {
      if (live.empty() || rng() % 5 < 3) {
        const size_t bytes = rng() % (12 * kUnit);  // 0 .. 12 units, mostly not multiples
        const size_t need = std::max<size_t>(1, (bytes + kUnit - 1) / kUnit);
        if (need > ref.longest_free_run()) {
          EXPECT_THROW(arena.alloc(bytes), ArenaFull) << "seed " << seed << " step " << step;
          continue;
        }
        const size_t offset = arena.alloc(bytes);
        ASSERT_EQ(offset % kUnit, 0u);
        ASSERT_LE(offset + need * kUnit, arena.capacity());
        ASSERT_EQ(arena.block_size(offset), need * kUnit);
        ref.mark(offset, need * kUnit, true);
        live.push_back({offset, need * kUnit});
      } else {
        const size_t i = rng() % live.size();
        arena.free(live[i].offset);
        ref.mark(live[i].offset, live[i].bytes, false);
        live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
      }
      size_t in_use = 0;
      for (const Block& b : live) in_use += b.bytes;
      ASSERT_EQ(arena.used(), in_use) << "seed " << seed << " step " << step;
      ASSERT_EQ(arena.largest_free(), ref.longest_free_run() * kUnit)
          << "seed " << seed << " step " << step;
    }
    for (const Block& b : live) arena.free(b.offset);
    EXPECT_EQ(arena.used(), 0u);
    EXPECT_EQ(arena.largest_free(), arena.capacity());  // everything merged back
  }
}

TEST(Arena, BestFitAndCoalescing) {
  Arena arena(10 * kUnit);
  const size_t a = arena.alloc(kUnit), b = arena.alloc(2 * kUnit), c = arena.alloc(kUnit),
               d = arena.alloc(3 * kUnit), e = arena.alloc(kUnit);
  EXPECT_EQ(arena.largest_free(), 2 * kUnit);  // the tail
  arena.free(b);                                // a hole of 2 units
  arena.free(d);                                // a hole of 3 units
  arena.free(a);                                // a + b: holes of 3, 3 (d) and 2 (the tail)
  // Best fit: a 2-unit request takes the 2-unit tail, not the first hole that fits.
  EXPECT_EQ(arena.alloc(2 * kUnit), 8 * kUnit);
  // Freeing c joins a + b, c and d into one block of 7 units.
  arena.free(c);
  EXPECT_EQ(arena.largest_free(), 7 * kUnit);
  EXPECT_EQ(arena.alloc(7 * kUnit), 0u);
  arena.free(e);
  EXPECT_EQ(arena.largest_free(), kUnit);
}

TEST(Arena, FragmentationErrorNamesTheSizes) {
  Arena arena(8 * kUnit);
  std::vector<size_t> blocks;
  for (int i = 0; i < 8; ++i) blocks.push_back(arena.alloc(kUnit));
  for (int i = 0; i < 8; i += 2) arena.free(blocks[static_cast<size_t>(i)]);
  EXPECT_EQ(arena.used(), 4 * kUnit);
  try {
    arena.alloc(2 * kUnit);  // 4 units free, but no two together
    FAIL() << "expected ArenaFull";
  } catch (const ArenaFull& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("cannot allocate 512 bytes"), std::string::npos) << msg;
    EXPECT_NE(msg.find("arena 2048 bytes"), std::string::npos) << msg;
    EXPECT_NE(msg.find("1024 in use"), std::string::npos) << msg;
    EXPECT_NE(msg.find("largest free block 256 bytes"), std::string::npos) << msg;
    EXPECT_NE(msg.find("; give the backend a larger arena"), std::string::npos) << msg;
  }
  arena.advice = "lower train.micro_batch_size";  // the trainer's (trainer/train_device_cuda.cpp)
  try {
    arena.alloc(2 * kUnit);
    FAIL() << "expected ArenaFull";
  } catch (const ArenaFull& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("largest free block 256 bytes); lower train.micro_batch_size"),
              std::string::npos)
        << msg;
  }
}

TEST(Arena, BadFreeThrows) {
  Arena arena(4 * kUnit);
  const size_t a = arena.alloc(10);
  EXPECT_THROW(arena.free(a + kUnit), Error);  // not a block
  EXPECT_THROW(arena.block_size(a + 1), Error);
  arena.free(a);
  EXPECT_THROW(arena.free(a), Error);  // already free
  Arena empty(100);                    // less than one unit
  EXPECT_EQ(empty.capacity(), 0u);
  EXPECT_THROW(empty.alloc(1), ArenaFull);
}

}  // namespace
}  // namespace rwkv::cuda
