// The block emulator (tests/kernels/block_emulator.h): every block of a grid runs once, in
// a shuffled order, so that a block reading what another block of the grid writes sees
// unwritten data. Its checks at the barriers: a barrier
// that only some threads of a block reach aborts naming both places; tensor-core tiles
// (kernels/cuda/warp_tile.h) called by every lane of a warp with the same arguments pass and give
// the product; a tile under a lane-dependent branch, lanes passing different operands, or a tile in
// a warp of fewer than 32 threads abort naming the warp, as such a kernel would be undefined on a
// GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/cuda/warp_tile.h"
#include "tests/kernels/block_emulator.h"

namespace {

using rwkv::cuda::Layout;
using rwkv::cuda::warp_tile_product;
using rwkv::cuda::test::HostBlock;
using rwkv::cuda::test::run_grid;

constexpr int kT = rwkv::cuda::kTile;

// A and B [16, 16] row-major, one result tile per warp.
struct alignas(32) Shared {
  float a[kT * kT];
  float b[kT * kT];
  float c[2][kT * kT];
};

// Fills A with 1 and B with 2, then a barrier: every entry of a product is 2 * 16.
void fill(const HostBlock& blk, Shared& sh) {
  for (int i = blk.thread(); i < kT * kT; i += blk.threads()) {
    sh.a[i] = 1.f;
    sh.b[i] = 2.f;
  }
  blk.sync();
}

void tile(const HostBlock& blk, Shared& sh, float* c) {
  warp_tile_product<kT, Layout::row, Layout::row>(blk, sh.a, kT, sh.b, kT, c, kT);
}

TEST(BlockEmulator, TilesCalledByWholeWarpsPass) {
  float got[2] = {NAN, NAN};
  run_grid<Shared>(1, 64, [&](const HostBlock& blk, int, Shared& sh) {
    fill(blk, sh);
    tile(blk, sh, sh.c[blk.thread() / 32]);
    blk.sync();
    if (blk.thread() == 0) {
      got[0] = sh.c[0][kT * kT - 1];
      got[1] = sh.c[1][0];
    }
  });
  EXPECT_EQ(got[0], 2.f * kT);
  EXPECT_EQ(got[1], 2.f * kT);
}

struct NoShared {};

TEST(BlockEmulator, RunsEveryBlockOnceOutOfOrder) {
  constexpr int kBlocks = 64;
  std::vector<int> runs(kBlocks, 0);
  std::vector<float> chain(kBlocks, NAN);
  run_grid<NoShared>(kBlocks, 32, [&](const HostBlock& blk, int block, NoShared&) {
    if (blk.thread() != 0) return;
    ++runs[size_t(block)];
    // A grid whose block i reads block i - 1's result: wrong on a GPU, and here.
    chain[size_t(block)] = block == 0 ? 1.f : chain[size_t(block) - 1] + 1.f;
  });
  EXPECT_EQ(runs, std::vector<int>(kBlocks, 1));
  int wrong = 0;
  for (int i = 0; i < kBlocks; ++i) wrong += !(chain[size_t(i)] == float(i + 1));
  EXPECT_GT(wrong, kBlocks / 4) << "the blocks ran (nearly) in index order";
}

TEST(BlockEmulatorDeathTest, BarrierNotReachedByEveryThreadAborts) {
  EXPECT_DEATH(run_grid<Shared>(1, 32,
                                [](const HostBlock& blk, int, Shared&) {
                                  if (blk.thread() < 16) blk.sync();
                                }),
               "the threads of a block are at different barriers: thread 0 at "
               ".*test_block_emulator.cpp:[0-9]+, thread 16 at .*block_emulator.h:[0-9]+");
}

TEST(BlockEmulatorDeathTest, TileUnderALaneDependentBranchAborts) {
  EXPECT_DEATH(run_grid<Shared>(1, 64,
                                [](const HostBlock& blk, int, Shared& sh) {
                                  fill(blk, sh);
                                  if (blk.thread() % 32 < 16) tile(blk, sh, sh.c[0]);
                                  blk.sync();
                                }),
               "warp 0 \\(threads 0..31\\) made different warp-collective calls between two "
               "barriers: lane 0 made 1, lane 16 0, the first difference at call 0 "
               "\\(warp_tile_product\\)");
}

TEST(BlockEmulatorDeathTest, LanesPassingDifferentOperandsAbort) {
  EXPECT_DEATH(run_grid<Shared>(1, 64,
                                [](const HostBlock& blk, int, Shared& sh) {
                                  fill(blk, sh);
                                  // warp 1: its lanes 32..47 write tile 0, 48..63 tile 1
                                  const int t = blk.thread();
                                  tile(blk, sh, sh.c[t < 32 ? 0 : (t - 32) / 16]);
                                  blk.sync();
                                }),
               "warp 1 \\(threads 32..63\\) made different warp-collective calls.*lane 16 1, "
               "the first difference at call 0");
}

TEST(BlockEmulatorDeathTest, TileInAPartialWarpAborts) {
  EXPECT_DEATH(run_grid<Shared>(1, 48,
                                [](const HostBlock& blk, int, Shared& sh) {
                                  fill(blk, sh);
                                  tile(blk, sh, sh.c[blk.thread() / 32]);
                                  blk.sync();
                                }),
               "warp 1 \\(threads 32..47\\) has 16 threads: warp-collective calls need all 32 "
               "lanes");
}

// The second tile reads the first's result as its A: with a barrier between it is C = A B
// B (every entry 2 * 16 * 2 * 16), without one it aborts.
TEST(BlockEmulator, TileReadingAnEarlierTileAfterABarrierPasses) {
  float got = NAN;
  run_grid<Shared>(1, 32, [&](const HostBlock& blk, int, Shared& sh) {
    fill(blk, sh);
    tile(blk, sh, sh.c[0]);
    blk.sync();
    warp_tile_product<kT, Layout::row, Layout::row>(blk, sh.c[0], kT, sh.b, kT, sh.c[1], kT);
    blk.sync();
    if (blk.thread() == 0) got = sh.c[1][5];
  });
  EXPECT_EQ(got, 2.f * kT * 2.f * kT);
}

TEST(BlockEmulatorDeathTest, TileReadingAnEarlierTileWithoutABarrierAborts) {
  EXPECT_DEATH(run_grid<Shared>(1, 32,
                                [](const HostBlock& blk, int, Shared& sh) {
                                  fill(blk, sh);
                                  tile(blk, sh, sh.c[0]);
                                  warp_tile_product<kT, Layout::row, Layout::row>(
                                      blk, sh.c[0], kT, sh.b, kT, sh.c[1], kT);
                                  blk.sync();
                                }),
               "warp 0 \\(threads 0..31\\) reads in a tile an element an earlier tile of the "
               "warp wrote, with no barrier between");
}

}  // namespace
