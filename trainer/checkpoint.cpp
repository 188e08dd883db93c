#include "trainer/checkpoint.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <functional>
#include <optional>
#include <thread>

#include "common/error.h"
#include "common/mpi_util.h"
#include "data_pipeline/sha256.h"
#include "trainer/checkpoint_dir.h"
#include "trainer/h5_check.h"

namespace fs = std::filesystem;

namespace rwkv::trainer {

namespace {

// Datasets are stored little-endian and written/read straight from memory.
static_assert(std::endian::native == std::endian::little);

// Owns an HDF5 id and closes it with the matching H5*close.
class H5Id {
 public:
  H5Id(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  H5Id(H5Id&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = H5I_INVALID_HID; }
  H5Id(const H5Id&) = delete;
  H5Id& operator=(const H5Id&) = delete;
  H5Id& operator=(H5Id&&) = delete;
  ~H5Id() {
    if (id_ >= 0) close_(id_);
  }
  hid_t get() const { return id_; }
  // Closes now and checks the result (closing a file flushes it).
  void close() {
    const hid_t id = id_;
    id_ = H5I_INVALID_HID;
    H5_CHECK(close_(id));
  }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

// The element types a checkpoint holds.
enum class Elem { f32, i64, u64, u8 };
constexpr Elem kElems[] = {Elem::f32, Elem::i64, Elem::u64, Elem::u8};

hid_t h5_type(Elem e) {
  switch (e) {
    case Elem::f32: return H5T_IEEE_F32LE;
    case Elem::i64: return H5T_STD_I64LE;
    case Elem::u64: return H5T_STD_U64LE;
    case Elem::u8: return H5T_STD_U8LE;
  }
  return H5I_INVALID_HID;
}

size_t elem_size(Elem e) { return e == Elem::u8 ? 1 : e == Elem::f32 ? 4 : 8; }

const char* elem_name(Elem e) {
  switch (e) {
    case Elem::f32: return "float32";
    case Elem::i64: return "int64";
    case Elem::u64: return "uint64";
    case Elem::u8: return "uint8";
  }
  return "?";
}

// One dataset: its path from the root ("params/emb.weight"), element type and shape
// ({} = scalar).
struct DatasetInfo {
  std::string name;
  std::optional<Elem> elem;  // nullopt: a type no checkpoint writes
  std::vector<hsize_t> dims;
  size_t bytes() const {
    size_t n = elem ? elem_size(*elem) : 0;
    for (hsize_t d : dims) n *= d;
    return n;
  }
};

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

std::vector<int64_t> to_shape(const std::vector<hsize_t>& dims) {
  return std::vector<int64_t>(dims.begin(), dims.end());
}

// The checksum's fixed order: depth first, each group's members by name (bytewise),
// i.e. paths compared component by component (Python: sorted(key=p.split("/"))).
std::vector<std::string> path_components(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t slash; (slash = path.find('/', start)) != std::string::npos; start = slash + 1)
    parts.push_back(path.substr(start, slash - start));
  parts.push_back(path.substr(start));
  return parts;
}

bool canonical_less(const std::string& a, const std::string& b) {
  return path_components(a) < path_components(b);
}

// Per dataset, in canonical order: path bytes, a NUL, rank and dims as little-endian
// uint64, then the raw data (docs/checkpoints.md).
void hash_header(data::Sha256& h, const DatasetInfo& d) {
  h.update(d.name.data(), d.name.size());
  h.update("", 1);
  const uint64_t rank = d.dims.size();
  h.update(&rank, sizeof rank);
  for (hsize_t x : d.dims) {
    const uint64_t v = x;
    h.update(&v, sizeof v);
  }
}

void write_attr_i64(hid_t obj, const char* name, int64_t v) {
  H5Id space(H5_CHECK(H5Screate(H5S_SCALAR)), H5Sclose);
  H5Id attr(H5_CHECK(H5Acreate2(obj, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT)),
            H5Aclose);
  H5_CHECK(H5Awrite(attr.get(), H5T_NATIVE_INT64, &v));
}

// A fixed-length, NUL-terminated ASCII string (h5py reads it as bytes).
void write_attr_str(hid_t obj, const char* name, const std::string& v) {
  H5Id type(H5_CHECK(H5Tcopy(H5T_C_S1)), H5Tclose);
  H5_CHECK(H5Tset_size(type.get(), v.size() + 1));
  H5Id space(H5_CHECK(H5Screate(H5S_SCALAR)), H5Sclose);
  H5Id attr(H5_CHECK(H5Acreate2(obj, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT)),
            H5Aclose);
  H5_CHECK(H5Awrite(attr.get(), type.get(), v.c_str()));
}

bool has_attr(hid_t obj, const char* name) { return H5_CHECK(H5Aexists(obj, name)) > 0; }

int64_t read_attr_i64(hid_t obj, const char* name) {
  if (!has_attr(obj, name)) throw Error(std::string("root attribute ") + name + " is missing");
  H5Id attr(H5_CHECK(H5Aopen(obj, name, H5P_DEFAULT)), H5Aclose);
  int64_t v = 0;
  H5_CHECK(H5Aread(attr.get(), H5T_NATIVE_INT64, &v));
  return v;
}

std::string read_attr_str(hid_t obj, const char* name) {
  if (!has_attr(obj, name)) throw Error(std::string("root attribute ") + name + " is missing");
  H5Id attr(H5_CHECK(H5Aopen(obj, name, H5P_DEFAULT)), H5Aclose);
  H5Id type(H5_CHECK(H5Aget_type(attr.get())), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_STRING || H5Tis_variable_str(type.get()) != 0)
    throw Error(std::string("root attribute ") + name + " is not a fixed-length string");
  std::string v(H5Tget_size(type.get()), '\0');
  H5_CHECK(H5Aread(attr.get(), type.get(), v.data()));
  v.resize(std::strlen(v.c_str()));
  return v;
}

// comm: the MPI-IO driver over comm (a collective open); MPI_COMM_NULL: the default
// POSIX driver.
H5Id file_access(MPI_Comm comm = MPI_COMM_NULL) {
  // No HDF5 file locks: one writer that renames when done, and flock fails on some
  // parallel file systems (Lustre, NFS), as with HDF5_USE_FILE_LOCKING=FALSE.
  H5Id fapl(H5_CHECK(H5Pcreate(H5P_FILE_ACCESS)), H5Pclose);
  H5_CHECK(H5Pset_file_locking(fapl.get(), false, true));
  if (comm != MPI_COMM_NULL) H5_CHECK(H5Pset_fapl_mpio(fapl.get(), comm, MPI_INFO_NULL));
  return fapl;
}

// This rank's part of a dataset: the selections in the file and in memory.
struct Part {
  H5Id file, mem;
};

// All of the dataset, or (all = false) nothing: a rank that writes nothing still
// takes part in a collective write.
Part whole_part(hid_t dset, bool all) {
  Part part{H5Id(H5_CHECK(H5Dget_space(dset)), H5Sclose),
            H5Id(H5_CHECK(H5Dget_space(dset)), H5Sclose)};
  if (!all) {
    H5_CHECK(H5Sselect_none(part.file.get()));
    H5_CHECK(H5Sselect_none(part.mem.get()));
  }
  return part;
}

// The slab of tensor p this rank holds: in the file, rows [slab_begin, slab_begin +
// slab_len) of dimension split_dim and everything of the others; in memory, the
// contiguous slab of shape p.local_shape().
Part slab_part(hid_t dset, const model::ParamInfo& p) {
  if (p.size == 0) return whole_part(dset, false);
  const std::vector<int64_t> local = p.local_shape();
  std::vector<hsize_t> start(p.shape.size(), 0), count(local.begin(), local.end());
  start[static_cast<size_t>(p.split_dim)] = static_cast<hsize_t>(p.slab_begin);
  H5Id file(H5_CHECK(H5Dget_space(dset)), H5Sclose);
  H5_CHECK(H5Sselect_hyperslab(file.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(),
                               nullptr));
  H5Id mem(H5_CHECK(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr)),
           H5Sclose);
  return {std::move(file), std::move(mem)};
}

// True when the rank holds part of tensor p only (tp > 1 and p is split).
bool is_partial_slab(const model::ParamInfo& p) {
  return p.split_dim >= 0 && p.slab_len != p.shape[static_cast<size_t>(p.split_dim)];
}

const char* norm_name(model::NormKind k) {
  return k == model::NormKind::rmsnorm ? "rmsnorm" : "layernorm";
}
const char* activation_name(model::FfnActivation a) {
  return a == model::FfnActivation::relu ? "relu" : "relu_squared";
}

// ---- writing ----

struct OutDataset {
  DatasetInfo info;
  const void* data = nullptr;
  // A tensor's table entry (`data` holds this rank's slab); nullptr for the state.
  // Split tensors are written by every rank, the rest whole by TP rank 0.
  const model::ParamInfo* param = nullptr;
};

template <typename T>
OutDataset scalar(const std::string& name, Elem e, const T& v) {
  return {{name, e, {}}, &v};
}

template <typename T>
OutDataset array(const std::string& name, Elem e, const T* data, size_t n) {
  return {{name, e, {n}}, data};
}

OutDataset text(const std::string& name, const std::string& s) {
  return {{name, Elem::u8, {s.size()}}, s.data()};
}

std::string utc_now_iso8601() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// The TP group writing a checkpoint. One rank (MPI_COMM_SELF or a communicator of one)
// makes no MPI call: programs without MPI_Init save too.
struct Group {
  MPI_Comm comm = MPI_COMM_SELF;
  int rank = 0;
  int size = 1;
  bool solo() const { return size == 1; }
};

Group group_of(MPI_Comm comm) {
  if (comm == MPI_COMM_SELF) return {};
  return {comm, comm_rank(comm), comm_size(comm)};
}

// Runs fn on every rank of g and agrees on the outcome, so that no rank goes on into
// a collective call that another has left: if fn threw on any rank, every rank throws
// rwkv::Error with the message of the lowest such rank. A rank that fails inside a
// collective HDF5 call while the others wait in it cannot be rescued this way; the
// checks that can fail on one rank alone are made before the file is opened.
template <typename Fn>
void on_every_rank(const Group& g, Fn&& fn) {
  if (g.solo()) {
    fn();
    return;
  }
  bool failed = false;
  std::string what;
  try {
    fn();
  } catch (const std::exception& e) {
    failed = true;
    what = e.what();
  }
  const int mine = failed ? g.rank : g.size;
  int first = g.size;
  MPI_CHECK(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, g.comm));
  if (first == g.size) return;
  throw Error("TP rank " + std::to_string(first) + ": " + broadcast_string(g.comm, what, first));
}

// Writes this rank's part of a dataset: its slab of a split tensor; anything else is
// written whole by rank 0, and the other ranks select nothing.
void write_part(hid_t dset, const OutDataset& d, int rank, hid_t dxpl) {
  const Part part =
      d.param && d.param->split_dim >= 0 ? slab_part(dset, *d.param) : whole_part(dset, rank == 0);
  H5_CHECK(H5Dwrite(dset, h5_type(*d.info.elem), part.mem.get(), part.file.get(), dxpl, d.data));
}

// Creates the file with every dataset (collectively at tp > 1) and writes this rank's
// parts. `datasets` in canonical order. A single rank (tp = 1) computes the checksum
// on a second thread while it writes (SHA-256 at ~1 GB/s: ~2 s of a 0.1B model's ~11 s save,
// docs/performance.md; the thread makes no HDF5 call) and stores it; in a TP group no
// rank holds every tensor, so seal_file adds it afterwards.
void write_file(const std::string& path, const model::ModelConfig& model, const Group& g,
                const std::vector<OutDataset>& datasets) {
  // A jthread joins on the way out, also when a write throws.
  std::string digest;
  std::jthread hasher;
  if (g.solo())
    hasher = std::jthread([&datasets, &digest] {
      data::Sha256 hash;
      for (const OutDataset& d : datasets) {
        hash_header(hash, d.info);
        hash.update(d.data, d.info.bytes());
      }
      digest = hash.hex_digest();
    });
  H5Id fapl = file_access(g.solo() ? MPI_COMM_NULL : g.comm);
  H5Id file(H5_CHECK(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get())), H5Fclose);
  H5Id lcpl(H5_CHECK(H5Pcreate(H5P_LINK_CREATE)), H5Pclose);
  H5_CHECK(H5Pset_create_intermediate_group(lcpl.get(), 1));
  // Every element is written: no fill values (parallel HDF5 would write them first).
  H5Id dcpl(H5_CHECK(H5Pcreate(H5P_DATASET_CREATE)), H5Pclose);
  H5_CHECK(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER));
  H5Id dxpl(H5_CHECK(H5Pcreate(H5P_DATASET_XFER)), H5Pclose);
  if (!g.solo()) H5_CHECK(H5Pset_dxpl_mpio(dxpl.get(), H5FD_MPIO_COLLECTIVE));
  for (const OutDataset& d : datasets) {
    const int rank = static_cast<int>(d.info.dims.size());
    H5Id space(H5_CHECK(rank ? H5Screate_simple(rank, d.info.dims.data(), nullptr)
                             : H5Screate(H5S_SCALAR)),
               H5Sclose);
    H5Id dset(H5_CHECK(H5Dcreate2(file.get(), d.info.name.c_str(), h5_type(*d.info.elem),
                                  space.get(), lcpl.get(), dcpl.get(), H5P_DEFAULT)),
              H5Dclose);
    if (d.info.bytes() > 0) write_part(dset.get(), d, g.rank, dxpl.get());
  }
  const hid_t root = file.get();
  write_attr_i64(root, "format_version", kCheckpointFormatVersion);
  write_attr_i64(root, "version", model.version);
  write_attr_i64(root, "n_layer", model.n_layer);
  write_attr_i64(root, "n_embd", model.n_embd);
  write_attr_i64(root, "head_size", model.head_size);
  write_attr_i64(root, "vocab_size", model.vocab_size);
  write_attr_i64(root, "dim_ffn", model.dim_ffn);
  write_attr_str(root, "norm", norm_name(model.norm));
  write_attr_str(root, "ffn_activation", activation_name(model.ffn_activation));
  if (g.solo()) {
    hasher.join();
    write_attr_str(root, "sha256", digest);
  }
  H5_CHECK(H5Fflush(file.get(), H5F_SCOPE_GLOBAL));
  file.close();
}

