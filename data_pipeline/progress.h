#pragma once
// Progress of a long job over a known number of input bytes: a live bar with
// bytes/s, docs/s and ETA on a terminal, or a plain log line every few seconds
// when the output is a file or a pipe.
#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>

namespace rwkv::data {

class Progress {
 public:
  // `live`: redraw one line in place (a terminal); otherwise log every
  // `log_every_s`. `out` = nullptr: count only, print nothing.
  Progress(std::ostream* out, std::string label, uint64_t total_bytes, bool live,
           double log_every_s = 5.0);
  void add(uint64_t bytes, uint64_t docs);
  void finish();  // final line (ends the live bar)

 private:
  void print(bool final);

  using Clock = std::chrono::steady_clock;
  std::ostream* out_;
  std::string label_;
  uint64_t total_ = 0, bytes_ = 0, docs_ = 0;
  bool live_;
  double every_s_;
  Clock::time_point start_, last_;
};

// "1.5 MB", "12.0 GB" (decimal units, as in MB/s).
std::string human_bytes(double bytes);

}  // namespace rwkv::data
