#pragma once
// What rank 0 reports: one line per step on stdout, one JSON object per line in
// RUN_DIR/metrics.jsonl, and TensorBoard scalars (tensorboard_writer.h).
//
// metrics.jsonl records (docs/training.md):
//   {"kind":"train","step":12,"loss":5.41,"lr":0.0006,"grad_norm":1.9,"tokens":49152,
//    "tokens_per_s":8123.4,"mfu":0.031,"elapsed_s":6.1,"skipped":false}
//   {"kind":"eval","step":50,"loss":4.2,"ppl":66.7,"bpb":6.1,"tokens":8192,
//    "loss_by_lang":{"de":4.1},"ppl_by_lang":{"de":60.3}}
// A resumed run appends; a step logged twice (after the last checkpoint and before
// a crash) appears twice, and readers keep the last record of each step.
#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string>

namespace rwkv::trainer {

struct StepMetrics {
  int64_t step = 0;  // optimizer steps completed, this one included
  int64_t total_steps = 0;
  double loss = 0, lr = 0, grad_norm = 0;
  uint64_t tokens = 0;  // tokens trained on so far, all ranks
  double tokens_per_s = 0;
  std::optional<double> mfu;  // when log.peak_flops > 0
  double elapsed_s = 0, eta_s = 0;
  bool skipped = false;  // non-finite loss or gradient norm: no update
};

struct EvalMetrics {
  int64_t step = 0;
  double loss = 0, ppl = 0;
  std::optional<double> bpb;  // when the tokenizer's byte lengths are known
  uint64_t tokens = 0;
  std::map<std::string, double> loss_by_lang;
};

// "step 12/1000 | loss 5.4100 | lr 6.00e-04 | grad 1.90 | 8.1k tok/s | mfu 3.1% | 6s | eta 12m"
std::string format_step_line(const StepMetrics& m);
std::string format_eval_line(const EvalMetrics& m);

std::string step_json(const StepMetrics& m);
std::string eval_json(const EvalMetrics& m);

// Appends lines to RUN_DIR/metrics.jsonl, flushed after each.
struct MetricsFile {
  explicit MetricsFile(const std::string& run_dir);
  ~MetricsFile();
  MetricsFile(const MetricsFile&) = delete;
  MetricsFile& operator=(const MetricsFile&) = delete;
  void append(const std::string& json_line);
  std::string path;

 private:
  std::FILE* file_ = nullptr;
};

}  // namespace rwkv::trainer
