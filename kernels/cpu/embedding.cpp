#include "kernels/cpu/embedding.h"

namespace rwkv::kernels {

template <typename F>
void embedding_forward(F* out, const int32_t* idx, const F* emb, int64_t n, int64_t C) {
  for (int64_t i = 0; i < n; ++i) {
    const F* row = emb + static_cast<int64_t>(idx[i]) * C;
    for (int64_t c = 0; c < C; ++c) out[i * C + c] = row[c];
  }
}

template <typename F>
void embedding_backward(F* demb, const F* dout, const int32_t* idx, int64_t n, int64_t C) {
  for (int64_t i = 0; i < n; ++i) {
    F* row = demb + static_cast<int64_t>(idx[i]) * C;
    for (int64_t c = 0; c < C; ++c) row[c] += dout[i * C + c];
  }
}

#define RWKV_INSTANTIATE(F)                                                           \
  template void embedding_forward<F>(F*, const int32_t*, const F*, int64_t, int64_t); \
  template void embedding_backward<F>(F*, const F*, const int32_t*, int64_t, int64_t);
RWKV_INSTANTIATE(float)
RWKV_INSTANTIATE(double)
#undef RWKV_INSTANTIATE

}  // namespace rwkv::kernels
