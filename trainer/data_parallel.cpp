#include "trainer/data_parallel.h"

#include <climits>

#include "common/mpi_check.h"

namespace rwkv::trainer {

std::vector<GradBucket> make_grad_buckets(const model::ParamTable& table, int64_t bucket_elems) {
  std::vector<GradBucket> out;
  int64_t hi = table.total, lo = table.total;  // the open bucket is [lo, hi)
  for (auto it = table.params.rbegin(); it != table.params.rend(); ++it) {
    if (hi - it->offset > INT_MAX && lo < hi) {  // the parameter would overflow the count
      out.push_back({lo, hi - lo});
      hi = lo;
    }
    lo = it->offset;
    if (hi - lo >= bucket_elems) {
      out.push_back({lo, hi - lo});
      hi = lo;
    }
  }
  if (lo < hi) out.push_back({lo, hi - lo});
  return out;
}

GradReducer::GradReducer(float* grads_, const std::vector<GradBucket>& buckets_, MPI_Comm comm_)
    : grads(grads_), buckets(buckets_), comm(comm_) {
  MPI_CHECK(MPI_Comm_size(comm, &ranks));
  reqs.reserve(buckets.size());
}

void GradReducer::ready(int64_t from) {
  if (ranks == 1) return;
  for (; issued < buckets.size() && buckets[issued].offset >= from; ++issued) {
    reqs.push_back(MPI_REQUEST_NULL);
    MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, grads + buckets[issued].offset,
                             static_cast<int>(buckets[issued].size), MPI_FLOAT, MPI_SUM, comm,
                             &reqs.back()));
  }
  int done = 0;  // completed requests become MPI_REQUEST_NULL
  MPI_CHECK(MPI_Testall(static_cast<int>(reqs.size()), reqs.data(), &done, MPI_STATUSES_IGNORE));
}

void GradReducer::finish(double scale) {
  if (ranks > 1) {
    ready(0);
    MPI_CHECK(MPI_Waitall(static_cast<int>(reqs.size()), reqs.data(), MPI_STATUSES_IGNORE));
  }
  if (scale == 1.0) return;
  const float s = static_cast<float>(scale);
  for (const GradBucket& b : buckets)
    for (int64_t i = b.offset; i < b.offset + b.size; ++i) grads[i] *= s;
}

MpiGradSync::MpiGradSync(float* grads_, const std::vector<GradBucket>& buckets_, MPI_Comm comm_)
    : grads(grads_), buckets(buckets_), comm(comm_) {}

void MpiGradSync::start() { step.emplace(grads, buckets, comm); }

void MpiGradSync::ready(int64_t from) { step->ready(from); }

void MpiGradSync::finish(double scale) {
  step->finish(scale);
  step.reset();
}

void allreduce_gradients(float* grads, const std::vector<GradBucket>& buckets, double scale,
                         MPI_Comm comm) {
  GradReducer(grads, buckets, comm).finish(scale);
}

}  // namespace rwkv::trainer
