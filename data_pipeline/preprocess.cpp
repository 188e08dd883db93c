#include "data_pipeline/preprocess.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/mpi_util.h"
#include "data_pipeline/progress.h"
#include "data_pipeline/sha256.h"
#include "data_pipeline/shard_reader.h"
#include "data_pipeline/shard_writer.h"
#include "data_pipeline/stable_hash.h"
#include "data_pipeline/tokenizer.h"
#include "data_pipeline/tokenizer_sentencepiece.h"

namespace rwkv::data {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFailedMarker = "preprocess.failed";

// Runs `fn` on every rank. If it throws on any rank, every rank throws
// ConfigError carrying the message of the lowest failing rank: all ranks agree
// and exit together, none is left in a collective.
void all_agree(MPI_Comm comm, const std::function<void()>& fn) {
  std::string msg;
  int failed = INT_MAX;
  try {
    fn();
  } catch (const std::exception& e) {
    msg = e.what();
    failed = comm_rank(comm);
  }
  int first = INT_MAX;
  MPI_CHECK(MPI_Allreduce(&failed, &first, 1, MPI_INT, MPI_MIN, comm));
  if (first == INT_MAX) return;
  throw ConfigError(broadcast_string(comm, msg, first));
}

std::string shard_name(size_t unit) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "shard-%05zu.h5", unit);
  return buf;
}

int64_t mtime_ns(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

// Everything that shapes a unit's shard: if any of it changes, a kept shard is stale.
std::string unit_fingerprint(const PreprocessOptions& o, const Tokenizer& tok, const InputFile& f,
                             const WorkUnit& u) {
  std::ostringstream s;
  s << "format_version=" << kShardFormatVersion << "\nfile=" << f.path << "\nsize=" << f.size
    << "\nmtime=" << mtime_ns(f.path) << "\nrange=" << u.begin << "," << u.end
    << "\nformat=" << static_cast<int>(f.format) << "\ngzip=" << f.gzip << "\npath_lang=" << f.path_lang
    << "\ntext_field=" << o.reader.text_field << "\nlang_field=" << o.reader.lang_field
    << "\ndelimiter=" << o.reader.delimiter << "\nmax_doc_bytes=" << o.reader.max_doc_bytes
    << "\nrepair_utf8=" << o.reader.repair_utf8 << "\ntokenizer=" << tokenizer_kind_name(tok.kind())
    << "\ntokenizer_sha256=" << tok.file_sha256() << "\nvocab_size=" << tok.vocab_size()
    << "\neod_id=" << tok.eod_id() << "\nval_fraction=" << std::setprecision(17) << o.val_fraction;
  const std::string text = s.str();
  return sha256_hex({reinterpret_cast<const uint8_t*>(text.data()), text.size()});
}

// Longest-processing-time-first: the biggest unit goes to the least loaded rank.
std::vector<size_t> assign_units(const std::vector<InputFile>& files, const std::vector<WorkUnit>& units,
                                 int rank, int size) {
  std::vector<size_t> order(units.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  auto bytes = [&](size_t i) { return units[i].end - units[i].begin + (files[units[i].file].gzip ? 1 : 0); };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return bytes(a) > bytes(b); });
  std::vector<uint64_t> load(static_cast<size_t>(size), 0);
  std::vector<size_t> mine;
  for (const size_t u : order) {
    const size_t r = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    load[r] += bytes(u) + 1;
    if (r == static_cast<size_t>(rank)) mine.push_back(u);
  }
  std::sort(mine.begin(), mine.end());
  return mine;
}

// The SentencePiece training sample: per language, the documents with the
// smallest content hashes whose sizes add up to at most cap = sample_bytes /
// languages (the longest such prefix in hash order). A rank keeps its local
// prefix and the first hash it had to drop (`limit`); the union of the ranks'
// prefixes below the smallest limit contains the global prefix, so the sample is
// the same for any rank count. A rank that has seen k languages may trim each to
// sample_bytes / k (k never exceeds the global count, so nothing of the final
// sample is lost), which bounds its memory by about sample_bytes.
struct LangSample {
  std::multiset<std::pair<uint64_t, std::string>> docs;  // (hash, text)
  uint64_t bytes = 0;
  uint64_t limit = UINT64_MAX;

  void add(uint64_t hash, std::string_view text, uint64_t cap) {
    if (hash >= limit) return;
    docs.emplace(hash, std::string(text));
    bytes += text.size();
    trim(cap);
  }

