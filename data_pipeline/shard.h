#pragma once
// One HDF5 token shard (docs/data-format.md has the full layout and an h5py
// snippet). Documents are stored back to back, each ending with the
// end-of-document token; the shard's training documents come first, then its
// validation documents, so that each split is one contiguous token range.
#include <cstdint>
#include <string>
#include <vector>

namespace rwkv::data {

constexpr uint64_t kShardFormatVersion = 1;

// HDF5 chunk of the `tokens` dataset, in tokens. A training window is ctx_len+1
// tokens; with chunks of 64 Ki tokens any window up to 65535 tokens touches at
// most two chunks, so one random window costs at most two chunk lookups, while
// the chunk index stays small (16 Ki entries per billion tokens). 128 KiB
// (uint16) or 256 KiB (uint32) per chunk is also a good unit for sequential writes.
constexpr uint64_t kTokenChunk = 65536;

// Everything about a shard except its token data.
struct ShardInfo {
  std::string path;
  uint64_t format_version = kShardFormatVersion;
  std::string tokenizer_kind;    // "bytes", "world", "sentencepiece"
  std::string tokenizer_sha256;  // of the tokenizer file; "" for bytes
  uint64_t vocab_size = 0;
  uint64_t eod_id = 0;
  uint64_t token_bytes = 2;  // 2: uint16 tokens (vocab_size <= 65536), 4: uint32
  std::string source;        // the input this shard came from: "path [begin, end)"
  std::string fingerprint;   // hash of the source and every content-affecting option
  uint64_t n_tokens = 0;
  uint64_t n_docs = 0;
  uint64_t train_docs = 0;    // documents [0, train_docs) are training documents
  uint64_t train_tokens = 0;  // tokens [0, train_tokens) belong to them
  std::string tokens_sha256;  // SHA-256 of the token data as stored (little-endian)
  // Per language (index = the value stored in doc_lang).
  std::vector<std::string> langs;
  std::vector<uint64_t> lang_docs, lang_tokens, lang_bytes;  // bytes: UTF-8 text bytes
  // Documents of this shard's input that were skipped, by reason.
  std::vector<std::string> skip_reasons;
  std::vector<uint64_t> skip_counts;
};

}  // namespace rwkv::data
