#pragma once
// Every parameter of a model in one flat buffer (llm.c style), described by a table
// of (official name, official shape, offset). Names and shapes are the keys of the
// official RWKV-LM checkpoints (RWKV-v4neo, RWKV-v5 (x052 = v5, x060 = v6), RWKV-v7
// train_temp), singleton dims included, so an exported model loads into the official
// inference code unchanged. The optimizer, all-reduce and checkpoints see one array.
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/op_types.h"
#include "model/model_config.h"

namespace rwkv::model {

struct ParamInfo {
  std::string name;            // e.g. "blocks.3.att.key.weight"
  std::vector<int64_t> shape;  // official shape, e.g. {C, C} or {1, 1, C}
  int64_t offset = 0;          // into the flat buffer
  int64_t size = 0;            // product of shape
  // RWKV-LM configure_optimizers (layerwise_lr on): lr_2x / lr_3x groups, and weight
  // decay only for matrices named *.weight.
  double lr_mult = 1.0;
  double wd_mult = 0.0;
};

struct ParamTable {
  std::vector<ParamInfo> params;  // in the official state_dict order
  int64_t total = 0;

  // nullptr when the model has no such parameter.
  const ParamInfo* find(const std::string& name) const;
  // AdamW segments, one per parameter.
  std::vector<kernels::AdamWSegment> adamw_segments() const;
};

ParamTable build_param_table(const ModelConfig& cfg);

}  // namespace rwkv::model
