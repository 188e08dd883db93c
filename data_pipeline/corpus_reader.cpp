#include "data_pipeline/corpus_reader.h"

#include <glob.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "data_pipeline/utf8.h"

namespace rwkv::data {

namespace fs = std::filesystem;

namespace {

constexpr size_t kBlock = size_t{1} << 20;  // bytes per read

bool has_suffix(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool file_is_gzip(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return has_suffix(path, ".gz");
  unsigned char magic[2] = {0, 0};
  const size_t n = std::fread(magic, 1, 2, f);
  std::fclose(f);
  return n == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
}

InputFile describe_file(const std::string& path, const ReaderOptions& opts) {
  InputFile in;
  in.path = path;
  std::error_code ec;
  in.size = fs::file_size(path, ec);
  if (ec) in.size = 0;
  in.gzip = file_is_gzip(path);
  std::string name = path;
  if (has_suffix(name, ".gz")) name.resize(name.size() - 3);
  if (opts.format == "jsonl") {
    in.format = InputFormat::Jsonl;
  } else if (opts.format == "text") {
    in.format = InputFormat::Text;
  } else {
    const bool json = has_suffix(name, ".jsonl") || has_suffix(name, ".ndjson") || has_suffix(name, ".json");
    in.format = json ? InputFormat::Jsonl : InputFormat::Text;
  }
  if (opts.lang_from_path) in.path_lang = fs::path(path).parent_path().filename().string();
  return in;
}

// Directory entries that are files, or links (a broken link is kept, so that it
// is reported as an unreadable file instead of vanishing).
std::vector<std::string> files_under(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_symlink() || e.is_regular_file()) {
      if (!e.is_symlink() || !fs::is_directory(e.path())) out.push_back(e.path().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> glob_paths(const std::string& pattern) {
  glob_t g{};
  std::vector<std::string> out;
  if (::glob(pattern.c_str(), 0, nullptr, &g) == 0) {
    for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  }
  globfree(&g);
  return out;  // glob() sorts its matches
}

struct ReadFailure {
  std::string message;
};

// Pulls bytes from a plain file range or from a gzip stream.
struct ByteSource {
  std::function<size_t(char*, size_t)> read;  // 0 at the end; throws ReadFailure
  std::function<uint64_t()> consumed;         // input bytes consumed so far
};

// Splits a byte stream into records at `delim` ("" = the whole stream is one
// record). A record longer than `max` bytes is reported once and discarded
// without being held in memory.
class RecordSplitter {
 public:
  using OnRecord = std::function<void(std::string_view rec, uint64_t offset, bool terminated)>;
  using OnTooLong = std::function<void(uint64_t offset)>;
  RecordSplitter(std::string_view delim, uint64_t max, uint64_t base, OnRecord on_record,
                 OnTooLong on_too_long)
      : delim_(delim), max_(max), base_(base), rec_offset_(base), on_record_(std::move(on_record)),
        on_too_long_(std::move(on_too_long)) {}

  void feed(std::string_view block) {
    const size_t dl = delim_.size();
    size_t scan = dl > 0 && buf_.size() >= dl - 1 ? buf_.size() - (dl - 1) : 0;
    buf_.append(block);
    size_t rec = 0;
    while (dl > 0) {
      const size_t k = buf_.find(delim_, std::max(scan, rec));
      if (k == std::string::npos) break;
      emit(std::string_view(buf_).substr(rec, k - rec), true);
      rec = k + dl;
      rec_offset_ = base_ + rec;
    }
    buf_.erase(0, rec);
    base_ += rec;
    if (buf_.size() > max_ + dl) {
      if (!discarding_) on_too_long_(rec_offset_);
      discarding_ = true;
      const size_t keep = dl > 0 ? dl - 1 : 0;
      base_ += buf_.size() - keep;
      buf_.erase(0, buf_.size() - keep);
    }
  }

  // End of input: the last record may lack its delimiter.
  void finish() {
    if (!discarding_ && !buf_.empty()) emit(buf_, delim_.empty());
    buf_.clear();
  }

 private:
  void emit(std::string_view rec, bool terminated) {
    if (discarding_) {
      discarding_ = false;
    } else if (rec.size() > max_) {
      on_too_long_(rec_offset_);
    } else {
      on_record_(rec, rec_offset_, terminated);
    }
  }

  std::string delim_;
  uint64_t max_;
  uint64_t base_;        // offset of buf_[0] in the stream
  uint64_t rec_offset_;  // offset of the current record
  std::string buf_;
  bool discarding_ = false;
  OnRecord on_record_;
  OnTooLong on_too_long_;
};

// Offset of the first `delim` at or after `from` in a plain file, or npos.
uint64_t find_delimiter(std::FILE* f, uint64_t from, const std::string& delim) {
  if (fseeko(f, static_cast<off_t>(from), SEEK_SET) != 0) return std::string::npos;
  std::string window;
  char block[4096];  // records are usually short: look for the cut point in small steps
  uint64_t base = from;
  while (true) {
    const size_t n = std::fread(block, 1, sizeof(block), f);
    if (n == 0) return std::string::npos;
    window.append(block, n);
    const size_t k = window.find(delim);
    if (k != std::string::npos) return base + k;
    const size_t keep = std::min(window.size(), delim.size() - 1);
    base += window.size() - keep;
    window.erase(0, window.size() - keep);
  }
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
struct GzCloser {
  void operator()(gzFile_s* g) const { gzclose(g); }
};

std::string record_delimiter(const InputFile& file, const ReaderOptions& opts) {
  return file.format == InputFormat::Jsonl ? std::string("\n") : opts.delimiter;
}

// Drives `fn(source, begin_offset)` over the unit's exact byte range.
void with_unit_source(const InputFile& file, const WorkUnit& unit, const ReaderOptions& opts,
                      const std::function<void(ByteSource&, uint64_t)>& fn) {
  if (file.gzip) {
    std::unique_ptr<gzFile_s, GzCloser> gz(gzopen(file.path.c_str(), "rb"));
    if (!gz) throw ReadFailure{"cannot open"};
    gzbuffer(gz.get(), 256 * 1024);
    ByteSource src;
    src.read = [&](char* p, size_t n) -> size_t {
      const int got = gzread(gz.get(), p, static_cast<unsigned>(n));
      int err = Z_OK;
      const char* msg = gzerror(gz.get(), &err);
      if (got < 0 || (err != Z_OK && err != Z_STREAM_END))
        throw ReadFailure{std::string("gzip: ") + msg};
      return static_cast<size_t>(got);
    };
    src.consumed = [&] { return static_cast<uint64_t>(gzoffset(gz.get())); };
    fn(src, 0);
    return;
  }
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(file.path.c_str(), "rb"));
  if (!f) throw ReadFailure{"cannot open"};
  const std::string delim = record_delimiter(file, opts);
  uint64_t start = unit.begin, end = unit.end;
  if (!delim.empty()) {
    if (unit.begin > 0) {
      const uint64_t k = find_delimiter(f.get(), unit.begin, delim);
      start = k == std::string::npos ? file.size : k + delim.size();
    }
    if (unit.end < file.size) {
      const uint64_t k = find_delimiter(f.get(), unit.end, delim);
      end = k == std::string::npos ? file.size : k + delim.size();
    }
  }
  start = std::min(start, file.size);
  end = std::max(start, std::min(end, file.size));
  if (fseeko(f.get(), static_cast<off_t>(start), SEEK_SET) != 0) throw ReadFailure{"cannot seek"};
  uint64_t pos = start;
  ByteSource src;
  src.read = [&](char* p, size_t n) -> size_t {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(n, end - pos));
    if (want == 0) return 0;
    const size_t got = std::fread(p, 1, want, f.get());
    if (got == 0 && std::ferror(f.get())) throw ReadFailure{"read error"};
    pos += got;
    return got;
  };
  src.consumed = [&] { return pos - start; };
  fn(src, start);
}

// Turns one record into a document, or a skip with its reason.
class RecordHandler {
 public:
  RecordHandler(const InputFile& file, const ReaderOptions& opts, const UnitCallbacks& cb)
      : file_(file), opts_(opts), cb_(cb) {}

  void operator()(std::string_view rec, uint64_t offset, bool terminated) {
    if (file_.format == InputFormat::Jsonl && !rec.empty() && rec.back() == '\r') rec.remove_suffix(1);
    if (rec.empty()) return skip(SkipReason::Empty, offset, "empty document");
    const size_t bad = utf8_first_invalid(rec);
    if (bad != std::string_view::npos) {
      if (!opts_.repair_utf8)
        return skip(SkipReason::InvalidUtf8, offset,
                    "invalid UTF-8 at byte " + std::to_string(bad) + " of the record");
      repaired_ = utf8_repair(rec);
      rec = repaired_;
    }
    if (file_.format == InputFormat::Jsonl) return json_record(rec, offset, terminated);
    text_record(rec, default_lang(), offset);
  }

  void too_long(uint64_t offset) {
    skip(SkipReason::TooLong, offset,
         "document longer than --max-doc-bytes=" + std::to_string(opts_.max_doc_bytes));
  }

 private:
  std::string_view default_lang() const {
    return file_.path_lang.empty() ? std::string_view("und") : std::string_view(file_.path_lang);
  }

  void json_record(std::string_view rec, uint64_t offset, bool terminated) {
    const nlohmann::json j = nlohmann::json::parse(rec, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      if (!terminated) return skip(SkipReason::TruncatedLine, offset, "truncated last line (no newline, not valid JSON)");
      return skip(SkipReason::InvalidJson, offset, "line is not valid JSON");
    }
    if (!j.is_object()) return skip(SkipReason::InvalidJson, offset, "line is not a JSON object");
    const auto it = j.find(opts_.text_field);
    if (it == j.end()) return skip(SkipReason::MissingText, offset, "no field '" + opts_.text_field + "'");
    if (!it->is_string())
      return skip(SkipReason::NonStringText, offset,
                  "field '" + opts_.text_field + "' is a " + it->type_name() + ", not a string");
    std::string_view lang = default_lang();
    const auto lt = j.find(opts_.lang_field);
    if (lt != j.end() && lt->is_string() && !lt->get_ref<const std::string&>().empty() &&
        lt->get_ref<const std::string&>().size() <= 64)
      lang = lt->get_ref<const std::string&>();
    text_record(it->get_ref<const std::string&>(), lang, offset);
  }

  void text_record(std::string_view text, std::string_view lang, uint64_t offset) {
    if (text.empty()) return skip(SkipReason::Empty, offset, "empty document");
    if (text.size() > opts_.max_doc_bytes) return too_long(offset);
    const size_t nul = text.find('\0');
    if (nul != std::string_view::npos)
      return skip(SkipReason::NulByte, offset, "NUL byte at byte " + std::to_string(nul) + " of the document");
    cb_.on_document(Document{text, lang, offset});
  }

  void skip(SkipReason r, uint64_t offset, std::string detail) {
    cb_.on_skip(Skip{r, offset, std::move(detail)});
  }

  const InputFile& file_;
  const ReaderOptions& opts_;
  const UnitCallbacks& cb_;
  std::string repaired_;
};

}  // namespace

const char* skip_reason_name(SkipReason r) {
  switch (r) {
    case SkipReason::InvalidUtf8: return "invalid_utf8";
    case SkipReason::NulByte: return "nul_byte";
    case SkipReason::Empty: return "empty";
    case SkipReason::TooLong: return "too_long";
    case SkipReason::TruncatedLine: return "truncated_line";
    case SkipReason::InvalidJson: return "invalid_json";
    case SkipReason::MissingText: return "missing_text";
    case SkipReason::NonStringText: return "non_string_text";
    case SkipReason::UnreadableFile: return "unreadable_file";
  }
  return "unknown";
}

std::vector<std::string> skip_reason_names() {
  std::vector<std::string> out;
  for (size_t i = 0; i < kNumSkipReasons; ++i) out.emplace_back(skip_reason_name(static_cast<SkipReason>(i)));
  return out;
}

std::vector<InputFile> expand_inputs(const std::vector<std::string>& specs, const ReaderOptions& opts) {
  std::vector<InputFile> out;
  for (const auto& spec : specs) {
    std::vector<std::string> paths;
    std::error_code ec;
    if (fs::is_directory(spec, ec)) {
      paths = files_under(spec);
    } else if (fs::exists(spec, ec) || fs::is_symlink(spec, ec)) {
      paths = {spec};
    } else {
      paths = glob_paths(spec);
    }
    if (paths.empty()) throw Error("input '" + spec + "' matches no file");
    for (const auto& p : paths) out.push_back(describe_file(p, opts));
  }
  return out;
}

std::vector<WorkUnit> plan_units(const std::vector<InputFile>& files, const ReaderOptions& opts,
                                 uint64_t unit_bytes) {
  std::vector<WorkUnit> units;
  for (size_t i = 0; i < files.size(); ++i) {
    const InputFile& f = files[i];
    const bool splittable = !f.gzip && !record_delimiter(f, opts).empty();
    if (!splittable || f.size <= unit_bytes) {
      units.push_back({i, 0, f.size});
      continue;
    }
    for (uint64_t b = 0; b < f.size; b += unit_bytes) units.push_back({i, b, std::min(f.size, b + unit_bytes)});
  }
  return units;
}

void read_unit(const InputFile& file, const WorkUnit& unit, const ReaderOptions& opts,
               const UnitCallbacks& cb) {
  RecordHandler handler(file, opts, cb);
  uint64_t reported = 0;
  try {
    with_unit_source(file, unit, opts, [&](ByteSource& src, uint64_t begin) {
      // A JSONL line may be longer than its text (escapes): allow it twice the size.
      const uint64_t max_record =
          file.format == InputFormat::Jsonl ? 2 * opts.max_doc_bytes + 4096 : opts.max_doc_bytes;
      RecordSplitter splitter(record_delimiter(file, opts), max_record, begin, std::ref(handler),
                              [&](uint64_t off) { handler.too_long(off); });
      const std::unique_ptr<char[]> block(new char[kBlock]);  // uninitialised: no memset per unit
      uint64_t total = 0;
      while (true) {
        const size_t n = src.read(block.get(), kBlock);
        if (n == 0) break;
        total += n;
        splitter.feed(std::string_view(block.get(), n));
        const uint64_t c = src.consumed();
        if (cb.on_progress) cb.on_progress(c - reported);
        reported = c;
      }
      splitter.finish();
      // An empty one-document-per-file input is an empty document.
      if (total == 0 && record_delimiter(file, opts).empty()) handler(std::string_view(), 0, true);
    });
  } catch (const ReadFailure& e) {
    cb.on_skip(Skip{SkipReason::UnreadableFile, 0, e.message});
  }
}

std::string describe_position(const InputFile& file, uint64_t offset) {
  uint64_t line = 1;
  try {
    with_unit_source(file, WorkUnit{0, 0, file.size}, ReaderOptions{}, [&](ByteSource& src, uint64_t) {
      std::vector<char> block(kBlock);
      uint64_t pos = 0;
      while (pos < offset) {
        const size_t n = src.read(block.data(), block.size());
        if (n == 0) break;
        const size_t use = static_cast<size_t>(std::min<uint64_t>(n, offset - pos));
        line += static_cast<uint64_t>(std::count(block.data(), block.data() + use, '\n'));
        pos += n;
      }
    });
  } catch (const ReadFailure&) {
    return file.path + " (byte " + std::to_string(offset) + ")";
  }
  return file.path + ":" + std::to_string(line) + " (byte " + std::to_string(offset) + ")";
}

}  // namespace rwkv::data
