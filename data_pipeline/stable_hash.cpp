#include "data_pipeline/stable_hash.h"

namespace rwkv::data {

uint64_t content_hash64(std::string_view bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  uint64_t h = 0x243f6a8885a308d3ull;  // pi's fraction: any fixed seed
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w = 0;
    for (int b = 7; b >= 0; --b) w = (w << 8) | p[i + static_cast<size_t>(b)];
    h = splitmix64(h ^ w);
  }
  if (i < n) {
    uint64_t w = 0;
    for (size_t b = n; b > i; --b) w = (w << 8) | p[b - 1];
    h = splitmix64(h ^ w);
  }
  return splitmix64(h ^ static_cast<uint64_t>(n));
}

}  // namespace rwkv::data
