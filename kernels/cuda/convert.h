#pragma once
// fp32 -> bf16 conversion on the GPU, for the bf16 tensor-core products of
// kernels/cuda/matmul.h: each value rounded to the nearest bf16, ties to even
// (__float2bfloat16; NaN stays NaN, overflow goes to infinity), as the bf16 operands
// of mixed-precision training (fp32 masters, bf16 products, fp32 accumulation).
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace rwkv::cuda {

// dst [rows, cols] packed (ld cols) = bf16(src [rows, cols] with leading dimension ld).
// Throws rwkv::Error naming the size for negative sizes or ld < cols.
void to_bf16(__nv_bfloat16* dst, const float* src, int64_t rows, int64_t cols, int64_t ld,
             cudaStream_t stream);

}  // namespace rwkv::cuda
