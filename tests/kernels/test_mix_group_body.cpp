// The CUDA mix-group ops (kernels/cuda/mix_group_ops.h) and the per-channel sum body of
// the pointwise kernels (kernels/cuda/channel_sum_body.h), run on the CPU: the body
// under the block emulator (tests/kernels/block_emulator.h: 1024 std::threads per
// block, shared memory NaN-filled), the ops once per element as channels_kernel calls
// them. Against the CPU kernels (kernels/cpu/token_shift.h) on fresh random inputs:
// relative L2 <= 1e-5 for every output and gradient (the sums add in another order),
// gradients pre-filled with random values (+= checked); a null sum's output untouched.
// The GPU runs the same code (test_cuda_token_shift.cu checks it there).
#include <gtest/gtest.h>

#include <deque>
#include <random>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/cpu/token_shift.h"
#include "kernels/cuda/bf16.h"
#include "kernels/cuda/channel_sum_body.h"
#include "kernels/cuda/mix_group_ops.h"
#include "tests/kernels/bf16_test_util.h"
#include "tests/kernels/block_emulator.h"
#include "tests/kernels/wkv_test_util.h"

namespace rwkv::cuda {
namespace {

using pointwise::ChannelSumShared;
using pointwise::kColWidth;
using pointwise::kSumThreads;
using pointwise::SumOutputs;
using Vec = std::vector<float>;

Vec uniform(size_t n, float lo, float hi, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(lo, hi);
  Vec v(n);
  for (float& x : v) x = u(rng);
  return v;
}

void expect_close(const std::string& what, const Vec& got, const Vec& want) {
  const double err = kernels::test::rel_err(got, want);
  EXPECT_LE(err, 1e-5) << what;  // also fails on NaN
}

// channels_kernel: op(o, o % C) for every element.
template <typename Op>
void run_channels(const Op& op, int64_t n, int64_t C) {
  for (int64_t o = 0; o < n * C; ++o) op(o, o % C);
}

// channel_sum_kernel's grid of ceil(C / kColWidth) blocks of kSumThreads threads.
template <int K, typename Op>
void run_channel_sums(const Op& op, int64_t n, int64_t C, SumOutputs<K> sums) {
  const int blocks = int((C + kColWidth - 1) / kColWidth);
  test::run_grid<ChannelSumShared<K>>(
      blocks, kSumThreads, [&](const test::HostBlock& blk, int block, ChannelSumShared<K>& sh) {
        pointwise::channel_sum_body<K>(blk, block, op, n, C, sums, sh);
      });
}

// An op whose K terms are known: term k of element (i, c) is (k + 1) * v[i, c]; it also
// counts its calls per element (each must run once).
struct TermsOp {
  const float* v;
  int* calls;
  pointwise::Sums<3> operator()(int64_t o, int64_t) const {
    ++calls[o];
    return {{v[o], 2 * v[o], 3 * v[o]}};
  }
};

// More rows than row lanes (the strided loop), fewer (idle lanes), C not a multiple of
// the block's channels; the middle sum null.
TEST(ChannelSumBody, SumsEachTermOverTheRows) {
  std::mt19937 rng(1);
  for (int64_t n : {1, 100, 300})
    for (int64_t C : {3, 8, 21}) {
      const Vec v = uniform(size_t(n * C), -1, 1, rng);
      std::vector<int> calls(size_t(n * C), 0);
      Vec s0 = uniform(size_t(C), -1, 1, rng), s2 = uniform(size_t(C), -1, 1, rng);
      const Vec s0_start = s0, s2_start = s2;
      run_channel_sums<3>(TermsOp{v.data(), calls.data()}, n, C, {{s0.data(), nullptr, s2.data()}});
      Vec want0 = s0_start, want2 = s2_start;
      for (int64_t c = 0; c < C; ++c) {
        double col = 0;
        for (int64_t i = 0; i < n; ++i) col += v[size_t(i * C + c)];
        want0[size_t(c)] += float(col);
        want2[size_t(c)] += float(3 * col);
      }
      const std::string what = "n " + std::to_string(n) + " C " + std::to_string(C);
      expect_close(what + " sum 0", s0, want0);
      expect_close(what + " sum 2", s2, want2);
      for (int count : calls) ASSERT_EQ(count, 1) << what << ": an element not run exactly once";
    }
}

// The pointers of a list of tensors, entry `null` (when in range) null.
template <typename T, typename List>
std::vector<T*> pointers(List& list, size_t null = size_t(-1)) {
  std::vector<T*> p;
  for (auto& t : list) p.push_back(p.size() == null ? nullptr : t.data());
  return p;
}

// token_shift.cu's mix_forward / mix_backward with the kernels emulated, against the
// CPU's kernels: K = 1, 2, 6, both coefficient forms, with and without the LoRA terms,
// gradient subsets {}, {dx, dxx}, {dcoefs (mix 1's null)}, {dms} and all four (the GPU
// test takes every subset).
TEST(MixGroupOps, MatchCpuKernels) {
  std::mt19937 rng(2);
  const int64_t n = 150, C = 21, nC = n * C;
  for (int K : {1, 2, 6})
    for (bool one_minus : {false, true})
      for (bool with_m : {false, true}) {
        const std::string tag =
            "K " + std::to_string(K) + (one_minus ? " 1-c" : " c") + (with_m ? " with m" : "");
        const Vec x = uniform(nC, -1, 1, rng), xx = uniform(nC, -1, 1, rng);
        std::deque<Vec> c, m, dout, out_gpu, out_cpu;
        for (int k = 0; k < K; ++k) {
          c.push_back(uniform(C, 0, 1, rng));
          m.push_back(uniform(nC, -0.5, 0.5, rng));
          dout.push_back(uniform(nC, -1, 1, rng));
          out_gpu.emplace_back(nC, std::nanf(""));
          out_cpu.emplace_back(nC);
        }
        const std::vector<const float*> cs = pointers<const float>(c),
                                        ds = pointers<const float>(dout);
        const std::vector<const float*> ms =
            with_m ? pointers<const float>(m) : std::vector<const float*>{};
        const std::vector<float*> og = pointers<float>(out_gpu), oc = pointers<float>(out_cpu);
        run_channels(MixForward<float>{Group<float>(og), Group<const float>(cs),
                                       Group<const float>(ms), x.data(), xx.data(), K, one_minus},
                     n, C);
        kernels::mix_forward<float>(oc, x.data(), xx.data(), cs, ms, one_minus, n, C);
        for (int k = 0; k < K; ++k)
          expect_close(tag + " out " + std::to_string(k), out_gpu[k], out_cpu[k]);

        for (unsigned mask : {0u, 3u, 4u, 8u, 15u}) {
          const std::string what = tag + " gradient mask " + std::to_string(mask);
          Vec dx = uniform(nC, -1, 1, rng), dxx = uniform(nC, -1, 1, rng);
          std::deque<Vec> dc, dm;
          for (int k = 0; k < K; ++k) {
            dc.push_back(uniform(C, -1, 1, rng));
            dm.push_back(uniform(nC, -1, 1, rng));
          }
          Vec dx_cpu = dx, dxx_cpu = dxx;
          std::deque<Vec> dc_cpu = dc, dm_cpu = dm;
          const bool sums = (mask & 4) != 0;
          std::vector<float*> dcg, dmg, dcc, dmc;
          if (sums) {
            dcg = pointers<float>(dc, 1);
            dcc = pointers<float>(dc_cpu, 1);
          }
          if (mask & 8) {
            dmg = pointers<float>(dm);
            dmc = pointers<float>(dm_cpu);
          }
          // token_shift.cu's mix_backward: the MixBackward instance with_mix_sums
          // picks; launch_channels_sums: the sum kernel when a sum is wanted.
          with_mix_sums(size_t(K), [&]<int S>(std::integral_constant<int, S>) {
            const MixBackward<float, S> op{mask & 1 ? dx.data() : nullptr,
                                           mask & 2 ? dxx.data() : nullptr,
                                           Group<float>(dmg),
                                           Group<const float>(ds),
                                           Group<const float>(cs),
                                           Group<const float>(ms),
                                           xx.data(),
                                           K,
                                           one_minus};
            if (sums) {
              SumOutputs<S> out{};
              for (size_t k = 0; k < dcg.size(); ++k) out.p[k] = dcg[k];
              run_channel_sums<S>(op, n, C, out);
            } else {
              run_channels(op, n, C);
            }
          });
          kernels::mix_backward<float>(mask & 1 ? dx_cpu.data() : nullptr,
                                       mask & 2 ? dxx_cpu.data() : nullptr, dcc, dmc, ds, xx.data(),
                                       cs, ms, one_minus, n, C);
          expect_close(what + " dx", dx, dx_cpu);
          expect_close(what + " dxx", dxx, dxx_cpu);
          for (int k = 0; k < K; ++k) {
            expect_close(what + " dc " + std::to_string(k), dc[k], dc_cpu[k]);
            expect_close(what + " dm " + std::to_string(k), dm[k], dm_cpu[k]);
          }
        }
      }
}

// The bf16 instances (MixForward<Bf16>, MixBackward<Bf16, S>: token_shift.cu's kernels for
// bf16 activations) against the same CPU kernels on the widened bf16 inputs, each bf16
// output rounded once: within one bf16 step of it (the two sum in different orders, so
// their fp32 values may fall on either side of a rounding boundary); an accumulated
// gradient (dx, dxx, dm) is its old bf16 value plus the fp32 contribution, rounded once;
// the coefficient sums (fp32) within 1e-5 as above. K = 1 and 6, with the LoRA terms.
TEST(MixGroupOps, Bf16IsTheCpuKernelsRoundedOnce) {
  std::mt19937 rng(3);
  const int64_t n = 150, C = 21, nC = n * C;
  const auto bf16_values = [&](size_t size, float lo, float hi) {
    Vec v = uniform(size, lo, hi, rng);
    test::round_to_bf16(v);
    return v;
  };
  const auto stored = [](const Vec& v) { return test::stored_as<Bf16>(v); };
  for (int K : {1, 6})
    for (bool one_minus : {false, true}) {
      const std::string tag = "bf16 K " + std::to_string(K) + (one_minus ? " 1-c" : " c");
      const Vec x = bf16_values(nC, -1, 1), xx = bf16_values(nC, -1, 1);
      const std::vector<Bf16> xb = stored(x), xxb = stored(xx);
      std::deque<Vec> c, m, dout, out_cpu;
      std::deque<std::vector<Bf16>> mb, doutb, outb;
      for (int k = 0; k < K; ++k) {
        c.push_back(uniform(C, 0, 1, rng));
        m.push_back(bf16_values(nC, -0.5, 0.5));
        dout.push_back(bf16_values(nC, -1, 1));
        mb.push_back(stored(m.back()));
        doutb.push_back(stored(dout.back()));
        outb.emplace_back(nC, Bf16{0xffff});
        out_cpu.emplace_back(nC);
      }
      const std::vector<const float*> cs = pointers<const float>(c), ms = pointers<const float>(m),
                                      ds = pointers<const float>(dout);
      const std::vector<const Bf16*> msb = pointers<const Bf16>(mb),
                                     dsb = pointers<const Bf16>(doutb);
      const std::vector<Bf16*> ob = pointers<Bf16>(outb);
      const std::vector<float*> oc = pointers<float>(out_cpu);
      run_channels(MixForward<Bf16>{Group<Bf16>(ob), Group<const float>(cs), Group<const Bf16>(msb),
                                    xb.data(), xxb.data(), K, one_minus},
                   n, C);
      kernels::mix_forward<float>(oc, x.data(), xx.data(), cs, ms, one_minus, n, C);
      for (int k = 0; k < K; ++k)
        test::expect_rounded_once((tag + " out " + std::to_string(k)).c_str(), outb[k], out_cpu[k],
                                  1);

      Vec dx = bf16_values(nC, -1, 1), dxx = bf16_values(nC, -1, 1);
      std::vector<Bf16> dxb = stored(dx), dxxb = stored(dxx);
      std::deque<Vec> dc, dm;
      std::deque<std::vector<Bf16>> dmb;
      for (int k = 0; k < K; ++k) {
        dc.push_back(uniform(C, -1, 1, rng));
        dm.push_back(bf16_values(nC, -1, 1));
        dmb.push_back(stored(dm.back()));
      }
      std::deque<Vec> dc_b16 = dc;
      const std::vector<float*> dcc = pointers<float>(dc), dmc = pointers<float>(dm),
                                dcb = pointers<float>(dc_b16);
      const std::vector<Bf16*> dmbp = pointers<Bf16>(dmb);
      with_mix_sums(size_t(K), [&]<int S>(std::integral_constant<int, S>) {
        const MixBackward<Bf16, S> op{dxb.data(),
                                      dxxb.data(),
                                      Group<Bf16>(dmbp),
                                      Group<const Bf16>(dsb),
                                      Group<const float>(cs),
                                      Group<const Bf16>(msb),
                                      xxb.data(),
                                      K,
                                      one_minus};
        SumOutputs<S> out{};
        for (size_t k = 0; k < dcb.size(); ++k) out.p[k] = dcb[k];
        run_channel_sums<S>(op, n, C, out);
      });
      kernels::mix_backward<float>(dx.data(), dxx.data(), dcc, dmc, ds, xx.data(), cs, ms,
                                   one_minus, n, C);
      test::expect_rounded_once((tag + " dx").c_str(), dxb, dx, 1);
      test::expect_rounded_once((tag + " dxx").c_str(), dxxb, dxx, 1);
      for (int k = 0; k < K; ++k) {
        expect_close(tag + " dc " + std::to_string(k), dc_b16[k], dc[k]);
        test::expect_rounded_once((tag + " dm " + std::to_string(k)).c_str(), dmb[k], dm[k], 1);
      }
    }
}

}  // namespace
}  // namespace rwkv::cuda
