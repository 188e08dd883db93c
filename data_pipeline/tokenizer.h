#pragma once
// Tokenizers: text <-> token ids. Every kind is lossless: decode(encode(doc)) == doc
// for every valid UTF-8 document. The end-of-document token is not added by
// encode(); `rwkv preprocess` appends it after each document.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace rwkv::data {

enum class TokenizerKind {
  Bytes,          // 256 byte tokens + specials; for tests and debugging
  World,          // RWKV "World" vocabulary file (rwkv_vocab_v20230424.txt format)
  SentencePiece,  // a SentencePiece .model (BPE or unigram, byte fallback)
};

const char* tokenizer_kind_name(TokenizerKind kind);  // "bytes", "world", "sentencepiece"
// The inverse of tokenizer_kind_name; throws rwkv::Error listing the names otherwise.
TokenizerKind tokenizer_kind_from_name(std::string_view name);

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual TokenizerKind kind() const = 0;
  // Appends the ids of `text` to `out`.
  virtual void encode(std::string_view text, std::vector<uint32_t>& out) const = 0;
  // The text of `ids`; throws rwkv::Error naming the id when one is out of range.
  // Special ids (end-of-document) decode to "".
  virtual std::string decode(std::span<const uint32_t> ids) const = 0;
  virtual uint32_t vocab_size() const = 0;  // ids are < vocab_size (padded sizes included)
  virtual uint32_t eod_id() const = 0;      // end-of-document id
  // SHA-256 (hex) of the file the tokenizer was loaded from; "" for Bytes.
  virtual std::string file_sha256() const = 0;
};

// Loads a tokenizer; `path` is ignored for Bytes. Throws rwkv::Error naming the file
// (and line, for World vocabularies) on any problem.
std::unique_ptr<Tokenizer> load_tokenizer(TokenizerKind kind, const std::string& path);

// The constructors load_tokenizer dispatches to (SentencePiece's, with training, is
// in tokenizer_sentencepiece.h).
// Bytes: id 0 = end-of-document, id 1 + b = byte b; vocab_size 257, not padded.
std::unique_ptr<Tokenizer> make_bytes_tokenizer();
// World: ids 1-256 are the single bytes, id 0 = end-of-document, greedy longest
// match over the UTF-8 bytes; vocab_size 65536.
std::unique_ptr<Tokenizer> load_world_tokenizer(const std::string& path);

}  // namespace rwkv::data
