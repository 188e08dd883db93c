// ProfiledBackend (kernels/profiled_backend.h) around the CPU backend: a training step of
// each version through it gives bitwise the same loss, gradients and updated parameters
// as the backend alone (it only forwards), and its clock saw the ops the step makes
// (every WKV of the version, the products, AdamW, the loss), each with calls > 0 and a
// non-negative time; the table lists them.
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/cpu/backend_cpu.h"
#include "kernels/profiled_backend.h"
#include "model/model.h"
#include "model/param_count.h"

namespace rwkv::kernels {
namespace {

struct StepResult {
  double loss;
  std::vector<float> grads, params;
};

model::ModelConfig step_config(int version) {
  return model::make_model_config(version, 2, 32, 8, 50, 12);
}

StepResult train_step(Backend<float>& be, int version) {
  const model::ModelConfig cfg = step_config(version);
  model::Model<float> m(cfg, be);
  m.init(3);
  std::mt19937 rng(4);
  std::vector<int32_t> idx(2 * 12), tgt(2 * 12);
  for (auto& x : idx) x = static_cast<int32_t>(rng() % 50);
  for (auto& x : tgt) x = static_cast<int32_t>(rng() % 50);
  StepResult r;
  m.zero_grad();
  r.loss = m.forward(idx, tgt, 2, 12);
  m.backward();
  r.grads = m.get_grads();
  m.adamw_step(AdamWHyper{1e-3, 0.9, 0.99, 1e-8, 0.1}, 1);
  r.params = m.get_params();
  return r;
}

TEST(ProfiledBackend, ForwardsEveryCallAndTimesEachOp) {
  for (int version : {4, 5, 6, 7}) {
    CpuBackend<float> cpu(16, 1);
    HostOpClock clock;
    ProfiledBackend<float> profiled(cpu, &clock);
    const StepResult a = train_step(cpu, version), b = train_step(profiled, version);
    EXPECT_EQ(a.loss, b.loss) << "v" << version;
    EXPECT_EQ(a.grads, b.grads) << "v" << version;
    EXPECT_EQ(a.params, b.params) << "v" << version;
    const auto totals = clock.totals();
    const std::string wkv = version == 4 ? "wkv4" : version == 7 ? "wkv7" : "wkv6";
    for (const std::string& op :
         {wkv + "_forward", wkv + "_backward", std::string("matmul_forward"),
          std::string("matmul_backward"), std::string("adamw_step"), std::string("ce_backward"),
          std::string("embedding_forward")}) {
      ASSERT_TRUE(totals.count(op)) << op << ", v" << version;
      EXPECT_GT(totals.at(op).calls, 0) << op;
      EXPECT_GE(totals.at(op).ms, 0) << op;
    }
    const std::string table = format_op_profile(totals, 1);
    EXPECT_NE(table.find("| " + wkv + "_backward | "), std::string::npos) << table;
    EXPECT_NE(table.find("| all ops |"), std::string::npos) << table;
    clock.reset();
    EXPECT_TRUE(clock.totals().empty());
  }
}

// The products of a step, recorded: one forward per weight used in a product (their K * N
// sum is count_flops' matmul_params, the FLOP count of the benchmarks), each with its
// backward of the same shape asking for dw; every product over the step's B * T tokens;
// the head's [C] -> [vocab] among them.
TEST(ProfiledBackend, RecordsEveryProduct) {
  for (int version : {4, 5, 6, 7}) {
    CpuBackend<float> cpu(16, 1);
    ProfiledBackend<float> profiled(cpu, nullptr);
    std::vector<ProductCall> products;
    profiled.products = &products;
    train_step(profiled, version);
    const model::ModelConfig cfg = step_config(version);
    int64_t weights = 0;
    std::multiset<std::tuple<int64_t, int64_t, WLayout>> forward, backward;
    for (const ProductCall& p : products) {
      EXPECT_EQ(p.M, 2 * 12) << "v" << version;
      if (p.backward) {
        EXPECT_TRUE(p.dw) << "v" << version << ": K " << p.K << " N " << p.N;
        backward.insert({p.K, p.N, p.layout});
      } else {
        weights += p.K * p.N;
        forward.insert({p.K, p.N, p.layout});
      }
    }
    EXPECT_EQ(weights, model::count_flops(cfg).matmul_params) << "v" << version;
    EXPECT_EQ(forward, backward) << "v" << version;
    EXPECT_EQ(forward.count({cfg.n_embd, cfg.vocab_size, WLayout::OutIn}), 1u) << "v" << version;
  }
}

}  // namespace
}  // namespace rwkv::kernels
