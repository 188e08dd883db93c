#pragma once
// Dense products with OpenBLAS (sgemm / dgemm), row-major, with the weight in
// either layout of the official checkpoints (WLayout, kernels/op_types.h).
// x and out may be column slices of wider row-major tensors (leading dims ldx, ldo).
#include <cstdint>

#include "kernels/op_types.h"

namespace rwkv::kernels {

// out [M, N] (ld ldo) = x [M, K] (ld ldx) @ W, or += when accumulate.
template <typename F>
void matmul_forward(F* out, int64_t ldo, const F* x, int64_t ldx, const F* w, int64_t M, int64_t K,
                    int64_t N, WLayout layout, bool accumulate);

// dx [M, K] (ld ldx) = dout @ W^T, or += when accumulate_dx (overwriting, the BLAS
// product with beta 0 never reads dx); dw += the weight gradient in w's layout (weight
// gradients always add up: micro-batches, tensor-parallel partial sums). Null dx or dw
// is skipped.
template <typename F>
void matmul_backward(F* dx, F* dw, const F* dout, int64_t ldo, const F* x, int64_t ldx, const F* w,
                     int64_t M, int64_t K, int64_t N, WLayout layout, bool accumulate_dx);

}  // namespace rwkv::kernels
