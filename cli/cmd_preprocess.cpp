// rwkv preprocess: corpora -> HDF5 token shards + manifest.yaml (docs/data-format.md)
#include <unistd.h>

#include <iostream>

#include "cli/command.h"
#include "data_pipeline/preprocess.h"

namespace rwkv::cli {

namespace {

// "\n", "\t", "\r", "\\" in a command-line delimiter become the characters.
std::string unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      out += s[i];
      continue;
    }
    const char c = s[++i];
    out += c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c;
  }
  return out;
}

}  // namespace

int run_preprocess(const std::vector<std::string>& args) {
  const std::string prog = "rwkv preprocess";
  data::PreprocessOptions o;
  std::string delimiter;
  po::options_description in("input");
  in.add_options()
      ("input", po::value<std::vector<std::string>>(&o.inputs)->required(),
       "input files, directories (searched recursively) or glob patterns; gzip files are "
       "recognised by their magic bytes")
      ("format", po::value<std::string>(&o.reader.format)->default_value("auto"),
       "auto (JSONL for .jsonl/.ndjson/.json[.gz], text otherwise), jsonl or text")
      ("text-field", po::value<std::string>(&o.reader.text_field)->default_value("text"),
       "JSONL: the field holding the document text")
      ("lang-field", po::value<std::string>(&o.reader.lang_field)->default_value("lang"),
       "JSONL: the field holding the language tag (optional in each line)")
      ("lang-from-path", po::bool_switch(&o.reader.lang_from_path),
       "documents without a language field get the name of their file's directory "
       "(corpus/ru/a.jsonl -> ru); otherwise 'und'")
      ("doc-delimiter", po::value<std::string>(&delimiter)->default_value(""),
       "text files: the string between documents (escapes \\n \\t \\r \\\\); empty: one "
       "document per file")
      ("max-doc-bytes", po::value<uint64_t>(&o.reader.max_doc_bytes)->default_value(uint64_t{32} << 20),
       "longer documents are skipped (reason too_long)")
      ("repair-utf8", po::bool_switch(&o.reader.repair_utf8),
       "replace invalid UTF-8 with U+FFFD instead of skipping the document")
      ("strict", po::bool_switch(&o.strict),
       "the first bad document is a fatal error naming its file, line and reason");
  po::options_description tok("tokenizer");
  tok.add_options()
      ("tokenizer", po::value<std::string>(&o.tokenizer)->default_value("bytes"),
       "bytes, world or sentencepiece")
      ("tokenizer-file", po::value<std::string>(&o.tokenizer_file)->default_value(""),
       "world: the vocabulary (rwkv_vocab_v20230424.txt format); sentencepiece: the .model")
      ("train-sentencepiece", po::bool_switch(&o.train_sentencepiece),
       "train a SentencePiece model on a sample of the inputs drawn evenly across languages; "
       "saved as OUTPUT/tokenizer.model and used for the shards")
      ("sp-model-type", po::value<std::string>(&o.sp_model_type)->default_value("bpe"), "bpe or unigram")
      ("vocab-size", po::value<uint32_t>(&o.vocab_size)->default_value(32000), "trained vocabulary size")
      ("character-coverage", po::value<double>(&o.character_coverage)->default_value(0.9995, "0.9995"),
       "share of characters that get their own piece")
      ("sp-sample-bytes", po::value<uint64_t>(&o.sp_sample_bytes)->default_value(uint64_t{256} << 20),
       "training sample size, all languages together")
      ("seed", po::value<uint64_t>(&o.seed)->default_value(1), "seed of the training sample");
  po::options_description out("output");
  out.add_options()
      ("output,o", po::value<std::string>(&o.output)->required(), "dataset directory")
      ("val-fraction", po::value<double>(&o.val_fraction)->default_value(0.005, "0.005"),
       "share of documents in the validation split, chosen by a hash of each document's text")
      ("unit-bytes", po::value<uint64_t>(&o.unit_bytes)->default_value(uint64_t{64} << 20),
       "large plain files are cut into work units (one shard each) of about this size")
      ("stop-after-shards", po::value<uint64_t>(&o.stop_after_shards)->default_value(0),
       "testing: fail after each rank wrote this many shards, as if killed (0: off)");
  po::options_description all("options");
  all.add(in).add(tok).add(out);
  po::positional_options_description pos;
  pos.add("input", -1);
  po::variables_map vm;
  const std::string usage =
      "INPUT... -o DIR [options]\n\n"
      "Tokenizes corpora into HDF5 shards plus manifest.yaml (docs/data-format.md).\n"
      "Run under mpirun to split the work across ranks; rerun after a failure to keep\n"
      "the finished shards. Exit status 0 when done, 1 on a fatal error (no manifest).";
  if (auto rc = parse_args(prog, usage, args, all, pos, vm)) return *rc;
  o.reader.delimiter = unescape(delimiter);
  if (o.reader.format != "auto" && o.reader.format != "jsonl" && o.reader.format != "text")
    return usage_error(prog, "--format must be auto, jsonl or text");
  if (o.sp_model_type != "bpe" && o.sp_model_type != "unigram")
    return usage_error(prog, "--sp-model-type must be bpe or unigram");
  if (!o.train_sentencepiece && o.tokenizer != "bytes" && o.tokenizer_file.empty())
    return usage_error(prog, "--tokenizer " + o.tokenizer + " needs --tokenizer-file");
  const bool live = ::isatty(STDERR_FILENO) == 1;
  return run_with_mpi(prog, [&](int, int) {
    data::run_preprocess(o, MPI_COMM_WORLD, std::cerr, live, std::cout);
    return kExitOk;
  });
}

}  // namespace rwkv::cli
