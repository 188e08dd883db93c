#include "data_pipeline/tokenizer_sentencepiece.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdio>
#include <map>
#include <random>
#include <unordered_map>

#include "common/error.h"
#include "data_pipeline/sha256.h"
#include "data_pipeline/utf8.h"

namespace rwkv::data {

namespace {

// Text a lossless model must reproduce exactly: spaces at both ends and in runs,
// tabs, newlines, CR, NUL, combining marks, CJK, RTL, emoji with ZWJ and skin
// tone, full-width letters, a ligature, digits, and U+2581 (SentencePiece's own
// whitespace mark).
using namespace std::string_view_literals;
constexpr std::string_view kProbe =
    "  two leading,  double  and trailing  \t tab\n\nnewlines\r\nNUL \0 "
    "Cafe\xCC\x81 na\xC3\xAFve \xE4\xB8\xAD\xE6\x96\x87 \xD8\xB9\xD8\xB1\xD8\xA8\xD9\x8A "
    "\xF0\x9F\x91\xA9\xF0\x9F\x8F\xBD\xE2\x80\x8D\xF0\x9F\x92\xBB \xE2\x96\x81x\xE2\x96\x81 "
    "\xEF\xBC\xA1\xEF\xBD\x82 \xEF\xAC\x81 12345 "sv;

// U+2581 LOWER ONE EIGHTH BLOCK: SentencePiece writes spaces as this character, so
// its decode() turns one found in the input into a space. Such characters are
// encoded here as their byte pieces (<0xE2><0x96><0x81>), which decode to the bytes.
constexpr std::string_view kSpaceMark = "\xE2\x96\x81";

struct SentencePieceTokenizer final : Tokenizer {
  std::string path;
  std::string sha256;
  sentencepiece::SentencePieceProcessor sp;
  std::vector<int> space_mark_ids;  // byte pieces of U+2581
  uint32_t vocab = 0;
  uint32_t eod = 0;

  TokenizerKind kind() const override { return TokenizerKind::SentencePiece; }

  void encode_piece(std::string_view text, std::vector<uint32_t>& out) const {
    if (text.empty()) return;
    std::vector<int> ids;
    const auto status = sp.Encode(text, &ids);
    if (!status.ok()) throw Error("sentencepiece " + path + ": encode failed: " + status.ToString());
    for (const int id : ids) out.push_back(static_cast<uint32_t>(id));
  }

  void encode_line(std::string_view line, std::vector<uint32_t>& out) const {
    size_t start = 0;
    for (size_t at = line.find(kSpaceMark); at != std::string_view::npos;
         at = line.find(kSpaceMark, start)) {
      encode_piece(line.substr(start, at - start), out);
      for (const int id : space_mark_ids) out.push_back(static_cast<uint32_t>(id));
      start = at + kSpaceMark.size();
    }
    encode_piece(line.substr(start), out);
  }

  // Encodes line by line, each line with its run of newlines: SentencePiece is ten
  // times slower per byte on a 2 MB text given whole (BPE: 0.4 MB/s, by lines 4 MB/s).
  // Models trained here have "\n" as a piece of its own, so no piece crosses these
  // cuts and the ids are those of the whole text, up to ties between segmentations
  // of equal score.
  void encode(std::string_view text, std::vector<uint32_t>& out) const override {
    size_t start = 0;
    while (start < text.size()) {
      size_t end = text.find('\n', start);
      end = end == std::string_view::npos ? text.size() : text.find_first_not_of('\n', end);
      if (end == std::string_view::npos) end = text.size();
      encode_line(text.substr(start, end - start), out);
      start = end;
    }
  }

  std::string decode(std::span<const uint32_t> ids) const override {
    std::vector<int> v(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] >= vocab) {
        throw Error("sentencepiece " + path + ": id " + std::to_string(ids[i]) + " at position " +
                    std::to_string(i) + " is out of range (vocab_size " + std::to_string(vocab) +
                    ")");
      }
      v[i] = static_cast<int>(ids[i]);
    }
    std::string text;
    const auto status = sp.Decode(v, &text);
    if (!status.ok()) throw Error("sentencepiece " + path + ": decode failed: " + status.ToString());
    return text;
  }

  uint32_t vocab_size() const override { return vocab; }
  uint32_t eod_id() const override { return eod; }
  std::string file_sha256() const override { return sha256; }
};

// Byte offset of the first difference between a and b (a != b).
size_t first_difference(std::string_view a, std::string_view b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return i;
}

// Training text: one sentence per line, no longer than SentencePiece's default
// max_sentence_length (4192 bytes; longer ones would be skipped), cut at characters.
constexpr size_t kMaxSentenceBytes = 4096;

size_t char_boundary_at_most(std::string_view text, size_t n) {
  while (n > 0 && n < text.size() && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
  return n;
}

void append_sentences(std::string_view text, std::vector<std::string>& sentences) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    while (!line.empty()) {
      size_t n = char_boundary_at_most(line, std::min(line.size(), kMaxSentenceBytes));
      if (n == 0) n = line.size();  // malformed UTF-8 without a boundary; leave it whole
      sentences.emplace_back(line.substr(0, n));
      line.remove_prefix(n);
    }
  }
}

