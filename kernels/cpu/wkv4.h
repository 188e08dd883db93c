#pragma once
// WKV of RWKV-4 (RWKV-LM RWKV-v4neo/src/model.py, cuda/wkv_cuda.cu): a per-channel
// exponentially decaying weighted average of the values,
//   wkv_t = (sum_{i<t} e^{-(t-1-i)w + k_i} v_i + e^{u+k_t} v_t)
//         / (sum_{i<t} e^{-(t-1-i)w + k_i}     + e^{u+k_t}),
// with w = exp(time_decay) > 0 and u = time_first. Evaluated in the numerically
// stable form of the official kernel: the state of a channel is (aa, bb, pp), the
// numerator and denominator sums divided by e^pp, so no exp() of a large number is
// ever formed (k = 60 is fine in fp32).
//
// Tensors are row-major: per-token ones [B, T, C]; w, u [C]; state [B, C, 3] with
// (aa, bb, pp) per channel. Each function works on the channels [c0, c1) of every
// batch row (tensor parallelism gives each rank a range); pointers index the full
// tensors. F is float or double.
// State pointers are not deduced (std::type_identity_t), so nullptr can be passed.
#include <type_traits>

namespace rwkv::kernels {

// y [B, T, C] for channels [c0, c1). state_in null = the empty state (aa = bb = 0,
// pp = -1e38; an all-zero state is empty too); state_out null = not wanted.
template <typename F>
void wkv4_forward_naive(int B, int T, int C, int c0, int c1, const F* w, const F* u, const F* k,
                        const F* v, F* y, const std::type_identity_t<F>* state_in,
                        std::type_identity_t<F>* state_out);

// Gradients for dy [B, T, C], from the empty initial state: dk, dv [B, T, C] and
// dw, du [C] (sums over B and T; dw is d/dw of the positive w, not of time_decay).
// Outputs are overwritten for channels [c0, c1) only.
template <typename F>
void wkv4_backward_naive(int B, int T, int C, int c0, int c1, const F* w, const F* u, const F* k,
                         const F* v, const F* dy, F* dw, F* du, F* dk, F* dv);

}  // namespace rwkv::kernels
