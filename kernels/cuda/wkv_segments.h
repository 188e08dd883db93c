#pragma once
// Shared by the per-head WKV kernels (wkv6.cu, wkv7.cu): the forward checkpoints the
// state every kSeg tokens (as RWKV-LM's RWKV-7 CUDA kernel does) and the backward
// recomputes one segment at a time from the checkpoint; the argument check of their
// launchers.
#include <sstream>

#include "common/error.h"

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

}  // namespace rwkv::cuda::wkv_detail
