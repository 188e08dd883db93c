// Softmax cross-entropy. The reference (cross_entropy_forward / _backward): loss against
// log-sum-exp, gradient by central differences of scale * sum(losses), the L2Wrap term
// adds factor * max at the argmax only. The vocab-parallel ops, run through CpuBackend
// with the TP group's reductions emulated here (max/argmax combined as MPI_MAXLOC, sums
// added): equal to the reference for one slab and for uneven splits into 2 and 3 slabs.
// Measure: ||x - ref||_2 / ||ref||_2 over the losses and over the whole dlogits.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/backend_cpu.h"
#include "kernels/cpu/cross_entropy.h"
#include "op_gradcheck.h"
#include "wkv_test_util.h"

namespace rwkv::kernels {
namespace {

using test::Vec;

TEST(CrossEntropy, LossAndGradient) {
  const int64_t n = 4, V = 7;
  const std::vector<int32_t> tgt{3, 0, 6, 3};
  Vec logits = test::random_vec(n * V, 1, -3, 3);
  Vec losses(n), dlogits;
  const double scale = 1.0 / n;
  auto loss = [&] {
    cross_entropy_forward(losses.data(), logits.data(), tgt.data(), n, V);
    double s = 0;
    for (double l : losses) s += l * scale;
    return s;
  };
  loss();
  double z = 0;
  for (int64_t j = 0; j < V; ++j) z += std::exp(logits[V + j]);
  EXPECT_NEAR(losses[1], std::log(z) - logits[V + 0], 1e-13);
  auto backward = [&] {
    cross_entropy_backward(dlogits.data(), logits.data(), tgt.data(), n, V, scale, 0.0);
  };
  test::check_gradients(loss, backward, {{"logits", &logits, &dlogits}}, false);
}

TEST(CrossEntropy, L2WrapTerm) {
  const int64_t n = 2, V = 5;
  const std::vector<int32_t> tgt{1, 4};
  const Vec logits{0.1, 2.5, -1.0, 0.3, 0.0, -0.5, -0.2, -3.0, -0.1, -0.4};
  Vec plain(n * V), wrapped(n * V);
  cross_entropy_backward(plain.data(), logits.data(), tgt.data(), n, V, 0.5, 0.0);
  const double factor = 1e-4 / n;  // RWKV-LM: 1e-4 / (B*T)
  cross_entropy_backward(wrapped.data(), logits.data(), tgt.data(), n, V, 0.5, factor);
  for (int64_t i = 0; i < n * V; ++i) {
    const double extra = (i == 1) ? factor * 2.5 : (i == V + 3 ? factor * -0.1 : 0.0);
    EXPECT_NEAR(wrapped[i] - plain[i], extra, 1e-17) << i;
  }
}

// The vocabulary [0, V) cut at bounds = {0, b1, ..., V}; rank r holds [bounds[r],
// bounds[r + 1]). Runs the four ops per slab on its columns of logits [n, V], with the
// reductions the model makes through TpComm in between; returns the losses and fills
// dlogits [n, V] with the slabs' gradients side by side (each also computed in place
// over its logits, which must give the same bits).
template <typename F>
std::vector<F> vocab_parallel_ce(CpuBackend<F>& be, const std::vector<F>& logits,
                                 const std::vector<int32_t>& tgt, int64_t n, int64_t V,
                                 const std::vector<int64_t>& bounds, F scale, F l2wrap,
                                 std::vector<F>& dlogits) {
  const size_t ranks = bounds.size() - 1;
  std::vector<std::vector<F>> slab(ranks);
  for (size_t r = 0; r < ranks; ++r) {
    const int64_t v0 = bounds[r], Vl = bounds[r + 1] - v0;
    slab[r].resize(static_cast<size_t>(n * Vl));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < Vl; ++j) slab[r][i * Vl + j] = logits[i * V + v0 + j];
  }
  const size_t un = static_cast<size_t>(n);
  // all_reduce_maxloc: the largest value, the smallest index among equal values.
  std::vector<F> max(un), mr(un);
  std::vector<int32_t> arg(un), ar(un);
  for (size_t r = 0; r < ranks; ++r) {
    const int64_t v0 = bounds[r], Vl = bounds[r + 1] - v0;
    be.ce_local_max(mr.data(), ar.data(), slab[r].data(), n, Vl, v0);
    for (size_t i = 0; i < un; ++i)
      if (r == 0 || mr[i] > max[i] || (mr[i] == max[i] && ar[i] < arg[i])) {
        max[i] = mr[i];
        arg[i] = ar[i];
      }
  }
  // all_reduce_sum of sumexp and target_logit.
  std::vector<F> sumexp(un, F(0)), zt(un, F(0)), sr(un), zr(un);
  for (size_t r = 0; r < ranks; ++r) {
    const int64_t v0 = bounds[r], Vl = bounds[r + 1] - v0;
    be.ce_local_sums(sr.data(), zr.data(), slab[r].data(), tgt.data(), max.data(), n, Vl, v0);
    for (size_t i = 0; i < un; ++i) {
      sumexp[i] += sr[i];
      zt[i] += zr[i];
    }
  }
  std::vector<F> losses(un);
  be.ce_loss(losses.data(), max.data(), sumexp.data(), zt.data(), n);
  dlogits.assign(static_cast<size_t>(n * V), F(0));
  for (size_t r = 0; r < ranks; ++r) {
    const int64_t v0 = bounds[r], Vl = bounds[r + 1] - v0;
    std::vector<F> d(slab[r].size(), F(7));  // overwritten
    be.ce_backward(d.data(), slab[r].data(), tgt.data(), max.data(), sumexp.data(), arg.data(), n,
                   Vl, v0, scale, l2wrap);
    // In place over the logits (as the model does): the same bits.
    std::vector<F> in_place = slab[r];
    be.ce_backward(in_place.data(), in_place.data(), tgt.data(), max.data(), sumexp.data(),
                   arg.data(), n, Vl, v0, scale, l2wrap);
    EXPECT_EQ(in_place, d) << "slab " << r << ": ce_backward in place";
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < Vl; ++j) dlogits[i * V + v0 + j] = d[i * Vl + j];
  }
  return losses;
}

