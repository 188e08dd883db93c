#pragma once
// The learning-rate schedule of RWKV-LM, with progress measured in tokens:
//   progress = clamp((tokens - warmup_tokens) / (total_tokens - warmup_tokens), 0, 1)
//   cosine:      lr = lr_init * ((0.5 + f/2) + (0.5 - f/2) * cos(pi * progress)),
//                f = lr_final / lr_init
//                (RWKV-v7/train_temp/src/trainer.py, on_train_batch_start)
//   exponential: lr = lr_init * exp(ln(lr_final / lr_init) * progress)
//                (RWKV-v5/src/trainer.py, where progress counts steps; here tokens, as
//                the cosine)
//   linear:      lr_init + (lr_final - lr_init) * progress when an end is 0 (RWKV-v5's
//                rule; for the cosine only lr_init = 0, where f is undefined)
//   warmup:      for step < warmup_steps, lr *= 0.01 + 0.99 * step / warmup_steps
// `step` counts the optimizer steps already taken (0 for the first, RWKV-LM's
// trainer.global_step), `tokens` the tokens trained on before this step, all ranks.
#include <cstdint>
#include <string>

namespace rwkv::trainer {

enum class DecayKind { cosine, exponential };

struct Schedule {
  double lr_init = 6e-4, lr_final = 6e-5;
  int64_t warmup_steps = 0;
  uint64_t tokens_per_step = 0;  // global batch x ctx_len
  uint64_t total_tokens = 0;     // train.steps x tokens_per_step
  DecayKind decay = DecayKind::cosine;
};

DecayKind decay_kind_from_name(const std::string& name);  // "cosine" or "exponential"

double learning_rate(const Schedule& s, int64_t step, uint64_t tokens);

}  // namespace rwkv::trainer
