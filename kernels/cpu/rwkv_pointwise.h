#pragma once
// The RWKV-specific pointwise pieces of time mixing, forward and backward. Formulas
// from RWKV-LM (RWKV-v5/src/model.py RWKV_Tmix_x052 / x060, RWKV-v7/train_temp/src/
// model.py RWKV_Tmix_x070). Tensors [n, C] with n = B*T unless stated; backward
// functions accumulate (+=) and skip null gradients.
#include <cstdint>

namespace rwkv::kernels {

// RWKV-5/6 log decay: lw = -exp(time_decay[c] + ww) (ww = the RWKV-6 LoRA term, null
// for RWKV-5), so the decay is exp(lw) = exp(-exp(time_decay + ww)).
template <typename F>
void decay_v6_forward(F* lw, const F* time_decay, const F* ww, int64_t n, int64_t C);
template <typename F>
void decay_v6_backward(F* dtime_decay, F* dww, const F* dlw, const F* lw, int64_t n, int64_t C);

// RWKV-7 log decay: w = -softplus(-(w0 + z)) - 0.5 and decay = exp(-exp(w)), i.e.
// lw = -exp(-0.5) * sigmoid(w0[c] + z).
template <typename F>
void decay_v7_forward(F* lw, const F* w0, const F* z, int64_t n, int64_t C);
template <typename F>
void decay_v7_backward(F* dw0, F* dz, const F* dlw, const F* w0, const F* z, int64_t n,
                       int64_t C);

// RWKV-7 value residual: out = v + (v_first - v) * s, s = sigmoid(v0 + (xv @ v1) @ v2).
template <typename F>
void value_residual_forward(F* out, const F* v, const F* v_first, const F* s, int64_t n);
template <typename F>
void value_residual_backward(F* dv, F* dv_first, F* ds, const F* dout, const F* v,
                             const F* v_first, const F* s, int64_t n);

// RWKV-7 key: out = k * (1 + (a - 1) * k_a[c]).
template <typename F>
void key_adjust_forward(F* out, const F* k, const F* a, const F* k_a, int64_t n, int64_t C);
template <typename F>
void key_adjust_backward(F* dk, F* da, F* dk_a, const F* dout, const F* k, const F* a,
                         const F* k_a, int64_t n, int64_t C);

// RWKV-7 state-update vectors given to WKV7: wa = -kk, wb = kk * a.
template <typename F>
void wkv7_ab_forward(F* wa, F* wb, const F* kk, const F* a, int64_t n);
template <typename F>
void wkv7_ab_backward(F* dkk, F* da, const F* dwa, const F* dwb, const F* kk, const F* a,
                      int64_t n);

// RWKV-7 bonus: out [n, H*N] += (sum_j r*k*r_k over the head) * v * g; r_k [H, N]; g
// [n, H*N], the output gate, or null (none). RWKV-7's att output is (ln_x(y) + bonus) * g:
// the gated GroupNorm (kernels/cpu/norm.h) writes ln_x(y) * g, this adds bonus * g.
template <typename F>
void bonus_v7_forward(F* out, const F* r, const F* k, const F* v, const F* r_k, const F* g,
                      int64_t n, int64_t H, int64_t N);
// With a gate, dg += dout * bonus and the other gradients are the ungated op's for dout * g.
template <typename F>
void bonus_v7_backward(F* dr, F* dk, F* dv, F* dr_k, F* dg, const F* dout, const F* r, const F* k,
                       const F* v, const F* r_k, const F* g, int64_t n, int64_t H, int64_t N);

}  // namespace rwkv::kernels
