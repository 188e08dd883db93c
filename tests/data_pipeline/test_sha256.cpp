#include <gtest/gtest.h>

#include <fstream>

#include "common/error.h"
#include "data_pipeline/sha256.h"
#include "tests/data_pipeline/data_test_util.h"

namespace {

using rwkv::data::Sha256;
using rwkv::data::sha256_file_hex;
using rwkv::data::sha256_hex;

// A scratch directory in the build tree of the running test's own, emptied when
// the test first asks for it: ctest may run tests in parallel, and several build
// trees may run them at once.
std::string scratch() {
  static std::string test_name, dir;
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string name = std::string(info->test_suite_name()) + "." + info->name();
  if (name != test_name) {
    test_name = name;
    dir = rwkv::data::test::scratch_dir(name);
  }
  return dir;
}

std::span<const uint8_t> bytes_of(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Test vectors: FIPS 180-4 examples (NIST CSRC "SHA256.pdf") and the
// one-million-'a' vector of NIST's SHA test suite.
TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(bytes_of("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex(bytes_of("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(bytes_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(bytes_of(std::string(1000000, 'a'))),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, IncrementalMatchesOneShot) {
  Sha256 h;
  for (int i = 0; i < 1000; ++i) h.update(std::string(1000, 'a').data(), 1000);
  EXPECT_EQ(h.hex_digest(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");

  Sha256 split;
  split.update("a", 1);
  split.update("", 0);
  split.update("bc", 2);
  EXPECT_EQ(split.hex_digest(), sha256_hex(bytes_of("abc")));
}

TEST(Sha256, FileMatchesBuffer) {
  const std::string path = scratch() + "/data.bin";
  std::string content;
  for (int i = 0; i < 3 << 20; ++i) content.push_back(static_cast<char>(i * 7 + i / 251));
  std::ofstream(path, std::ios::binary) << content;
  EXPECT_EQ(sha256_file_hex(path), sha256_hex(bytes_of(content)));
}

TEST(Sha256, MissingFileNamesIt) {
  try {
    sha256_file_hex("/nonexistent/dir/shard.h5");
    FAIL() << "expected rwkv::Error";
  } catch (const rwkv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/shard.h5"), std::string::npos);
  }
}

}  // namespace
