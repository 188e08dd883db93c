#include "kernels/cuda/matmul.h"

#include <climits>
#include <sstream>

#include "common/error.h"
#include "kernels/cuda/cuda_check.h"

namespace rwkv::cuda {

namespace {

using kernels::WLayout;

// cuBLAS is column-major: a row-major [r, c] matrix with leading dimension ld is, in
// the same memory, the column-major [c, r] matrix (its transpose) with the same ld. So
// every row-major product C = A @ B below is computed as C^T = B^T @ A^T.
void gemm(cublasHandle_t handle, cudaStream_t stream, cublasOperation_t ta, cublasOperation_t tb,
          int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
          int64_t ldb, float beta, float* c, int64_t ldc) {
  cudaStream_t current = nullptr;
  CUBLAS_CHECK(cublasGetStream(handle, &current));
  if (current != stream) CUBLAS_CHECK(cublasSetStream(handle, stream));
  const float alpha = 1.0f;
  CUBLAS_CHECK(cublasGemmEx(handle, ta, tb, static_cast<int>(m), static_cast<int>(n),
                            static_cast<int>(k), &alpha, a, CUDA_R_32F, static_cast<int>(lda), b,
                            CUDA_R_32F, static_cast<int>(ldb), &beta, c, CUDA_R_32F,
                            static_cast<int>(ldc), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void check_shape(const char* fn, int64_t ldo, int64_t ldx, int64_t M, int64_t K, int64_t N) {
  if (M < 1 || K < 1 || N < 1 || ldx < K || ldo < N || M > INT_MAX || ldx > INT_MAX ||
      ldo > INT_MAX) {
    std::ostringstream msg;
    msg << fn << ": bad shape M=" << M << " K=" << K << " N=" << N << " ldx=" << ldx
        << " ldo=" << ldo << " (need positive sizes below 2^31, ldx >= K, ldo >= N)";
    throw Error(msg.str());
  }
}

}  // namespace

void matmul_forward(float* out, int64_t ldo, const float* x, int64_t ldx, const float* w,
                    int64_t M, int64_t K, int64_t N, WLayout layout, bool accumulate,
                    cublasHandle_t handle, cudaStream_t stream) {
  check_shape("matmul_forward", ldo, ldx, M, K, N);
  const float beta = accumulate ? 1.0f : 0.0f;  // beta 0: out is not read (may hold NaN)
  // out^T [N, M] = W^T [N, K] @ x^T [K, M]. OutIn w [N, K] row-major is column-major
  // [K, N], so W^T = op T of it; InOut w [K, N] row-major is W^T column-major as is.
  if (layout == WLayout::OutIn)
    gemm(handle, stream, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, w, K, x, ldx, beta, out, ldo);
  else
    gemm(handle, stream, CUBLAS_OP_N, CUBLAS_OP_N, N, M, K, w, N, x, ldx, beta, out, ldo);
}

void matmul_backward(float* dx, float* dw, const float* dout, int64_t ldo, const float* x,
                     int64_t ldx, const float* w, int64_t M, int64_t K, int64_t N, WLayout layout,
                     cublasHandle_t handle, cudaStream_t stream) {
  check_shape("matmul_backward", ldo, ldx, M, K, N);
  if (layout == WLayout::OutIn) {
    // dx^T [K, M] += W [K, N] @ dout^T [N, M], W = w^T: w column-major [K, N] as is.
    if (dx) gemm(handle, stream, CUBLAS_OP_N, CUBLAS_OP_N, K, M, N, w, K, dout, ldo, 1.0f, dx, ldx);
    // dw [N, K] row-major = dw^T column-major [K, N] += x^T [K, M] @ dout [M, N].
    if (dw) gemm(handle, stream, CUBLAS_OP_N, CUBLAS_OP_T, K, N, M, x, ldx, dout, ldo, 1.0f, dw, K);
  } else {
    // dx^T [K, M] += W [K, N] @ dout^T [N, M], W = w: w column-major [N, K], op T.
    if (dx) gemm(handle, stream, CUBLAS_OP_T, CUBLAS_OP_N, K, M, N, w, N, dout, ldo, 1.0f, dx, ldx);
    // dw [K, N] row-major = column-major [N, K] += dout^T [N, M] @ x [M, K].
    if (dw) gemm(handle, stream, CUBLAS_OP_N, CUBLAS_OP_T, N, K, M, dout, ldo, x, ldx, 1.0f, dw, N);
  }
}

}  // namespace rwkv::cuda
