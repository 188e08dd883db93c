#pragma once
// The thread-block interface of kernels written to run both on the GPU and, for the
// tests, on the CPU (kernels/cuda/wkv7_chunked_body.h): a body is a function template
// over a block type with
//   int thread() const;   // this thread's index in the block (threadIdx.x)
//   int threads() const;  // threads in the block (blockDim.x)
//   void sync() const;    // barrier of the block (__syncthreads())
// and takes its block index and its shared memory (a struct of arrays) as arguments.
// DeviceBlock is the GPU's; tests/kernels/block_emulator.h runs each thread of a block
// as a std::thread with a std::barrier. Such a body uses no warp intrinsics except the
// tensor-core tiles of kernels/cuda/warp_tile.h (emulated on a warp's lane 0) and is
// compiled by the host compiler too: it includes only standard headers and those two.
// A host block type also has
//   void warp_collective(const WarpCall&) const;
//   void warp_access(const std::vector<const float*>& reads,
//                    const std::vector<const float*>& writes) const;
// through which each lane reports its tile calls, so that the emulator can check that
// every lane of a warp makes the same ones (on a GPU anything else is undefined), and the
// computing lane the elements each tile reads and writes, so that it can check that no
// tile reads what an earlier tile of the same warp wrote without a barrier between.

#include <array>
#include <cstdint>
#include <vector>

// RWKV_UNROLL: `#pragma unroll` in the device pass (loops over register arrays must
// unroll for the arrays to stay in registers); nothing for the host compiler.
#if defined(__CUDACC__)
#define RWKV_HD __host__ __device__
#else
#define RWKV_HD
#endif
#if defined(__CUDA_ARCH__)
#define RWKV_UNROLL _Pragma("unroll")
#else
#define RWKV_UNROLL
#endif

namespace rwkv::cuda {

// A call that a whole warp makes together (warp_tile_product), as the block emulator
// compares it across the warp's lanes: its name and its arguments.
struct WarpCall {
  const char* what = nullptr;
  std::array<uintptr_t, 12> args{};
  bool operator==(const WarpCall&) const = default;
};

#if defined(__CUDACC__)
// The members are __host__ __device__ so that the bodies (host-device templates) may
// call them; they only run on the device.
struct DeviceBlock {
  __host__ __device__ int thread() const {
#if defined(__CUDA_ARCH__)
    return static_cast<int>(threadIdx.x);
#else
    return 0;
#endif
  }
  __host__ __device__ int threads() const {
#if defined(__CUDA_ARCH__)
    return static_cast<int>(blockDim.x);
#else
    return 1;
#endif
  }
  __host__ __device__ void sync() const {
#if defined(__CUDA_ARCH__)
    __syncthreads();
#endif
  }
};
#elif defined(RWKV_CUDA_EMULATION)
// The emulated GPU's (tests/kernels/cuda_emulation/emulated_cuda.h): the same members on
// the fibers that run a block's threads. It leaves the warp checks to the block emulator
// of tests/kernels/block_emulator.h, which runs the bodies' own tests.
struct DeviceBlock {
  int thread() const { return static_cast<int>(threadIdx.x); }
  int threads() const { return static_cast<int>(blockDim.x); }
  void sync() const { __syncthreads(); }
  void warp_collective(const WarpCall&) const {}
  void warp_access(const std::vector<const float*>&, const std::vector<const float*>&) const {}
};
#endif

}  // namespace rwkv::cuda