  void trim(uint64_t cap) {
    while (bytes > cap) {
      auto last = std::prev(docs.end());
      limit = last->first;
      bytes -= last->second.size();
      docs.erase(last);
    }
  }
};

void append_u64(std::string& out, uint64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); }
uint64_t take_u64(const std::string& in, size_t& pos) {
  uint64_t v = 0;
  std::memcpy(&v, in.data() + pos, 8);
  pos += 8;
  return v;
}
void append_str(std::string& out, std::string_view s) {
  append_u64(out, s.size());
  out.append(s);
}
std::string take_str(const std::string& in, size_t& pos) {
  const uint64_t n = take_u64(in, pos);
  std::string s = in.substr(pos, n);
  pos += n;
  return s;
}

// Sends every rank's string to `root` (in 1 GiB pieces); returns them there.
std::vector<std::string> gather_strings(MPI_Comm comm, const std::string& mine, int root) {
  const int rank = comm_rank(comm), size = comm_size(comm);
  std::vector<std::string> all;
  const uint64_t piece = uint64_t{1} << 30;
  if (rank != root) {
    uint64_t n = mine.size();
    MPI_CHECK(MPI_Send(&n, 1, MPI_UINT64_T, root, 0, comm));
    for (uint64_t off = 0; off < n; off += piece)
      MPI_CHECK(MPI_Send(mine.data() + off, static_cast<int>(std::min(piece, n - off)), MPI_CHAR, root, 1, comm));
    return all;
  }
  all.resize(static_cast<size_t>(size));
  for (int r = 0; r < size; ++r) {
    if (r == root) {
      all[static_cast<size_t>(r)] = mine;
      continue;
    }
    uint64_t n = 0;
    MPI_CHECK(MPI_Recv(&n, 1, MPI_UINT64_T, r, 0, comm, MPI_STATUS_IGNORE));
    std::string& s = all[static_cast<size_t>(r)];
    s.resize(n);
    for (uint64_t off = 0; off < n; off += piece)
      MPI_CHECK(MPI_Recv(s.data() + off, static_cast<int>(std::min(piece, n - off)), MPI_CHAR, r, 1, comm,
                         MPI_STATUS_IGNORE));
  }
  return all;
}

std::string sp_fingerprint(const PreprocessOptions& o, const std::vector<InputFile>& files) {
  std::ostringstream s;
  s << "type=" << o.sp_model_type << "\nvocab=" << o.vocab_size << "\ncoverage=" << std::setprecision(17)
    << o.character_coverage << "\nsample=" << o.sp_sample_bytes << "\nseed=" << o.seed
    << "\nrepair=" << o.reader.repair_utf8 << "\ntext_field=" << o.reader.text_field
    << "\nlang_field=" << o.reader.lang_field << "\ndelimiter=" << o.reader.delimiter;
  for (const auto& f : files) s << "\nfile=" << f.path << " " << f.size << " " << mtime_ns(f.path);
  const std::string text = s.str();
  return sha256_hex({reinterpret_cast<const uint8_t*>(text.data()), text.size()});
}

std::string read_small_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return "";
  char buf[256];
  const size_t n = std::fread(buf, 1, sizeof(buf), f);
  std::fclose(f);
  return std::string(buf, n);
}

void write_small_file(const std::string& path, const std::string& text) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw Error(path + ": cannot write");
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0 || !ok) throw Error(path + ": cannot write");
  fsync_path(path);
}

