#pragma once
// The initialiser's random numbers: std::mt19937_64 (its output sequence is fixed by
// the C++ standard) with our own uniform and normal transforms, so a seed gives the
// same weights with every standard library.
#include <cmath>
#include <cstdint>
#include <numbers>
#include <random>

namespace rwkv::model {

struct Rng {
  std::mt19937_64 gen;
  explicit Rng(uint64_t seed) : gen(seed) {}

  // Uniform on [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(gen() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Standard normal by Box-Muller (one value per pair of uniforms; simple, and speed
  // does not matter at init).
  double normal() {
    const double u1 = 1.0 - uniform();  // (0, 1]
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }
};

// An independent stream per (seed, parameter index): SplitMix64 of the pair.
inline uint64_t stream_seed(uint64_t seed, uint64_t index) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (index + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace rwkv::model