const auto kAll = [](size_t) { return true; };

// fp32 through a 3-thread backend, enough rows for the ops to split them between threads.
TEST(VocabParallelCrossEntropy, OneSlabEqualsReference) {
  const int64_t n = 1100, V = 96;
  std::mt19937 rng(3);
  const std::vector<float> logits = test::uniform<float>(n * V, -4, 4, rng);
  std::vector<int32_t> tgt(n);
  std::uniform_int_distribution<int32_t> pick(0, V - 1);
  for (int32_t& t : tgt) t = pick(rng);
  const float scale = 1.0f / n, l2wrap = 1e-2f * scale;  // large enough to show a misplaced term

  CpuBackend<float> be(16, 3);
  std::vector<float> dlogits;
  const std::vector<float> losses =
      vocab_parallel_ce(be, logits, tgt, n, V, {0, V}, scale, l2wrap, dlogits);

  std::vector<float> ref_losses(n), ref_d(n * V);
  cross_entropy_forward(ref_losses.data(), logits.data(), tgt.data(), n, V);
  cross_entropy_backward(ref_d.data(), logits.data(), tgt.data(), n, V, scale, l2wrap);
  EXPECT_LT(test::rel_err(losses, ref_losses, kAll), 1e-6);
  EXPECT_LT(test::rel_err(dlogits, ref_d, kAll), 1e-6);
}

// Uneven splits into 2 and 3 slabs. Rows 0..5 have their maximum twice: in two slabs
// (rows 0-3) or twice in one slab (rows 4-5), so the first-on-ties rule decides where
// the L2Wrap term goes; the targets cover every slab's first and last column.
TEST(VocabParallelCrossEntropy, SplitSlabsEqualReference) {
  const int64_t n = 40, V = 23;
  std::mt19937 rng(4);
  std::vector<float> logits = test::uniform<float>(n * V, -4, 4, rng);
  const int64_t ties[6][2] = {{3, 15}, {9, 10}, {16, 17}, {0, 22}, {11, 14}, {19, 21}};
  for (int64_t i = 0; i < 6; ++i) {
    logits[i * V + ties[i][0]] = 5.0f;
    logits[i * V + ties[i][1]] = 5.0f;
  }
  std::vector<int32_t> tgt(n);
  std::uniform_int_distribution<int32_t> pick(0, V - 1);
  for (int32_t& t : tgt) t = pick(rng);
  const int32_t edges[] = {0, 8, 9, 10, 16, 17, 22, 3, 15};
  for (size_t k = 0; k < std::size(edges); ++k) tgt[6 + k] = edges[k];
  const float scale = 1.0f / n, l2wrap = 1e-2f * scale;

  std::vector<float> ref_losses(n), ref_d(n * V);
  cross_entropy_forward(ref_losses.data(), logits.data(), tgt.data(), n, V);
  cross_entropy_backward(ref_d.data(), logits.data(), tgt.data(), n, V, scale, l2wrap);

  CpuBackend<float> be(16, 2);
  for (const std::vector<int64_t>& bounds :
       {std::vector<int64_t>{0, 10, V}, std::vector<int64_t>{0, 9, 17, V}}) {
    std::vector<float> dlogits;
    const std::vector<float> losses =
        vocab_parallel_ce(be, logits, tgt, n, V, bounds, scale, l2wrap, dlogits);
    EXPECT_LT(test::rel_err(losses, ref_losses, kAll), 1e-6) << bounds.size() - 1 << " slabs";
    EXPECT_LT(test::rel_err(dlogits, ref_d, kAll), 1e-6) << bounds.size() - 1 << " slabs";
  }
}

// Central differences in double of scale * sum(losses) composed over 2 slabs (no L2Wrap).
TEST(VocabParallelCrossEntropy, GradientOfComposedLoss) {
  const int64_t n = 3, V = 9;
  Vec logits = test::random_vec(n * V, 5, -3, 3);
  const std::vector<int32_t> tgt{1, 7, 4};
  const std::vector<int64_t> bounds{0, 5, V};
  const double scale = 1.0 / n;
  CpuBackend<double> be(16, 1);
  Vec dlogits, scratch;
  auto loss = [&] {
    double s = 0;
    for (double l : vocab_parallel_ce(be, logits, tgt, n, V, bounds, scale, 0.0, scratch))
      s += l * scale;
    return s;
  };
  auto backward = [&] { vocab_parallel_ce(be, logits, tgt, n, V, bounds, scale, 0.0, dlogits); };
  test::check_gradients(loss, backward, {{"logits", &logits, &dlogits}}, false);
}

}  // namespace
}  // namespace rwkv::kernels
