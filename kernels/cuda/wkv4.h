#pragma once
// WKV of RWKV-4 on the GPU: the same stable (aa, bb, pp) scan as the CPU
// reference kernels/cpu/wkv4.h (which defines the math and the layouts), one thread
// per (batch row, channel).
//
// Tensors are row-major device pointers: per-token ones [B, T, C]; w (positive decay
// rate, exp(time_decay)), u [C]; state [B, C, 3]. Channels [c0, c1) of every batch
// row; outputs outside the range are left untouched. Launches go to `stream`; nothing
// is allocated. Bad shapes throw rwkv::Error naming the function.
//
// Each launcher takes fp32 per-token tensors, or (its __nv_bfloat16 overload) bf16 ones:
// k, v, y, dy, dk, dv (w, u, dw, du and the state stay fp32); each value is read as bf16
// and everything after is the fp32 kernels' arithmetic, so on the same inputs each output
// is the fp32 kernel's rounded once to bf16 (to nearest, ties to even).
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>

namespace rwkv::cuda {

// y [B, T, C]. state_in null = the empty state; state_out null = not wanted.
void wkv4_forward(int B, int T, int C, int c0, int c1, const float* w, const float* u,
                  const float* k, const float* v, float* y, const float* state_in, float* state_out,
                  cudaStream_t stream);
void wkv4_forward(int B, int T, int C, int c0, int c1, const float* w, const float* u,
                  const __nv_bfloat16* k, const __nv_bfloat16* v, __nv_bfloat16* y,
                  const float* state_in, float* state_out, cudaStream_t stream);

// Bytes of device workspace wkv4_backward needs (state checkpoints every 16 tokens and
// per-row partial sums of dw, du), for any channel range of [0, C).
size_t wkv4_workspace_bytes(int B, int T, int C);

// Gradients for dy [B, T, C] from the empty initial state: dk, dv [B, T, C]; dw, du
// [C] (sums over B and T, reduced in a fixed order: bitwise reproducible).
void wkv4_backward(int B, int T, int C, int c0, int c1, const float* w, const float* u,
                   const float* k, const float* v, const float* dy, float* dw, float* du, float* dk,
                   float* dv, void* workspace, cudaStream_t stream);
void wkv4_backward(int B, int T, int C, int c0, int c1, const float* w, const float* u,
                   const __nv_bfloat16* k, const __nv_bfloat16* v, const __nv_bfloat16* dy,
                   float* dw, float* du, __nv_bfloat16* dk, __nv_bfloat16* dv, void* workspace,
                   cudaStream_t stream);

}  // namespace rwkv::cuda
