#pragma once
// Data parallelism over MPI: every rank holds the whole model, computes gradients
// on its slice of the global batch, and the gradients are averaged across ranks
// before the (identical) optimizer step on every rank.
//
// The flat gradient buffer is cut into buckets of about `bucket_elems` values,
// walking the parameters from the last (the head, whose gradient backward finishes
// first) to the first, and each bucket is reduced with a non-blocking
// MPI_Iallreduce as soon as it is issued; all are then awaited. Model::backward has
// no per-layer completion hook yet, so the buckets are issued after backward: the
// reductions overlap one another, not the backward pass.
#include <mpi.h>

#include <cstdint>
#include <vector>

#include "model/param_table.h"

namespace rwkv::trainer {

struct GradBucket {
  int64_t offset = 0, size = 0;  // a run of the flat buffer
};

// Buckets of whole parameters, last parameter first; each holds at least
// bucket_elems values (except the final one) and at most INT_MAX.
std::vector<GradBucket> make_grad_buckets(const model::ParamTable& table, int64_t bucket_elems);

// grads [table.total] (host memory) <- scale * (sum over the ranks of comm).
void allreduce_gradients(float* grads, const std::vector<GradBucket>& buckets, double scale,
                         MPI_Comm comm);

}  // namespace rwkv::trainer
