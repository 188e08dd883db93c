#pragma once
// Shared by the checkpoint tests: a temporary run directory, a tiny model with random
// tensors and a fully populated trainer state.
#include <hdf5.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "model/model_config.h"
#include "model/param_table.h"
#include "trainer/checkpoint.h"

namespace ckpt_test {

namespace fs = std::filesystem;

// An empty directory under /tmp, removed again at the end of the test.
struct TempDir : fs::path {
  explicit TempDir(const std::string& name)
      : fs::path(fs::temp_directory_path() /
                 ("rwkv_ckpt_" + name + "_" + std::to_string(getpid()))) {
    fs::remove_all(*this);
    fs::create_directories(*this);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(*this, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

// A tiny model of the given version: 2 layers, C = 64, 4 heads of 16, vocab 37.
inline rwkv::model::ModelConfig tiny_model(int version, int n_embd = 64) {
  return rwkv::model::make_model_config(version, 2, n_embd, 16, 37, 16);
}

struct TinyRun {
  rwkv::model::ModelConfig model;
  rwkv::model::ParamTable table;
  std::vector<float> params, adam_m, adam_v;
  rwkv::trainer::TrainerState state;

  rwkv::trainer::CheckpointTensors tensors() const { return {params, adam_m, adam_v}; }
};

// Random tensors and state for `step`; the same seed gives the same run.
inline TinyRun random_run(const rwkv::model::ModelConfig& m, int64_t step, uint64_t seed) {
  TinyRun r;
  r.model = m;
  r.table = rwkv::model::build_param_table(m);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const size_t n = static_cast<size_t>(r.table.total);
  r.params.resize(n);
  r.adam_m.resize(n);
  r.adam_v.resize(n);
  for (size_t i = 0; i < n; ++i) {
    r.params[i] = normal(rng);
    r.adam_m[i] = 1e-3f * normal(rng);
    r.adam_v[i] = 1e-6f * normal(rng) * normal(rng);
  }
  rwkv::trainer::TrainerState& s = r.state;
  s.step = step;
  s.tokens_seen = static_cast<uint64_t>(step) * 4096 + (rng() % 4096);
  s.optimizer_step = step - 2;
  s.nonfinite_skips = 1;
  s.rng["init"] = {};
  s.rng["dropout.rank0"] = std::vector<uint8_t>(40);
  for (uint8_t& b : s.rng["dropout.rank0"]) b = static_cast<uint8_t>(rng());
  s.loader.samples = rng();
  s.loader.group_draws = {rng(), rng(), 0};
  s.loader.blend_credit = {-static_cast<int64_t>(rng() % 1000), 7, 0};
  s.config_yaml = "model:\n  version: " + std::to_string(m.version) + "\n  # ünïcode ✓\n";
  s.program_version = "rwkv 0.1.0";
  return r;
}

inline std::string save(const fs::path& run_dir, const TinyRun& r) {
  return rwkv::trainer::save_checkpoint(run_dir.string(), r.model, r.table, r.tensors(), r.state);
}

inline uintmax_t file_size(const std::string& path) { return fs::file_size(path); }

// File offset of a contiguous dataset's raw data (read with the HDF5 C API).
inline uint64_t dataset_offset(const std::string& path, const std::string& dataset) {
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t d = H5Dopen2(f, dataset.c_str(), H5P_DEFAULT);
  const haddr_t off = H5Dget_offset(d);
  H5Dclose(d);
  H5Fclose(f);
  return off;
}

// Flips one bit of the byte at `offset`.
inline void flip_bit(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x10);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
}

}  // namespace ckpt_test
