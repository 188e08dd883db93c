// WKV kernels on the CPU, fp32: forward and backward, naive and chunked, for RWKV-4
// (naive only), RWKV-5/6 and RWKV-7. Shape B = 4, T = 1024, C = 512 (8 heads of 64).
// The chunked forms take the chunk length as the benchmark argument; WKV7 also whether
// the forward keeps checkpoints for the backward (ckpt 1: what CpuBackend does; the
// backward then reads them, after one forward outside the timing) or the backward
// recomputes the states.
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cpu/wkv4.h"
#include "kernels/cpu/wkv6.h"
#include "kernels/cpu/wkv7.h"

namespace rk = rwkv::kernels;

namespace {

constexpr int B = 4, T = 1024, C = 512, N = 64, H = C / N;

// Inputs in the ranges the models produce; every tensor [B, T, C] unless noted.
struct Data {
  std::vector<float> r, k, v, lw, a, b, dy, u, w4;  // u [H, N] = [C]; w4 [C]
  std::vector<float> out[6];
  Data() {
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> d(-1, 1), dl(-std::exp(-0.5f), -1e-3f);
    const size_t sz = size_t(B) * T * C;
    for (auto* x : {&r, &k, &v, &dy}) {
      x->resize(sz);
      for (auto& e : *x) e = d(rng);
    }
    lw.resize(sz);
    for (auto& e : lw) e = dl(rng);
    u.resize(C);
    w4.resize(C);
    for (auto& e : u) e = d(rng);
    for (auto& e : w4) e = 0.5f + 0.5f * d(rng);
    // v7: a = -kk, b = kk * sigmoid(x), kk = k L2-normalised per head.
    a.resize(sz);
    b.resize(sz);
    for (size_t o = 0; o < sz; o += N) {
      float norm = 0;
      for (int j = 0; j < N; ++j) norm += k[o + j] * k[o + j];
      norm = std::sqrt(norm);
      for (int j = 0; j < N; ++j) {
        a[o + j] = -k[o + j] / norm;
        b[o + j] = k[o + j] / norm / (1 + std::exp(-d(rng)));
      }
    }
    for (auto& o : out) o.resize(sz);
  }
};

Data& data() {
  static Data d;
  return d;
}

// The argument "chunk": 0 = naive, then chunk lengths 8, 16, 32, 64.
void chunk_args(benchmark::internal::Benchmark* b) {
  b->ArgName("chunk")->Arg(0)->RangeMultiplier(2)->Range(8, 64)->Unit(benchmark::kMillisecond);
}

// The same and "ckpt" 0 or 1 (WKV7).
void chunk_ckpt_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"chunk", "ckpt"})->Args({0, 0});
  for (int chunk = 8; chunk <= 64; chunk *= 2) b->Args({chunk, 0})->Args({chunk, 1});
  b->Unit(benchmark::kMillisecond);
}

void set_tokens(benchmark::State& state) { state.SetItemsProcessed(state.iterations() * B * T); }

void BM_wkv4_forward_naive(benchmark::State& state) {
  Data& d = data();
  for (auto _ : state)
    rk::wkv4_forward_naive(B, T, C, 0, C, d.w4.data(), d.u.data(), d.k.data(), d.v.data(),
                           d.out[0].data(), nullptr, nullptr);
  set_tokens(state);
}

void BM_wkv4_backward_naive(benchmark::State& state) {
  Data& d = data();
  for (auto _ : state)
    rk::wkv4_backward_naive(B, T, C, 0, C, d.w4.data(), d.u.data(), d.k.data(), d.v.data(),
                            d.dy.data(), d.out[4].data(), d.out[5].data(), d.out[0].data(),
                            d.out[1].data());
  set_tokens(state);
}

