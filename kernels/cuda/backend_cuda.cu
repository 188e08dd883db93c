#include "kernels/cuda/backend_cuda.h"

#include <cstdint>
#include <sstream>

#include "common/error.h"
#include "kernels/cuda/adamw.h"
#include "kernels/cuda/cross_entropy.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/grad_norm.h"
#include "kernels/cuda/matmul.h"
#include "kernels/cuda/norm.h"
#include "kernels/cuda/rwkv_pointwise.h"
#include "kernels/cuda/token_shift.h"
#include "kernels/cuda/wkv4.h"
#include "kernels/cuda/wkv6.h"
#include "kernels/cuda/wkv7.h"

namespace rwkv::kernels {

using F = float;

CudaBackend<F>::CudaBackend(size_t arena_bytes, MatmulPrecision precision_, WkvKernels wkv_)
    : arena(arena_bytes), precision(precision_), wkv(wkv_) {
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  CUBLAS_CHECK(cublasCreate(&cublas));
  CUBLAS_CHECK(cublasSetStream(cublas, stream));
  // fp32 products without TF32 (matmul.cu asks for CUBLAS_COMPUTE_32F as well).
  CUBLAS_CHECK(cublasSetMathMode(cublas, CUBLAS_DEFAULT_MATH));
  if (arena.capacity() > 0) CUDA_CHECK(cudaMalloc(&base, arena.capacity()));
  // After cublasSetStream, which resets the workspace to cuBLAS's own.
  CUBLAS_CHECK(
      cublasSetWorkspace(cublas, alloc_bytes(kCublasWorkspaceBytes), kCublasWorkspaceBytes));
}

// No throwing here: a failed release at exit has nothing to clean up after it.
CudaBackend<F>::~CudaBackend() {
  cudaStreamSynchronize(stream);
  cublasDestroy(cublas);
  cudaFree(base);
  cudaStreamDestroy(stream);
}

void CudaBackend<F>::synchronize() { CUDA_CHECK(cudaStreamSynchronize(stream)); }

void* CudaBackend<F>::alloc_bytes(size_t bytes) {
  char* p = base + arena.alloc(bytes);
  CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream));
  return p;
}

void CudaBackend<F>::free_bytes(const void* p) {
  if (p == nullptr) return;
  const auto addr = reinterpret_cast<uintptr_t>(p), start = reinterpret_cast<uintptr_t>(base);
  if (addr < start || addr >= start + arena.capacity()) {
    std::ostringstream msg;
    msg << "CudaBackend::free: " << p << " is not in the device arena";
    throw Error(msg.str());
  }
  const size_t offset = addr - start, size = arena.block_size(offset);
  // Drop the WKV workspaces of forwards whose r lived in this block.
  for (auto it = wkv_ws_.begin(); it != wkv_ws_.end();) {
    const auto key = reinterpret_cast<uintptr_t>(it->first);
    if (key >= addr && key < addr + size) {
      arena.free(reinterpret_cast<uintptr_t>(it->second.p) - start);
      it = wkv_ws_.erase(it);
    } else {
      ++it;
    }
  }
  arena.free(offset);
}

void* CudaBackend<F>::scratch(size_t bytes) {
  if (bytes > scratch_bytes_) {
    free_bytes(scratch_);
    scratch_ = nullptr;  // a failed alloc below must not leave a freed block here
    scratch_bytes_ = 0;
    scratch_ = alloc_bytes(bytes);
    scratch_bytes_ = bytes;
  }
  return scratch_;
}

F* CudaBackend<F>::alloc(int64_t n) {
  return static_cast<F*>(alloc_bytes(static_cast<size_t>(n) * sizeof(F)));
}

void CudaBackend<F>::free(F* p) { free_bytes(p); }

int32_t* CudaBackend<F>::alloc_ids(int64_t n) {
  return static_cast<int32_t*>(alloc_bytes(static_cast<size_t>(n) * sizeof(int32_t)));
}

void CudaBackend<F>::free_ids(int32_t* p) { free_bytes(p); }

void CudaBackend<F>::zero(F* p, int64_t n) {
  CUDA_CHECK(cudaMemsetAsync(p, 0, static_cast<size_t>(n) * sizeof(F), stream));
}

