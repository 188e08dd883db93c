#include "data_pipeline/h5_util.h"

#include "common/error.h"

namespace rwkv::data {

H5Handle& H5Handle::operator=(H5Handle&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = o.id_;
    o.id_ = H5I_INVALID_HID;
  }
  return *this;
}

void H5Handle::reset() {
  if (id_ < 0) return;
  switch (H5Iget_type(id_)) {
    case H5I_FILE: H5Fclose(id_); break;
    case H5I_DATASET: H5Dclose(id_); break;
    case H5I_DATASPACE: H5Sclose(id_); break;
    case H5I_DATATYPE: H5Tclose(id_); break;
    case H5I_ATTR: H5Aclose(id_); break;
    case H5I_GENPROP_LST: H5Pclose(id_); break;
    case H5I_GROUP: H5Gclose(id_); break;
    default: break;
  }
  id_ = H5I_INVALID_HID;
}

void h5_silence_errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

H5Handle h5_shard_access(const std::string& file) {
  H5Handle fapl(h5_check_id(H5Pcreate(H5P_FILE_ACCESS), file, "file access properties"));
  h5_check(H5Pset_file_locking(fapl.get(), false, true), file, "file locking");
  return fapl;
}

void h5_check(herr_t rc, const std::string& file, const std::string& what) {
  if (rc < 0) throw Error(file + ": HDF5 error: " + what);
}

hid_t h5_check_id(hid_t id, const std::string& file, const std::string& what) {
  if (id < 0) throw Error(file + ": HDF5 error: " + what);
  return id;
}

void h5_write_attr_u64(hid_t obj, const std::string& file, const std::string& name, uint64_t v) {
  H5Handle space(h5_check_id(H5Screate(H5S_SCALAR), file, "dataspace"));
  H5Handle attr(h5_check_id(
      H5Acreate2(obj, name.c_str(), H5T_STD_U64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), file,
      "create attribute " + name));
  h5_check(H5Awrite(attr.get(), H5T_NATIVE_UINT64, &v), file, "write attribute " + name);
}

// Fixed-length UTF-8 string of the value's size (h5py reads it as bytes/str).
void h5_write_attr_str(hid_t obj, const std::string& file, const std::string& name,
                       const std::string& v) {
  H5Handle type(h5_check_id(H5Tcopy(H5T_C_S1), file, "string type"));
  h5_check(H5Tset_size(type.get(), v.empty() ? 1 : v.size()), file, "string type");
  h5_check(H5Tset_cset(type.get(), H5T_CSET_UTF8), file, "string type");
  H5Handle space(h5_check_id(H5Screate(H5S_SCALAR), file, "dataspace"));
  H5Handle attr(h5_check_id(
      H5Acreate2(obj, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), file,
      "create attribute " + name));
  std::string buf = v.empty() ? std::string(1, '\0') : v;
  h5_check(H5Awrite(attr.get(), type.get(), buf.data()), file, "write attribute " + name);
}

uint64_t h5_read_attr_u64(hid_t obj, const std::string& file, const std::string& name) {
  if (H5Aexists(obj, name.c_str()) <= 0) throw Error(file + ": missing attribute '" + name + "'");
  H5Handle attr(h5_check_id(H5Aopen(obj, name.c_str(), H5P_DEFAULT), file, "open attribute " + name));
  uint64_t v = 0;
  h5_check(H5Aread(attr.get(), H5T_NATIVE_UINT64, &v), file, "read attribute " + name);
  return v;
}

std::string h5_read_attr_str(hid_t obj, const std::string& file, const std::string& name) {
  if (H5Aexists(obj, name.c_str()) <= 0) throw Error(file + ": missing attribute '" + name + "'");
  H5Handle attr(h5_check_id(H5Aopen(obj, name.c_str(), H5P_DEFAULT), file, "open attribute " + name));
  H5Handle type(h5_check_id(H5Aget_type(attr.get()), file, "attribute type " + name));
  if (H5Tget_class(type.get()) != H5T_STRING || H5Tis_variable_str(type.get()) > 0)
    throw Error(file + ": attribute '" + name + "' is not a fixed-length string");
  std::string buf(H5Tget_size(type.get()), '\0');
  h5_check(H5Aread(attr.get(), type.get(), buf.data()), file, "read attribute " + name);
  while (!buf.empty() && buf.back() == '\0') buf.pop_back();
  return buf;
}

