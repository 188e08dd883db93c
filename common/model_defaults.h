#pragma once
// Model defaults shared by the config validation (common/) and the model (model/),
// header-only so that GPU-only builds of the model need none of common's libraries.
#include <cstdint>

namespace rwkv {

// The official channel-mix width for a version (RWKV-LM): 4C for v4/v7,
// int(3.5C)//32*32 for v5/v6.
inline int64_t default_dim_ffn(int64_t version, int64_t n_embd) {
  if (version == 5 || version == 6) return (n_embd * 7 / 2) / 32 * 32;
  return 4 * n_embd;
}

// Tensor parallelism splits the vocabulary in slabs of ceil(V / tp) rows, the last one
// shorter (model/tensor_parallel.h).
inline int64_t vocab_slab_rows(int64_t vocab_size, int64_t tp) {
  return (vocab_size + tp - 1) / tp;
}

// Whether every one of the tp ranks gets at least one vocabulary row.
inline bool vocab_splits(int64_t vocab_size, int64_t tp) {
  return vocab_slab_rows(vocab_size, tp) * (tp - 1) < vocab_size;
}

}  // namespace rwkv
