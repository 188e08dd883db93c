#pragma once
// Data parallelism over MPI: every rank holds the whole model, computes gradients
// on its slice of the global batch, and the gradients are averaged across ranks
// before the (identical) optimizer step on every rank.
//
// The flat gradient buffer is cut into buckets of about `bucket_elems` values,
// walking the parameters from the last (the head, whose gradient backward finishes
// first) to the first. During the last micro-batch's backward, Model::backward's
// completion callback (model/model.h) reports how far the gradients are final, and
// GradReducer issues a non-blocking MPI_Iallreduce for each bucket as soon as all of
// it is final, in that order, so the communication overlaps the rest of backward.
// Open MPI has no progress thread: each callback also tests the outstanding requests,
// which lets the reductions advance between blocks. Every rank issues the same
// buckets in the same order, so the results do not depend on the timing.
#include <mpi.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "model/param_table.h"

namespace rwkv::trainer {

struct GradBucket {
  int64_t offset = 0, size = 0;  // a run of the flat buffer
};

// Buckets of whole parameters, last parameter first; each holds at least
// bucket_elems values (except the final one) and at most INT_MAX.
std::vector<GradBucket> make_grad_buckets(const model::ParamTable& table, int64_t bucket_elems);

// One step's reduction: grads [table.total] (host memory) <- scale * (sum over the
// ranks of comm), bucket by bucket. ready(from) issues every bucket not yet issued
// that lies wholly at or after offset `from` (the buckets' order: decreasing
// offsets) and drives the outstanding ones; finish(scale) issues the rest, waits for
// all and scales. With one rank nothing is sent. The buckets must outlive it.
struct GradReducer {
  GradReducer(float* grads, const std::vector<GradBucket>& buckets, MPI_Comm comm);
  void ready(int64_t from);
  void finish(double scale);

  float* grads;
  const std::vector<GradBucket>& buckets;
  MPI_Comm comm;
  int ranks = 1;
  size_t issued = 0;  // buckets[0, issued) have been issued
  std::vector<MPI_Request> reqs;
};

// A step's data-parallel gradient reduction, whatever memory the gradients live in
// (train_device.h picks the implementation: MPI on host memory, NCCL on a GPU's).
// start() begins a step; ready(from) and finish(scale) are GradReducer's.
struct GradSync {
  virtual ~GradSync() = default;
  virtual void start() = 0;
  virtual void ready(int64_t from) = 0;
  virtual void finish(double scale) = 0;
};

// GradSync over MPI: one GradReducer per step.
struct MpiGradSync final : GradSync {
  MpiGradSync(float* grads, const std::vector<GradBucket>& buckets, MPI_Comm comm);
  void start() override;
  void ready(int64_t from) override;
  void finish(double scale) override;

  float* grads;
  const std::vector<GradBucket>& buckets;
  MPI_Comm comm;
  std::optional<GradReducer> step;
};

// GradReducer with every bucket issued at once, after backward.
void allreduce_gradients(float* grads, const std::vector<GradBucket>& buckets, double scale,
                         MPI_Comm comm);

}  // namespace rwkv::trainer
