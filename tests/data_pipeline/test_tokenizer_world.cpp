#include <gtest/gtest.h>

#include <map>

#include "common/error.h"
#include "data_pipeline/sha256.h"
#include "tests/data_pipeline/data_test_util.h"
#include "tests/data_pipeline/round_trip.h"

namespace {

using namespace rwkv::data;

// 256 single bytes (ids 1-256, written as the published file writes them) and
// hand-written tokens with quotes, backslashes, every escape kind, multi-byte
// UTF-8, and tokens that are prefixes of others.
const std::string kVocab = RWKV_SOURCE_DIR "/tests/data/tokenizer/world_small.txt";

// A scratch directory in the build tree of the running test's own, emptied when
// the test first asks for it: ctest may run tests in parallel, and several build
// trees may run them at once.
std::string scratch() {
  static std::string test_name, dir;
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string name = std::string(info->test_suite_name()) + "." + info->name();
  if (name != test_name) {
    test_name = name;
    dir = test::scratch_dir(name);
  }
  return dir;
}

std::string write_temp(const std::string& name, const std::string& content) {
  const std::string path = scratch() + "/" + name;
  test::write_file(path, content);
  return path;
}

std::vector<uint32_t> encode(const Tokenizer& tok, std::string_view text) {
  std::vector<uint32_t> ids;
  tok.encode(text, ids);
  return ids;
}

TEST(WorldTokenizer, LoadsSmallVocabulary) {
  const auto tok = load_tokenizer(TokenizerKind::World, kVocab);
  EXPECT_EQ(tok->kind(), TokenizerKind::World);
  EXPECT_EQ(tok->vocab_size(), 65536u);
  EXPECT_EQ(tok->eod_id(), 0u);
  EXPECT_EQ(tok->file_sha256(), sha256_file_hex(kVocab));
}

TEST(WorldTokenizer, LiteralsDecodeToTheirBytes) {
  const auto tok = load_world_tokenizer(kVocab);
  const std::map<uint32_t, std::string> expected = {
      {1, std::string(1, '\0')}, {35, "\""}, {40, "'"}, {93, "\\"}, {128, "\x7F"},
      {129, "\x80"}, {256, "\xFF"}, {257, "\t\t"}, {258, "\n\n"}, {259, " \""},
      {260, " '"}, {261, "\\\\"}, {267, "\xE4\xB8\xAD"}, {268, "\xE4\xB8\xAD\xE6\x96\x87"},
      {269, "\xE4\xB8"}, {270, "\xC3\xA9"}, {271, "\xF0\x9F\x98\x80"}, {272, "it's"},
      {273, "'\""}, {274, "AB"}, {275, "\xC2\x80"},  // str '\x80' is U+0080, 2 bytes
      {276, "a\tb"}, {277, "\xF0\x9F"}, {278, "\r\n"}, {279, std::string("\0\1", 2)},
      {280, "\\'"}, {65535, "zzz"},
  };
  for (const auto& [id, bytes] : expected) {
    const std::vector<uint32_t> one = {id};
    EXPECT_EQ(tok->decode(one), bytes) << "id " << id;
  }
}

TEST(WorldTokenizer, GreedyLongestMatchOnHandComputedExamples) {
  const auto tok = load_world_tokenizer(kVocab);
  using V = std::vector<uint32_t>;
  EXPECT_EQ(encode(*tok, ""), V{});
  EXPECT_EQ(encode(*tok, "hello world"), V{265});
  // "hello worl": the walk passes "hello w..." but the last token seen is "hello".
  EXPECT_EQ(encode(*tok, "hello worl"), (V{264, 33, 120, 112, 115, 109}));
  EXPECT_EQ(encode(*tok, "help"), (V{263, 113}));
  EXPECT_EQ(encode(*tok, "hello world world"), (V{265, 266}));
  EXPECT_EQ(encode(*tok, "\xE4\xB8\xAD\xE6\x96\x87\xE4\xB8\xAD"), (V{268, 267}));  // 中文中
  EXPECT_EQ(encode(*tok, "\xE4\xB8\xAD\xE4\xB8\x80"), (V{267, 269, 129}));         // 中一
  EXPECT_EQ(encode(*tok, "\xC3\xA9\xC2\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x81"),
            (V{270, 275, 271, 277, 153, 130}));
  EXPECT_EQ(encode(*tok, "\r\n\r\n\n\n\n"), (V{278, 278, 258, 11}));
  EXPECT_EQ(encode(*tok, "it's \"\\\\'"), (V{272, 259, 261, 40}));
  EXPECT_EQ(encode(*tok, std::string("\0\1\0", 3)), (V{279, 1}));
  EXPECT_EQ(encode(*tok, "zzzz"), (V{65535, 123}));
}

// Reference: at each position try every token and keep the longest that matches.
std::vector<uint32_t> reference_encode(const std::vector<std::pair<std::string, uint32_t>>& tokens,
                                       std::string_view text) {
  std::vector<uint32_t> ids;
  for (size_t i = 0; i < text.size();) {
    size_t best_len = 0;
    uint32_t best = 0;
    for (const auto& [bytes, id] : tokens) {
      if (bytes.size() > best_len && text.substr(i, bytes.size()) == bytes) {
        best_len = bytes.size();
        best = id;
      }
    }
    ids.push_back(best);
    i += best_len;
  }
  return ids;
}

TEST(WorldTokenizer, TrieMatchesBruteForceReference) {
  const auto tok = load_world_tokenizer(kVocab);
  std::vector<std::pair<std::string, uint32_t>> tokens;
  for (uint32_t id = 1; id < 65536; ++id) {
    if (id > 280 && id < 65535) continue;  // ids of world_small.txt: 1-280 and 65535
    const std::vector<uint32_t> one = {id};
    tokens.emplace_back(tok->decode(one), id);
  }
  // Text made of token pieces, so that long and partial matches are frequent.
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    std::string text;
    const size_t n = rng() % 40;
    for (size_t k = 0; k < n; ++k) {
      const std::string& t = tokens[256 + rng() % (tokens.size() - 256)].first;
      text += rng() % 3 == 0 ? t.substr(0, rng() % t.size() + 1) : t;
      if (rng() % 4 == 0) text.push_back(static_cast<char>(rng()));
    }
    ASSERT_EQ(encode(*tok, text), reference_encode(tokens, text)) << "trial " << trial;
  }
}

