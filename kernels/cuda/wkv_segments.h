#pragma once
// Shared by the per-head WKV kernels (wkv6.cu, wkv7.cu): the forward checkpoints the
// state every kSeg tokens (as RWKV-LM's RWKV-7 CUDA kernel does) and the backward
// recomputes one segment at a time from the checkpoint; the argument checks of their
// launchers, the table of (head size, splits) instances and the launch of a kernel with
// more than 48 KB of shared memory.
#include <cuda_runtime_api.h>

#include <sstream>
#include <string>
#include <type_traits>

#include "common/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"

namespace rwkv::cuda::wkv_detail {

constexpr int kSeg = 16;  // tokens between checkpoints

// Segments (checkpoints) of a sequence of T tokens.
__host__ __device__ inline int nseg(int T) { return (T + kSeg - 1) / kSeg; }

// Throws rwkv::Error naming the function unless the shape and 0 <= h0 <= h1 <= H are
// valid and the head size N is one the kernels are built for (16, 32 or 64).
inline void check_args(const char* fn, int B, int T, int H, int N, int h0, int h1) {
  if (B < 0 || T < 0 || H < 0 || h0 < 0 || h1 > H || h0 > h1) {
    std::ostringstream msg;
    msg << fn << ": bad shape B=" << B << " T=" << T << " H=" << H << " or head range [" << h0
        << ", " << h1 << ")";
    throw Error(msg.str());
  }
  if (N != 16 && N != 32 && N != 64) {
    std::ostringstream msg;
    msg << fn << ": head size N=" << N << " is not supported (16, 32 or 64)";
    throw Error(msg.str());
  }
}

// Throws rwkv::Error naming the function unless `splits` is one the kernels are built
// for: 1, or for N = 64 (every preset's head size) also 2, 4 or 8.
inline void check_splits(const char* fn, int N, int splits) {
  if (splits == 1 || (N == 64 && (splits == 2 || splits == 4 || splits == 8))) return;
  std::ostringstream msg;
  msg << fn << ": splits=" << splits << " is not supported for head size N=" << N
      << " (1, or for N=64 also 2, 4 or 8)";
  throw Error(msg.str());
}

// Calls fn(std::integral_constant<int, N>, std::integral_constant<int, G>) for the
// kernel instance of head size N and G splits (the pairs check_splits accepts): the one
// table of instances of the launchers (wkv6.cu's chunked ones, wkv7.cu's).
template <typename Fn>
void with_instance(int N, int splits, Fn&& fn) {
  using std::integral_constant;
  if (N == 16) return fn(integral_constant<int, 16>{}, integral_constant<int, 1>{});
  if (N == 32) return fn(integral_constant<int, 32>{}, integral_constant<int, 1>{});
  switch (splits) {
    case 1:
      return fn(integral_constant<int, 64>{}, integral_constant<int, 1>{});
    case 2:
      return fn(integral_constant<int, 64>{}, integral_constant<int, 2>{});
    case 4:
      return fn(integral_constant<int, 64>{}, integral_constant<int, 4>{});
    default:
      return fn(integral_constant<int, 64>{}, integral_constant<int, 8>{});
  }
}

// kernel<<<blocks, threads, smem, stream>>>(args) for a kernel whose dynamic shared memory
// (smem bytes: the chunked gradient kernels') is above the 48 KB every block gets: checks
// that this card allows it (require_shared_memory, naming fn and the head size N), raises
// the kernel's limit to it, checks the launch.
template <typename Args>
void launch_large_shared(void (*kernel)(Args), int blocks, int threads, int smem,
                         cudaStream_t stream, const char* fn, int N, const Args& args) {
  require_shared_memory(std::string(fn) + " at head size " + std::to_string(N), size_t(smem));
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  kernel<<<blocks, threads, smem, stream>>>(args);
  CUDA_CHECK_LAUNCH();
}

}  // namespace rwkv::cuda::wkv_detail
