#include "data_pipeline/loader.h"

#include <algorithm>
#include <filesystem>

#include "common/error.h"
#include "data_pipeline/blend.h"
#include "data_pipeline/manifest.h"
#include "data_pipeline/permutation.h"
#include "data_pipeline/shard_reader.h"
#include "data_pipeline/stable_hash.h"
#include "data_pipeline/token_file.h"

namespace rwkv::data {

namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxOpenShards = 64;

// A contiguous token range of one shard that belongs to a group.
struct Segment {
  uint32_t shard = 0;
  uint64_t begin = 0, len = 0;
};

// The token stream of one group: its segments back to back, and its windows.
struct Group {
  std::string name;
  std::vector<Segment> segs;
  std::vector<uint64_t> seg_start{0};  // [segs + 1] stream offset of each segment
  uint64_t tokens = 0;
  uint64_t windows = 0;
  // Document-aligned windows only: the stream offset of each document [docs]
  // and the number of windows before each document [docs + 1].
  std::vector<uint64_t> doc_start, doc_windows;

  void add(uint32_t shard, uint64_t begin, uint64_t len) {
    if (len == 0) return;
    if (!segs.empty() && segs.back().shard == shard && segs.back().begin + segs.back().len == begin) {
      segs.back().len += len;
      seg_start.back() += len;
    } else {
      segs.push_back({shard, begin, len});
      seg_start.push_back(seg_start.back() + len);
    }
    tokens += len;
  }
};

struct ShardIndex {
  std::string path;
  TokenLayout layout;
  std::vector<uint64_t> doc_offsets;  // [docs + 1]
  std::vector<uint16_t> doc_lang;     // [docs]: index into Data::languages
};

uint64_t window_key(uint64_t seed, size_t group, uint64_t epoch) {
  return splitmix64(splitmix64(splitmix64(seed) + epoch) + group);
}

}  // namespace

struct Loader::Data {
  Manifest manifest;
  std::vector<std::string> languages;
  std::vector<ShardIndex> shards;
  std::vector<Group> groups;
  std::vector<std::string> group_names;
  std::vector<uint64_t> windows;
  std::vector<int64_t> weights;
  std::vector<std::unique_ptr<TokenFile>> readers;  // open shards, at most kMaxOpenShards
  std::deque<uint32_t> open_order;

  TokenFile& reader(uint32_t shard) {
    if (readers.empty()) readers.resize(shards.size());
    if (!readers[shard]) {
      if (open_order.size() >= kMaxOpenShards) {
        readers[open_order.front()].reset();
        open_order.pop_front();
      }
      readers[shard] = std::make_unique<TokenFile>(shards[shard].path, shards[shard].layout);
      open_order.push_back(shard);
    }
    return *readers[shard];
  }

  // Stream offset of window `w` of group `g`.
  uint64_t window_offset(const Group& grp, uint64_t w, uint64_t ctx) const {
    if (grp.doc_windows.empty()) return w * ctx;
    const size_t d = static_cast<size_t>(
        std::upper_bound(grp.doc_windows.begin(), grp.doc_windows.end(), w) - grp.doc_windows.begin() - 1);
    return grp.doc_start[d] + (w - grp.doc_windows[d]) * ctx;
  }

  size_t segment_of(const Group& grp, uint64_t offset) const {
    return static_cast<size_t>(std::upper_bound(grp.seg_start.begin(), grp.seg_start.end(), offset) -
                               grp.seg_start.begin() - 1);
  }

  // out[0, n) = the group's stream [offset, offset + n)
  void read(const Group& grp, uint64_t offset, uint64_t n, uint32_t* out) {
    size_t s = segment_of(grp, offset);
    while (n > 0) {
      const Segment& seg = grp.segs[s];
      const uint64_t in_seg = offset - grp.seg_start[s];
      const uint64_t take = std::min(n, seg.len - in_seg);
      reader(seg.shard).read(seg.begin + in_seg, take, out);
      out += take;
      offset += take;
      n -= take;
      ++s;
    }
  }

  uint16_t lang_at(const Group& grp, uint64_t offset) const {
    const size_t s = segment_of(grp, offset);
    const Segment& seg = grp.segs[s];
    const ShardIndex& sh = shards[seg.shard];
    const uint64_t pos = seg.begin + (offset - grp.seg_start[s]);
    const size_t d = static_cast<size_t>(
        std::upper_bound(sh.doc_offsets.begin(), sh.doc_offsets.end(), pos) - sh.doc_offsets.begin() - 1);
    return sh.doc_lang[d];
  }
};

