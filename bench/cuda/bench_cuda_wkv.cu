// Speed of the CUDA WKV kernels (kernels/cuda/wkv{4,6,7}.h) at the shape the
// published numbers use: B = 8, T = 4096, C = 4096 (64 heads of 64 for v6 and v7).
// Each kernel: 2 warm-up calls, then the median of 20 calls timed with CUDA events.
// Printed per kernel: forward and backward milliseconds and the bandwidth achieved
// against the minimum traffic: every per-token input read once and every per-token
// output written once, in fp32 (checkpoints, scratch, per-channel parameters and the
// state not counted). Published for comparison (H100, bf16): RWKV-LM's WKV6 kernel
// 9.7 ms forward + 46.4 ms backward, flash-linear-attention's chunked WKV6 13.1 + 40.8
// ms, RWKV-LM's WKV7 about 17 ms forward + backward.
// WKV6 and WKV7 also in chunked form (wkv{6,7}_forward_chunked, wkv{6,7}_backward_chunked),
// next to the sequential kernels at the same shapes; and every kernel (WKV6/7 of both
// forms) again with bf16 per-token tensors (their bf16 launchers: the form the published
// figures are for), on the same values rounded to bf16, next to the fp32 ones.
// Command-line arguments are ignored (scripts/gpu_check.sh passes Google Benchmark flags
// to every bench_* executable). With RWKV_BENCH_ONCE=1 in the environment every kernel
// is called once and nothing is timed or printed but a line: the run scripts/gpu_check.sh
// profiles with Nsight Compute for the time of each chunked kernel's stages
// (bench/cuda/ncu_kernel_times.py).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "bench/cuda/bench_util.cuh"
#include "kernels/cuda/convert.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/wkv4.h"
#include "kernels/cuda/wkv6.h"
#include "kernels/cuda/wkv7.h"