// Every dataset of a save, in canonical order; `created` is referenced, not copied.
std::vector<OutDataset> checkpoint_datasets(const model::ParamTable& table,
                                            const CheckpointTensors& tensors,
                                            const TrainerState& state, const std::string& created) {
  std::vector<OutDataset> ds;
  const struct {
    const char* group;
    std::span<const float> data;
  } groups[] = {{"params", tensors.params}, {"adam_m", tensors.adam_m}, {"adam_v", tensors.adam_v}};
  for (const auto& g : groups)
    for (const model::ParamInfo& p : table.params)
      ds.push_back({{std::string(g.group) + "/" + p.name, Elem::f32,
                     std::vector<hsize_t>(p.shape.begin(), p.shape.end())},
                    g.data.data() + p.offset,
                    &p});
  ds.push_back(scalar("state/step", Elem::i64, state.step));
  ds.push_back(scalar("state/tokens_seen", Elem::u64, state.tokens_seen));
  ds.push_back(scalar("state/optimizer_step", Elem::i64, state.optimizer_step));
  ds.push_back(scalar("state/nonfinite_skips", Elem::i64, state.nonfinite_skips));
  ds.push_back(scalar("state/loader/samples", Elem::u64, state.loader.samples));
  ds.push_back(array("state/loader/group_draws", Elem::u64, state.loader.group_draws.data(),
                     state.loader.group_draws.size()));
  ds.push_back(array("state/loader/blend_credit", Elem::i64, state.loader.blend_credit.data(),
                     state.loader.blend_credit.size()));
  for (const auto& [rng_name, bytes] : state.rng)
    ds.push_back(array("state/rng/" + rng_name, Elem::u8, bytes.data(), bytes.size()));
  ds.push_back(text("state/config_yaml", state.config_yaml));
  ds.push_back(text("state/program_version", state.program_version));
  ds.push_back(text("state/created", created));
  std::sort(ds.begin(), ds.end(), [](const OutDataset& a, const OutDataset& b) {
    return canonical_less(a.info.name, b.info.name);
  });
  return ds;
}

