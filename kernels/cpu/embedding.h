#pragma once
// Token embedding over a vocabulary slab (Megatron-LM's VocabParallelEmbedding): a
// tensor-parallel rank holds the rows [v0, v1) of emb; ids outside them give zero
// rows, and the TP group's sum of the ranks' outputs is nn.Embedding. One rank holds
// the whole table (v0 = 0, v1 = V). Ids are checked by the caller (the model names
// the offending position); the kernel trusts them.
#include <cstdint>

namespace rwkv::kernels {

// out [n, C]: row i = emb[idx[i] - v0] when v0 <= idx[i] < v1, else 0. emb [v1 - v0, C].
template <typename F>
void embedding_forward(F* out, const int32_t* idx, const F* emb, int64_t n, int64_t C, int64_t v0,
                       int64_t v1);

// demb [v1 - v0, C] += dout [n, C] scattered to the rows idx - v0 of the ids in the
// slab (repeated ids accumulate); the other ids are skipped.
template <typename F>
void embedding_backward(F* demb, const F* dout, const int32_t* idx, int64_t n, int64_t C,
                        int64_t v0, int64_t v1);

}  // namespace rwkv::kernels
