#include "kernels/cpu/cross_entropy.h"

#include <bit>
#include <cmath>
#include <limits>
#include <type_traits>

#include "kernels/cpu/fast_math.h"

namespace rwkv::kernels {

namespace {

// (max, argmax, log-sum-exp) of one row: the reference, plain loops and libm's exp.
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

// The vocab-parallel form vectorises. ce_local_max: two passes over integer keys that
// order like the floats (magnitude bits flipped for negative ones: -0 < +0, and NaNs
// lie beyond +-inf, so a row with a NaN gets a NaN maximum: its loss is NaN either way),
// a max reduction, then the smallest column holding the maximum's bits, a min
// reduction. Sums of exponentials with fast::exp (libm's in double), in fast::sum's 16
// interleaved partial sums.
template <typename F>
RWKV_CPU_SIMD void ce_local_max(F* max, int32_t* argmax, const F* logits, int64_t n, int64_t Vl,
                                int64_t v0) {
  using I = std::conditional_t<sizeof(F) == 4, int32_t, int64_t>;
  const I magnitude = std::numeric_limits<I>::max();
  for (int64_t i = 0; i < n; ++i) {
    const F* row = logits + i * Vl;
    I best = std::numeric_limits<I>::min();
    for (int64_t j = 0; j < Vl; ++j) {
      const I b = std::bit_cast<I>(row[j]);
      const I key = b ^ ((b >> (8 * sizeof(I) - 1)) & magnitude);
      best = key > best ? key : best;
    }
    const I best_bits = best ^ ((best >> (8 * sizeof(I) - 1)) & magnitude);
    I first = I(Vl);
    for (I j = 0; j < I(Vl); ++j) {
      const I at = std::bit_cast<I>(row[j]) == best_bits ? j : I(Vl);
      first = at < first ? at : first;
    }
    max[i] = row[first];
    argmax[i] = static_cast<int32_t>(v0 + first);
  }
}

template <typename F>
RWKV_CPU_SIMD void ce_local_sums(F* sumexp, F* target_logit, const F* logits,
                                 const int32_t* targets, const F* max, int64_t n, int64_t Vl,
                                 int64_t v0) {
  for (int64_t i = 0; i < n; ++i) {
    const F* row = logits + i * Vl;
    const F mx = max[i];
    sumexp[i] = fast::sum<F>(Vl, [&](int64_t j) { return fast::exp(row[j] - mx); });
    const int64_t t = targets[i] - v0;
    target_logit[i] = (t >= 0 && t < Vl) ? row[t] : F(0);
  }
}

template <typename F>
void ce_loss(F* losses, const F* max, const F* sumexp, const F* target_logit, int64_t n) {
  for (int64_t i = 0; i < n; ++i) losses[i] = max[i] + std::log(sumexp[i]) - target_logit[i];
}

template <typename F>
RWKV_CPU_SIMD void ce_backward(F* dlogits, const F* logits, const int32_t* targets, const F* max,
                               const F* sumexp, const int32_t* argmax, int64_t n, int64_t Vl,
                               int64_t v0, F scale, F l2wrap_factor) {
  for (int64_t i = 0; i < n; ++i) {
    const F* row = logits + i * Vl;
    F* drow = dlogits + i * Vl;
    const F mx = max[i], c = scale / sumexp[i];
    for (int64_t j = 0; j < Vl; ++j) drow[j] = c * fast::exp(row[j] - mx);
    const int64_t t = targets[i] - v0, a = argmax[i] - v0;
    if (t >= 0 && t < Vl) drow[t] -= scale;
    if (a >= 0 && a < Vl) drow[a] += l2wrap_factor * mx;
  }
}

#define RWKV_INSTANTIATE(F)                                                                      \
  template void cross_entropy_forward<F>(F*, const F*, const int32_t*, int64_t, int64_t);        \
  template void cross_entropy_backward<F>(F*, const F*, const int32_t*, int64_t, int64_t, F, F); \
  template void ce_local_max<F>(F*, int32_t*, const F*, int64_t, int64_t, int64_t);              \
  template void ce_local_sums<F>(F*, F*, const F*, const int32_t*, const F*, int64_t, int64_t,   \
                                 int64_t);                                                       \
  template void ce_loss<F>(F*, const F*, const F*, const F*, int64_t);                           \
  template void ce_backward<F>(F*, const F*, const int32_t*, const F*, const F*, const int32_t*, \
                               int64_t, int64_t, int64_t, F, F);
RWKV_INSTANTIATE(float)
RWKV_INSTANTIATE(double)
#undef RWKV_INSTANTIATE

}  // namespace rwkv::kernels
