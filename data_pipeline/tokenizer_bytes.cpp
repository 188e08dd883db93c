// The byte tokenizer: one token per byte, ids laid out as in the World vocabulary
// (id 0 = end-of-document, id 1 + b = byte b), so it is lossless for any input.
#include <string>

#include "common/error.h"
#include "data_pipeline/tokenizer.h"

namespace rwkv::data {

namespace {

constexpr uint32_t kBytesVocab = 257;

struct BytesTokenizer final : Tokenizer {
  TokenizerKind kind() const override { return TokenizerKind::Bytes; }

  void encode(std::string_view text, std::vector<uint32_t>& out) const override {
    out.reserve(out.size() + text.size());
    for (const char c : text) out.push_back(1u + static_cast<unsigned char>(c));
  }

  std::string decode(std::span<const uint32_t> ids) const override {
    std::string text;
    text.reserve(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      const uint32_t id = ids[i];
      if (id >= kBytesVocab) {
        throw Error("bytes tokenizer: id " + std::to_string(id) + " at position " +
                    std::to_string(i) + " is out of range (vocab_size 257)");
      }
      if (id != 0) text.push_back(static_cast<char>(id - 1));
    }
    return text;
  }

  uint32_t vocab_size() const override { return kBytesVocab; }
  uint32_t eod_id() const override { return 0; }
  std::string file_sha256() const override { return {}; }
};

}  // namespace

std::unique_ptr<Tokenizer> make_bytes_tokenizer() { return std::make_unique<BytesTokenizer>(); }

}  // namespace rwkv::data