namespace {

std::string manifest_path(const LoaderOptions& o) { return o.dataset + "/" + kManifestName; }

void check_expectations(const LoaderOptions& o, const Manifest& m) {
  const std::string where = manifest_path(o);
  if (o.expect_vocab_size && m.vocab_size != o.expect_vocab_size)
    throw Error(where + ": dataset vocab_size " + std::to_string(m.vocab_size) + ", expected " +
                std::to_string(o.expect_vocab_size));
  if (!o.expect_tokenizer_kind.empty() && m.tokenizer_kind != o.expect_tokenizer_kind)
    throw Error(where + ": dataset tokenizer '" + m.tokenizer_kind + "', expected '" + o.expect_tokenizer_kind + "'");
  if (!o.expect_tokenizer_sha256.empty() && m.tokenizer_sha256 != o.expect_tokenizer_sha256)
    throw Error(where + ": dataset tokenizer file SHA-256 " + m.tokenizer_sha256 + ", expected " +
                o.expect_tokenizer_sha256 + " (a different tokenizer)");
}

// Every shard against the manifest: size, counts, tokenizer; the checksum on request.
ShardIndex check_shard(const LoaderOptions& o, const Manifest& m, const ManifestShard& e,
                       const std::map<std::string, uint16_t>& lang_ids) {
  const std::string path = o.dataset + "/" + e.file;
  std::error_code ec;
  const uint64_t size = fs::file_size(path, ec);
  if (ec) throw Error(path + ": missing shard (listed in " + manifest_path(o) + ")");
  if (size != e.file_bytes)
    throw Error(path + ": truncated or modified shard: " + std::to_string(size) + " bytes, manifest says " +
                std::to_string(e.file_bytes));
  const ShardInfo s = read_shard_info(path);
  auto mismatch = [&](const std::string& what, const std::string& got, const std::string& want) {
    throw Error(path + ": " + what + " " + got + " differs from the manifest's " + want);
  };
  if (s.n_tokens != e.tokens) mismatch("token count", std::to_string(s.n_tokens), std::to_string(e.tokens));
  if (s.n_docs != e.docs) mismatch("document count", std::to_string(s.n_docs), std::to_string(e.docs));
  if (s.train_tokens != e.train_tokens)
    mismatch("training token count", std::to_string(s.train_tokens), std::to_string(e.train_tokens));
  if (s.tokens_sha256 != e.sha256) mismatch("checksum attribute", s.tokens_sha256, e.sha256);
  if (s.tokenizer_kind != m.tokenizer_kind) mismatch("tokenizer", s.tokenizer_kind, m.tokenizer_kind);
  if (s.tokenizer_sha256 != m.tokenizer_sha256) mismatch("tokenizer SHA-256", s.tokenizer_sha256, m.tokenizer_sha256);
  if (s.vocab_size != m.vocab_size)
    mismatch("vocab_size", std::to_string(s.vocab_size), std::to_string(m.vocab_size));
  if (o.verify_checksums) {
    const std::string h = hash_shard_tokens(path);
    if (h != e.sha256) throw Error(path + ": corrupted shard: token data SHA-256 " + h + ", manifest says " + e.sha256);
  }
  ShardIndex idx;
  idx.path = path;
  idx.layout = read_token_layout(path);
  ShardReader r(path);
  idx.doc_offsets = r.doc_offsets();
  const std::vector<std::string> names = r.lang_names();
  for (const uint16_t l : r.doc_lang()) {
    if (l >= names.size() || !lang_ids.count(names[l]))
      throw Error(path + ": doc_lang refers to a language the manifest does not list");
    idx.doc_lang.push_back(lang_ids.at(names[l]));
  }
  if (idx.doc_lang.size() != s.n_docs) throw Error(path + ": doc_lang has the wrong length");
  return idx;
}

std::unique_ptr<Loader::Data> open_dataset(const LoaderOptions& o) {
  auto d = std::make_unique<Loader::Data>();
  d->manifest = read_manifest(o.dataset);
  const Manifest& m = d->manifest;
  check_expectations(o, m);
  std::map<std::string, uint16_t> lang_ids;
  for (const auto& [lang, unused] : m.langs) {
    lang_ids[lang] = static_cast<uint16_t>(d->languages.size());
    d->languages.push_back(lang);
  }
  for (const auto& e : m.shards) d->shards.push_back(check_shard(o, m, e, lang_ids));

  // Groups: one of everything, or one per blended language.
  const bool blend = !o.lang_weights.empty() || o.temperature_alpha > 0;
  std::vector<int> group_of_lang(d->languages.size(), blend ? -1 : 0);
  std::vector<double> explicit_weights;
  if (!blend) {
    d->groups.resize(1);
    d->groups[0].name = "all";
  } else {
    for (const auto& [lang, w] : o.lang_weights) {
      if (!lang_ids.count(lang)) throw Error(manifest_path(o) + ": blend weight for language '" + lang +
                                             "', which the dataset does not have");
    }
    for (size_t l = 0; l < d->languages.size(); ++l) {
      const auto it = o.lang_weights.find(d->languages[l]);
      const double w = o.lang_weights.empty() ? 1.0 : (it == o.lang_weights.end() ? 0.0 : it->second);
      if (w <= 0) continue;
      group_of_lang[l] = static_cast<int>(d->groups.size());
      d->groups.emplace_back().name = d->languages[l];
      explicit_weights.push_back(w);
    }
  }
  const bool train = o.split == "train";
  for (uint32_t si = 0; si < d->shards.size(); ++si) {
    const ShardIndex& sh = d->shards[si];
    const ManifestShard& e = m.shards[si];
    const uint64_t doc_begin = train ? 0 : e.train_docs, doc_end = train ? e.train_docs : e.docs;
    for (uint64_t doc = doc_begin; doc < doc_end; ++doc) {
      const int g = group_of_lang[sh.doc_lang[doc]];
      if (g < 0) continue;
      Group& grp = d->groups[static_cast<size_t>(g)];
      const uint64_t begin = sh.doc_offsets[doc], len = sh.doc_offsets[doc + 1] - begin;
      if (o.align_to_documents) grp.doc_start.push_back(grp.tokens);
      grp.add(si, begin, len);
    }
  }
  const uint64_t ctx = o.ctx_len;
  for (Group& grp : d->groups) {
    if (o.align_to_documents) {
      // Windows at each document start and every ctx tokens after it within
      // the document, as long as ctx+1 tokens remain in the stream.
      grp.doc_windows.push_back(0);
      for (size_t i = 0; i < grp.doc_start.size(); ++i) {
        const uint64_t start = grp.doc_start[i];
        const uint64_t end = i + 1 < grp.doc_start.size() ? grp.doc_start[i + 1] : grp.tokens;
        uint64_t n = 0;
        for (uint64_t p = start; p < end && p + ctx + 1 <= grp.tokens; p += ctx) ++n;
        grp.doc_windows.push_back(grp.doc_windows.back() + n);
      }
      grp.windows = grp.doc_windows.back();
    } else {
      grp.windows = grp.tokens > ctx ? (grp.tokens - 1) / ctx : 0;
    }
    // Temperature blending leaves out languages too small for one window;
    // asked-for languages (or the whole split) must have one.
    const bool optional = blend && o.lang_weights.empty();
    if (grp.windows == 0 && !optional)
      throw Error(o.dataset + ": the " + o.split + " split" + (blend ? " of language '" + grp.name + "'" : "") +
                  " has no window of ctx_len+1 = " + std::to_string(ctx + 1) + " tokens");
  }
  std::erase_if(d->groups, [](const Group& grp) { return grp.windows == 0; });
  if (d->groups.empty())
    throw Error(o.dataset + ": no language of the " + o.split + " split has a window of ctx_len+1 = " +
                std::to_string(ctx + 1) + " tokens");
  for (const Group& grp : d->groups) {
    d->group_names.push_back(grp.name);
    d->windows.push_back(grp.windows);
  }
  if (!blend) {
    d->weights = {1};
  } else if (!o.lang_weights.empty()) {
    d->weights = blend_integer_weights(explicit_weights);
  } else {
    std::vector<uint64_t> sizes;
    for (const Group& grp : d->groups) sizes.push_back(grp.tokens);
    d->weights = blend_integer_weights(temperature_proportions(sizes, o.temperature_alpha));
  }
  return d;
}

}  // namespace

