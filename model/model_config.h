#pragma once
// The model's shape, as plain numbers, built from the resolved run config
// (model.* keys of common/config_schema.cpp).
#include <cstdint>

namespace rwkv {
struct Config;
}

namespace rwkv::model {

enum class NormKind { layernorm, rmsnorm };
enum class FfnActivation { relu_squared, relu };

struct ModelConfig {
  int version = 7;  // 4, 5, 6 or 7
  int n_layer = 0;
  int n_embd = 0;     // C
  int head_size = 0;  // N (RWKV-4 has no heads; kept for the config's sake)
  int vocab_size = 0;
  int ctx_len = 0;
  int dim_ffn = 0;  // channel-mix width (official default: default_dim_ffn)
  NormKind norm = NormKind::layernorm;
  FfnActivation ffn_activation = FfnActivation::relu_squared;

  int n_head() const { return n_embd / head_size; }

  // RWKV-6 LoRA ranks (RWKV-LM RWKV-v5/src/model.py RWKV_Tmix_x060: D_MIX_LORA = 32
  // for the five token-shift mixes, D_DECAY_LORA = 64).
  int v6_mix_lora() const { return 32; }
  int v6_decay_lora() const { return 64; }
  // RWKV-7 LoRA ranks (RWKV-LM RWKV-v7/train_temp/src/model.py RWKV_Tmix_x070):
  // max(32, round(f * sqrt(C) / 32) * 32) with f = 2.5 (decay, a), 1.7 (value), 5 (gate).
  int v7_decay_lora() const;
  int v7_aaa_lora() const;
  int v7_mv_lora() const;
  int v7_gate_lora() const;
};

// From a resolved Config (model.dim_ffn already resolved to the official default);
// model/model_config_from.cpp, the model's one use of common's config code.
ModelConfig model_config_from(const Config& c);

// Direct construction (tests, benchmarks); dim_ffn 0 = the official default.
ModelConfig make_model_config(int version, int n_layer, int n_embd, int head_size, int vocab_size,
                              int ctx_len, int dim_ffn = 0);

}  // namespace rwkv::model
