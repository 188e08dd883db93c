#pragma once
// The recurrent state of one sequence (RNN mode): per layer, the last token's inputs
// of the time mix and the channel mix (for the token shift) and the WKV state. Plain
// host arrays, so it can be saved and restored; its size does not grow with the
// sequence.
#include <cstdint>
#include <vector>

namespace rwkv::model {

template <typename F>
struct RecurrentState {
  int n_layer = 0;
  int n_embd = 0;
  int64_t wkv_size = 0;      // per layer: v4 C * 3 (aa, bb, pp); v5-v7 H * N * N
  std::vector<F> att_shift;  // [n_layer, C]
  std::vector<F> ffn_shift;  // [n_layer, C]
  std::vector<F> wkv;        // [n_layer, wkv_size]: v4 [C, 3]; v5-v7 [H, N, N]
};

}  // namespace rwkv::model
