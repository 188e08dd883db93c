#include "data_pipeline/tokenizer.h"

#include "common/error.h"
#include "data_pipeline/tokenizer_sentencepiece.h"

namespace rwkv::data {

const char* tokenizer_kind_name(TokenizerKind kind) {
  switch (kind) {
    case TokenizerKind::Bytes: return "bytes";
    case TokenizerKind::World: return "world";
    case TokenizerKind::SentencePiece: return "sentencepiece";
  }
  return "unknown";
}

TokenizerKind tokenizer_kind_from_name(std::string_view name) {
  for (const auto kind : {TokenizerKind::Bytes, TokenizerKind::World, TokenizerKind::SentencePiece}) {
    if (name == tokenizer_kind_name(kind)) return kind;
  }
  throw Error("unknown tokenizer kind '" + std::string(name) +
              "' (expected bytes, world or sentencepiece)");
}

std::unique_ptr<Tokenizer> load_tokenizer(TokenizerKind kind, const std::string& path) {
  switch (kind) {
    case TokenizerKind::Bytes: return make_bytes_tokenizer();
    case TokenizerKind::World: return load_world_tokenizer(path);
    case TokenizerKind::SentencePiece: return load_sentencepiece_tokenizer(path);
  }
  throw Error("load_tokenizer: invalid tokenizer kind");
}

}  // namespace rwkv::data
