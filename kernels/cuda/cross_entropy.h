#pragma once
// The vocab-parallel softmax cross-entropy on the GPU (Megatron-LM's
// vocab_parallel_cross_entropy, with RWKV-LM's L2Wrap term in the gradient): the four
// passes of the CPU kernels kernels/cpu/cross_entropy.h, which define the math. A rank
// holds the columns [v0, v0 + Vl) of the logits [n, Vl]; max, sumexp, target_logit and
// argmax [n] are per row, reduced over the tensor-parallel group between the passes.
//
// All pointers are device pointers. Sums and maxima over a row are fixed-order
// shared-memory trees: bitwise reproducible, and argmax is the first column on ties as
// on the CPU. Launches go to `stream`; nothing is allocated or synchronised. Bad shapes
// throw rwkv::Error naming the function. E, the element type of the logits and their
// gradient: float or Bf16, both instantiated (widened as read, the gradient rounded once);
// the per-row values are fp32.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace rwkv::cuda {

// max [n], argmax [n]: each row's largest local logit and its column v0 + j (first on ties).
template <typename E>
void ce_local_max(float* max, int32_t* argmax, const E* logits, int64_t n, int64_t Vl, int64_t v0,
                  cudaStream_t stream);

// sumexp[i] = sum_j exp(logits[i, j] - max[i]) over the local columns; target_logit[i] =
// logits[i, targets[i] - v0] when the target is local, else 0.
template <typename E>
void ce_local_sums(float* sumexp, float* target_logit, const E* logits, const int32_t* targets,
                   const float* max, int64_t n, int64_t Vl, int64_t v0, cudaStream_t stream);

// losses [n] = max[i] + log(sumexp[i]) - target_logit[i].
void ce_loss(float* losses, const float* max, const float* sumexp, const float* target_logit,
             int64_t n, cudaStream_t stream);

// Overwrites dlogits [n, Vl] = scale * (exp(logits - max) / sumexp - onehot(target)), plus
// l2wrap_factor * max[i] at column argmax[i] when it is local. dlogits may be logits.
template <typename E>
void ce_backward(E* dlogits, const E* logits, const int32_t* targets, const float* max,
                 const float* sumexp, const int32_t* argmax, int64_t n, int64_t Vl, int64_t v0,
                 float scale, float l2wrap_factor, cudaStream_t stream);

}  // namespace rwkv::cuda
