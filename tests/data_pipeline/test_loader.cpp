// The training data loader on a dataset made by `rwkv preprocess`: windows equal
// a reference read of the token stream; DP ranks cover every window of an epoch
// exactly once; runs are deterministic; a restored state continues the exact
// sequence; blending keeps every 10,000 samples within 2% of the target; bad
// shards and other tokenizers are reported with the file name.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "common/error.h"
#include "data_pipeline/loader.h"
#include "data_pipeline/manifest.h"
#include "data_pipeline/shard_reader.h"
#include "data_test_util.h"

namespace rwkv::data {

namespace fs = std::filesystem;

class LoaderTest : public ::testing::Test {
 protected:
  // Three languages of different sizes, several shards, some validation documents.
  // Per process: ctest may run this suite's tests in parallel processes.
  static void SetUpTestSuite() {
    dir_ = test::scratch_dir("loader_" + std::to_string(::getpid()));
    std::string body;
    const char* langs[] = {"en", "en", "en", "en", "en", "ru", "ru", "de"};
    for (int i = 0; i < 1200; ++i) {
      const char* lang = langs[i % 8];
      std::string text = std::string(lang) + " document " + std::to_string(i) + ":";
      for (int k = 0; k < i % 37; ++k) text += " w" + std::to_string(k * i % 101);
      body += "{\"text\": \"" + text + "\", \"lang\": \"" + lang + "\"}\n";
    }
    test::write_file(dir_ + "/in/a.jsonl", body);
    const auto r = test::run_rwkv("preprocess " + dir_ + "/in -o " + dir_ + "/ds --unit-bytes 20000 --val-fraction 0.05");
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }

  static void TearDownTestSuite() { fs::remove_all(dir_); }

  static LoaderOptions options() {
    LoaderOptions o;
    o.dataset = dir_ + "/ds";
    o.ctx_len = 16;
    o.micro_batch = 4;
    o.seed = 7;
    return o;
  }

  // The training split's tokens, shard after shard (the unblended stream).
  static std::vector<uint32_t> reference_stream(const std::string& split) {
    const Manifest m = read_manifest(dir_ + "/ds");
    std::vector<uint32_t> out;
    for (const auto& s : m.shards) {
      ShardReader r(dir_ + "/ds/" + s.file);
      const uint64_t b = split == "train" ? 0 : s.train_tokens, e = split == "train" ? s.train_tokens : s.tokens;
      std::vector<uint32_t> t(e - b);
      r.read(b, t.size(), t.data());
      out.insert(out.end(), t.begin(), t.end());
    }
    return out;
  }

