#include <gtest/gtest.h>

#include "common/error.h"
#include "tests/data_pipeline/round_trip.h"

namespace {

using namespace rwkv::data;

TEST(BytesTokenizer, IdsAreBytesPlusOne) {
  const auto tok = load_tokenizer(TokenizerKind::Bytes, "");
  EXPECT_EQ(tok->kind(), TokenizerKind::Bytes);
  EXPECT_EQ(tok->vocab_size(), 257u);
  EXPECT_EQ(tok->eod_id(), 0u);
  EXPECT_EQ(tok->file_sha256(), "");
  std::vector<uint32_t> ids = {42};
  tok->encode(std::string("A\0\xFF\xE4\xB8\xAD", 6), ids);
  EXPECT_EQ(ids, (std::vector<uint32_t>{42, 66, 1, 256, 229, 185, 174}));
}

TEST(BytesTokenizer, Lossless) { samples::expect_lossless(*make_bytes_tokenizer()); }

TEST(BytesTokenizer, DecodeRejectsOutOfRangeIdsNamingThem) {
  const auto tok = make_bytes_tokenizer();
  const std::vector<uint32_t> ids = {5, 257};
  try {
    tok->decode(ids);
    FAIL() << "expected rwkv::Error";
  } catch (const rwkv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("id 257 at position 1"), std::string::npos) << e.what();
  }
}

TEST(TokenizerKind, NamesRoundTrip) {
  for (const auto kind : {TokenizerKind::Bytes, TokenizerKind::World, TokenizerKind::SentencePiece}) {
    EXPECT_EQ(tokenizer_kind_from_name(tokenizer_kind_name(kind)), kind);
  }
  EXPECT_STREQ(tokenizer_kind_name(TokenizerKind::World), "world");
  EXPECT_THROW(tokenizer_kind_from_name("bpe"), rwkv::Error);
}

}  // namespace