// What the ranks of a TP group must agree on before they create the file together:
// the model attributes, every dataset's name and shape, every tensor's split dimension.
std::string layout_digest(const model::ModelConfig& m, const std::vector<OutDataset>& datasets) {
  data::Sha256 h;
  const int64_t norm = static_cast<int64_t>(m.norm);
  const int64_t act = static_cast<int64_t>(m.ffn_activation);
  const int64_t model_shape[] = {m.version,    m.n_layer, m.n_embd, m.head_size,
                                 m.vocab_size, m.dim_ffn, norm,     act};
  h.update(model_shape, sizeof model_shape);
  for (const OutDataset& d : datasets) {
    hash_header(h, d.info);
    const int64_t split = d.param ? d.param->split_dim : -2;
    h.update(&split, sizeof split);
  }
  return h.hex_digest();
}

// Every rank's (slab_begin, slab_len) of every parameter: [size][params][2].
std::vector<int64_t> gather_slabs(const Group& g, const model::ParamTable& table) {
  std::vector<int64_t> mine;
  for (const model::ParamInfo& p : table.params) {
    mine.push_back(p.slab_begin);
    mine.push_back(p.slab_len);
  }
  if (g.solo()) return mine;
  std::vector<int64_t> all(mine.size() * static_cast<size_t>(g.size));
  MPI_CHECK(MPI_Allgather(mine.data(), static_cast<int>(mine.size()), MPI_INT64_T, all.data(),
                          static_cast<int>(mine.size()), MPI_INT64_T, g.comm));
  return all;
}

