#pragma once
// The index half of an MPI_MAXLOC-style all-reduce done with NCCL, which has no
// MAXLOC: after an all-reduce max of the values, every rank keeps its index where its
// own value is the maximum and INT32_MAX elsewhere; an all-reduce min of the indices
// then gives, per element, the smallest index among the ranks holding the maximum (the
// tie rule of MPI_MAXLOC). trainer/tp_comm_nccl.cpp uses it.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace rwkv::cuda {

// idx[i] = local[i] == max[i] ? idx[i] : INT32_MAX, for i < n.
void maxloc_keep_index(int32_t* idx, const float* local, const float* max, int64_t n,
                       cudaStream_t stream);

}  // namespace rwkv::cuda