// Trains <output>/tokenizer.model on a sample of the corpus (all ranks read
// their units, rank 0 trains); reuses a model trained earlier with the same
// inputs and options (a rerun after a kill). Returns the model's path.
std::string train_tokenizer(const PreprocessOptions& o, const std::vector<InputFile>& files,
                            const std::vector<WorkUnit>& units, const std::vector<size_t>& mine,
                            MPI_Comm comm, std::ostream& log) {
  const std::string prefix = o.output + "/tokenizer";
  const std::string model = prefix + ".model", stamp = prefix + ".fingerprint";
  const std::string fp = sp_fingerprint(o, files);
  int reuse = 0;
  if (comm_rank(comm) == 0) reuse = fs::exists(model) && read_small_file(stamp) == fp;
  MPI_CHECK(MPI_Bcast(&reuse, 1, MPI_INT, 0, comm));
  if (reuse) return model;

  std::map<std::string, LangSample> samples;
  all_agree(comm, [&] {
    UnitCallbacks cb;
    cb.on_document = [&](const Document& d) {
      auto [it, is_new] = samples.try_emplace(std::string(d.lang));
      const uint64_t cap = o.sp_sample_bytes / samples.size();
      if (is_new) {
        for (auto& [lang, sample] : samples) sample.trim(cap);
      }
      it->second.add(content_hash64(d.text), d.text, cap);
    };
    cb.on_skip = [](const Skip&) {};
    for (const size_t u : mine) read_unit(files[units[u].file], units[u], o.reader, cb);
  });
  std::string blob;
  for (const auto& [lang, s] : samples) {
    append_str(blob, lang);
    append_u64(blob, s.limit);
    append_u64(blob, s.docs.size());
    for (const auto& [hash, text] : s.docs) {
      append_u64(blob, hash);
      append_str(blob, text);
    }
  }
  const std::vector<std::string> parts = gather_strings(comm, blob, 0);
  root_then_broadcast<ConfigError>(comm, [&] {
    std::map<std::string, std::vector<std::pair<uint64_t, std::string>>> merged;
    std::map<std::string, uint64_t> limit;
    for (const auto& p : parts) {
      size_t pos = 0;
      while (pos < p.size()) {
        const std::string lang = take_str(p, pos);
        const uint64_t lim = take_u64(p, pos);
        limit.try_emplace(lang, UINT64_MAX);
        limit[lang] = std::min(limit[lang], lim);
        const uint64_t n = take_u64(p, pos);
        for (uint64_t i = 0; i < n; ++i) {
          const uint64_t h = take_u64(p, pos);
          merged[lang].emplace_back(h, take_str(p, pos));
        }
      }
    }
    std::vector<std::pair<std::string, std::string>> docs;
    const uint64_t cap = o.sp_sample_bytes / std::max<size_t>(1, limit.size());  // every language seen
    for (auto& [lang, list] : merged) {
      std::sort(list.begin(), list.end());
      uint64_t bytes = 0;
      for (auto& [h, text] : list) {
        if (h >= limit[lang] || bytes + text.size() > cap) break;
        bytes += text.size();
        docs.emplace_back(lang, std::move(text));
      }
    }
    if (docs.empty()) throw Error("--train-sentencepiece: the inputs hold no usable document");
    log << "training a SentencePiece " << o.sp_model_type << " model (vocab " << o.vocab_size << ") on "
        << docs.size() << " documents in " << merged.size() << " languages\n";
    SentencePieceTrainOptions t;
    t.model_type = o.sp_model_type;
    t.vocab_size = o.vocab_size;
    t.character_coverage = o.character_coverage;
    t.seed = o.seed;
    t.max_sample_bytes = o.sp_sample_bytes;
    train_sentencepiece(docs, t, prefix);
    write_small_file(stamp, fp);
    return std::string();
  });
  return model;
}

// Copies the tokenizer file into the dataset so that it is self-contained.
std::string copy_tokenizer(const std::string& src, const std::string& out_dir, TokenizerKind kind) {
  const std::string name = kind == TokenizerKind::World ? "tokenizer.txt" : "tokenizer.model";
  const std::string dst = out_dir + "/" + name;
  std::error_code ec;
  if (!fs::exists(dst) || !fs::equivalent(src, dst, ec)) {
    fs::copy_file(src, dst, fs::copy_options::overwrite_existing, ec);
    if (ec) throw Error(dst + ": cannot copy the tokenizer from " + src + ": " + ec.message());
  }
  return name;
}

struct UnitResult {
  bool kept = false;
};

// Writes (or keeps) the shard of one unit.
UnitResult process_unit(const PreprocessOptions& o, const Tokenizer& tok, const InputFile& file,
                        const WorkUnit& unit, const std::string& path, const std::string& fingerprint,
                        Progress& progress) {
  std::error_code ec;
  if (fs::exists(path, ec)) {
    try {
      const ShardInfo old = read_shard_info(path);
      if (old.fingerprint == fingerprint && hash_shard_tokens(path) == old.tokens_sha256) {
        progress.add(unit.end - unit.begin, old.n_docs);
        return {true};
      }
    } catch (const Error&) {
      // unreadable or damaged: written again below
    }
    fs::remove(path, ec);
  }
  ShardInfo header;
  header.tokenizer_kind = tokenizer_kind_name(tok.kind());
  header.tokenizer_sha256 = tok.file_sha256();
  header.vocab_size = tok.vocab_size();
  header.eod_id = tok.eod_id();
  header.source = file.path + " [" + std::to_string(unit.begin) + ", " + std::to_string(unit.end) + ")";
  header.fingerprint = fingerprint;
  ShardWriter writer(path, header);
  std::vector<uint64_t> skipped(kNumSkipReasons, 0);
  std::vector<uint32_t> ids;
  UnitCallbacks cb;
  cb.on_document = [&](const Document& d) {
    ids.clear();
    tok.encode(d.text, ids);
    ids.push_back(tok.eod_id());
    writer.add(ids, std::string(d.lang), d.text.size(), is_validation_doc(d.text, o.val_fraction));
    progress.add(0, 1);
  };
  cb.on_skip = [&](const Skip& s) {
    if (o.strict)
      throw Error(describe_position(file, s.offset) + ": " + skip_reason_name(s.reason) + ": " + s.detail +
                  " (--strict)");
    skipped[static_cast<size_t>(s.reason)] += 1;
  };
  cb.on_progress = [&](uint64_t bytes) { progress.add(bytes, 0); };
  read_unit(file, unit, o.reader, cb);
  writer.finish(skip_reason_names(), skipped);
  return {false};
}

