#pragma once
// Token embedding: out[i] = emb[idx[i]] (nn.Embedding). Ids are checked by the
// caller (the model names the offending position); the kernel trusts them.
#include <cstdint>

namespace rwkv::kernels {

// out [n, C] = emb[idx[i]], emb [V, C].
template <typename F>
void embedding_forward(F* out, const int32_t* idx, const F* emb, int64_t n, int64_t C);

// demb [V, C] += scatter of dout [n, C] to the rows idx.
template <typename F>
void embedding_backward(F* demb, const F* dout, const int32_t* idx, int64_t n, int64_t C);

}  // namespace rwkv::kernels