// The slabs of TP ranks 0, 1, ... of each split tensor follow one another and cover
// its split dimension, so that the file receives every element exactly once (a rank
// that passed another rank's table is caught here).
void check_slabs_tile(const model::ParamTable& table, const std::vector<int64_t>& slabs, int size) {
  const size_t n = table.params.size();
  for (size_t i = 0; i < n; ++i) {
    const model::ParamInfo& p = table.params[i];
    if (p.split_dim < 0) continue;
    const int64_t D = p.shape[static_cast<size_t>(p.split_dim)];
    const std::string where =
        p.name + ": dimension " + std::to_string(p.split_dim) + " (" + std::to_string(D) + ")";
    int64_t next = 0;
    for (int r = 0; r < size; ++r) {
      const int64_t begin = slabs[(static_cast<size_t>(r) * n + i) * 2];
      const int64_t len = slabs[(static_cast<size_t>(r) * n + i) * 2 + 1];
      if (begin != next || len < 0)
        throw Error(where + ": TP rank " + std::to_string(r) + " holds rows [" +
                    std::to_string(begin) + ", " + std::to_string(begin + len) +
                    "), the slabs of the ranks before it end at " + std::to_string(next) +
                    " (a table of another TP rank or degree?)");
      next += len;
    }
    if (next != D)
      throw Error(where + ": the slabs of the " + std::to_string(size) +
                  " TP ranks cover rows [0, " + std::to_string(next) +
                  ") (a table of another TP degree?)");
  }
}

