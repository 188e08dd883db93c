#pragma once
// The per-channel gradient sums of the pointwise kernels (pointwise_launch.cuh,
// launch_channels_sums) as a block body (kernels/cuda/block.h), so that the CPU tests
// run it under the block emulator. A block of kSumThreads threads covers kColWidth
// channels: lane = channel within the group (coalesced rows), row lane r takes rows
// r, r + kRowLanes, ...; each thread keeps K partial sums of the op's terms, then a
// fixed-order tree in shared memory adds the row lanes' partials (no atomics: the same
// bits run to run) and sums[k][c] += the total, for the non-null sums.
#include <cstdint>

#include "kernels/cuda/block.h"

namespace rwkv::cuda::pointwise {

constexpr int kColWidth = 8;                        // channels per block (32 bytes of a row)
constexpr int kRowLanes = 128;                      // rows in flight per block
constexpr int kSumThreads = kColWidth * kRowLanes;  // 1024

// K per-channel sums at once: an op returns one term of each.
template <int K>
struct Sums {
  float v[K];
};
template <int K>
struct SumOutputs {
  float* p[K];
};

template <int K>
struct ChannelSumShared {
  float part[K][kRowLanes * kColWidth];  // [sum, row lane, lane]
};

// Block `block` of the grid of ceil(C / kColWidth) blocks; op(o, c) with o = i * C + c
// runs once for every row i of the block's channels c < C (its per-element gradients
// and the K terms it returns).
template <int K, typename Block, typename Op>
RWKV_HD void channel_sum_body(const Block& blk, int block, const Op& op, int64_t n, int64_t C,
                              SumOutputs<K> sums, ChannelSumShared<K>& sh) {
  const int t = blk.thread(), lane = t % kColWidth, row = t / kColWidth;
  const int64_t c = int64_t(block) * kColWidth + lane;
  float s[K] = {};
  if (c < C)
    for (int64_t i = row; i < n; i += kRowLanes) {
      const Sums<K> g = op(i * C + c, c);
      RWKV_UNROLL
      for (int k = 0; k < K; ++k) s[k] += g.v[k];
    }
  RWKV_UNROLL
  for (int k = 0; k < K; ++k) sh.part[k][t] = s[k];
  blk.sync();
  // Row lanes [h, 2h) fold into [0, h); the two halves are disjoint within a step.
  for (int h = kRowLanes / 2; h > 0; h /= 2) {
    if (row < h) {
      RWKV_UNROLL
      for (int k = 0; k < K; ++k) sh.part[k][t] += sh.part[k][t + h * kColWidth];
    }
    blk.sync();
  }
  if (row == 0 && c < C) {
    RWKV_UNROLL
    for (int k = 0; k < K; ++k)
      if (sums.p[k]) sums.p[k][c] += sh.part[k][lane];
  }
}

}  // namespace rwkv::cuda::pointwise
