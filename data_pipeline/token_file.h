#pragma once
// Reading token windows without HDF5 calls. The `tokens` dataset is chunked and
// unfiltered, so each chunk is a plain run of little-endian integers at a file
// address that HDF5 reports once (read_token_layout, an HDF5 call); afterwards
// TokenFile reads any range with pread(2). This keeps the loader's hot path
// out of libhdf5, which is not thread-safe (the trainer may write checkpoints
// with HDF5 on its own thread at the same time), and makes a random window a
// single system call per chunk it touches.
#include <cstdint>
#include <string>
#include <vector>

namespace rwkv::data {

struct TokenLayout {
  uint64_t n_tokens = 0;
  uint64_t width = 2;                // bytes per token: 2 (uint16) or 4 (uint32)
  uint64_t chunk_tokens = 0;         // tokens per chunk
  std::vector<uint64_t> chunk_addr;  // [chunks]: file offset of chunk c (tokens c*chunk_tokens...)
};

// Throws rwkv::Error naming the file when the dataset is not laid out as
// ShardWriter writes it, or a chunk lies past the end of the file (truncation).
TokenLayout read_token_layout(const std::string& path);

class TokenFile {
 public:
  TokenFile(const std::string& path, const TokenLayout& layout);
  ~TokenFile();
  TokenFile(const TokenFile&) = delete;
  TokenFile& operator=(const TokenFile&) = delete;
  // tokens[begin, begin + count) -> out[0, count)
  void read(uint64_t begin, uint64_t count, uint32_t* out);

 private:
  std::string path_;
  const TokenLayout& layout_;
  int fd_ = -1;
  std::vector<uint16_t> narrow_;
};

}  // namespace rwkv::data
