#include "data_pipeline/permutation.h"

#include "data_pipeline/stable_hash.h"

namespace rwkv::data {

Permutation::Permutation(uint64_t n_, uint64_t key_) : n(n_), key(key_) {
  while (half_bits < 32 && (uint64_t{1} << (2 * half_bits)) < n) ++half_bits;
}

uint64_t Permutation::operator()(uint64_t i) const {
  const uint64_t mask = (uint64_t{1} << half_bits) - 1;
  uint64_t x = i;
  do {
    uint64_t left = x >> half_bits, right = x & mask;
    for (uint64_t round = 0; round < 4; ++round) {
      const uint64_t f = splitmix64(key ^ (round << 58) ^ right) & mask;
      const uint64_t next = left ^ f;
      left = right;
      right = next;
    }
    x = (left << half_bits) | right;
  } while (x >= n);
  return x;
}

}  // namespace rwkv::data
