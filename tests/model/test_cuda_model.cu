// Whole training steps of the model (model/model.h) on CudaBackend<float> against
// CpuBackend<float> (label gpu): the same parameters and tokens on both, every version.
//   - Two full steps (zero_grad, forward with the loss, backward with L2Wrap, AdamW with
//     weight decay): the loss, every parameter's gradient, every parameter and both
//     AdamW moments after the step, per tensor. Before the second step the CPU model
//     takes the GPU's parameters and moments, so that each step is compared alone (a
//     step amplifies the last one's rounding differences); the second step runs on the
//     moments and the WKV workspaces of the first.
//   - One step of the GPU model recomputing its activations (ModelOptions::recompute)
//     against the CPU keeping them: loss and every gradient.
//   - Inference: forward_logits and five recurrent forward_step calls.
//   - 50 steps of a 4-layer C = 128 RWKV-7 on five batches in turn: the two loss
//     curves; 50 steps of the `small` preset against the CPU's committed curve.
// Measure: ||gpu - cpu||_2 / ||cpu||_2 per tensor <= 1e-5 (losses: relative difference
// <= 1e-5; the 50-step curves <= 1e-3 at every step, as fp32 rounding differences grow
// with training). The CPU runs the naive WKV (the reference recurrence). Head size 16:
// the CUDA WKV kernels take 16, 32 or 64.
//
// bf16 products (MatmulPrecision::bf16) against the same fp32 CPU run: one step per
// version and the 50-step curve. The issue's bf16 tolerance, 5e-3 relative, holds for
// the loss and for the loss curve at every step; not for every gradient tensor: a CPU
// emulation of this test (the CPU backend with each product's operands rounded to bf16
// to nearest even) gives losses within 2.4e-4, the curve within 8.9e-4, the whole
// gradient vector within 5.6e-3 to 8.3e-3, and single tensors up to 8e-2 (RWKV-5's
// time_faaaa: a sum of terms that cancel). So the gradients are checked as a whole
// within 2e-2 and per tensor within 0.25 (a wrong product, layout or missing += is off
// by O(1)), and their error must exceed 1e-4, which shows that the products really ran
// in bf16.
//
// bf16 activations (Model<float, Bf16> on CudaBackend<Bf16>) against the CPU reference of
// bf16 activations (CpuBf16Backend: each op in fp32 on the widened inputs, each output
// rounded once) on the same parameters and tokens, every version and both WKV kernel
// forms: the two round the same fp32 values but for the order of the sums, so a bf16
// output can differ by one step where the fp32 values lie near a rounding boundary. On
// the CPU the bf16 model is 2.6e-4 (loss) and 2.2e-2 (whole gradient) from the fp32 one
// (tests/model/test_model_bf16.cpp), so the same bounds as for the bf16 products apply:
// loss 5e-3, whole gradient 3e-2, every tensor 0.25; forward_logits 2e-2; and the 50-step
// curve within 2e-2 of the fp32 CPU curve.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/backend_cpu.h"
#include "kernels/cpu/bf16_activations.h"
#include "kernels/cuda/backend_cuda.h"
#include "model/model.h"
#include "tests/kernels/cuda_test_util.h"
#include "tests/model/loss_curve.h"
#include "tests/model/model_test_util.h"

