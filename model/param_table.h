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
#include "model/tensor_parallel.h"

namespace rwkv::model {

// How tensor parallelism (model/tensor_parallel.h) treats a parameter.
enum class TpPart {
  whole,    // replicated, and every rank computes the whole gradient (LayerNorms,
            // the v4-v6 FFN receptance and its mixing vector)
  partial,  // replicated, each rank computes a partial gradient (token-shift mixing
            // vectors, LoRA down projections): summed across the group
  heads,    // split by heads / attention channels (column- or row-parallel)
  ffn,      // split along dim_ffn
  vocab,    // split along the vocabulary
};

struct ParamInfo {
  std::string name;            // e.g. "blocks.3.att.key.weight"
  std::vector<int64_t> shape;  // official shape, e.g. {C, C} or {1, 1, C}
  int64_t offset = 0;          // into the flat buffer
  int64_t size = 0;            // elements this rank holds (the whole tensor at tp = 1)
  // The rank holds rows [slab_begin, slab_begin + slab_len) of dimension split_dim of
  // the official shape; split_dim = -1: the whole tensor.
  TpPart tp = TpPart::whole;
  int split_dim = -1;
  int64_t slab_begin = 0, slab_len = 0;
  // RWKV-LM configure_optimizers (layerwise_lr on): lr_2x / lr_3x groups, and weight
  // decay only for matrices named *.weight.
  double lr_mult = 1.0;
  double wd_mult = 0.0;

  int64_t whole_size() const;                // product of shape
  std::vector<int64_t> local_shape() const;  // shape with the slab's length at split_dim
  // Calls fn(whole_offset, slab_offset, count) for each contiguous run of the slab
  // (row-major), in increasing order.
  template <typename Fn>
  void for_each_run(Fn&& fn) const;
  // Copies this rank's slab [size] out of the whole tensor [whole_size()].
  template <typename A, typename B>
  void slab_from_whole(const A* whole, B* slab) const;
};

struct ParamTable {
  std::vector<ParamInfo> params;  // in the official state_dict order
  int64_t total = 0;

  // nullptr when the model has no such parameter.
  const ParamInfo* find(const std::string& name) const;
  // AdamW segments, one per parameter.
  std::vector<kernels::AdamWSegment> adamw_segments() const;
};

// The table of TP rank `tp` (offsets and sizes of its slabs); the default is the whole
// model.
ParamTable build_param_table(const ModelConfig& cfg, TpRank tp = {});

template <typename Fn>
void ParamInfo::for_each_run(Fn&& fn) const {
  if (split_dim < 0) {
    fn(int64_t{0}, int64_t{0}, size);
    return;
  }
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < split_dim; ++d) outer *= shape[static_cast<size_t>(d)];
  for (size_t d = static_cast<size_t>(split_dim) + 1; d < shape.size(); ++d) inner *= shape[d];
  const int64_t D = shape[static_cast<size_t>(split_dim)];
  for (int64_t o = 0; o < outer; ++o)
    fn((o * D + slab_begin) * inner, o * slab_len * inner, slab_len * inner);
}

template <typename A, typename B>
void ParamInfo::slab_from_whole(const A* whole, B* slab) const {
  for_each_run([&](int64_t w, int64_t s, int64_t len) {
    for (int64_t i = 0; i < len; ++i) slab[s + i] = static_cast<B>(whole[w + i]);
  });
}

}  // namespace rwkv::model
