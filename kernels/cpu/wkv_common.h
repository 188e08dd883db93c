#pragma once
// Helpers shared by the WKV kernels (wkv4.cpp, wkv6.cpp, wkv7.cpp): a vectorisable exp,
// chunk decays, a row-major GEMM wrapper over OpenBLAS, state loading, argument checks.
#include <cblas.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <vector>

#include "common/error.h"

namespace rwkv::kernels::wkv_detail {

// e^x in fp32 without a libm call, so loops over channels vectorise (libm's expf does
// not, without -ffast-math). Cephes expf: x = n ln2 + r, |r| <= ln2/2, e^r by a
// degree-7 polynomial, 2^n put into the exponent bits; relative error ~2e-7 (a few
// ulp). For x <= 88 (the WKV kernels only take exps of numbers <= 0). x < -87.3 (e^x
// below the smallest normal float) gives 0; NaN gives NaN. The range tests are on the
// integer bits: a float compare would stop GCC from vectorising (-ftrapping-math).
inline float fast_exp(float x) {
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float t = x * 1.44269504088896341f + magic;
  const float n = t - magic;
  const uint32_t ni = std::bit_cast<uint32_t>(t) - std::bit_cast<uint32_t>(magic);
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const float y = p * std::bit_cast<float>((ni + 127u) << 23);
  // Negative floats order like their bits as unsigned: x < -87.3 <=> bits > bits(-87.3).
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  const bool is_nan = (bits & 0x7fffffffu) > 0x7f800000u;
  const bool tiny = bits > std::bit_cast<uint32_t>(-87.3f);
  const uint32_t keep = 0u - uint32_t(is_nan || !tiny);
  return std::bit_cast<float>(std::bit_cast<uint32_t>(y) & keep);
}
// Double is the test precision: libm.
inline double fast_exp(double x) { return std::exp(x); }

// e^{a - b} for cumulative log decays a >= b (a value in (0, 1]). The cumulative sums
// are kept in double: in fp32 a difference of two sums near -1000 would be off by
// ~1e-4, an error of 1e-4 in every decay; in double it is exact. The exp is in F.
template <typename F>
F decay(double a, double b) {
  return fast_exp(F(a - b));
}

// Row-major C = alpha op(A) op(B) + beta C; op(X) = X^T when tX.
inline void gemm(bool ta, bool tb, int m, int n, int kd, float alpha, const float* a, int lda,
                 const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
              kd, alpha, a, lda, b, ldb, beta, c, ldc);
}
inline void gemm(bool ta, bool tb, int m, int n, int kd, double alpha, const double* a, int lda,
                 const double* b, int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n,
              kd, alpha, a, lda, b, ldb, beta, c, ldc);
}

// Row-major y = op(A) x (A is m x n, op(A) = A^T when ta), y overwritten.
inline void gemv(bool ta, int m, int n, const float* a, int lda, const float* x, float* y) {
  cblas_sgemv(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, m, n, 1.0f, a, lda, x, 1, 0.0f, y, 1);
}
inline void gemv(bool ta, int m, int n, const double* a, int lda, const double* x, double* y) {
  cblas_dgemv(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, m, n, 1.0, a, lda, x, 1, 0.0, y, 1);
}

// Throws rwkv::Error naming the function unless 0 <= h0 <= h1 <= H, N > 0, chunk > 0.
// S <- the state of one head from state_in [B, H, N, N] at offset ofs, or zeros when
// there is no initial state.
template <typename F>
void load_state(std::vector<F>& S, const F* state_in, size_t ofs) {
  if (state_in) {
    std::copy(state_in + ofs, state_in + ofs + S.size(), S.begin());
  } else {
    std::fill(S.begin(), S.end(), F(0));
  }
}

inline void check_heads(const char* fn, int B, int T, int H, int N, int h0, int h1, int chunk) {
  if (B < 0 || T < 0 || H < 0 || N <= 0 || h0 < 0 || h1 > H || h0 > h1 || chunk <= 0) {
    std::ostringstream msg;
    msg << fn << ": bad shape B=" << B << " T=" << T << " H=" << H << " N=" << N << ", head range ["
        << h0 << ", " << h1 << ") or chunk=" << chunk;
    throw Error(msg.str());
  }
}

}  // namespace rwkv::kernels::wkv_detail
