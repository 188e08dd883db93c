#pragma once
// Softmax cross-entropy fused with its gradient, plus RWKV-LM's L2Wrap term
// (RWKV-LM RWKV-v5/src/model.py class L2Wrap): the loss is unchanged, and the
// gradient of each position's largest logit gets factor * max_logit added
// (factor = 1e-4 / (B*T) in RWKV-LM), which pulls the logits towards 0.
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

}  // namespace rwkv::kernels
