#pragma once
// WKV of RWKV-5 and RWKV-6 (RWKV-LM RWKV-v5/src/model.py, x052 and x060): per head a
// state S of N x N, S[i][j] with i the key channel and j the value channel,
//   y_t[j]    = sum_i r_t[i] (u[i] k_t[i] v_t[j] + S_{t-1}[i][j])
//   S_t[i][j] = w_t[i] S_{t-1}[i][j] + k_t[i] v_t[j],      w_t = exp(lw_t).
// The kernels take the log decay lw <= 0: v5 lw = -exp(time_decay) (the same for
// every token), v6 lw = -exp(time_decay + lora(x)). u = time_faaaa [H, N].
//
// Tensors are row-major: per-token ones [B, T, H, N] (= [B, T, C], C = H*N); u [H, N];
// state [B, H, N, N]. Each function works on the heads [h0, h1) of every batch row
// (tensor parallelism gives each rank a range); pointers index the full tensors.
// F is float or double. Gradient outputs are overwritten for the heads [h0, h1) only.
//
// naive: the recurrence token by token (the reference).
// chunked: the same values computed chunk by chunk (chunk = L tokens; T need not be a
// multiple): inside a chunk, dense products with decays exp(cum lw difference) <= 1,
// between chunks the state recurrence; the token pairs of a chunk as products of
// decay-scaled matrices where its decays are mild, else one by one; see wkv6.cpp for
// the chunk equations.
// State pointers are not deduced (std::type_identity_t), so nullptr can be passed.
#include <type_traits>

namespace rwkv::kernels {

// y [B, T, H, N]. state_in null = zeros; state_out null = not wanted.
template <typename F>
void wkv6_forward_naive(int B, int T, int H, int N, int h0, int h1, const F* r, const F* k,
                        const F* v, const F* lw, const F* u, F* y,
                        const std::type_identity_t<F>* state_in,
                        std::type_identity_t<F>* state_out);

// Gradients for dy [B, T, H, N] from a zero initial state: dr, dk, dv, dlw [B, T, H, N];
// du [H, N] (sum over B and T).
template <typename F>
void wkv6_backward_naive(int B, int T, int H, int N, int h0, int h1, const F* r, const F* k,
                         const F* v, const F* lw, const F* u, const F* dy, F* dr, F* dk, F* dv,
                         F* dlw, F* du);

template <typename F>
void wkv6_forward_chunked(int B, int T, int H, int N, int h0, int h1, const F* r, const F* k,
                          const F* v, const F* lw, const F* u, F* y,
                          const std::type_identity_t<F>* state_in,
                          std::type_identity_t<F>* state_out, int chunk);

template <typename F>
void wkv6_backward_chunked(int B, int T, int H, int N, int h0, int h1, const F* r, const F* k,
                           const F* v, const F* lw, const F* u, const F* dy, F* dr, F* dk, F* dv,
                           F* dlw, F* du, int chunk);

}  // namespace rwkv::kernels
