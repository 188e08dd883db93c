#include "model/model_config.h"

#include "common/config.h"

namespace rwkv::model {

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

}  // namespace rwkv::model
