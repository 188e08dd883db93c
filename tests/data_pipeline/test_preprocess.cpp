// rwkv preprocess end to end (the executable, 1 and 3 ranks): documents come
// back exactly; the result does not depend on the rank count; a killed run
// resumes keeping its finished shards; every kind of bad input is counted
// under its reason (default) or is a fatal error naming file, line and reason
// (--strict); fatal errors leave no manifest.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "data_pipeline/manifest.h"
#include "data_pipeline/shard_reader.h"
#include "data_pipeline/tokenizer.h"
#include "data_test_util.h"

namespace rwkv::data {

using test::run_rwkv;
using test::scratch_dir;
using test::write_file;

namespace {

namespace fs = std::filesystem;

// Every document of a dataset, decoded, with its language and split, sorted.
std::vector<std::string> read_back(const std::string& dir, const Tokenizer& tok) {
  const Manifest m = read_manifest(dir);
  std::vector<std::string> docs;
  for (const auto& s : m.shards) {
    ShardReader r(dir + "/" + s.file);
    std::vector<uint32_t> ids(r.n_tokens());
    r.read(0, ids.size(), ids.data());
    const auto offsets = r.doc_offsets();
    const auto langs = r.doc_lang();
    const auto names = r.lang_names();
    for (size_t d = 0; d + 1 < offsets.size(); ++d) {
      const std::span<const uint32_t> doc(ids.data() + offsets[d], offsets[d + 1] - offsets[d]);
      EXPECT_EQ(doc.back(), tok.eod_id()) << "document " << d << " of " << s.file << " lacks the end token";
      const char* split = d < s.train_docs ? "train" : "val";
      docs.push_back(names[langs[d]] + "|" + split + "|" + tok.decode(doc.first(doc.size() - 1)));
    }
  }
  std::sort(docs.begin(), docs.end());
  return docs;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// A small multilingual corpus: JSONL with and without a language field, a
// directory language, gzip, and a delimited text file.
std::vector<std::string> multilingual_docs() {
  return {"Hello, world!\n", "  leading and trailing spaces  ", "tab\there\r\nCRLF",
          "Ünïcödé façade naïve", "Привет, мир! Съешь же ещё этих мягких французских булок.",
          "Καλημέρα κόσμε", "你好，世界。中文文本。", "こんにちは世界", "مرحبا بالعالم",
          "नमस्ते दुनिया", "👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 emoji", "e\u0301 combining", "quotes \" and \\ backslash",
          "한국어 텍스트", "שלום עולם"};
}

std::string corpus(const std::string& dir) {
  const auto docs = multilingual_docs();
  std::string jsonl;
  for (size_t i = 0; i < docs.size(); ++i) {
    jsonl += "{\"id\": " + std::to_string(i) + ", \"text\": " + json_string(docs[i]) +
             (i % 3 == 0 ? "" : ", \"lang\": \"l" + std::to_string(i % 4) + "\"") + "}\n";
  }
  // Enough documents for several units and a non-empty validation split.
  for (int i = 0; i < 400; ++i) jsonl += "{\"text\": \"filler document number " + std::to_string(i) + "\"}\n";
  write_file(dir + "/in/ml/a.jsonl", jsonl);
  write_file(dir + "/in/de/b.txt", "Erstes Dokument.<DOC>Zweites Dokument, äöü ß.<DOC>Drittes.");
  return dir + "/in";
}

std::vector<std::string> expected_docs() {
  std::vector<std::string> out;
  const auto docs = multilingual_docs();
  for (size_t i = 0; i < docs.size(); ++i) {
    std::string lang = "ml";
    if (i % 3 != 0) lang = std::string(1, 'l').append(std::to_string(i % 4));
    out.push_back(lang);
  }
  std::vector<std::string> texts(docs.begin(), docs.end());
  for (int i = 0; i < 400; ++i) {
    out.push_back("ml");
    texts.push_back("filler document number " + std::to_string(i));
  }
  for (const char* t : {"Erstes Dokument.", "Zweites Dokument, äöü ß.", "Drittes."}) {
    out.push_back("de");
    texts.push_back(t);
  }
  std::vector<std::string> all;
  for (size_t i = 0; i < texts.size(); ++i) all.push_back(out[i] + "|" + texts[i]);
  std::sort(all.begin(), all.end());
  return all;
}

std::vector<std::string> strip_split(std::vector<std::string> docs) {
  for (auto& d : docs) {
    const size_t a = d.find('|'), b = d.find('|', a + 1);
    d = d.substr(0, a) + d.substr(b);
  }
  std::sort(docs.begin(), docs.end());
  return docs;
}

const std::string kCommon = " --lang-from-path --doc-delimiter '<DOC>' --val-fraction 0.05 --unit-bytes 4000";

ino_t inode(const std::string& path) {
  struct stat st {};
  ::stat(path.c_str(), &st);
  return st.st_ino;
}

}  // namespace

TEST(Preprocess, MultilingualRoundTripOneAndThreeRanksAgree) {
  const std::string dir = scratch_dir("pp_roundtrip");
  const std::string in = corpus(dir);
  const auto one = run_rwkv("preprocess " + in + " -o " + dir + "/one" + kCommon);
  ASSERT_EQ(one.exit_code, 0) << one.output;
  EXPECT_NE(one.output.find("documents: 418"), std::string::npos) << one.output;
  const auto three = run_rwkv("preprocess " + in + " -o " + dir + "/three" + kCommon, 3);
  ASSERT_EQ(three.exit_code, 0) << three.output;

  const auto tok = load_tokenizer(TokenizerKind::Bytes, "");
  const auto docs = read_back(dir + "/one", *tok);
  EXPECT_EQ(strip_split(docs), expected_docs());
  EXPECT_EQ(read_back(dir + "/three", *tok), docs);
  // Same units, same shards: the manifests are identical, checksums included.
  EXPECT_EQ(test::read_file(dir + "/three/manifest.yaml"), test::read_file(dir + "/one/manifest.yaml"));
  const Manifest m = read_manifest(dir + "/one");
  EXPECT_GT(m.shards.size(), 2u);
  EXPECT_GT(m.docs, m.train_docs);  // some validation documents
  EXPECT_EQ(m.docs, 418u);
  EXPECT_EQ(m.langs.at("de").docs, 3u);
  EXPECT_EQ(m.langs.at("de").bytes, std::string("Erstes Dokument.Zweites Dokument, äöü ß.Drittes.").size());
}

TEST(Preprocess, KilledRunResumesAndKeepsFinishedShards) {
  const std::string dir = scratch_dir("pp_resume");
  const std::string in = corpus(dir);
  ASSERT_EQ(run_rwkv("preprocess " + in + " -o " + dir + "/ref" + kCommon).exit_code, 0);
  const auto killed = run_rwkv("preprocess " + in + " -o " + dir + "/out" + kCommon + " --stop-after-shards 2");
  EXPECT_EQ(killed.exit_code, 1);
  EXPECT_NE(killed.output.find("stopped after writing 2 shards"), std::string::npos) << killed.output;
  EXPECT_FALSE(fs::exists(dir + "/out/manifest.yaml"));
  EXPECT_TRUE(fs::exists(dir + "/out/preprocess.failed"));
  const ino_t first = inode(dir + "/out/shard-00000.h5"), second = inode(dir + "/out/shard-00001.h5");
  ASSERT_NE(first, 0u);
  EXPECT_FALSE(fs::exists(dir + "/out/shard-00002.h5"));

  const auto rerun = run_rwkv("preprocess " + in + " -o " + dir + "/out" + kCommon);
  ASSERT_EQ(rerun.exit_code, 0) << rerun.output;
  EXPECT_NE(rerun.output.find("2 kept"), std::string::npos) << rerun.output;
  EXPECT_FALSE(fs::exists(dir + "/out/preprocess.failed"));
  EXPECT_EQ(inode(dir + "/out/shard-00000.h5"), first);
  EXPECT_EQ(inode(dir + "/out/shard-00001.h5"), second);
  EXPECT_EQ(test::read_file(dir + "/out/manifest.yaml"), test::read_file(dir + "/ref/manifest.yaml"));

  // A damaged finished shard fails its checksum and is written again.
  {
    std::fstream f(dir + "/out/shard-00001.h5", std::ios::in | std::ios::out | std::ios::binary);
    const std::string data = test::read_file(dir + "/out/shard-00001.h5");
    // "fil" of "filler" as stored: byte ids (byte + 1) in uint16 little-endian
    const size_t at = data.find(std::string("\x67\x00\x6a\x00\x6d\x00", 6));
    ASSERT_NE(at, std::string::npos);
    f.seekp(static_cast<std::streamoff>(at));
    f.put('\x01');
  }
  const auto again = run_rwkv("preprocess " + in + " -o " + dir + "/out" + kCommon);
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("1 written"), std::string::npos) << again.output;
  EXPECT_EQ(test::read_file(dir + "/out/manifest.yaml"), test::read_file(dir + "/ref/manifest.yaml"));
}

// One bad record among good ones: counted under `reason` by default; with
// --strict a fatal error naming file:line and the reason, and no manifest.
struct BadInput {
  const char* name;
  std::string file;  // relative to the input directory
  std::string content;
  const char* reason;
  int line;
  std::string extra_args;
};

// Test names: the case's name.
void PrintTo(const BadInput& b, std::ostream* os) { *os << b.name; }

class PreprocessBadInput : public ::testing::TestWithParam<BadInput> {};

TEST_P(PreprocessBadInput, CountedByDefaultFatalWhenStrict) {
  const BadInput& b = GetParam();
  const std::string dir = scratch_dir(std::string("pp_bad_") + b.name);
  write_file(dir + "/in/good.jsonl", "{\"text\": \"fine\"}\n");
  if (!b.file.empty()) write_file(dir + "/in/" + b.file, b.content);
  if (b.file.empty()) fs::create_symlink(dir + "/missing.jsonl", dir + "/in/zz.jsonl");
  const auto ok = run_rwkv("preprocess " + dir + "/in -o " + dir + "/out " + b.extra_args);
  ASSERT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_NE(ok.output.find(std::string(b.reason) + ": 1"), std::string::npos) << ok.output;
  const Manifest m = read_manifest(dir + "/out");
  EXPECT_EQ(m.skipped.at(b.reason), 1u);
  EXPECT_GE(m.docs, 1u);

  const auto strict = run_rwkv("preprocess " + dir + "/in -o " + dir + "/strict --strict " + b.extra_args);
  EXPECT_EQ(strict.exit_code, 1) << strict.output;
  const std::string where = b.file.empty() ? dir + "/in/zz.jsonl" : dir + "/in/" + b.file + ":" + std::to_string(b.line);
  EXPECT_NE(strict.output.find(where), std::string::npos) << strict.output;
  EXPECT_NE(strict.output.find(b.reason), std::string::npos) << strict.output;
  EXPECT_FALSE(fs::exists(dir + "/strict/manifest.yaml"));
}

INSTANTIATE_TEST_SUITE_P(
    Reasons, PreprocessBadInput,
    ::testing::Values(
        BadInput{"utf8", "x.jsonl", "{\"text\": \"a\"}\n{\"text\": \"bad \xc3\x28 utf8\"}\n", "invalid_utf8", 2, ""},
        BadInput{"nul", "x.txt", std::string("nul\0byte", 8), "nul_byte", 1, ""},
        BadInput{"empty", "x.txt", "", "empty", 1, ""},
        BadInput{"long", "x.jsonl", "{\"text\": \"" + std::string(3000, 'y') + "\"}\n", "too_long", 1,
                 "--max-doc-bytes 1000"},
        BadInput{"truncated", "x.jsonl", "{\"text\": \"a\"}\n{\"text\": \"b\"}\n{\"text\": \"cut of", "truncated_line",
                 3, ""},
        BadInput{"json", "x.jsonl", "{\"text\": \"a\"}\n{\"text\" \"b\"}\n", "invalid_json", 2, ""},
        BadInput{"missing", "x.jsonl", "{\"content\": \"a\"}\n", "missing_text", 1, ""},
        BadInput{"nonstring", "x.jsonl", "{\"text\": \"a\"}\n{\"text\": \"b\"}\n{\"text\": [\"a\"]}\n",
                 "non_string_text", 3, "--text-field text"},
        BadInput{"unreadable", "", "", "unreadable_file", 0, ""}),
    [](const ::testing::TestParamInfo<BadInput>& info) { return std::string(info.param.name); });

TEST(Preprocess, RepairUtf8KeepsTheDocumentWithReplacementCharacters) {
  const std::string dir = scratch_dir("pp_repair");
  write_file(dir + "/in/x.jsonl", "{\"text\": \"bad \xc3\x28 utf8\"}\n");
  const auto r = run_rwkv("preprocess " + dir + "/in -o " + dir + "/out --repair-utf8 --val-fraction 0");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto tok = load_tokenizer(TokenizerKind::Bytes, "");
  EXPECT_EQ(read_back(dir + "/out", *tok), (std::vector<std::string>{"und|train|bad \xef\xbf\xbd( utf8"}));
}

TEST(Preprocess, FatalErrorsOnThreeRanksExitTogetherWithoutManifest) {
  const std::string dir = scratch_dir("pp_fatal_mpi");
  std::string body;
  for (int i = 0; i < 300; ++i) body += "{\"text\": \"document " + std::to_string(i) + "\"}\n";
  body += "{\"text\": 1}\n";
  write_file(dir + "/in/a.jsonl", body);
  const auto r = run_rwkv("preprocess " + dir + "/in -o " + dir + "/out --strict --unit-bytes 1000", 3);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("a.jsonl:301"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("non_string_text"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir + "/out/manifest.yaml"));
  const auto bad_tok = run_rwkv("preprocess " + dir + "/in -o " + dir + "/out2 --tokenizer world --tokenizer-file " +
                                dir + "/none.txt", 3);
  EXPECT_EQ(bad_tok.exit_code, 1) << bad_tok.output;
  EXPECT_NE(bad_tok.output.find(dir + "/none.txt"), std::string::npos) << bad_tok.output;
  EXPECT_FALSE(fs::exists(dir + "/out2/manifest.yaml"));
}

TEST(Preprocess, WorldTokenizerIsCopiedIntoTheDatasetAndRoundTrips) {
  const std::string dir = scratch_dir("pp_world");
  const std::string in = corpus(dir);
  const std::string vocab = std::string(RWKV_SOURCE_DIR) + "/tests/data/tokenizer/world_small.txt";
  const auto r = run_rwkv("preprocess " + in + " -o " + dir + "/out" + kCommon + " --tokenizer world --tokenizer-file " +
                          vocab);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const Manifest m = read_manifest(dir + "/out");
  EXPECT_EQ(m.tokenizer_kind, "world");
  EXPECT_EQ(m.tokenizer_file, "tokenizer.txt");
  EXPECT_EQ(m.vocab_size, 65536u);
  EXPECT_EQ(m.token_bytes, 2u);
  const auto tok = load_tokenizer(TokenizerKind::World, dir + "/out/tokenizer.txt");
  EXPECT_EQ(tok->file_sha256(), m.tokenizer_sha256);
  EXPECT_EQ(strip_split(read_back(dir + "/out", *tok)), expected_docs());
}

// A sample budget smaller than the corpus (51 of its 418 documents), so that
// the per-language sampling across ranks is exercised.
const std::string kSp =
    " --train-sentencepiece --sp-model-type bpe --vocab-size 450 --character-coverage 1.0 --sp-sample-bytes 6000";

TEST(Preprocess, TrainsASentencePieceModelAndRoundTrips) {
  const std::string dir = scratch_dir("pp_sentencepiece");
  const std::string in = corpus(dir);
  const auto r = run_rwkv("preprocess " + in + " -o " + dir + "/out" + kCommon + kSp);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("on 51 documents in 6 languages"), std::string::npos) << r.output;
  const Manifest m = read_manifest(dir + "/out");
  EXPECT_EQ(m.tokenizer_kind, "sentencepiece");
  EXPECT_EQ(m.tokenizer_file, "tokenizer.model");
  const auto tok = load_tokenizer(TokenizerKind::SentencePiece, dir + "/out/tokenizer.model");
  EXPECT_EQ(m.tokenizer_sha256, tok->file_sha256());
  EXPECT_EQ(strip_split(read_back(dir + "/out", *tok)), expected_docs());
  // The training sample, hence the model and the shards, do not depend on the rank count.
  const auto three = run_rwkv("preprocess " + in + " -o " + dir + "/three" + kCommon + kSp, 3);
  ASSERT_EQ(three.exit_code, 0) << three.output;
  // (The .model files differ only in the output path SentencePiece records in
  // them, so the manifests are compared without the tokenizer's SHA-256.)
  auto without_sha = [](const std::string& path) {
    Manifest m = read_manifest(path);
    m.tokenizer_sha256.clear();
    return manifest_to_yaml(m);
  };
  EXPECT_EQ(without_sha(dir + "/three"), without_sha(dir + "/out"));
  // The rerun reuses the trained model and every shard.
  const auto again = run_rwkv("preprocess " + in + " -o " + dir + "/out" + kCommon + kSp);
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("(0 written, 6 kept)"), std::string::npos) << again.output;
}

}  // namespace rwkv::data
