#pragma once
// WKV of RWKV-7 on the GPU, fp32: the generalised delta rule of the CPU reference
// kernels/cpu/wkv7.h (which defines the math and the layouts),
//   S_t = S_{t-1} diag(exp(lw_t)) + (S_{t-1} a_t) b_t^T + v_t k_t^T,   y_t = S_t r_t,
// token by token, one thread block per (batch row, head), one thread per channel (a row
// of S in the forward, a column in the backward), as RWKV-LM
// RWKV-v7/train_temp/cuda/wkv7_cuda.cu.
//
// Tensors are row-major device pointers: per-token ones [B, T, H, N]; state
// [B, H, N, N]. Heads [h0, h1) of every batch row; outputs outside the range are left
// untouched. Head size N = 16, 32 or 64. Launches go to `stream`; nothing is allocated.
// Bad shapes throw rwkv::Error naming the function.
//
// Workspace: the forward stores the state before every 16th token and every token's
// S_{t-1} a_t there (when workspace is not null, as the official kernel does); the
// backward recomputes the states in between from those, in a scratch part of the same
// workspace.
// Size: wkv7_workspace_bytes(B, T, H, N), for any head range.
#include <cuda_runtime_api.h>

#include <cstddef>

namespace rwkv::cuda {

size_t wkv7_workspace_bytes(int B, int T, int H, int N);

// y [B, T, H, N]. state_in null = zeros; state_out null = not wanted; workspace null =
// no checkpoints (inference).
void wkv7_forward(int B, int T, int H, int N, int h0, int h1, const float* r, const float* lw,
                  const float* k, const float* v, const float* a, const float* b, float* y,
                  const float* state_in, float* state_out, void* workspace, cudaStream_t stream);

// Gradients for dy [B, T, H, N] of the forward call that filled `workspace` (same
// shapes and inputs; its state_in included, no gradient for it): dr, dlw, dk, dv, da,
// db [B, T, H, N].
void wkv7_backward(int B, int T, int H, int N, int h0, int h1, const float* r, const float* lw,
                   const float* k, const float* v, const float* a, const float* b, const float* dy,
                   float* dr, float* dlw, float* dk, float* dv, float* da, float* db,
                   void* workspace, cudaStream_t stream);

}  // namespace rwkv::cuda
