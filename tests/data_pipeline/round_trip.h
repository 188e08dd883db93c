#pragma once
// The lossless check every tokenizer must pass: decode(encode(doc)) == doc, on the
// multilingual documents and on seeded random UTF-8.
#include <gtest/gtest.h>

#include "data_pipeline/tokenizer.h"
#include "tests/data_pipeline/text_samples.h"

namespace rwkv::data::samples {

inline void expect_round_trip(const Tokenizer& tok, const std::string& doc, const std::string& what) {
  std::vector<uint32_t> ids;
  tok.encode(doc, ids);
  for (const uint32_t id : ids) ASSERT_LT(id, tok.vocab_size()) << what;
  if (!doc.empty()) {
    for (const uint32_t id : ids) ASSERT_NE(id, tok.eod_id()) << what << ": encode() made eod";
  }
  EXPECT_EQ(tok.decode(ids), doc) << what;
}

inline void expect_lossless(const Tokenizer& tok, int n_random = 100) {
  std::string all;
  for (const auto& [lang, doc] : multilingual_documents()) {
    expect_round_trip(tok, doc, lang + " document");
    all += doc;
  }
  expect_round_trip(tok, all, "all documents joined");
  std::mt19937_64 rng(7);
  for (int i = 0; i < n_random; ++i) {
    expect_round_trip(tok, random_utf8(rng, rng() % 300), "random UTF-8 #" + std::to_string(i));
  }
  // Appending eod to the ids of a document changes nothing in the text.
  std::vector<uint32_t> ids;
  tok.encode("end.", ids);
  ids.push_back(tok.eod_id());
  EXPECT_EQ(tok.decode(ids), "end.");
}

}  // namespace rwkv::data::samples
