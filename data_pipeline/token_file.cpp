#include "data_pipeline/token_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <bit>
#include <cstring>
#include <filesystem>

#include "common/error.h"
#include "data_pipeline/h5_util.h"

namespace rwkv::data {

static_assert(std::endian::native == std::endian::little, "shards store little-endian tokens");

TokenLayout read_token_layout(const std::string& path) {
  h5_silence_errors();
  const H5Handle fapl = h5_shard_access(path);
  const hid_t fid = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get());
  if (fid < 0) throw Error(path + ": cannot open as HDF5 (missing, truncated or corrupted file)");
  H5Handle file(fid);
  H5Handle dset(h5_check_id(H5Dopen2(fid, "tokens", H5P_DEFAULT), path, "open dataset tokens"));
  TokenLayout L;
  L.n_tokens = h5_dataset_length(dset.get(), path, "tokens");
  H5Handle type(h5_check_id(H5Dget_type(dset.get()), path, "type of tokens"));
  L.width = H5Tget_size(type.get());
  H5Handle dcpl(h5_check_id(H5Dget_create_plist(dset.get()), path, "creation properties of tokens"));
  if (H5Pget_layout(dcpl.get()) != H5D_CHUNKED || H5Pget_nfilters(dcpl.get()) != 0 ||
      (L.width != 2 && L.width != 4))
    throw Error(path + ": 'tokens' is not a chunked, unfiltered uint16/uint32 dataset");
  hsize_t chunk[1] = {0};
  h5_check(H5Pget_chunk(dcpl.get(), 1, chunk), path, "chunk size of tokens");
  L.chunk_tokens = chunk[0];
  const uint64_t n_chunks = (L.n_tokens + L.chunk_tokens - 1) / L.chunk_tokens;
  L.chunk_addr.assign(n_chunks, UINT64_MAX);
  H5Handle space(h5_check_id(H5Dget_space(dset.get()), path, "dataspace of tokens"));
  hsize_t stored = 0;
  h5_check(H5Dget_num_chunks(dset.get(), space.get(), &stored), path, "chunk count of tokens");
  std::error_code ec;
  const uint64_t file_size = std::filesystem::file_size(path, ec);
  for (hsize_t i = 0; i < stored; ++i) {
    hsize_t offset[1] = {0};
    unsigned mask = 0;
    haddr_t addr = 0;
    hsize_t size = 0;
    h5_check(H5Dget_chunk_info(dset.get(), space.get(), i, offset, &mask, &addr, &size), path, "chunk info");
    const uint64_t c = offset[0] / L.chunk_tokens;
    if (c >= n_chunks || size != L.chunk_tokens * L.width || addr + size > file_size)
      throw Error(path + ": token chunk " + std::to_string(c) + " lies outside the file (truncated shard?)");
    L.chunk_addr[c] = addr;
  }
  for (uint64_t c = 0; c < n_chunks; ++c) {
    if (L.chunk_addr[c] == UINT64_MAX) throw Error(path + ": token chunk " + std::to_string(c) + " is missing");
  }
  return L;
}

TokenFile::TokenFile(const std::string& path, const TokenLayout& layout) : path_(path), layout_(layout) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw Error(path + ": cannot open: " + std::strerror(errno));
}

TokenFile::~TokenFile() {
  if (fd_ >= 0) ::close(fd_);
}

void TokenFile::read(uint64_t begin, uint64_t count, uint32_t* out) {
  if (begin + count > layout_.n_tokens)
    throw Error(path_ + ": read of tokens [" + std::to_string(begin) + ", " + std::to_string(begin + count) +
                ") past the end (" + std::to_string(layout_.n_tokens) + ")");
  while (count > 0) {
    const uint64_t c = begin / layout_.chunk_tokens, in_chunk = begin % layout_.chunk_tokens;
    const uint64_t take = std::min(count, layout_.chunk_tokens - in_chunk);
    const uint64_t at = layout_.chunk_addr[c] + in_chunk * layout_.width;
    void* dst = out;
    if (layout_.width == 2) {
      narrow_.resize(take);
      dst = narrow_.data();
    }
    const size_t want = take * layout_.width;
    size_t done = 0;
    while (done < want) {
      const ssize_t got = ::pread(fd_, static_cast<char*>(dst) + done, want - done, static_cast<off_t>(at + done));
      if (got <= 0) throw Error(path_ + ": short read of token data (truncated shard?)");
      done += static_cast<size_t>(got);
    }
    if (layout_.width == 2) std::copy(narrow_.begin(), narrow_.end(), out);
    out += take;
    begin += take;
    count -= take;
  }
}

}  // namespace rwkv::data
