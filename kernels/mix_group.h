#pragma once
// The mixes of one token shift go to mix_forward / mix_backward as one group
// (kernels/cpu/token_shift.h): x and xx are read once for all of them and dx, dxx
// updated once, instead of once per mix. RWKV-7's time mix has the most, six
// (r, w, k, v, a, g); RWKV-6 five, RWKV-5 four, RWKV-4 three, the channel mix one or two.
#include <cstddef>
#include <initializer_list>
#include <sstream>
#include <utility>

#include "common/error.h"

namespace rwkv::kernels {

constexpr int kMaxMixes = 6;

// Throws rwkv::Error naming fn unless 1 <= K <= kMaxMixes, `coefs` == K, and each of
// `optional` (the LoRA terms and the gradients a caller may leave out) is 0 or K.
inline void check_mix_group(const char* fn, size_t K, size_t coefs,
                            std::initializer_list<std::pair<const char*, size_t>> optional) {
  std::ostringstream msg;
  if (K < 1 || K > size_t(kMaxMixes))
    msg << fn << ": " << K << " mixes in one group (1 to " << kMaxMixes << ")";
  else if (coefs != K)
    msg << fn << ": " << coefs << " coefficient vectors for " << K << " mixes";
  else
    for (const auto& [name, size] : optional)
      if (size != 0 && size != K) {
        msg << fn << ": " << size << " " << name << " for " << K << " mixes (0 or " << K << ")";
        break;
      }
  if (!msg.str().empty()) throw Error(msg.str());
}

// The checks of mix_forward and mix_backward (every backend's and the CPU kernels').
inline void check_mix_forward(const char* fn, size_t outs, size_t coefs, size_t ms) {
  check_mix_group(fn, outs, coefs, {{"LoRA terms", ms}});
}
inline void check_mix_backward(const char* fn, size_t douts, size_t coefs, size_t ms, size_t dcoefs,
                               size_t dms) {
  check_mix_group(
      fn, douts, coefs,
      {{"LoRA terms", ms}, {"coefficient gradients", dcoefs}, {"LoRA term gradients", dms}});
}

}  // namespace rwkv::kernels
