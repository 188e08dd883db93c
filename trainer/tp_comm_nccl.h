#pragma once
// The TP group's collectives (model/tensor_parallel.h) through NCCL on device memory,
// queued on the CUDA backend's stream, so they are ordered with the model's kernels
// without any host synchronisation. MAXLOC, which NCCL lacks, is an all-reduce max of
// the values and an all-reduce min of the masked indices (kernels/cuda/maxloc.h).
#include <mpi.h>

#include <cstdint>

#include "kernels/cuda/backend_cuda.h"
#include "model/tensor_parallel.h"
#include "trainer/nccl_comm.h"

namespace rwkv::trainer {

struct TpCommNccl final : model::TpComm<float> {
  // Collective over `group`; `be` (its stream and memory) must outlive this.
  TpCommNccl(MPI_Comm group, kernels::CudaBackend<float>& be);
  ~TpCommNccl() override;
  TpCommNccl(const TpCommNccl&) = delete;
  TpCommNccl& operator=(const TpCommNccl&) = delete;

  model::TpRank where() const override { return {nccl_.rank, nccl_.size}; }
  void all_reduce_sum(float* buf, int64_t n) override;
  void all_reduce_maxloc(float* val, int32_t* idx, int64_t n) override;

 private:
  NcclComm nccl_;
  kernels::CudaBackend<float>& be_;
  float* local_ = nullptr;  // [local_n_]: the rank's own values during a MAXLOC
  int64_t local_n_ = 0;
};

}  // namespace rwkv::trainer
