#pragma once
// Shared by the CUDA kernel tests (label gpu): skipping without a GPU, random
// inputs, and device buffers that can be poisoned with NaN (bytes 0xFF) so that an
// element a kernel leaves unwritten is caught.
#include <cuda_bf16.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/cuda/bf16.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"
#include "tests/kernels/wkv_test_util.h"

#define SKIP_WITHOUT_GPU()                                                 \
  do {                                                                     \
    const auto info = rwkv::cuda::query_devices();                         \
    if (info.count == 0) GTEST_SKIP() << "no usable GPU: " << info.reason; \
  } while (0)

// call() throws rwkv::Error with `want` in its message (the argument checks of the
// launchers, which run before any CUDA call: no GPU needed).
template <typename Call>
void expect_error_with(const Call& call, const std::string& want) {
  try {
    call();
    FAIL() << "accepted: " << want;
  } catch (const rwkv::Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(want), std::string::npos) << m;
  }
}

// fp32 inputs, as the CUDA kernels take.
inline std::vector<float> uniform(size_t n, double lo, double hi, std::mt19937& rng) {
  return rwkv::kernels::test::uniform<float>(n, lo, hi, rng);
}

// A device copy of values of type D (from and to host vectors of H, the same layout),
// freed on scope exit; poison() fills it with bytes 0xFF (NaN for fp32 and bf16).
template <typename D, typename H = D>
struct DevArray {
  static_assert(sizeof(D) == sizeof(H), "host and device element of the same size");
  D* p = nullptr;
  size_t n = 0;
  explicit DevArray(size_t count) : n(count) {
    if (n) CUDA_CHECK(cudaMalloc(&p, n * sizeof(D)));
  }
  explicit DevArray(const std::vector<H>& h) : DevArray(h.size()) {
    if (n) CUDA_CHECK(cudaMemcpy(p, h.data(), n * sizeof(D), cudaMemcpyHostToDevice));
  }
  DevArray(const DevArray&) = delete;
  DevArray& operator=(const DevArray&) = delete;
  ~DevArray() { cudaFree(p); }
  void poison() {
    if (n) CUDA_CHECK(cudaMemset(p, 0xff, n * sizeof(D)));
  }
  std::vector<H> get() const {
    std::vector<H> h(n);
    if (n) CUDA_CHECK(cudaMemcpy(h.data(), p, n * sizeof(D), cudaMemcpyDeviceToHost));
    return h;
  }
};

using DevBuf = DevArray<float>;
// bf16 values (kernels/cuda/bf16.h) as the bf16 launchers take them; poison: bits 0xFFFF.
using DevBf16 = DevArray<__nv_bfloat16, rwkv::cuda::Bf16>;
using DevIds = DevArray<int32_t>;

inline bool is_poison(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u == 0xffffffffu;
}

namespace rwkv::cuda::test {

// got vs ref for a tensor of rows of G groups of n elements each ([rows, G, n], row =
// b T + t; element i is in group (i / n) % G): over the groups [g0, g1) the relative L2
// error ||got - ref||_2 / ||ref||_2 <= tol and every element finite (an output poisoned
// with NaN and left unwritten fails); an element of another group must still hold the
// poison. Failure messages place elements as b, t, `group` (its label) and e.
inline ::testing::AssertionResult close_groups(const std::string& what,
                                               const std::vector<float>& got,
                                               const std::vector<float>& ref, int64_t G, int64_t n,
                                               int64_t g0, int64_t g1, int64_t T, const char* group,
                                               double tol = 1e-5) {
  double num = 0, den = 0, max_abs = 0;
  size_t worst = 0, bad = 0, first_bad = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const int64_t g = int64_t(i) / n % G;
    if (g < g0 || g >= g1) {
      if (!is_poison(got[i]) && bad++ == 0) first_bad = i;
      continue;
    }
    const double d = double(got[i]) - double(ref[i]);
    if (!std::isfinite(d)) {
      if (bad++ == 0) first_bad = i;
      continue;
    }
    num += d * d;
    den += double(ref[i]) * double(ref[i]);
    if (std::abs(d) > max_abs) max_abs = std::abs(d), worst = i;
  }
  const double rel = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  if (bad == 0 && rel <= tol) return ::testing::AssertionSuccess();
  const auto where = [&](size_t i) {
    std::ostringstream s;
    const int64_t row = int64_t(i) / (G * n);
    s << "[flat " << i << ": b=" << row / T << " t=" << row % T << " " << group << "="
      << int64_t(i) / n % G << " e=" << int64_t(i) % n << "] gpu " << got[i] << " cpu " << ref[i];
    return s.str();
  };
  auto r = ::testing::AssertionFailure();
  r << what << ": relative L2 error " << rel << " (tol " << tol << "), max abs error " << max_abs
    << " at " << where(worst);
  if (bad)
    r << "; " << bad << " elements unwritten or non-finite in range, or written outside it;"
      << " first " << where(first_bad);
  return r;
}

// The whole tensor: relative L2 error <= tol and every element finite.
inline ::testing::AssertionResult close(const std::string& what, const std::vector<float>& got,
                                        const std::vector<float>& ref, double tol = 1e-5) {
  const auto n = std::max<int64_t>(int64_t(ref.size()), 1);
  return close_groups(what, got, ref, 1, n, 0, 1, 1, "-", tol);
}

}  // namespace rwkv::cuda::test
