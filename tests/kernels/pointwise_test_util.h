#pragma once
// Shared by the tests of the CUDA pointwise ops (test_cuda_elementwise.cu,
// test_cuda_token_shift.cu, test_cuda_rwkv_pointwise.cu): an op's inputs, outputs and
// gradients on the host (for the CPU reference) and on the device; the comparison is
// rwkv::cuda::test::close (cuda_test_util.h).
//
// Measure: relative L2 error ||gpu - cpu||_2 / ||cpu||_2 <= 1e-5 (fp32), and every
// element finite: forward outputs are poisoned with NaN before the GPU runs, so an
// element it leaves unwritten fails. Gradients start from the same random values on
// both sides, so an op that overwrites instead of adding (+=) fails.
#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "tests/kernels/cuda_test_util.h"

namespace rwkv::cuda::test {

// An input: uniform random values in [lo, hi] and their device copy.
struct In {
  std::vector<float> h;
  DevBuf d;
  In(size_t n, double lo, double hi, std::mt19937& rng) : h(uniform(n, lo, hi, rng)), d(h) {}
  const float* cpu() const { return h.data(); }
  const float* gpu() const { return d.p; }
};

// A forward's output: the CPU's result and the device buffer, poisoned. With
// `accumulates` (an op that adds into its output) both start from random values.
struct Out {
  std::vector<float> ref;
  DevBuf d;
  explicit Out(size_t n) : ref(n), d(n) { d.poison(); }
  Out(size_t n, std::mt19937& rng) : ref(uniform(n, -1, 1, rng)), d(ref) {}
  float* cpu() { return ref.data(); }
  float* gpu() { return d.p; }
  ::testing::AssertionResult check(const std::string& what) const {
    return close(what, d.get(), ref);
  }
};

// A gradient: random initial values on both sides; when off, both get null.
struct Grad {
  std::vector<float> ref;
  DevBuf d;
  bool on;
  Grad(size_t n, bool on_, std::mt19937& rng) : ref(uniform(n, -1, 1, rng)), d(ref), on(on_) {}
  float* cpu() { return on ? ref.data() : nullptr; }
  float* gpu() { return on ? d.p : nullptr; }
  // Passes when off (nothing to compare: null was given).
  ::testing::AssertionResult check(const std::string& what) const {
    if (!on) return ::testing::AssertionSuccess();
    return close(what, d.get(), ref);
  }
};

// Passes when call() throws rwkv::Error whose message contains `text`.
template <typename Call>
::testing::AssertionResult throws_naming(Call call, const std::string& text) {
  try {
    call();
  } catch (const rwkv::Error& e) {
    if (std::string(e.what()).find(text) != std::string::npos) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "message without \"" << text << "\": " << e.what();
  }
  return ::testing::AssertionFailure() << "no rwkv::Error thrown; expected \"" << text << "\"";
}

// "name (mask m)" for the failure messages of a run where gradient i is on when bit i
// of m is set.
inline std::string with_mask(const std::string& name, unsigned mask) {
  std::ostringstream s;
  s << name << " (gradient mask " << mask << ")";
  return s.str();
}

}  // namespace rwkv::cuda::test