namespace {

using bench::Dev;
using DevBf16 = bench::DevOf<__nv_bfloat16>;
using bench::fill;
using bench::hash_uniform;

constexpr int kB = 8, kT = 4096, kC = 4096, kN = 64, kH = kC / kN;
constexpr int kWarmup = 2, kReps = 20;
bool g_once = false;  // RWKV_BENCH_ONCE: one call each, no timing, no report

// The model's RWKV-7 a, b: a = -kk, b = kk * sigmoid(x), kk L2-normalised per head of N.
// a holds the raw kk on entry; one thread per head row.
__global__ void make_v7_ab(float* a, float* b, size_t rows, int N, uint32_t seed) {
  const size_t row = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (row >= rows) return;
  float* ar = a + row * N;
  float* br = b + row * N;
  float norm = 0.f;
  for (int j = 0; j < N; ++j) norm += ar[j] * ar[j];
  norm = sqrtf(norm) + 1e-12f;
  for (int j = 0; j < N; ++j) {
    const float kk = ar[j] / norm;
    const float x = hash_uniform(seed, row * N + j, -3.f, 3.f);
    ar[j] = -kk;
    br[j] = kk / (1.f + expf(-x));
  }
}

// dst [n] = src [n] rounded to bf16.
void round_to(__nv_bfloat16* dst, const float* src, size_t n) {
  rwkv::cuda::to_bf16(dst, src, 1, int64_t(n), int64_t(n), nullptr);
}

// The line of a bf16 kernel (name: "wkv6", "wkv7 chunked", ...) against its fp32 twin.
void report_bf16(const char* name, const char* shape, double fwd_ms, double fwd32_ms, double bwd_ms,
                 double bwd32_ms) {
  if (g_once) return;
  std::printf(
      "%s bf16 %s: forward %8.3f ms (fp32 %.3f: %.2fx), backward %8.3f ms (fp32 %.3f: "
      "%.2fx)\n",
      name, shape, fwd_ms, fwd32_ms, fwd32_ms / fwd_ms, bwd_ms, bwd32_ms, bwd32_ms / bwd_ms);
  std::fflush(stdout);
}

// Median milliseconds of kReps calls of f after kWarmup, each timed with events (one
// untimed call, 0 ms, with g_once).
double time_ms(const std::function<void()>& f) {
  if (g_once) {
    f();
    CUDA_CHECK(cudaDeviceSynchronize());
    return 0;
  }
  return bench::median_ms(f, kWarmup, kReps);
}

// n_in per-token tensors read and n_out written, [B, T, C] fp32 each (elems elements;
// the published shape's when 0).
void report(const char* name, const char* shape, double fwd_ms, int fwd_in, int fwd_out,
            double bwd_ms, int bwd_in, int bwd_out, double elems = 0) {
  if (g_once) return;
  const double tensor = (elems > 0 ? elems : double(kB) * kT * kC) * sizeof(float);
  const double fwd_bytes = tensor * (fwd_in + fwd_out), bwd_bytes = tensor * (bwd_in + bwd_out);
  std::printf(
      "%s fp32 %s: forward %8.3f ms (%6.1f GB/s of %.2f GB min), backward %8.3f ms (%6.1f GB/s "
      "of %.2f GB min)\n",
      name, shape, fwd_ms, fwd_bytes / fwd_ms * 1e-6, fwd_bytes * 1e-9, bwd_ms,
      bwd_bytes / bwd_ms * 1e-6, bwd_bytes * 1e-9);
  std::fflush(stdout);
}

void run() {
  const size_t n = size_t(kB) * kT * kC;
  // Per-token tensors: 7 inputs (v7's r, lw, k, v, a, b, dy), the output and 6 gradients.
  const Dev pool(14 * n);
  float* t[14];
  for (int i = 0; i < 14; ++i) t[i] = pool.p + i * n;
  float *r = t[0], *lw = t[1], *k = t[2], *v = t[3], *a = t[4], *b = t[5], *dy = t[6], *y = t[7];
  float *g1 = t[8], *g2 = t[9], *g3 = t[10], *g4 = t[11], *g5 = t[12], *g6 = t[13];
  // The same 14 as bf16, for the bf16 chunked kernels.
  const DevBf16 hpool(14 * n);
  __nv_bfloat16* h[14];
  for (int i = 0; i < 14; ++i) h[i] = hpool.p + i * n;
  __nv_bfloat16 *hr = h[0], *hlw = h[1], *hk = h[2], *hv = h[3], *ha = h[4], *hb = h[5],
                *hdy = h[6], *hy = h[7];
  const Dev w4(kC), u4(kC), dw4(kC), du4(kC), u6(kC), du6(kC);
  fill(r, n, 1, -1.f, 1.f);
  fill(k, n, 2, -1.f, 1.f);
  fill(v, n, 3, -1.f, 1.f);
  fill(dy, n, 4, -1.f, 1.f);
  fill(w4.p, kC, 5, 0.05f, 2.f);
  fill(u4.p, kC, 6, -1.f, 1.f);
  fill(u6.p, kC, 7, -1.f, 1.f);
  CUDA_CHECK(cudaDeviceSynchronize());
  const char* shape = "B=8 T=4096 C=4096 H=64 N=64";

  {  // WKV4: forward reads k, v, writes y; backward reads k, v, dy, writes dk, dv.
    const Dev ws(rwkv::cuda::wkv4_workspace_bytes(kB, kT, kC) / sizeof(float));
    const double f = time_ms([&] {
      rwkv::cuda::wkv4_forward(kB, kT, kC, 0, kC, w4.p, u4.p, k, v, y, nullptr, nullptr, nullptr);
    });
    const double g = time_ms([&] {
      rwkv::cuda::wkv4_backward(kB, kT, kC, 0, kC, w4.p, u4.p, k, v, dy, dw4.p, du4.p, g1, g2, ws.p,
                                nullptr);
    });
    report("wkv4", "B=8 T=4096 C=4096          ", f, 2, 1, g, 3, 2);
    for (const auto& [dst, src] : {std::pair{hk, k}, {hv, v}, {hdy, dy}}) round_to(dst, src, n);
    const double fs = time_ms([&] {
      rwkv::cuda::wkv4_forward(kB, kT, kC, 0, kC, w4.p, u4.p, hk, hv, hy, nullptr, nullptr,
                               nullptr);
    });
    const double gs = time_ms([&] {
      rwkv::cuda::wkv4_backward(kB, kT, kC, 0, kC, w4.p, u4.p, hk, hv, hdy, dw4.p, du4.p, h[8],
                                h[9], ws.p, nullptr);
    });
    report_bf16("wkv4", "B=8 T=4096 C=4096", fs, f, gs, g);
  }
  {  // WKV6: forward reads r, k, v, lw, writes y; backward reads those and dy, writes 4.
    fill(lw, n, 8, -1.f, -1e-3f);
    const Dev ws(rwkv::cuda::wkv6_workspace_bytes(kB, kT, kH, kN) / sizeof(float));
    const double f = time_ms([&] {
      rwkv::cuda::wkv6_forward(kB, kT, kH, kN, 0, kH, r, k, v, lw, u6.p, y, nullptr, nullptr, ws.p,
                               nullptr);
    });
    const double g = time_ms([&] {
      rwkv::cuda::wkv6_backward(kB, kT, kH, kN, 0, kH, r, k, v, lw, u6.p, dy, g1, g2, g3, g4, du6.p,
                                ws.p, nullptr);
    });
    report("wkv6", shape, f, 4, 1, g, 5, 4);
    for (const auto& [dst, src] : {std::pair{hr, r}, {hk, k}, {hv, v}, {hlw, lw}, {hdy, dy}})
      round_to(dst, src, n);
    const double fs = time_ms([&] {
      rwkv::cuda::wkv6_forward(kB, kT, kH, kN, 0, kH, hr, hk, hv, hlw, u6.p, hy, nullptr, nullptr,
                               ws.p, nullptr);
    });
    const double gs = time_ms([&] {
      rwkv::cuda::wkv6_backward(kB, kT, kH, kN, 0, kH, hr, hk, hv, hlw, u6.p, hdy, h[8], h[9],
                                h[10], h[11], du6.p, ws.p, nullptr);
    });
    report_bf16("wkv6", shape, fs, f, gs, g);
    // The chunked forms, each (b, h)'s scan as 1 or 8 blocks of value channels.
    const Dev scratch(rwkv::cuda::wkv6_chunked_scratch_bytes(kB, kT, kH, kH, kN) / sizeof(float));
    for (const int splits : {1, 8}) {
      const double fc = time_ms([&] {
        rwkv::cuda::wkv6_forward_chunked(kB, kT, kH, kN, 0, kH, r, k, v, lw, u6.p, y, nullptr,
                                         nullptr, ws.p, scratch.p, splits, nullptr);
      });
      const double gc = time_ms([&] {
        rwkv::cuda::wkv6_backward_chunked(kB, kT, kH, kN, 0, kH, r, k, v, lw, u6.p, dy, g1, g2, g3,
                                          g4, du6.p, ws.p, scratch.p, splits, nullptr);
      });
      if (!g_once)
        std::printf(
            "wkv6 chunked fp32 %s splits %d: forward %8.3f ms (sequential %.3f: %.2fx), backward "
            "%8.3f ms (sequential %.3f: %.2fx)\n",
            shape, splits, fc, f, f / fc, gc, g, g / gc);
      std::fflush(stdout);
      const double fb = time_ms([&] {
        rwkv::cuda::wkv6_forward_chunked(kB, kT, kH, kN, 0, kH, hr, hk, hv, hlw, u6.p, hy, nullptr,
                                         nullptr, ws.p, scratch.p, splits, nullptr);
      });
      const double gb = time_ms([&] {
        rwkv::cuda::wkv6_backward_chunked(kB, kT, kH, kN, 0, kH, hr, hk, hv, hlw, u6.p, hdy, h[8],
                                          h[9], h[10], h[11], du6.p, ws.p, scratch.p, splits,
                                          nullptr);
      });
      char label[96];
      std::snprintf(label, sizeof label, "%s splits %d", shape, splits);
      report_bf16("wkv6 chunked", label, fb, fc, gb, gc);
    }
  }
  // WKV7: forward reads r, lw, k, v, a, b, writes y; backward reads those and dy, writes 6.
  // Each (b, h) as 1, 2, 4 or 8 blocks of rows (the backend takes wkv7_default_splits), at
  // the published shape and at one layer of the rwkv7-0.4b preset at batch 2 (C = 1024:
  // 32 (b, h) pairs, the shape of bench_cuda_train's 0.4B run).
  for (const auto& [B, C] : {std::pair{kB, kC}, std::pair{2, 1024}}) {
    const int H = C / kN;
    const size_t m = size_t(B) * kT * C;
    fill(lw, m, 9, -std::exp(-0.5f), -1e-3f);
    fill(a, m, 10, -1.f, 1.f);
    make_v7_ab<<<(m / kN + 255) / 256, 256>>>(a, b, m / kN, kN, 11);
    CUDA_CHECK_LAUNCH();
    const Dev ws(rwkv::cuda::wkv7_workspace_bytes(B, kT, H, kN) / sizeof(float));
    const Dev prep(rwkv::cuda::wkv7_chunked_scratch_bytes(B, kT, H, kN) / sizeof(float));
    const Dev bscratch(rwkv::cuda::wkv7_chunked_backward_scratch_bytes(B, kT, H, H, kN) /
                       sizeof(float));
    for (const int splits : {1, 2, 4, 8}) {
      const size_t scratch_bytes = rwkv::cuda::wkv7_backward_scratch_bytes(B, kT, H, kN, splits);
      const Dev scratch(std::max<size_t>(scratch_bytes / sizeof(float), 1));
      const double f = time_ms([&] {
        rwkv::cuda::wkv7_forward(B, kT, H, kN, 0, H, r, lw, k, v, a, b, y, nullptr, nullptr, ws.p,
                                 splits, nullptr);
      });
      const double g = time_ms([&] {
        rwkv::cuda::wkv7_backward(B, kT, H, kN, 0, H, r, lw, k, v, a, b, dy, g1, g2, g3, g4, g5, g6,
                                  ws.p, scratch.p, splits, nullptr);
      });
      char label[96];
      std::snprintf(label, sizeof label, "B=%d T=%d C=%d H=%d N=%d splits %d%s", B, kT, C, H, kN,
                    splits,
                    splits == rwkv::cuda::wkv7_default_splits(B, H, kN) ? " (default)" : "");
      report("wkv7", label, f, 6, 1, g, 7, 6, double(m));
      const double fc = time_ms([&] {
        rwkv::cuda::wkv7_forward_chunked(B, kT, H, kN, 0, H, r, lw, k, v, a, b, y, nullptr, nullptr,
                                         ws.p, prep.p, splits, nullptr);
      });
      const double gc = time_ms([&] {
        rwkv::cuda::wkv7_backward_chunked(B, kT, H, kN, 0, H, r, lw, k, v, a, b, dy, g1, g2, g3, g4,
                                          g5, g6, ws.p, bscratch.p, splits, nullptr);
      });
      if (!g_once)
        std::printf(
            "wkv7 chunked fp32 %s: forward %8.3f ms (sequential %.3f: %.2fx), backward %8.3f ms "
            "(sequential %.3f: %.2fx)\n",
            label, fc, f, f / fc, gc, g, g / gc);
      std::fflush(stdout);
      if (splits != rwkv::cuda::wkv7_default_splits(B, H, kN)) continue;
      for (const auto& [dst, src] :
           {std::pair{hr, r}, {hlw, lw}, {hk, k}, {hv, v}, {ha, a}, {hb, b}, {hdy, dy}})
        round_to(dst, src, m);
      const double fs = time_ms([&] {
        rwkv::cuda::wkv7_forward(B, kT, H, kN, 0, H, hr, hlw, hk, hv, ha, hb, hy, nullptr, nullptr,
                                 ws.p, splits, nullptr);
      });
      const double gs = time_ms([&] {
        rwkv::cuda::wkv7_backward(B, kT, H, kN, 0, H, hr, hlw, hk, hv, ha, hb, hdy, h[8], h[9],
                                  h[10], h[11], h[12], h[13], ws.p, scratch.p, splits, nullptr);
      });
      report_bf16("wkv7", label, fs, f, gs, g);
      const double fb = time_ms([&] {
        rwkv::cuda::wkv7_forward_chunked(B, kT, H, kN, 0, H, hr, hlw, hk, hv, ha, hb, hy, nullptr,
                                         nullptr, ws.p, prep.p, splits, nullptr);
      });
      const double gb = time_ms([&] {
        rwkv::cuda::wkv7_backward_chunked(B, kT, H, kN, 0, H, hr, hlw, hk, hv, ha, hb, hdy, h[8],
                                          h[9], h[10], h[11], h[12], h[13], ws.p, bscratch.p,
                                          splits, nullptr);
      });
      report_bf16("wkv7 chunked", label, fb, fc, gb, gc);
    }
  }
}

}  // namespace

int main() {
  return bench::main_on_gpu("bench_cuda_wkv", [](const rwkv::cuda::DeviceInfo& info) {
    const char* once = std::getenv("RWKV_BENCH_ONCE");
    g_once = once && std::string(once) == "1";
    if (g_once)
      std::printf("bench_cuda_wkv on %s: one call of each kernel, untimed (RWKV_BENCH_ONCE=1)\n",
                  info.name.c_str());
    else
      std::printf("bench_cuda_wkv on %s (%d SMs), %d warm-up + median of %d calls\n",
                  info.name.c_str(), info.sm_count, kWarmup, kReps);
    run();
  });
}