void check_save_inputs(const model::ParamTable& table, const CheckpointTensors& t,
                       const TrainerState& s) {
  const auto check_size = [&](const char* what, size_t n) {
    if (n != static_cast<size_t>(table.total))
      throw Error(std::string(what) + " holds " + std::to_string(n) +
                  " floats, the parameter table " + std::to_string(table.total));
  };
  check_size("params", t.params.size());
  check_size("adam_m", t.adam_m.size());
  check_size("adam_v", t.adam_v.size());
  for (const model::ParamInfo& p : table.params) {
    const std::vector<int64_t> local = p.local_shape();
    int64_t n = 1;
    for (int64_t d : local) n *= d;
    if (p.size != n || p.offset < 0 || p.offset + p.size > table.total)
      throw Error("parameter table: " + p.name + " holds " + std::to_string(p.size) +
                  " floats at offset " + std::to_string(p.offset) + ", its slab of shape " +
                  shape_str(local) + " has " + std::to_string(n) + " (table total " +
                  std::to_string(table.total) + ")");
  }
  if (s.step < 0) throw Error("step " + std::to_string(s.step) + " is negative");
  for (const auto& [name, bytes] : s.rng)
    if (name.empty() || name == "." || name.find('/') != std::string::npos)
      throw Error("RNG state name \"" + name + "\" is not a valid HDF5 name (empty, '.' or '/')");
}

// ---- reading ----

struct OpenFile {
  H5Id file;
  std::vector<DatasetInfo> datasets;  // in canonical order
};

// Every dataset under `group`, recursively, as paths from the root. Plain
// H5Gget_info / H5Lget_name_by_idx / H5Oopen: the same calls in every HDF5 1.10+.
void collect_datasets(hid_t group, const std::string& prefix, std::vector<DatasetInfo>& out) {
  H5G_info_t info;
  H5_CHECK(H5Gget_info(group, &info));
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t len = H5_CHECK(
        H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT));
    std::string name(static_cast<size_t>(len) + 1, '\0');
    H5_CHECK(H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(),
                                H5P_DEFAULT));
    name.resize(static_cast<size_t>(len));
    H5Id obj(H5_CHECK(H5Oopen(group, name.c_str(), H5P_DEFAULT)), H5Oclose);
    const H5I_type_t type = H5Iget_type(obj.get());
    if (type == H5I_DATASET) out.push_back({prefix + name, std::nullopt, {}});
    if (type == H5I_GROUP) collect_datasets(obj.get(), prefix + name + "/", out);
  }
}

// flags: H5F_ACC_RDONLY, or H5F_ACC_RDWR to add the checksum (seal_file).
OpenFile open_file(const std::string& path, unsigned flags = H5F_ACC_RDONLY) {
  h5_silence_errors();
  H5Id fapl = file_access();
  OpenFile f{H5Id(H5_CHECK(H5Fopen(path.c_str(), flags, fapl.get())), H5Fclose), {}};
  const int64_t format = read_attr_i64(f.file.get(), "format_version");
  if (format != kCheckpointFormatVersion)
    throw Error("format version " + std::to_string(format) + "; this program reads version " +
                std::to_string(kCheckpointFormatVersion));
  collect_datasets(f.file.get(), "", f.datasets);
  for (DatasetInfo& d : f.datasets) {
    H5Id dset(H5_CHECK(H5Dopen2(f.file.get(), d.name.c_str(), H5P_DEFAULT)), H5Dclose);
    H5Id type(H5_CHECK(H5Dget_type(dset.get())), H5Tclose);
    for (Elem e : kElems)
      if (H5_CHECK(H5Tequal(type.get(), h5_type(e))) > 0) d.elem = e;
    if (!d.elem) throw Error(d.name + " has a data type no checkpoint uses");
    H5Id space(H5_CHECK(H5Dget_space(dset.get())), H5Sclose);
    d.dims.resize(static_cast<size_t>(H5_CHECK(H5Sget_simple_extent_ndims(space.get()))));
    H5_CHECK(H5Sget_simple_extent_dims(space.get(), d.dims.data(), nullptr));
  }
  std::sort(f.datasets.begin(), f.datasets.end(), [](const DatasetInfo& a, const DatasetInfo& b) {
    return canonical_less(a.name, b.name);
  });
  return f;
}

// Where a dataset read goes: `out` (nullptr: nowhere), and for a tensor of which this
// rank holds part only, that slab (`out` holds the slab).
struct Dest {
  void* out = nullptr;
  const model::ParamInfo* slab = nullptr;
};

