#pragma once
// Shared by the checkpoint tests: a temporary run directory, a tiny model with random
// tensors and a fully populated trainer state, a TP rank's slabs of it, and a file's
// datasets and checksum read back independently with the HDF5 C API.
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "data_pipeline/sha256.h"
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

// The slabs of TP rank `tp` of a run's whole tensors (model/param_table.h).
struct TpSlabs {
  rwkv::model::ParamTable table;
  std::vector<float> params, adam_m, adam_v;

  rwkv::trainer::CheckpointTensors tensors() const { return {params, adam_m, adam_v}; }
};

inline TpSlabs slabs_of(const TinyRun& whole, rwkv::model::TpRank tp) {
  TpSlabs s;
  s.table = rwkv::model::build_param_table(whole.model, tp);
  const size_t n = static_cast<size_t>(s.table.total);
  s.params.resize(n);
  s.adam_m.resize(n);
  s.adam_v.resize(n);
  for (size_t i = 0; i < s.table.params.size(); ++i) {
    const rwkv::model::ParamInfo& p = s.table.params[i];
    const int64_t from = whole.table.params[i].offset;
    p.slab_from_whole(whole.params.data() + from, s.params.data() + p.offset);
    p.slab_from_whole(whole.adam_m.data() + from, s.adam_m.data() + p.offset);
    p.slab_from_whole(whole.adam_v.data() + from, s.adam_v.data() + p.offset);
  }
  return s;
}

inline bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// The message of the rwkv::Error fn throws; "(no error)" when it returns.
inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const rwkv::Error& e) {
    return e.what();
  }
  return "(no error)";
}

inline bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// One dataset as stored: its type, dims and raw bytes.
struct RawDataset {
  int type_class = -1;
  size_t type_size = 0;
  int type_sign = -1;  // integers only
  std::vector<uint64_t> dims;
  std::vector<uint8_t> bytes;
  bool operator==(const RawDataset&) const = default;
};
using RawDatasets = std::map<std::string, RawDataset>;  // by path from the root

inline void collect_raw(hid_t group, const std::string& prefix, RawDatasets& out) {
  H5G_info_t info;
  H5Gget_info(group, &info);
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    char buf[256];
    H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, buf, sizeof buf, H5P_DEFAULT);
    const std::string name = prefix + buf;
    const hid_t o = H5Oopen(group, buf, H5P_DEFAULT);
    if (H5Iget_type(o) == H5I_GROUP) collect_raw(o, name + "/", out);
    if (H5Iget_type(o) == H5I_DATASET) {
      RawDataset& d = out[name];
      const hid_t type = H5Dget_type(o);
      const hid_t space = H5Dget_space(o);
      d.type_class = H5Tget_class(type);
      d.type_size = H5Tget_size(type);
      if (d.type_class == H5T_INTEGER) d.type_sign = H5Tget_sign(type);
      hsize_t dims[8];
      const int rank = H5Sget_simple_extent_dims(space, dims, nullptr);
      size_t bytes = d.type_size;
      for (int k = 0; k < rank; ++k) {
        d.dims.push_back(dims[k]);
        bytes *= dims[k];
      }
      d.bytes.resize(bytes);
      if (bytes) H5Dread(o, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, d.bytes.data());
      H5Sclose(space);
      H5Tclose(type);
    }
    H5Oclose(o);
  }
}

// Every dataset of a checkpoint file, read with the HDF5 C API.
inline RawDatasets read_raw_datasets(const std::string& path) {
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  RawDatasets out;
  if (f >= 0) collect_raw(f, "", out);
  H5Fclose(f);
  return out;
}

// The checksum as docs/checkpoints.md defines it: every dataset, paths sorted
// component by component; per dataset the path, a NUL, rank and dims as
// little-endian uint64, then the raw bytes.
inline std::string documented_sha256(const RawDatasets& datasets) {
  std::vector<std::pair<std::vector<std::string>, std::string>> order;
  for (const auto& [name, d] : datasets) {
    std::vector<std::string> parts;
    size_t start = 0;
    for (size_t slash; (slash = name.find('/', start)) != std::string::npos; start = slash + 1)
      parts.push_back(name.substr(start, slash - start));
    parts.push_back(name.substr(start));
    order.emplace_back(parts, name);
  }
  std::sort(order.begin(), order.end());
  rwkv::data::Sha256 h;
  for (const auto& [parts, name] : order) {
    const RawDataset& d = datasets.at(name);
    h.update(name.c_str(), name.size() + 1);
    const uint64_t rank = d.dims.size();
    h.update(&rank, 8);
    for (uint64_t x : d.dims) h.update(&x, 8);
    h.update(d.bytes.data(), d.bytes.size());
  }
  return h.hex_digest();
}

// The root attribute sha256.
inline std::string sha256_attribute(const std::string& path) {
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t a = H5Aopen(f, "sha256", H5P_DEFAULT);
  char stored[65] = {};
  const hid_t type = H5Aget_type(a);
  if (H5Tget_size(type) == sizeof stored) H5Aread(a, type, stored);
  H5Tclose(type);
  H5Aclose(a);
  H5Fclose(f);
  return stored;
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
