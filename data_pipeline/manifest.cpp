#include "data_pipeline/manifest.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "data_pipeline/shard_writer.h"

namespace rwkv::data {

namespace {

void emit_langs(YAML::Emitter& e, const std::map<std::string, LangStats>& langs, bool bytes) {
  e << YAML::BeginMap;
  for (const auto& [lang, s] : langs) {
    e << YAML::Key << lang << YAML::Value << YAML::Flow << YAML::BeginMap;
    e << YAML::Key << "documents" << YAML::Value << s.docs;
    e << YAML::Key << "tokens" << YAML::Value << s.tokens;
    if (bytes) e << YAML::Key << "bytes" << YAML::Value << s.bytes;
    e << YAML::EndMap;
  }
  e << YAML::EndMap;
}

template <typename T>
T get(const YAML::Node& node, const std::string& key, const std::string& where) {
  const YAML::Node v = node[key];
  if (!v) throw Error(where + ": missing key '" + key + "'");
  try {
    return v.as<T>();
  } catch (const YAML::Exception&) {
    throw Error(where + ": key '" + key + "' has the wrong type");
  }
}

std::map<std::string, LangStats> parse_langs(const YAML::Node& node, const std::string& where) {
  std::map<std::string, LangStats> out;
  if (!node.IsMap()) throw Error(where + ": 'languages' is not a map");
  for (const auto& kv : node) {
    const std::string lang = kv.first.as<std::string>();
    LangStats s;
    s.docs = get<uint64_t>(kv.second, "documents", where + ": languages." + lang);
    s.tokens = get<uint64_t>(kv.second, "tokens", where + ": languages." + lang);
    if (kv.second["bytes"]) s.bytes = get<uint64_t>(kv.second, "bytes", where);
    out[lang] = s;
  }
  return out;
}

}  // namespace

std::string manifest_to_yaml(const Manifest& m) {
  YAML::Emitter e;
  e.SetDoublePrecision(12);
  e << YAML::Comment("rwkv dataset: written last by `rwkv preprocess`; see docs/data-format.md");
  e << YAML::BeginMap;
  e << YAML::Key << "format_version" << YAML::Value << m.format_version;
  e << YAML::Key << "tokenizer" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "kind" << YAML::Value << m.tokenizer_kind;
  e << YAML::Key << "file" << YAML::Value << m.tokenizer_file;
  e << YAML::Key << "sha256" << YAML::Value << m.tokenizer_sha256;
  e << YAML::Key << "vocab_size" << YAML::Value << m.vocab_size;
  e << YAML::Key << "eod_id" << YAML::Value << m.eod_id;
  e << YAML::EndMap;
  e << YAML::Key << "token_dtype" << YAML::Value << (m.token_bytes == 2 ? "uint16" : "uint32");
  e << YAML::Key << "split" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "val_fraction" << YAML::Value << m.val_fraction;
  e << YAML::Key << "train_documents" << YAML::Value << m.train_docs;
  e << YAML::Key << "train_tokens" << YAML::Value << m.train_tokens;
  e << YAML::Key << "val_documents" << YAML::Value << m.docs - m.train_docs;
  e << YAML::Key << "val_tokens" << YAML::Value << m.tokens - m.train_tokens;
  e << YAML::EndMap;
  e << YAML::Key << "documents" << YAML::Value << m.docs;
  e << YAML::Key << "tokens" << YAML::Value << m.tokens;
  e << YAML::Key << "languages" << YAML::Value;
  emit_langs(e, m.langs, true);
  e << YAML::Key << "skipped" << YAML::Value << YAML::BeginMap;
  for (const auto& [reason, n] : m.skipped) e << YAML::Key << reason << YAML::Value << n;
  e << YAML::EndMap;
  e << YAML::Key << "shards" << YAML::Value << YAML::BeginSeq;
  for (const auto& s : m.shards) {
    e << YAML::BeginMap;
    e << YAML::Key << "file" << YAML::Value << s.file;
    e << YAML::Key << "file_bytes" << YAML::Value << s.file_bytes;
    e << YAML::Key << "documents" << YAML::Value << s.docs;
    e << YAML::Key << "tokens" << YAML::Value << s.tokens;
    e << YAML::Key << "train_documents" << YAML::Value << s.train_docs;
    e << YAML::Key << "train_tokens" << YAML::Value << s.train_tokens;
    e << YAML::Key << "sha256" << YAML::Value << s.sha256;
    e << YAML::Key << "languages" << YAML::Value;
    emit_langs(e, s.langs, false);
    e << YAML::EndMap;
  }
  e << YAML::EndSeq;
  e << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

Manifest manifest_from_yaml(const std::string& yaml, const std::string& where) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& ex) {
    throw Error(where + ": not valid YAML: " + ex.what());
  }
  if (!root.IsMap()) throw Error(where + ": not a manifest (expected a YAML map)");
  Manifest m;
  m.format_version = get<uint64_t>(root, "format_version", where);
  const YAML::Node tok = root["tokenizer"];
  if (!tok || !tok.IsMap()) throw Error(where + ": missing key 'tokenizer'");
  m.tokenizer_kind = get<std::string>(tok, "kind", where + ": tokenizer");
  m.tokenizer_file = get<std::string>(tok, "file", where + ": tokenizer");
  m.tokenizer_sha256 = get<std::string>(tok, "sha256", where + ": tokenizer");
  m.vocab_size = get<uint64_t>(tok, "vocab_size", where + ": tokenizer");
  m.eod_id = get<uint64_t>(tok, "eod_id", where + ": tokenizer");
  const std::string dtype = get<std::string>(root, "token_dtype", where);
  if (dtype != "uint16" && dtype != "uint32")
    throw Error(where + ": token_dtype '" + dtype + "' is neither uint16 nor uint32");
  m.token_bytes = dtype == "uint16" ? 2 : 4;
  const YAML::Node split = root["split"];
  if (!split) throw Error(where + ": missing key 'split'");
  m.val_fraction = get<double>(split, "val_fraction", where + ": split");
  m.train_docs = get<uint64_t>(split, "train_documents", where + ": split");
  m.train_tokens = get<uint64_t>(split, "train_tokens", where + ": split");
  m.docs = get<uint64_t>(root, "documents", where);
  m.tokens = get<uint64_t>(root, "tokens", where);
  if (root["languages"]) m.langs = parse_langs(root["languages"], where);
  if (root["skipped"]) {
    for (const auto& kv : root["skipped"]) m.skipped[kv.first.as<std::string>()] = kv.second.as<uint64_t>();
  }
  const YAML::Node shards = root["shards"];
  if (!shards || !shards.IsSequence()) throw Error(where + ": missing key 'shards'");
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string at = where + ": shards[" + std::to_string(i) + "]";
    const YAML::Node n = shards[i];
    ManifestShard s;
    s.file = get<std::string>(n, "file", at);
    s.file_bytes = get<uint64_t>(n, "file_bytes", at);
    s.docs = get<uint64_t>(n, "documents", at);
    s.tokens = get<uint64_t>(n, "tokens", at);
    s.train_docs = get<uint64_t>(n, "train_documents", at);
    s.train_tokens = get<uint64_t>(n, "train_tokens", at);
    s.sha256 = get<std::string>(n, "sha256", at);
    if (n["languages"]) s.langs = parse_langs(n["languages"], at);
    m.shards.push_back(std::move(s));
  }
  return m;
}

void write_manifest(const std::string& dir, const Manifest& m) {
  const std::string path = dir + "/" + kManifestName;
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << manifest_to_yaml(m);
    out.close();
    if (!out) throw Error(tmp + ": cannot write");
  }
  fsync_path(tmp);
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw Error(path + ": cannot rename from " + tmp + ": " + ec.message());
  fsync_path(dir);
}

Manifest read_manifest(const std::string& dir) {
  const std::string path = dir + "/" + kManifestName;
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw Error(path + ": cannot read (not a dataset directory, or `rwkv preprocess` did not finish)");
  std::ostringstream ss;
  ss << in.rdbuf();
  return manifest_from_yaml(ss.str(), path);
}

}  // namespace rwkv::data
