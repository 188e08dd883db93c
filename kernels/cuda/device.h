#pragma once
// Which GPU, if any, this process can use.
#include <cstddef>
#include <string>

namespace rwkv::cuda {

struct DeviceInfo {
  int count = 0;          // devices visible; 0 when none can be used
  int error = 0;          // cudaGetDeviceCount's status when it failed (35: no driver, 100: no device)
  std::string reason;     // why no GPU can be used, for skip messages; "" when count > 0
  std::string name;       // device 0
  int cc_major = 0, cc_minor = 0;
  int sm_count = 0;
  size_t global_mem = 0;  // bytes
};

DeviceInfo query_devices();

// The shared memory one thread block may opt in to on the current device
// (cudaDevAttrMaxSharedMemoryPerBlockOptin): about 227 KB on an H100/H200, 163 KB on an
// A100, 99 KB on sm_86/sm_89 cards (RTX 30xx/40xx, A6000, L40S).
size_t shared_memory_optin();

// The current device for messages: "NVIDIA L40S (sm_89)".
std::string device_description();

// Why `need` bytes of shared memory per block do not fit `limit`:
// "<what> needs <need> bytes of shared memory per block; this GPU, <device>, allows <limit>".
// Inline (no CUDA in it), so that the trainer's config check, built without CUDA too,
// says the same (trainer/train_device.cpp, check_chunked_wkv_memory).
inline std::string shared_memory_error(const std::string& what, size_t need, size_t limit,
                                       const std::string& device) {
  return what + " needs " + std::to_string(need) + " bytes of shared memory per block; this GPU, " +
         device + ", allows " + std::to_string(limit);
}

// Throws rwkv::Error (shared_memory_error) unless `need` fits shared_memory_optin(): for
// the launchers of kernels that raise their limit above 48 KB, where the CUDA error of
// cudaFuncSetAttribute on a smaller card would say only "invalid argument".
void require_shared_memory(const std::string& what, size_t need);

// Versions of the CUDA runtime, driver, cuBLAS and NCCL, for logs and results files.
std::string library_versions();

}  // namespace rwkv::cuda
