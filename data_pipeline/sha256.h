#pragma once
// SHA-256 (FIPS 180-4) as lowercase hex, over OpenSSL's EVP interface. Used to
// fingerprint tokenizer files and data shards.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace rwkv::data {

// Incremental hash: update() any number of times, then hex_digest() once.
struct Sha256 {
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, size_t size);
  std::string hex_digest();  // 64 lowercase hex digits; the hash cannot be updated after

 private:
  void* ctx_;  // EVP_MD_CTX*, kept opaque so that users need no OpenSSL headers
};

std::string sha256_hex(std::span<const uint8_t> data);
// Hash of a whole file; throws rwkv::Error naming the file when it cannot be read.
std::string sha256_file_hex(const std::string& path);

}  // namespace rwkv::data
