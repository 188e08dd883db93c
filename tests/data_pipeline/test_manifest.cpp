// manifest.yaml: written and read back unchanged; a malformed one is an error
// naming the file and the key; a directory without one is not a dataset.
#include <gtest/gtest.h>

#include "common/error.h"
#include "data_pipeline/manifest.h"
#include "data_test_util.h"

namespace rwkv::data {

namespace {

Manifest sample() {
  Manifest m;
  m.format_version = 1;
  m.tokenizer_kind = "sentencepiece";
  m.tokenizer_file = "tokenizer.model";
  m.tokenizer_sha256 = "0123abcd";
  m.vocab_size = 32000;
  m.eod_id = 2;
  m.token_bytes = 2;
  m.val_fraction = 0.005;
  m.docs = 10;
  m.tokens = 1000;
  m.train_docs = 9;
  m.train_tokens = 900;
  m.langs["en"] = {6, 600, 2400};
  m.langs["zh-Hans"] = {4, 400, 1300};
  m.skipped = {{"empty", 1}, {"invalid_utf8", 0}};
  ManifestShard s;
  s.file = "shard-00000.h5";
  s.file_bytes = 12345;
  s.docs = 10;
  s.tokens = 1000;
  s.train_docs = 9;
  s.train_tokens = 900;
  s.sha256 = "feedface";
  s.langs["en"] = {6, 600, 0};
  s.langs["zh-Hans"] = {4, 400, 0};
  m.shards = {s};
  return m;
}

bool same(const Manifest& a, const Manifest& b) { return manifest_to_yaml(a) == manifest_to_yaml(b); }

}  // namespace

TEST(Manifest, RoundTripsThroughTheDirectory) {
  const std::string dir = test::scratch_dir("manifest_roundtrip");
  const Manifest m = sample();
  write_manifest(dir, m);
  const Manifest r = read_manifest(dir);
  EXPECT_TRUE(same(r, m)) << manifest_to_yaml(r);
  EXPECT_EQ(r.shards[0].langs.at("zh-Hans").tokens, 400u);
  EXPECT_EQ(r.langs.at("en").bytes, 2400u);
  EXPECT_DOUBLE_EQ(r.val_fraction, 0.005);
  EXPECT_FALSE(std::filesystem::exists(dir + "/manifest.yaml.tmp"));
}

TEST(Manifest, ErrorsNameTheFileAndKey) {
  const std::string dir = test::scratch_dir("manifest_bad");
  try {
    read_manifest(dir);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir + "/manifest.yaml: cannot read"), std::string::npos) << e.what();
  }
  std::string yaml = manifest_to_yaml(sample());
  const std::string key = "    train_tokens: 900\n";
  yaml.erase(yaml.find(key), key.size());
  try {
    manifest_from_yaml(yaml, "x/manifest.yaml");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "x/manifest.yaml: shards[0]: missing key 'train_tokens'");
  }
  EXPECT_THROW(manifest_from_yaml("[1, 2]", "m"), Error);
  EXPECT_THROW(manifest_from_yaml("format_version: one", "m"), Error);
}

}  // namespace rwkv::data
