#pragma once
// What each block keeps from its forward for its backward (llm.c style: one plain
// struct, every tensor named). Fields a version does not use stay null. Shapes are
// for one rank: with tensor parallelism, C in the attention-internal comments means
// the rank's channels and dim_ffn its FFN columns (plan_layer_acts). The same
// struct, allocated alike, holds the gradients of one block's activations during
// the backward (reused by every block). n = B*T tokens; shapes in the comments.
// Activations are A; the statistics a backward reads (means, rstd, norms) and RWKV-4's
// per-channel decay are F (kernels/backend.h).
#include <cstdint>
#include <utility>
#include <vector>

#include "kernels/backend.h"
#include "model/model_config.h"
#include "model/tensor_parallel.h"

namespace rwkv::model {

template <typename F, typename A = F>
struct LayerActs {
  // Block: x_mid = x + att(ln1(x)); x_out = x_mid + ffn(ln2(x_mid)).
  A *ln1 = nullptr, *att = nullptr, *x_mid = nullptr, *ln2 = nullptr;                    // [n, C]
  F *ln1_mean = nullptr, *ln1_rstd = nullptr, *ln2_mean = nullptr, *ln2_rstd = nullptr;  // [n]
  A* ffn = nullptr;                                                                      // [n, C]

  // Time mix. xx = shift(x) - x; x* the mixed inputs [n, C].
  A *xx = nullptr, *xr = nullptr, *xk = nullptr, *xv = nullptr, *xg = nullptr;
  A *xw = nullptr, *xa = nullptr;
  A *xxx = nullptr, *maa_h = nullptr, *maa_t = nullptr;  // v6: [n, C], [n, 5R], [n, 5R]
  A* maa_m = nullptr;                                    // v6: [5, n, C] (w, k, v, r, g)
  A *w_h = nullptr, *w_t = nullptr, *w_z = nullptr;      // v6/v7 decay LoRA [n, D], [n, D], [n, C]
  A *r = nullptr, *k = nullptr, *v = nullptr;            // [n, C]
  A *g_h = nullptr, *g_t = nullptr, *g = nullptr;        // gate: v5/6 g_h [n, C]; v7 [n, Dg]
  F* wpos = nullptr;                                     // v4: exp(time_decay) [C]
  A* lw = nullptr;                                       // v5-7: log decay [n, C]
  A *k_raw = nullptr, *v_raw = nullptr;                  // v7: before key adjust / residual
  A *vr_h = nullptr, *vr_z = nullptr, *vr_s = nullptr;   // v7 value residual [n, Dv], [n, C]x2
  A *a_h = nullptr, *a_z = nullptr, *a = nullptr;        // v7 [n, Da], [n, C], [n, C]
  A *kk_pre = nullptr, *kk = nullptr;                    // v7 [n, C]
  F* kk_norm = nullptr;                                  // v7 [n, H]
  A *wa = nullptr, *wb = nullptr;                        // v7 WKV a, b [n, C]
  A* y = nullptr;                                        // WKV output [n, C]
  A* sr = nullptr;                                       // v4 sigmoid(r) [n, C]
  F *gn_mean = nullptr, *gn_rstd = nullptr;                 // v5-7 ln_x statistics [n, H]
  A* o = nullptr;   // v4: sigmoid(r) * wkv [n, C], the input of att.output
  A* og = nullptr;  // v5-7: the gated ln_x output (v7 with its bonus), input of att.output
  F* tmp_c = nullptr;                                       // [C] scratch (du)

  // Channel mix.
  A *cxx = nullptr, *cxk = nullptr, *cxr = nullptr;  // [n, C]
  A *ck_h = nullptr, *ck = nullptr;                  // [n, dim_ffn]
  A *ckv = nullptr, *cr_h = nullptr, *cr = nullptr;  // [n, C] (v4-v6)
};

// Collects buffer requests, then backs them all with one allocation.
template <typename T>
struct Arena {
  std::vector<std::pair<T**, int64_t>> requests;
  int64_t total = 0;
  void take(T*& p, int64_t size) {
    requests.emplace_back(&p, size);
    total += size;
  }
  // alloc(n) -> T*: the backend's alloc or alloc_act.
  template <typename Alloc>
  T* commit(Alloc alloc) {
    T* base = alloc(total > 0 ? total : 1);
    int64_t off = 0;
    for (auto& [pp, size] : requests) {
      *pp = base + off;
      off += size;
    }
    return base;
  }
};

// Requests every buffer of one block for n tokens on a TP rank owning `tp`: the
// attention-internal tensors (r, k, v, y, lw, ...) are [n, tp.channels()], the FFN
// hidden [n, tp.ffn()], the block's inputs and outputs and the mixed inputs [n, C]:
// the activations from ar, the statistics from far.
template <typename F, typename A>
void plan_layer_acts(const ModelConfig& cfg, const TpRanges& tp, int64_t n, LayerActs<F, A>& a,
                     Arena<A>& ar, Arena<F>& far);

}  // namespace rwkv::model
