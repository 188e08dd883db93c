// Products in both weight layouts, with strided (sliced) inputs and outputs:
// forward against a triple loop (float: max abs error < 1e-5; double < 1e-12),
// backward by central differences in double; the backward's overwriting dx.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/cpu/matmul.h"
#include "op_gradcheck.h"

namespace rwkv::kernels {
namespace {

using test::Vec;

TEST(Matmul, ForwardMatchesLoops) {
  const int64_t M = 5, K = 7, N = 3, ldx = 9, ldo = 4;
  for (WLayout layout : {WLayout::OutIn, WLayout::InOut}) {
    const Vec x = test::random_vec(M * ldx, 1), w = test::random_vec(K * N, 2);
    Vec out(M * ldo, 0.5);
    std::vector<float> xf(x.begin(), x.end()), wf(w.begin(), w.end()), outf(M * ldo, 0.5f);
    matmul_forward(out.data(), ldo, x.data(), ldx, w.data(), M, K, N, layout, false);
    matmul_forward(outf.data(), ldo, xf.data(), ldx, wf.data(), M, K, N, layout, false);
    for (int64_t i = 0; i < M; ++i) {
      for (int64_t j = 0; j < N; ++j) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k)
          s += x[i * ldx + k] * (layout == WLayout::OutIn ? w[j * K + k] : w[k * N + j]);
        EXPECT_NEAR(out[i * ldo + j], s, 1e-12);
        EXPECT_NEAR(outf[i * ldo + j], s, 1e-5);
      }
      EXPECT_EQ(out[i * ldo + 3], 0.5);  // outside the slice: untouched
    }
    Vec acc = out;
    matmul_forward(acc.data(), ldo, x.data(), ldx, w.data(), M, K, N, layout, true);
    EXPECT_NEAR(acc[0], 2 * out[0], 1e-12);
  }
}

TEST(Matmul, Gradients) {
  const int64_t M = 4, K = 5, N = 3, ldx = 6, ldo = 4;
  for (WLayout layout : {WLayout::OutIn, WLayout::InOut}) {
    Vec x = test::random_vec(M * ldx, 3), w = test::random_vec(K * N, 4);
    Vec R = test::random_vec(M * ldo, 5);
    for (int64_t i = 0; i < M; ++i) R[i * ldo + 3] = 0;  // the column outside the output slice
    Vec out(M * ldo), dx, dw;
    auto loss = [&] {
      matmul_forward(out.data(), ldo, x.data(), ldx, w.data(), M, K, N, layout, false);
      return test::dot(out, R);
    };
    auto backward = [&] {
      matmul_backward(dx.data(), dw.data(), R.data(), ldo, x.data(), ldx, w.data(), M, K, N, layout,
                      true);
    };
    // x's padding columns get no gradient; include them anyway (fd = 0 there too).
    test::check_gradients(loss, backward, {{"x", &x, &dx}, {"w", &w, &dw}});
  }
}

// accumulate_dx false: dx's slice is overwritten without being read (NaN there before
// does not leak), its padding columns are untouched; dw still accumulates.
TEST(Matmul, BackwardOverwritesDx) {
  const int64_t M = 4, K = 5, N = 3, ldx = 6, ldo = 4;
  for (WLayout layout : {WLayout::OutIn, WLayout::InOut}) {
    const Vec x = test::random_vec(M * ldx, 6), w = test::random_vec(K * N, 7);
    const Vec dout = test::random_vec(M * ldo, 8);
    Vec dx_ref(M * ldx, 0.0), dw_ref(K * N, 0.0);
    matmul_backward(dx_ref.data(), dw_ref.data(), dout.data(), ldo, x.data(), ldx, w.data(), M, K,
                    N, layout, true);
    Vec dx(M * ldx, std::nan("")), dw(K * N, 1.0);
    matmul_backward(dx.data(), dw.data(), dout.data(), ldo, x.data(), ldx, w.data(), M, K, N,
                    layout, false);
    for (int64_t i = 0; i < M; ++i) {
      for (int64_t k = 0; k < K; ++k) EXPECT_EQ(dx[i * ldx + k], dx_ref[i * ldx + k]);
      EXPECT_TRUE(std::isnan(dx[i * ldx + K]));  // padding: untouched
    }
    for (int64_t j = 0; j < K * N; ++j) EXPECT_NEAR(dw[j], 1.0 + dw_ref[j], 1e-12);
  }
}

}  // namespace
}  // namespace rwkv::kernels
