#include "kernels/cpu/matmul.h"

#include <cblas.h>

namespace rwkv::kernels {

namespace {

void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, static_cast<int>(M), static_cast<int>(N), static_cast<int>(K),
              1.0f, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta, c,
              static_cast<int>(ldc));
}

void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K, const double* a,
          int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, static_cast<int>(M), static_cast<int>(N), static_cast<int>(K),
              1.0, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta, c,
              static_cast<int>(ldc));
}

}  // namespace

template <typename F>
void matmul_forward(F* out, int64_t ldo, const F* x, int64_t ldx, const F* w, int64_t M, int64_t K,
                    int64_t N, WLayout layout, bool accumulate) {
  const F beta = accumulate ? F(1) : F(0);
  if (layout == WLayout::OutIn)
    gemm(CblasNoTrans, CblasTrans, M, N, K, x, ldx, w, K, beta, out, ldo);
  else
    gemm(CblasNoTrans, CblasNoTrans, M, N, K, x, ldx, w, N, beta, out, ldo);
}

template <typename F>
void matmul_backward(F* dx, F* dw, const F* dout, int64_t ldo, const F* x, int64_t ldx, const F* w,
                     int64_t M, int64_t K, int64_t N, WLayout layout, bool accumulate_dx) {
  const F beta = accumulate_dx ? F(1) : F(0);
  if (layout == WLayout::OutIn) {
    // dx [M, K] (+)= dout [M, N] @ w [N, K]; dw [N, K] += dout^T @ x.
    if (dx) gemm(CblasNoTrans, CblasNoTrans, M, K, N, dout, ldo, w, K, beta, dx, ldx);
    if (dw) gemm(CblasTrans, CblasNoTrans, N, K, M, dout, ldo, x, ldx, F(1), dw, K);
  } else {
    // dx [M, K] (+)= dout [M, N] @ w^T (w [K, N]); dw [K, N] += x^T @ dout.
    if (dx) gemm(CblasNoTrans, CblasTrans, M, K, N, dout, ldo, w, N, beta, dx, ldx);
    if (dw) gemm(CblasTrans, CblasNoTrans, K, N, M, x, ldx, dout, ldo, F(1), dw, N);
  }
}

#define RWKV_INSTANTIATE(F)                                                                   \
  template void matmul_forward<F>(F*, int64_t, const F*, int64_t, const F*, int64_t, int64_t, \
                                  int64_t, WLayout, bool);                                    \
  template void matmul_backward<F>(F*, F*, const F*, int64_t, const F*, int64_t, const F*,    \
                                   int64_t, int64_t, int64_t, WLayout, bool);
RWKV_INSTANTIATE(float)
RWKV_INSTANTIATE(double)
#undef RWKV_INSTANTIATE

}  // namespace rwkv::kernels
