#include <cstdint>
#include <sstream>
#include <type_traits>
#include <vector>

#include "common/error.h"
#include "kernels/cuda/adamw.h"
#include "kernels/cuda/backend_cuda.h"
#include "kernels/cuda/bf16.h"
#include "kernels/cuda/convert.h"
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

namespace {

// The WKV launchers' bf16 tensors are __nv_bfloat16 (the layout of Bf16).
const float* dev(const float* p) { return p; }
float* dev(float* p) { return p; }
const __nv_bfloat16* dev(const Bf16* p) { return reinterpret_cast<const __nv_bfloat16*>(p); }
__nv_bfloat16* dev(Bf16* p) { return reinterpret_cast<__nv_bfloat16*>(p); }

// Bytes of n elements of T.
template <typename T>
size_t bytes_of(int64_t n) {
  return static_cast<size_t>(n) * sizeof(T);
}

// A copy between host and device memory, finished on return: the host buffer may be
// reused or read at once.
void copy_and_wait(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                   cudaStream_t stream) {
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
}

}  // namespace

template <typename A>
CudaBackend<A>::CudaBackend(size_t arena_bytes, MatmulPrecision precision_, WkvKernels wkv_)
    : arena(arena_bytes), precision(precision_), wkv(wkv_) {
  if (std::is_same_v<A, Bf16> && precision != MatmulPrecision::bf16)
    throw Error("CudaBackend: bf16 activations multiply in bf16 (MatmulPrecision::bf16)");
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
template <typename A>
CudaBackend<A>::~CudaBackend() {
  cudaStreamSynchronize(stream);
  cublasDestroy(cublas);
  cudaFree(base);
  cudaStreamDestroy(stream);
}

template <typename A>
void CudaBackend<A>::synchronize() {
  CUDA_CHECK(cudaStreamSynchronize(stream));
}

template <typename A>
void* CudaBackend<A>::alloc_bytes(size_t bytes) {
  char* p = base + arena.alloc(bytes);
  CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream));
  return p;
}

template <typename A>
void CudaBackend<A>::free_bytes(const void* p) {
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

template <typename A>
void* CudaBackend<A>::scratch(size_t bytes) {
  if (bytes > scratch_bytes_) {
    free_bytes(scratch_);
    scratch_ = nullptr;  // a failed alloc below must not leave a freed block here
    scratch_bytes_ = 0;
    scratch_ = alloc_bytes(bytes);
    scratch_bytes_ = bytes;
  }
  return scratch_;
}

template <typename A>
F* CudaBackend<A>::alloc(int64_t n) {
  return static_cast<F*>(alloc_bytes(bytes_of<F>(n)));
}

template <typename A>
void CudaBackend<A>::free(F* p) {
  free_bytes(p);
}

template <typename A>
int32_t* CudaBackend<A>::alloc_ids(int64_t n) {
  return static_cast<int32_t*>(alloc_bytes(bytes_of<int32_t>(n)));
}

template <typename A>
void CudaBackend<A>::free_ids(int32_t* p) {
  free_bytes(p);
}

template <typename A>
void CudaBackend<A>::zero(F* p, int64_t n) {
  CUDA_CHECK(cudaMemsetAsync(p, 0, bytes_of<F>(n), stream));
}

template <typename A>
void CudaBackend<A>::copy(F* dst, const F* src, int64_t n) {
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes_of<F>(n), cudaMemcpyDeviceToDevice, stream));
}

template <typename A>
void CudaBackend<A>::upload(F* dst, const F* host, int64_t n) {
  copy_and_wait(dst, host, bytes_of<F>(n), cudaMemcpyHostToDevice, stream);
}

template <typename A>
void CudaBackend<A>::download(F* host, const F* src, int64_t n) {
  copy_and_wait(host, src, bytes_of<F>(n), cudaMemcpyDeviceToHost, stream);
}

template <typename A>
void CudaBackend<A>::upload_ids(int32_t* dst, const int32_t* host, int64_t n) {
  copy_and_wait(dst, host, bytes_of<int32_t>(n), cudaMemcpyHostToDevice, stream);
}

