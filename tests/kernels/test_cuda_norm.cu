// CUDA norms (label gpu) against the CPU kernels (kernels/cpu/norm.h) on random inputs:
// LayerNorm, RMSNorm, GroupNorm (with and without its output gate) and per-head L2
// normalisation, forward (outputs and the saved statistics) and backward (dx, the gate's
// and the parameter gradients, pre-filled with random values to check that they
// accumulate, and with null gradients skipped); bitwise
// determinism; argument errors (these need no GPU). Shapes are not multiples of the
// block sizes (segments of 32..256 threads, 8-column parameter-gradient blocks).
// Measure: ||gpu - cpu||_2 / ||cpu||_2 <= 1e-5 in fp32, every element finite; outputs
// are poisoned with NaN before each run, so an element left unwritten fails.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/norm.h"
#include "kernels/cuda/norm.h"
#include "tests/kernels/cuda_test_util.h"

namespace {

using Vec = std::vector<float>;
namespace cpu = rwkv::kernels;

using rwkv::cuda::test::close;

struct Shape {
  int64_t n, H, N;  // rows, heads, head size (LayerNorm and RMSNorm: H = 1, N = C)
  unsigned seed;
};

std::string name(const char* op, const Shape& s) {
  return std::string(op) + " n=" + std::to_string(s.n) + " H=" + std::to_string(s.H) +
         " N=" + std::to_string(s.N);
}

// Shapes for every segment width: one 32-thread segment of 3 elements, 8 per block;
// 64-wide heads (4 per block); 300-wide rows (strided over 256 threads); and more rows
// than the 64 threads per column of the parameter gradients.
const std::vector<Shape> kRowShapes = {
    {5, 1, 3, 1}, {37, 1, 100, 2}, {9, 1, 300, 3}, {150, 1, 70, 8}};
const std::vector<Shape> kHeadShapes = {
    {37, 3, 20, 4}, {11, 5, 64, 5}, {3, 2, 130, 6}, {130, 2, 24, 9}};

enum class Affine { layer, group, gated };  // LayerNorm, GroupNorm, GroupNorm with a gate

// LayerNorm (H = 1) through layernorm_*, GroupNorm through groupnorm_* (gated: with the
// output gate g, whose gradient dg is pre-filled like the others). Gradients: all, then
// only dx, then only dw and db, then (gated) only dg.
void check_affine(const Shape& s, Affine kind) {
  std::mt19937 rng(s.seed);
  const size_t sz = size_t(s.n * s.H * s.N), C = size_t(s.H * s.N), S = size_t(s.n * s.H);
  const Vec x = uniform(sz, -2, 3, rng), w = uniform(C, -1.5, 1.5, rng), b = uniform(C, -1, 1, rng);
  const Vec dout = uniform(sz, -1, 1, rng), dx0 = uniform(sz, -1, 1, rng);
  const Vec dw0 = uniform(C, -1, 1, rng), db0 = uniform(C, -1, 1, rng);
  const Vec g = uniform(sz, -2, 2, rng), dg0 = uniform(sz, -1, 1, rng);
  const bool group = kind != Affine::layer, gated = kind == Affine::gated;
  const float eps = group ? 64e-5f : 1e-5f;

  Vec out(sz), mean(S), rstd(S), dx = dx0, dw = dw0, db = db0, dg = dg0;
  if (group) {
    const float* cg = gated ? g.data() : nullptr;
    cpu::groupnorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), cg,
                           s.n, s.H, s.N, eps);
    cpu::groupnorm_backward(dx.data(), dw.data(), db.data(), gated ? dg.data() : nullptr,
                            dout.data(), x.data(), w.data(), b.data(), cg, mean.data(), rstd.data(),
                            s.n, s.H, s.N);
  } else {
    cpu::layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), s.n,
                           s.N, eps);
    cpu::layernorm_backward(dx.data(), dw.data(), db.data(), dout.data(), x.data(), w.data(),
                            mean.data(), rstd.data(), s.n, s.N);
  }

  const std::string nm = name(gated ? "gated groupnorm" : group ? "groupnorm" : "layernorm", s);
  const DevBuf gx(x), gw(w), gb(b), gdout(dout), gg(g);
  const float* pg = gated ? gg.p : nullptr;
  DevBuf gout(sz), gmean(S), grstd(S);
  for (DevBuf* o : {&gout, &gmean, &grstd}) o->poison();
  if (group)
    rwkv::cuda::groupnorm_forward(gout.p, gmean.p, grstd.p, gx.p, gw.p, gb.p, pg, s.n, s.H, s.N,
                                  eps, nullptr);
  else
    rwkv::cuda::layernorm_forward(gout.p, gmean.p, grstd.p, gx.p, gw.p, gb.p, s.n, s.N, eps,
                                  nullptr);
  EXPECT_TRUE(close(nm + " out", gout.get(), out));
  EXPECT_TRUE(close(nm + " mean", gmean.get(), mean));
  EXPECT_TRUE(close(nm + " rstd", grstd.get(), rstd));

  // The backward reads the CPU statistics, so that it is checked on its own.
  const DevBuf cmean(mean), crstd(rstd);
  for (int wanted = 0; wanted < (gated ? 4 : 3); ++wanted) {
    // 0: all, 1: dx only, 2: dw, db only, 3: dg only
    DevBuf gdx(dx0), gdw(dw0), gdb(db0), gdg(dg0);
    float* pdx = wanted == 0 || wanted == 1 ? gdx.p : nullptr;
    float* pdw = wanted == 0 || wanted == 2 ? gdw.p : nullptr;
    float* pdb = wanted == 0 || wanted == 2 ? gdb.p : nullptr;
    float* pdg = wanted == 0 || wanted == 3 ? gdg.p : nullptr;
    if (group)
      rwkv::cuda::groupnorm_backward(pdx, pdw, pdb, pdg, gdout.p, gx.p, gw.p, gb.p, pg, cmean.p,
                                     crstd.p, s.n, s.H, s.N, nullptr);
    else
      rwkv::cuda::layernorm_backward(pdx, pdw, pdb, gdout.p, gx.p, gw.p, cmean.p, crstd.p, s.n, s.N,
                                     nullptr);
    const std::string tag = nm + " (wanted " + std::to_string(wanted) + ")";
    EXPECT_TRUE(close(tag + " dx", gdx.get(), pdx ? dx : dx0));
    EXPECT_TRUE(close(tag + " dw", gdw.get(), pdw ? dw : dw0));
    EXPECT_TRUE(close(tag + " db", gdb.get(), pdb ? db : db0));
    EXPECT_TRUE(close(tag + " dg", gdg.get(), pdg && gated ? dg : dg0));
  }
}

