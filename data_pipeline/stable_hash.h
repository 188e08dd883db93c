#pragma once
// Hashes whose values are part of the data format: the same on every machine,
// compiler and run (the validation split and the window order depend on them).
#include <cstdint>
#include <string_view>

namespace rwkv::data {

// SplitMix64 finalizer (Steele, Lea, Flood, "Fast splittable pseudorandom number
// generators", OOPSLA 2014): a bijective 64-bit mixer.
inline uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// 64-bit hash of a byte string: h = splitmix64(h ^ w) over its 8-byte
// little-endian words (the last one zero-padded), then h = splitmix64(h ^ size).
uint64_t content_hash64(std::string_view bytes);

// Whether a document belongs to the validation split: the top 53 bits of its
// content hash, as a fraction in [0, 1), are below `val_fraction`.
inline bool is_validation_doc(std::string_view text, double val_fraction) {
  return static_cast<double>(content_hash64(text) >> 11) * 0x1p-53 < val_fraction;
}

}  // namespace rwkv::data
