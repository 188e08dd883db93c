#pragma once
// The order of the training windows: a pseudorandom bijection of [0, n) computed
// per index, so an epoch of n windows needs no shuffled table. A balanced
// Feistel network (4 rounds, Luby-Rackoff) on the smallest even number of bits
// covering n, restricted to [0, n) by cycle-walking (Black and Rogaway, "Ciphers
// with Arbitrary Finite Domains", CT-RSA 2002): values >= n are encrypted again
// until they fall inside. The domain is < 4n, so the expected walk is < 4 steps.
#include <cstdint>

namespace rwkv::data {

struct Permutation {
  uint64_t n = 0;
  uint64_t key = 0;
  int half_bits = 1;  // the Feistel halves are half_bits wide

  Permutation(uint64_t n, uint64_t key);
  uint64_t operator()(uint64_t i) const;  // requires i < n
};

}  // namespace rwkv::data
