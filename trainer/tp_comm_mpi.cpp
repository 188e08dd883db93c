#include "trainer/tp_comm_mpi.h"

#include <algorithm>
#include <climits>
#include <type_traits>
#include <vector>

#include "common/mpi_util.h"

namespace rwkv::trainer {

namespace {

template <typename F>
MPI_Datatype mpi_type() {
  return std::is_same_v<F, float> ? MPI_FLOAT : MPI_DOUBLE;
}

// The pair types MPI_MAXLOC works on (MPI standard: MPI_FLOAT_INT, MPI_DOUBLE_INT).
template <typename F>
struct ValIdx {
  F val;
  int idx;
};

template <typename F>
MPI_Datatype mpi_pair_type() {
  return std::is_same_v<F, float> ? MPI_FLOAT_INT : MPI_DOUBLE_INT;
}

// MPI counts are int: long buffers go in pieces.
constexpr int64_t kMaxCount = INT_MAX / 2;

// The MPI_User_function of TpBf16Mpi: inout[i] <- round(in[i] + inout[i]).
void bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const kernels::Bf16*>(in);
  auto* b = static_cast<kernels::Bf16*>(inout);
  for (int i = 0; i < *len; ++i)
    b[i] = cuda::from_float<kernels::Bf16>(cuda::to_float(a[i]) + cuda::to_float(b[i]));
}

}  // namespace

TpBf16Mpi::TpBf16Mpi(MPI_Comm group) : comm_(group), rank_{comm_rank(group), comm_size(group)} {
  static_assert(sizeof(kernels::Bf16) == sizeof(uint16_t));
  MPI_CHECK(MPI_Op_create(&bf16_sum, 1, &sum_));
}

TpBf16Mpi::~TpBf16Mpi() {
  if (sum_ != MPI_OP_NULL) MPI_Op_free(&sum_);
}

void TpBf16Mpi::all_reduce_sum(kernels::Bf16* buf, int64_t n) {
  if (rank_.size == 1) return;
  for (int64_t at = 0; at < n; at += kMaxCount) {
    const int count = static_cast<int>(std::min(kMaxCount, n - at));
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf + at, count, MPI_UINT16_T, sum_, comm_));
  }
}

template <typename F>
TpCommMpi<F>::TpCommMpi(MPI_Comm group) : comm_(group), rank_{comm_rank(group), comm_size(group)} {}

template <typename F>
void TpCommMpi<F>::all_reduce_sum(F* buf, int64_t n) {
  if (rank_.size == 1) return;
  for (int64_t at = 0; at < n; at += kMaxCount) {
    const int count = static_cast<int>(std::min(kMaxCount, n - at));
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf + at, count, mpi_type<F>(), MPI_SUM, comm_));
  }
}

template <typename F>
void TpCommMpi<F>::all_reduce_maxloc(F* val, int32_t* idx, int64_t n) {
  if (rank_.size == 1) return;
  std::vector<ValIdx<F>> pairs(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) pairs[static_cast<size_t>(i)] = {val[i], idx[i]};
  for (int64_t at = 0; at < n; at += kMaxCount) {
    const int count = static_cast<int>(std::min(kMaxCount, n - at));
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, pairs.data() + at, count, mpi_pair_type<F>(), MPI_MAXLOC,
                            comm_));
  }
  for (int64_t i = 0; i < n; ++i) {
    val[i] = pairs[static_cast<size_t>(i)].val;
    idx[i] = pairs[static_cast<size_t>(i)].idx;
  }
}

template struct TpCommMpi<float>;
template struct TpCommMpi<double>;

}  // namespace rwkv::trainer