// Reads datasets in canonical order, each to dest(d); those going nowhere are read
// into a scratch buffer if the checksum is wanted (else not at all). A slab is read
// alone (a hyperslab) unless the checksum is wanted, which needs the whole tensor.
// Returns the SHA-256 of all datasets when `hash_all`, else "".
std::string read_datasets(const OpenFile& f, bool hash_all,
                          const std::function<Dest(const DatasetInfo&)>& dest) {
  data::Sha256 hash;
  std::vector<uint8_t> scratch;
  for (const DatasetInfo& d : f.datasets) {
    const Dest to = dest(d);
    if (!to.out && !hash_all) continue;
    std::optional<H5Id> dset;
    if (d.bytes() > 0)
      dset.emplace(H5_CHECK(H5Dopen2(f.file.get(), d.name.c_str(), H5P_DEFAULT)), H5Dclose);
    if (to.slab && !hash_all) {
      if (dset) {
        const Part part = slab_part(dset->get(), *to.slab);
        H5_CHECK(H5Dread(dset->get(), h5_type(*d.elem), part.mem.get(), part.file.get(),
                         H5P_DEFAULT, to.out));
      }
      continue;
    }
    void* whole = to.out;
    if (!to.out || to.slab) {
      scratch.resize(d.bytes());
      whole = scratch.data();
    }
    if (dset)
      H5_CHECK(H5Dread(dset->get(), h5_type(*d.elem), H5S_ALL, H5S_ALL, H5P_DEFAULT, whole));
    if (hash_all) {
      hash_header(hash, d);
      hash.update(whole, d.bytes());
    }
    if (to.slab)
      to.slab->for_each_run([&](int64_t w, int64_t s, int64_t len) {
        std::memcpy(static_cast<float*>(to.out) + s, static_cast<const float*>(whole) + w,
                    static_cast<size_t>(len) * sizeof(float));
      });
  }
  return hash_all ? hash.hex_digest() : "";
}

void check_checksum(const OpenFile& f, const std::string& digest) {
  const std::string stored = read_attr_str(f.file.get(), "sha256");
  if (digest != stored)
    throw Error("checksum mismatch: the data hashes to sha256 " + digest + ", the file records " +
                stored + " (corrupted or incompletely copied)");
}

void add_problems(std::string& msg, const std::vector<std::string>& problems) {
  constexpr size_t kMaxShown = 20;
  for (size_t i = 0; i < problems.size() && i < kMaxShown; ++i) msg += "\n  " + problems[i];
  if (problems.size() > kMaxShown)
    msg += "\n  ... and " + std::to_string(problems.size() - kMaxShown) + " more";
}

// Tensor names and shapes of `groups` against the table; one line per problem. A
// moment whose parameter already has a problem is not reported again.
std::vector<std::string> tensor_problems(const OpenFile& f, const model::ParamTable& table,
                                         const std::vector<std::string>& groups) {
  std::vector<std::string> problems;
  std::vector<std::string> bad_params;
  for (const std::string& g : groups) {
    const std::string prefix = g + "/";
    const std::string shown = g == "params" ? "" : prefix;
    std::vector<const DatasetInfo*> members;
    for (const DatasetInfo& d : f.datasets)
      if (d.name.compare(0, prefix.size(), prefix) == 0) members.push_back(&d);
    const auto find = [&](const std::string& name) -> const DatasetInfo* {
      for (const DatasetInfo* d : members)
        if (d->name.size() == prefix.size() + name.size() &&
            d->name.compare(prefix.size(), std::string::npos, name) == 0)
          return d;
      return nullptr;
    };
    for (const model::ParamInfo& p : table.params) {
      if (g != "params" &&
          std::find(bad_params.begin(), bad_params.end(), p.name) != bad_params.end())
        continue;
      const DatasetInfo* d = find(p.name);
      std::string problem;
      if (!d)
        problem =
            shown + p.name + " is missing (the model expects shape " + shape_str(p.shape) + ")";
      else if (to_shape(d->dims) != p.shape)
        problem = shown + p.name + " has shape " + shape_str(to_shape(d->dims)) +
                  ", the model expects " + shape_str(p.shape);
      else if (d->elem != Elem::f32)
        problem = shown + p.name + " has type " + elem_name(*d->elem) + ", expected float32";
      if (problem.empty()) continue;
      problems.push_back(problem);
      if (g == "params") bad_params.push_back(p.name);
    }
    for (const DatasetInfo* d : members) {
      const std::string name = d->name.substr(prefix.size());
      if (!table.find(name))
        problems.push_back(shown + name + " (shape " + shape_str(to_shape(d->dims)) +
                           ") is not a parameter of this model");
    }
  }
  return problems;
}

