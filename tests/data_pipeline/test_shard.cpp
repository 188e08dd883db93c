// Shards: what ShardWriter writes, read_shard_info / ShardReader (HDF5) read
// back; TokenFile's direct chunk reads (the loader's fast path) equal the HDF5
// reads on random ranges, for uint16 and uint32 tokens, across chunk and
// write-batch boundaries; the checksum covers the token data.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "common/error.h"
#include "data_pipeline/shard_reader.h"
#include "data_pipeline/shard_writer.h"
#include "data_pipeline/token_file.h"
#include "data_test_util.h"

namespace rwkv::data {

namespace {

struct Written {
  std::vector<uint32_t> tokens;  // in stored order: training documents, then validation
  ShardInfo info;
};

// Random documents (lengths 1..5000, ids < vocab) ending with eod 0; about one
// in five is a validation document.
Written write_random_shard(const std::string& path, uint64_t vocab, uint64_t total, uint32_t seed) {
  std::mt19937 rng(seed);
  ShardInfo header;
  header.tokenizer_kind = "world";
  header.tokenizer_sha256 = "abc";
  header.vocab_size = vocab;
  header.source = "test";
  header.fingerprint = "fp";
  ShardWriter w(path, header);
  std::vector<uint32_t> train, val;
  std::vector<uint32_t> doc;
  uint64_t n = 0;
  while (n < total) {
    doc.resize(1 + rng() % 5000);
    for (auto& t : doc) t = 1 + static_cast<uint32_t>(rng() % (vocab - 1));
    doc.back() = 0;
    const bool is_val = rng() % 5 == 0;
    w.add(doc, is_val ? "ru" : "en", doc.size() * 3, is_val);
    (is_val ? val : train).insert((is_val ? val : train).end(), doc.begin(), doc.end());
    n += doc.size();
  }
  Written out;
  out.info = w.finish({"empty", "too_long"}, {2, 1});
  out.tokens = train;
  out.tokens.insert(out.tokens.end(), val.begin(), val.end());
  EXPECT_EQ(out.info.train_tokens, train.size());
  return out;
}

void check_shard(uint64_t vocab, uint64_t width) {
  const std::string dir = test::scratch_dir("shard_" + std::to_string(width));
  const std::string path = dir + "/shard-00000.h5";
  // 1.5 Mi tokens: several 64 Ki chunks and more than one 1 Mi write batch.
  const Written w = write_random_shard(path, vocab, 1536 * 1024, 3);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));

  const ShardInfo s = read_shard_info(path);
  EXPECT_EQ(s.token_bytes, width);
  EXPECT_EQ(s.n_tokens, w.tokens.size());
  EXPECT_EQ(s.train_tokens, w.info.train_tokens);
  EXPECT_EQ(s.train_docs, w.info.train_docs);
  EXPECT_EQ(s.tokens_sha256, w.info.tokens_sha256);
  EXPECT_EQ(hash_shard_tokens(path), s.tokens_sha256);
  EXPECT_EQ(s.langs, (std::vector<std::string>{"en", "ru"}));
  EXPECT_EQ(s.lang_tokens[0] + s.lang_tokens[1], s.n_tokens);
  EXPECT_EQ(s.lang_bytes[0], 3 * s.lang_tokens[0]);
  EXPECT_EQ(s.skip_counts, (std::vector<uint64_t>{2, 1}));
  EXPECT_EQ(s.fingerprint, "fp");
  EXPECT_EQ(s.tokenizer_sha256, "abc");

  ShardReader hdf5(path);
  std::vector<uint32_t> all(s.n_tokens);
  hdf5.read(0, all.size(), all.data());
  EXPECT_EQ(all, w.tokens);
  const auto offsets = hdf5.doc_offsets();
  EXPECT_EQ(offsets.size(), s.n_docs + 1);
  for (size_t d = 1; d < offsets.size(); ++d) EXPECT_EQ(all[offsets[d] - 1], 0u);

  const TokenLayout layout = read_token_layout(path);
  EXPECT_EQ(layout.width, width);
  EXPECT_EQ(layout.chunk_tokens, kTokenChunk);
  TokenFile direct(path, layout);
  std::mt19937_64 rng(5);
  std::vector<uint32_t> a, b;
  for (int i = 0; i < 300; ++i) {
    const uint64_t len = 1 + rng() % (i % 10 == 0 ? 200000 : 3000);
    const uint64_t begin = rng() % (s.n_tokens - len);
    a.assign(len, 7);
    b.assign(len, 9);
    direct.read(begin, len, a.data());
    hdf5.read(begin, len, b.data());
    ASSERT_EQ(a, b) << "tokens [" << begin << ", " << begin + len << ")";
  }
  EXPECT_THROW(direct.read(s.n_tokens - 1, 2, a.data()), Error);
}

}  // namespace

TEST(Shard, Uint16TokensRoundTrip) { check_shard(65536, 2); }
TEST(Shard, Uint32TokensRoundTrip) { check_shard(100000, 4); }

TEST(Shard, RejectsIdsOutsideTheVocabulary) {
  const std::string dir = test::scratch_dir("shard_bad_id");
  ShardInfo header;
  header.vocab_size = 257;
  ShardWriter w(dir + "/s.h5", header);
  const std::vector<uint32_t> doc = {5, 300, 0};
  EXPECT_THROW(w.add(doc, "en", 3, false), Error);
}

TEST(Shard, TruncatedFileIsReportedWithItsName) {
  const std::string dir = test::scratch_dir("shard_truncated");
  const std::string path = dir + "/shard-00000.h5";
  write_random_shard(path, 65536, 200000, 4);
  std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);
  try {
    read_token_layout(path);
    FAIL() << "truncation not detected";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_shard_info(path), Error);
}

}  // namespace rwkv::data