void BM_wkv6_forward(benchmark::State& state) {
  Data& d = data();
  const int chunk = int(state.range(0));
  for (auto _ : state) {
    if (chunk == 0) {
      rk::wkv6_forward_naive(B, T, H, N, 0, H, d.r.data(), d.k.data(), d.v.data(), d.lw.data(),
                             d.u.data(), d.out[0].data(), nullptr, nullptr);
    } else {
      rk::wkv6_forward_chunked(B, T, H, N, 0, H, d.r.data(), d.k.data(), d.v.data(), d.lw.data(),
                               d.u.data(), d.out[0].data(), nullptr, nullptr, chunk);
    }
  }
  set_tokens(state);
}

void BM_wkv6_backward(benchmark::State& state) {
  Data& d = data();
  const int chunk = int(state.range(0));
  for (auto _ : state) {
    if (chunk == 0) {
      rk::wkv6_backward_naive(B, T, H, N, 0, H, d.r.data(), d.k.data(), d.v.data(), d.lw.data(),
                              d.u.data(), d.dy.data(), d.out[0].data(), d.out[1].data(),
                              d.out[2].data(), d.out[3].data(), d.out[4].data());
    } else {
      rk::wkv6_backward_chunked(B, T, H, N, 0, H, d.r.data(), d.k.data(), d.v.data(), d.lw.data(),
                                d.u.data(), d.dy.data(), d.out[0].data(), d.out[1].data(),
                                d.out[2].data(), d.out[3].data(), d.out[4].data(), chunk);
    }
  }
  set_tokens(state);
}

void BM_wkv7_forward(benchmark::State& state) {
  Data& d = data();
  const int chunk = int(state.range(0));
  std::vector<float> ckpt(state.range(1) ? rk::wkv7_checkpoint_floats(B, T, H, N, chunk) : 0);
  float* cp = ckpt.empty() ? nullptr : ckpt.data();
  for (auto _ : state) {
    if (chunk == 0) {
      rk::wkv7_forward_naive(B, T, H, N, 0, H, d.r.data(), d.lw.data(), d.k.data(), d.v.data(),
                             d.a.data(), d.b.data(), d.out[0].data(), nullptr, nullptr);
    } else {
      rk::wkv7_forward_chunked(B, T, H, N, 0, H, d.r.data(), d.lw.data(), d.k.data(), d.v.data(),
                               d.a.data(), d.b.data(), d.out[0].data(), nullptr, nullptr, chunk,
                               cp);
    }
  }
  set_tokens(state);
}

void BM_wkv7_backward(benchmark::State& state) {
  Data& d = data();
  const int chunk = int(state.range(0));
  std::vector<float> ckpt(state.range(1) ? rk::wkv7_checkpoint_floats(B, T, H, N, chunk) : 0);
  float* cp = ckpt.empty() ? nullptr : ckpt.data();
  if (cp)
    rk::wkv7_forward_chunked(B, T, H, N, 0, H, d.r.data(), d.lw.data(), d.k.data(), d.v.data(),
                             d.a.data(), d.b.data(), d.out[0].data(), nullptr, nullptr, chunk, cp);
  for (auto _ : state) {
    if (chunk == 0) {
      rk::wkv7_backward_naive(B, T, H, N, 0, H, d.r.data(), d.lw.data(), d.k.data(), d.v.data(),
                              d.a.data(), d.b.data(), d.dy.data(), d.out[0].data(), d.out[1].data(),
                              d.out[2].data(), d.out[3].data(), d.out[4].data(), d.out[5].data());
    } else {
      rk::wkv7_backward_chunked(B, T, H, N, 0, H, d.r.data(), d.lw.data(), d.k.data(), d.v.data(),
                                d.a.data(), d.b.data(), d.dy.data(), d.out[0].data(),
                                d.out[1].data(), d.out[2].data(), d.out[3].data(), d.out[4].data(),
                                d.out[5].data(), chunk, cp);
    }
  }
  set_tokens(state);
}

}  // namespace

BENCHMARK(BM_wkv4_forward_naive)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_wkv4_backward_naive)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_wkv6_forward)->Apply(chunk_args);
BENCHMARK(BM_wkv6_backward)->Apply(chunk_args);
BENCHMARK(BM_wkv7_forward)->Apply(chunk_ckpt_args);
BENCHMARK(BM_wkv7_backward)->Apply(chunk_ckpt_args);
