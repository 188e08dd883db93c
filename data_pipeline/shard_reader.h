#pragma once
// Reads shards written by ShardWriter: their header and index (read_shard_info)
// and token ranges (ShardReader). Every error names the file.
#include <cstdint>
#include <string>
#include <vector>

#include "data_pipeline/h5_util.h"
#include "data_pipeline/shard.h"

namespace rwkv::data {

// Attributes, statistics and counts; does not read the token data.
ShardInfo read_shard_info(const std::string& path);

// SHA-256 of the token data as stored, recomputed by reading it all.
std::string hash_shard_tokens(const std::string& path);

class ShardReader {
 public:
  explicit ShardReader(const std::string& path);
  const std::string& path() const { return path_; }
  uint64_t n_tokens() const { return n_tokens_; }
  // tokens[begin, begin + count) -> out[0, count)
  void read(uint64_t begin, uint64_t count, uint32_t* out);
  std::vector<uint64_t> doc_offsets();  // [n_docs + 1]
  std::vector<uint16_t> doc_lang();     // [n_docs]
  std::vector<std::string> lang_names();

 private:
  std::string path_;
  H5Handle file_, tokens_, fspace_, mspace_;
  uint64_t n_tokens_ = 0;
  uint64_t mspace_count_ = 0;
};

}  // namespace rwkv::data
