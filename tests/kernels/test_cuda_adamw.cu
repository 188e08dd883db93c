// CUDA AdamW (label gpu) against the CPU kernel (kernels/cpu/adamw.h) on random
// parameters, gradients and moments: p, m and v after steps t = 1 and t = 7 of a flat
// buffer cut into 150 segments (more than one launch's batch of 64) of random sizes
// (some empty) and multipliers, with gaps between them that must stay untouched
// (bitwise). Measure over the segments' elements: ||gpu - cpu||_2 / ||cpu||_2 <= 1e-5 in
// fp32, every element finite. Argument errors need no GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/adamw.h"
#include "kernels/cuda/adamw.h"
#include "tests/kernels/cuda_test_util.h"

namespace {

using Vec = std::vector<float>;
using rwkv::kernels::AdamWHyper;
using rwkv::kernels::AdamWSegment;

// Relative L2 error of got against ref over the elements where in_segment is true; the
// others must be unchanged from before.
::testing::AssertionResult close(const std::string& what, const Vec& got, const Vec& ref,
                                 const Vec& before, const std::vector<bool>& in_segment) {
  double num = 0, den = 0, max_abs = 0;
  size_t worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!in_segment[i]) {
      if (got[i] != before[i])
        return ::testing::AssertionFailure()
               << what << ": element " << i << " outside every segment changed to " << got[i];
      continue;
    }
    const double d = double(got[i]) - double(ref[i]);
    if (!std::isfinite(d))
      return ::testing::AssertionFailure() << what << ": element " << i << " is " << got[i];
    num += d * d;
    den += double(ref[i]) * double(ref[i]);
    if (std::abs(d) > max_abs) max_abs = std::abs(d), worst = i;
  }
  const double rel = std::sqrt(num / den);
  if (rel <= 1e-5) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << what << ": relative L2 error " << rel << " (tol 1e-5), max abs error " << max_abs
         << " at " << worst << " (gpu " << got[worst] << ", cpu " << ref[worst] << ")";
}

TEST(CudaAdamW, MatchesCpuOverManySegments) {
  SKIP_WITHOUT_GPU();
  std::mt19937 rng(11);
  std::uniform_int_distribution<int64_t> size(0, 40), gap(0, 3);
  std::uniform_int_distribution<int> mult(0, 3);
  std::vector<AdamWSegment> segments;
  int64_t end = 0;
  for (int s = 0; s < 150; ++s) {
    AdamWSegment seg;
    seg.offset = end + gap(rng);
    seg.size = s % 10 == 3 ? 0 : size(rng);
    seg.lr_mult = 1.0 + mult(rng);  // RWKV-LM's lr_1x / 2x / 3x groups, and one more
    seg.wd_mult = mult(rng) == 0 ? 1.0 : 0.0;
    segments.push_back(seg);
    end = seg.offset + seg.size;
  }
  const size_t total = size_t(end + 5);
  std::vector<bool> in_segment(total, false);
  for (const AdamWSegment& s : segments)
    for (int64_t i = s.offset; i < s.offset + s.size; ++i) in_segment[size_t(i)] = true;

  AdamWHyper h;
  h.lr = 3e-3;
  h.beta1 = 0.9;
  h.beta2 = 0.99;
  h.eps = 1e-8;
  h.weight_decay = 0.1;
  for (const int64_t t : {int64_t(1), int64_t(7)}) {
    const Vec p0 = uniform(total, -1, 1, rng), g = uniform(total, -0.1, 0.1, rng);
    const Vec m0 = uniform(total, -0.05, 0.05, rng), v0 = uniform(total, 1e-6, 1e-3, rng);
    Vec p = p0, m = m0, v = v0;
    rwkv::kernels::adamw_step(p.data(), g.data(), m.data(), v.data(),
                              std::span<const AdamWSegment>(segments), h, t);

    DevBuf gp(p0), gg(g), gm(m0), gv(v0);
    rwkv::cuda::adamw_step(gp.p, gg.p, gm.p, gv.p, std::span<const AdamWSegment>(segments), h, t,
                           nullptr);
    const std::string at = "t=" + std::to_string(t);
    EXPECT_TRUE(close(at + " p", gp.get(), p, p0, in_segment));
    EXPECT_TRUE(close(at + " m", gm.get(), m, m0, in_segment));
    EXPECT_TRUE(close(at + " v", gv.get(), v, v0, in_segment));
  }
}

TEST(CudaAdamW, BadArgumentsThrow) {
  const AdamWHyper h;
  const std::vector<AdamWSegment> ok{{0, 10, 1.0, 0.0}};
  EXPECT_THROW(rwkv::cuda::adamw_step(nullptr, nullptr, nullptr, nullptr,
                                      std::span<const AdamWSegment>(ok), h, 0, nullptr),
               rwkv::Error);
  const std::vector<AdamWSegment> bad{{0, 10, 1.0, 0.0}, {10, -4, 1.0, 0.0}};
  try {
    rwkv::cuda::adamw_step(nullptr, nullptr, nullptr, nullptr, std::span<const AdamWSegment>(bad),
                           h, 1, nullptr);
    FAIL() << "no error";
  } catch (const rwkv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("segment 1"), std::string::npos) << e.what();
  }
}

}  // namespace
