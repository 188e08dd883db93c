#include "kernels/cpu/cross_entropy.h"

#include <cmath>

namespace rwkv::kernels {

namespace {

// (max, argmax, log-sum-exp) of one row.
template <typename F>
void row_stats(const F* row, int64_t V, F* max_out, int64_t* arg_out, F* lse_out) {
  F mx = row[0];
  int64_t arg = 0;
  for (int64_t j = 1; j < V; ++j)
    if (row[j] > mx) {
      mx = row[j];
      arg = j;
    }
  F sum = 0;
  for (int64_t j = 0; j < V; ++j) sum += std::exp(row[j] - mx);
  *max_out = mx;
  *arg_out = arg;
  *lse_out = mx + std::log(sum);
}

}  // namespace

template <typename F>
void cross_entropy_forward(F* losses, const F* logits, const int32_t* targets, int64_t n,
                           int64_t V) {
  for (int64_t i = 0; i < n; ++i) {
    const F* row = logits + i * V;
    F mx, lse;
    int64_t arg;
    row_stats(row, V, &mx, &arg, &lse);
    losses[i] = lse - row[targets[i]];
  }
}

template <typename F>
void cross_entropy_backward(F* dlogits, const F* logits, const int32_t* targets, int64_t n,
                            int64_t V, F scale, F l2wrap_factor) {
  for (int64_t i = 0; i < n; ++i) {
    const F* row = logits + i * V;
    F* drow = dlogits + i * V;
    F mx, lse;
    int64_t arg;
    row_stats(row, V, &mx, &arg, &lse);
    for (int64_t j = 0; j < V; ++j) drow[j] = scale * std::exp(row[j] - lse);
    drow[targets[i]] -= scale;
    drow[arg] += l2wrap_factor * mx;
  }
}

#define RWKV_INSTANTIATE(F)                                                               \
  template void cross_entropy_forward<F>(F*, const F*, const int32_t*, int64_t, int64_t); \
  template void cross_entropy_backward<F>(F*, const F*, const int32_t*, int64_t, int64_t, F, F);
RWKV_INSTANTIATE(float)
RWKV_INSTANTIATE(double)
#undef RWKV_INSTANTIATE

}  // namespace rwkv::kernels
