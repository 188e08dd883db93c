#include "trainer/tensorboard_writer.h"

#include <unistd.h>

#include <boost/crc.hpp>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "common/error.h"

namespace rwkv::trainer {

namespace {

// Protocol-buffer wire format, only what Event/Summary need
// (https://protobuf.dev/programming-guides/encoding/).
enum WireType : uint8_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void put_key(std::string& out, uint32_t field, WireType type) { put_varint(out, (field << 3) | type); }

template <typename T>
void put_fixed(std::string& out, T v) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &v, sizeof(T));  // little-endian host, as the wire format
  out.append(bytes, sizeof(T));
}

void put_bytes(std::string& out, uint32_t field, std::string_view s) {
  put_key(out, field, kLengthDelimited);
  put_varint(out, s.size());
  out.append(s);
}

// Event fields: wall_time = 1 (double), step = 2 (int64), file_version = 3 (string),
// summary = 5 (Summary). Summary: value = 1 (repeated Value). Value: tag = 1 (string),
// simple_value = 2 (float).
std::string encode_event(double wall_time, int64_t step, std::string_view file_version,
                         std::string_view tag, float value, bool has_summary) {
  std::string ev;
  put_key(ev, 1, kFixed64);
  put_fixed(ev, wall_time);
  put_key(ev, 2, kVarint);
  put_varint(ev, static_cast<uint64_t>(step));
  if (!file_version.empty()) put_bytes(ev, 3, file_version);
  if (has_summary) {
    std::string val;
    put_bytes(val, 1, tag);
    put_key(val, 2, kFixed32);
    put_fixed(val, value);
    std::string summary;
    put_bytes(summary, 1, val);
    put_bytes(ev, 5, summary);
  }
  return ev;
}

struct Cursor {
  const std::string& data;
  size_t pos = 0;
  const std::string& where;

  [[noreturn]] void fail(const std::string& why) const {
    throw Error(where + ": malformed Event protocol buffer: " + why);
  }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos >= data.size()) fail("truncated varint");
      const auto b = static_cast<uint8_t>(data[pos++]);
      v |= uint64_t{b & 0x7fu} << shift;
      if (!(b & 0x80)) return v;
    }
    fail("varint longer than 10 bytes");
  }
  template <typename T>
  T fixed() {
    if (pos + sizeof(T) > data.size()) fail("truncated fixed-width field");
    T v;
    std::memcpy(&v, data.data() + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  std::string bytes() {
    const uint64_t n = varint();
    if (pos + n > data.size()) fail("length-delimited field runs past the end");
    std::string s = data.substr(pos, n);
    pos += n;
    return s;
  }
  void skip(WireType type) {
    switch (type) {
      case kVarint: varint(); break;
      case kFixed64: fixed<uint64_t>(); break;
      case kLengthDelimited: bytes(); break;
      case kFixed32: fixed<uint32_t>(); break;
      default: fail("unknown wire type " + std::to_string(type));
    }
  }
};

void decode_value(const std::string& data, const std::string& where, TensorBoardScalar& out) {
  Cursor c{data, 0, where};
  while (c.pos < data.size()) {
    const uint64_t key = c.varint();
    const auto type = static_cast<WireType>(key & 7);
    if (key >> 3 == 1 && type == kLengthDelimited) out.tag = c.bytes();
    else if (key >> 3 == 2 && type == kFixed32) out.value = c.fixed<float>();
    else c.skip(type);
  }
}

TensorBoardScalar decode_event(const std::string& data, const std::string& where) {
  TensorBoardScalar s;
  Cursor c{data, 0, where};
  while (c.pos < data.size()) {
    const uint64_t key = c.varint();
    const auto type = static_cast<WireType>(key & 7);
    const uint64_t field = key >> 3;
    if (field == 1 && type == kFixed64) s.wall_time = c.fixed<double>();
    else if (field == 2 && type == kVarint) s.step = static_cast<int64_t>(c.varint());
    else if (field == 3 && type == kLengthDelimited) s.file_version = c.bytes();
    else if (field == 5 && type == kLengthDelimited) {
      const std::string summary = c.bytes();
      Cursor sc{summary, 0, where};
      while (sc.pos < summary.size()) {
        const uint64_t skey = sc.varint();
        if (skey >> 3 == 1 && (skey & 7) == kLengthDelimited) decode_value(sc.bytes(), where, s);
        else sc.skip(static_cast<WireType>(skey & 7));
      }
    } else {
      c.skip(type);
    }
  }
  return s;
}

}  // namespace

uint32_t masked_crc32c(const void* data, size_t n) {
  // CRC-32C: polynomial 0x1EDC6F41, reflected, initial and final XOR 0xFFFFFFFF.
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
  crc.process_bytes(data, n);
  const uint32_t c = crc.checksum();
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

TensorBoardWriter::TensorBoardWriter(const std::string& run_dir) {
  std::filesystem::create_directories(run_dir);
  char host[256] = "localhost";
  gethostname(host, sizeof host - 1);
  path_ = run_dir + "/events.out.tfevents." + std::to_string(std::time(nullptr)) + "." + host;
  file_ = std::fopen(path_.c_str(), "ab");
  if (!file_) throw Error("cannot open TensorBoard event file " + path_ + ": " + std::strerror(errno));
  write_record(encode_event(static_cast<double>(std::time(nullptr)), 0, "brain.Event:2", "", 0,
                            false));
  flush();
}

TensorBoardWriter::~TensorBoardWriter() {
  if (file_) std::fclose(file_);
}

void TensorBoardWriter::add_scalar(std::string_view tag, float value, int64_t step,
                                   double wall_time) {
  write_record(encode_event(wall_time, step, "", tag, value, true));
}

void TensorBoardWriter::flush() {
  if (std::fflush(file_) != 0) throw Error("cannot write TensorBoard event file " + path_);
}

void TensorBoardWriter::write_record(const std::string& data) {
  std::string rec;
  const uint64_t len = data.size();
  put_fixed(rec, len);
  put_fixed(rec, masked_crc32c(&len, sizeof len));
  rec += data;
  put_fixed(rec, masked_crc32c(data.data(), data.size()));
  if (std::fwrite(rec.data(), 1, rec.size(), file_) != rec.size())
    throw Error("cannot write TensorBoard event file " + path_ + ": " + std::strerror(errno));
}

std::vector<TensorBoardScalar> read_tensorboard_events(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read TensorBoard event file " + path);
  const std::string buf((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<TensorBoardScalar> out;
  size_t pos = 0;
  while (pos < buf.size()) {
    const std::string where = path + " (record at byte " + std::to_string(pos) + ")";
    if (pos + 12 > buf.size()) throw Error(where + ": truncated record header");
    uint64_t len = 0;
    uint32_t len_crc = 0, data_crc = 0;
    std::memcpy(&len, buf.data() + pos, 8);
    std::memcpy(&len_crc, buf.data() + pos + 8, 4);
    if (masked_crc32c(&len, sizeof len) != len_crc) throw Error(where + ": length CRC mismatch");
    if (pos + 12 + len + 4 > buf.size()) throw Error(where + ": truncated record data");
    const std::string data = buf.substr(pos + 12, len);
    std::memcpy(&data_crc, buf.data() + pos + 12 + len, 4);
    if (masked_crc32c(data.data(), data.size()) != data_crc) throw Error(where + ": data CRC mismatch");
    out.push_back(decode_event(data, where));
    pos += 12 + len + 4;
  }
  return out;
}

}  // namespace rwkv::trainer
