// Corpus reading: cutting files into byte-range units never loses or repeats a
// document; gzip; directories and globs; languages; bad records reported with
// their reason; huge records skipped without holding them in memory.
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <random>

#include "common/error.h"
#include "data_pipeline/corpus_reader.h"
#include "data_test_util.h"

namespace rwkv::data {

using test::scratch_dir;
using test::write_file;

namespace {

struct Collected {
  std::vector<std::string> docs, langs;
  std::vector<uint64_t> offsets;
  std::vector<Skip> skips;
};

Collected read_all(const std::vector<std::string>& specs, const ReaderOptions& opts, uint64_t unit_bytes) {
  Collected c;
  const auto files = expand_inputs(specs, opts);
  UnitCallbacks cb;
  cb.on_document = [&](const Document& d) {
    c.docs.emplace_back(d.text);
    c.langs.emplace_back(d.lang);
    c.offsets.push_back(d.offset);
  };
  cb.on_skip = [&](const Skip& s) { c.skips.push_back(s); };
  for (const auto& u : plan_units(files, opts, unit_bytes)) read_unit(files[u.file], u, opts, cb);
  return c;
}

std::string random_text(std::mt19937& rng, size_t max_len) {
  static const std::string alphabet = "abc xyz\t\"\\\n";
  std::string s;
  const size_t n = 1 + rng() % max_len;
  for (size_t i = 0; i < n; ++i) s += alphabet[rng() % alphabet.size()];
  return s;
}

std::string json_escape(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') out += std::string("\\") + c;
    else if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else out += c;
  }
  return out + "\"";
}

}  // namespace

TEST(CorpusReader, ByteRangeUnitsCoverEveryJsonlLineOnce) {
  const std::string dir = scratch_dir("reader_units_jsonl");
  std::mt19937 rng(1);
  std::vector<std::string> expected;
  std::string body;
  for (int i = 0; i < 300; ++i) {
    expected.push_back(random_text(rng, i % 10 == 0 ? 400 : 40));
    body += "{\"text\": " + json_escape(expected.back()) + "}\n";
  }
  write_file(dir + "/a.jsonl", body);
  for (const uint64_t unit : {1ull, 7ull, 64ull, 333ull, 4096ull, 1ull << 30}) {
    const Collected c = read_all({dir + "/a.jsonl"}, ReaderOptions{}, unit);
    EXPECT_EQ(c.docs, expected) << "unit_bytes " << unit;
    EXPECT_TRUE(c.skips.empty());
    EXPECT_TRUE(std::is_sorted(c.offsets.begin(), c.offsets.end()));
  }
}

TEST(CorpusReader, ByteRangeUnitsCoverEveryDelimitedDocumentOnce) {
  const std::string dir = scratch_dir("reader_units_text");
  std::mt19937 rng(2);
  std::vector<std::string> expected;
  std::string body;
  for (int i = 0; i < 200; ++i) {
    std::string doc = random_text(rng, 60);
    while (doc.find("<|end|>") != std::string::npos) doc = random_text(rng, 60);
    expected.push_back(doc);
    body += doc + "<|end|>";
  }
  body += "last one, no delimiter";
  expected.push_back("last one, no delimiter");
  write_file(dir + "/a.txt", body);
  ReaderOptions opts;
  opts.delimiter = "<|end|>";
  for (const uint64_t unit : {1ull, 5ull, 100ull, 1000ull, 1ull << 30}) {
    const Collected c = read_all({dir + "/a.txt"}, opts, unit);
    EXPECT_EQ(c.docs, expected) << "unit_bytes " << unit;
  }
}

TEST(CorpusReader, GzipEqualsPlainAndIsOneUnit) {
  const std::string dir = scratch_dir("reader_gzip");
  std::string body;
  for (int i = 0; i < 100; ++i) body += "{\"text\": \"document " + std::to_string(i) + "\", \"lang\": \"fr\"}\n";
  write_file(dir + "/plain.jsonl", body);
  gzFile gz = gzopen((dir + "/packed.jsonl.gz").c_str(), "wb");
  gzwrite(gz, body.data(), static_cast<unsigned>(body.size()));
  gzclose(gz);
  const Collected plain = read_all({dir + "/plain.jsonl"}, ReaderOptions{}, 1 << 20);
  const Collected packed = read_all({dir + "/packed.jsonl.gz"}, ReaderOptions{}, 16);
  EXPECT_EQ(packed.docs, plain.docs);
  EXPECT_EQ(packed.langs, plain.langs);
  EXPECT_EQ(packed.langs[0], "fr");
  const auto files = expand_inputs({dir + "/packed.jsonl.gz"}, ReaderOptions{});
  ASSERT_EQ(files.size(), 1u);
  EXPECT_TRUE(files[0].gzip);
  EXPECT_EQ(plan_units(files, ReaderOptions{}, 16).size(), 1u);
}