std::vector<std::string> model_problems(const OpenFile& f, const model::ModelConfig& m) {
  std::vector<std::string> problems;
  const hid_t root = f.file.get();
  const auto num = [&](const char* key, int64_t want) {
    const int64_t got = read_attr_i64(root, key);
    if (got != want)
      problems.push_back(std::string("model.") + key + " is " + std::to_string(got) +
                         " in the checkpoint, " + std::to_string(want) + " in this run");
  };
  const auto str = [&](const char* key, const std::string& want) {
    const std::string got = read_attr_str(root, key);
    if (got != want)
      problems.push_back(std::string("model.") + key + " is " + got + " in the checkpoint, " +
                         want + " in this run");
  };
  num("version", m.version);
  num("n_layer", m.n_layer);
  num("n_embd", m.n_embd);
  num("head_size", m.head_size);
  num("vocab_size", m.vocab_size);
  num("dim_ffn", m.dim_ffn);
  str("norm", norm_name(m.norm));
  str("ffn_activation", activation_name(m.ffn_activation));
  return problems;
}

// Where tensors of `group` go: the flat buffer at each parameter's offset (this
// rank's slab).
Dest tensor_dest(const DatasetInfo& d, const std::string& group, const model::ParamTable& table,
                 std::vector<float>& buf) {
  const std::string prefix = group + "/";
  if (d.name.compare(0, prefix.size(), prefix) != 0) return {};
  const model::ParamInfo* p = table.find(d.name.substr(prefix.size()));
  if (!p) return {};
  return {buf.data() + p->offset, is_partial_slab(*p) ? p : nullptr};
}

// TP rank 0 adds the checksum to a file its group has written and closed, reading
// the file back (rank 0 holds only its own slabs).
void seal_file(const std::string& path) {
  OpenFile f = open_file(path, H5F_ACC_RDWR);
  const std::string digest = read_datasets(f, true, [](const DatasetInfo&) { return Dest{}; });
  write_attr_str(f.file.get(), "sha256", digest);
  H5_CHECK(H5Fflush(f.file.get(), H5F_SCOPE_GLOBAL));
  f.file.close();
}

// The /state datasets, read as raw bytes, decoded with type and shape checks.
struct StateBytes {
  std::map<std::string, std::pair<DatasetInfo, std::vector<uint8_t>>> raw;

  const std::pair<DatasetInfo, std::vector<uint8_t>>& get(const std::string& name, Elem e,
                                                          bool scalar) const {
    const auto it = raw.find(name);
    if (it == raw.end()) throw Error(name + " is missing");
    const DatasetInfo& d = it->second.first;
    if (d.elem != e || d.dims.size() != (scalar ? 0u : 1u))
      throw Error(name + " is not " + (scalar ? "a scalar" : "a 1-D array") + " of " +
                  elem_name(e));
    return it->second;
  }
  template <typename T>
  T scalar(const std::string& name, Elem e) const {
    T v;
    std::memcpy(&v, get(name, e, true).second.data(), sizeof v);
    return v;
  }
  template <typename T>
  std::vector<T> array(const std::string& name, Elem e) const {
    const std::vector<uint8_t>& b = get(name, e, false).second;
    std::vector<T> v(b.size() / sizeof(T));
    if (!b.empty()) std::memcpy(v.data(), b.data(), b.size());
    return v;
  }
  std::string text(const std::string& name) const {
    const std::vector<uint8_t>& b = get(name, Elem::u8, false).second;
    return std::string(b.begin(), b.end());
  }
};

TrainerState decode_state(const StateBytes& s, std::string& created) {
  TrainerState st;
  st.step = s.scalar<int64_t>("state/step", Elem::i64);
  st.tokens_seen = s.scalar<uint64_t>("state/tokens_seen", Elem::u64);
  st.optimizer_step = s.scalar<int64_t>("state/optimizer_step", Elem::i64);
  st.nonfinite_skips = s.scalar<int64_t>("state/nonfinite_skips", Elem::i64);
  st.loader.samples = s.scalar<uint64_t>("state/loader/samples", Elem::u64);
  st.loader.group_draws = s.array<uint64_t>("state/loader/group_draws", Elem::u64);
  st.loader.blend_credit = s.array<int64_t>("state/loader/blend_credit", Elem::i64);
  const std::string rng_prefix = "state/rng/";
  for (const auto& [name, entry] : s.raw)
    if (name.compare(0, rng_prefix.size(), rng_prefix) == 0)
      st.rng[name.substr(rng_prefix.size())] = s.array<uint8_t>(name, Elem::u8);
  st.config_yaml = s.text("state/config_yaml");
  st.program_version = s.text("state/program_version");
  created = s.text("state/created");
  return st;
}

// Runs fn, prefixing any error with "checkpoint <path>: ".
template <typename Fn>
auto naming_file(const std::string& path, Fn&& fn) {
  try {
    return fn();
  } catch (const fs::filesystem_error& e) {
    throw Error("checkpoint " + path + ": " + e.what());
  } catch (const Error& e) {
    throw Error("checkpoint " + path + ": " + e.what());
  }
}

}  // namespace

