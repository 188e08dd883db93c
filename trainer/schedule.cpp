#include "trainer/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "common/error.h"

namespace rwkv::trainer {

DecayKind decay_kind_from_name(const std::string& name) {
  if (name == "cosine") return DecayKind::cosine;
  if (name == "exponential") return DecayKind::exponential;
  throw Error("optimizer.schedule: '" + name + "' is not cosine or exponential");
}

double learning_rate(const Schedule& s, int64_t step, uint64_t tokens) {
  const double warmup_tokens =
      static_cast<double>(s.warmup_steps) * static_cast<double>(s.tokens_per_step);
  const double span = static_cast<double>(s.total_tokens) - warmup_tokens;
  const double progress =
      span <= 0 ? 1.0 : std::clamp((static_cast<double>(tokens) - warmup_tokens) / span, 0.0, 1.0);
  double lr = s.lr_init;
  if (s.lr_final != s.lr_init) {
    if (s.decay == DecayKind::cosine && s.lr_init > 0) {
      const double f = s.lr_final / s.lr_init;
      lr = s.lr_init * ((0.5 + f / 2) + (0.5 - f / 2) * std::cos(std::numbers::pi * progress));
    } else if (s.decay == DecayKind::exponential && s.lr_init > 0 && s.lr_final > 0) {
      lr = s.lr_init * std::exp(std::log(s.lr_final / s.lr_init) * progress);
    } else {
      lr = s.lr_init + (s.lr_final - s.lr_init) * progress;
    }
  }
  if (step < s.warmup_steps)
    lr *= 0.01 + 0.99 * static_cast<double>(step) / static_cast<double>(s.warmup_steps);
  return lr;
}

}  // namespace rwkv::trainer