template <typename A>
A* CudaBackend<A>::alloc_act(int64_t n) {
  return static_cast<A*>(alloc_bytes(bytes_of<A>(n)));
}

template <typename A>
void CudaBackend<A>::free_act(A* p) {
  free_bytes(p);
}

template <typename A>
void CudaBackend<A>::zero_act(A* p, int64_t n) {
  CUDA_CHECK(cudaMemsetAsync(p, 0, bytes_of<A>(n), stream));
}

template <typename A>
void CudaBackend<A>::copy_act(A* dst, const A* src, int64_t n) {
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes_of<A>(n), cudaMemcpyDeviceToDevice, stream));
}

// bf16 goes across as bf16, rounded or widened on the host (kernels/cuda/bf16.h).
template <typename A>
void CudaBackend<A>::upload_act(A* dst, const F* host, int64_t n) {
  if constexpr (std::is_same_v<A, F>) {
    upload(dst, host, n);
  } else {
    std::vector<A> rounded(static_cast<size_t>(n));
    for (size_t i = 0; i < rounded.size(); ++i) rounded[i] = cuda::from_float<A>(host[i]);
    copy_and_wait(dst, rounded.data(), bytes_of<A>(n), cudaMemcpyHostToDevice, stream);
  }
}

template <typename A>
void CudaBackend<A>::download_act(F* host, const A* src, int64_t n) {
  if constexpr (std::is_same_v<A, F>) {
    download(host, src, n);
  } else {
    std::vector<A> stored(static_cast<size_t>(n));
    copy_and_wait(stored.data(), src, bytes_of<A>(n), cudaMemcpyDeviceToHost, stream);
    for (size_t i = 0; i < stored.size(); ++i) host[i] = cuda::to_float(stored[i]);
  }
}

template <typename A>
void CudaBackend<A>::round_act(A* dst, const F* src, int64_t n) {
  if constexpr (std::is_same_v<A, F>)
    copy(dst, src, n);
  else
    cuda::to_bf16(dev(dst), src, 1, n, n, stream);
}

template <typename A>
void CudaBackend<A>::embedding_forward(A* out, const int32_t* idx, const F* emb, int64_t n,
                                       int64_t C, int64_t v0, int64_t v1) {
  cuda::embedding_forward(out, idx, emb, n, C, v0, v1, stream);
}

template <typename A>
void CudaBackend<A>::embedding_backward(F* demb, const A* dout, const int32_t* idx, int64_t n,
                                        int64_t C, int64_t v0, int64_t v1) {
  cuda::embedding_backward(demb, dout, idx, n, C, v0, v1,
                           scratch(cuda::embedding_backward_scratch_bytes(n, v0, v1)), stream);
}

template <typename A>
void CudaBackend<A>::layernorm_forward(A* out, F* mean, F* rstd, const A* x, const F* w, const F* b,
                                       int64_t n, int64_t C, F eps) {
  cuda::layernorm_forward(out, mean, rstd, x, w, b, n, C, eps, stream);
}

template <typename A>
void CudaBackend<A>::layernorm_backward(A* dx, F* dw, F* db, const A* dout, const A* x, const F* w,
                                        const F* mean, const F* rstd, int64_t n, int64_t C) {
  cuda::layernorm_backward(dx, dw, db, dout, x, w, mean, rstd, n, C, stream);
}

template <typename A>
void CudaBackend<A>::rmsnorm_forward(A* out, F* rstd, const A* x, const F* w, int64_t n, int64_t C,
                                     F eps) {
  cuda::rmsnorm_forward(out, rstd, x, w, n, C, eps, stream);
}

template <typename A>
void CudaBackend<A>::rmsnorm_backward(A* dx, F* dw, const A* dout, const A* x, const F* w,
                                      const F* rstd, int64_t n, int64_t C) {
  cuda::rmsnorm_backward(dx, dw, dout, x, w, rstd, n, C, stream);
}

