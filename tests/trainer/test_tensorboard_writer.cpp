// TensorBoard event files: CRC-32C, record framing, Event encoding, read back,
// corruption detection. tests/trainer/check_tensorboard.py reads the same files
// with TensorBoard's own loader.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "trainer/tensorboard_writer.h"

namespace fs = std::filesystem;
using namespace rwkv::trainer;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("rwkv_tb_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  return d;
}

uint32_t mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

}  // namespace

TEST(TensorBoard, Crc32cKnownVectors) {
  // CRC-32C check value of "123456789" (RFC 3720, iSCSI) and of 32 zero bytes.
  EXPECT_EQ(masked_crc32c("123456789", 9), mask(0xE3069283u));
  const std::string zeros(32, '\0');
  EXPECT_EQ(masked_crc32c(zeros.data(), zeros.size()), mask(0x8A9136AAu));
}

TEST(TensorBoard, ScalarsReadBack) {
  const fs::path dir = fresh_dir("readback");
  std::string path;
  {
    TensorBoardWriter w(dir.string());
    path = w.path();
    w.add_scalar("train/loss", 5.25f, 1, 1700000000.5);
    w.add_scalar("train/lr", 6e-4f, 1, 1700000000.5);
    w.add_scalar("val/loss/ru", 3.5f, 1000000000000LL, 1700000001.25);
  }
  const auto ev = read_tensorboard_events(path);
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_EQ(ev[0].file_version, "brain.Event:2");
  EXPECT_EQ(ev[1].tag, "train/loss");
  EXPECT_EQ(ev[1].value, 5.25f);
  EXPECT_EQ(ev[1].step, 1);
  EXPECT_EQ(ev[1].wall_time, 1700000000.5);
  EXPECT_EQ(ev[2].tag, "train/lr");
  EXPECT_EQ(ev[2].value, 6e-4f);
  EXPECT_EQ(ev[3].tag, "val/loss/ru");
  EXPECT_EQ(ev[3].step, 1000000000000LL);
  fs::remove_all(dir);
}

TEST(TensorBoard, CorruptionNamesFileAndOffset) {
  const fs::path dir = fresh_dir("corrupt");
  std::string path;
  {
    TensorBoardWriter w(dir.string());
    path = w.path();
    w.add_scalar("loss", 1.0f, 1, 1.0);
  }
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const size_t second = bytes.size() - 1 - 4;  // a data byte of the last record
  std::string flipped = bytes;
  flipped[second] ^= 0x01;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << flipped;
  try {
    read_tensorboard_events(path);
    FAIL() << "corruption not detected";
  } catch (const rwkv::Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("data CRC mismatch"), std::string::npos) << e.what();
  }
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes.substr(0, bytes.size() - 3);
  try {
    read_tensorboard_events(path);
    FAIL() << "truncation not detected";
  } catch (const rwkv::Error& e) {
    EXPECT_NE(std::string(e.what()).find("truncated record"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

// Writes the file tests/trainer/check_tensorboard.py reads with TensorBoard itself;
// runs only when that script asks for it (RWKV_TB_OUT set).
TEST(TensorBoard, WriteForPythonCheck) {
  const char* out = std::getenv("RWKV_TB_OUT");
  if (!out) GTEST_SKIP() << "RWKV_TB_OUT not set: only tests/trainer/check_tensorboard.py runs this";
  TensorBoardWriter w(out);
  for (int step = 1; step <= 5; ++step) {
    w.add_scalar("train/loss", 10.0f / static_cast<float>(step), step, 1700000000.0 + step);
    w.add_scalar("train/lr", 1e-3f * static_cast<float>(step), step, 1700000000.0 + step);
  }
}