Manifest build_manifest(const PreprocessOptions& o, const Tokenizer& tok, const std::string& tokenizer_file,
                        size_t n_units) {
  Manifest m;
  m.format_version = kShardFormatVersion;
  m.tokenizer_kind = tokenizer_kind_name(tok.kind());
  m.tokenizer_file = tokenizer_file;
  m.tokenizer_sha256 = tok.file_sha256();
  m.vocab_size = tok.vocab_size();
  m.eod_id = tok.eod_id();
  m.token_bytes = m.vocab_size <= 65536 ? 2 : 4;
  m.val_fraction = o.val_fraction;
  for (const auto& r : skip_reason_names()) m.skipped[r] = 0;
  for (size_t u = 0; u < n_units; ++u) {
    const std::string path = o.output + "/" + shard_name(u);
    const ShardInfo s = read_shard_info(path);
    ManifestShard e;
    e.file = shard_name(u);
    e.file_bytes = fs::file_size(path);
    e.docs = s.n_docs;
    e.tokens = s.n_tokens;
    e.train_docs = s.train_docs;
    e.train_tokens = s.train_tokens;
    e.sha256 = s.tokens_sha256;
    for (size_t i = 0; i < s.langs.size(); ++i) {
      e.langs[s.langs[i]] = {s.lang_docs[i], s.lang_tokens[i], 0};
      LangStats& t = m.langs[s.langs[i]];
      t.docs += s.lang_docs[i];
      t.tokens += s.lang_tokens[i];
      t.bytes += s.lang_bytes[i];
    }
    for (size_t i = 0; i < s.skip_reasons.size(); ++i) m.skipped[s.skip_reasons[i]] += s.skip_counts[i];
    m.docs += e.docs;
    m.tokens += e.tokens;
    m.train_docs += e.train_docs;
    m.train_tokens += e.train_tokens;
    m.shards.push_back(std::move(e));
  }
  return m;
}

}  // namespace

void print_summary(std::ostream& out, const Manifest& m) {
  out << "documents: " << m.docs << " (train " << m.train_docs << ", validation " << m.docs - m.train_docs
      << ")\ntokens: " << m.tokens << " (train " << m.train_tokens << ", validation "
      << m.tokens - m.train_tokens << ")\n";
  out << "language      documents          tokens  bytes/token\n";
  for (const auto& [lang, s] : m.langs) {
    char line[160];
    std::snprintf(line, sizeof(line), "%-10s %12llu %15llu %12.3f\n", lang.c_str(),
                  static_cast<unsigned long long>(s.docs), static_cast<unsigned long long>(s.tokens),
                  s.tokens ? static_cast<double>(s.bytes) / static_cast<double>(s.tokens) : 0.0);
    out << line;
  }
  uint64_t skipped = 0;
  for (const auto& [r, n] : m.skipped) skipped += n;
  out << "skipped documents: " << skipped;
  for (const auto& [r, n] : m.skipped) {
    if (n > 0) out << "\n  " << r << ": " << n;
  }
  out << "\n";
}

