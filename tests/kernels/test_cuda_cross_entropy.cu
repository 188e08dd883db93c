// CUDA vocab-parallel cross-entropy (label gpu) against the CPU kernels
// (kernels/cpu/cross_entropy.h) on random logits, for the whole vocabulary and for a
// slab [v0, v0 + Vl) with targets and argmaxes inside and outside it. Each pass is fed
// the CPU's inputs so that it is checked on its own: ce_local_max exactly (max and the
// first argmax, with ties planted in one thread's stride and across threads);
// ce_local_sums, ce_loss and ce_backward (L2Wrap term included) by
// ||gpu - cpu||_2 / ||cpu||_2 <= 1e-5 in fp32, every element finite, outputs poisoned with
// NaN first so an unwritten element fails; the target logit exactly; two runs bitwise
// equal, and ce_backward in place (dlogits = logits) too. Argument errors need no GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cuda/cross_entropy.h"
#include "tests/kernels/cuda_test_util.h"

namespace {

using Vec = std::vector<float>;
using Ids = std::vector<int32_t>;
namespace cpu = rwkv::kernels;

using rwkv::cuda::test::close;

struct Case {
  int64_t n, Vl, v0, V;  // rows; the slab [v0, v0 + Vl) of a vocabulary of V
  unsigned seed;
};

std::string describe(const Case& c) {
  return "n=" + std::to_string(c.n) + " slab [" + std::to_string(c.v0) + ", " +
         std::to_string(c.v0 + c.Vl) + ") of V=" + std::to_string(c.V);
}

const std::vector<Case> kCases = {
    {13, 1000, 0, 1000, 1},  // whole vocabulary, not a multiple of the 256 threads
    {9, 300, 700, 1000, 2},  // the last slab of a tensor-parallel vocabulary
    {6, 7, 3, 20, 3},        // fewer columns than threads
    {4, 1, 5, 8, 4},         // one column
};

struct Inputs {
  Vec logits;     // [n, Vl]
  Ids targets;    // [n], over the whole vocabulary
  Ids argmax;     // [n], over the whole vocabulary (as after the group's reduction)
  Vec max_shift;  // [n] >= 0: the group maximum exceeds the local one (another rank's)
};

// Logits in [-4, 4] with ties for the maximum: row 0 at columns 1 and 1 + 256 (one
// thread's stride), row 1 at columns 2 and 3 (two threads), wherever they fit.
Inputs make_inputs(const Case& c) {
  std::mt19937 rng(c.seed);
  Inputs in;
  in.logits = uniform(size_t(c.n * c.Vl), -4, 4, rng);
  auto plant = [&](int64_t row, int64_t a, int64_t b) {
    if (row < c.n && b < c.Vl) in.logits[row * c.Vl + a] = in.logits[row * c.Vl + b] = 5.f;
  };
  plant(0, 1, 1 + 256);
  plant(1, 2, 3);
  std::uniform_int_distribution<int32_t> id(0, int32_t(c.V - 1));
  for (int64_t i = 0; i < c.n; ++i) {
    in.targets.push_back(id(rng));
    in.argmax.push_back(id(rng));
  }
  in.targets[0] = int32_t(c.v0);  // one target at the slab's first column
  in.argmax[0] = int32_t(c.v0 + c.Vl - 1);
  in.max_shift = uniform(size_t(c.n), 0, 1, rng);
  return in;
}

TEST(CudaCrossEntropy, LocalMaxIsExact) {
  SKIP_WITHOUT_GPU();
  for (const Case& c : kCases) {
    const Inputs in = make_inputs(c);
    Vec max(size_t(c.n));
    Ids argmax(size_t(c.n));
    cpu::ce_local_max(max.data(), argmax.data(), in.logits.data(), c.n, c.Vl, c.v0);

    const DevBuf logits(in.logits);
    DevBuf gmax(size_t(c.n));
    gmax.poison();
    DevIds garg(Ids(size_t(c.n), -1));
    rwkv::cuda::ce_local_max(gmax.p, garg.p, logits.p, c.n, c.Vl, c.v0, nullptr);
    EXPECT_EQ(gmax.get(), max) << describe(c);
    EXPECT_EQ(garg.get(), argmax) << describe(c);
  }
}

TEST(CudaCrossEntropy, LocalSumsAndLossMatchCpu) {
  SKIP_WITHOUT_GPU();
  for (const Case& c : kCases) {
    const Inputs in = make_inputs(c);
    Vec max(size_t(c.n)), sumexp(size_t(c.n)), target_logit(size_t(c.n)), losses(size_t(c.n));
    Ids argmax(size_t(c.n));
    cpu::ce_local_max(max.data(), argmax.data(), in.logits.data(), c.n, c.Vl, c.v0);
    for (int64_t i = 0; i < c.n; ++i) max[i] += in.max_shift[i];
    cpu::ce_local_sums(sumexp.data(), target_logit.data(), in.logits.data(), in.targets.data(),
                       max.data(), c.n, c.Vl, c.v0);
    cpu::ce_loss(losses.data(), max.data(), sumexp.data(), target_logit.data(), c.n);

    const DevBuf logits(in.logits), gmax(max), csum(sumexp), ctl(target_logit);
    const DevIds targets(in.targets);
    std::vector<Vec> runs;
    for (int run = 0; run < 2; ++run) {
      DevBuf gsum(size_t(c.n)), gtl(size_t(c.n)), gloss(size_t(c.n));
      for (DevBuf* o : {&gsum, &gtl, &gloss}) o->poison();
      rwkv::cuda::ce_local_sums(gsum.p, gtl.p, logits.p, targets.p, gmax.p, c.n, c.Vl, c.v0,
                                nullptr);
      rwkv::cuda::ce_loss(gloss.p, gmax.p, csum.p, ctl.p, c.n, nullptr);
      EXPECT_TRUE(close(describe(c) + " sumexp", gsum.get(), sumexp));
      EXPECT_EQ(gtl.get(), target_logit) << describe(c);
      EXPECT_TRUE(close(describe(c) + " losses", gloss.get(), losses));
      runs.push_back(gsum.get());
    }
    EXPECT_EQ(runs[0], runs[1]) << describe(c);
  }
}

TEST(CudaCrossEntropy, BackwardMatchesCpu) {
  SKIP_WITHOUT_GPU();
  const float scale = 1.f / 37, l2wrap = 0.05f;  // a large L2Wrap factor, to weigh in the error
  for (const Case& c : kCases) {
    const Inputs in = make_inputs(c);
    Vec max(size_t(c.n)), sumexp(size_t(c.n)), target_logit(size_t(c.n));
    Ids local_arg(size_t(c.n));
    cpu::ce_local_max(max.data(), local_arg.data(), in.logits.data(), c.n, c.Vl, c.v0);
    for (int64_t i = 0; i < c.n; ++i) max[i] += in.max_shift[i];
    cpu::ce_local_sums(sumexp.data(), target_logit.data(), in.logits.data(), in.targets.data(),
                       max.data(), c.n, c.Vl, c.v0);
    Vec dlogits(in.logits.size());
    cpu::ce_backward(dlogits.data(), in.logits.data(), in.targets.data(), max.data(), sumexp.data(),
                     in.argmax.data(), c.n, c.Vl, c.v0, scale, l2wrap);

    const DevBuf logits(in.logits), gmax(max), gsum(sumexp);
    const DevIds targets(in.targets), argmax(in.argmax);
    std::vector<Vec> runs;
    for (int run = 0; run < 2; ++run) {
      DevBuf gd(dlogits.size());
      gd.poison();
      rwkv::cuda::ce_backward(gd.p, logits.p, targets.p, gmax.p, gsum.p, argmax.p, c.n, c.Vl, c.v0,
                              scale, l2wrap, nullptr);
      EXPECT_TRUE(close(describe(c) + " dlogits", gd.get(), dlogits));
      runs.push_back(gd.get());
    }
    EXPECT_EQ(runs[0], runs[1]) << describe(c);
    // In place over the logits (as the model does): the same bits.
    const DevBuf in_place(in.logits);
    rwkv::cuda::ce_backward(in_place.p, in_place.p, targets.p, gmax.p, gsum.p, argmax.p, c.n, c.Vl,
                            c.v0, scale, l2wrap, nullptr);
    EXPECT_EQ(in_place.get(), runs[0]) << describe(c) << " in place";
  }
}

TEST(CudaCrossEntropy, BadShapesThrow) {
  EXPECT_THROW(rwkv::cuda::ce_local_max<float>(nullptr, nullptr, nullptr, 3, 0, 0, nullptr),
               rwkv::Error);
  EXPECT_THROW(rwkv::cuda::ce_loss(nullptr, nullptr, nullptr, nullptr, -2, nullptr), rwkv::Error);
  try {
    rwkv::cuda::ce_backward<float>(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 3, 10, -1,
                                   1.f, 0.f, nullptr);
    FAIL() << "no error";
  } catch (const rwkv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("ce_backward"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("v0=-1"), std::string::npos) << e.what();
  }
}

}  // namespace