template <typename A>
void CudaBackend<A>::groupnorm_forward(A* out, F* mean, F* rstd, const A* x, const F* w, const F* b,
                                       const A* g, int64_t n, int64_t H, int64_t N, F eps) {
  cuda::groupnorm_forward(out, mean, rstd, x, w, b, g, n, H, N, eps, stream);
}

template <typename A>
void CudaBackend<A>::groupnorm_backward(A* dx, F* dw, F* db, A* dg, const A* dout, const A* x,
                                        const F* w, const F* b, const A* g, const F* mean,
                                        const F* rstd, int64_t n, int64_t H, int64_t N) {
  cuda::groupnorm_backward(dx, dw, db, dg, dout, x, w, b, g, mean, rstd, n, H, N, stream);
}

template <typename A>
void CudaBackend<A>::l2norm_heads_forward(A* out, F* norm, const A* x, int64_t n, int64_t H,
                                          int64_t N, F eps) {
  cuda::l2norm_heads_forward(out, norm, x, n, H, N, eps, stream);
}

template <typename A>
void CudaBackend<A>::l2norm_heads_backward(A* dx, const A* dout, const A* out, const F* norm,
                                           const A* x, int64_t n, int64_t H, int64_t N, F eps) {
  cuda::l2norm_heads_backward(dx, dout, out, norm, x, n, H, N, eps, stream);
}

template <typename A>
void CudaBackend<A>::matmul_forward(A* out, int64_t ldo, const A* x, int64_t ldx, const A* w,
                                    int64_t M, int64_t K, int64_t N, WLayout layout,
                                    bool accumulate) {
  if constexpr (std::is_same_v<A, Bf16>)
    cuda::matmul_forward(out, ldo, x, ldx, w, M, K, N, layout, accumulate, cublas, stream);
  else if (precision == MatmulPrecision::bf16)
    cuda::matmul_forward_bf16(out, ldo, x, ldx, w, M, K, N, layout, accumulate,
                              scratch(cuda::matmul_bf16_scratch_bytes(M, K, N)), cublas, stream);
  else
    cuda::matmul_forward(out, ldo, x, ldx, w, M, K, N, layout, accumulate, cublas, stream);
}

template <typename A>
void CudaBackend<A>::matmul_backward(A* dx, F* dw, const A* dout, int64_t ldo, const A* x,
                                     int64_t ldx, const A* w, int64_t M, int64_t K, int64_t N,
                                     WLayout layout, bool accumulate_dx) {
  if constexpr (std::is_same_v<A, Bf16>)
    cuda::matmul_backward(dx, dw, dout, ldo, x, ldx, w, M, K, N, layout, accumulate_dx, cublas,
                          stream);
  else if (precision == MatmulPrecision::bf16)
    cuda::matmul_backward_bf16(dx, dw, dout, ldo, x, ldx, w, M, K, N, layout, accumulate_dx,
                               scratch(cuda::matmul_bf16_scratch_bytes(M, K, N)), cublas, stream);
  else
    cuda::matmul_backward(dx, dw, dout, ldo, x, ldx, w, M, K, N, layout, accumulate_dx, cublas,
                          stream);
}

template <typename A>
void CudaBackend<A>::act_forward(Act act, A* out, const A* x, int64_t n) {
  cuda::act_forward(act, out, x, n, stream);
}

template <typename A>
void CudaBackend<A>::act_backward(Act act, A* dx, const A* dout, const A* x, int64_t n) {
  cuda::act_backward(act, dx, dout, x, n, stream);
}

template <typename A>
void CudaBackend<A>::mul_forward(A* out, const A* a, const A* b, int64_t n) {
  cuda::mul_forward(out, a, b, n, stream);
}

template <typename A>
void CudaBackend<A>::mul_backward(A* da, A* db, const A* dout, const A* a, const A* b, int64_t n) {
  cuda::mul_backward(da, db, dout, a, b, n, stream);
}

template <typename A>
void CudaBackend<A>::add_forward(A* out, const A* a, const A* b, int64_t n) {
  cuda::add_forward(out, a, b, n, stream);
}