namespace rwkv::model {
namespace {

constexpr size_t kArenaBytes = size_t{256} << 20;
// AdamW's first update m / (sqrt(v) + eps) is about lr g / (|g| + eps): an element whose
// gradient is near eps turns the gradient's fp32 rounding difference into up to lr / 4
// times its relative error, so eps is 1e-6 here (with 1e-8 such elements compare
// rounding noise).
const kernels::AdamWHyper kHyper{1e-3, 0.9, 0.99, 1e-6, 0.1};
const ModelOptions kOpts{kernels::WkvAlgo::naive, true};

// 2 layers, C 32, two heads of 16, vocab 20, T up to 64.
ModelConfig small_config(int version) { return make_model_config(version, 2, 32, 16, 20, 64); }

double rel_l2(const float* got, const float* ref, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = double(got[i]) - double(ref[i]);
    num += std::isfinite(d) ? d * d : 1e30;  // NaN or inf fails
    den += double(ref[i]) * double(ref[i]);
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// Every tensor of the table within tol.
void expect_tensors_close(const char* what, const ParamTable& table, const std::vector<float>& got,
                          const std::vector<float>& ref, double tol, const std::string& where) {
  ASSERT_EQ(got.size(), ref.size());
  for (const ParamInfo& p : table.params) {
    const double e = rel_l2(got.data() + p.offset, ref.data() + p.offset, p.size);
    EXPECT_LE(e, tol) << what << " of " << p.name << " (" << where << "): relative L2 error " << e;
  }
}

// A small model of `version` on the CPU and on the GPU, both set to the same random
// parameters, and a batch of B 2, T 37 (two WKV checkpoints and a partial segment).
struct CpuAndGpuModels {
  static constexpr int B = 2, T = 37;
  ModelConfig cfg;
  ParamTable table;
  std::vector<int32_t> idx, tgt;
  kernels::CpuBackend<float> cpu;
  kernels::CudaBackend<float> gpu;
  Model<float> mc, mg;
  CpuAndGpuModels(int version, kernels::MatmulPrecision precision, kernels::WkvKernels wkv,
                  ModelOptions gpu_opts = kOpts)
      : cfg(small_config(version)),
        table(build_param_table(cfg)),
        idx(test::random_tokens(B * T, cfg.vocab_size, 20 + uint64_t(version))),
        tgt(test::random_tokens(B * T, cfg.vocab_size, 30 + uint64_t(version))),
        gpu(kArenaBytes, precision, wkv),
        mc(cfg, cpu, kOpts),
        mg(cfg, gpu, gpu_opts) {
    const auto p0 = test::random_params<float>(cfg, table, 10 + uint64_t(version));
    mc.set_params(p0);
    mg.set_params(p0);
  }
  // From zeroed gradients, a forward and a backward on each: the losses (CPU, GPU).
  std::pair<double, double> forward_backward() {
    mc.zero_grad();
    mg.zero_grad();
    const double lc = mc.forward(idx, tgt, B, T), lg = mg.forward(idx, tgt, B, T);
    mc.backward();
    mg.backward();
    return {lc, lg};
  }
};

// Two training steps of `version` on the GPU, each against the CPU from the same state:
// loss, every gradient, parameters and AdamW moments after the step, 1e-5.
void expect_training_steps_match_cpu(int version, kernels::WkvKernels wkv) {
  CpuAndGpuModels m(version, kernels::MatmulPrecision::fp32, wkv);
  for (int step = 1; step <= 2; ++step) {
    const std::string where = "version " + std::to_string(version) + ", step " +
                              std::to_string(step) +
                              (wkv == kernels::WkvKernels::chunked ? ", chunked WKV" : "");
    if (step > 1) {  // the CPU goes on from the GPU's state: each step is compared alone
      m.mc.set_params(m.mg.get_params());
      m.mc.set_adam_moments(m.mg.get_adam_m(), m.mg.get_adam_v());
    }
    const auto [lc, lg] = m.forward_backward();
    EXPECT_NEAR(lg, lc, 1e-5 * lc) << where;
    expect_tensors_close("gradient", m.table, m.mg.get_grads(), m.mc.get_grads(), 1e-5, where);
    m.mc.adamw_step(kHyper, step);
    m.mg.adamw_step(kHyper, step);
    expect_tensors_close("parameter after AdamW", m.table, m.mg.get_params(), m.mc.get_params(),
                         1e-5, where);
    expect_tensors_close("AdamW m", m.table, m.mg.get_adam_m(), m.mc.get_adam_m(), 1e-5, where);
    expect_tensors_close("AdamW v", m.table, m.mg.get_adam_v(), m.mc.get_adam_v(), 1e-5, where);
  }
}

TEST(CudaModel, TrainingStepsMatchCpu) {
  SKIP_WITHOUT_GPU();
  for (int version : {4, 5, 6, 7})
    expect_training_steps_match_cpu(version, kernels::WkvKernels::sequential);
}

// RWKV-5/6/7 with the chunked WKV kernels (CudaBackend's WkvKernels::chunked).
TEST(CudaModel, ChunkedWkvTrainingStepsMatchCpu) {
  SKIP_WITHOUT_GPU();
  for (int version : {5, 6, 7})
    expect_training_steps_match_cpu(version, kernels::WkvKernels::chunked);
}

TEST(CudaModel, RecomputingStepMatchesCpu) {
  SKIP_WITHOUT_GPU();
  ModelOptions recompute = kOpts;
  recompute.recompute = true;
  for (kernels::WkvKernels wkv : {kernels::WkvKernels::sequential, kernels::WkvKernels::chunked})
    for (int version : {4, 5, 6, 7}) {
      CpuAndGpuModels m(version, kernels::MatmulPrecision::fp32, wkv, recompute);
      const std::string where = "recomputing, version " + std::to_string(version) +
                                (wkv == kernels::WkvKernels::chunked ? ", chunked WKV" : "");
      const auto [lc, lg] = m.forward_backward();
      EXPECT_NEAR(lg, lc, 1e-5 * lc) << where;
      expect_tensors_close("gradient", m.table, m.mg.get_grads(), m.mc.get_grads(), 1e-5, where);
    }
}

TEST(CudaModel, Bf16TrainingStepMatchesCpu) {
  SKIP_WITHOUT_GPU();
  for (int version : {4, 5, 6, 7}) {
    CpuAndGpuModels m(version, kernels::MatmulPrecision::bf16, kernels::WkvKernels::sequential);
    const std::string where = "bf16, version " + std::to_string(version);
    const auto [lc, lg] = m.forward_backward();
    EXPECT_NEAR(lg, lc, 5e-3 * lc) << where;
    const auto gc = m.mc.get_grads(), gg = m.mg.get_grads();
    const double whole = rel_l2(gg.data(), gc.data(), int64_t(gc.size()));
    EXPECT_LE(whole, 2e-2) << "whole gradient, " << where;
    EXPECT_GT(whole, 1e-4) << "whole gradient, " << where << ": as close as fp32 products";
    expect_tensors_close("gradient", m.table, gg, gc, 0.25, where);
  }
}

TEST(CudaModel, Bf16ActivationsMatchCpuReference) {
  SKIP_WITHOUT_GPU();
  using kernels::Bf16;
  for (kernels::WkvKernels wkv : {kernels::WkvKernels::sequential, kernels::WkvKernels::chunked})
    for (int version : {4, 5, 6, 7}) {
      if (version == 4 && wkv == kernels::WkvKernels::chunked) continue;  // WKV4 has one form
      const ModelConfig cfg = small_config(version);
      const ParamTable table = build_param_table(cfg);
      const int B = 2, T = 37;
      const auto idx = test::random_tokens(B * T, cfg.vocab_size, 60 + uint64_t(version));
      const auto tgt = test::random_tokens(B * T, cfg.vocab_size, 70 + uint64_t(version));
      const auto p0 = test::random_params<float>(cfg, table, 80 + uint64_t(version));
      kernels::CpuBf16Backend cpu;
      kernels::CudaBackend<Bf16> gpu(kArenaBytes, kernels::MatmulPrecision::bf16, wkv);
      Model<float, Bf16> mc(cfg, cpu, kOpts), mg(cfg, gpu, kOpts);
      mc.set_params(p0);
      mg.set_params(p0);
      const std::string where = "bf16 activations, version " + std::to_string(version) +
                                (wkv == kernels::WkvKernels::chunked ? ", chunked WKV" : "");
      mc.zero_grad();
      mg.zero_grad();
      const double lc = mc.forward(idx, tgt, B, T), lg = mg.forward(idx, tgt, B, T);
      EXPECT_NEAR(lg, lc, 5e-3 * lc) << where;
      mc.backward();
      mg.backward();
      const auto gc = mc.get_grads(), gg = mg.get_grads();
      EXPECT_LE(rel_l2(gg.data(), gc.data(), int64_t(gc.size())), 3e-2)
          << "whole gradient, " << where;
      expect_tensors_close("gradient", table, gg, gc, 0.25, where);
      mc.adamw_step(kHyper, 1);
      mg.adamw_step(kHyper, 1);
      expect_tensors_close("parameter after AdamW", table, mg.get_params(), mc.get_params(), 1e-2,
                           where);
      const auto yc = mc.forward_logits(idx, B, T), yg = mg.forward_logits(idx, B, T);
      EXPECT_LE(rel_l2(yg.data(), yc.data(), int64_t(yc.size())), 2e-2)
          << "forward_logits, " << where;
    }
}

TEST(CudaModel, InferenceMatchesCpu) {
  SKIP_WITHOUT_GPU();
  for (int version : {4, 5, 6, 7}) {
    const ModelConfig cfg = small_config(version);
    const ParamTable table = build_param_table(cfg);
    const auto p0 = test::random_params<float>(cfg, table, 40 + uint64_t(version));
    const int B = 2, T = 19;
    const auto idx = test::random_tokens(B * T, cfg.vocab_size, 50 + uint64_t(version));
    kernels::CpuBackend<float> cpu;
    kernels::CudaBackend<float> gpu(kArenaBytes);
    Model<float> mc(cfg, cpu, kOpts), mg(cfg, gpu, kOpts);
    mc.set_params(p0);
    mg.set_params(p0);
    const std::string where = "version " + std::to_string(version);
    const auto lc = mc.forward_logits(idx, B, T), lg = mg.forward_logits(idx, B, T);
    ASSERT_EQ(lc.size(), lg.size());
    EXPECT_LE(rel_l2(lg.data(), lc.data(), int64_t(lc.size())), 1e-5)
        << "forward_logits, " << where;
    auto sc = mc.new_state();
    auto sg = mg.new_state();
    for (int t = 0; t < 5; ++t) {
      const auto yc = mc.forward_step(idx[size_t(t)], sc), yg = mg.forward_step(idx[size_t(t)], sg);
      EXPECT_LE(rel_l2(yg.data(), yc.data(), int64_t(yc.size())), 1e-5)
          << "forward_step " << t << ", " << where;
    }
  }
}

// The losses of 50 steps of a 4-layer C = 128 RWKV-7 (tests/model/loss_curve.h).
std::vector<double> loss_curve(kernels::Backend<float>& be) {
  return test::loss_curve(be, make_model_config(7, 4, 128, 32, 256, 128), 2, 64, 60, kOpts);
}

// The CPU's curve, computed once per process for the fp32 and the bf16 comparisons (ctest
// runs each test in a process of its own: then once per test).
const std::vector<double>& cpu_loss_curve() {
  static const std::vector<double> curve = [] {
    kernels::CpuBackend<float> cpu;
    return loss_curve(cpu);
  }();
  return curve;
}

void expect_curves_close(const std::vector<double>& got, const std::vector<double>& ref, double tol,
                         const char* what) {
  ASSERT_EQ(got.size(), ref.size());
  for (size_t s = 0; s < ref.size(); ++s)
    EXPECT_NEAR(got[s], ref[s], tol * ref[s]) << what << ", step " << s + 1;
  EXPECT_LT(ref.back(), ref.front());  // the run trains: the comparison is not of a flat line
}

TEST(CudaModel, LossCurvesMatchCpuFor50Steps) {
  SKIP_WITHOUT_GPU();
  kernels::CudaBackend<float> gpu(kArenaBytes);
  expect_curves_close(loss_curve(gpu), cpu_loss_curve(), 1e-3, "fp32");
}

TEST(CudaModel, Bf16LossCurveMatchesCpuFor50Steps) {
  SKIP_WITHOUT_GPU();
  kernels::CudaBackend<float> gpu(kArenaBytes, kernels::MatmulPrecision::bf16);
  expect_curves_close(loss_curve(gpu), cpu_loss_curve(), 5e-3, "bf16");
}

TEST(CudaModel, Bf16ActivationsLossCurveTracksCpuFor50Steps) {
  SKIP_WITHOUT_GPU();
  kernels::CudaBackend<kernels::Bf16> gpu(kArenaBytes, kernels::MatmulPrecision::bf16);
  expect_curves_close(
      test::loss_curve(gpu, make_model_config(7, 4, 128, 32, 256, 128), 2, 64, 60, kOpts),
      cpu_loss_curve(), 2e-2, "bf16 activations");
}

// The `small` preset's 50-step curve (tests/model/loss_curve.h: 6 layers, C 256,
// B 2, T 512, the trainer's chunked WKV) against the CPU's, committed (the GPU machines'
// reference BLAS would take tens of minutes for the CPU side): fp32 within 1e-3, bf16
// products within 5e-3 relative at every step; and fp32 with the chunked WKV kernels.
TEST(CudaModel, SmallPresetLossCurveTracksCpu) {
  SKIP_WITHOUT_GPU();
  const std::vector<double> ref = test::read_loss_curve(test::small_preset_curve_path());
  for (auto prec : {kernels::MatmulPrecision::fp32, kernels::MatmulPrecision::bf16}) {
    const bool bf16 = prec == kernels::MatmulPrecision::bf16;
    kernels::CudaBackend<float> gpu(size_t{2} << 30, prec);
    expect_curves_close(test::small_preset_loss_curve(gpu), ref, bf16 ? 5e-3 : 1e-3,
                        bf16 ? "small preset, bf16" : "small preset, fp32");
  }
  kernels::CudaBackend<float> chunked(size_t{2} << 30, kernels::MatmulPrecision::fp32,
                                      kernels::WkvKernels::chunked);
  expect_curves_close(test::small_preset_loss_curve(chunked), ref, 1e-3,
                      "small preset, fp32, chunked WKV");
}

// The CUDA WKV backward needs the checkpoints of its forward: without one, a clear error.
TEST(CudaModel, WkvBackwardWithoutForwardThrows) {
  SKIP_WITHOUT_GPU();
  kernels::CudaBackend<float> be(kArenaBytes);
  const int B = 1, T = 4, H = 1, N = 16;
  float* t = be.alloc(8 * B * T * H * N);
  float* p[8];
  for (int i = 0; i < 8; ++i) p[i] = t + i * B * T * H * N;
  EXPECT_THROW(be.wkv7_backward(kernels::WkvAlgo::naive, B, T, H, N, 0, H, p[0], p[1], p[2], p[3],
                                p[4], p[5], p[6], p[7], p[7], p[7], p[7], p[7], p[7]),
               Error);
  be.free(t);
}

}  // namespace
}  // namespace rwkv::model