TEST(CorpusReader, DirectoriesGlobsAndLanguageFromPath) {
  const std::string dir = scratch_dir("reader_expand");
  write_file(dir + "/corpus/ru/b.jsonl", "{\"text\": \"привет\"}\n");
  write_file(dir + "/corpus/en/a.jsonl", "{\"text\": \"hello\"}\n{\"text\": \"hi\", \"lang\": \"en-GB\"}\n");
  write_file(dir + "/corpus/en/c.txt", "one document\n\nin a text file");
  ReaderOptions opts;
  opts.lang_from_path = true;
  const Collected c = read_all({dir + "/corpus"}, opts, 1 << 20);
  EXPECT_EQ(c.docs, (std::vector<std::string>{"hello", "hi", "one document\n\nin a text file", "привет"}));
  EXPECT_EQ(c.langs, (std::vector<std::string>{"en", "en-GB", "en", "ru"}));
  const Collected g = read_all({dir + "/corpus/*/*.jsonl"}, ReaderOptions{}, 1 << 20);
  EXPECT_EQ(g.docs.size(), 3u);
  EXPECT_EQ(g.langs[0], "und");
  EXPECT_THROW(read_all({dir + "/corpus/*.none"}, opts, 1 << 20), Error);
}

TEST(CorpusReader, BadRecordsAreReportedWithReasonAndOffset) {
  const std::string dir = scratch_dir("reader_bad");
  const std::string good = "{\"text\": \"ok\"}\n";
  const std::string body = good + "{\"text\": \"bad \xff byte\"}\n" + "{\"text\": \"nul \\u0000\"}\n" + "\n" +
                           "{\"text\": \"\"}\n" + "{\"text\": 5}\n" + "{\"body\": \"x\"}\n" + "[1, 2]\n" +
                           "{not json}\n" + good + "{\"text\": \"cut";
  write_file(dir + "/bad.jsonl", body);
  const Collected c = read_all({dir + "/bad.jsonl"}, ReaderOptions{}, 1 << 20);
  EXPECT_EQ(c.docs, (std::vector<std::string>{"ok", "ok"}));
  std::vector<std::string> reasons;
  for (const auto& s : c.skips) reasons.emplace_back(skip_reason_name(s.reason));
  EXPECT_EQ(reasons, (std::vector<std::string>{"invalid_utf8", "nul_byte", "empty", "empty", "non_string_text",
                                               "missing_text", "invalid_json", "invalid_json", "truncated_line"}));
  EXPECT_EQ(c.skips[0].offset, good.size());
  const auto files = expand_inputs({dir + "/bad.jsonl"}, ReaderOptions{});
  EXPECT_EQ(describe_position(files[0], c.skips[1].offset), dir + "/bad.jsonl:3 (byte " +
                                                                std::to_string(c.skips[1].offset) + ")");
  ReaderOptions repair;
  repair.repair_utf8 = true;
  const Collected r = read_all({dir + "/bad.jsonl"}, repair, 1 << 20);
  EXPECT_EQ(r.docs[1], "bad \xef\xbf\xbd byte");
}

TEST(CorpusReader, HundredMegabyteLineIsSkippedAsTooLong) {
  const std::string dir = scratch_dir("reader_huge");
  {
    std::ofstream out(dir + "/huge.jsonl", std::ios::binary);
    out << "{\"text\": \"before\"}\n{\"text\": \"";
    const std::string block(1 << 20, 'x');
    for (int i = 0; i < 100; ++i) out << block;
    out << "\"}\n{\"text\": \"after\"}\n";
  }
  const Collected c = read_all({dir + "/huge.jsonl"}, ReaderOptions{}, uint64_t{1} << 30);
  EXPECT_EQ(c.docs, (std::vector<std::string>{"before", "after"}));
  ASSERT_EQ(c.skips.size(), 1u);
  EXPECT_EQ(c.skips[0].reason, SkipReason::TooLong);
  EXPECT_EQ(c.skips[0].offset, 19u);
  std::filesystem::remove(dir + "/huge.jsonl");
}

TEST(CorpusReader, EmptyAndUnreadableFiles) {
  const std::string dir = scratch_dir("reader_files");
  write_file(dir + "/in/empty.txt", "");
  write_file(dir + "/in/fine.txt", "text");
  std::filesystem::create_symlink(dir + "/gone.txt", dir + "/in/link.txt");
  const Collected c = read_all({dir + "/in"}, ReaderOptions{}, 1 << 20);
  EXPECT_EQ(c.docs, (std::vector<std::string>{"text"}));
  ASSERT_EQ(c.skips.size(), 2u);
  EXPECT_EQ(c.skips[0].reason, SkipReason::Empty);
  EXPECT_EQ(c.skips[1].reason, SkipReason::UnreadableFile);
}

}  // namespace rwkv::data
