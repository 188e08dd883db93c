#include "trainer/metrics_log.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <sstream>

#include "common/error.h"

namespace rwkv::trainer {

namespace {

// JSON has no NaN or infinity: they become null.
std::string num(double x) {
  if (!std::isfinite(x)) return "null";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", x);
  return buf;
}

// Language tags are [A-Za-z0-9_-] (docs/data-format.md); escape anything else anyway.
std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string duration(double s) {
  std::ostringstream o;
  if (!std::isfinite(s) || s < 0) return "?";
  const auto t = static_cast<int64_t>(s + 0.5);
  if (t < 60)
    o << t << "s";
  else if (t < 3600)
    o << t / 60 << "m" << t % 60 << "s";
  else
    o << t / 3600 << "h" << (t % 3600) / 60 << "m";
  return o.str();
}

std::string fmt(const char* f, double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, x);
  return buf;
}

}  // namespace

std::string format_step_line(const StepMetrics& m) {
  std::ostringstream o;
  o << "step " << m.step << "/" << m.total_steps << " | loss " << fmt("%.4f", m.loss) << " | lr "
    << fmt("%.2e", m.lr) << " | grad " << fmt("%.3f", m.grad_norm) << " | "
    << fmt("%.0f", m.tokens_per_s) << " tok/s";
  if (m.mfu) o << " | mfu " << fmt("%.1f", 100 * *m.mfu) << "%";
  o << " | " << duration(m.elapsed_s) << " | eta " << duration(m.eta_s);
  if (m.skipped) o << " | SKIPPED (non-finite loss or gradient norm)";
  return o.str();
}

std::string format_eval_line(const EvalMetrics& m) {
  std::ostringstream o;
  o << "eval step " << m.step << " | val loss " << fmt("%.4f", m.loss) << " | ppl "
    << fmt("%.2f", m.ppl);
  if (m.bpb) o << " | bpb " << fmt("%.4f", *m.bpb);
  for (const auto& [lang, loss] : m.loss_by_lang) o << " | " << lang << " " << fmt("%.3f", loss);
  return o.str();
}

std::string step_json(const StepMetrics& m) {
  std::ostringstream o;
  o << "{\"kind\":\"train\",\"step\":" << m.step << ",\"loss\":" << num(m.loss)
    << ",\"lr\":" << num(m.lr) << ",\"grad_norm\":" << num(m.grad_norm)
    << ",\"tokens\":" << m.tokens << ",\"tokens_per_s\":" << num(m.tokens_per_s);
  if (m.mfu) o << ",\"mfu\":" << num(*m.mfu);
  o << ",\"elapsed_s\":" << num(m.elapsed_s) << ",\"skipped\":" << (m.skipped ? "true" : "false")
    << "}";
  return o.str();
}

std::string eval_json(const EvalMetrics& m) {
  std::ostringstream o;
  o << "{\"kind\":\"eval\",\"step\":" << m.step << ",\"loss\":" << num(m.loss)
    << ",\"ppl\":" << num(m.ppl);
  if (m.bpb) o << ",\"bpb\":" << num(*m.bpb);
  o << ",\"tokens\":" << m.tokens << ",\"loss_by_lang\":{";
  const char* sep = "";
  for (const auto& [lang, loss] : m.loss_by_lang) {
    o << sep << quoted(lang) << ":" << num(loss);
    sep = ",";
  }
  o << "},\"ppl_by_lang\":{";
  sep = "";
  for (const auto& [lang, loss] : m.loss_by_lang) {
    o << sep << quoted(lang) << ":" << num(std::exp(loss));
    sep = ",";
  }
  o << "}}";
  return o.str();
}

MetricsFile::MetricsFile(const std::string& run_dir) : path(run_dir + "/metrics.jsonl") {
  file_ = std::fopen(path.c_str(), "a");
  if (!file_) throw Error(path + ": cannot open for appending: " + std::strerror(errno));
}

MetricsFile::~MetricsFile() {
  if (file_) std::fclose(file_);
}

void MetricsFile::append(const std::string& json_line) {
  if (std::fputs(json_line.c_str(), file_) < 0 || std::fputc('\n', file_) == EOF ||
      std::fflush(file_) != 0)
    throw Error(path + ": write failed: " + std::strerror(errno));
}

}  // namespace rwkv::trainer
