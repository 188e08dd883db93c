#pragma once
// Shared by the trainer tests: a small two-language dataset written with the byte
// tokenizer, a config for the tiny model on it, running the trainer, and readers of a
// run's outputs.
#include <mpi.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "common/config.h"
#include "data_pipeline/preprocess.h"
#include "model/model_config.h"
#include "model/param_table.h"
#include "trainer/checkpoint.h"
#include "trainer/train_loop.h"

namespace train_test {

namespace fs = std::filesystem;

// A directory unique to this test and process, empty. Same name on every rank of
// `comm` (rank 0's pid), created by rank 0.
inline fs::path fresh_dir(const std::string& name, MPI_Comm comm = MPI_COMM_WORLD) {
  int pid = static_cast<int>(getpid()), rank = 0;
  MPI_Comm_rank(comm, &rank);
  MPI_Bcast(&pid, 1, MPI_INT, 0, comm);
  const fs::path d = fs::temp_directory_path() / ("rwkv_train_" + name + "_" + std::to_string(pid));
  if (rank == 0) {
    fs::remove_all(d);
    fs::create_directories(d);
  }
  MPI_Barrier(comm);
  return d;
}

// Removes a directory of fresh_dir when it goes out of scope, after every rank of
// `comm` is done with it.
struct RemoveDir {
  fs::path dir;
  MPI_Comm comm = MPI_COMM_WORLD;
  ~RemoveDir() {
    int rank = 0;
    MPI_Barrier(comm);
    MPI_Comm_rank(comm, &rank);
    if (rank == 0) fs::remove_all(dir);
  }
};

// 300 short documents, half English, half German, from a small fixed grammar: the
// text is predictable enough for a tiny model to learn in a few dozen steps.
// Preprocessed with the byte tokenizer, 20% of the documents in the val split.
inline std::string make_dataset(const fs::path& dir, MPI_Comm comm = MPI_COMM_WORLD) {
  const fs::path corpus = dir / "corpus.jsonl", out = dir / "data";
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  if (rank == 0) {
    const std::vector<std::string> en_s = {"the cat", "a dog", "my friend", "the old man"};
    const std::vector<std::string> en_v = {"sees", "likes", "finds", "follows"};
    const std::vector<std::string> en_o = {"the ball", "a red house", "the river", "some bread"};
    const std::vector<std::string> de_s = {"die Katze", "ein Hund", "mein Freund", "der alte Mann"};
    const std::vector<std::string> de_v = {"sieht", "mag", "findet", "folgt"};
    const std::vector<std::string> de_o = {"den Ball", "ein rotes Haus", "dem Fluss", "etwas Brot"};
    std::ofstream f(corpus);
    uint64_t x = 12345;
    auto pick = [&x](size_t n) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      return static_cast<size_t>((x >> 33) % n);
    };
    for (int d = 0; d < 300; ++d) {
      const bool en = d % 2 == 0;
      std::string text;
      for (int s = 0; s < 4; ++s) {
        text += en ? en_s[pick(4)] + " " + en_v[pick(4)] + " " + en_o[pick(4)] + ". "
                   : de_s[pick(4)] + " " + de_v[pick(4)] + " " + de_o[pick(4)] + ". ";
      }
      f << "{\"text\": \"" << text << "doc " << d << ".\", \"lang\": \"" << (en ? "en" : "de")
        << "\"}\n";
    }
  }
  MPI_Barrier(comm);
  rwkv::data::PreprocessOptions o;
  o.inputs = {corpus.string()};
  o.output = out.string();
  o.val_fraction = 0.2;
  std::ostringstream log, summary;
  rwkv::data::run_preprocess(o, comm, log, false, summary);
  return out.string();
}

// The tiny model, shortened: ctx_len 32, micro-batch 2 per rank, one thread.
inline rwkv::Config tiny_config(const std::string& data, const fs::path& run_dir,
                                std::vector<std::string> extra = {}) {
  rwkv::ConfigRequest req;
  req.sets = {"model.ctx_len=32",
              "data.path=" + data,
              "log.run_dir=" + run_dir.string(),
              "train.micro_batch_size=2",
              "train.steps=20",
              "train.eval_every=0",
              "train.threads=1",
              "optimizer.lr_init=3e-3",
              "optimizer.lr_final=1e-3",
              "optimizer.warmup_steps=2",
              "checkpoint.save_every_steps=0"};
  req.sets.insert(req.sets.end(), extra.begin(), extra.end());
  return rwkv::load_config(req);
}

// The lines of RUN_DIR/metrics.jsonl of the given kind ("train" or "eval").
inline std::vector<std::string> metrics_lines(const fs::path& run_dir, const std::string& kind) {
  std::ifstream f(run_dir / "metrics.jsonl");
  std::vector<std::string> out;
  for (std::string line; std::getline(f, line);)
    if (line.find("\"kind\":\"" + kind + "\"") != std::string::npos) out.push_back(line);
  return out;
}

// The number after "key": in a JSON line (the records are flat but for the maps).
inline double json_number(const std::string& line, const std::string& key) {
  const std::string k = "\"" + key + "\":";
  const size_t p = line.find(k);
  if (p == std::string::npos) return -1;
  return std::stod(line.substr(p + k.size()));
}

// This process's rank in MPI_COMM_WORLD.
inline int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

// rwkv::trainer::train on `comm`; hook as TrainOptions::grad_hook; the output goes to `log`
// (null: discarded).
inline rwkv::trainer::TrainResult run_training(
    const rwkv::Config& cfg, MPI_Comm comm,
    std::function<void(int64_t, std::span<float>)> hook = {}, std::string* log = nullptr) {
  rwkv::trainer::TrainOptions o;
  o.cfg = cfg;
  o.program_version = "rwkv test";
  o.grad_hook = std::move(hook);
  std::ostringstream out;
  rwkv::trainer::TrainResult r = rwkv::trainer::train(o, comm, out);
  if (log) *log = out.str();
  return r;
}

// The whole parameters of a checkpoint (read with the one-rank table, whatever tp wrote it).
inline std::vector<float> params_of(const rwkv::Config& cfg, const std::string& ckpt) {
  const rwkv::model::ModelConfig mc = rwkv::model::model_config_from(cfg);
  return rwkv::trainer::load_checkpoint(ckpt, mc, rwkv::model::build_param_table(mc)).params;
}

// One value of every "train" record of metrics.jsonl.
inline std::vector<double> series(const fs::path& run_dir, const std::string& key) {
  std::vector<double> out;
  for (const auto& l : metrics_lines(run_dir, "train")) out.push_back(json_number(l, key));
  return out;
}

// The loss of every step of metrics.jsonl, in step order; a step logged twice (a run
// resumed from a checkpoint older than its last log line) counts once, the last time.
inline std::vector<double> losses(const fs::path& run_dir) {
  std::map<int64_t, double> by_step;
  for (const auto& l : metrics_lines(run_dir, "train"))
    by_step[static_cast<int64_t>(json_number(l, "step"))] = json_number(l, "loss");
  std::vector<double> out;
  for (const auto& [s, l] : by_step) out.push_back(l);
  return out;
}

// ||b - a|| / ||a|| (L2) over the whole buffer: single elements whose gradients are ~0
// move by Adam's normalised step in any direction, so an elementwise bound would measure
// the noise of those, not the training.
inline double relative_l2(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (static_cast<double>(b[i]) - a[i]) * (static_cast<double>(b[i]) - a[i]);
    norm += static_cast<double>(a[i]) * a[i];
  }
  return std::sqrt(diff / norm);
}

}  // namespace train_test