void CudaBackend<F>::copy(F* dst, const F* src, int64_t n) {
  CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<size_t>(n) * sizeof(F),
                             cudaMemcpyDeviceToDevice, stream));
}

void CudaBackend<F>::upload(F* dst, const F* host, int64_t n) {
  CUDA_CHECK(cudaMemcpyAsync(dst, host, static_cast<size_t>(n) * sizeof(F), cudaMemcpyHostToDevice,
                             stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
}

void CudaBackend<F>::download(F* host, const F* src, int64_t n) {
  CUDA_CHECK(cudaMemcpyAsync(host, src, static_cast<size_t>(n) * sizeof(F), cudaMemcpyDeviceToHost,
                             stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
}

void CudaBackend<F>::upload_ids(int32_t* dst, const int32_t* host, int64_t n) {
  CUDA_CHECK(cudaMemcpyAsync(dst, host, static_cast<size_t>(n) * sizeof(int32_t),
                             cudaMemcpyHostToDevice, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
}

void CudaBackend<F>::embedding_forward(F* out, const int32_t* idx, const F* emb, int64_t n,
                                       int64_t C, int64_t v0, int64_t v1) {
  cuda::embedding_forward(out, idx, emb, n, C, v0, v1, stream);
}

void CudaBackend<F>::embedding_backward(F* demb, const F* dout, const int32_t* idx, int64_t n,
                                        int64_t C, int64_t v0, int64_t v1) {
  cuda::embedding_backward(demb, dout, idx, n, C, v0, v1,
                           scratch(cuda::embedding_backward_scratch_bytes(n, v0, v1)), stream);
}

void CudaBackend<F>::layernorm_forward(F* out, F* mean, F* rstd, const F* x, const F* w,
                                       const F* b, int64_t n, int64_t C, F eps) {
  cuda::layernorm_forward(out, mean, rstd, x, w, b, n, C, eps, stream);
}

void CudaBackend<F>::layernorm_backward(F* dx, F* dw, F* db, const F* dout, const F* x, const F* w,
                                        const F* mean, const F* rstd, int64_t n, int64_t C) {
  cuda::layernorm_backward(dx, dw, db, dout, x, w, mean, rstd, n, C, stream);
}

void CudaBackend<F>::rmsnorm_forward(F* out, F* rstd, const F* x, const F* w, int64_t n, int64_t C,
                                     F eps) {
  cuda::rmsnorm_forward(out, rstd, x, w, n, C, eps, stream);
}

void CudaBackend<F>::rmsnorm_backward(F* dx, F* dw, const F* dout, const F* x, const F* w,
                                      const F* rstd, int64_t n, int64_t C) {
  cuda::rmsnorm_backward(dx, dw, dout, x, w, rstd, n, C, stream);
}

void CudaBackend<F>::groupnorm_forward(F* out, F* mean, F* rstd, const F* x, const F* w, const F* b,
                                       const F* g, int64_t n, int64_t H, int64_t N, F eps) {
  cuda::groupnorm_forward(out, mean, rstd, x, w, b, g, n, H, N, eps, stream);
}

void CudaBackend<F>::groupnorm_backward(F* dx, F* dw, F* db, F* dg, const F* dout, const F* x,
                                        const F* w, const F* b, const F* g, const F* mean,
                                        const F* rstd, int64_t n, int64_t H, int64_t N) {
  cuda::groupnorm_backward(dx, dw, db, dg, dout, x, w, b, g, mean, rstd, n, H, N, stream);
}

void CudaBackend<F>::l2norm_heads_forward(F* out, F* norm, const F* x, int64_t n, int64_t H,
                                          int64_t N, F eps) {
  cuda::l2norm_heads_forward(out, norm, x, n, H, N, eps, stream);
}

void CudaBackend<F>::l2norm_heads_backward(F* dx, const F* dout, const F* out, const F* norm,
                                           const F* x, int64_t n, int64_t H, int64_t N, F eps) {
  cuda::l2norm_heads_backward(dx, dout, out, norm, x, n, H, N, eps, stream);
}

void CudaBackend<F>::matmul_forward(F* out, int64_t ldo, const F* x, int64_t ldx, const F* w,
                                    int64_t M, int64_t K, int64_t N, WLayout layout,
                                    bool accumulate) {
  if (precision == MatmulPrecision::bf16)
    cuda::matmul_forward_bf16(out, ldo, x, ldx, w, M, K, N, layout, accumulate,
                              scratch(cuda::matmul_bf16_scratch_bytes(M, K, N)), cublas, stream);
  else
    cuda::matmul_forward(out, ldo, x, ldx, w, M, K, N, layout, accumulate, cublas, stream);
}

void CudaBackend<F>::matmul_backward(F* dx, F* dw, const F* dout, int64_t ldo, const F* x,
                                     int64_t ldx, const F* w, int64_t M, int64_t K, int64_t N,
                                     WLayout layout, bool accumulate_dx) {
  if (precision == MatmulPrecision::bf16)
    cuda::matmul_backward_bf16(dx, dw, dout, ldo, x, ldx, w, M, K, N, layout, accumulate_dx,
                               scratch(cuda::matmul_bf16_scratch_bytes(M, K, N)), cublas, stream);
  else
    cuda::matmul_backward(dx, dw, dout, ldo, x, ldx, w, M, K, N, layout, accumulate_dx, cublas,
                          stream);
}

void CudaBackend<F>::act_forward(Act act, F* out, const F* x, int64_t n) {
  cuda::act_forward(act, out, x, n, stream);
}

void CudaBackend<F>::act_backward(Act act, F* dx, const F* dout, const F* x, int64_t n) {
  cuda::act_backward(act, dx, dout, x, n, stream);
}

void CudaBackend<F>::mul_forward(F* out, const F* a, const F* b, int64_t n) {
  cuda::mul_forward(out, a, b, n, stream);
}

void CudaBackend<F>::mul_backward(F* da, F* db, const F* dout, const F* a, const F* b, int64_t n) {
  cuda::mul_backward(da, db, dout, a, b, n, stream);
}

void CudaBackend<F>::add_forward(F* out, const F* a, const F* b, int64_t n) {
  cuda::add_forward(out, a, b, n, stream);
}

void CudaBackend<F>::accumulate(F* dst, const F* src, int64_t n) {
  cuda::accumulate(dst, src, n, stream);
}

void CudaBackend<F>::scale_channels_forward(F* out, const F* x, const F* vec, int64_t n,
                                            int64_t C) {
  cuda::scale_channels_forward(out, x, vec, n, C, stream);
}

void CudaBackend<F>::scale_channels_backward(F* dx, F* dvec, const F* dout, const F* x,
                                             const F* vec, int64_t n, int64_t C) {
  cuda::scale_channels_backward(dx, dvec, dout, x, vec, n, C, stream);
}

void CudaBackend<F>::bias_sigmoid_forward(F* out, const F* bias, const F* z, int64_t n, int64_t C) {
  cuda::bias_sigmoid_forward(out, bias, z, n, C, stream);
}

void CudaBackend<F>::bias_sigmoid_backward(F* dbias, F* dz, const F* dout, const F* out, int64_t n,
                                           int64_t C) {
  cuda::bias_sigmoid_backward(dbias, dz, dout, out, n, C, stream);
}

void CudaBackend<F>::shift_diff_forward(F* xx, const F* x, const F* prev, int64_t B, int64_t T,
                                        int64_t C) {
  cuda::shift_diff_forward(xx, x, prev, B, T, C, stream);
}

void CudaBackend<F>::shift_diff_backward(F* dx, F* dprev, const F* dxx, int64_t B, int64_t T,
                                         int64_t C) {
  cuda::shift_diff_backward(dx, dprev, dxx, B, T, C, stream);
}

void CudaBackend<F>::shift_last(F* last, const F* x, int64_t B, int64_t T, int64_t C) {
  cuda::shift_last(last, x, B, T, C, stream);
}

void CudaBackend<F>::mix_forward(std::span<F* const> outs, const F* x, const F* xx,
                                 std::span<const F* const> coefs, std::span<const F* const> ms,
                                 bool one_minus, int64_t n, int64_t C) {
  cuda::mix_forward(outs, x, xx, coefs, ms, one_minus, n, C, stream);
}

void CudaBackend<F>::mix_backward(F* dx, F* dxx, std::span<F* const> dcoefs,
                                  std::span<F* const> dms, std::span<const F* const> douts,
                                  const F* xx, std::span<const F* const> coefs,
                                  std::span<const F* const> ms, bool one_minus, int64_t n,
                                  int64_t C) {
  cuda::mix_backward(dx, dxx, dcoefs, dms, douts, xx, coefs, ms, one_minus, n, C, stream);
}

void CudaBackend<F>::decay_v6_forward(F* lw, const F* time_decay, const F* ww, int64_t n,
                                      int64_t C) {
  cuda::decay_v6_forward(lw, time_decay, ww, n, C, stream);
}

void CudaBackend<F>::decay_v6_backward(F* dtime_decay, F* dww, const F* dlw, const F* lw,
                                       int64_t n, int64_t C) {
  cuda::decay_v6_backward(dtime_decay, dww, dlw, lw, n, C, stream);
}

void CudaBackend<F>::decay_v7_forward(F* lw, const F* w0, const F* z, int64_t n, int64_t C) {
  cuda::decay_v7_forward(lw, w0, z, n, C, stream);
}

void CudaBackend<F>::decay_v7_backward(F* dw0, F* dz, const F* dlw, const F* w0, const F* z,
                                       int64_t n, int64_t C) {
  cuda::decay_v7_backward(dw0, dz, dlw, w0, z, n, C, stream);
}

void CudaBackend<F>::value_residual_forward(F* out, const F* v, const F* v_first, const F* s,
                                            int64_t n) {
  cuda::value_residual_forward(out, v, v_first, s, n, stream);
}

void CudaBackend<F>::value_residual_backward(F* dv, F* dv_first, F* ds, const F* dout, const F* v,
                                             const F* v_first, const F* s, int64_t n) {
  cuda::value_residual_backward(dv, dv_first, ds, dout, v, v_first, s, n, stream);
}

void CudaBackend<F>::key_adjust_forward(F* out, const F* k, const F* a, const F* k_a, int64_t n,
                                        int64_t C) {
  cuda::key_adjust_forward(out, k, a, k_a, n, C, stream);
}

void CudaBackend<F>::key_adjust_backward(F* dk, F* da, F* dk_a, const F* dout, const F* k,
                                         const F* a, const F* k_a, int64_t n, int64_t C) {
  cuda::key_adjust_backward(dk, da, dk_a, dout, k, a, k_a, n, C, stream);
}

void CudaBackend<F>::wkv7_ab_forward(F* wa, F* wb, const F* kk, const F* a, int64_t n) {
  cuda::wkv7_ab_forward(wa, wb, kk, a, n, stream);
}

void CudaBackend<F>::wkv7_ab_backward(F* dkk, F* da, const F* dwa, const F* dwb, const F* kk,
                                      const F* a, int64_t n) {
  cuda::wkv7_ab_backward(dkk, da, dwa, dwb, kk, a, n, stream);
}

void CudaBackend<F>::bonus_v7_forward(F* out, const F* r, const F* k, const F* v, const F* r_k,
                                      const F* g, int64_t n, int64_t H, int64_t N) {
  auto* dots = static_cast<float*>(scratch(cuda::bonus_v7_scratch_floats(n, H) * sizeof(float)));
  cuda::bonus_v7_forward(out, r, k, v, r_k, g, n, H, N, dots, stream);
}

void CudaBackend<F>::bonus_v7_backward(F* dr, F* dk, F* dv, F* dr_k, F* dg, const F* dout,
                                       const F* r, const F* k, const F* v, const F* r_k, const F* g,
                                       int64_t n, int64_t H, int64_t N) {
  auto* dots = static_cast<float*>(scratch(cuda::bonus_v7_scratch_floats(n, H) * sizeof(float)));
  cuda::bonus_v7_backward(dr, dk, dv, dr_k, dg, dout, r, k, v, r_k, g, n, H, N, dots, stream);
}

void CudaBackend<F>::ce_local_max(F* max, int32_t* argmax, const F* logits, int64_t n, int64_t Vl,
                                  int64_t v0) {
  cuda::ce_local_max(max, argmax, logits, n, Vl, v0, stream);
}

void CudaBackend<F>::ce_local_sums(F* sumexp, F* target_logit, const F* logits,
                                   const int32_t* targets, const F* max, int64_t n, int64_t Vl,
                                   int64_t v0) {
  cuda::ce_local_sums(sumexp, target_logit, logits, targets, max, n, Vl, v0, stream);
}

void CudaBackend<F>::ce_loss(F* losses, const F* max, const F* sumexp, const F* target_logit,
                             int64_t n) {
  cuda::ce_loss(losses, max, sumexp, target_logit, n, stream);
}

void CudaBackend<F>::ce_backward(F* dlogits, const F* logits, const int32_t* targets, const F* max,
                                 const F* sumexp, const int32_t* argmax, int64_t n, int64_t Vl,
                                 int64_t v0, F scale, F l2wrap_factor) {
  cuda::ce_backward(dlogits, logits, targets, max, sumexp, argmax, n, Vl, v0, scale, l2wrap_factor,
                    stream);
}

void CudaBackend<F>::adamw_step(F* p, const F* g, F* m, F* v,
                                std::span<const AdamWSegment> segments, const AdamWHyper& h,
                                int64_t t) {
  cuda::adamw_step(p, g, m, v, segments, h, t, stream);
}

double CudaBackend<F>::sum_squares(const F* x, int64_t n) {
  // The block sums, then the total after them, in the scratch block.
  const size_t partial_bytes = cuda::sum_squares_scratch_bytes();
  char* s = static_cast<char*>(scratch(partial_bytes + sizeof(double)));
  auto* total = reinterpret_cast<double*>(s + partial_bytes);
  cuda::sum_squares(total, x, n, s, stream);
  double host = 0;
  CUDA_CHECK(cudaMemcpyAsync(&host, total, sizeof(double), cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
  return host;
}

void CudaBackend<F>::scale(F* x, F s, int64_t n) { cuda::scale(x, s, n, stream); }

// RWKV-4: the forward keeps nothing for the backward, which needs scratch only.
void CudaBackend<F>::wkv4_forward(int B, int T, int C, int c0, int c1, const F* w, const F* u,
                                  const F* k, const F* v, F* y, const F* state_in, F* state_out) {
  cuda::wkv4_forward(B, T, C, c0, c1, w, u, k, v, y, state_in, state_out, stream);
}

void CudaBackend<F>::wkv4_backward(int B, int T, int C, int c0, int c1, const F* w, const F* u,
                                   const F* k, const F* v, const F* dy, F* dw, F* du, F* dk,
                                   F* dv) {
  cuda::wkv4_backward(B, T, C, c0, c1, w, u, k, v, dy, dw, du, dk, dv,
                      scratch(cuda::wkv4_workspace_bytes(B, T, C)), stream);
}

void* CudaBackend<F>::wkv_forward_workspace(const F* r, size_t bytes, int B, int T, int H, int N) {
  auto it = wkv_ws_.find(r);
  if (it != wkv_ws_.end() && it->second.bytes < bytes) {  // a longer sequence: grow
    free_bytes(it->second.p);
    wkv_ws_.erase(it);
    it = wkv_ws_.end();
  }
  if (it == wkv_ws_.end()) it = wkv_ws_.emplace(r, WkvWorkspace{alloc_bytes(bytes), bytes}).first;
  it->second.B = B;
  it->second.T = T;
  it->second.H = H;
  it->second.N = N;
  return it->second.p;
}

void* CudaBackend<F>::wkv_backward_workspace(const char* fn, const F* r, int B, int T, int H,
                                             int N) const {
  const auto it = wkv_ws_.find(r);
  if (it == wkv_ws_.end() || it->second.B != B || it->second.T != T || it->second.H != H ||
      it->second.N != N) {
    std::ostringstream msg;
    msg << fn << ": no forward with these inputs (r = " << static_cast<const void*>(r) << ", B=" << B
        << " T=" << T << " H=" << H << " N=" << N
        << ") ran on this backend; the CUDA WKV backward reads the checkpoints its forward stored";
    throw Error(msg.str());
  }
  return it->second.p;
}

void CudaBackend<F>::wkv6_forward(WkvAlgo, int B, int T, int H, int N, int h0, int h1, const F* r,
                                  const F* k, const F* v, const F* lw, const F* u, F* y,
                                  const F* state_in, F* state_out) {
  void* ws = wkv_forward_workspace(r, cuda::wkv6_workspace_bytes(B, T, H, N), B, T, H, N);
  if (wkv == WkvKernels::chunked) {
    void* sc = scratch(cuda::wkv6_chunked_scratch_bytes(B, T, H, h1 - h0, N));
    cuda::wkv6_forward_chunked(B, T, H, N, h0, h1, r, k, v, lw, u, y, state_in, state_out, ws, sc,
                               cuda::wkv7_default_splits(B, h1 - h0, N), stream);
    return;
  }
  cuda::wkv6_forward(B, T, H, N, h0, h1, r, k, v, lw, u, y, state_in, state_out, ws, stream);
}

void CudaBackend<F>::wkv6_backward(WkvAlgo, int B, int T, int H, int N, int h0, int h1, const F* r,
                                   const F* k, const F* v, const F* lw, const F* u, const F* dy,
                                   F* dr, F* dk, F* dv, F* dlw, F* du) {
  void* ws = wkv_backward_workspace("CudaBackend::wkv6_backward", r, B, T, H, N);
  if (wkv == WkvKernels::chunked) {
    void* sc = scratch(cuda::wkv6_chunked_scratch_bytes(B, T, H, h1 - h0, N));
    cuda::wkv6_backward_chunked(B, T, H, N, h0, h1, r, k, v, lw, u, dy, dr, dk, dv, dlw, du, ws, sc,
                                cuda::wkv7_default_splits(B, h1 - h0, N), stream);
    return;
  }
  cuda::wkv6_backward(B, T, H, N, h0, h1, r, k, v, lw, u, dy, dr, dk, dv, dlw, du, ws, stream);
}

void CudaBackend<F>::wkv7_forward(WkvAlgo, int B, int T, int H, int N, int h0, int h1, const F* r,
                                  const F* lw, const F* k, const F* v, const F* a, const F* b,
                                  F* y, const F* state_in, F* state_out) {
  void* ws = wkv_forward_workspace(r, cuda::wkv7_workspace_bytes(B, T, H, N), B, T, H, N);
  const int splits = cuda::wkv7_default_splits(B, h1 - h0, N);
  if (wkv == WkvKernels::chunked) {
    void* prep = scratch(cuda::wkv7_chunked_scratch_bytes(B, T, h1 - h0, N));
    cuda::wkv7_forward_chunked(B, T, H, N, h0, h1, r, lw, k, v, a, b, y, state_in, state_out, ws,
                               prep, splits, stream);
    return;
  }
  cuda::wkv7_forward(B, T, H, N, h0, h1, r, lw, k, v, a, b, y, state_in, state_out, ws, splits,
                     stream);
}

void CudaBackend<F>::wkv7_backward(WkvAlgo, int B, int T, int H, int N, int h0, int h1, const F* r,
                                   const F* lw, const F* k, const F* v, const F* a, const F* b,
                                   const F* dy, F* dr, F* dlw, F* dk, F* dv, F* da, F* db) {
  void* ws = wkv_backward_workspace("CudaBackend::wkv7_backward", r, B, T, H, N);
  const int splits = cuda::wkv7_default_splits(B, h1 - h0, N);
  if (wkv == WkvKernels::chunked) {
    void* sc = scratch(cuda::wkv7_chunked_backward_scratch_bytes(B, T, H, h1 - h0, N));
    cuda::wkv7_backward_chunked(B, T, H, N, h0, h1, r, lw, k, v, a, b, dy, dr, dlw, dk, dv, da, db,
                                ws, sc, splits, stream);
    return;
  }
  void* partials = scratch(cuda::wkv7_backward_scratch_bytes(B, T, h1 - h0, N, splits));
  cuda::wkv7_backward(B, T, H, N, h0, h1, r, lw, k, v, a, b, dy, dr, dlw, dk, dv, da, db, ws,
                      partials, splits, stream);
}

}  // namespace rwkv::kernels
