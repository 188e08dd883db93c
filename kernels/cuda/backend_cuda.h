#pragma once
// The CUDA backend, fp32 storage: every op of kernels/backend.h through the launchers of
// kernels/cuda/<op>.h (the same math as the CPU reference kernels/cpu/<op>.h), the
// products through cuBLAS (kernels/cuda/matmul.h), on one stream of its own.
//
// Precision of the products (MatmulPrecision, chosen at construction): fp32 (the
// default: the all-fp32 mode that the tests compare with the CPU within 1e-5), or
// bf16: every matmul_forward / matmul_backward rounds its two operands to bf16 and
// multiplies them on the tensor cores with fp32 accumulation into the fp32 output
// (kernels/cuda/matmul.h, *_bf16). Everything else stays fp32: the weights (masters),
// the activations between ops, the gradients, AdamW's moments, the WKV state. The bf16
// copies live in the scratch block below (grown to the largest product seen).
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

template <typename F>
struct CudaBackend;

template <>
struct CudaBackend<float> final : UniformBackend<float> {
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
  void embedding_forward(F* out, const int32_t* idx, const F* emb, int64_t n, int64_t C, int64_t v0,
                         int64_t v1) override;
  void embedding_backward(F* demb, const F* dout, const int32_t* idx, int64_t n, int64_t C,
                          int64_t v0, int64_t v1) override;
  void layernorm_forward(F* out, F* mean, F* rstd, const F* x, const F* w, const F* b, int64_t n,
                         int64_t C, F eps) override;
  void layernorm_backward(F* dx, F* dw, F* db, const F* dout, const F* x, const F* w, const F* mean,
                          const F* rstd, int64_t n, int64_t C) override;
  void rmsnorm_forward(F* out, F* rstd, const F* x, const F* w, int64_t n, int64_t C,
                       F eps) override;
  void rmsnorm_backward(F* dx, F* dw, const F* dout, const F* x, const F* w, const F* rstd,
                        int64_t n, int64_t C) override;
  void groupnorm_forward(F* out, F* mean, F* rstd, const F* x, const F* w, const F* b, const F* g,
                         int64_t n, int64_t H, int64_t N, F eps) override;
  void groupnorm_backward(F* dx, F* dw, F* db, F* dg, const F* dout, const F* x, const F* w,
                          const F* b, const F* g, const F* mean, const F* rstd, int64_t n,
                          int64_t H, int64_t N) override;
  void l2norm_heads_forward(F* out, F* norm, const F* x, int64_t n, int64_t H, int64_t N,
                            F eps) override;
  void l2norm_heads_backward(F* dx, const F* dout, const F* out, const F* norm, const F* x,
                             int64_t n, int64_t H, int64_t N, F eps) override;
  void matmul_forward(F* out, int64_t ldo, const F* x, int64_t ldx, const F* w, int64_t M,
                      int64_t K, int64_t N, WLayout layout, bool accumulate) override;
  void matmul_backward(F* dx, F* dw, const F* dout, int64_t ldo, const F* x, int64_t ldx,
                       const F* w, int64_t M, int64_t K, int64_t N, WLayout layout,
                       bool accumulate_dx) override;
  void act_forward(Act act, F* out, const F* x, int64_t n) override;
  void act_backward(Act act, F* dx, const F* dout, const F* x, int64_t n) override;
  void mul_forward(F* out, const F* a, const F* b, int64_t n) override;
  void mul_backward(F* da, F* db, const F* dout, const F* a, const F* b, int64_t n) override;
  void add_forward(F* out, const F* a, const F* b, int64_t n) override;
  void accumulate(F* dst, const F* src, int64_t n) override;
  void scale_channels_forward(F* out, const F* x, const F* vec, int64_t n, int64_t C) override;
  void scale_channels_backward(F* dx, F* dvec, const F* dout, const F* x, const F* vec, int64_t n,
                               int64_t C) override;
  void bias_sigmoid_forward(F* out, const F* bias, const F* z, int64_t n, int64_t C) override;
  void bias_sigmoid_backward(F* dbias, F* dz, const F* dout, const F* out, int64_t n,
                             int64_t C) override;
  void shift_diff_forward(F* xx, const F* x, const F* prev, int64_t B, int64_t T,
                          int64_t C) override;
  void shift_diff_backward(F* dx, F* dprev, const F* dxx, int64_t B, int64_t T, int64_t C) override;
  void shift_last(F* last, const F* x, int64_t B, int64_t T, int64_t C) override;
  void mix_forward(std::span<F* const> outs, const F* x, const F* xx,
                   std::span<const F* const> coefs, std::span<const F* const> ms, bool one_minus,
                   int64_t n, int64_t C) override;
  void mix_backward(F* dx, F* dxx, std::span<F* const> dcoefs, std::span<F* const> dms,
                    std::span<const F* const> douts, const F* xx, std::span<const F* const> coefs,
                    std::span<const F* const> ms, bool one_minus, int64_t n, int64_t C) override;
  void decay_v6_forward(F* lw, const F* time_decay, const F* ww, int64_t n, int64_t C) override;
  void decay_v6_backward(F* dtime_decay, F* dww, const F* dlw, const F* lw, int64_t n,
                         int64_t C) override;
  void decay_v7_forward(F* lw, const F* w0, const F* z, int64_t n, int64_t C) override;
  void decay_v7_backward(F* dw0, F* dz, const F* dlw, const F* w0, const F* z, int64_t n,
                         int64_t C) override;
  void value_residual_forward(F* out, const F* v, const F* v_first, const F* s, int64_t n) override;
  void value_residual_backward(F* dv, F* dv_first, F* ds, const F* dout, const F* v,
                               const F* v_first, const F* s, int64_t n) override;
  void key_adjust_forward(F* out, const F* k, const F* a, const F* k_a, int64_t n,
                          int64_t C) override;
  void key_adjust_backward(F* dk, F* da, F* dk_a, const F* dout, const F* k, const F* a,
                           const F* k_a, int64_t n, int64_t C) override;
  void wkv7_ab_forward(F* wa, F* wb, const F* kk, const F* a, int64_t n) override;
  void wkv7_ab_backward(F* dkk, F* da, const F* dwa, const F* dwb, const F* kk, const F* a,
                        int64_t n) override;
  void bonus_v7_forward(F* out, const F* r, const F* k, const F* v, const F* r_k, const F* g,
                        int64_t n, int64_t H, int64_t N) override;
  void bonus_v7_backward(F* dr, F* dk, F* dv, F* dr_k, F* dg, const F* dout, const F* r, const F* k,
                         const F* v, const F* r_k, const F* g, int64_t n, int64_t H,
                         int64_t N) override;
  void wkv4_forward(int B, int T, int C, int c0, int c1, const F* w, const F* u, const F* k,
                    const F* v, F* y, const F* state_in, F* state_out) override;
  void wkv4_backward(int B, int T, int C, int c0, int c1, const F* w, const F* u, const F* k,
                     const F* v, const F* dy, F* dw, F* du, F* dk, F* dv) override;
  void wkv6_forward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1, const F* r,
                    const F* k, const F* v, const F* lw, const F* u, F* y, const F* state_in,
                    F* state_out) override;
  void wkv6_backward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1, const F* r,
                     const F* k, const F* v, const F* lw, const F* u, const F* dy, F* dr, F* dk,
                     F* dv, F* dlw, F* du) override;
  void wkv7_forward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1, const F* r,
                    const F* lw, const F* k, const F* v, const F* a, const F* b, F* y,
                    const F* state_in, F* state_out) override;
  void wkv7_backward(WkvAlgo algo, int B, int T, int H, int N, int h0, int h1, const F* r,
                     const F* lw, const F* k, const F* v, const F* a, const F* b, const F* dy,
                     F* dr, F* dlw, F* dk, F* dv, F* da, F* db) override;
  void ce_local_max(F* max, int32_t* argmax, const F* logits, int64_t n, int64_t Vl,
                    int64_t v0) override;
  void ce_local_sums(F* sumexp, F* target_logit, const F* logits, const int32_t* targets,
                     const F* max, int64_t n, int64_t Vl, int64_t v0) override;
  void ce_loss(F* losses, const F* max, const F* sumexp, const F* target_logit, int64_t n) override;
  void ce_backward(F* dlogits, const F* logits, const int32_t* targets, const F* max,
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
  void* wkv_forward_workspace(const F* r, size_t bytes, int B, int T, int H, int N);
  void* wkv_backward_workspace(const char* fn, const F* r, int B, int T, int H, int N) const;
  std::map<const F*, WkvWorkspace> wkv_ws_;
  // Scratch of the ops that need some only while they run (the RWKV-4 WKV backward, the
  // embedding backward, the bf16 products' operand copies, the chunked WKVs' buffers):
  // one block, grown on demand. The stream orders its users.
  void* scratch(size_t bytes);
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
};

}  // namespace rwkv::kernels
