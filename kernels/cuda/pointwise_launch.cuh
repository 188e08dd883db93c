#pragma once
// Launch helpers shared by the pointwise op families (elementwise.cu, token_shift.cu,
// rwkv_pointwise.cu); include from .cu files only. An op is a small functor holding
// its pointers, called once per element:
//   op(o)           flat ops on [n]                   (launch_flat)
//   op(o, c)        channel ops on [n, C], o = i*C + c (launch_channels)
//   g = op(o, c)    channel ops whose backward also sums g over the rows into a
//                   per-channel gradient sum[c]       (launch_channels_sum)
//   g = op(o, c)    the same with K sums, g a Sums<K> (launch_channels_sums)
// The per-channel sums are deterministic and need no scratch: one block per group of
// 8 channels, the block's row lanes stride over the rows, then a fixed-order tree in
// shared memory (no atomics: bitwise reproducible run to run; channel_sum_body.h, run
// by the CPU tests under the block emulator). Groups of 8 channels
// (32-byte row pieces, one memory sector each) give ceil(C / 8) blocks: 128 at C = 1024,
// about one per SM of an H100 (groups of 32 left three quarters of the SMs idle: on an
// H200, mix_backward and bonus_v7_backward then took 13% of a 0.4B training step).
#include <cuda_runtime_api.h>

#include <climits>
#include <cstdint>
#include <initializer_list>
#include <sstream>
#include <utility>

#include "common/error.h"
#include "kernels/cuda/block.h"
#include "kernels/cuda/channel_sum_body.h"
#include "kernels/cuda/cuda_check.h"

namespace rwkv::cuda::pointwise {

constexpr int kThreads = 256;  // flat kernels: one thread per element

// Throws rwkv::Error naming the function and the size when a size is negative.
inline void check_sizes(const char* fn,
                        std::initializer_list<std::pair<const char*, int64_t>> sizes) {
  for (const auto& [name, value] : sizes)
    if (value < 0) {
      std::ostringstream msg;
      msg << fn << ": " << name << " = " << value << " must be >= 0";
      throw Error(msg.str());
    }
}

// Blocks of kThreads covering n elements, checked against the grid's limit.
inline int flat_blocks(const char* fn, int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  if (blocks > INT_MAX) {
    std::ostringstream msg;
    msg << fn << ": " << n << " elements are more than one launch covers";
    throw Error(msg.str());
  }
  return int(blocks);
}

template <typename Op>
__global__ void flat_kernel(Op op, int64_t n) {
  const int64_t o = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (o < n) op(o);
}

template <typename Op>
__global__ void channels_kernel(Op op, int64_t n, int64_t C) {
  const int64_t o = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (o < n * C) op(o, o % C);
}

// The grid has only ceil(C / kColWidth) blocks, so each is as large as allowed.
template <int K, typename Op>
__global__ void __launch_bounds__(kSumThreads)
    channel_sum_kernel(Op op, int64_t n, int64_t C, SumOutputs<K> sums) {
  __shared__ ChannelSumShared<K> sh;
  channel_sum_body<K>(DeviceBlock{}, int(blockIdx.x), op, n, C, sums, sh);
}

// An op of one sum as an op of Sums<1>.
template <typename Op>
struct OneSum {
  Op op;
  __device__ Sums<1> operator()(int64_t o, int64_t c) const { return {op(o, c)}; }
};

template <typename Op>
void launch_flat(const char* fn, Op op, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  const int blocks = flat_blocks(fn, n);
  flat_kernel<<<blocks, kThreads, 0, stream>>>(op, n);
  CUDA_CHECK_LAUNCH();
}

template <typename Op>
void launch_channels(const char* fn, Op op, int64_t n, int64_t C, cudaStream_t stream) {
  if (n * C == 0) return;
  const int blocks = flat_blocks(fn, n * C);
  channels_kernel<<<blocks, kThreads, 0, stream>>>(op, n, C);
  CUDA_CHECK_LAUNCH();
}

// With every sum null the op runs flat (the per-element gradients only).
template <int K, typename Op>
void launch_channels_sums(const char* fn, Op op, int64_t n, int64_t C, SumOutputs<K> sums,
                          cudaStream_t stream) {
  bool any = false;
  for (float* p : sums.p) any = any || p != nullptr;
  if (!any) return launch_channels(fn, op, n, C, stream);
  if (n * C == 0) return;
  const int64_t blocks = (C + kColWidth - 1) / kColWidth;
  if (blocks > INT_MAX) {
    std::ostringstream msg;
    msg << fn << ": C = " << C << " channels are more than one launch covers";
    throw Error(msg.str());
  }
  const int grid = int(blocks);
  channel_sum_kernel<K><<<grid, kSumThreads, 0, stream>>>(op, n, C, sums);
  CUDA_CHECK_LAUNCH();
}

template <typename Op>
void launch_channels_sum(const char* fn, Op op, int64_t n, int64_t C, float* sum,
                         cudaStream_t stream) {
  if (sum == nullptr) return launch_channels(fn, op, n, C, stream);
  launch_channels_sums<1>(fn, OneSum<Op>{op}, n, C, SumOutputs<1>{{sum}}, stream);
}

}  // namespace rwkv::cuda::pointwise
