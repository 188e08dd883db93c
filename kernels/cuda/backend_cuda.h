#pragma once
// The CUDA backend: every op of kernels/backend.h through the launchers of
// kernels/cuda/<op>.h (the same math as the CPU reference kernels/cpu/<op>.h), the
// products through cuBLAS (kernels/cuda/matmul.h), on one stream of its own.
//
// Precision of the products (MatmulPrecision, chosen at construction): fp32 (the
// default: the all-fp32 mode that the tests compare with the CPU within 1e-5), or
// bf16: every matmul_forward / matmul_backward rounds its two operands to bf16 and
// multiplies them on the tensor cores with fp32 accumulation into the fp32 output
// (kernels/cuda/matmul.h, *_bf16). With fp32 activations (A = float, below) everything
// else stays fp32: the weights (masters), the activations between ops, the gradients,
// AdamW's moments, the WKV state. The bf16 copies live in the scratch block below (grown
// to the largest product seen).
//
// Memory: one cudaMalloc of arena_bytes at construction (kernels/cuda/arena.h); alloc
// hands out zeroed 256-byte aligned blocks of it, so the training loop never calls
// cudaMalloc. The arena also holds cuBLAS's workspace (kCublasWorkspaceBytes) and the
// WKV workspaces below. Every op is queued on `stream` in order, so a block freed and
// handed out again is only touched after the earlier work on it; upload and download
// wait for the stream (the model reads downloaded results at once).
//
// WKV workspaces: the CUDA WKV-5/6/7 backwards read state checkpoints that their
// forward wrote (kernels/cuda/wkv6.h, wkv7.h). The model calls each layer's forward
// and later its backward with the same input pointers, so each forward keeps its own
// workspace, keyed by its r pointer and allocated from the arena on first use (then
// reused by every later step): memory of wkv{6,7}_workspace_bytes(B, T, H, N) per layer
// (v7, B 4, T 1024, C 768: about 65 MB a layer), no extra time. A workspace is dropped when
// the block holding its key is freed. RWKV-4's backward needs scratch only: one shared
// workspace. WkvAlgo is accepted and ignored: the CUDA kernels run the recurrence
// token by token (or, RWKV-5/6/7, in chunks: the constructor's WkvKernels), the same
// math as both CPU algorithms.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <map>

#include "kernels/backend.h"
#include "kernels/cuda/arena.h"

namespace rwkv::kernels {

// How CudaBackend multiplies matrices (see above).
enum class MatmulPrecision { fp32, bf16 };

// Which RWKV-5/6/7 WKV kernels CudaBackend runs (kernels/cuda/wkv6.h, wkv7.h): the
// token-by-token ones, or the chunked forwards and backwards. Same math and workspaces;
// the chunked ones are verified on the CPU (their kernel bodies under
// tests/kernels/block_emulator.h) but have not run on a GPU yet, so the default stays
// sequential until scripts/gpu_check.sh has passed their GPU tests and timed them
// (bench_cuda_wkv, bench_cuda_train).
enum class WkvKernels { sequential, chunked };

// A: the element type of the activations (kernels/backend.h): float (the all-fp32 or
// bf16-product modes above) or Bf16 (bf16 activations: every op reads and writes bf16
// per-token tensors, computing in fp32; the products take the bf16 tensors as they are,
// so precision must be MatmulPrecision::bf16). F = float: parameters, gradients,
// moments, statistics, state. Both are instantiated in backend_cuda.cu.
template <typename A>
struct CudaBackend final : Backend<float, A> {
  using F = float;
  // cuBLAS's workspace, taken from the arena (NVIDIA's recommendation for Hopper).
  static constexpr size_t kCublasWorkspaceBytes = size_t{32} << 20;

