#pragma once
// The TP group's collectives (model/tensor_parallel.h) over MPI, on host memory (the
// CPU backend). Counts the payload of every call, for the communication report
// (bench/bench_tp_comm.cpp, docs/performance.md).
#include <mpi.h>

#include <cstdint>

#include "model/tensor_parallel.h"

namespace rwkv::trainer {

template <typename F>
struct TpCommMpi final : model::TpComm<F> {
  explicit TpCommMpi(MPI_Comm group);  // the caller keeps `group` alive
  model::TpRank where() const override { return rank_; }
  void all_reduce_sum(F* buf, int64_t n) override;
  void all_reduce_maxloc(F* val, int32_t* idx, int64_t n) override;

  // Since construction: collectives made and the bytes of their payloads (a ring
  // all-reduce of P bytes sends 2 (tp - 1) / tp * P bytes from each rank).
  int64_t calls = 0;
  int64_t payload_bytes = 0;

 private:
  MPI_Comm comm_;
  model::TpRank rank_;
};

extern template struct TpCommMpi<float>;
extern template struct TpCommMpi<double>;

}  // namespace rwkv::trainer