template <typename A>
void CudaBackend<A>::accumulate(F* dst, const F* src, int64_t n) {
  cuda::accumulate(dst, src, n, stream);
}

template <typename A>
void CudaBackend<A>::accumulate_act(A* dst, const A* src, int64_t n) {
  cuda::accumulate(dst, src, n, stream);
}

template <typename A>
void CudaBackend<A>::decay_v4_forward(F* w, const F* time_decay, int64_t C) {
  cuda::act_forward(Act::exp, w, time_decay, C, stream);
}

template <typename A>
void CudaBackend<A>::decay_v4_backward(F* dtime_decay, const F* dw, const F* time_decay,
                                       int64_t C) {
  cuda::act_backward(Act::exp, dtime_decay, dw, time_decay, C, stream);
}

template <typename A>
void CudaBackend<A>::scale_channels_forward(A* out, const A* x, const F* vec, int64_t n,
                                            int64_t C) {
  cuda::scale_channels_forward(out, x, vec, n, C, stream);
}

template <typename A>
void CudaBackend<A>::scale_channels_backward(A* dx, F* dvec, const A* dout, const A* x,
                                             const F* vec, int64_t n, int64_t C) {
  cuda::scale_channels_backward(dx, dvec, dout, x, vec, n, C, stream);
}

template <typename A>
void CudaBackend<A>::bias_sigmoid_forward(A* out, const F* bias, const A* z, int64_t n, int64_t C) {
  cuda::bias_sigmoid_forward(out, bias, z, n, C, stream);
}

template <typename A>
void CudaBackend<A>::bias_sigmoid_backward(F* dbias, A* dz, const A* dout, const A* out, int64_t n,
                                           int64_t C) {
  cuda::bias_sigmoid_backward(dbias, dz, dout, out, n, C, stream);
}

template <typename A>
void CudaBackend<A>::shift_diff_forward(A* xx, const A* x, const F* prev, int64_t B, int64_t T,
                                        int64_t C) {
  cuda::shift_diff_forward(xx, x, prev, B, T, C, stream);
}

template <typename A>
void CudaBackend<A>::shift_diff_backward(A* dx, F* dprev, const A* dxx, int64_t B, int64_t T,
                                         int64_t C) {
  cuda::shift_diff_backward(dx, dprev, dxx, B, T, C, stream);
}

template <typename A>
void CudaBackend<A>::shift_last(F* last, const A* x, int64_t B, int64_t T, int64_t C) {
  cuda::shift_last(last, x, B, T, C, stream);
}

template <typename A>
void CudaBackend<A>::mix_forward(std::span<A* const> outs, const A* x, const A* xx,
                                 std::span<const F* const> coefs, std::span<const A* const> ms,
                                 bool one_minus, int64_t n, int64_t C) {
  cuda::mix_forward(outs, x, xx, coefs, ms, one_minus, n, C, stream);
}

template <typename A>
void CudaBackend<A>::mix_backward(A* dx, A* dxx, std::span<F* const> dcoefs,
                                  std::span<A* const> dms, std::span<const A* const> douts,
                                  const A* xx, std::span<const F* const> coefs,
                                  std::span<const A* const> ms, bool one_minus, int64_t n,
                                  int64_t C) {
  cuda::mix_backward(dx, dxx, dcoefs, dms, douts, xx, coefs, ms, one_minus, n, C, stream);
}

template <typename A>
void CudaBackend<A>::decay_v6_forward(A* lw, const F* time_decay, const A* ww, int64_t n,
                                      int64_t C) {
  cuda::decay_v6_forward(lw, time_decay, ww, n, C, stream);
}

template <typename A>
void CudaBackend<A>::decay_v6_backward(F* dtime_decay, A* dww, const A* dlw, const A* lw, int64_t n,
                                       int64_t C) {
  cuda::decay_v6_backward(dtime_decay, dww, dlw, lw, n, C, stream);
}

