#pragma once
// Token embedding over a vocabulary slab on the GPU: the math and layouts of the
// CPU kernels kernels/cpu/embedding.h (Megatron-LM's VocabParallelEmbedding: rows
// [v0, v1) of emb; ids outside them give zero rows and no gradient). Ids are trusted
// (the model checks them). All pointers are device pointers; launches go to `stream`;
// nothing is allocated or synchronised. Bad shapes throw rwkv::Error naming the function.
// E, the element type of out and dout: float or Bf16, both instantiated (rounded once,
// widened); emb and demb are fp32.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace rwkv::cuda {

// out [n, C]: row i = emb[idx[i] - v0] when v0 <= idx[i] < v1, else 0. emb [v1 - v0, C].
template <typename E>
void embedding_forward(E* out, const int32_t* idx, const float* emb, int64_t n, int64_t C,
                       int64_t v0, int64_t v1, cudaStream_t stream);

// Bytes of device scratch embedding_backward needs for n ids and the slab [v0, v1).
size_t embedding_backward_scratch_bytes(int64_t n, int64_t v0, int64_t v1);

// demb [v1 - v0, C] += dout [n, C] scattered to the rows idx - v0 of the ids in the slab
// (repeated ids accumulate, in position order); the other ids are skipped. Unlike the
// CPU function it takes `scratch`, embedding_backward_scratch_bytes(n, v0, v1) bytes
// (256-byte aligned): the positions are sorted by id (a stable radix sort) so that each
// row of demb is summed by one thread per column in a fixed order, without atomics:
// the result is bitwise reproducible.
template <typename E>
void embedding_backward(float* demb, const E* dout, const int32_t* idx, int64_t n, int64_t C,
                        int64_t v0, int64_t v1, void* scratch, cudaStream_t stream);

}  // namespace rwkv::cuda
