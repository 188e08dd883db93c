#include "kernels/cpu/grad_norm.h"

namespace rwkv::kernels {

template <typename F>
double sum_squares(const F* x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  return s;
}

template <typename F>
void scale(F* x, F s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

#define RWKV_INSTANTIATE(F)                          \
  template double sum_squares<F>(const F*, int64_t); \
  template void scale<F>(F*, F, int64_t);
RWKV_INSTANTIATE(float)
RWKV_INSTANTIATE(double)
#undef RWKV_INSTANTIATE

}  // namespace rwkv::kernels