TEST(CudaNorm, LayerNormMatchesCpu) {
  SKIP_WITHOUT_GPU();
  for (const Shape& s : kRowShapes) check_affine(s, Affine::layer);
}

TEST(CudaNorm, GroupNormMatchesCpu) {
  SKIP_WITHOUT_GPU();
  for (const Shape& s : kHeadShapes) check_affine(s, Affine::group);
}

TEST(CudaNorm, GatedGroupNormMatchesCpu) {
  SKIP_WITHOUT_GPU();
  for (const Shape& s : kHeadShapes) check_affine(s, Affine::gated);
}

TEST(CudaNorm, RmsNormMatchesCpu) {
  SKIP_WITHOUT_GPU();
  for (const Shape& s : kRowShapes) {
    std::mt19937 rng(s.seed);
    const int64_t n = s.n, C = s.N;
    const size_t sz = size_t(n * C);
    const Vec x = uniform(sz, -2, 3, rng), w = uniform(C, -1.5, 1.5, rng);
    const Vec dout = uniform(sz, -1, 1, rng), dx0 = uniform(sz, -1, 1, rng);
    const Vec dw0 = uniform(C, -1, 1, rng);
    Vec out(sz), rstd(n), dx = dx0, dw = dw0;
    cpu::rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), n, C, 1e-5f);
    cpu::rmsnorm_backward(dx.data(), dw.data(), dout.data(), x.data(), w.data(), rstd.data(), n, C);

    const std::string nm = name("rmsnorm", s);
    const DevBuf gx(x), gw(w), gdout(dout);
    DevBuf gout(sz), grstd(n);
    for (DevBuf* o : {&gout, &grstd}) o->poison();
    rwkv::cuda::rmsnorm_forward(gout.p, grstd.p, gx.p, gw.p, n, C, 1e-5f, nullptr);
    EXPECT_TRUE(close(nm + " out", gout.get(), out));
    EXPECT_TRUE(close(nm + " rstd", grstd.get(), rstd));

    const DevBuf crstd(rstd);
    for (int wanted = 0; wanted < 3; ++wanted) {  // 0: both, 1: dx only, 2: dw only
      DevBuf gdx(dx0), gdw(dw0);
      rwkv::cuda::rmsnorm_backward(wanted == 2 ? nullptr : gdx.p, wanted == 1 ? nullptr : gdw.p,
                                   gdout.p, gx.p, gw.p, crstd.p, n, C, nullptr);
      const std::string tag = nm + " (wanted " + std::to_string(wanted) + ")";
      EXPECT_TRUE(close(tag + " dx", gdx.get(), wanted == 2 ? dx0 : dx));
      EXPECT_TRUE(close(tag + " dw", gdw.get(), wanted == 1 ? dw0 : dw));
    }
  }
}

