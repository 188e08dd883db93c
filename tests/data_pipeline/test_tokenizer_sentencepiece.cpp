#include <gtest/gtest.h>
#include <sentencepiece_trainer.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "common/error.h"
#include "data_pipeline/sha256.h"
#include "data_pipeline/tokenizer_sentencepiece.h"
#include "data_pipeline/utf8.h"
#include "tests/data_pipeline/data_test_util.h"
#include "tests/data_pipeline/round_trip.h"

namespace {

using namespace rwkv::data;
namespace fs = std::filesystem;

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

// Training text: the multilingual documents, several times over so that BPE finds
// merges, tagged by language.
std::vector<std::pair<std::string, std::string>> training_documents() {
  std::vector<std::pair<std::string, std::string>> docs;
  for (int copy = 0; copy < 4; ++copy) {
    for (const auto& doc : samples::multilingual_documents()) docs.push_back(doc);
  }
  return docs;
}

std::string train_tiny(const std::string& name, const std::string& model_type) {
  const std::string prefix = scratch() + "/" + name;
  SentencePieceTrainOptions opts;
  opts.model_type = model_type;
  opts.vocab_size = 500;
  opts.character_coverage = 0.98;
  opts.seed = 3;
  opts.max_sample_bytes = 1 << 20;
  train_sentencepiece(training_documents(), opts, prefix);
  return prefix + ".model";
}

TEST(SentencePieceTokenizer, TrainedBpeModelIsLossless) {
  const std::string model = train_tiny("rwkv_spm_bpe", "bpe");
  ASSERT_TRUE(fs::exists(fs::path(model).replace_extension(".vocab")));
  const auto tok = load_tokenizer(TokenizerKind::SentencePiece, model);
  EXPECT_EQ(tok->kind(), TokenizerKind::SentencePiece);
  EXPECT_EQ(tok->vocab_size(), 500u);
  EXPECT_EQ(tok->eod_id(), 2u);  // SentencePiece's default ids: <unk> 0, <s> 1, </s> 2
  EXPECT_EQ(tok->file_sha256(), sha256_file_hex(model));
  samples::expect_lossless(*tok);
}

TEST(SentencePieceTokenizer, TrainedUnigramModelIsLossless) {
  const auto tok = load_tokenizer(TokenizerKind::SentencePiece, train_tiny("rwkv_spm_uni", "unigram"));
  samples::expect_lossless(*tok);
}

TEST(SentencePieceTokenizer, TrainingIsDeterministicGivenTheSeed) {
  // Same prefix both times: the model file records its prefix.
  for (const std::string type : {"bpe", "unigram"}) {
    const std::string first = sha256_file_hex(train_tiny("rwkv_spm_det", type));
    EXPECT_EQ(sha256_file_hex(train_tiny("rwkv_spm_det", type)), first) << type;
  }
}

TEST(SentencePieceTokenizer, TrainingRejectsBadOptions) {
  const std::string prefix = scratch() + "/bad";
  auto expect_error = [&](const SentencePieceTrainOptions& opts,
                          const std::vector<std::pair<std::string, std::string>>& docs,
                          const std::string& message) {
    try {
      train_sentencepiece(docs, opts, prefix);
      ADD_FAILURE() << "expected rwkv::Error: " << message;
    } catch (const rwkv::Error& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
  };
  SentencePieceTrainOptions opts;
  opts.vocab_size = 500;
  opts.character_coverage = 0.98;
  expect_error(opts, {}, "no documents");
  expect_error(opts, {{"en", ""}}, "no text");
  opts.model_type = "wordpiece";
  expect_error(opts, training_documents(), "model_type 'wordpiece'");
  opts.model_type = "bpe";
  opts.character_coverage = 0.5;
  expect_error(opts, training_documents(), "character_coverage 0.5 ");
  opts.character_coverage = 1.0;
  opts.vocab_size = 100;  // fewer than the 256 byte pieces
  expect_error(opts, training_documents(), prefix + ".model failed");
}

TEST(SentencePieceSample, EvenAcrossLanguagesAndSeeded) {
  std::vector<std::pair<std::string, std::string>> docs;
  for (int i = 0; i < 50; ++i) {
    docs.emplace_back("en", "english document " + std::to_string(i) + " ");
    docs.emplace_back("zh", "\xE4\xB8\xAD\xE6\x96\x87" + std::to_string(i));  // 中文<i>
  }
  docs.emplace_back("xx", "tiny");
  const uint64_t max_bytes = 300;  // 100 bytes for each of 3 languages
  const auto sample = sample_by_language(docs, max_bytes, 5);
  std::map<std::string, uint64_t> bytes;
  for (const auto& [lang, text] : sample) {
    EXPECT_TRUE(utf8_valid(text)) << lang << ": cut inside a character";
    bytes[lang] += text.size();
  }
  // Each language gets its share; the last document is cut to fill it, at most 3
  // bytes short for a cut inside a 3-byte character.
  EXPECT_EQ(bytes["en"], 100u);
  EXPECT_GE(bytes["zh"], 98u);
  EXPECT_LE(bytes["zh"], 100u);
  EXPECT_EQ(bytes["xx"], 4u);
  EXPECT_EQ(sample_by_language(docs, max_bytes, 5), sample);
  EXPECT_NE(sample_by_language(docs, max_bytes, 6), sample);
  EXPECT_TRUE(sample_by_language({}, max_bytes, 5).empty());
}

// A model trained outside rwkv with `extra` settings; must fail to load.
void expect_foreign_model_rejected(const std::string& name,
                                   const std::unordered_map<std::string, std::string>& extra,
                                   const std::string& message) {
  const fs::path dir(scratch());
  const std::string input = (dir / "input.txt").string();
  {
    std::ofstream out(input, std::ios::binary);
    for (const auto& [lang, doc] : training_documents()) out << doc << "\n";
  }
  std::unordered_map<std::string, std::string> args = {
      {"input", input}, {"model_prefix", (dir / name).string()}, {"vocab_size", "500"},
      {"character_coverage", "0.98"}, {"minloglevel", "2"}, {"num_threads", "1"},
      {"byte_fallback", "true"}, {"hard_vocab_limit", "false"}};
  for (const auto& [k, v] : extra) args[k] = v;
  const auto status = sentencepiece::SentencePieceTrainer::Train(args);
  ASSERT_TRUE(status.ok()) << status.ToString();
  const std::string model = (dir / name).string() + ".model";
  try {
    load_sentencepiece_tokenizer(model);
    ADD_FAILURE() << name << ": expected rwkv::Error";
  } catch (const rwkv::Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(model + ": "), std::string::npos) << what;
    EXPECT_NE(what.find(message), std::string::npos) << what;
  }
}

TEST(SentencePieceTokenizer, ForeignModelsThatLoseTextAreRejected) {
  // SentencePiece's defaults: NFKC normalisation, dummy prefix, squeezed spaces.
  expect_foreign_model_rejected("rwkv_spm_nfkc", {}, "not lossless");
  expect_foreign_model_rejected(
      "rwkv_spm_nobytes",
      {{"byte_fallback", "false"}, {"normalization_rule_name", "identity"}}, "no byte fallback");
  expect_foreign_model_rejected("rwkv_spm_noeos", {{"eos_id", "-1"}}, "no </s>");
}

TEST(SentencePieceTokenizer, MissingModelIsNamed) {
  try {
    load_tokenizer(TokenizerKind::SentencePiece, "/nonexistent/spm.model");
    FAIL() << "expected rwkv::Error";
  } catch (const rwkv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/spm.model"), std::string::npos) << e.what();
  }
}

}  // namespace
