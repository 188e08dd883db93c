#pragma once
// An OpClock (kernels/profiled_backend.h) for the CUDA backend: a pair of CUDA events
// recorded on the backend's stream around each op, so each op's time is its kernels'
// time on the device, not the microseconds its launch takes on the host. totals() waits
// for the stream and reads the events; they are reused after reset().
#include <cuda_runtime_api.h>

#include <map>
#include <string>
#include <vector>

#include "kernels/profiled_backend.h"

namespace rwkv::cuda {

struct CudaOpClock final : kernels::OpClock {
  explicit CudaOpClock(cudaStream_t stream);
  ~CudaOpClock() override;
  CudaOpClock(const CudaOpClock&) = delete;
  CudaOpClock& operator=(const CudaOpClock&) = delete;

  void start(const char* op) override;
  void stop(const char* op) override;
  std::map<std::string, kernels::OpTotal> totals() override;
  void reset() override;

 private:
  struct Mark {
    const char* op;
    cudaEvent_t begin, end;
  };
  cudaStream_t stream_;
  std::vector<Mark> marks_;  // marks_[0, used_) hold this round's ops
  size_t used_ = 0;
  std::map<std::string, kernels::OpTotal> sums_;  // of the rounds already read
};

}  // namespace rwkv::cuda
