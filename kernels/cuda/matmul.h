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
//
// The *_bf16 variants are the mixed-precision products of the issue ("bf16 operands and
// fp32 accumulation"): both operands are first rounded to bf16 (kernels/cuda/convert.h)
// into `scratch` (the forward converts x and w; the backward dout, w when dx is wanted
// and x when dw is), then multiplied on the tensor cores with CUDA_R_16BF inputs,
// CUBLAS_COMPUTE_32F accumulation and an fp32 output, so accumulate and the backward's
// += work on the fp32 buffers as in fp32 mode. scratch: device memory of at least
// matmul_bf16_scratch_bytes(M, K, N) bytes, 256-byte aligned, free while the stream runs
// the call. Error against the fp32 product: rounding costs each operand at most 2^-9
// relative (a single product 2^-8), about 2e-3 relative L2 on sums of random products.
//
// The *_fast_bf16 variants are the same products without the conversion kernels and the
// scratch: the fp32 operands go to cuBLAS with CUBLAS_COMPUTE_32F_FAST_16BF, which lets
// it round them to bf16 inside the product and use the bf16 tensor cores (cuBLAS
// documentation, cublasComputeType_t). Whether that is faster than converting first
// depends on the kernels cuBLAS picks for each shape: bench/cuda/bench_cuda_matmul.cu
// times both on the products of a model's step. CudaBackend does not use them yet.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/bf16.h"
#include "kernels/op_types.h"

namespace rwkv::cuda {

// out [M, N] (ld ldo) = x [M, K] (ld ldx) @ W, or += when accumulate.
void matmul_forward(float* out, int64_t ldo, const float* x, int64_t ldx, const float* w,
                    int64_t M, int64_t K, int64_t N, kernels::WLayout layout, bool accumulate,
                    cublasHandle_t handle, cudaStream_t stream);

// dx [M, K] (ld ldx) = dout @ W^T, or += when accumulate_dx; dw += the weight gradient
// in w's layout. Null dx or dw is skipped.
void matmul_backward(float* dx, float* dw, const float* dout, int64_t ldo, const float* x,
                     int64_t ldx, const float* w, int64_t M, int64_t K, int64_t N,
                     kernels::WLayout layout, bool accumulate_dx, cublasHandle_t handle,
                     cudaStream_t stream);

// The products of bf16 activations (kernels/backend.h with A = bf16): x, w, dout and the
// outputs out, dx in bf16 (tensor cores, fp32 accumulation; out and dx read in bf16 when
// accumulating and rounded once), dw fp32 (+=). No conversions, no scratch.
void matmul_forward(Bf16* out, int64_t ldo, const Bf16* x, int64_t ldx, const Bf16* w, int64_t M,
                    int64_t K, int64_t N, kernels::WLayout layout, bool accumulate,
                    cublasHandle_t handle, cudaStream_t stream);
void matmul_backward(Bf16* dx, float* dw, const Bf16* dout, int64_t ldo, const Bf16* x, int64_t ldx,
                     const Bf16* w, int64_t M, int64_t K, int64_t N, kernels::WLayout layout,
                     bool accumulate_dx, cublasHandle_t handle, cudaStream_t stream);

// Scratch of the bf16 variants: the bf16 copies of x [M, K], w [K, N] and dout [M, N],
// each padded to 256 bytes.
size_t matmul_bf16_scratch_bytes(int64_t M, int64_t K, int64_t N);

void matmul_forward_bf16(float* out, int64_t ldo, const float* x, int64_t ldx, const float* w,
                         int64_t M, int64_t K, int64_t N, kernels::WLayout layout, bool accumulate,
                         void* scratch, cublasHandle_t handle, cudaStream_t stream);

void matmul_backward_bf16(float* dx, float* dw, const float* dout, int64_t ldo, const float* x,
                          int64_t ldx, const float* w, int64_t M, int64_t K, int64_t N,
                          kernels::WLayout layout, bool accumulate_dx, void* scratch,
                          cublasHandle_t handle, cudaStream_t stream);

// The conversions alone of the bf16 variants (which operands each converts: above): each
// operand that is not null, into `scratch` where they lay it out. Also for timing their
// share (bench/cuda/bench_cuda_matmul.cu).
void matmul_bf16_convert(const float* dout, int64_t ldo, const float* x, int64_t ldx,
                         const float* w, int64_t M, int64_t K, int64_t N, void* scratch,
                         cudaStream_t stream);

void matmul_forward_fast_bf16(float* out, int64_t ldo, const float* x, int64_t ldx, const float* w,
                              int64_t M, int64_t K, int64_t N, kernels::WLayout layout,
                              bool accumulate, cublasHandle_t handle, cudaStream_t stream);

void matmul_backward_fast_bf16(float* dx, float* dw, const float* dout, int64_t ldo, const float* x,
                               int64_t ldx, const float* w, int64_t M, int64_t K, int64_t N,
                               kernels::WLayout layout, bool accumulate_dx, cublasHandle_t handle,
                               cudaStream_t stream);

}  // namespace rwkv::cuda
