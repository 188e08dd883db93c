#include "data_pipeline/progress.h"

#include <algorithm>
#include <cstdio>

namespace rwkv::data {

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  int u = 0;
  while (bytes >= 1000 && u < 4) {
    bytes /= 1000;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f %s", bytes, units[u]);
  return buf;
}

Progress::Progress(std::ostream* out, std::string label, uint64_t total_bytes, bool live,
                   double log_every_s)
    : out_(out), label_(std::move(label)), total_(total_bytes), live_(live), every_s_(log_every_s),
      start_(Clock::now()), last_(start_) {}

void Progress::add(uint64_t bytes, uint64_t docs) {
  bytes_ += bytes;
  docs_ += docs;
  const auto now = Clock::now();
  const double since = std::chrono::duration<double>(now - last_).count();
  if (since >= (live_ ? 0.25 : every_s_)) {
    last_ = now;
    print(false);
  }
}

void Progress::finish() { print(true); }

void Progress::print(bool final) {
  if (!out_) return;
  const double t = std::max(1e-9, std::chrono::duration<double>(Clock::now() - start_).count());
  const double frac = total_ > 0 ? std::min(1.0, static_cast<double>(bytes_) / static_cast<double>(total_)) : 1.0;
  const double bps = static_cast<double>(bytes_) / t;
  const double eta = bps > 0 ? static_cast<double>(total_ - std::min(total_, bytes_)) / bps : 0;
  char stats[160];
  std::snprintf(stats, sizeof(stats), "%5.1f%% %s/s %.0f docs/s ETA %.0fs", 100 * frac,
                human_bytes(bps).c_str(), static_cast<double>(docs_) / t, final ? 0.0 : eta);
  if (live_) {
    const int width = 30;
    const int fill = static_cast<int>(frac * width);
    *out_ << "\r" << label_ << " [" << std::string(static_cast<size_t>(fill), '#')
         << std::string(static_cast<size_t>(width - fill), '.') << "] " << stats << "\033[K";
    if (final) *out_ << "\n";
  } else {
    *out_ << label_ << ": " << stats << "\n";
  }
  out_->flush();
}

}  // namespace rwkv::data
