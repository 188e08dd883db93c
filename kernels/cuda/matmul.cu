#include "kernels/cuda/matmul.h"

#include <climits>
#include <cstddef>
#include <sstream>

#include "common/error.h"
#include "kernels/cuda/convert.h"
#include "kernels/cuda/cuda_check.h"

namespace rwkv::cuda {

namespace {

using kernels::WLayout;

// cuBLAS is column-major: a row-major [r, c] matrix with leading dimension ld is, in
// the same memory, the column-major [c, r] matrix (its transpose) with the same ld. So
// every row-major product C = A @ B below is computed as C^T = B^T @ A^T. The operands
// a and b are of t.operands (fp32 or bf16), c of t.out (fp32, or bf16 for the products of
// bf16 activations: read and written in bf16, accumulated in fp32), accumulation fp32.
struct GemmType {
  cudaDataType operands;
  cudaDataType out;
  cublasComputeType_t compute;
};
constexpr GemmType kFp32{CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F};
constexpr GemmType kBf16{CUDA_R_16BF, CUDA_R_32F, CUBLAS_COMPUTE_32F};
constexpr GemmType kFastBf16{CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_16BF};
constexpr GemmType kBf16Out{CUDA_R_16BF, CUDA_R_16BF, CUBLAS_COMPUTE_32F};

void gemm(cublasHandle_t handle, cudaStream_t stream, cublasOperation_t ta, cublasOperation_t tb,
          int64_t m, int64_t n, int64_t k, const void* a, int64_t lda, const void* b, int64_t ldb,
          float beta, void* c, int64_t ldc, GemmType t) {
  cudaStream_t current = nullptr;
  CUBLAS_CHECK(cublasGetStream(handle, &current));
  if (current != stream) CUBLAS_CHECK(cublasSetStream(handle, stream));
  const float alpha = 1.0f;
  CUBLAS_CHECK(cublasGemmEx(handle, ta, tb, static_cast<int>(m), static_cast<int>(n),
                            static_cast<int>(k), &alpha, a, t.operands, static_cast<int>(lda), b,
                            t.operands, static_cast<int>(ldb), &beta, c, t.out,
                            static_cast<int>(ldc), t.compute, CUBLAS_GEMM_DEFAULT));
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

// The products of matmul_forward with operands x (ld ldx) and w of `type`.
void forward(void* out, int64_t ldo, const void* x, int64_t ldx, const void* w, int64_t M,
             int64_t K, int64_t N, WLayout layout, bool accumulate, GemmType type,
             cublasHandle_t handle, cudaStream_t stream) {
  const float beta = accumulate ? 1.0f : 0.0f;  // beta 0: out is not read (may hold NaN)
  // out^T [N, M] = W^T [N, K] @ x^T [K, M]. OutIn w [N, K] row-major is column-major
  // [K, N], so W^T = op T of it; InOut w [K, N] row-major is W^T column-major as is.
  if (layout == WLayout::OutIn)
    gemm(handle, stream, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, w, K, x, ldx, beta, out, ldo, type);
  else
    gemm(handle, stream, CUBLAS_OP_N, CUBLAS_OP_N, N, M, K, w, N, x, ldx, beta, out, ldo, type);
}

// The products of matmul_backward with operands dout (ld ldo), x (ld ldx), w of `type`
// (dx of dx_type.out, dw fp32); dx has leading dimension lddx (x's in the caller, not the
// operand copy's). dx is overwritten unless accumulate_dx (beta 0: cuBLAS does not read
// it), dw accumulates.
void backward(void* dx, int64_t lddx, float* dw, const void* dout, int64_t ldo, const void* x,
              int64_t ldx, const void* w, int64_t M, int64_t K, int64_t N, WLayout layout,
              bool accumulate_dx, GemmType type, GemmType dx_type, cublasHandle_t handle,
              cudaStream_t stream) {
  const float beta = accumulate_dx ? 1.0f : 0.0f;
  if (layout == WLayout::OutIn) {
    // dx^T [K, M] (+)= W [K, N] @ dout^T [N, M], W = w^T: w column-major [K, N] as is.
    if (dx)
      gemm(handle, stream, CUBLAS_OP_N, CUBLAS_OP_N, K, M, N, w, K, dout, ldo, beta, dx, lddx,
           dx_type);
    // dw [N, K] row-major = dw^T column-major [K, N] += x^T [K, M] @ dout [M, N].
    if (dw) gemm(handle, stream, CUBLAS_OP_N, CUBLAS_OP_T, K, N, M, x, ldx, dout, ldo, 1.0f, dw, K,
                 type);
  } else {
    // dx^T [K, M] (+)= W [K, N] @ dout^T [N, M], W = w: w column-major [N, K], op T.
    if (dx)
      gemm(handle, stream, CUBLAS_OP_T, CUBLAS_OP_N, K, M, N, w, N, dout, ldo, beta, dx, lddx,
           dx_type);
    // dw [K, N] row-major = column-major [N, K] += dout^T [N, M] @ x [M, K].
    if (dw) gemm(handle, stream, CUBLAS_OP_N, CUBLAS_OP_T, N, K, M, dout, ldo, x, ldx, 1.0f, dw, N,
                 type);
  }
}

// bytes rounded up to a multiple of 256 (each bf16 copy starts 256-byte aligned).
size_t pad(size_t bytes) { return (bytes + 255) / 256 * 256; }

size_t bf16_bytes(int64_t rows, int64_t cols) {
  return pad(static_cast<size_t>(rows) * static_cast<size_t>(cols) * sizeof(__nv_bfloat16));
}

// The bf16 copies in the scratch: x [M, K], then w [K, N], then dout [M, N], packed.
struct Bf16Operands {
  __nv_bfloat16 *x, *w, *dout;
};

Bf16Operands bf16_operands(void* scratch, int64_t M, int64_t K, int64_t N) {
  char* p = static_cast<char*>(scratch);
  auto* x = reinterpret_cast<__nv_bfloat16*>(p);
  auto* w = reinterpret_cast<__nv_bfloat16*>(p + bf16_bytes(M, K));
  auto* dout = reinterpret_cast<__nv_bfloat16*>(p + bf16_bytes(M, K) + bf16_bytes(K, N));
  return {x, w, dout};
}

}  // namespace

size_t matmul_bf16_scratch_bytes(int64_t M, int64_t K, int64_t N) {
  return bf16_bytes(M, K) + bf16_bytes(K, N) + bf16_bytes(M, N);
}

void matmul_forward(float* out, int64_t ldo, const float* x, int64_t ldx, const float* w,
                    int64_t M, int64_t K, int64_t N, WLayout layout, bool accumulate,
                    cublasHandle_t handle, cudaStream_t stream) {
  check_shape("matmul_forward", ldo, ldx, M, K, N);
  forward(out, ldo, x, ldx, w, M, K, N, layout, accumulate, kFp32, handle, stream);
}

void matmul_backward(float* dx, float* dw, const float* dout, int64_t ldo, const float* x,
                     int64_t ldx, const float* w, int64_t M, int64_t K, int64_t N, WLayout layout,
                     bool accumulate_dx, cublasHandle_t handle, cudaStream_t stream) {
  check_shape("matmul_backward", ldo, ldx, M, K, N);
  backward(dx, ldx, dw, dout, ldo, x, ldx, w, M, K, N, layout, accumulate_dx, kFp32, kFp32, handle,
           stream);
}

void matmul_forward(Bf16* out, int64_t ldo, const Bf16* x, int64_t ldx, const Bf16* w, int64_t M,
                    int64_t K, int64_t N, WLayout layout, bool accumulate, cublasHandle_t handle,
                    cudaStream_t stream) {
  check_shape("matmul_forward (bf16)", ldo, ldx, M, K, N);
  forward(out, ldo, x, ldx, w, M, K, N, layout, accumulate, kBf16Out, handle, stream);
}

void matmul_backward(Bf16* dx, float* dw, const Bf16* dout, int64_t ldo, const Bf16* x, int64_t ldx,
                     const Bf16* w, int64_t M, int64_t K, int64_t N, WLayout layout,
                     bool accumulate_dx, cublasHandle_t handle, cudaStream_t stream) {
  check_shape("matmul_backward (bf16)", ldo, ldx, M, K, N);
  backward(dx, ldx, dw, dout, ldo, x, ldx, w, M, K, N, layout, accumulate_dx, kBf16, kBf16Out,
           handle, stream);
}

void matmul_bf16_convert(const float* dout, int64_t ldo, const float* x, int64_t ldx,
                         const float* w, int64_t M, int64_t K, int64_t N, void* scratch,
                         cudaStream_t stream) {
  const Bf16Operands b = bf16_operands(scratch, M, K, N);
  if (dout) to_bf16(b.dout, dout, M, N, ldo, stream);
  if (w) to_bf16(b.w, w, 1, K * N, K * N, stream);  // either layout: the K * N values as they lie
  if (x) to_bf16(b.x, x, M, K, ldx, stream);
}

void matmul_forward_bf16(float* out, int64_t ldo, const float* x, int64_t ldx, const float* w,
                         int64_t M, int64_t K, int64_t N, WLayout layout, bool accumulate,
                         void* scratch, cublasHandle_t handle, cudaStream_t stream) {
  check_shape("matmul_forward_bf16", ldo, ldx, M, K, N);
  matmul_bf16_convert(nullptr, ldo, x, ldx, w, M, K, N, scratch, stream);
  const Bf16Operands b = bf16_operands(scratch, M, K, N);
  forward(out, ldo, b.x, K, b.w, M, K, N, layout, accumulate, kBf16, handle, stream);
}

void matmul_backward_bf16(float* dx, float* dw, const float* dout, int64_t ldo, const float* x,
                          int64_t ldx, const float* w, int64_t M, int64_t K, int64_t N,
                          WLayout layout, bool accumulate_dx, void* scratch, cublasHandle_t handle,
                          cudaStream_t stream) {
  check_shape("matmul_backward_bf16", ldo, ldx, M, K, N);
  if (!dx && !dw) return;
  // Only dx reads w, only dw reads x.
  matmul_bf16_convert(dout, ldo, dw ? x : nullptr, ldx, dx ? w : nullptr, M, K, N, scratch, stream);
  const Bf16Operands b = bf16_operands(scratch, M, K, N);
  backward(dx, ldx, dw, b.dout, N, b.x, K, b.w, M, K, N, layout, accumulate_dx, kBf16, kBf16,
           handle, stream);
}

void matmul_forward_fast_bf16(float* out, int64_t ldo, const float* x, int64_t ldx, const float* w,
                              int64_t M, int64_t K, int64_t N, WLayout layout, bool accumulate,
                              cublasHandle_t handle, cudaStream_t stream) {
  check_shape("matmul_forward_fast_bf16", ldo, ldx, M, K, N);
  forward(out, ldo, x, ldx, w, M, K, N, layout, accumulate, kFastBf16, handle, stream);
}

void matmul_backward_fast_bf16(float* dx, float* dw, const float* dout, int64_t ldo, const float* x,
                               int64_t ldx, const float* w, int64_t M, int64_t K, int64_t N,
                               WLayout layout, bool accumulate_dx, cublasHandle_t handle,
                               cudaStream_t stream) {
  check_shape("matmul_backward_fast_bf16", ldo, ldx, M, K, N);
  backward(dx, ldx, dw, dout, ldo, x, ldx, w, M, K, N, layout, accumulate_dx, kFastBf16, kFastBf16,
           handle, stream);
}

}  // namespace rwkv::cuda
