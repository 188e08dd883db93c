#pragma once
// The RWKV-specific pointwise pieces of time mixing on the GPU. The CPU kernels
// kernels/cpu/rwkv_pointwise.h define the math (RWKV-LM RWKV-v5/src/model.py,
// RWKV-v7/train_temp/src/model.py); these take the same arguments (device pointers)
// plus the stream. Tensors [n, C] with n = B*T unless stated. Forwards overwrite,
// except bonus_v7_forward which adds into out (as on the CPU); backwards add (+=) into
// every gradient given and skip null ones; the parameter gradients (dtime_decay, dw0,
// dk_a [C], dr_k [H, N]) are sums over the n rows in a fixed order (bitwise
// reproducible). E is the element type of the per-token tensors (float or Bf16, both
// instantiated; widened as read, rounded once as written); the parameters (time_decay,
// w0, k_a, r_k), their gradients and the bonus's scratch are fp32. Launches go to
// `stream`; nothing is allocated or synchronised. A negative size throws rwkv::Error
// naming the function.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace rwkv::cuda {

// lw = -exp(time_decay[c] + ww) (ww null for RWKV-5).
template <typename E>
void decay_v6_forward(E* lw, const float* time_decay, const E* ww, int64_t n, int64_t C,
                      cudaStream_t stream);
template <typename E>
void decay_v6_backward(float* dtime_decay, E* dww, const E* dlw, const E* lw, int64_t n, int64_t C,
                       cudaStream_t stream);

// lw = -exp(-0.5) * sigmoid(w0[c] + z).
template <typename E>
void decay_v7_forward(E* lw, const float* w0, const E* z, int64_t n, int64_t C,
                      cudaStream_t stream);
template <typename E>
void decay_v7_backward(float* dw0, E* dz, const E* dlw, const float* w0, const E* z, int64_t n,
                       int64_t C, cudaStream_t stream);

// out [n] = v + (v_first - v) * s.
template <typename E>
void value_residual_forward(E* out, const E* v, const E* v_first, const E* s, int64_t n,
                            cudaStream_t stream);
template <typename E>
void value_residual_backward(E* dv, E* dv_first, E* ds, const E* dout, const E* v, const E* v_first,
                             const E* s, int64_t n, cudaStream_t stream);

// out = k * (1 + (a - 1) * k_a[c]).
template <typename E>
void key_adjust_forward(E* out, const E* k, const E* a, const float* k_a, int64_t n, int64_t C,
                        cudaStream_t stream);
template <typename E>
void key_adjust_backward(E* dk, E* da, float* dk_a, const E* dout, const E* k, const E* a,
                         const float* k_a, int64_t n, int64_t C, cudaStream_t stream);

// wa [n] = -kk, wb [n] = kk * a.
template <typename E>
void wkv7_ab_forward(E* wa, E* wb, const E* kk, const E* a, int64_t n, cudaStream_t stream);
template <typename E>
void wkv7_ab_backward(E* dkk, E* da, const E* dwa, const E* dwb, const E* kk, const E* a, int64_t n,
                      cudaStream_t stream);

// out [n, H*N] += (sum_j r*k*r_k over the head) * v * g; r_k [H, N]; g [n, H*N] the
// output gate or null (none; dg is then ignored). The per-(row, head) sums go through
// scratch: bonus_v7_scratch_floats(n, H) floats of device memory (a null scratch throws).
int64_t bonus_v7_scratch_floats(int64_t n, int64_t H);
template <typename E>
void bonus_v7_forward(E* out, const E* r, const E* k, const E* v, const float* r_k, const E* g,
                      int64_t n, int64_t H, int64_t N, float* scratch, cudaStream_t stream);
template <typename E>
void bonus_v7_backward(E* dr, E* dk, E* dv, float* dr_k, E* dg, const E* dout, const E* r,
                       const E* k, const E* v, const float* r_k, const E* g, int64_t n, int64_t H,
                       int64_t N, float* scratch, cudaStream_t stream);

}  // namespace rwkv::cuda
