#include "model/model_config.h"

#include <algorithm>
#include <cmath>

namespace rwkv::model {

namespace {

// Python's int(round(f * C**0.5 / 32) * 32), floored at 32; round() is half-to-even
// in Python, as std::nearbyint in the default rounding mode.
int v7_lora(double f, int C) {
  const double r = std::nearbyint(f * std::sqrt(static_cast<double>(C)) / 32.0);
  return std::max(32, static_cast<int>(r * 32.0));
}

}  // namespace

int ModelConfig::v7_decay_lora() const { return v7_lora(2.5, n_embd); }
int ModelConfig::v7_aaa_lora() const { return v7_lora(2.5, n_embd); }
int ModelConfig::v7_mv_lora() const { return v7_lora(1.7, n_embd); }
int ModelConfig::v7_gate_lora() const { return v7_lora(5.0, n_embd); }

ModelConfig model_config_from(const Config& c) {
  ModelConfig m;
  m.version = static_cast<int>(c.get_int("model.version"));
  m.n_layer = static_cast<int>(c.get_int("model.n_layer"));
  m.n_embd = static_cast<int>(c.get_int("model.n_embd"));
  m.head_size = static_cast<int>(c.get_int("model.head_size"));
  m.vocab_size = static_cast<int>(c.get_int("model.vocab_size"));
  m.ctx_len = static_cast<int>(c.get_int("model.ctx_len"));
  m.dim_ffn = static_cast<int>(c.get_int("model.dim_ffn"));
  if (m.dim_ffn == 0) m.dim_ffn = static_cast<int>(default_dim_ffn(m.version, m.n_embd));
  m.norm = c.get_string("model.norm") == "rmsnorm" ? NormKind::rmsnorm : NormKind::layernorm;
  m.ffn_activation = c.get_string("model.ffn_activation") == "relu" ? FfnActivation::relu
                                                                    : FfnActivation::relu_squared;
  return m;
}

ModelConfig make_model_config(int version, int n_layer, int n_embd, int head_size, int vocab_size,
                              int ctx_len, int dim_ffn) {
  ModelConfig m;
  m.version = version;
  m.n_layer = n_layer;
  m.n_embd = n_embd;
  m.head_size = head_size;
  m.vocab_size = vocab_size;
  m.ctx_len = ctx_len;
  m.dim_ffn = dim_ffn ? dim_ffn : static_cast<int>(default_dim_ffn(version, n_embd));
  return m;
}

}  // namespace rwkv::model
