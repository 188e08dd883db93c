#pragma once
// Softmax cross-entropy and its gradient, plus RWKV-LM's L2Wrap term (RWKV-LM
// RWKV-v5/src/model.py class L2Wrap): the loss is unchanged, and the gradient of each
// position's largest logit gets factor * max_logit added (factor = 1e-4 / (B*T) in
// RWKV-LM), which pulls the logits towards 0.
//
// Two forms of the same op:
//   - the reference, cross_entropy_forward / _backward, over whole rows of logits;
//   - the vocab-parallel form the model runs (Megatron-LM's
//     vocab_parallel_cross_entropy, megatron/core/tensor_parallel/cross_entropy.py):
//     a tensor-parallel rank holds the columns [v0, v0 + Vl) of the logits (Vl >= 1)
//     and, per row, with the group's reductions in between (model/tensor_parallel.h),
//       ce_local_max   largest local logit and its column -> all_reduce_maxloc -> m, a
//       ce_local_sums  sum_j exp(logit_j - m), the target's logit -> all_reduce_sum -> S, z_t
//       ce_loss        loss = m + log(S) - z_t
//       ce_backward    the rank's columns of the gradient, from m, S and a.
//     With one rank (v0 = 0, Vl = V) this is the reference up to rounding: the
//     exponentials (fast_math.h's in float, within 1.5 ulp) are summed in 16 interleaved
//     partial sums, and the gradient is exp(logit - m) / S, not exp(logit - (m + log S)).
#include <cstdint>

namespace rwkv::kernels {

// losses [n] = logsumexp(logits[i]) - logits[i, targets[i]]; logits [n, V].
template <typename F>
void cross_entropy_forward(F* losses, const F* logits, const int32_t* targets, int64_t n,
                           int64_t V);

// dlogits [n, V] = scale * (softmax(logits) - onehot(target)), plus l2wrap_factor *
// max at each row's argmax (first one on ties). Overwrites dlogits.
template <typename F>
void cross_entropy_backward(F* dlogits, const F* logits, const int32_t* targets, int64_t n,
                            int64_t V, F scale, F l2wrap_factor);

// max [n], argmax [n]: each row's largest logit of logits [n, Vl] and its column in the
// whole vocabulary, v0 + j (the first on ties, so that MPI_MAXLOC's smallest index
// among equal values gives the reference's first argmax).
template <typename F>
void ce_local_max(F* max, int32_t* argmax, const F* logits, int64_t n, int64_t Vl, int64_t v0);

// With max [n] the row maxima over the whole vocabulary: sumexp[i] = sum_j exp(logits[i,
// j] - max[i]) over the local columns; target_logit[i] = logits[i, targets[i] - v0] when
// v0 <= targets[i] < v0 + Vl, else 0.
template <typename F>
void ce_local_sums(F* sumexp, F* target_logit, const F* logits, const int32_t* targets,
                   const F* max, int64_t n, int64_t Vl, int64_t v0);

// losses [n] = max[i] + log(sumexp[i]) - target_logit[i], all over the whole vocabulary.
template <typename F>
void ce_loss(F* losses, const F* max, const F* sumexp, const F* target_logit, int64_t n);

// dlogits [n, Vl] = scale * (exp(logits - max) / sumexp - onehot(target)), plus
// l2wrap_factor * max[i] at column argmax[i] when it is local; max, sumexp and argmax
// are the whole vocabulary's. Overwrites dlogits, which may be logits (in place).
template <typename F>
void ce_backward(F* dlogits, const F* logits, const int32_t* targets, const F* max, const F* sumexp,
                 const int32_t* argmax, int64_t n, int64_t Vl, int64_t v0, F scale,
                 F l2wrap_factor);

}  // namespace rwkv::kernels
