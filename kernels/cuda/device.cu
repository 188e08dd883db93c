#include "common/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"

namespace rwkv::cuda {

DeviceInfo query_devices() {
  DeviceInfo info;
  const cudaError_t rc = cudaGetDeviceCount(&info.count);
  if (rc != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error so later calls start clean
    info.count = 0;
    info.error = static_cast<int>(rc);
    info.reason = std::string("cudaGetDeviceCount returned ") + std::to_string(info.error) + " " +
                  cudaGetErrorName(rc) + ": " + cudaGetErrorString(rc);
    return info;
  }
  if (info.count == 0) {
    info.reason = "cudaGetDeviceCount found no device";
    return info;
  }
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  info.name = prop.name;
  info.cc_major = prop.major;
  info.cc_minor = prop.minor;
  info.sm_count = prop.multiProcessorCount;
  info.global_mem = prop.totalGlobalMem;
  return info;
}

size_t shared_memory_optin() {
  int dev = 0, optin = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  return static_cast<size_t>(optin);
}

std::string device_description() {
  int dev = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major) +
         std::to_string(prop.minor) + ")";
}

void require_shared_memory(const std::string& what, size_t need) {
  const size_t limit = shared_memory_optin();
  if (need > limit) throw Error(shared_memory_error(what, need, limit, device_description()));
}

std::string library_versions() {
  int runtime = 0, driver = 0, nccl = 0, major = 0, minor = 0, patch = 0;
  CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  CUDA_CHECK(cudaDriverGetVersion(&driver));
  NCCL_CHECK(ncclGetVersion(&nccl));
  CUBLAS_CHECK(cublasGetProperty(MAJOR_VERSION, &major));
  CUBLAS_CHECK(cublasGetProperty(MINOR_VERSION, &minor));
  CUBLAS_CHECK(cublasGetProperty(PATCH_LEVEL, &patch));
  return "cuda runtime " + std::to_string(runtime) + ", driver " + std::to_string(driver) +
         ", cublas " + std::to_string(major) + "." + std::to_string(minor) + "." +
         std::to_string(patch) + ", nccl " + std::to_string(nccl);
}

}  // namespace rwkv::cuda