struct VectorIterator final : sentencepiece::SentenceIterator {
  const std::vector<std::string>& sentences;
  size_t i = 0;
  explicit VectorIterator(const std::vector<std::string>& s) : sentences(s) {}
  bool done() const override { return i >= sentences.size(); }
  void Next() override { ++i; }
  const std::string& value() const override { return sentences[i]; }
  sentencepiece::util::Status status() const override { return {}; }
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& path) {
  auto t = std::make_unique<SentencePieceTokenizer>();
  t->path = path;
  const auto status = t->sp.Load(path);
  if (!status.ok()) {
    throw Error(path + ": cannot load the SentencePiece model: " + status.ToString());
  }
  t->sha256 = sha256_file_hex(path);
  t->vocab = static_cast<uint32_t>(t->sp.GetPieceSize());
  const int eos = t->sp.eos_id();
  if (eos < 0) throw Error(path + ": the SentencePiece model has no </s> (eos) piece");
  t->eod = static_cast<uint32_t>(eos);
  for (const char* piece : {"<0xE2>", "<0x96>", "<0x81>"}) {
    const int id = t->sp.PieceToId(piece);
    if (!t->sp.IsByte(id)) {
      throw Error(path + ": the SentencePiece model has no byte fallback (no piece " +
                  std::string(piece) + "); train it with byte_fallback=true");
    }
    t->space_mark_ids.push_back(id);
  }
  std::vector<uint32_t> ids;
  t->encode(kProbe, ids);
  const std::string back = t->decode(ids);
  if (back != kProbe) {
    throw Error(path + ": the SentencePiece model is not lossless: the probe text differs after "
                "encode+decode at byte " + std::to_string(first_difference(back, kProbe)) +
                " (train with normalization_rule_name=identity, add_dummy_prefix=false, "
                "remove_extra_whitespaces=false, byte_fallback=true)");
  }
  return t;
}

std::vector<std::pair<std::string, std::string>> sample_by_language(
    const std::vector<std::pair<std::string, std::string>>& documents, uint64_t max_bytes,
    uint64_t seed) {
  std::map<std::string, std::vector<size_t>> by_language;
  for (size_t i = 0; i < documents.size(); ++i) by_language[documents[i].first].push_back(i);
  std::vector<std::pair<std::string, std::string>> sample;
  if (by_language.empty()) return sample;
  const uint64_t budget = max_bytes / by_language.size();
  std::mt19937_64 rng(seed);
  for (auto& [language, order] : by_language) {
    // Fisher-Yates on the engine's raw output (std::shuffle and the distributions
    // are implementation-defined).
    for (size_t k = order.size(); k > 1; --k) std::swap(order[k - 1], order[rng() % k]);
    uint64_t left = budget;
    for (const size_t d : order) {
      if (left == 0) break;
      std::string_view text = documents[d].second;
      if (text.size() > left) text = text.substr(0, char_boundary_at_most(text, left));
      if (text.empty()) continue;
      left -= text.size();
      sample.emplace_back(language, std::string(text));
    }
  }
  return sample;
}

void train_sentencepiece(const std::vector<std::pair<std::string, std::string>>& documents,
                         const SentencePieceTrainOptions& opts, const std::string& output_prefix) {
  if (opts.model_type != "bpe" && opts.model_type != "unigram") {
    throw Error("sentencepiece training: model_type '" + opts.model_type +
                "' is not bpe or unigram");
  }
  // SentencePiece's own check (trainer_interface.cc), made here with a clearer message.
  char coverage[32];
  std::snprintf(coverage, sizeof coverage, "%.17g", opts.character_coverage);
  if (!(opts.character_coverage >= 0.98 && opts.character_coverage <= 1.0)) {
    throw Error("sentencepiece training: character_coverage " + std::string(coverage) +
                " is outside [0.98, 1]");
  }
  if (documents.empty()) throw Error("sentencepiece training: no documents");
  std::vector<std::string> sentences;
  for (const auto& [language, text] : sample_by_language(documents, opts.max_sample_bytes, opts.seed)) {
    append_sentences(text, sentences);
  }
  if (sentences.empty()) throw Error("sentencepiece training: the sample holds no text");

  const std::unordered_map<std::string, std::string> args = {
      {"model_prefix", output_prefix},
      {"model_type", opts.model_type},
      {"vocab_size", std::to_string(opts.vocab_size)},
      {"character_coverage", coverage},
      {"num_threads", std::to_string(opts.num_threads)},
      {"byte_fallback", "true"},
      {"normalization_rule_name", "identity"},
      {"add_dummy_prefix", "false"},
      {"remove_extra_whitespaces", "false"},
      {"allow_whitespace_only_pieces", "true"},
      {"split_digits", "true"},
      {"user_defined_symbols", "\n,\t"},
      {"input_sentence_size", "0"},
      {"shuffle_input_sentence", "false"},
      {"minloglevel", "1"},
  };
  sentencepiece::SetRandomGeneratorSeed(static_cast<unsigned int>(opts.seed));
  VectorIterator it(sentences);
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, &it);
  if (!status.ok()) {
    throw Error("sentencepiece training of " + output_prefix + ".model failed: " +
                status.ToString());
  }
}

}  // namespace rwkv::data