Loader::Loader(const LoaderOptions& opts, const LoaderState& state) : opts_(opts), state_(state) {
  if (opts_.ctx_len == 0 || opts_.micro_batch == 0) throw Error("loader: ctx_len and micro_batch must be positive");
  if (opts_.dp_size < 1 || opts_.dp_rank < 0 || opts_.dp_rank >= opts_.dp_size)
    throw Error("loader: dp_rank " + std::to_string(opts_.dp_rank) + " is outside dp_size " +
                std::to_string(opts_.dp_size));
  if (opts_.split != "train" && opts_.split != "val")
    throw Error("loader: split '" + opts_.split + "' is neither train nor val");
  if (opts_.prefetch == 0) opts_.prefetch = 1;
  // Every HDF5 call happens here, on the caller's thread; the prefetch thread
  // only reads token chunks with pread (token_file.h).
  data_ = open_dataset(opts_);
  const size_t n_groups = data_->groups.size();
  if (state_.group_draws.empty()) state_.group_draws.assign(n_groups, 0);
  if (state_.blend_credit.empty()) state_.blend_credit.assign(n_groups, 0);
  if (state_.group_draws.size() != n_groups || state_.blend_credit.size() != n_groups)
    throw Error("loader: the saved state has " + std::to_string(state_.group_draws.size()) +
                " groups, this dataset and blend have " + std::to_string(n_groups));
  thread_ = std::thread([this] { worker(); });
}

