#pragma once
// Small types shared by the op signatures of every backend (kernels/backend.h).
#include <cstdint>

namespace rwkv::kernels {

// Pointwise activations (act_forward / act_backward).
enum class Act {
  sigmoid,  // 1 / (1 + e^-x)
  silu,     // x * sigmoid(x)                 (RWKV-5/6 gate)
  tanh,     //                                (RWKV-6/7 LoRA)
  relu,     // max(x, 0)                      (model.ffn_activation: relu)
  relu_sq,  // max(x, 0)^2                    (RWKV channel mix)
  exp,      // e^x                            (RWKV-4 w = exp(time_decay))
};

// Weight layouts of the official checkpoints (matmul_forward / matmul_backward):
//   OutIn  w [N, K]: nn.Linear.weight, out = x @ w^T   (key, value, output, head, ...)
//   InOut  w [K, N]: raw LoRA matrices,  out = x @ w     (time_maa_w1, w1, a2, ...)
enum class WLayout { OutIn, InOut };

// A run of the flat parameter buffer that shares its AdamW multipliers (one tensor).
struct AdamWSegment {
  int64_t offset = 0;
  int64_t size = 0;
  double lr_mult = 1.0;
  double wd_mult = 0.0;
};

struct AdamWHyper {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.99;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

}  // namespace rwkv::kernels

namespace rwkv::kernels {

// Which WKV algorithm a backend runs: the token-by-token recurrence (the reference)
// or the chunked form (dense products inside chunks of `chunk` tokens).
enum class WkvAlgo { naive, chunked };

}  // namespace rwkv::kernels
