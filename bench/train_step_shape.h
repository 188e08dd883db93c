#pragma once
// The CPU training step that bench_train_step.cpp times and bench_train_step_ops.cpp
// takes apart: a 6-layer C = 512 model (head size 64, official dim_ffn, vocabulary
// 8192) of one version, initialised with seed 1, on B = 4 windows of T = 512 random
// tokens (seed 2); one step = zero_grad, forward with the loss, backward, AdamW.
// recompute: ModelOptions::recompute (activation recomputation).
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/backend.h"
#include "model/model.h"

namespace bench {

constexpr int kLayers = 6, kEmbd = 512, kHead = 64, kVocab = 8192, kB = 4, kT = 512;

struct TrainStep {
  TrainStep(int version, rwkv::kernels::Backend<float>& be, bool recompute = false)
      : cfg(rwkv::model::make_model_config(version, kLayers, kEmbd, kHead, kVocab, kT)),
        model(cfg, be, rwkv::model::ModelOptions{.recompute = recompute}),
        idx(size_t(kB) * kT),
        tgt(size_t(kB) * kT) {
    model.init(1);
    std::mt19937 rng(2);
    for (auto& x : idx) x = static_cast<int32_t>(rng() % kVocab);
    for (auto& x : tgt) x = static_cast<int32_t>(rng() % kVocab);
  }

  // One step; returns its loss.
  double operator()() {
    model.zero_grad();
    const double loss = model.forward(idx, tgt, kB, kT);
    model.backward();
    model.adamw_step(rwkv::kernels::AdamWHyper{6e-4, 0.9, 0.99, 1e-8, 0.1}, ++step);
    return loss;
  }

  rwkv::model::ModelConfig cfg;
  rwkv::model::Model<float> model;
  std::vector<int32_t> idx, tgt;
  int64_t step = 0;
};

}  // namespace bench
