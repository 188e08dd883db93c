#pragma once
// Gradient clipping's vector ops on the GPU (kernels/cpu/grad_norm.h is the reference).
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace rwkv::cuda {

// Device scratch that sum_squares needs: one double per block of the first pass.
size_t sum_squares_scratch_bytes();

// *out (device) = sum_i x[i]^2 in double. Deterministic: a fixed grid for a given n,
// each thread's strided sum and each block's tree in a fixed order, then one block
// adds the block sums in a fixed order (no atomics). scratch: sum_squares_scratch_bytes().
void sum_squares(double* out, const float* x, int64_t n, void* scratch, cudaStream_t stream);

// x[i] *= s.
void scale(float* x, float s, int64_t n, cudaStream_t stream);

}  // namespace rwkv::cuda