// Heads of random x, with some heads scaled below eps to take the clamped branch.
TEST(CudaNorm, L2NormHeadsMatchesCpu) {
  SKIP_WITHOUT_GPU();
  const float eps = 1e-3f;
  for (const Shape& s : kHeadShapes) {
    std::mt19937 rng(s.seed);
    const size_t sz = size_t(s.n * s.H * s.N), S = size_t(s.n * s.H);
    Vec x = uniform(sz, -1, 1, rng);
    for (size_t h = 0; h < S; h += 3)
      for (int64_t j = 0; j < s.N; ++j) x[h * s.N + j] *= 1e-5f;
    const Vec dout = uniform(sz, -1, 1, rng), dx0 = uniform(sz, -1, 1, rng);
    Vec out(sz), norm(S), dx = dx0;
    cpu::l2norm_heads_forward(out.data(), norm.data(), x.data(), s.n, s.H, s.N, eps);
    cpu::l2norm_heads_backward(dx.data(), dout.data(), out.data(), norm.data(), x.data(), s.n, s.H,
                               s.N, eps);

    const std::string nm = name("l2norm_heads", s);
    const DevBuf gx(x), gdout(dout);
    DevBuf gout(sz), gnorm(S);
    for (DevBuf* o : {&gout, &gnorm}) o->poison();
    rwkv::cuda::l2norm_heads_forward(gout.p, gnorm.p, gx.p, s.n, s.H, s.N, eps, nullptr);
    EXPECT_TRUE(close(nm + " out", gout.get(), out));
    EXPECT_TRUE(close(nm + " norm", gnorm.get(), norm));

    const DevBuf cout(out), cnorm(norm);
    DevBuf gdx(dx0);
    rwkv::cuda::l2norm_heads_backward(gdx.p, gdout.p, cout.p, cnorm.p, gx.p, s.n, s.H, s.N, eps,
                                      nullptr);
    EXPECT_TRUE(close(nm + " dx", gdx.get(), dx));
  }
}

TEST(CudaNorm, BackwardIsBitwiseReproducible) {
  SKIP_WITHOUT_GPU();
  const Shape s{45, 3, 40, 7};
  std::mt19937 rng(s.seed);
  const size_t sz = size_t(s.n * s.H * s.N), C = size_t(s.H * s.N), S = size_t(s.n * s.H);
  const DevBuf x(uniform(sz, -2, 2, rng)), w(uniform(C, -1, 1, rng)), b(uniform(C, -1, 1, rng));
  const DevBuf dout(uniform(sz, -1, 1, rng));
  const Vec dx0 = uniform(sz, -1, 1, rng), dw0 = uniform(C, -1, 1, rng);
  DevBuf out(sz), mean(S), rstd(S);
  const DevBuf g(uniform(sz, -2, 2, rng));
  rwkv::cuda::groupnorm_forward(out.p, mean.p, rstd.p, x.p, w.p, b.p, g.p, s.n, s.H, s.N, 64e-5f,
                                nullptr);
  std::vector<Vec> runs;
  for (int r = 0; r < 2; ++r) {
    DevBuf dx(dx0), dw(dw0), db(dw0), dg(dx0);
    rwkv::cuda::groupnorm_backward(dx.p, dw.p, db.p, dg.p, dout.p, x.p, w.p, b.p, g.p, mean.p,
                                   rstd.p, s.n, s.H, s.N, nullptr);
    Vec all = dx.get();
    for (const DevBuf* grad : {&dw, &db, &dg}) {
      const Vec v = grad->get();
      all.insert(all.end(), v.begin(), v.end());
    }
    runs.push_back(all);
  }
  EXPECT_EQ(runs[0], runs[1]);
}

TEST(CudaNorm, BadShapesThrow) {
  float* p = nullptr;
  EXPECT_THROW(rwkv::cuda::layernorm_forward(p, p, p, p, p, p, 4, 0, 1e-5f, nullptr), rwkv::Error);
  EXPECT_THROW(rwkv::cuda::rmsnorm_backward(p, p, p, p, p, p, -1, 8, nullptr), rwkv::Error);
  EXPECT_THROW(rwkv::cuda::groupnorm_backward(p, p, p, p, p, p, p, p, p, p, p, 4, 0, 64, nullptr),
               rwkv::Error);
  EXPECT_THROW(rwkv::cuda::l2norm_heads_forward(p, p, p, 4, 2, 0, 1e-12f, nullptr), rwkv::Error);
  try {
    rwkv::cuda::groupnorm_forward(p, p, p, p, p, p, p, 4, 2, -3, 1e-5f, nullptr);
    FAIL() << "no error";
  } catch (const rwkv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("groupnorm_forward"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("N=-3"), std::string::npos) << e.what();
  }
}

}  // namespace
