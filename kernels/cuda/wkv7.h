#pragma once
// WKV of RWKV-7 on the GPU: the generalised delta rule of the CPU reference
// kernels/cpu/wkv7.h (which defines the math and the layouts),
//   S_t = S_{t-1} diag(exp(lw_t)) + (S_{t-1} a_t) b_t^T + v_t k_t^T,   y_t = S_t r_t,
// token by token. Each (batch row, head) runs as `splits` thread blocks, each owning
// N / splits rows of the state (one block per head, one thread per channel, as RWKV-LM
// RWKV-v7/train_temp/cuda/wkv7_cuda.cu, when splits = 1); more splits fill more SMs
// when there are few heads.
//
// Tensors are row-major device pointers: per-token ones [B, T, H, N]; state
// [B, H, N, N]. Heads [h0, h1) of every batch row; outputs outside the range are left
// untouched. Head size N = 16, 32 or 64; splits 1, or for N = 64 also 2, 4 or 8 (any
// count gives the same math; sums run in another order, so results differ in the last
// bits). Launches go to `stream`; nothing is allocated. Bad shapes throw rwkv::Error
// naming the function.
//
// Every launcher takes fp32 per-token tensors, or (its __nv_bfloat16 overload) bf16 ones:
// r, lw, k, v, a, b, y, dy and the gradients; each value is read as bf16 and everything
// after is the fp32 kernels' arithmetic (state, workspace, scratch fp32), so on the same
// inputs each output is the fp32 kernel's rounded once to bf16 (to nearest, ties to
// even). bf16 is the storage of bf16 activations, and the form flash-linear-attention's
// and RWKV-LM's kernels are timed in.
//
// Workspace: the forward stores the state before every 16th token and every token's
// S_{t-1} a_t there (when workspace is not null, as the official kernel does); the
// backward recomputes the states in between from those, in a scratch part of the same
// workspace.
// Size: wkv7_workspace_bytes(B, T, H, N), for any head range and splits.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>

