#pragma once
// TensorBoard scalar event files, written in TensorBoard's own format so no
// TensorFlow or protobuf library is needed:
//   file  = record*
//   record = uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)
//   data  = a serialized tensorflow.Event protocol buffer
// (format: tensorflow/core/lib/io/record_writer.cc and tensorboard's
// event_file_loader; Event/Summary messages: tensorflow/core/util/event.proto and
// tensorflow/core/framework/summary.proto).
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace rwkv::trainer {

// CRC-32C (Castagnoli) of `data`, masked as TFRecord does: rotate right by 15 and
// add 0xa282ead8, so that CRCs of data that itself holds CRCs stay robust.
uint32_t masked_crc32c(const void* data, size_t n);

// Appends scalar summaries to `RUN_DIR/events.out.tfevents.<unix time>.<host>`.
// Each add_scalar is one Event record; flush() makes them visible to TensorBoard.
struct TensorBoardWriter {
  explicit TensorBoardWriter(const std::string& run_dir);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  void add_scalar(std::string_view tag, float value, int64_t step, double wall_time);
  void flush();
  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& data);
  std::string path_;
  std::FILE* file_ = nullptr;
};

// One decoded scalar (or the file_version header event, with tag "" and
// file_version set), for tests and tools that read event files back.
struct TensorBoardScalar {
  double wall_time = 0;
  int64_t step = 0;
  std::string tag;
  float value = 0;
  std::string file_version;
};

// Reads every record of an event file, checking both CRCs of each; throws
// rwkv::Error naming the file and the record's byte offset on any corruption.
std::vector<TensorBoardScalar> read_tensorboard_events(const std::string& path);

}  // namespace rwkv::trainer
