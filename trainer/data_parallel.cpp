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

void allreduce_gradients(float* grads, const std::vector<GradBucket>& buckets, double scale,
                         MPI_Comm comm) {
  int size = 1;
  MPI_CHECK(MPI_Comm_size(comm, &size));
  if (size > 1) {
    std::vector<MPI_Request> reqs(buckets.size(), MPI_REQUEST_NULL);
    for (size_t i = 0; i < buckets.size(); ++i)
      MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, grads + buckets[i].offset,
                               static_cast<int>(buckets[i].size), MPI_FLOAT, MPI_SUM, comm,
                               &reqs[i]));
    MPI_CHECK(MPI_Waitall(static_cast<int>(reqs.size()), reqs.data(), MPI_STATUSES_IGNORE));
  }
  if (scale == 1.0) return;
  const float s = static_cast<float>(scale);
  for (const GradBucket& b : buckets)
    for (int64_t i = b.offset; i < b.offset + b.size; ++i) grads[i] *= s;
}

}  // namespace rwkv::trainer
