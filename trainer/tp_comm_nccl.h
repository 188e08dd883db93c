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

// A: the backend's activation type (float or Bf16); the collectives here are on fp32.
template <typename A>
struct TpCommNccl final : model::TpComm<float> {
  // Collective over `group`; `be` (its stream and memory) must outlive this.
  TpCommNccl(MPI_Comm group, kernels::CudaBackend<A>& be);
  ~TpCommNccl() override;
  TpCommNccl(const TpCommNccl&) = delete;
  TpCommNccl& operator=(const TpCommNccl&) = delete;

  model::TpRank where() const override { return {nccl.rank, nccl.size}; }
  void all_reduce_sum(float* buf, int64_t n) override;
  void all_reduce_maxloc(float* val, int32_t* idx, int64_t n) override;

  NcclComm nccl;
  kernels::CudaBackend<A>& be;

 private:
  float* local_ = nullptr;  // [local_n_]: the rank's own values during a MAXLOC
  int64_t local_n_ = 0;
};

// The group's sum of bf16 activations (train.activations: bf16) on the communicator and
// stream of `group`: ncclBfloat16 on the wire, half the bytes of fp32 (NCCL adds and
// rounds to bf16 at each step of its ring), as Megatron-LM's TP all-reduces in the
// activations' dtype. `group` must outlive this.
struct TpBf16Nccl final : model::TpAllReduce<kernels::Bf16> {
  explicit TpBf16Nccl(TpCommNccl<kernels::Bf16>& group) : group_(group) {}
  model::TpRank where() const override { return group_.where(); }
  void all_reduce_sum(kernels::Bf16* buf, int64_t n) override;

 private:
  TpCommNccl<kernels::Bf16>& group_;
};

extern template struct TpCommNccl<float>;
extern template struct TpCommNccl<kernels::Bf16>;

}  // namespace rwkv::trainer