TEST(WorldTokenizer, Lossless) { samples::expect_lossless(*load_world_tokenizer(kVocab)); }

TEST(WorldTokenizer, AnyBytesRoundTrip) {
  // Byte-level, so even ill-formed UTF-8 comes back unchanged.
  const auto tok = load_world_tokenizer(kVocab);
  std::mt19937_64 rng(13);
  for (int trial = 0; trial < 100; ++trial) {
    std::string bytes(rng() % 200, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    EXPECT_EQ(tok->decode(encode(*tok, bytes)), bytes) << "trial " << trial;
  }
}

TEST(WorldTokenizer, AcceptsCrlfLineEnds) {
  // The published rwkv_vocab_v20230424.txt ends its lines with CR LF.
  std::string crlf;
  for (const char c : test::read_file(kVocab)) {
    if (c == '\n') crlf.push_back('\r');
    crlf.push_back(c);
  }
  const auto tok = load_world_tokenizer(write_temp("world_crlf.txt", crlf));
  EXPECT_EQ(encode(*tok, "hello world\r\n"), (std::vector<uint32_t>{265, 278}));
}

TEST(WorldTokenizer, DecodeRejectsIdsOutsideTheVocabulary) {
  const auto tok = load_world_tokenizer(kVocab);
  for (const uint32_t id : {281u, 65534u, 65536u}) {
    const std::vector<uint32_t> ids = {262, id};
    try {
      tok->decode(ids);
      ADD_FAILURE() << "expected rwkv::Error for id " << id;
    } catch (const rwkv::Error& e) {
      EXPECT_NE(std::string(e.what()).find("id " + std::to_string(id) + " at position 1"),
                std::string::npos) << e.what();
    }
  }
}

// Each malformed line, appended to the valid vocabulary, gives an error that names
// the file and the line.
TEST(WorldTokenizer, MalformedLinesNameFileAndLine) {
  const std::string base = test::read_file(kVocab);
  const size_t bad_line = static_cast<size_t>(std::count(base.begin(), base.end(), '\n')) + 1;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"300 'abc 3", "unterminated"},
      {"300 'abc\\' 4", "unterminated"},
      {"300 \"abc' 3", "unterminated"},
      {"300 abc 3", "quoted"},
      {"300 u8'abc' 3", "quoted"},
      {"300 'ab'c' 4", "after the closing quote"},
      {"300 'ab' 3", "byte length column says 3"},
      {"300 '\\u00e9' 1", "byte length column says 1"},
      {"300 'ab' x", "byte length"},
      {"262 'xy' 2", "id 262 already defined on line 262"},
      {"65536 'xy' 2", "not an integer in 1..65535"},
      {"-3 'xy' 2", "not an integer"},
      {"0 'xy' 2", "reserved for end-of-document"},
      {"300 'hello' 5", "same token as line 264"},
      {"300 '\\q' 2", "unsupported escape \\q"},
      {"300 '\\x4' 1", "2 hex digits"},
      {"300 '\\ud800' 3", "not a Unicode scalar value"},
      {"300 '\\U00110000' 4", "not a Unicode scalar value"},
      {"300 b'\\u00e9' 2", "not allowed in a bytes literal"},
      {"300 b'\\777' 1", "above 0xff"},
      {"300 b'\xC3\xA9' 2", "non-ASCII"},
      {"300 '\xC3' 1", "invalid UTF-8"},
      {"300 '' 0", "empty token"},
      {"300 'ab'", "expected '<id>"},
      {"300", "expected '<id>"},
      {"300 'A' 1", "single-byte token must have id 1 + its byte value (66)"},
  };
  for (size_t k = 0; k < cases.size(); ++k) {
    const auto& [line, message] = cases[k];
    const std::string path = write_temp("world_bad_" + std::to_string(k) + ".txt", base + line + "\n");
    try {
      load_tokenizer(TokenizerKind::World, path);
      ADD_FAILURE() << "no error for line: " << line;
    } catch (const rwkv::Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(path + ":" + std::to_string(bad_line) + ": "), std::string::npos)
          << line << " -> " << what;
      EXPECT_NE(what.find(message), std::string::npos) << line << " -> " << what;
    }
  }
}

TEST(WorldTokenizer, MissingSingleByteIsAnError) {
  std::string content = test::read_file(kVocab);
  const size_t at = content.find("\n66 'A' 1\n");
  ASSERT_NE(at, std::string::npos);
  content.erase(at + 1, 9);
  const std::string path = write_temp("world_no_A.txt", content);
  try {
    load_world_tokenizer(path);
    FAIL() << "expected rwkv::Error";
  } catch (const rwkv::Error& e) {
    EXPECT_NE(std::string(e.what()).find(path + ": the vocabulary lacks the single-byte token 65"),
              std::string::npos) << e.what();
  }
}

TEST(WorldTokenizer, MissingFileIsNamed) {
  try {
    load_tokenizer(TokenizerKind::World, "/nonexistent/rwkv_vocab.txt");
    FAIL() << "expected rwkv::Error";
  } catch (const rwkv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/rwkv_vocab.txt"), std::string::npos);
  }
}

}  // namespace