template <typename A>
void CudaBackend<A>::decay_v7_forward(A* lw, const F* w0, const A* z, int64_t n, int64_t C) {
  cuda::decay_v7_forward(lw, w0, z, n, C, stream);
}

template <typename A>
void CudaBackend<A>::decay_v7_backward(F* dw0, A* dz, const A* dlw, const F* w0, const A* z,
                                       int64_t n, int64_t C) {
  cuda::decay_v7_backward(dw0, dz, dlw, w0, z, n, C, stream);
}

template <typename A>
void CudaBackend<A>::value_residual_forward(A* out, const A* v, const A* v_first, const A* s,
                                            int64_t n) {
  cuda::value_residual_forward(out, v, v_first, s, n, stream);
}

template <typename A>
void CudaBackend<A>::value_residual_backward(A* dv, A* dv_first, A* ds, const A* dout, const A* v,
                                             const A* v_first, const A* s, int64_t n) {
  cuda::value_residual_backward(dv, dv_first, ds, dout, v, v_first, s, n, stream);
}

template <typename A>
void CudaBackend<A>::key_adjust_forward(A* out, const A* k, const A* a, const F* k_a, int64_t n,
                                        int64_t C) {
  cuda::key_adjust_forward(out, k, a, k_a, n, C, stream);
}

template <typename A>
void CudaBackend<A>::key_adjust_backward(A* dk, A* da, F* dk_a, const A* dout, const A* k,
                                         const A* a, const F* k_a, int64_t n, int64_t C) {
  cuda::key_adjust_backward(dk, da, dk_a, dout, k, a, k_a, n, C, stream);
}

template <typename A>
void CudaBackend<A>::wkv7_ab_forward(A* wa, A* wb, const A* kk, const A* a, int64_t n) {
  cuda::wkv7_ab_forward(wa, wb, kk, a, n, stream);
}

template <typename A>
void CudaBackend<A>::wkv7_ab_backward(A* dkk, A* da, const A* dwa, const A* dwb, const A* kk,
                                      const A* a, int64_t n) {
  cuda::wkv7_ab_backward(dkk, da, dwa, dwb, kk, a, n, stream);
}

template <typename A>
void CudaBackend<A>::bonus_v7_forward(A* out, const A* r, const A* k, const A* v, const F* r_k,
                                      const A* g, int64_t n, int64_t H, int64_t N) {
  auto* dots = static_cast<float*>(scratch(cuda::bonus_v7_scratch_floats(n, H) * sizeof(float)));
  cuda::bonus_v7_forward(out, r, k, v, r_k, g, n, H, N, dots, stream);
}

template <typename A>
void CudaBackend<A>::bonus_v7_backward(A* dr, A* dk, A* dv, F* dr_k, A* dg, const A* dout,
                                       const A* r, const A* k, const A* v, const F* r_k, const A* g,
                                       int64_t n, int64_t H, int64_t N) {
  auto* dots = static_cast<float*>(scratch(cuda::bonus_v7_scratch_floats(n, H) * sizeof(float)));
  cuda::bonus_v7_backward(dr, dk, dv, dr_k, dg, dout, r, k, v, r_k, g, n, H, N, dots, stream);
}

template <typename A>
void CudaBackend<A>::ce_local_max(F* max, int32_t* argmax, const A* logits, int64_t n, int64_t Vl,
                                  int64_t v0) {
  cuda::ce_local_max(max, argmax, logits, n, Vl, v0, stream);
}

template <typename A>
void CudaBackend<A>::ce_local_sums(F* sumexp, F* target_logit, const A* logits,
                                   const int32_t* targets, const F* max, int64_t n, int64_t Vl,
                                   int64_t v0) {
  cuda::ce_local_sums(sumexp, target_logit, logits, targets, max, n, Vl, v0, stream);
}

template <typename A>
void CudaBackend<A>::ce_loss(F* losses, const F* max, const F* sumexp, const F* target_logit,
                             int64_t n) {
  cuda::ce_loss(losses, max, sumexp, target_logit, n, stream);
}