namespace {

void write_dataset(hid_t file_id, const std::string& file, const std::string& name, hid_t file_type,
                   hid_t mem_type, size_t n, const void* data) {
  const hsize_t dims[1] = {n};
  H5Handle space(h5_check_id(H5Screate_simple(1, dims, nullptr), file, "dataspace"));
  H5Handle dset(h5_check_id(H5Dcreate2(file_id, name.c_str(), file_type, space.get(), H5P_DEFAULT,
                                       H5P_DEFAULT, H5P_DEFAULT),
                            file, "create dataset " + name));
  if (n > 0)
    h5_check(H5Dwrite(dset.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), file,
             "write dataset " + name);
}

template <typename T>
std::vector<T> read_dataset(hid_t file_id, const std::string& file, const std::string& name,
                            hid_t mem_type) {
  if (H5Lexists(file_id, name.c_str(), H5P_DEFAULT) <= 0)
    throw Error(file + ": missing dataset '" + name + "'");
  H5Handle dset(h5_check_id(H5Dopen2(file_id, name.c_str(), H5P_DEFAULT), file, "open " + name));
  std::vector<T> v(h5_dataset_length(dset.get(), file, name));
  if (!v.empty())
    h5_check(H5Dread(dset.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), file,
             "read dataset " + name);
  return v;
}

}  // namespace

void h5_write_u64_dataset(hid_t file_id, const std::string& file, const std::string& name,
                          const std::vector<uint64_t>& v) {
  write_dataset(file_id, file, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, v.size(), v.data());
}

void h5_write_u16_dataset(hid_t file_id, const std::string& file, const std::string& name,
                          const std::vector<uint16_t>& v) {
  write_dataset(file_id, file, name, H5T_STD_U16LE, H5T_NATIVE_UINT16, v.size(), v.data());
}

// Variable-length UTF-8 strings: h5py returns them as bytes (`.asstr()` for str).
void h5_write_str_dataset(hid_t file_id, const std::string& file, const std::string& name,
                          const std::vector<std::string>& v) {
  H5Handle type(h5_check_id(H5Tcopy(H5T_C_S1), file, "string type"));
  h5_check(H5Tset_size(type.get(), H5T_VARIABLE), file, "string type");
  h5_check(H5Tset_cset(type.get(), H5T_CSET_UTF8), file, "string type");
  std::vector<const char*> ptrs;
  for (const auto& s : v) ptrs.push_back(s.c_str());
  write_dataset(file_id, file, name, type.get(), type.get(), ptrs.size(), ptrs.data());
}

std::vector<uint64_t> h5_read_u64_dataset(hid_t file_id, const std::string& file,
                                          const std::string& name) {
  return read_dataset<uint64_t>(file_id, file, name, H5T_NATIVE_UINT64);
}

std::vector<uint16_t> h5_read_u16_dataset(hid_t file_id, const std::string& file,
                                          const std::string& name) {
  return read_dataset<uint16_t>(file_id, file, name, H5T_NATIVE_UINT16);
}

std::vector<std::string> h5_read_str_dataset(hid_t file_id, const std::string& file,
                                             const std::string& name) {
  H5Handle type(h5_check_id(H5Tcopy(H5T_C_S1), file, "string type"));
  h5_check(H5Tset_size(type.get(), H5T_VARIABLE), file, "string type");
  h5_check(H5Tset_cset(type.get(), H5T_CSET_UTF8), file, "string type");
  std::vector<char*> ptrs = read_dataset<char*>(file_id, file, name, type.get());
  std::vector<std::string> out;
  for (char* p : ptrs) {
    out.emplace_back(p ? p : "");
    H5free_memory(p);
  }
  return out;
}

uint64_t h5_dataset_length(hid_t dset, const std::string& file, const std::string& name) {
  H5Handle space(h5_check_id(H5Dget_space(dset), file, "dataspace of " + name));
  if (H5Sget_simple_extent_ndims(space.get()) != 1)
    throw Error(file + ": dataset '" + name + "' is not one-dimensional");
  hsize_t dims[1] = {0};
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  return dims[0];
}

}  // namespace rwkv::data
