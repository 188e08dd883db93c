#pragma once
// The training data loader: batches of windows of ctx_len+1 tokens from a
// dataset written by `rwkv preprocess` (docs/data-format.md).
//
// Order: the windows of each group (all documents of the split, or one group
// per language when blending) are visited in a fresh pseudorandom order every
// epoch (a Feistel permutation keyed by seed, group and epoch; permutation.h).
// The global sample sequence is split among data-parallel ranks: at step s rank
// r takes samples [s*G + r*B, s*G + (r+1)*B), G = dp_size*B, so the ranks read
// disjoint windows and together visit every window of an epoch exactly once.
// Blending picks the group of each global sample by smooth weighted round-robin
// (blend.h). The whole position is a LoaderState; a loader built from a saved
// state yields exactly the batches an uninterrupted one would have.
//
// A background thread prepares the next batches. libhdf5 is not thread-safe:
// the constructor makes every HDF5 call (checks, index, chunk addresses) on the
// caller's thread, and the thread reads token chunks with plain pread(2)
// (token_file.h), so the trainer may use HDF5 (checkpoints) at the same time.
// Shards are opened without HDF5 file locking (h5_util.h), as with
// HDF5_USE_FILE_LOCKING=FALSE, so Lustre and NFS work.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace rwkv::data {

struct LoaderOptions {
  std::string dataset;          // directory holding manifest.yaml
  std::string split = "train";  // train or val
  uint64_t ctx_len = 512;
  uint64_t seed = 42;
  int dp_rank = 0, dp_size = 1;
  uint64_t micro_batch = 8;  // windows per batch (B)
  // false: consecutive windows of the token stream, crossing document
  // boundaries (RWKV-LM, Megatron); true: windows start at a document start
  // (and every ctx_len tokens inside longer documents).
  bool align_to_documents = false;
  // Blending over languages. Explicit weights (languages left out are not
  // used), or temperature sampling p ∝ tokens^alpha over all languages when
  // alpha > 0. Neither: no blending, one group of all documents.
  std::map<std::string, double> lang_weights;
  double temperature_alpha = 0;
  // Checks at open: the caller's expectations (0 / "" = any) and, optionally,
  // every shard's SHA-256 (reads all data once).
  uint64_t expect_vocab_size = 0;
  std::string expect_tokenizer_kind;
  std::string expect_tokenizer_sha256;
  bool verify_checksums = false;
  // UTF-8 byte length of each token id (Tokenizer::decode of the id alone);
  // when given, each batch carries the byte count of its targets (bits per byte).
  std::vector<uint32_t> token_bytes;
  size_t prefetch = 4;  // batches prepared ahead
};

// The loader's position: store it in checkpoints.
struct LoaderState {
  uint64_t samples = 0;                 // windows consumed by all DP ranks together
  std::vector<uint64_t> group_draws;    // windows drawn from each group so far
  std::vector<int64_t> blend_credit;    // smooth weighted round-robin credit per group
  bool operator==(const LoaderState&) const = default;
};

struct Batch {
  uint64_t batch_size = 0, ctx_len = 0;  // B, T
  std::vector<uint32_t> inputs;   // [B, T]
  std::vector<uint32_t> targets;  // [B, T]: inputs shifted left by one token
  std::vector<uint16_t> lang;     // [B]: language (index into languages()) of the first target
  std::vector<uint64_t> bytes;    // [B]: UTF-8 bytes of the targets; empty without token_bytes
  std::vector<uint32_t> group;    // [B]: group of each window (index into groups())
  std::vector<uint64_t> window;   // [B]: index of the window in its group's stream order
  std::vector<uint64_t> epoch;    // [B]: epoch of each window within its group
  LoaderState state_after;        // the loader state once this batch is consumed
};

class Loader {
 public:
  // Opens and checks the dataset; throws rwkv::Error naming the shard and the
  // problem (missing, truncated, corrupted, other tokenizer) before any batch.
  explicit Loader(const LoaderOptions& opts, const LoaderState& state = {});
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  Batch next();
  LoaderState state() const { return state_; }  // after the batches returned by next()
  const std::vector<std::string>& languages() const;  // the dataset's languages, sorted
  const std::vector<std::string>& groups() const;     // "all", or the blended languages
  const std::vector<uint64_t>& windows_per_group() const;  // per epoch

  struct Data;  // the opened dataset (defined in loader.cpp)

 private:
  void worker();

  LoaderOptions opts_;
  LoaderState state_;
  std::unique_ptr<Data> data_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Batch> queue_;
  std::exception_ptr error_;
  bool stop_ = false;
};

}  // namespace rwkv::data
