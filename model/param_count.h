#pragma once
// Parameter counts and training FLOPs per token, for `rwkv config show` and the
// throughput numbers of the benchmarks (formula in docs/model.md).
#include <cstdint>

#include "model/model_config.h"

namespace rwkv::model {

struct ParamCounts {
  int64_t total = 0;
  int64_t embedding = 0;  // emb.weight
  int64_t blocks = 0;     // blocks.* (ln0 included)
  int64_t head = 0;       // ln_out + head.weight
};

ParamCounts count_params(const ModelConfig& cfg);

struct FlopCounts {
  int64_t matmul_params = 0;  // weights used in a product per token (emb excluded)
  int64_t wkv_forward = 0;    // WKV recurrence FLOPs per token, forward
  // 6 * matmul_params + 3 * wkv_forward: forward 2 per weight, backward twice forward.
  int64_t training_per_token = 0;
};

FlopCounts count_flops(const ModelConfig& cfg);

}  // namespace rwkv::model
