#pragma once
// WKV of RWKV-7 "Goose" (RWKV-LM RWKV-v7/train_temp/src/model.py and cuda/wkv7_cuda.cu):
// a generalised delta rule. Per head a state S of N x N, S[i][j] with i the value
// channel and j the key channel,
//   S_t = S_{t-1} diag(w_t) + (S_{t-1} a_t) b_t^T + v_t k_t^T,    w_t = exp(lw_t)
//   y_t = S_t r_t.
// lw <= 0 is the log decay; a and b are general vectors (the model passes a = -kk and
// b = kk * a_coef, kk the L2-normalised key of the head).
//
// Tensors are row-major: per-token ones [B, T, H, N] (= [B, T, C], C = H*N); state
// [B, H, N, N]. Each function works on the heads [h0, h1) of every batch row (tensor
// parallelism gives each rank a range); pointers index the full tensors. F is float
// or double. Gradient outputs are overwritten for the heads [h0, h1) only.
//
// naive: the recurrence token by token (the reference); its backward keeps all T
// states of a head.
// chunked forward: chunks of up to L tokens (shorter where decays are strong: see
// wkv_detail::chunk_length); inside a chunk the values S_{t-1} a_t come from one unit
// lower-triangular solve (the WY / UT form of the delta rule, as in
// flash-linear-attention's chunked DPLR kernels), the rest are dense products of
// decay-scaled matrices; between chunks the state recurrence. See wkv7.cpp for the
// chunk equations.
// chunked backward: it needs the state entering each chunk and the chunk's values
// S_{t-1} a_t (O(T N + T/L N^2) memory per head): from the checkpoints its forward kept,
// or else from a forward pass over the chunks of its own; then, chunk by chunk from the
// last, the chunk's matrices are recomputed and the reverse-mode of the chunk equations
// gives the gradients and the gradient of the entering state.
// State and checkpoint pointers are not deduced (std::type_identity_t), so nullptr can
// be passed.
#include <cstddef>
#include <type_traits>

namespace rwkv::kernels {

// y [B, T, H, N]. state_in null = zeros; state_out null = not wanted.
template <typename F>
void wkv7_forward_naive(int B, int T, int H, int N, int h0, int h1, const F* r, const F* lw,
                        const F* k, const F* v, const F* a, const F* b, F* y,
                        const std::type_identity_t<F>* state_in,
                        std::type_identity_t<F>* state_out);

// Gradients for dy [B, T, H, N] from a zero initial state: dr, dlw, dk, dv, da, db,
// all [B, T, H, N].
template <typename F>
void wkv7_backward_naive(int B, int T, int H, int N, int h0, int h1, const F* r, const F* lw,
                         const F* k, const F* v, const F* a, const F* b, const F* dy, F* dr, F* dlw,
                         F* dk, F* dv, F* da, F* db);

// Floats of the checkpoints the chunked forward keeps for its backward: the state
// entering every chunk and the chunk's [v; S_{t-1} a_t], [B, H, ceil(T / L), N, N] +
// [B, H, 2 T, N] (at N = 64 and L = 16 six floats per input element).
size_t wkv7_checkpoint_floats(int B, int T, int H, int N, int chunk);

// ckpt: null, or wkv7_checkpoint_floats(B, T, H, N, chunk) values that this call fills
// for the heads [h0, h1), to be passed to wkv7_backward_chunked.
template <typename F>
void wkv7_forward_chunked(int B, int T, int H, int N, int h0, int h1, const F* r, const F* lw,
                          const F* k, const F* v, const F* a, const F* b, F* y,
                          const std::type_identity_t<F>* state_in,
                          std::type_identity_t<F>* state_out, int chunk,
                          std::type_identity_t<F>* ckpt = nullptr);

// ckpt: null (the backward recomputes the states from a zero initial state), or what
// wkv7_forward_chunked wrote with the same shape, head range, chunk and inputs (the
// gradients are then those of that forward, from its initial state). Where strong
// decays cut more chunks than the checkpoints hold, that batch row recomputes.
template <typename F>
void wkv7_backward_chunked(int B, int T, int H, int N, int h0, int h1, const F* r, const F* lw,
                           const F* k, const F* v, const F* a, const F* b, const F* dy, F* dr,
                           F* dlw, F* dk, F* dv, F* da, F* db, int chunk,
                           const std::type_identity_t<F>* ckpt = nullptr);

}  // namespace rwkv::kernels
