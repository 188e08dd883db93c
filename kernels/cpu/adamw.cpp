#include "kernels/cpu/adamw.h"

#include <cmath>

#include "kernels/cpu/fast_math.h"

namespace rwkv::kernels {

// The loop vectorises: fast::sqrt (libm's in double) has no branch to a libm call.
template <typename F>
RWKV_CPU_SIMD void adamw_step(F* p, const F* g, F* m, F* v, std::span<const AdamWSegment> segments,
                              const AdamWHyper& h, int64_t t) {
  const double c1 = 1.0 - std::pow(h.beta1, static_cast<double>(t));
  const double c2 = 1.0 - std::pow(h.beta2, static_cast<double>(t));
  const F b1 = static_cast<F>(h.beta1), b2 = static_cast<F>(h.beta2);
  const F eps = static_cast<F>(h.eps);
  for (const AdamWSegment& s : segments) {
    const F lr = static_cast<F>(h.lr * s.lr_mult);
    const F wd = static_cast<F>(h.weight_decay * s.wd_mult);
    const F inv_c1 = static_cast<F>(1.0 / c1), inv_c2 = static_cast<F>(1.0 / c2);
    for (int64_t i = s.offset; i < s.offset + s.size; ++i) {
      m[i] = b1 * m[i] + (F(1) - b1) * g[i];
      v[i] = b2 * v[i] + (F(1) - b2) * g[i] * g[i];
      const F update = m[i] * inv_c1 / (fast::sqrt(v[i] * inv_c2) + eps);
      p[i] -= lr * (update + wd * p[i]);
    }
  }
}

template void adamw_step<float>(float*, const float*, float*, float*, std::span<const AdamWSegment>,
                                const AdamWHyper&, int64_t);
template void adamw_step<double>(double*, const double*, double*, double*,
                                 std::span<const AdamWSegment>, const AdamWHyper&, int64_t);

}  // namespace rwkv::kernels