Loader::~Loader() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

const std::vector<std::string>& Loader::languages() const { return data_->languages; }
const std::vector<std::string>& Loader::groups() const { return data_->group_names; }
const std::vector<uint64_t>& Loader::windows_per_group() const { return data_->windows; }

Batch Loader::next() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return !queue_.empty() || error_; });
  if (queue_.empty()) std::rethrow_exception(error_);
  Batch b = std::move(queue_.front());
  queue_.pop_front();
  lock.unlock();
  cv_.notify_all();
  state_ = b.state_after;
  return b;
}

void Loader::worker() {
  LoaderState st = state_;
  const uint64_t B = opts_.micro_batch, T = opts_.ctx_len;
  const uint64_t G = B * static_cast<uint64_t>(opts_.dp_size);
  const uint64_t mine_begin = B * static_cast<uint64_t>(opts_.dp_rank);
  std::vector<uint32_t> window(T + 1);
  std::vector<std::pair<size_t, uint64_t>> picks;  // (group, draw index) of this rank's windows
  while (true) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stop_ || queue_.size() < opts_.prefetch; });
      if (stop_) return;
    }
    try {
      // The whole global batch advances the blend; this rank keeps its slice.
      picks.clear();
      for (uint64_t j = 0; j < G; ++j) {
        const size_t g = data_->groups.size() == 1 ? 0 : blend_next(data_->weights, st.blend_credit);
        const uint64_t k = st.group_draws[g]++;
        if (j >= mine_begin && j < mine_begin + B) picks.emplace_back(g, k);
      }
      st.samples += G;
      Batch b;
      b.batch_size = B;
      b.ctx_len = T;
      b.inputs.resize(B * T);
      b.targets.resize(B * T);
      for (uint64_t i = 0; i < B; ++i) {
        const auto [g, k] = picks[i];
        const Group& grp = data_->groups[g];
        const uint64_t epoch = k / grp.windows;
        const uint64_t w = Permutation(grp.windows, window_key(opts_.seed, g, epoch))(k % grp.windows);
        const uint64_t offset = data_->window_offset(grp, w, T);
        data_->read(grp, offset, T + 1, window.data());
        std::copy(window.begin(), window.end() - 1, b.inputs.begin() + static_cast<ptrdiff_t>(i * T));
        std::copy(window.begin() + 1, window.end(), b.targets.begin() + static_cast<ptrdiff_t>(i * T));
        b.lang.push_back(data_->lang_at(grp, offset + 1));
        b.group.push_back(static_cast<uint32_t>(g));
        b.window.push_back(w);
        b.epoch.push_back(epoch);
        if (!opts_.token_bytes.empty()) {
          uint64_t bytes = 0;
          for (auto it = window.begin() + 1; it != window.end(); ++it)
            bytes += *it < opts_.token_bytes.size() ? opts_.token_bytes[*it] : 0;
          b.bytes.push_back(bytes);
        }
      }
      b.state_after = st;
      {
        std::lock_guard lock(mu_);
        queue_.push_back(std::move(b));
      }
      cv_.notify_all();
    } catch (...) {
      std::lock_guard lock(mu_);
      error_ = std::current_exception();
      cv_.notify_all();
      return;
    }
  }
}

}  // namespace rwkv::data
