#pragma once
// The blocks' two halves, each an explicit forward that fills LayerActs and an
// explicit backward that reads them (no autograd). Time mix per version:
// time_mix_v4.cpp, time_mix_v5v6.cpp, time_mix_v7.cpp; channel mix: channel_mix.cpp.
//
// Backward conventions: parameter gradients (gw) and dx accumulate (dx starts at zero);
// d is the gradient scratch of this block's activations, holding the previous block's
// values: a backward zeroes (zero_grads) exactly the buffers its ops add into before
// anything writes them. What a matmul_backward (accumulate_dx false) or a WKV backward
// writes first needs no zeroing: about half of the scratch.
//
// Tensor parallelism (model/tensor_parallel.h): each rank's time mix works on its
// range of heads and its channel mix on its range of the FFN hidden dim, with the
// rank's slabs of the weights (on one rank the ranges are everything). A forward
// ends with the all-reduce of its row-parallel output (the block output is whole on
// every rank); a backward leaves dx partial, and the model all-reduces it (the
// conjugate), so dx must start at zero.
#include <initializer_list>

#include "kernels/backend.h"
#include "model/activations.h"
#include "model/model_config.h"
#include "model/tensor_parallel.h"
#include "model/weights.h"

namespace rwkv::model {

template <typename F, typename A = F>
struct LayerCtx {
  kernels::Backend<F, A>& be;
  const ModelConfig& cfg;
  TpAllReduce<A>& tp;  // the blocks' collectives are on activations
  const TpRanges& r;  // this rank's heads and FFN columns
  int B = 0, T = 0;
  kernels::WkvAlgo wkv = kernels::WkvAlgo::chunked;
  // A forward run again for its backward (activation recomputation): it may leave out
  // what only the block's output needs (the channel mix's last product).
  bool again = false;
  int64_t n() const { return static_cast<int64_t>(B) * T; }
};

// Zeroes each of the activation-gradient buffers of `size` values (null ones are skipped).
template <typename F, typename A>
void zero_grads(kernels::Backend<F, A>& be, int64_t size, std::initializer_list<A*> bufs) {
  for (A* p : bufs)
    if (p) be.zero_act(p, size);
}

// One block's recurrent state, in and out (null in training: zero state, not kept), F.
// Shift states [B, C]; WKV state [B, C, 3] (v4) or [B, H, N, N] (v5-v7).
template <typename F>
struct BlockState {
  const F* att_shift_in = nullptr;
  F* att_shift_out = nullptr;
  const F* ffn_shift_in = nullptr;
  F* ffn_shift_out = nullptr;
  const F* wkv_in = nullptr;
  F* wkv_out = nullptr;
};

// x [n, C] (ln1 output) -> a.att [n, C]. w: the parameters; m: the copy of them the
// products read (kernels/backend.h's A; w itself when A = F).
template <typename F, typename A>
void time_mix_v4_forward(const LayerCtx<F, A>& c, const BlockWeights<F>& w,
                         const BlockWeights<A>& m, LayerActs<F, A>& a, const A* x,
                         const BlockState<F>& st);
template <typename F, typename A>
void time_mix_v4_backward(const LayerCtx<F, A>& c, const BlockWeights<F>& w,
                          const BlockWeights<A>& m, BlockWeights<F>& gw, const LayerActs<F, A>& a,
                          LayerActs<F, A>& d, const A* dout, A* dx);

template <typename F, typename A>
void time_mix_v5v6_forward(const LayerCtx<F, A>& c, const BlockWeights<F>& w,
                           const BlockWeights<A>& m, LayerActs<F, A>& a, const A* x,
                           const BlockState<F>& st);
template <typename F, typename A>
void time_mix_v5v6_backward(const LayerCtx<F, A>& c, const BlockWeights<F>& w,
                            const BlockWeights<A>& m, BlockWeights<F>& gw, const LayerActs<F, A>& a,
                            LayerActs<F, A>& d, const A* dout, A* dx);

// v_first: layer 0's value [n, C] (null in layer 0, which produces it as a.v);
// dv_first accumulates its gradient from the later layers and is consumed by layer 0.
template <typename F, typename A>
void time_mix_v7_forward(const LayerCtx<F, A>& c, const BlockWeights<F>& w,
                         const BlockWeights<A>& m, LayerActs<F, A>& a, const A* x,
                         const BlockState<F>& st, const A* v_first);
template <typename F, typename A>
void time_mix_v7_backward(const LayerCtx<F, A>& c, const BlockWeights<F>& w,
                          const BlockWeights<A>& m, BlockWeights<F>& gw, const LayerActs<F, A>& a,
                          LayerActs<F, A>& d, const A* dout, A* dx, const A* v_first, A* dv_first);

// x [n, C] (ln2 output) -> a.ffn [n, C].
template <typename F, typename A>
void channel_mix_forward(const LayerCtx<F, A>& c, const BlockWeights<F>& w,
                         const BlockWeights<A>& m, LayerActs<F, A>& a, const A* x,
                         const BlockState<F>& st);
template <typename F, typename A>
void channel_mix_backward(const LayerCtx<F, A>& c, const BlockWeights<F>& w,
                          const BlockWeights<A>& m, BlockWeights<F>& gw, const LayerActs<F, A>& a,
                          LayerActs<F, A>& d, const A* dout, A* dx);

}  // namespace rwkv::model
