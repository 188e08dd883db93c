#pragma once
// Loss curves of short training runs, for comparing backends over many steps: 50 steps
// (zero_grad, forward with the loss, backward with L2Wrap, AdamW at lr 3e-4) on five
// batches of a fixed random token stream in turn, from the official init with seed 7.
// lr 3e-4 trains (a 4-layer C 128 model: loss 5.7 -> about 2) without memorising the
// five batches: at 1e-3 the loss falls below 1 and two backends' rounding differences
// grow to ~1e-3 by step 50.
//
// The `small` preset's curve (configs/model/small.yaml: RWKV-7, 6 layers, C 256, head
// size 64, vocabulary 512, ctx 512; B 2, T 512, the trainer's default chunked WKV) on
// the CPU backend is committed (tests/model/fixtures/small_preset_loss_curve.txt): the
// GPU test compares against it, because the GPU machines have only the reference BLAS,
// which takes tens of minutes for these 50 steps; test_small_preset_curve.cpp checks
// that the CPU still gives it.
#include <cstdint>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/backend.h"
#include "model/model.h"
#include "tests/model/model_test_util.h"

namespace rwkv::model::test {

// A: the activations' element type (kernels/backend.h).
template <typename A>
std::vector<double> loss_curve(kernels::Backend<float, A>& be, const ModelConfig& cfg, int B, int T,
                               uint64_t seed, const ModelOptions& opts) {
  const int kBatches = 5, kSteps = 50;
  std::vector<std::vector<int32_t>> idx, tgt;
  for (int b = 0; b < kBatches; ++b) {  // next-token pairs of a fixed random stream
    const auto s = random_tokens(B * (T + 1), cfg.vocab_size, seed + uint64_t(b));
    idx.emplace_back();
    tgt.emplace_back();
    for (int r = 0; r < B; ++r)
      for (int t = 0; t < T; ++t) {
        idx.back().push_back(s[size_t(r * (T + 1) + t)]);
        tgt.back().push_back(s[size_t(r * (T + 1) + t + 1)]);
      }
  }
  const kernels::AdamWHyper h{3e-4, 0.9, 0.99, 1e-8, 0.1};
  Model<float, A> m(cfg, be, opts);
  m.init(7);
  std::vector<double> losses;
  for (int s = 0; s < kSteps; ++s) {
    m.zero_grad();
    losses.push_back(m.forward(idx[size_t(s % kBatches)], tgt[size_t(s % kBatches)], B, T));
    m.backward();
    m.adamw_step(h, s + 1);
  }
  return losses;
}

inline ModelConfig small_preset_config() { return make_model_config(7, 6, 256, 64, 512, 512); }

inline std::vector<double> small_preset_loss_curve(kernels::Backend<float>& be) {
  return loss_curve(be, small_preset_config(), 2, 512, 80, ModelOptions{});
}

inline std::string small_preset_curve_path() {
  return std::string(RWKV_SOURCE_DIR) + "/tests/model/fixtures/small_preset_loss_curve.txt";
}

// One loss per line. Throws rwkv::Error naming the file if it cannot be read.
inline std::vector<double> read_loss_curve(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot read the loss curve " + path);
  std::vector<double> curve;
  for (double x; in >> x;) curve.push_back(x);
  if (!in.eof()) throw Error("not a number in the loss curve " + path);
  return curve;
}

inline void write_loss_curve(const std::string& path, const std::vector<double>& curve) {
  std::ostringstream out;
  out << std::setprecision(17);
  for (double x : curve) out << x << "\n";
  std::ofstream f(path);
  f << out.str();
  if (!f) throw Error("cannot write the loss curve " + path);
}

}  // namespace rwkv::model::test
