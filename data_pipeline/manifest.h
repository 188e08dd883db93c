#pragma once
// manifest.yaml: the table of contents of a dataset directory written by
// `rwkv preprocess`, and its completion marker (written last, atomically).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace rwkv::data {

constexpr const char* kManifestName = "manifest.yaml";

struct LangStats {
  uint64_t docs = 0;
  uint64_t tokens = 0;
  uint64_t bytes = 0;  // UTF-8 text bytes (0 in per-shard entries)
};

struct ManifestShard {
  std::string file;  // relative to the dataset directory
  uint64_t file_bytes = 0;
  uint64_t docs = 0, tokens = 0;
  uint64_t train_docs = 0, train_tokens = 0;  // the rest is the validation split
  std::string sha256;                         // of the token data as stored
  std::map<std::string, LangStats> langs;
};

struct Manifest {
  uint64_t format_version = 0;
  std::string tokenizer_kind;
  std::string tokenizer_file;  // relative to the dataset directory; "" for bytes
  std::string tokenizer_sha256;
  uint64_t vocab_size = 0, eod_id = 0;
  uint64_t token_bytes = 0;  // 2 (uint16) or 4 (uint32)
  double val_fraction = 0;
  uint64_t docs = 0, tokens = 0, train_docs = 0, train_tokens = 0;
  std::map<std::string, LangStats> langs;
  std::map<std::string, uint64_t> skipped;  // reason -> documents
  std::vector<ManifestShard> shards;
};

std::string manifest_to_yaml(const Manifest& m);
// `where` names the source in error messages.
Manifest manifest_from_yaml(const std::string& yaml, const std::string& where);

// Writes <dir>/manifest.yaml through a temporary file, fsync and rename.
void write_manifest(const std::string& dir, const Manifest& m);
// Throws rwkv::Error naming the file when it is missing (an unfinished or foreign
// directory) or malformed.
Manifest read_manifest(const std::string& dir);

}  // namespace rwkv::data
