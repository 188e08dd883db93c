#include "kernels/cuda/op_clock_cuda.h"

#include "kernels/cuda/cuda_check.h"

namespace rwkv::cuda {

CudaOpClock::CudaOpClock(cudaStream_t stream) : stream_(stream) {}

CudaOpClock::~CudaOpClock() {
  for (Mark& m : marks_) {
    cudaEventDestroy(m.begin);
    cudaEventDestroy(m.end);
  }
}

void CudaOpClock::start(const char* op) {
  if (used_ == marks_.size()) {
    Mark m{op, nullptr, nullptr};
    CUDA_CHECK(cudaEventCreate(&m.begin));
    CUDA_CHECK(cudaEventCreate(&m.end));
    marks_.push_back(m);
  }
  marks_[used_].op = op;
  CUDA_CHECK(cudaEventRecord(marks_[used_].begin, stream_));
}

void CudaOpClock::stop(const char*) {
  CUDA_CHECK(cudaEventRecord(marks_[used_].end, stream_));
  ++used_;
}

std::map<std::string, kernels::OpTotal> CudaOpClock::totals() {
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  for (size_t i = 0; i < used_; ++i) {
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, marks_[i].begin, marks_[i].end));
    kernels::OpTotal& t = sums_[marks_[i].op];
    ++t.calls;
    t.ms += ms;
  }
  used_ = 0;
  return sums_;
}

void CudaOpClock::reset() {
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  used_ = 0;
  sums_.clear();
}

}  // namespace rwkv::cuda