template <typename A>
void CudaBackend<A>::ce_backward(A* dlogits, const A* logits, const int32_t* targets, const F* max,
                                 const F* sumexp, const int32_t* argmax, int64_t n, int64_t Vl,
                                 int64_t v0, F scale, F l2wrap_factor) {
  cuda::ce_backward(dlogits, logits, targets, max, sumexp, argmax, n, Vl, v0, scale, l2wrap_factor,
                    stream);
}

template <typename A>
void CudaBackend<A>::adamw_step(F* p, const F* g, F* m, F* v,
                                std::span<const AdamWSegment> segments, const AdamWHyper& h,
                                int64_t t) {
  cuda::adamw_step(p, g, m, v, segments, h, t, stream);
}

template <typename A>
double CudaBackend<A>::sum_squares(const F* x, int64_t n) {
  // The block sums, then the total after them, in the scratch block.
  const size_t partial_bytes = cuda::sum_squares_scratch_bytes();
  char* s = static_cast<char*>(scratch(partial_bytes + sizeof(double)));
  auto* total = reinterpret_cast<double*>(s + partial_bytes);
  cuda::sum_squares(total, x, n, s, stream);
  double host = 0;
  copy_and_wait(&host, total, sizeof(double), cudaMemcpyDeviceToHost, stream);
  return host;
}

template <typename A>
void CudaBackend<A>::scale(F* x, F s, int64_t n) {
  cuda::scale(x, s, n, stream);
}

// RWKV-4: the forward keeps nothing for the backward, which needs scratch only.
template <typename A>
void CudaBackend<A>::wkv4_forward(int B, int T, int C, int c0, int c1, const F* w, const F* u,
                                  const A* k, const A* v, A* y, const F* state_in, F* state_out) {
  cuda::wkv4_forward(B, T, C, c0, c1, w, u, dev(k), dev(v), dev(y), state_in, state_out, stream);
}

template <typename A>
void CudaBackend<A>::wkv4_backward(int B, int T, int C, int c0, int c1, const F* w, const F* u,
                                   const A* k, const A* v, const A* dy, F* dw, F* du, A* dk,
                                   A* dv) {
  cuda::wkv4_backward(B, T, C, c0, c1, w, u, dev(k), dev(v), dev(dy), dw, du, dev(dk), dev(dv),
                      scratch(cuda::wkv4_workspace_bytes(B, T, C)), stream);
}

