#pragma once
// Thin RAII and error-checking layer over the HDF5 C API, for the shard files.
// Every failure throws rwkv::Error naming the file and the object. libhdf5 is not
// thread-safe: callers keep all HDF5 calls on one thread.
#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace rwkv::data {

// Owns one hid_t and closes it with the matching H5*close.
class H5Handle {
 public:
  H5Handle() = default;
  explicit H5Handle(hid_t id) : id_(id) {}
  ~H5Handle() { reset(); }
  H5Handle(H5Handle&& o) noexcept : id_(o.id_) { o.id_ = H5I_INVALID_HID; }
  H5Handle& operator=(H5Handle&& o) noexcept;
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  hid_t get() const { return id_; }
  void reset();

 private:
  hid_t id_ = H5I_INVALID_HID;
};

// Turns off HDF5's automatic error-stack printing; our errors carry the context.
void h5_silence_errors();

// File access properties for shards: HDF5's advisory file locks turned off.
// A shard is written by exactly one process and only read afterwards, so the
// locks protect nothing, and they fail on file systems without flock (Lustre,
// some NFS mounts); HDF5_USE_FILE_LOCKING=FALSE has the same effect.
H5Handle h5_shard_access(const std::string& file);

// Checks an HDF5 return value (negative = failure).
void h5_check(herr_t rc, const std::string& file, const std::string& what);
hid_t h5_check_id(hid_t id, const std::string& file, const std::string& what);

// Attributes on an object (the file root in practice).
void h5_write_attr_u64(hid_t obj, const std::string& file, const std::string& name, uint64_t v);
void h5_write_attr_str(hid_t obj, const std::string& file, const std::string& name,
                       const std::string& v);
uint64_t h5_read_attr_u64(hid_t obj, const std::string& file, const std::string& name);
std::string h5_read_attr_str(hid_t obj, const std::string& file, const std::string& name);

// Whole 1-D datasets (small ones: offsets, language tables).
void h5_write_u64_dataset(hid_t file_id, const std::string& file, const std::string& name,
                          const std::vector<uint64_t>& v);
void h5_write_u16_dataset(hid_t file_id, const std::string& file, const std::string& name,
                          const std::vector<uint16_t>& v);
void h5_write_str_dataset(hid_t file_id, const std::string& file, const std::string& name,
                          const std::vector<std::string>& v);
std::vector<uint64_t> h5_read_u64_dataset(hid_t file_id, const std::string& file,
                                          const std::string& name);
std::vector<uint16_t> h5_read_u16_dataset(hid_t file_id, const std::string& file,
                                          const std::string& name);
std::vector<std::string> h5_read_str_dataset(hid_t file_id, const std::string& file,
                                             const std::string& name);
// Number of elements of a 1-D dataset.
uint64_t h5_dataset_length(hid_t dset, const std::string& file, const std::string& name);

}  // namespace rwkv::data
