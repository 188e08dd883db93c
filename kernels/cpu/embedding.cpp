#include "kernels/cpu/embedding.h"

#include <algorithm>

namespace rwkv::kernels {

template <typename F>
void embedding_forward(F* out, const int32_t* idx, const F* emb, int64_t n, int64_t C, int64_t v0,
                       int64_t v1) {
  for (int64_t i = 0; i < n; ++i) {
    F* o = out + i * C;
    if (idx[i] < v0 || idx[i] >= v1) {
      std::fill(o, o + C, F(0));
      continue;
    }
    const F* row = emb + (idx[i] - v0) * C;
    std::copy(row, row + C, o);
  }
}

template <typename F>
void embedding_backward(F* demb, const F* dout, const int32_t* idx, int64_t n, int64_t C,
                        int64_t v0, int64_t v1) {
  for (int64_t i = 0; i < n; ++i) {
    if (idx[i] < v0 || idx[i] >= v1) continue;
    F* row = demb + (idx[i] - v0) * C;
    for (int64_t c = 0; c < C; ++c) row[c] += dout[i * C + c];
  }
}

#define RWKV_INSTANTIATE(F)                                                                    \
  template void embedding_forward<F>(F*, const int32_t*, const F*, int64_t, int64_t, int64_t,  \
                                     int64_t);                                                 \
  template void embedding_backward<F>(F*, const F*, const int32_t*, int64_t, int64_t, int64_t, \
                                      int64_t);
RWKV_INSTANTIATE(float)
RWKV_INSTANTIATE(double)
#undef RWKV_INSTANTIATE

}  // namespace rwkv::kernels
