#include "model/model_config.h"

#include <algorithm>
#include <cmath>

#include "common/model_defaults.h"

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
