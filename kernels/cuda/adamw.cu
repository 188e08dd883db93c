#include <algorithm>
#include <cmath>
#include <sstream>

#include "common/error.h"
#include "kernels/cuda/adamw.h"
#include "kernels/cuda/cuda_check.h"

// The update is that of kernels/cpu/adamw.cpp, element by element:
//   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
//   p -= lr_i * (m / (1-b1^t) / (sqrt(v / (1-b2^t)) + eps) + wd_i * p)
// with the bias corrections and the per-segment lr_i, wd_i computed on the host in
// double, then rounded, as the CPU does. A model has a few hundred segments (one per
// tensor), many of them tiny: rather than a launch per segment, up to kBatch segments
// go into one launch, their table passed by value in the kernel arguments; each thread
// finds its element's segment by a binary search over the table's prefix sums.

namespace rwkv::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kBatch = 64;  // segments per launch: a ~1.6 KB table, within the 4 KB of arguments
constexpr int64_t kMaxBlocks = 8192;  // grid-stride beyond: enough blocks to fill any GPU

// Element e of a batch, 0 <= e < begin[count], is element e - begin[s] of segment s,
// where begin[s] <= e < begin[s + 1]; that is element offset[s] + e - begin[s] of the
// flat buffer.
struct SegmentBatch {
  int count;
  int64_t begin[kBatch + 1];
  int64_t offset[kBatch];
  float lr[kBatch], wd[kBatch];
};

struct Moments {
  float b1, b2, eps, inv_c1, inv_c2;  // inv_c = 1 / (1 - beta^t)
};

__global__ void adamw_kernel(float* __restrict__ p, const float* __restrict__ g,
                             float* __restrict__ m, float* __restrict__ v, const SegmentBatch batch,
                             const Moments k) {
  const int64_t total = batch.begin[batch.count];
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    int lo = 0, hi = batch.count;  // begin[lo] <= e < begin[hi]
    while (hi - lo > 1) {
      const int mid = (lo + hi) / 2;
      if (batch.begin[mid] <= e)
        lo = mid;
      else
        hi = mid;
    }
    const int64_t i = batch.offset[lo] + (e - batch.begin[lo]);
    const float gi = g[i];
    const float mi = k.b1 * m[i] + (1.f - k.b1) * gi;
    const float vi = k.b2 * v[i] + (1.f - k.b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float update = mi * k.inv_c1 / (sqrtf(vi * k.inv_c2) + k.eps);
    p[i] -= batch.lr[lo] * (update + batch.wd[lo] * p[i]);
  }
}

void launch(float* p, const float* g, float* m, float* v, const SegmentBatch& batch,
            const Moments& k, cudaStream_t stream) {
  const int64_t total = batch.begin[batch.count];
  const unsigned blocks = unsigned(std::min(kMaxBlocks, (total + kThreads - 1) / kThreads));
  adamw_kernel<<<blocks, kThreads, 0, stream>>>(p, g, m, v, batch, k);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void adamw_step(float* p, const float* g, float* m, float* v,
                std::span<const kernels::AdamWSegment> segments, const kernels::AdamWHyper& h,
                int64_t t, cudaStream_t stream) {
  if (t < 1) {
    std::ostringstream msg;
    msg << "rwkv::cuda::adamw_step: step t=" << t << " (it counts from 1)";
    throw Error(msg.str());
  }
  const double c1 = 1.0 - std::pow(h.beta1, double(t)), c2 = 1.0 - std::pow(h.beta2, double(t));
  const Moments k{float(h.beta1), float(h.beta2), float(h.eps), float(1.0 / c1), float(1.0 / c2)};
  for (size_t s = 0; s < segments.size(); ++s)  // all checked before any launch
    if (segments[s].offset < 0 || segments[s].size < 0) {
      std::ostringstream msg;
      msg << "rwkv::cuda::adamw_step: segment " << s << " has offset " << segments[s].offset
          << " and size " << segments[s].size << " (need both >= 0)";
      throw Error(msg.str());
    }
  SegmentBatch batch{};
  for (const kernels::AdamWSegment& seg : segments) {
    if (seg.size == 0) continue;
    const int j = batch.count++;
    batch.offset[j] = seg.offset;
    batch.lr[j] = float(h.lr * seg.lr_mult);
    batch.wd[j] = float(h.weight_decay * seg.wd_mult);
    batch.begin[j + 1] = batch.begin[j] + seg.size;
    if (batch.count == kBatch) {
      launch(p, g, m, v, batch, k, stream);
      batch.count = 0;
    }
  }
  if (batch.count > 0) launch(p, g, m, v, batch, k, stream);
}

}  // namespace rwkv::cuda