namespace rwkv::cuda {

size_t wkv7_workspace_bytes(int B, int T, int H, int N);

// Splits that fill this GPU's SMs with B x nh (b, h) pairs (nh = h1 - h0): the least
// power of 2 (at most 8) that gives at least one block per SM; 1 unless N = 64. (The
// chunked WKV6 scan takes the same.)
int wkv7_default_splits(int B, int nh, int N);

// Bytes of the backward's scratch for its per-split partial sums: 0 when splits = 1.
size_t wkv7_backward_scratch_bytes(int B, int T, int nh, int N, int splits);

// y [B, T, H, N]. state_in null = zeros; state_out null = not wanted; workspace null =
// no checkpoints (inference).
void wkv7_forward(int B, int T, int H, int N, int h0, int h1, const float* r, const float* lw,
                  const float* k, const float* v, const float* a, const float* b, float* y,
                  const float* state_in, float* state_out, void* workspace, int splits,
                  cudaStream_t stream);
void wkv7_forward(int B, int T, int H, int N, int h0, int h1, const __nv_bfloat16* r,
                  const __nv_bfloat16* lw, const __nv_bfloat16* k, const __nv_bfloat16* v,
                  const __nv_bfloat16* a, const __nv_bfloat16* b, __nv_bfloat16* y,
                  const float* state_in, float* state_out, void* workspace, int splits,
                  cudaStream_t stream);

// The same outputs and workspace contents as wkv7_forward (so wkv7_backward runs from
// either), computed in chunks of 16 tokens (kernels/cuda/wkv7_chunked_body.h): a prep
// kernel over all chunks in parallel, then a scan over the chunks of each (b, h) as
// `splits` blocks of state rows. Sums run in another order: results differ from
// wkv7_forward in the last bits. scratch: wkv7_chunked_scratch_bytes(B, T, h1 - h0, N)
// (may be null when T = 0).
size_t wkv7_chunked_scratch_bytes(int B, int T, int nh, int N);
void wkv7_forward_chunked(int B, int T, int H, int N, int h0, int h1, const float* r,
                          const float* lw, const float* k, const float* v, const float* a,
                          const float* b, float* y, const float* state_in, float* state_out,
                          void* workspace, void* scratch, int splits, cudaStream_t stream);
void wkv7_forward_chunked(int B, int T, int H, int N, int h0, int h1, const __nv_bfloat16* r,
                          const __nv_bfloat16* lw, const __nv_bfloat16* k, const __nv_bfloat16* v,
                          const __nv_bfloat16* a, const __nv_bfloat16* b, __nv_bfloat16* y,
                          const float* state_in, float* state_out, void* workspace, void* scratch,
                          int splits, cudaStream_t stream);

// Gradients for dy [B, T, H, N] of the forward call that filled `workspace` (same
// shapes and inputs; its state_in included, no gradient for it): dr, dlw, dk, dv, da,
// db [B, T, H, N]. scratch: wkv7_backward_scratch_bytes (may be null for splits = 1).
void wkv7_backward(int B, int T, int H, int N, int h0, int h1, const float* r, const float* lw,
                   const float* k, const float* v, const float* a, const float* b, const float* dy,
                   float* dr, float* dlw, float* dk, float* dv, float* da, float* db,
                   void* workspace, void* scratch, int splits, cudaStream_t stream);
void wkv7_backward(int B, int T, int H, int N, int h0, int h1, const __nv_bfloat16* r,
                   const __nv_bfloat16* lw, const __nv_bfloat16* k, const __nv_bfloat16* v,
                   const __nv_bfloat16* a, const __nv_bfloat16* b, const __nv_bfloat16* dy,
                   __nv_bfloat16* dr, __nv_bfloat16* dlw, __nv_bfloat16* dk, __nv_bfloat16* dv,
                   __nv_bfloat16* da, __nv_bfloat16* db, void* workspace, void* scratch, int splits,
                   cudaStream_t stream);

// The gradients of wkv7_backward, in chunks of 16 tokens
// (kernels/cuda/wkv7_chunked_backward_body.h): a prep kernel over all chunks, the
// state-gradient scan over the chunks in reverse (`splits` blocks of rows per (b, h)),
// then every gradient of every chunk in parallel. Reads the workspace of either forward.
// scratch: wkv7_chunked_backward_scratch_bytes(B, T, H, h1 - h0, N).
size_t wkv7_chunked_backward_scratch_bytes(int B, int T, int H, int nh, int N);
// The most shared memory one block of the chunked kernels takes at head size N (their
// gradient kernel's: 164,096 bytes at N 64). A card that allows less (sm_86/sm_89:
// 99 KB) cannot run wkv7_backward_chunked, which throws rwkv::Error saying so.
size_t wkv7_chunked_shared_bytes(int N);
void wkv7_backward_chunked(int B, int T, int H, int N, int h0, int h1, const float* r,
                           const float* lw, const float* k, const float* v, const float* a,
                           const float* b, const float* dy, float* dr, float* dlw, float* dk,
                           float* dv, float* da, float* db, void* workspace, void* scratch,
                           int splits, cudaStream_t stream);
void wkv7_backward_chunked(int B, int T, int H, int N, int h0, int h1, const __nv_bfloat16* r,
                           const __nv_bfloat16* lw, const __nv_bfloat16* k, const __nv_bfloat16* v,
                           const __nv_bfloat16* a, const __nv_bfloat16* b, const __nv_bfloat16* dy,
                           __nv_bfloat16* dr, __nv_bfloat16* dlw, __nv_bfloat16* dk,
                           __nv_bfloat16* dv, __nv_bfloat16* da, __nv_bfloat16* db, void* workspace,
                           void* scratch, int splits, cudaStream_t stream);

}  // namespace rwkv::cuda
