#include "kernels/cpu/grad_norm.h"

#include "kernels/cpu/fast_math.h"

namespace rwkv::kernels {

// In fast::sum's 16 interleaved partial sums (a fixed order: the same bits every time),
// which vectorise: one running double sum is a chain of dependent adds (the whole
// gradient, every step of `rwkv train` with optimizer.grad_clip; 29 M floats on one core
// of the dev VM: 25 ms, in partial sums 7 ms).
template <typename F>
RWKV_CPU_SIMD double sum_squares(const F* x, int64_t n) {
  return fast::sum<double>(n, [&](int64_t i) {
    const double v = static_cast<double>(x[i]);
    return v * v;
  });
}

template <typename F>
RWKV_CPU_SIMD void scale(F* x, F s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

#define RWKV_INSTANTIATE(F)                          \
  template double sum_squares<F>(const F*, int64_t); \
  template void scale<F>(F*, F, int64_t);
RWKV_INSTANTIATE(float)
RWKV_INSTANTIATE(double)
#undef RWKV_INSTANTIATE

}  // namespace rwkv::kernels
