#pragma once
// Writes one shard: to `<path>.tmp`, then fsync and rename, so that a file with
// the final name is always complete (a killed run leaves only .tmp files).
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "data_pipeline/h5_util.h"
#include "data_pipeline/sha256.h"
#include "data_pipeline/shard.h"

namespace rwkv::data {

class ShardWriter {
 public:
  // `header` gives the tokenizer fields, source and fingerprint; counts are ignored.
  ShardWriter(const std::string& path, const ShardInfo& header);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  // One document's tokens, end-of-document token included; `text_bytes` is the
  // length of its UTF-8 text. Validation documents are held in memory until finish().
  void add(std::span<const uint32_t> tokens, const std::string& lang, uint64_t text_bytes,
           bool validation);
  // Writes the index, the statistics and the checksum, then publishes the file.
  ShardInfo finish(const std::vector<std::string>& skip_reasons,
                   const std::vector<uint64_t>& skip_counts);

 private:
  void append_tokens(std::span<const uint32_t> tokens);
  void flush();
  uint16_t lang_index(const std::string& lang);

  ShardInfo info_;
  std::string tmp_path_;
  H5Handle file_, tokens_;
  Sha256 sha_;
  std::vector<uint32_t> pending_;  // training tokens not yet written
  std::vector<uint32_t> val_tokens_;
  std::vector<uint64_t> train_lengths_, val_lengths_;
  std::vector<uint16_t> train_langs_, val_langs_;
  uint64_t written_ = 0;  // tokens in the dataset so far
  bool finished_ = false;
};

// fsync of a file or directory; throws rwkv::Error naming it.
void fsync_path(const std::string& path);

}  // namespace rwkv::data
