#pragma once
// Helpers shared by the model tests: tiny configs and randomised (not official)
// parameters, so that no gradient is structurally zero.
#include <cstdint>
#include <random>
#include <vector>

#include "model/init.h"
#include "model/model.h"

namespace rwkv::model::test {

// n_layer 2, C 16, head_size 8 (2 heads), vocab 12, official dim_ffn.
inline ModelConfig tiny_config(int version) { return make_model_config(version, 2, 16, 8, 12, 64); }

// Official init plus U(-0.2, 0.2) noise on every parameter.
template <typename F>
std::vector<F> random_params(const ModelConfig& cfg, const ParamTable& table, uint64_t seed) {
  std::vector<F> p(static_cast<size_t>(table.total));
  init_params(cfg, table, seed, p.data());
  std::mt19937_64 gen(seed + 1);
  std::uniform_real_distribution<double> u(-0.2, 0.2);
  for (F& x : p) x += static_cast<F>(u(gen));
  return p;
}

inline std::vector<int32_t> random_tokens(int n, int vocab, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int32_t& x : t) x = static_cast<int32_t>(gen() % static_cast<uint64_t>(vocab));
  return t;
}

}  // namespace rwkv::model::test
