#pragma once
// Reading corpora: expanding the input arguments (files, directories, globs),
// cutting large files into byte-range work units at record boundaries, and
// turning each unit into documents (JSONL lines or delimited / whole text
// files, optionally gzip-compressed). Bad records are reported, never dropped
// silently: each one reaches the caller as a skip with its reason and position.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace rwkv::data {

enum class InputFormat { Jsonl, Text };

struct ReaderOptions {
  std::string format = "auto";  // auto (by extension: .jsonl/.ndjson/.json), jsonl, text
  std::string text_field = "text";
  std::string lang_field = "lang";
  bool lang_from_path = false;  // language = name of the file's directory
  std::string delimiter;        // text files: document separator; "" = one document per file
  uint64_t max_doc_bytes = uint64_t{32} << 20;
  bool repair_utf8 = false;  // replace invalid UTF-8 with U+FFFD instead of skipping
};

struct InputFile {
  std::string path;
  uint64_t size = 0;  // on disk (compressed size for gzip)
  bool gzip = false;
  InputFormat format = InputFormat::Text;
  std::string path_lang;  // language from the path ("" unless lang_from_path)
};

// Files named by `specs` (files, directories searched recursively, glob
// patterns), each group sorted by path. Throws rwkv::Error naming a spec that
// matches nothing.
std::vector<InputFile> expand_inputs(const std::vector<std::string>& specs, const ReaderOptions& opts);

// A byte range of one file; documents that START in [begin, end) belong to it
// (exact cut points are the record boundaries after begin and after end).
struct WorkUnit {
  size_t file = 0;  // index into the expand_inputs() list
  uint64_t begin = 0, end = 0;
};

// Cuts every splittable file (plain JSONL, plain text with a delimiter) into
// units of about `unit_bytes`; gzip and one-document-per-file inputs are one
// unit each. Depends only on the inputs, never on the number of ranks.
std::vector<WorkUnit> plan_units(const std::vector<InputFile>& files, const ReaderOptions& opts,
                                 uint64_t unit_bytes);

enum class SkipReason {
  InvalidUtf8,
  NulByte,
  Empty,
  TooLong,
  TruncatedLine,  // last JSONL line of a file, unterminated and not valid JSON
  InvalidJson,
  MissingText,
  NonStringText,
  UnreadableFile,  // open or read failed (documents read before the failure are kept)
};
constexpr size_t kNumSkipReasons = 9;
const char* skip_reason_name(SkipReason r);  // "invalid_utf8", ...
std::vector<std::string> skip_reason_names();

struct Document {
  std::string_view text;  // well-formed UTF-8, no NUL, not empty
  std::string_view lang;  // "und" when unknown
  uint64_t offset = 0;    // byte offset of its record in the (uncompressed) file
};

struct Skip {
  SkipReason reason;
  uint64_t offset = 0;  // byte offset of the record in the (uncompressed) file
  std::string detail;   // e.g. "invalid UTF-8 at byte 17 of the document"
};

struct UnitCallbacks {
  std::function<void(const Document&)> on_document;
  std::function<void(const Skip&)> on_skip;
  std::function<void(uint64_t)> on_progress;  // input bytes consumed since the last call
};

void read_unit(const InputFile& file, const WorkUnit& unit, const ReaderOptions& opts,
               const UnitCallbacks& cb);

// "path:LINE (byte OFFSET)" for an offset in an uncompressed file or, for gzip
// input, in its decompressed stream; counts lines from the start of the file.
std::string describe_position(const InputFile& file, uint64_t offset);

}  // namespace rwkv::data
