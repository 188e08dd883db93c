#pragma once
// A byte count for people: "37.5 MiB" below 1 GiB, "4.40 GiB" from there.
#include <cstdio>
#include <string>

namespace rwkv {

inline std::string byte_size(double bytes) {
  constexpr double kMiB = 1 << 20, kGiB = 1 << 30;
  char s[32];
  if (bytes < kGiB)
    std::snprintf(s, sizeof s, "%.1f MiB", bytes / kMiB);
  else
    std::snprintf(s, sizeof s, "%.2f GiB", bytes / kGiB);
  return s;
}

}  // namespace rwkv