  // arena_bytes: all the device memory this backend will use (device 0, current).
  explicit CudaBackend(size_t arena_bytes, MatmulPrecision precision = MatmulPrecision::fp32,
                       WkvKernels wkv = WkvKernels::sequential);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  F* alloc(int64_t n) override;
  void free(F* p) override;
  int32_t* alloc_ids(int64_t n) override;
  void free_ids(int32_t* p) override;
  void zero(F* p, int64_t n) override;
  void copy(F* dst, const F* src, int64_t n) override;
  void upload(F* dst, const F* host, int64_t n) override;
  void download(F* host, const F* src, int64_t n) override;
  void upload_ids(int32_t* dst, const int32_t* host, int64_t n) override;
  void accumulate(F* dst, const F* src, int64_t n) override;
  A* alloc_act(int64_t n) override;
  void free_act(A* p) override;
  void zero_act(A* p, int64_t n) override;
  void copy_act(A* dst, const A* src, int64_t n) override;
  void upload_act(A* dst, const F* host, int64_t n) override;
  void download_act(F* host, const A* src, int64_t n) override;
  void round_act(A* dst, const F* src, int64_t n) override;
  void accumulate_act(A* dst, const A* src, int64_t n) override;
  void embedding_forward(A* out, const int32_t* idx, const F* emb, int64_t n, int64_t C, int64_t v0,
                         int64_t v1) override;
  void embedding_backward(F* demb, const A* dout, const int32_t* idx, int64_t n, int64_t C,
                          int64_t v0, int64_t v1) override;
  void layernorm_forward(A* out, F* mean, F* rstd, const A* x, const F* w, const F* b, int64_t n,
                         int64_t C, F eps) override;
  void layernorm_backward(A* dx, F* dw, F* db, const A* dout, const A* x, const F* w, const F* mean,
                          const F* rstd, int64_t n, int64_t C) override;
  void rmsnorm_forward(A* out, F* rstd, const A* x, const F* w, int64_t n, int64_t C,
                       F eps) override;
  void rmsnorm_backward(A* dx, F* dw, const A* dout, const A* x, const F* w, const F* rstd,
                        int64_t n, int64_t C) override;
  void groupnorm_forward(A* out, F* mean, F* rstd, const A* x, const F* w, const F* b, const A* g,
                         int64_t n, int64_t H, int64_t N, F eps) override;
  void groupnorm_backward(A* dx, F* dw, F* db, A* dg, const A* dout, const A* x, const F* w,
                          const F* b, const A* g, const F* mean, const F* rstd, int64_t n,
                          int64_t H, int64_t N) override;
  void l2norm_heads_forward(A* out, F* norm, const A* x, int64_t n, int64_t H, int64_t N,
                            F eps) override;
  void l2norm_heads_backward(A* dx, const A* dout, const A* out, const F* norm, const A* x,
                             int64_t n, int64_t H, int64_t N, F eps) override;
  void matmul_forward(A* out, int64_t ldo, const A* x, int64_t ldx, const A* w, int64_t M,
                      int64_t K, int64_t N, WLayout layout, bool accumulate) override;
  void matmul_backward(A* dx, F* dw, const A* dout, int64_t ldo, const A* x, int64_t ldx,
                       const A* w, int64_t M, int64_t K, int64_t N, WLayout layout,
                       bool accumulate_dx) override;
  void act_forward(Act act, A* out, const A* x, int64_t n) override;
  void act_backward(Act act, A* dx, const A* dout, const A* x, int64_t n) override;
  void mul_forward(A* out, const A* a, const A* b, int64_t n) override;
  void mul_backward(A* da, A* db, const A* dout, const A* a, const A* b, int64_t n) override;
  void add_forward(A* out, const A* a, const A* b, int64_t n) override;
  void scale_channels_forward(A* out, const A* x, const F* vec, int64_t n, int64_t C) override;
  void scale_channels_backward(A* dx, F* dvec, const A* dout, const A* x, const F* vec, int64_t n,
                               int64_t C) override;
  void bias_sigmoid_forward(A* out, const F* bias, const A* z, int64_t n, int64_t C) override;
  void bias_sigmoid_backward(F* dbias, A* dz, const A* dout, const A* out, int64_t n,
                             int64_t C) override;
  void shift_diff_forward(A* xx, const A* x, const F* prev, int64_t B, int64_t T,
                          int64_t C) override;
  void shift_diff_backward(A* dx, F* dprev, const A* dxx, int64_t B, int64_t T, int64_t C) override;
  void shift_last(F* last, const A* x, int64_t B, int64_t T, int64_t C) override;
  void mix_forward(std::span<A* const> outs, const A* x, const A* xx,
                   std::span<const F* const> coefs, std::span<const A* const> ms, bool one_minus,
                   int64_t n, int64_t C) override;
  void mix_backward(A* dx, A* dxx, std::span<F* const> dcoefs, std::span<A* const> dms,
                    std::span<const A* const> douts, const A* xx, std::span<const F* const> coefs,
                    std::span<const A* const> ms, bool one_minus, int64_t n, int64_t C) override;
  void decay_v4_forward(F* w, const F* time_decay, int64_t C) override;
  void decay_v4_backward(F* dtime_decay, const F* dw, const F* time_decay, int64_t C) override;
  void decay_v6_forward(A* lw, const F* time_decay, const A* ww, int64_t n, int64_t C) override;
  void decay_v6_backward(F* dtime_decay, A* dww, const A* dlw, const A* lw, int64_t n,
                         int64_t C) override;
  void decay_v7_forward(A* lw, const F* w0, const A* z, int64_t n, int64_t C) override;
  void decay_v7_backward(F* dw0, A* dz, const A* dlw, const F* w0, const A* z, int64_t n,
                         int64_t C) override;
  void value_residual_forward(A* out, const A* v, const A* v_first, const A* s, int64_t n) override;
  void value_residual_backward(A* dv, A* dv_first, A* ds, const A* dout, const A* v,
                               const A* v_first, const A* s, int64_t n) override;
  void key_adjust_forward(A* out, const A* k, const A* a, const F* k_a, int64_t n,
                          int64_t C) override;
  void key_adjust_backward(A* dk, A* da, F* dk_a, const A* dout, const A* k, const A* a,
                           const F* k_a, int64_t n, int64_t C) override;
  void wkv7_ab_forward(A* wa, A* wb, const A* kk, const A* a, int64_t n) override;
  void wkv7_ab_backward(A* dkk, A* da, const A* dwa, const A* dwb, const A* kk, const A* a,
                        int64_t n) override;
  void bonus_v7_forward(A* out, const A* r, const A* k, const A* v, const F* r_k, const A* g,
                        int64_t n, int64_t H, int64_t N) override;
  void bonus_v7_backward(A* dr, A* dk, A* dv, F* dr_k, A* dg, const A* dout, const A* r, const A* k,
                         const A* v, const F* r_k, const A* g, int64_t n, int64_t H,
                         int64_t N) override;
  void wkv4_forward(int B, int T, int C, int c0, int c1, const F* w, const F* u, const A* k,
                    const A* v, A* y, const F* state_in, F* state_out) override;
  void wkv4_backward(int B, int T, int C, int c0, int c1, const F* w, const F* u, const A* k,
                     const A* v, const A* dy, F* dw, F* du, A* dk, A* dv) override;
  void wkv6_forward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1, const A* r,
                    const A* k, const A* v, const A* lw, const F* u, A* y, const F* state_in,
                    F* state_out) override;
  void wkv6_backward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1, const A* r,
                     const A* k, const A* v, const A* lw, const F* u, const A* dy, A* dr, A* dk,
                     A* dv, A* dlw, F* du) override;
  void wkv7_forward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1, const A* r,
                    const A* lw, const A* k, const A* v, const A* a, const A* b, A* y,
                    const F* state_in, F* state_out) override;
  void wkv7_backward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1, const A* r,
                     const A* lw, const A* k, const A* v, const A* a, const A* b, const A* dy,
                     A* dr, A* dlw, A* dk, A* dv, A* da, A* db) override;
  void ce_local_max(F* max, int32_t* argmax, const A* logits, int64_t n, int64_t Vl,
                    int64_t v0) override;
  void ce_local_sums(F* sumexp, F* target_logit, const A* logits, const int32_t* targets,
                     const F* max, int64_t n, int64_t Vl, int64_t v0) override;
  void ce_loss(F* losses, const F* max, const F* sumexp, const F* target_logit, int64_t n) override;
  void ce_backward(A* dlogits, const A* logits, const int32_t* targets, const F* max,
                   const F* sumexp, const int32_t* argmax, int64_t n, int64_t Vl, int64_t v0,
                   F scale, F l2wrap_factor) override;
  void adamw_step(F* p, const F* g, F* m, F* v, std::span<const AdamWSegment> segments,
                  const AdamWHyper& h, int64_t t) override;
  double sum_squares(const F* x, int64_t n) override;
  void scale(F* x, F s, int64_t n) override;

  // Blocks every op until the queued work is done (for timing and for tests).
  void synchronize();

  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  rwkv::cuda::Arena arena;
  char* base = nullptr;  // the arena's device memory
  const MatmulPrecision precision;
  const WkvKernels wkv;

 private:
  // A zeroed block of the arena / its release (null is ignored).
  void* alloc_bytes(size_t bytes);
  void free_bytes(const void* p);
  // The workspace of the WKV-6/7 forward with input r (shape B, T, H, N): created or
  // resized by the forward, looked up (and checked) by the backward.
  struct WkvWorkspace {
    void* p = nullptr;
    size_t bytes = 0;
    int B = 0, T = 0, H = 0, N = 0;
  };
  void* wkv_forward_workspace(const void* r, size_t bytes, int B, int T, int H, int N);
  void* wkv_backward_workspace(const char* fn, const void* r, int B, int T, int H, int N) const;
  std::map<const void*, WkvWorkspace> wkv_ws_;
  // Scratch of the ops that need some only while they run (the RWKV-4 WKV backward, the
  // embedding backward, the bf16 products' operand copies, the chunked WKVs' buffers):
  // one block, grown on demand. The stream orders its users.
  void* scratch(size_t bytes);
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
};

extern template struct CudaBackend<float>;
extern template struct CudaBackend<Bf16>;

}  // namespace rwkv::kernels
