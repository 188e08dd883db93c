#pragma once
// Dense products on the GPU through cuBLAS, fp32 with fp32 accumulation
// (CUBLAS_COMPUTE_32F: no TF32), with exactly the semantics of the CPU reference
// kernels/cpu/matmul.h: row-major, x and out possibly column slices of wider tensors
// (leading dimensions ldx, ldo), the weight in either layout of the official
// checkpoints (WLayout, kernels/op_types.h). All pointers are device pointers.
//
// The work goes to `stream` (set on `handle` when it differs); nothing is allocated or
// synchronised. cuBLAS is deterministic for a given GPU and workspace, so repeated runs
// give bitwise equal results. Bad shapes throw rwkv::Error naming the function.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/op_types.h"

namespace rwkv::cuda {

// out [M, N] (ld ldo) = x [M, K] (ld ldx) @ W, or += when accumulate.
void matmul_forward(float* out, int64_t ldo, const float* x, int64_t ldx, const float* w,
                    int64_t M, int64_t K, int64_t N, kernels::WLayout layout, bool accumulate,
                    cublasHandle_t handle, cudaStream_t stream);

// dx [M, K] (ld ldx) += dout @ W^T; dw += the weight gradient in w's layout. Null dx
// or dw is skipped.
void matmul_backward(float* dx, float* dw, const float* dout, int64_t ldo, const float* x,
                     int64_t ldx, const float* w, int64_t M, int64_t K, int64_t N,
                     kernels::WLayout layout, cublasHandle_t handle, cudaStream_t stream);

}  // namespace rwkv::cuda
