#pragma once
// Every op of the backend interface (kernels/backend.h) that reads or writes activations,
// except the products and WKV (which have tests of their own), as cases that run on any
// Backend<float, A>, so that two backends can be compared op by op on the same inputs:
// the CPU reference of bf16 activations against the fp32 CPU backend
// (test_bf16_activations.cpp) and the CUDA backend's bf16 activations against that
// reference (test_cuda_backend_bf16.cu).
//
// A case lists its buffers (activations, F tensors, token ids) with the range of their
// random values; every buffer, outputs included, starts from the same values on both
// backends (activations rounded to bf16, so that both read the same numbers), and every
// buffer is compared after the op. So an element a backend leaves unwritten, or adds to
// where the other overwrites, keeps a value the other changed, and an input an op writes
// over shows too. Shapes: n = B T = 2 x 37 tokens, C = 192 = 3 heads of 64, a vocabulary
// slab of 300 columns from 100 (of 500).
#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cuda/bf16.h"
#include "tests/kernels/bf16_test_util.h"
#include "tests/kernels/wkv_test_util.h"

namespace rwkv::kernels::test {

enum class BufKind { act, f, ids };

struct BufSpec {
  BufKind kind;
  int64_t n;
  double lo = -1, hi = 1;  // uniform values; ids: integers in [lo, hi)
};

// A case's buffers on one backend, by their index in the case's list.
template <typename A>
struct Ptrs {
  std::vector<void*> p;
  A* a(int i) const { return static_cast<A*>(p[size_t(i)]); }
  float* f(int i) const { return static_cast<float*>(p[size_t(i)]); }
  int32_t* id(int i) const { return static_cast<int32_t*>(p[size_t(i)]); }
};

struct OpCase {
  std::string name;
  std::vector<BufSpec> bufs;
  std::function<void(Backend<float, float>&, const Ptrs<float>&)> on_fp32;
  std::function<void(Backend<float, Bf16>&, const Ptrs<Bf16>&)> on_bf16;
};

// One generic op (a lambda taking (auto& backend, const auto& ptrs)) for both types.
template <typename Op>
OpCase op_case(std::string name, std::vector<BufSpec> bufs, Op op) {
  return {std::move(name), std::move(bufs), op, op};
}

// The starting values of every buffer: activations rounded to bf16, ids integers.
inline std::vector<std::vector<float>> initial_values(const OpCase& c, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::vector<float>> out;
  for (const BufSpec& s : c.bufs) {
    std::vector<float> v = uniform<float>(static_cast<size_t>(s.n), s.lo, s.hi, rng);
    if (s.kind == BufKind::act) cuda::test::round_to_bf16(v);
    if (s.kind == BufKind::ids)
      for (float& e : v) e = std::floor(e);
    out.push_back(std::move(v));
  }
  return out;
}

// Every buffer after the op on `be` (activations widened; ids, which a backend does not
// download, empty).
template <typename A>
std::vector<std::vector<float>> run_op_case(Backend<float, A>& be, const OpCase& c,
                                            const std::vector<std::vector<float>>& init) {
  Ptrs<A> ptrs;
  for (size_t i = 0; i < c.bufs.size(); ++i) {
    const BufSpec& s = c.bufs[i];
    if (s.kind == BufKind::act) {
      A* p = be.alloc_act(s.n);
      be.upload_act(p, init[i].data(), s.n);
      ptrs.p.push_back(p);
    } else if (s.kind == BufKind::f) {
      float* p = be.alloc(s.n);
      be.upload(p, init[i].data(), s.n);
      ptrs.p.push_back(p);
    } else {
      int32_t* p = be.alloc_ids(s.n);
      const std::vector<int32_t> ids(init[i].begin(), init[i].end());
      be.upload_ids(p, ids.data(), s.n);
      ptrs.p.push_back(p);
    }
  }
  if constexpr (std::is_same_v<A, float>)
    c.on_fp32(be, ptrs);
  else
    c.on_bf16(be, ptrs);
  std::vector<std::vector<float>> out;
  for (size_t i = 0; i < c.bufs.size(); ++i) {
    const BufSpec& s = c.bufs[i];
    std::vector<float> h;
    if (s.kind == BufKind::act) {
      h.resize(size_t(s.n));
      be.download_act(h.data(), ptrs.a(int(i)), s.n);
      be.free_act(ptrs.a(int(i)));
    } else if (s.kind == BufKind::f) {
      h.resize(size_t(s.n));
      be.download(h.data(), ptrs.f(int(i)), s.n);
      be.free(ptrs.f(int(i)));
    } else {
      be.free_ids(ptrs.id(int(i)));
    }
    out.push_back(std::move(h));
  }
  return out;
}

// The cases. Buffer ranges keep each op in its working range: statistics (rstd, norms)
// positive, log decays negative, ids partly outside the vocabulary slab.
inline std::vector<OpCase> backend_op_cases() {
  constexpr int64_t B = 2, T = 37, n = B * T, H = 3, N = 64, C = H * N;
  constexpr int64_t V = 500, v0 = 100, Vl = 300;
  constexpr float eps = 1e-5f;
  const BufSpec act{BufKind::act, n * C}, vec{BufKind::f, C}, rows{BufKind::f, n},
      heads{BufKind::f, n * H}, pos_rows{BufKind::f, n, 0.5, 2},
      pos_heads{BufKind::f, n * H, 0.5, 2}, tokens{BufKind::ids, n, 0, V};
  std::vector<OpCase> cs;

  cs.push_back(op_case("embedding_forward", {act, tokens, {BufKind::f, Vl * C}},
                       [=](auto& be, const auto& p) {
                         be.embedding_forward(p.a(0), p.id(1), p.f(2), n, C, v0, v0 + Vl);
                       }));
  cs.push_back(op_case("embedding_backward", {{BufKind::f, Vl * C}, act, tokens},
                       [=](auto& be, const auto& p) {
                         be.embedding_backward(p.f(0), p.a(1), p.id(2), n, C, v0, v0 + Vl);
                       }));

  cs.push_back(
      op_case("layernorm_forward", {act, rows, rows, act, vec, vec}, [=](auto& be, const auto& p) {
        be.layernorm_forward(p.a(0), p.f(1), p.f(2), p.a(3), p.f(4), p.f(5), n, C, eps);
      }));
  cs.push_back(op_case("layernorm_backward", {act, vec, vec, act, act, vec, rows, pos_rows},
                       [=](auto& be, const auto& p) {
                         be.layernorm_backward(p.a(0), p.f(1), p.f(2), p.a(3), p.a(4), p.f(5),
                                               p.f(6), p.f(7), n, C);
                       }));
  cs.push_back(op_case("rmsnorm_forward", {act, rows, act, vec}, [=](auto& be, const auto& p) {
    be.rmsnorm_forward(p.a(0), p.f(1), p.a(2), p.f(3), n, C, eps);
  }));
  cs.push_back(op_case("rmsnorm_backward", {act, vec, act, act, vec, pos_rows},
                       [=](auto& be, const auto& p) {
                         be.rmsnorm_backward(p.a(0), p.f(1), p.a(2), p.a(3), p.f(4), p.f(5), n, C);
                       }));
  for (const bool gated : {false, true}) {
    const std::string g = gated ? " gated" : "";
    cs.push_back(op_case("groupnorm_forward" + g, {act, heads, heads, act, vec, vec, act},
                         [=](auto& be, const auto& p) {
                           be.groupnorm_forward(p.a(0), p.f(1), p.f(2), p.a(3), p.f(4), p.f(5),
                                                gated ? p.a(6) : nullptr, n, H, N, eps);
                         }));
    cs.push_back(op_case(
        "groupnorm_backward" + g, {act, vec, vec, act, act, act, vec, vec, act, heads, pos_heads},
        [=](auto& be, const auto& p) {
          be.groupnorm_backward(p.a(0), p.f(1), p.f(2), gated ? p.a(3) : nullptr, p.a(4), p.a(5),
                                p.f(6), p.f(7), gated ? p.a(8) : nullptr, p.f(9), p.f(10), n, H, N);
        }));
  }
  cs.push_back(op_case("l2norm_heads_forward", {act, heads, act}, [=](auto& be, const auto& p) {
    be.l2norm_heads_forward(p.a(0), p.f(1), p.a(2), n, H, N, eps);
  }));
  cs.push_back(op_case(
      "l2norm_heads_backward", {act, act, act, pos_heads, act}, [=](auto& be, const auto& p) {
        be.l2norm_heads_backward(p.a(0), p.a(1), p.a(2), p.f(3), p.a(4), n, H, N, eps);
      }));

  const BufSpec wide{BufKind::act, n * C, -3, 3};
  for (const auto& [kind, name] :
       std::array<std::pair<Act, const char*>, 6>{{{Act::sigmoid, "sigmoid"},
                                                   {Act::silu, "silu"},
                                                   {Act::tanh, "tanh"},
                                                   {Act::relu, "relu"},
                                                   {Act::relu_sq, "relu_sq"},
                                                   {Act::exp, "exp"}}}) {
    const Act k = kind;
    cs.push_back(
        op_case(std::string("act_forward ") + name, {act, wide},
                [=](auto& be, const auto& p) { be.act_forward(k, p.a(0), p.a(1), n * C); }));
    cs.push_back(op_case(
        std::string("act_backward ") + name, {act, act, wide},
        [=](auto& be, const auto& p) { be.act_backward(k, p.a(0), p.a(1), p.a(2), n * C); }));
  }
  cs.push_back(op_case("mul_forward", {act, act, act}, [=](auto& be, const auto& p) {
    be.mul_forward(p.a(0), p.a(1), p.a(2), n * C);
  }));
  cs.push_back(op_case("mul_backward", {act, act, act, act, act}, [=](auto& be, const auto& p) {
    be.mul_backward(p.a(0), p.a(1), p.a(2), p.a(3), p.a(4), n * C);
  }));
  cs.push_back(op_case("add_forward", {act, act, act}, [=](auto& be, const auto& p) {
    be.add_forward(p.a(0), p.a(1), p.a(2), n * C);
  }));
  cs.push_back(op_case("scale_channels_forward", {act, act, vec}, [=](auto& be, const auto& p) {
    be.scale_channels_forward(p.a(0), p.a(1), p.f(2), n, C);
  }));
  cs.push_back(
      op_case("scale_channels_backward", {act, vec, act, act, vec}, [=](auto& be, const auto& p) {
        be.scale_channels_backward(p.a(0), p.f(1), p.a(2), p.a(3), p.f(4), n, C);
      }));
  cs.push_back(op_case("bias_sigmoid_forward", {act, vec, wide}, [=](auto& be, const auto& p) {
    be.bias_sigmoid_forward(p.a(0), p.f(1), p.a(2), n, C);
  }));
  cs.push_back(op_case("bias_sigmoid_backward", {vec, act, act, {BufKind::act, n * C, 0, 1}},
                       [=](auto& be, const auto& p) {
                         be.bias_sigmoid_backward(p.f(0), p.a(1), p.a(2), p.a(3), n, C);
                       }));

  const BufSpec state{BufKind::f, B * C};
  cs.push_back(op_case("shift_diff_forward", {act, act, state}, [=](auto& be, const auto& p) {
    be.shift_diff_forward(p.a(0), p.a(1), p.f(2), B, T, C);
  }));
  cs.push_back(op_case("shift_diff_forward from zeros", {act, act}, [=](auto& be, const auto& p) {
    be.shift_diff_forward(p.a(0), p.a(1), nullptr, B, T, C);
  }));
  cs.push_back(op_case("shift_diff_backward", {act, state, act}, [=](auto& be, const auto& p) {
    be.shift_diff_backward(p.a(0), p.f(1), p.a(2), B, T, C);
  }));
  cs.push_back(op_case("shift_last", {state, act},
                       [=](auto& be, const auto& p) { be.shift_last(p.f(0), p.a(1), B, T, C); }));
  // Mix groups as the model makes them: RWKV-7's six plain mixes, RWKV-6's five with
  // their LoRA terms, a channel mix's two as 1 - coef (RWKV-4/5).
  struct Group {
    const char* name;
    int K;
    bool lora, one_minus;
  };
  for (const Group g : {Group{"mix v7", 6, false, false}, Group{"mix v6", 5, true, false},
                        Group{"mix 1 - coef", 2, false, true}}) {
    const int K = g.K, M = g.lora ? K : 0;
    const bool one_minus = g.one_minus;
    // forward: outs 0..K-1, x K, xx K+1, coefs K+2.., ms K+2+K..
    std::vector<BufSpec> fwd(size_t(K), act);
    fwd.insert(fwd.end(), {act, act});
    fwd.insert(fwd.end(), size_t(K), vec);
    fwd.insert(fwd.end(), size_t(M), act);
    cs.push_back(op_case(std::string(g.name) + " forward", fwd, [=](auto& be, const auto& p) {
      using A = std::remove_pointer_t<decltype(p.a(0))>;
      std::vector<A*> outs;
      std::vector<const float*> coefs;
      std::vector<const A*> ms;
      for (int k = 0; k < K; ++k) outs.push_back(p.a(k));
      for (int k = 0; k < K; ++k) coefs.push_back(p.f(K + 2 + k));
      for (int k = 0; k < M; ++k) ms.push_back(p.a(2 * K + 2 + k));
      be.mix_forward(outs, p.a(K), p.a(K + 1), coefs, ms, one_minus, n, C);
    }));
    // backward: dx 0, dxx 1, dcoefs 2.., dms 2+K.., douts 2+K+M.., xx, coefs, ms
    std::vector<BufSpec> bwd{act, act};
    bwd.insert(bwd.end(), size_t(K), vec);
    bwd.insert(bwd.end(), size_t(M), act);
    bwd.insert(bwd.end(), size_t(K), act);
    bwd.push_back(act);
    bwd.insert(bwd.end(), size_t(K), vec);
    bwd.insert(bwd.end(), size_t(M), act);
    cs.push_back(op_case(std::string(g.name) + " backward", bwd, [=](auto& be, const auto& p) {
      using A = std::remove_pointer_t<decltype(p.a(0))>;
      std::vector<float*> dcoefs;
      std::vector<A*> dms;
      std::vector<const A*> douts, ms;
      std::vector<const float*> coefs;
      const int xx = 2 + 2 * K + M;
      for (int k = 0; k < K; ++k) dcoefs.push_back(p.f(2 + k));
      for (int k = 0; k < M; ++k) dms.push_back(p.a(2 + K + k));
      for (int k = 0; k < K; ++k) douts.push_back(p.a(2 + K + M + k));
      for (int k = 0; k < K; ++k) coefs.push_back(p.f(xx + 1 + k));
      for (int k = 0; k < M; ++k) ms.push_back(p.a(xx + 1 + K + k));
      be.mix_backward(p.a(0), p.a(1), dcoefs, dms, douts, p.a(xx), coefs, ms, one_minus, n, C);
    }));
  }

  const BufSpec lw{BufKind::act, n * C, -3, -0.01};
  cs.push_back(op_case("decay_v4_forward", {vec, vec},
                       [=](auto& be, const auto& p) { be.decay_v4_forward(p.f(0), p.f(1), C); }));
  cs.push_back(op_case("decay_v4_backward", {vec, vec, vec}, [=](auto& be, const auto& p) {
    be.decay_v4_backward(p.f(0), p.f(1), p.f(2), C);
  }));
  cs.push_back(op_case("decay_v6_forward", {act, vec, act}, [=](auto& be, const auto& p) {
    be.decay_v6_forward(p.a(0), p.f(1), p.a(2), n, C);
  }));
  cs.push_back(op_case("decay_v6_forward without LoRA", {act, vec}, [=](auto& be, const auto& p) {
    be.decay_v6_forward(p.a(0), p.f(1), nullptr, n, C);
  }));
  cs.push_back(op_case("decay_v6_backward", {vec, act, act, lw}, [=](auto& be, const auto& p) {
    be.decay_v6_backward(p.f(0), p.a(1), p.a(2), p.a(3), n, C);
  }));
  cs.push_back(op_case("decay_v7_forward", {act, vec, wide}, [=](auto& be, const auto& p) {
    be.decay_v7_forward(p.a(0), p.f(1), p.a(2), n, C);
  }));
  cs.push_back(
      op_case("decay_v7_backward", {vec, act, act, vec, wide}, [=](auto& be, const auto& p) {
        be.decay_v7_backward(p.f(0), p.a(1), p.a(2), p.f(3), p.a(4), n, C);
      }));
  const BufSpec gate{BufKind::act, n * C, 0, 1};
  cs.push_back(
      op_case("value_residual_forward", {act, act, act, gate}, [=](auto& be, const auto& p) {
        be.value_residual_forward(p.a(0), p.a(1), p.a(2), p.a(3), n * C);
      }));
  cs.push_back(op_case("value_residual_backward", {act, act, act, act, act, act, gate},
                       [=](auto& be, const auto& p) {
                         be.value_residual_backward(p.a(0), p.a(1), p.a(2), p.a(3), p.a(4), p.a(5),
                                                    p.a(6), n * C);
                       }));
  cs.push_back(op_case("key_adjust_forward", {act, act, gate, vec}, [=](auto& be, const auto& p) {
    be.key_adjust_forward(p.a(0), p.a(1), p.a(2), p.f(3), n, C);
  }));
  cs.push_back(op_case(
      "key_adjust_backward", {act, act, vec, act, act, gate, vec}, [=](auto& be, const auto& p) {
        be.key_adjust_backward(p.a(0), p.a(1), p.f(2), p.a(3), p.a(4), p.a(5), p.f(6), n, C);
      }));
  cs.push_back(op_case("wkv7_ab_forward", {act, act, act, gate}, [=](auto& be, const auto& p) {
    be.wkv7_ab_forward(p.a(0), p.a(1), p.a(2), p.a(3), n * C);
  }));
  cs.push_back(
      op_case("wkv7_ab_backward", {act, act, act, act, act, gate}, [=](auto& be, const auto& p) {
        be.wkv7_ab_backward(p.a(0), p.a(1), p.a(2), p.a(3), p.a(4), p.a(5), n * C);
      }));
  for (const bool gated : {false, true}) {
    const std::string g = gated ? " gated" : "";
    cs.push_back(op_case("bonus_v7_forward" + g, {act, act, act, act, vec, act},
                         [=](auto& be, const auto& p) {
                           be.bonus_v7_forward(p.a(0), p.a(1), p.a(2), p.a(3), p.f(4),
                                               gated ? p.a(5) : nullptr, n, H, N);
                         }));
    cs.push_back(op_case(
        "bonus_v7_backward" + g, {act, act, act, vec, act, act, act, act, act, vec, act},
        [=](auto& be, const auto& p) {
          be.bonus_v7_backward(p.a(0), p.a(1), p.a(2), p.f(3), gated ? p.a(4) : nullptr, p.a(5),
                               p.a(6), p.a(7), p.a(8), p.f(9), gated ? p.a(10) : nullptr, n, H, N);
        }));
  }

  // The vocab-parallel cross-entropy of one slab as the model chains it: the row maxima
  // and their columns, the sums, the losses, the gradient with L2Wrap (at the argmax),
  // written to its own buffer or over the logits.
  for (const bool in_place : {false, true}) {
    cs.push_back(op_case(in_place ? "cross_entropy over the logits" : "cross_entropy",
                         {{BufKind::act, n * Vl, -4, 4},
                          {BufKind::act, n * Vl},
                          tokens,
                          rows,
                          {BufKind::ids, n, 0, 1},
                          rows,
                          rows,
                          rows},
                         [=](auto& be, const auto& p) {
                           const auto* logits = p.a(0);
                           auto* dlogits = in_place ? p.a(0) : p.a(1);
                           be.ce_local_max(p.f(3), p.id(4), logits, n, Vl, v0);
                           be.ce_local_sums(p.f(5), p.f(6), logits, p.id(2), p.f(3), n, Vl, v0);
                           be.ce_loss(p.f(7), p.f(3), p.f(5), p.f(6), n);
                           be.ce_backward(dlogits, logits, p.id(2), p.f(3), p.f(5), p.id(4), n, Vl,
                                          v0, 1.0f / float(n), 1e-4f / float(n));
                         }));
  }
  return cs;
}

}  // namespace rwkv::kernels::test
