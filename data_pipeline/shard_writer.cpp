#include "data_pipeline/shard_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "common/error.h"

namespace rwkv::data {

namespace {

constexpr size_t kFlushTokens = size_t{1} << 20;  // write training tokens in 1 Mi pieces

}  // namespace

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw Error(path + ": cannot open for fsync");
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw Error(path + ": fsync failed");
}

ShardWriter::ShardWriter(const std::string& path, const ShardInfo& header)
    : info_(header), tmp_path_(path + ".tmp") {
  info_.path = path;
  info_.token_bytes = info_.vocab_size <= 65536 ? 2 : 4;
  h5_silence_errors();
  const H5Handle fapl = h5_shard_access(tmp_path_);
  file_ = H5Handle(h5_check_id(H5Fcreate(tmp_path_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()),
                               tmp_path_, "cannot create file"));
  const hsize_t dims[1] = {0}, maxdims[1] = {H5S_UNLIMITED}, chunk[1] = {kTokenChunk};
  H5Handle space(h5_check_id(H5Screate_simple(1, dims, maxdims), tmp_path_, "dataspace"));
  H5Handle dcpl(h5_check_id(H5Pcreate(H5P_DATASET_CREATE), tmp_path_, "property list"));
  h5_check(H5Pset_chunk(dcpl.get(), 1, chunk), tmp_path_, "chunking");
  const hid_t type = info_.token_bytes == 2 ? H5T_STD_U16LE : H5T_STD_U32LE;
  tokens_ = H5Handle(h5_check_id(
      H5Dcreate2(file_.get(), "tokens", type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
      tmp_path_, "create dataset tokens"));
}

ShardWriter::~ShardWriter() {
  if (!finished_) {
    tokens_.reset();
    file_.reset();
    std::remove(tmp_path_.c_str());
  }
}

uint16_t ShardWriter::lang_index(const std::string& lang) {
  for (size_t i = 0; i < info_.langs.size(); ++i) {
    if (info_.langs[i] == lang) return static_cast<uint16_t>(i);
  }
  if (info_.langs.size() >= 65535) throw Error(info_.path + ": more than 65535 languages");
  info_.langs.push_back(lang);
  info_.lang_docs.push_back(0);
  info_.lang_tokens.push_back(0);
  info_.lang_bytes.push_back(0);
  return static_cast<uint16_t>(info_.langs.size() - 1);
}

void ShardWriter::add(std::span<const uint32_t> tokens, const std::string& lang,
                      uint64_t text_bytes, bool validation) {
  for (const uint32_t t : tokens) {
    if (t >= info_.vocab_size)
      throw Error(info_.path + ": token id " + std::to_string(t) + " >= vocab size " +
                  std::to_string(info_.vocab_size));
  }
  const uint16_t li = lang_index(lang);
  info_.lang_docs[li] += 1;
  info_.lang_tokens[li] += tokens.size();
  info_.lang_bytes[li] += text_bytes;
  if (validation) {
    val_tokens_.insert(val_tokens_.end(), tokens.begin(), tokens.end());
    val_lengths_.push_back(tokens.size());
    val_langs_.push_back(li);
  } else {
    pending_.insert(pending_.end(), tokens.begin(), tokens.end());
    train_lengths_.push_back(tokens.size());
    train_langs_.push_back(li);
    if (pending_.size() >= kFlushTokens) flush();
  }
}

void ShardWriter::flush() {
  append_tokens(pending_);
  pending_.clear();
}

// Appends to the extendible `tokens` dataset, converting to the stored width,
// and feeds the same little-endian bytes to the checksum.
void ShardWriter::append_tokens(std::span<const uint32_t> tokens) {
  if (tokens.empty()) return;
  const hsize_t start[1] = {written_}, count[1] = {tokens.size()}, size[1] = {written_ + tokens.size()};
  h5_check(H5Dset_extent(tokens_.get(), size), tmp_path_, "extend dataset tokens");
  H5Handle fspace(h5_check_id(H5Dget_space(tokens_.get()), tmp_path_, "dataspace"));
  h5_check(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr),
           tmp_path_, "select");
  H5Handle mspace(h5_check_id(H5Screate_simple(1, count, nullptr), tmp_path_, "dataspace"));
  if (info_.token_bytes == 2) {
    std::vector<uint16_t> narrow(tokens.begin(), tokens.end());
    sha_.update(narrow.data(), narrow.size() * 2);
    h5_check(H5Dwrite(tokens_.get(), H5T_NATIVE_UINT16, mspace.get(), fspace.get(), H5P_DEFAULT,
                      narrow.data()),
             tmp_path_, "write tokens");
  } else {
    sha_.update(tokens.data(), tokens.size() * 4);
    h5_check(H5Dwrite(tokens_.get(), H5T_NATIVE_UINT32, mspace.get(), fspace.get(), H5P_DEFAULT,
                      tokens.data()),
             tmp_path_, "write tokens");
  }
  written_ += tokens.size();
}

