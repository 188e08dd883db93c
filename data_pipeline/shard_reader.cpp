#include "data_pipeline/shard_reader.h"

#include "common/error.h"
#include "data_pipeline/sha256.h"

namespace rwkv::data {

namespace {

H5Handle open_shard(const std::string& path) {
  h5_silence_errors();
  const H5Handle fapl = h5_shard_access(path);
  const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get());
  if (id < 0) throw Error(path + ": cannot open as HDF5 (missing, truncated or corrupted file)");
  return H5Handle(id);
}

H5Handle open_tokens(hid_t file, const std::string& path) {
  if (H5Lexists(file, "tokens", H5P_DEFAULT) <= 0) throw Error(path + ": missing dataset 'tokens'");
  // No chunk cache: reads go straight from the file into the caller's buffer
  // instead of through a copy of each whole chunk.
  H5Handle dapl(h5_check_id(H5Pcreate(H5P_DATASET_ACCESS), path, "property list"));
  h5_check(H5Pset_chunk_cache(dapl.get(), 0, 0, 1.0), path, "chunk cache");
  return H5Handle(h5_check_id(H5Dopen2(file, "tokens", dapl.get()), path, "open dataset tokens"));
}

}  // namespace

ShardInfo read_shard_info(const std::string& path) {
  H5Handle file = open_shard(path);
  const hid_t f = file.get();
  ShardInfo s;
  s.path = path;
  s.format_version = h5_read_attr_u64(f, path, "format_version");
  if (s.format_version != kShardFormatVersion)
    throw Error(path + ": shard format version " + std::to_string(s.format_version) +
                ", this build reads version " + std::to_string(kShardFormatVersion));
  s.tokenizer_kind = h5_read_attr_str(f, path, "tokenizer_kind");
  s.tokenizer_sha256 = h5_read_attr_str(f, path, "tokenizer_sha256");
  s.vocab_size = h5_read_attr_u64(f, path, "vocab_size");
  s.eod_id = h5_read_attr_u64(f, path, "eod_id");
  s.source = h5_read_attr_str(f, path, "source");
  s.fingerprint = h5_read_attr_str(f, path, "fingerprint");
  s.train_docs = h5_read_attr_u64(f, path, "train_docs");
  s.train_tokens = h5_read_attr_u64(f, path, "train_tokens");
  s.tokens_sha256 = h5_read_attr_str(f, path, "tokens_sha256");
  H5Handle tokens = open_tokens(f, path);
  s.n_tokens = h5_dataset_length(tokens.get(), path, "tokens");
  H5Handle type(h5_check_id(H5Dget_type(tokens.get()), path, "type of tokens"));
  s.token_bytes = H5Tget_size(type.get());
  const std::vector<uint64_t> offsets = h5_read_u64_dataset(f, path, "doc_offsets");
  if (offsets.empty() || offsets.front() != 0 || offsets.back() != s.n_tokens)
    throw Error(path + ": doc_offsets do not span the tokens dataset");
  s.n_docs = offsets.size() - 1;
  if (s.train_docs > s.n_docs || offsets[s.train_docs] != s.train_tokens)
    throw Error(path + ": train_docs/train_tokens disagree with doc_offsets");
  s.langs = h5_read_str_dataset(f, path, "lang_names");
  s.lang_docs = h5_read_u64_dataset(f, path, "lang_docs");
  s.lang_tokens = h5_read_u64_dataset(f, path, "lang_tokens");
  s.lang_bytes = h5_read_u64_dataset(f, path, "lang_bytes");
  s.skip_reasons = h5_read_str_dataset(f, path, "skip_reasons");
  s.skip_counts = h5_read_u64_dataset(f, path, "skip_counts");
  if (s.lang_docs.size() != s.langs.size() || s.lang_tokens.size() != s.langs.size() ||
      s.lang_bytes.size() != s.langs.size() || s.skip_counts.size() != s.skip_reasons.size())
    throw Error(path + ": language or skip tables have inconsistent lengths");
  return s;
}

std::string hash_shard_tokens(const std::string& path) {
  H5Handle file = open_shard(path);
  H5Handle tokens = open_tokens(file.get(), path);
  const uint64_t n = h5_dataset_length(tokens.get(), path, "tokens");
  H5Handle type(h5_check_id(H5Dget_type(tokens.get()), path, "type of tokens"));
  const size_t width = H5Tget_size(type.get());
  const hid_t mem = width == 2 ? H5T_NATIVE_UINT16 : H5T_NATIVE_UINT32;
  Sha256 sha;
  std::vector<uint8_t> buf;
  const uint64_t piece = uint64_t{1} << 22;
  for (uint64_t begin = 0; begin < n; begin += piece) {
    const hsize_t start[1] = {begin}, count[1] = {std::min(piece, n - begin)};
    buf.resize(count[0] * width);
    H5Handle fspace(h5_check_id(H5Dget_space(tokens.get()), path, "dataspace"));
    h5_check(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr),
             path, "select");
    H5Handle mspace(h5_check_id(H5Screate_simple(1, count, nullptr), path, "dataspace"));
    h5_check(H5Dread(tokens.get(), mem, mspace.get(), fspace.get(), H5P_DEFAULT, buf.data()),
             path, "read tokens (truncated or corrupted file?)");
    sha.update(buf.data(), buf.size());
  }
  return sha.hex_digest();
}

ShardReader::ShardReader(const std::string& path) : path_(path), file_(open_shard(path)) {
  tokens_ = open_tokens(file_.get(), path);
  n_tokens_ = h5_dataset_length(tokens_.get(), path, "tokens");
  fspace_ = H5Handle(h5_check_id(H5Dget_space(tokens_.get()), path, "dataspace"));
}

void ShardReader::read(uint64_t begin, uint64_t count, uint32_t* out) {
  if (begin + count > n_tokens_)
    throw Error(path_ + ": read of tokens [" + std::to_string(begin) + ", " +
                std::to_string(begin + count) + ") past the end (" + std::to_string(n_tokens_) + ")");
  if (count == 0) return;
  if (count != mspace_count_) {
    const hsize_t dims[1] = {count};
    mspace_ = H5Handle(h5_check_id(H5Screate_simple(1, dims, nullptr), path_, "dataspace"));
    mspace_count_ = count;
  }
  const hsize_t start[1] = {begin}, cnt[1] = {count};
  h5_check(H5Sselect_hyperslab(fspace_.get(), H5S_SELECT_SET, start, nullptr, cnt, nullptr), path_,
           "select");
  h5_check(H5Dread(tokens_.get(), H5T_NATIVE_UINT32, mspace_.get(), fspace_.get(), H5P_DEFAULT, out),
           path_, "read tokens (truncated or corrupted file?)");
}

std::vector<uint64_t> ShardReader::doc_offsets() {
  return h5_read_u64_dataset(file_.get(), path_, "doc_offsets");
}

std::vector<uint16_t> ShardReader::doc_lang() {
  return h5_read_u16_dataset(file_.get(), path_, "doc_lang");
}

std::vector<std::string> ShardReader::lang_names() {
  return h5_read_str_dataset(file_.get(), path_, "lang_names");
}

}  // namespace rwkv::data