template <typename A>
void* CudaBackend<A>::wkv_forward_workspace(const void* r, size_t bytes, int B, int T, int H,
                                            int N) {
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

template <typename A>
void* CudaBackend<A>::wkv_backward_workspace(const char* fn, const void* r, int B, int T, int H,
                                             int N) const {
  const auto it = wkv_ws_.find(r);
  if (it == wkv_ws_.end() || it->second.B != B || it->second.T != T || it->second.H != H ||
      it->second.N != N) {
    std::ostringstream msg;
    msg << fn << ": no forward with these inputs (r = " << r << ", B=" << B << " T=" << T
        << " H=" << H << " N=" << N
        << ") ran on this backend; the CUDA WKV backward reads the checkpoints its forward stored";
    throw Error(msg.str());
  }
  return it->second.p;
}

template <typename A>
void CudaBackend<A>::wkv6_forward(WkvAlgo, int B, int T, int H, int N, int h0, int h1, const A* r,
                                  const A* k, const A* v, const A* lw, const F* u, A* y,
                                  const F* state_in, F* state_out) {
  void* ws = wkv_forward_workspace(r, cuda::wkv6_workspace_bytes(B, T, H, N), B, T, H, N);
  if (wkv == WkvKernels::chunked) {
    void* sc = scratch(cuda::wkv6_chunked_scratch_bytes(B, T, H, h1 - h0, N));
    cuda::wkv6_forward_chunked(B, T, H, N, h0, h1, dev(r), dev(k), dev(v), dev(lw), u, dev(y),
                               state_in, state_out, ws, sc,
                               cuda::wkv7_default_splits(B, h1 - h0, N), stream);
    return;
  }
  cuda::wkv6_forward(B, T, H, N, h0, h1, dev(r), dev(k), dev(v), dev(lw), u, dev(y), state_in,
                     state_out, ws, stream);
}

template <typename A>
void CudaBackend<A>::wkv6_backward(WkvAlgo, int B, int T, int H, int N, int h0, int h1, const A* r,
                                   const A* k, const A* v, const A* lw, const F* u, const A* dy,
                                   A* dr, A* dk, A* dv, A* dlw, F* du) {
  void* ws = wkv_backward_workspace("CudaBackend::wkv6_backward", r, B, T, H, N);
  if (wkv == WkvKernels::chunked) {
    void* sc = scratch(cuda::wkv6_chunked_scratch_bytes(B, T, H, h1 - h0, N));
    cuda::wkv6_backward_chunked(B, T, H, N, h0, h1, dev(r), dev(k), dev(v), dev(lw), u, dev(dy),
                                dev(dr), dev(dk), dev(dv), dev(dlw), du, ws, sc,
                                cuda::wkv7_default_splits(B, h1 - h0, N), stream);
    return;
  }
  cuda::wkv6_backward(B, T, H, N, h0, h1, dev(r), dev(k), dev(v), dev(lw), u, dev(dy), dev(dr),
                      dev(dk), dev(dv), dev(dlw), du, ws, stream);
}

template <typename A>
void CudaBackend<A>::wkv7_forward(WkvAlgo, int B, int T, int H, int N, int h0, int h1, const A* r,
                                  const A* lw, const A* k, const A* v, const A* a, const A* b, A* y,
                                  const F* state_in, F* state_out) {
  void* ws = wkv_forward_workspace(r, cuda::wkv7_workspace_bytes(B, T, H, N), B, T, H, N);
  const int splits = cuda::wkv7_default_splits(B, h1 - h0, N);
  if (wkv == WkvKernels::chunked) {
    void* prep = scratch(cuda::wkv7_chunked_scratch_bytes(B, T, h1 - h0, N));
    cuda::wkv7_forward_chunked(B, T, H, N, h0, h1, dev(r), dev(lw), dev(k), dev(v), dev(a), dev(b),
                               dev(y), state_in, state_out, ws, prep, splits, stream);
    return;
  }
  cuda::wkv7_forward(B, T, H, N, h0, h1, dev(r), dev(lw), dev(k), dev(v), dev(a), dev(b), dev(y),
                     state_in, state_out, ws, splits, stream);
}

template <typename A>
void CudaBackend<A>::wkv7_backward(WkvAlgo, int B, int T, int H, int N, int h0, int h1, const A* r,
                                   const A* lw, const A* k, const A* v, const A* a, const A* b,
                                   const A* dy, A* dr, A* dlw, A* dk, A* dv, A* da, A* db) {
  void* ws = wkv_backward_workspace("CudaBackend::wkv7_backward", r, B, T, H, N);
  const int splits = cuda::wkv7_default_splits(B, h1 - h0, N);
  if (wkv == WkvKernels::chunked) {
    void* sc = scratch(cuda::wkv7_chunked_backward_scratch_bytes(B, T, H, h1 - h0, N));
    cuda::wkv7_backward_chunked(B, T, H, N, h0, h1, dev(r), dev(lw), dev(k), dev(v), dev(a), dev(b),
                                dev(dy), dev(dr), dev(dlw), dev(dk), dev(dv), dev(da), dev(db), ws,
                                sc, splits, stream);
    return;
  }
  void* partials = scratch(cuda::wkv7_backward_scratch_bytes(B, T, h1 - h0, N, splits));
  cuda::wkv7_backward(B, T, H, N, h0, h1, dev(r), dev(lw), dev(k), dev(v), dev(a), dev(b), dev(dy),
                      dev(dr), dev(dlw), dev(dk), dev(dv), dev(da), dev(db), ws, partials, splits,
                      stream);
}

template struct CudaBackend<float>;
template struct CudaBackend<Bf16>;

}  // namespace rwkv::kernels
