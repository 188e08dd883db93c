#pragma once
// `rwkv preprocess`: corpora -> a dataset directory of HDF5 token shards plus
// manifest.yaml (docs/data-format.md). Runs on every rank of an MPI
// communicator: the inputs are cut into work units (files, byte ranges of large
// files) that do not depend on the number of ranks; each unit becomes one shard,
// written by the rank that owns it, so the result is the same for any rank count.
// A rerun with the same arguments keeps every finished shard whose checksum and
// fingerprint still match and redoes the rest; manifest.yaml is written last.
#include <mpi.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "data_pipeline/corpus_reader.h"
#include "data_pipeline/manifest.h"

namespace rwkv::data {

struct PreprocessOptions {
  std::vector<std::string> inputs;  // files, directories, globs
  std::string output;               // dataset directory
  ReaderOptions reader;
  std::string tokenizer = "bytes";  // bytes, world, sentencepiece
  std::string tokenizer_file;       // world vocabulary or SentencePiece .model
  bool train_sentencepiece = false;  // train a SentencePiece model on the corpus first
  std::string sp_model_type = "bpe";
  uint32_t vocab_size = 32000;
  double character_coverage = 0.9995;
  uint64_t sp_sample_bytes = uint64_t{256} << 20;  // training sample, all languages together
  uint64_t seed = 1;
  double val_fraction = 0.005;
  bool strict = false;  // the first bad document is a fatal error
  uint64_t unit_bytes = uint64_t{64} << 20;
  uint64_t stop_after_shards = 0;  // tests: fail after writing this many shards per rank
};

// Collective over `comm`. Returns the manifest on every rank. Throws
// rwkv::ConfigError with the same message on every rank on any fatal error
// (then no manifest is written). Progress goes to `log` (rank 0 draws a live bar
// when `live`), the summary to `summary` on rank 0.
Manifest run_preprocess(const PreprocessOptions& opts, MPI_Comm comm, std::ostream& log, bool live,
                        std::ostream& summary);

// The end-of-run report: documents, tokens, per-language tokens and bytes per
// token, skipped documents by reason.
void print_summary(std::ostream& out, const Manifest& m);

}  // namespace rwkv::data
