#pragma once
// WKV of RWKV-5/6 on the GPU: the recurrence of the CPU reference
// kernels/cpu/wkv6.h (which defines the math and the layouts),
//   y_t[j] = sum_i r_t[i] (u[i] k_t[i] v_t[j] + S_{t-1}[i][j]),
//   S_t[i][j] = exp(lw_t[i]) S_{t-1}[i][j] + k_t[i] v_t[j],
// token by token, one thread block per (batch row, head), one thread per value
// channel (as RWKV-LM RWKV-v5/cuda/wkv6_cuda.cu).
//
// Tensors are row-major device pointers: per-token ones [B, T, H, N]; u [H, N]; state
// [B, H, N, N]. Heads [h0, h1) of every batch row; outputs outside the range are left
// untouched. Head size N = 16, 32 or 64. Launches go to `stream`; nothing is allocated.
// Bad shapes throw rwkv::Error naming the function.
//
// Every launcher takes fp32 per-token tensors, or (its __nv_bfloat16 overload) bf16 ones:
// r, k, v, lw, y, dy and their gradients (u and du stay fp32, as parameters do); each
// value is read as bf16 and everything after is the fp32 kernels' arithmetic (state,
// workspace, scratch fp32), so on the same inputs each output is the fp32 kernel's
// rounded once to bf16 (to nearest, ties to even). bf16 is the storage of bf16
// activations, and the form flash-linear-attention's and RWKV-LM's kernels are timed in.
//
// Workspace: the forward stores the state before every 16th token there (when
// workspace is not null); the backward reads those checkpoints and uses the rest as
// scratch. Size: wkv6_workspace_bytes(B, T, H, N), for any head range.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>

namespace rwkv::cuda {

size_t wkv6_workspace_bytes(int B, int T, int H, int N);

// y [B, T, H, N]. state_in null = zeros; state_out null = not wanted; workspace null =
// no checkpoints (inference).
void wkv6_forward(int B, int T, int H, int N, int h0, int h1, const float* r, const float* k,
                  const float* v, const float* lw, const float* u, float* y, const float* state_in,
                  float* state_out, void* workspace, cudaStream_t stream);
void wkv6_forward(int B, int T, int H, int N, int h0, int h1, const __nv_bfloat16* r,
                  const __nv_bfloat16* k, const __nv_bfloat16* v, const __nv_bfloat16* lw,
                  const float* u, __nv_bfloat16* y, const float* state_in, float* state_out,
                  void* workspace, cudaStream_t stream);

// Gradients for dy [B, T, H, N] of the forward call that filled `workspace` (same
// shapes and inputs; its state_in included, no gradient for it): dr, dk, dv, dlw
// [B, T, H, N]; du [H, N] (sum over B and T in a fixed order: bitwise reproducible).
void wkv6_backward(int B, int T, int H, int N, int h0, int h1, const float* r, const float* k,
                   const float* v, const float* lw, const float* u, const float* dy, float* dr,
                   float* dk, float* dv, float* dlw, float* du, void* workspace,
                   cudaStream_t stream);
void wkv6_backward(int B, int T, int H, int N, int h0, int h1, const __nv_bfloat16* r,
                   const __nv_bfloat16* k, const __nv_bfloat16* v, const __nv_bfloat16* lw,
                   const float* u, const __nv_bfloat16* dy, __nv_bfloat16* dr, __nv_bfloat16* dk,
                   __nv_bfloat16* dv, __nv_bfloat16* dlw, float* du, void* workspace,
                   cudaStream_t stream);

// The same outputs in chunks of 16 tokens (kernels/cuda/wkv6_chunked_body.h): the
// forward fills the same checkpoints (so either backward runs from either forward), in
// a prep kernel over all chunks and a scan over the chunks of each (b, h) as `splits`
// blocks of value channels (1, or for N = 64 also 2, 4 or 8); the backward runs the
// state gradient as the same scan in reverse, then every gradient of every chunk in
// parallel, du summed in a fixed order. Sums run in another order than the sequential
// kernels': results differ in the last bits. scratch (for either):
// wkv6_chunked_scratch_bytes(B, T, H, h1 - h0, N).
size_t wkv6_chunked_scratch_bytes(int B, int T, int H, int nh, int N);
// The most shared memory one block of the chunked kernels takes at head size N (their
// gradient kernel's); on a card that allows less, wkv6_backward_chunked throws
// rwkv::Error saying so.
size_t wkv6_chunked_shared_bytes(int N);
void wkv6_forward_chunked(int B, int T, int H, int N, int h0, int h1, const float* r,
                          const float* k, const float* v, const float* lw, const float* u, float* y,
                          const float* state_in, float* state_out, void* workspace, void* scratch,
                          int splits, cudaStream_t stream);
void wkv6_backward_chunked(int B, int T, int H, int N, int h0, int h1, const float* r,
                           const float* k, const float* v, const float* lw, const float* u,
                           const float* dy, float* dr, float* dk, float* dv, float* dlw, float* du,
                           void* workspace, void* scratch, int splits, cudaStream_t stream);

void wkv6_forward_chunked(int B, int T, int H, int N, int h0, int h1, const __nv_bfloat16* r,
                          const __nv_bfloat16* k, const __nv_bfloat16* v, const __nv_bfloat16* lw,
                          const float* u, __nv_bfloat16* y, const float* state_in, float* state_out,
                          void* workspace, void* scratch, int splits, cudaStream_t stream);
void wkv6_backward_chunked(int B, int T, int H, int N, int h0, int h1, const __nv_bfloat16* r,
                           const __nv_bfloat16* k, const __nv_bfloat16* v, const __nv_bfloat16* lw,
                           const float* u, const __nv_bfloat16* dy, __nv_bfloat16* dr,
                           __nv_bfloat16* dk, __nv_bfloat16* dv, __nv_bfloat16* dlw, float* du,
                           void* workspace, void* scratch, int splits, cudaStream_t stream);

}  // namespace rwkv::cuda