  static inline std::string dir_;
};

TEST_F(LoaderTest, WindowsMatchTheTokenStreamAndTargetsAreShifted) {
  for (const std::string split : {"train", "val"}) {
    LoaderOptions o = options();
    o.split = split;
    const std::vector<uint32_t> stream = reference_stream(split);
    Loader loader(o);
    ASSERT_EQ(loader.windows_per_group().size(), 1u);
    EXPECT_EQ(loader.windows_per_group()[0], (stream.size() - 1) / o.ctx_len);
    for (int step = 0; step < 20; ++step) {
      const Batch b = loader.next();
      for (uint64_t i = 0; i < b.batch_size; ++i) {
        const uint64_t start = b.window[i] * o.ctx_len;
        for (uint64_t t = 0; t < o.ctx_len; ++t) {
          ASSERT_EQ(b.inputs[i * o.ctx_len + t], stream[start + t]) << split << " window " << b.window[i];
          ASSERT_EQ(b.targets[i * o.ctx_len + t], stream[start + t + 1]);
        }
      }
    }
  }
}

TEST_F(LoaderTest, DataParallelRanksCoverEveryWindowOfAnEpochOnce) {
  const int dp = 3;
  std::vector<std::unique_ptr<Loader>> loaders;
  for (int r = 0; r < dp; ++r) {
    LoaderOptions o = options();
    o.dp_rank = r;
    o.dp_size = dp;
    loaders.push_back(std::make_unique<Loader>(o));
  }
  const uint64_t n = loaders[0]->windows_per_group()[0];
  const uint64_t global = 4 * dp;
  std::map<uint64_t, int> seen;  // window -> times, epoch 0
  uint64_t epoch1 = 0;
  for (uint64_t step = 0; step * global < n + global; ++step) {
    for (auto& l : loaders) {
      const Batch b = l->next();
      for (size_t i = 0; i < b.window.size(); ++i) {
        if (b.epoch[i] == 0) seen[b.window[i]] += 1;
        else epoch1 += 1;
      }
    }
  }
  ASSERT_EQ(seen.size(), n);
  for (const auto& [w, times] : seen) ASSERT_EQ(times, 1) << "window " << w;
  EXPECT_GT(epoch1, 0u);
  EXPECT_EQ(loaders[1]->state(), loaders[2]->state());  // every rank tracks the global position
}

TEST_F(LoaderTest, DeterministicAndSeeded) {
  Loader a(options()), b(options());
  LoaderOptions other = options();
  other.seed = 8;
  Loader c(other);
  bool differs = false;
  for (int i = 0; i < 10; ++i) {
    const Batch x = a.next(), y = b.next(), z = c.next();
    EXPECT_EQ(x.inputs, y.inputs);
    EXPECT_EQ(x.window, y.window);
    differs = differs || x.window != z.window;
  }
  EXPECT_TRUE(differs);
}

TEST_F(LoaderTest, RestoredStateContinuesTheExactSequence) {
  for (const bool blend : {false, true}) {
    LoaderOptions o = options();
    if (blend) o.lang_weights = {{"en", 0.2}, {"ru", 0.3}, {"de", 0.5}};
    o.dp_size = 2;
    o.dp_rank = 1;
    std::vector<Batch> full;
    LoaderState saved;
    {
      Loader l(o);
      for (int i = 0; i < 400; ++i) {  // crosses epochs of the small groups
        full.push_back(l.next());
        if (i == 149) saved = l.state();
      }
    }
    Loader resumed(o, saved);
    for (int i = 150; i < 400; ++i) {
      const Batch b = resumed.next();
      ASSERT_EQ(b.inputs, full[static_cast<size_t>(i)].inputs) << "batch " << i << " blend " << blend;
      ASSERT_EQ(b.window, full[static_cast<size_t>(i)].window);
    }
    EXPECT_EQ(resumed.state(), full.back().state_after);
  }
}

TEST_F(LoaderTest, BlendingKeepsEveryTenThousandSamplesWithinTwoPercent) {
  LoaderOptions o = options();
  o.lang_weights = {{"en", 0.2}, {"ru", 0.3}, {"de", 0.5}};
  o.micro_batch = 50;
  Loader l(o);
  std::map<std::string, double> target = {{"en", 0.2}, {"ru", 0.3}, {"de", 0.5}};
  std::vector<std::string> picks;
  for (int i = 0; i < 240; ++i) {
    const Batch b = l.next();
    for (size_t k = 0; k < b.lang.size(); ++k) {
      picks.push_back(l.languages()[b.lang[k]]);
      ASSERT_EQ(l.groups()[b.group[k]], picks.back());  // a language's windows hold only that language
    }
  }
  for (size_t start = 0; start + 10000 <= picks.size(); start += 500) {
    std::map<std::string, double> count;
    for (size_t i = start; i < start + 10000; ++i) count[picks[i]] += 1;
    for (const auto& [lang, p] : target) EXPECT_NEAR(count[lang] / 10000, p, 0.02) << lang << " at " << start;
  }
  // Temperature sampling: p ∝ tokens^alpha.
  LoaderOptions t = options();
  t.temperature_alpha = 0.3;
  Loader tl(t);
  EXPECT_EQ(tl.groups(), (std::vector<std::string>{"de", "en", "ru"}));
  // ... leaving out languages too small for one window (here ru and de).
  t.ctx_len = read_manifest(dir_ + "/ds").langs.at("ru").tokens;
  Loader big(t);
  EXPECT_EQ(big.groups(), (std::vector<std::string>{"en"}));
  // Asked for explicitly, a language without a window is an error.
  t.lang_weights = {{"en", 1}, {"ru", 1}};
  EXPECT_THROW(Loader{t}, Error);
}

TEST_F(LoaderTest, DocumentAlignedWindowsStartAtDocuments) {
  LoaderOptions o = options();
  o.align_to_documents = true;
  o.ctx_len = 64;
  const std::vector<uint32_t> stream = reference_stream("train");
  // Reference: a window at each document start and every ctx_len tokens inside
  // the document, while ctx_len+1 tokens remain (documents end with id 0).
  std::vector<uint64_t> starts;
  uint64_t doc = 0;
  for (uint64_t p = 0; p < stream.size(); ++p) {
    if (stream[p] != 0) continue;
    for (uint64_t s = doc; s <= p && s + o.ctx_len + 1 <= stream.size(); s += o.ctx_len) starts.push_back(s);
    doc = p + 1;
  }
  Loader l(o);
  ASSERT_EQ(l.windows_per_group()[0], starts.size());
  for (int step = 0; step < 50; ++step) {
    const Batch b = l.next();
    for (uint64_t i = 0; i < b.batch_size; ++i) {
      const uint64_t s = starts[b.window[i]];
      for (uint64_t t = 0; t < o.ctx_len; ++t) {
        ASSERT_EQ(b.inputs[i * o.ctx_len + t], stream[s + t]) << "window " << b.window[i];
        ASSERT_EQ(b.targets[i * o.ctx_len + t], stream[s + t + 1]);
      }
    }
  }
}

TEST_F(LoaderTest, ByteCountsAndLanguagesPerWindow) {
  LoaderOptions o = options();
  o.token_bytes.assign(257, 1);  // bytes tokenizer: one byte per id, 0 for end-of-document
  o.token_bytes[0] = 0;
  Loader l(o);
  const Batch b = l.next();
  ASSERT_EQ(b.bytes.size(), b.batch_size);
  for (uint64_t i = 0; i < b.batch_size; ++i) {
    uint64_t expect = 0;
    for (uint64_t t = 0; t < o.ctx_len; ++t) expect += b.targets[i * o.ctx_len + t] != 0;
    EXPECT_EQ(b.bytes[i], expect);
    EXPECT_LT(b.lang[i], l.languages().size());
  }
}

TEST_F(LoaderTest, ReportsTruncatedCorruptedAndForeignDatasets) {
  const std::string bad = dir_ + "/bad";
  fs::create_directories(bad);
  fs::copy(dir_ + "/ds", bad + "/ds");
  LoaderOptions o = options();
  o.dataset = bad + "/ds";
  const Manifest m = read_manifest(o.dataset);
  const std::string victim = o.dataset + "/" + m.shards[1].file;

  // A flipped token byte: only the checksum finds it.
  std::string data = test::read_file(victim);
  // "doc" of "document" as stored: byte ids (byte + 1) in uint16 little-endian
  const size_t at = data.find(std::string("\x65\x00\x70\x00\x64\x00", 6));
  ASSERT_NE(at, std::string::npos);
  data[at] = '\x02';
  test::write_file(victim, data);
  EXPECT_NO_THROW(Loader{o});
  o.verify_checksums = true;
  try {
    Loader l(o);
    FAIL() << "corruption not detected";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(victim + ": corrupted shard"), std::string::npos) << e.what();
  }
  // A truncated file.
  fs::resize_file(victim, data.size() / 2);
  try {
    Loader l(o);
    FAIL() << "truncation not detected";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(victim + ": truncated"), std::string::npos) << e.what();
  }
  // Another tokenizer than the caller expects; a directory without manifest.
  LoaderOptions v = options();
  v.expect_vocab_size = 65536;
  EXPECT_THROW(Loader{v}, Error);
  LoaderOptions k = options();
  k.expect_tokenizer_kind = "world";
  EXPECT_THROW(Loader{k}, Error);
  LoaderOptions none = options();
  none.dataset = bad;
  EXPECT_THROW(Loader{none}, Error);
}

}  // namespace rwkv::data
