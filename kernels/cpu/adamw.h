#pragma once
// AdamW, one step over a flat parameter buffer (llm.c style), with per-parameter
// learning-rate and weight-decay multipliers (RWKV-LM configure_optimizers: lr_2x /
// lr_3x groups, weight decay only on matrices). Decoupled decay as DeepSpeed
// FusedAdam(adam_w_mode=True), with bias correction:
//   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
//   p -= lr_i * (m / (1-b1^t) / (sqrt(v / (1-b2^t)) + eps) + wd_i * p)
#include <cstdint>
#include <span>

#include "kernels/op_types.h"

namespace rwkv::kernels {

// p, g, m, v index the whole flat buffer; step t counts from 1.
template <typename F>
void adamw_step(F* p, const F* g, F* m, F* v, std::span<const AdamWSegment> segments,
                const AdamWHyper& h, int64_t t);

}  // namespace rwkv::kernels
