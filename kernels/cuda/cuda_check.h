#pragma once
// Checked CUDA, cuBLAS and NCCL calls. Each macro throws std::runtime_error naming
// the failing call, the file and the line; CUDA_CHECK_LAUNCH() checks the last
// launch error after every kernel launch.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <nccl.h>

#include <stdexcept>
#include <string>

namespace rwkv::cuda {

[[noreturn]] inline void throw_error(const std::string& what, const char* call, const char* file,
                                     int line) {
  throw std::runtime_error(std::string(file) + ":" + std::to_string(line) + ": " + call +
                           " failed: " + what);
}

}  // namespace rwkv::cuda

#define CUDA_CHECK(call)                                                                     \
  do {                                                                                       \
    cudaError_t rwkv_cuda_rc_ = (call);                                                      \
    if (rwkv_cuda_rc_ != cudaSuccess)                                                        \
      ::rwkv::cuda::throw_error(std::string(cudaGetErrorName(rwkv_cuda_rc_)) + " (" +        \
                                    cudaGetErrorString(rwkv_cuda_rc_) + ")",                 \
                                #call, __FILE__, __LINE__);                                  \
  } while (0)

#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

#define CUBLAS_CHECK(call)                                                                   \
  do {                                                                                       \
    cublasStatus_t rwkv_cublas_rc_ = (call);                                                 \
    if (rwkv_cublas_rc_ != CUBLAS_STATUS_SUCCESS)                                            \
      ::rwkv::cuda::throw_error(cublasGetStatusString(rwkv_cublas_rc_), #call, __FILE__,    \
                                __LINE__);                                                   \
  } while (0)

#define NCCL_CHECK(call)                                                                     \
  do {                                                                                       \
    ncclResult_t rwkv_nccl_rc_ = (call);                                                     \
    if (rwkv_nccl_rc_ != ncclSuccess)                                                        \
      ::rwkv::cuda::throw_error(ncclGetErrorString(rwkv_nccl_rc_), #call, __FILE__,         \
                                __LINE__);                                                   \
  } while (0)
