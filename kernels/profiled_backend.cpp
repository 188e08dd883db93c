#include "kernels/profiled_backend.h"

#include <algorithm>
#include <cstdio>
#include <vector>

namespace rwkv::kernels {

std::string format_op_profile(const std::map<std::string, OpTotal>& totals, int steps) {
  std::vector<std::pair<std::string, OpTotal>> rows(totals.begin(), totals.end());
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.second.ms > b.second.ms; });
  double all = 0;
  for (const auto& r : rows) all += r.second.ms;
  const double per = 1.0 / std::max(steps, 1);
  std::string out = "| op | calls/step | ms/step | share |\n|---|---|---|---|\n";
  char line[160];
  for (const auto& [name, t] : rows) {
    std::snprintf(line, sizeof(line), "| %s | %.0f | %.3f | %.1f%% |\n", name.c_str(),
                  double(t.calls) * per, t.ms * per, all > 0 ? 100.0 * t.ms / all : 0.0);
    out += line;
  }
  std::snprintf(line, sizeof(line), "| all ops | | %.3f | 100%% |\n", all * per);
  return out + line;
}

}  // namespace rwkv::kernels
