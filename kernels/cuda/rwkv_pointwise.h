#pragma once
// The RWKV-specific pointwise pieces of time mixing on the GPU, fp32. The CPU kernels
// kernels/cpu/rwkv_pointwise.h define the math (RWKV-LM RWKV-v5/src/model.py,
// RWKV-v7/train_temp/src/model.py); these take the same arguments (device pointers)
// plus the stream. Tensors [n, C] with n = B*T unless stated. Forwards overwrite,
// except bonus_v7_forward which adds into out (as on the CPU); backwards add (+=) into
// every gradient given and skip null ones; the parameter gradients (dtime_decay, dw0,
// dk_a [C], dr_k [H, N]) are sums over the n rows in a fixed order (bitwise
// reproducible). Launches go to `stream`; nothing is allocated or synchronised. A
// negative size throws rwkv::Error naming the function.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace rwkv::cuda {

// lw = -exp(time_decay[c] + ww) (ww null for RWKV-5).
void decay_v6_forward(float* lw, const float* time_decay, const float* ww, int64_t n, int64_t C,
                      cudaStream_t stream);
void decay_v6_backward(float* dtime_decay, float* dww, const float* dlw, const float* lw, int64_t n,
                       int64_t C, cudaStream_t stream);

// lw = -exp(-0.5) * sigmoid(w0[c] + z).
void decay_v7_forward(float* lw, const float* w0, const float* z, int64_t n, int64_t C,
                      cudaStream_t stream);
void decay_v7_backward(float* dw0, float* dz, const float* dlw, const float* w0, const float* z,
                       int64_t n, int64_t C, cudaStream_t stream);

// out [n] = v + (v_first - v) * s.
void value_residual_forward(float* out, const float* v, const float* v_first, const float* s,
                            int64_t n, cudaStream_t stream);
void value_residual_backward(float* dv, float* dv_first, float* ds, const float* dout,
                             const float* v, const float* v_first, const float* s, int64_t n,
                             cudaStream_t stream);

// out = k * (1 + (a - 1) * k_a[c]).
void key_adjust_forward(float* out, const float* k, const float* a, const float* k_a, int64_t n,
                        int64_t C, cudaStream_t stream);
void key_adjust_backward(float* dk, float* da, float* dk_a, const float* dout, const float* k,
                         const float* a, const float* k_a, int64_t n, int64_t C,
                         cudaStream_t stream);

// wa [n] = -kk, wb [n] = kk * a.
void wkv7_ab_forward(float* wa, float* wb, const float* kk, const float* a, int64_t n,
                     cudaStream_t stream);
void wkv7_ab_backward(float* dkk, float* da, const float* dwa, const float* dwb, const float* kk,
                      const float* a, int64_t n, cudaStream_t stream);

// out [n, H*N] += (sum_j r*k*r_k over the head) * v * g; r_k [H, N]; g [n, H*N] the
// output gate or null (none; dg is then ignored). The per-(row, head) sums go through
// scratch: bonus_v7_scratch_floats(n, H) floats of device memory (a null scratch throws).
int64_t bonus_v7_scratch_floats(int64_t n, int64_t H);
void bonus_v7_forward(float* out, const float* r, const float* k, const float* v, const float* r_k,
                      const float* g, int64_t n, int64_t H, int64_t N, float* scratch,
                      cudaStream_t stream);
void bonus_v7_backward(float* dr, float* dk, float* dv, float* dr_k, float* dg, const float* dout,
                       const float* r, const float* k, const float* v, const float* r_k,
                       const float* g, int64_t n, int64_t H, int64_t N, float* scratch,
                       cudaStream_t stream);

}  // namespace rwkv::cuda
