#pragma once
// SentencePiece tokenizers (libsentencepiece): loading a .model and training one.
// Lossless is required (decode(encode(doc)) == doc), so models are trained with
// the identity normalisation, no dummy prefix, no whitespace squeezing and byte
// fallback; a foreign model is checked on a probe string when loaded.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "data_pipeline/tokenizer.h"

namespace rwkv::data {

// Loads `<path>` (a .model file). The end-of-document id is the model's `</s>`
// (eos). Throws rwkv::Error naming the file when it cannot be loaded, has no eos
// or does not round-trip the probe text exactly.
std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& path);

struct SentencePieceTrainOptions {
  std::string model_type = "bpe";    // "bpe" or "unigram"
  uint32_t vocab_size = 32000;       // pieces, the 256 byte pieces and <unk> <s> </s> included
  double character_coverage = 0.9995;  // share of characters that get their own piece
  uint64_t seed = 1;                 // drives the sampling and SentencePiece's own RNG
  uint64_t max_sample_bytes = 256ull << 20;  // training text in all, split evenly by language
  uint32_t num_threads = 2;
};

// A sample of `documents` ({language, text}) drawn evenly across languages: for
// each language, in name order, its documents in a seeded random order until
// max_bytes / n_languages bytes are taken (the last one cut at a character
// boundary). Deterministic given the seed, on every standard library.
std::vector<std::pair<std::string, std::string>> sample_by_language(
    const std::vector<std::pair<std::string, std::string>>& documents, uint64_t max_bytes,
    uint64_t seed);

// Trains on sample_by_language(documents, opts.max_sample_bytes, opts.seed) and
// writes `<output_prefix>.model` and `<output_prefix>.vocab`. Byte fallback is
// always on; "\n" and "\t" are pieces of their own; digits are split.
void train_sentencepiece(const std::vector<std::pair<std::string, std::string>>& documents,
                         const SentencePieceTrainOptions& opts, const std::string& output_prefix);

}  // namespace rwkv::data
