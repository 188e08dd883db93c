#pragma once
// bf16 tensors in the tests (kernels/cuda/bf16.h): inputs rounded to bf16 values, so
// that a bf16 kernel and its fp32 twin read the same numbers, and the comparison of a
// bf16 result with the fp32 twin's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "kernels/cuda/bf16.h"

namespace rwkv::cuda::test {

// Each value replaced by the nearest bf16.
inline void round_to_bf16(std::vector<float>& x) {
  for (float& e : x) e = to_float(from_float<Bf16>(e));
}

// x stored as E (float: a copy; Bf16: each value rounded).
template <typename E>
std::vector<E> stored_as(const std::vector<float>& x) {
  std::vector<E> out(x.size());
  std::transform(x.begin(), x.end(), out.begin(), from_float<E>);
  return out;
}

// A bf16 result as floats, for the fp32 comparisons: the GPU tests' poison (bytes 0xFF)
// 0xFFFF becomes the fp32 poison 0xFFFFFFFF.
inline std::vector<float> widen(const std::vector<Bf16>& x) {
  std::vector<float> out(x.size());
  for (size_t e = 0; e < x.size(); ++e)
    out[e] = x[e].bits == 0xffff ? bits_float(0xffffffffu) : to_float(x[e]);
  return out;
}

// got[e] is want[e] rounded to bf16, bit for bit (NaN poison included: the fp32 poison
// 0xFFFFFFFF rounds to the bf16 poison 0xFFFF), or with `ulps` = 1 also a neighbour of
// it of the same sign (a kernel compiled for two element types may contract another
// multiply-add into an fma). Counts the elements that are not.
inline void expect_rounded_once(const char* name, const std::vector<Bf16>& got,
                                const std::vector<float>& want, int ulps = 0) {
  ASSERT_EQ(got.size(), want.size()) << name;
  size_t bad = 0, first = 0;
  for (size_t e = 0; e < got.size(); ++e) {
    const uint16_t w = from_float<Bf16>(want[e]).bits;
    const bool ok =
        std::abs(int(got[e].bits) - int(w)) <= ulps && (got[e].bits & 0x8000) == (w & 0x8000);
    if (!ok && bad++ == 0) first = e;
  }
  EXPECT_EQ(bad, 0u) << name << ": first at " << first << ": bf16 bits " << got[first].bits
                     << ", fp32 " << want[first] << " rounds to "
                     << from_float<Bf16>(want[first]).bits;
}

}  // namespace rwkv::cuda::test
