#pragma once
// The TP group's collectives (model/tensor_parallel.h) over MPI, on host memory (the
// CPU backend). bench/bench_tp.cpp measures their payload (docs/performance.md).
#include <mpi.h>

#include <cstdint>

#include "kernels/backend.h"
#include "model/tensor_parallel.h"

namespace rwkv::trainer {

template <typename F>
struct TpCommMpi final : model::TpComm<F> {
  explicit TpCommMpi(MPI_Comm group);  // the caller keeps `group` alive
  model::TpRank where() const override { return rank_; }
  void all_reduce_sum(F* buf, int64_t n) override;
  void all_reduce_maxloc(F* val, int32_t* idx, int64_t n) override;

 private:
  MPI_Comm comm_;
  model::TpRank rank_;
};

// The group's sum of bf16 activations (train.activations: bf16). MPI has no bf16 type:
// the values travel as MPI_UINT16_T, half the bytes of fp32, and a user-defined sum adds
// each pair in fp32 and rounds once, as NCCL's bf16 sum does at each step of its ring.
struct TpBf16Mpi final : model::TpAllReduce<kernels::Bf16> {
  explicit TpBf16Mpi(MPI_Comm group);  // the caller keeps `group` alive
  ~TpBf16Mpi() override;
  TpBf16Mpi(const TpBf16Mpi&) = delete;
  TpBf16Mpi& operator=(const TpBf16Mpi&) = delete;
  model::TpRank where() const override { return rank_; }
  void all_reduce_sum(kernels::Bf16* buf, int64_t n) override;

 private:
  MPI_Comm comm_;
  model::TpRank rank_;
  MPI_Op sum_ = MPI_OP_NULL;
};

extern template struct TpCommMpi<float>;
extern template struct TpCommMpi<double>;

}  // namespace rwkv::trainer
