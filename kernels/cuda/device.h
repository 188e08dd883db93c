#pragma once
// Which GPU, if any, this process can use.
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

// Versions of the CUDA runtime, driver, cuBLAS and NCCL, for logs and results files.
std::string library_versions();

}  // namespace rwkv::cuda