std::string save_checkpoint(const std::string& run_dir, const model::ModelConfig& model,
                            const model::ParamTable& table, const CheckpointTensors& tensors,
                            const TrainerState& state, MPI_Comm tp_comm) {
  const std::string dir = checkpoint_dir(run_dir);
  const std::string name = checkpoint_file_name(state.step);
  const std::string path = (fs::path(dir) / name).string();
  const std::string tmp = path + ".tmp";
  return naming_file(path, [&] {
    h5_silence_errors();
    const Group g = group_of(tp_comm);
    const std::string created =
        g.solo() ? utc_now_iso8601() : broadcast_string(g.comm, utc_now_iso8601());
    // Everything that can fail on one rank alone is checked, and agreed on, before the
    // collective write begins.
    std::vector<OutDataset> ds;
    std::string layout;
    on_every_rank(g, [&] {
      check_save_inputs(table, tensors, state);
      ds = checkpoint_datasets(table, tensors, state, created);
      layout = layout_digest(model, ds);
    });
    if (!g.solo()) {
      const std::string rank0_layout = broadcast_string(g.comm, layout);
      on_every_rank(g, [&] {
        if (layout != rank0_layout)
          throw Error(
              "the model, the tensors' names, shapes or splits, or the trainer state's "
              "names and sizes differ from TP rank 0's");
      });
    }
    // Every rank sees the same slabs, so every rank throws the same error here.
    check_slabs_tile(table, gather_slabs(g, table), g.size);
    on_every_rank(g, [&] {
      if (g.rank != 0) return;
      fs::create_directories(dir);
      remove_temp_files(dir);
    });

    try {
      on_every_rank(g, [&] { write_file(tmp, model, g, ds); });
      on_every_rank(g, [&] {
        if (g.rank != 0) return;
        if (!g.solo()) seal_file(tmp);
        fsync_file(tmp);
        fs::rename(tmp, path);
      });
    } catch (...) {
      if (g.rank == 0) {
        std::error_code ec;
        fs::remove(tmp, ec);
      }
      throw;
    }
    on_every_rank(g, [&] {
      if (g.rank != 0) return;
      fsync_dir(dir);
      write_file_durably((fs::path(dir) / "latest").string(), name + "\n");
    });
    return path;
  });
}

LoadedCheckpoint load_checkpoint(const std::string& path, const model::ModelConfig& model,
                                 const model::ParamTable& table, bool verify_checksum) {
  return naming_file(path, [&] {
    const OpenFile f = open_file(path);
    std::vector<std::string> problems = model_problems(f, model);
    const std::vector<std::string> tensors =
        tensor_problems(f, table, {"params", "adam_m", "adam_v"});
    problems.insert(problems.end(), tensors.begin(), tensors.end());
    if (!problems.empty()) {
      std::string msg = "does not match this model:";
      add_problems(msg, problems);
      throw Error(msg);
    }
    LoadedCheckpoint out;
    const size_t n = static_cast<size_t>(table.total);
    out.params.resize(n);
    out.adam_m.resize(n);
    out.adam_v.resize(n);
    StateBytes state;
    const std::string digest = read_datasets(f, verify_checksum, [&](const DatasetInfo& d) -> Dest {
      if (Dest t = tensor_dest(d, "params", table, out.params); t.out) return t;
      if (Dest t = tensor_dest(d, "adam_m", table, out.adam_m); t.out) return t;
      if (Dest t = tensor_dest(d, "adam_v", table, out.adam_v); t.out) return t;
      if (d.name.compare(0, 6, "state/") != 0) return {};
      auto& entry = state.raw[d.name];
      entry.first = d;
      entry.second.resize(d.bytes());
      return {entry.second.data()};
    });
    if (verify_checksum) check_checksum(f, digest);
    out.state = decode_state(state, out.created);
    return out;
  });
}

std::vector<float> load_weights(const std::string& path, const model::ParamTable& table,
                                bool verify_checksum) {
  return naming_file(path, [&] {
    const OpenFile f = open_file(path);
    const std::vector<std::string> problems = tensor_problems(f, table, {"params"});
    if (!problems.empty()) {
      std::string msg = "its weights do not match this model:";
      add_problems(msg, problems);
      throw Error(msg);
    }
    std::vector<float> params(static_cast<size_t>(table.total));
    const std::string digest = read_datasets(f, verify_checksum, [&](const DatasetInfo& d) {
      return tensor_dest(d, "params", table, params);
    });
    if (verify_checksum) check_checksum(f, digest);
    return params;
  });
}

void verify_checkpoint(const std::string& path) {
  naming_file(path, [&] {
    const OpenFile f = open_file(path);
    check_checksum(f, read_datasets(f, true, [](const DatasetInfo&) { return Dest{}; }));
    return 0;
  });
}

}  // namespace rwkv::trainer