Manifest run_preprocess(const PreprocessOptions& o, MPI_Comm comm, std::ostream& log, bool live,
                        std::ostream& summary) {
  const auto t0 = std::chrono::steady_clock::now();
  const int rank = comm_rank(comm), size = comm_size(comm);
  std::vector<InputFile> files;
  std::vector<WorkUnit> units;
  all_agree(comm, [&] {
    if (o.val_fraction < 0 || o.val_fraction > 1) throw Error("--val-fraction must be in [0, 1]");
    if (o.unit_bytes == 0) throw Error("--unit-bytes must be positive");
    files = expand_inputs(o.inputs, o.reader);
    units = plan_units(files, o.reader, o.unit_bytes);
  });
  // Start over from a clean state: no manifest (it marks completion) and no
  // shard that the plan does not produce.
  root_then_broadcast<ConfigError>(comm, [&] {
    fs::create_directories(o.output);
    fs::remove(o.output + "/" + kManifestName);
    fs::remove(o.output + "/" + kFailedMarker);
    std::set<std::string> planned;
    for (size_t u = 0; u < units.size(); ++u) planned.insert(shard_name(u));
    for (const auto& e : fs::directory_iterator(o.output)) {
      const std::string name = e.path().filename().string();
      const bool shard = name.starts_with("shard-") && (name.ends_with(".h5") || name.ends_with(".h5.tmp"));
      if (shard && !planned.count(name)) fs::remove(e.path());
    }
    return std::string();
  });
  const std::vector<size_t> mine = assign_units(files, units, rank, size);

  std::string tokenizer_path = o.tokenizer_file;
  TokenizerKind kind = TokenizerKind::Bytes;
  std::string tokenizer_file;
  all_agree(comm, [&] { kind = o.train_sentencepiece ? TokenizerKind::SentencePiece : tokenizer_kind_from_name(o.tokenizer); });
  if (o.train_sentencepiece) tokenizer_path = train_tokenizer(o, files, units, mine, comm, log);
  std::unique_ptr<Tokenizer> tok;
  all_agree(comm, [&] { tok = load_tokenizer(kind, tokenizer_path); });
  if (kind != TokenizerKind::Bytes) {
    tokenizer_file = root_then_broadcast<ConfigError>(comm, [&] {
      return o.train_sentencepiece ? std::string("tokenizer.model") : copy_tokenizer(tokenizer_path, o.output, kind);
    });
  }

  uint64_t my_bytes = 0;
  for (const size_t u : mine) my_bytes += units[u].end - units[u].begin;
  std::ostringstream label;
  label << "preprocess";
  if (size > 1) label << " [rank " << rank << "/" << size << "]";
  // A live bar only on rank 0; log lines from every rank.
  Progress progress(live && rank != 0 ? nullptr : &log, label.str(), my_bytes, live);
  uint64_t counts[2] = {0, 0};  // written, kept
  // A rank that fails leaves a marker file; the others see it at their next unit
  // and stop early instead of finishing work that will not be used. All then
  // agree on the failing rank's message.
  const std::string failed_marker = o.output + "/" + kFailedMarker;
  all_agree(comm, [&] {
    try {
      for (const size_t u : mine) {
        if (fs::exists(failed_marker)) break;
        const std::string path = o.output + "/" + shard_name(u);
        const WorkUnit& unit = units[u];
        const UnitResult r = process_unit(o, *tok, files[unit.file], unit, path,
                                          unit_fingerprint(o, *tok, files[unit.file], unit), progress);
        counts[r.kept ? 1 : 0] += 1;
        if (o.stop_after_shards > 0 && counts[0] >= o.stop_after_shards)
          throw Error("stopped after writing " + std::to_string(counts[0]) + " shards (--stop-after-shards)");
      }
    } catch (const std::exception&) {
      std::ofstream(failed_marker) << "rank " << rank << " failed\n";  // best effort: only a hint
      throw;
    }
  });
  progress.finish();
  uint64_t totals[2] = {0, 0};
  MPI_CHECK(MPI_Reduce(counts, totals, 2, MPI_UINT64_T, MPI_SUM, 0, comm));

  Manifest manifest;
  const std::string yaml = root_then_broadcast<ConfigError>(comm, [&] {
    manifest = build_manifest(o, *tok, tokenizer_file, units.size());
    write_manifest(o.output, manifest);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    uint64_t in_bytes = 0;
    for (const auto& f : files) in_bytes += f.size;
    summary << "rwkv preprocess: " << o.output << ": " << units.size() << " shards (" << totals[0]
            << " written, " << totals[1] << " kept), " << human_bytes(static_cast<double>(in_bytes))
            << " of input in " << std::fixed << std::setprecision(1) << secs << " s ("
            << human_bytes(static_cast<double>(in_bytes) / std::max(secs, 1e-9)) << "/s) on " << size
            << (size == 1 ? " rank\n" : " ranks\n") << std::defaultfloat;
    print_summary(summary, manifest);
    return manifest_to_yaml(manifest);
  });
  if (rank != 0) manifest = manifest_from_yaml(yaml, o.output + "/" + kManifestName);
  return manifest;
}

}  // namespace rwkv::data