ShardInfo ShardWriter::finish(const std::vector<std::string>& skip_reasons,
                              const std::vector<uint64_t>& skip_counts) {
  flush();
  info_.train_tokens = written_;
  info_.train_docs = train_lengths_.size();
  append_tokens(val_tokens_);
  info_.n_tokens = written_;
  info_.n_docs = train_lengths_.size() + val_lengths_.size();
  info_.tokens_sha256 = sha_.hex_digest();
  info_.skip_reasons = skip_reasons;
  info_.skip_counts = skip_counts;

  std::vector<uint64_t> offsets{0};
  for (const auto* lengths : {&train_lengths_, &val_lengths_}) {
    for (const uint64_t n : *lengths) offsets.push_back(offsets.back() + n);
  }
  std::vector<uint16_t> langs(train_langs_);
  langs.insert(langs.end(), val_langs_.begin(), val_langs_.end());
  const hid_t f = file_.get();
  const std::string& p = tmp_path_;
  h5_write_u64_dataset(f, p, "doc_offsets", offsets);
  h5_write_u16_dataset(f, p, "doc_lang", langs);
  h5_write_str_dataset(f, p, "lang_names", info_.langs);
  h5_write_u64_dataset(f, p, "lang_docs", info_.lang_docs);
  h5_write_u64_dataset(f, p, "lang_tokens", info_.lang_tokens);
  h5_write_u64_dataset(f, p, "lang_bytes", info_.lang_bytes);
  h5_write_str_dataset(f, p, "skip_reasons", info_.skip_reasons);
  h5_write_u64_dataset(f, p, "skip_counts", info_.skip_counts);
  h5_write_attr_u64(f, p, "format_version", info_.format_version);
  h5_write_attr_str(f, p, "tokenizer_kind", info_.tokenizer_kind);
  h5_write_attr_str(f, p, "tokenizer_sha256", info_.tokenizer_sha256);
  h5_write_attr_u64(f, p, "vocab_size", info_.vocab_size);
  h5_write_attr_u64(f, p, "eod_id", info_.eod_id);
  h5_write_attr_str(f, p, "source", info_.source);
  h5_write_attr_str(f, p, "fingerprint", info_.fingerprint);
  h5_write_attr_u64(f, p, "train_docs", info_.train_docs);
  h5_write_attr_u64(f, p, "train_tokens", info_.train_tokens);
  h5_write_attr_str(f, p, "tokens_sha256", info_.tokens_sha256);
  tokens_.reset();
  h5_check(H5Fclose(file_.get()), p, "close");
  file_ = H5Handle();
  fsync_path(tmp_path_);
  std::error_code ec;
  std::filesystem::rename(tmp_path_, info_.path, ec);
  if (ec) throw Error(info_.path + ": cannot rename from " + tmp_path_ + ": " + ec.message());
  finished_ = true;
  return info_;
}

}  // namespace rwkv::data
