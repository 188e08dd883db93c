// Checkpoint files: bitwise round trip for every model version, the file's names,
// shapes, attributes and checksum read back independently with the HDF5 C API, and
// the errors for models that do not match.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <regex>

#include "common/error.h"
#include "tests/trainer/test_checkpoint_util.h"
#include "trainer/checkpoint.h"
#include "trainer/checkpoint_dir.h"
#include "trainer/h5_check.h"

using namespace rwkv::trainer;
using namespace ckpt_test;

namespace {

// Names of the members of an HDF5 group, by the C API.
std::vector<std::string> group_members(hid_t file, const std::string& group) {
  const hid_t g = H5Gopen2(file, group.c_str(), H5P_DEFAULT);
  EXPECT_GE(g, 0) << group;
  H5G_info_t info;
  H5Gget_info(g, &info);
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    char buf[256];
    H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, buf, sizeof buf, H5P_DEFAULT);
    names.push_back(buf);
  }
  H5Gclose(g);
  return names;
}

std::vector<int64_t> dataset_shape(hid_t file, const std::string& name, bool* is_f32) {
  const hid_t d = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
  EXPECT_GE(d, 0) << name;
  const hid_t space = H5Dget_space(d);
  hsize_t dims[8];
  const int rank = H5Sget_simple_extent_dims(space, dims, nullptr);
  const hid_t type = H5Dget_type(d);
  *is_f32 = H5Tequal(type, H5T_IEEE_F32LE) > 0;
  H5Tclose(type);
  H5Sclose(space);
  H5Dclose(d);
  return std::vector<int64_t>(dims, dims + rank);
}

int64_t root_attr_i64(hid_t file, const char* name) {
  const hid_t a = H5Aopen(file, name, H5P_DEFAULT);
  int64_t v = -1;
  H5Aread(a, H5T_NATIVE_INT64, &v);
  H5Aclose(a);
  return v;
}

}  // namespace

class CheckpointVersions : public ::testing::TestWithParam<int> {};

TEST_P(CheckpointVersions, RoundTripIsBitwise) {
  const TempDir dir("roundtrip" + std::to_string(GetParam()));
  TinyRun r = random_run(tiny_model(GetParam()), 120, 7 + GetParam());
  // Values whose bits a conversion would change: NaN payload, -0, a denormal, inf.
  const uint32_t nan_bits = 0x7fc01234u;
  std::memcpy(&r.params[1], &nan_bits, 4);
  r.params[2] = -0.0f;
  r.adam_m[3] = std::numeric_limits<float>::denorm_min();
  r.adam_v[4] = std::numeric_limits<float>::infinity();
  const std::string path = save(dir, r);
  EXPECT_EQ(fs::path(path).filename(), "step-0000120.h5");
  EXPECT_EQ(read_latest(dir.string()), "step-0000120.h5");

  const LoadedCheckpoint c = load_checkpoint(path, r.model, r.table);
  EXPECT_TRUE(bitwise_equal(c.params, r.params));
  EXPECT_TRUE(bitwise_equal(c.adam_m, r.adam_m));
  EXPECT_TRUE(bitwise_equal(c.adam_v, r.adam_v));
  EXPECT_EQ(c.state, r.state);
  EXPECT_EQ(c.state.rng.size(), 2u);
  EXPECT_TRUE(std::regex_match(c.created, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")))
      << c.created;

  EXPECT_TRUE(bitwise_equal(load_weights(path, r.table), r.params));
}

INSTANTIATE_TEST_SUITE_P(AllVersions, CheckpointVersions, ::testing::Values(4, 5, 6, 7));

TEST(Checkpoint, FileHoldsOfficialNamesAndShapes) {
  const TempDir dir("layout");
  const TinyRun r = random_run(tiny_model(6), 3, 11);
  const std::string path = save(dir, r);

  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  std::vector<std::string> official;
  for (const auto& p : r.table.params) official.push_back(p.name);
  std::sort(official.begin(), official.end());
  for (const std::string group : {"params", "adam_m", "adam_v"}) {
    std::vector<std::string> names = group_members(f, group);
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, official) << group;
    for (const auto& p : r.table.params) {
      bool f32 = false;
      EXPECT_EQ(dataset_shape(f, group + "/" + p.name, &f32), p.shape) << group << "/" << p.name;
      EXPECT_TRUE(f32) << group << "/" << p.name;
    }
  }
  // One tensor's values, read by the C API.
  const auto* key = r.table.find("blocks.1.att.key.weight");
  ASSERT_NE(key, nullptr);
  std::vector<float> v(static_cast<size_t>(key->size));
  const hid_t d = H5Dopen2(f, "params/blocks.1.att.key.weight", H5P_DEFAULT);
  H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
  H5Dclose(d);
  EXPECT_EQ(0, std::memcmp(v.data(), r.params.data() + key->offset, v.size() * 4));

  EXPECT_EQ(root_attr_i64(f, "format_version"), kCheckpointFormatVersion);
  EXPECT_EQ(root_attr_i64(f, "version"), 6);
  EXPECT_EQ(root_attr_i64(f, "n_layer"), 2);
  EXPECT_EQ(root_attr_i64(f, "n_embd"), 64);
  EXPECT_EQ(root_attr_i64(f, "head_size"), 16);
  EXPECT_EQ(root_attr_i64(f, "vocab_size"), 37);
  EXPECT_EQ(root_attr_i64(f, "dim_ffn"), r.model.dim_ffn);
  H5Fclose(f);
}

// The checksum as docs/checkpoints.md defines it, recomputed from the C API
// (documented_sha256 in test_checkpoint_util.h).
TEST(Checkpoint, ChecksumFollowsTheDocumentedDefinition) {
  const TempDir dir("checksum");
  const TinyRun r = random_run(tiny_model(7), 9, 5);
  const std::string path = save(dir, r);
  const RawDatasets datasets = read_raw_datasets(path);
  EXPECT_GT(datasets.size(), 3 * r.table.params.size());
  EXPECT_EQ(documented_sha256(datasets), sha256_attribute(path));
}

TEST(Checkpoint, ShapeMismatchNamesTensorAndBothShapes) {
  const TempDir dir("shape");
  const TinyRun r = random_run(tiny_model(7, 64), 100, 1);
  const std::string path = save(dir, r);

  // Another width: the model attribute and every tensor differ (first 20 listed).
  const auto narrow = tiny_model(7, 32);
  const auto narrow_table = rwkv::model::build_param_table(narrow);
  const std::string e = error_of([&] { load_checkpoint(path, narrow, narrow_table); });
  EXPECT_TRUE(contains(e, "checkpoint " + path + ": does not match this model:")) << e;
  EXPECT_TRUE(contains(e, "model.n_embd is 64 in the checkpoint, 32 in this run")) << e;
  EXPECT_TRUE(contains(e, "emb.weight has shape [37, 64], the model expects [37, 32]")) << e;
  EXPECT_TRUE(contains(e, "... and ")) << e;

  // One tensor of another shape (same size, so only the shape check can catch it).
  auto other = r.table;
  for (auto& p : other.params)
    if (p.name == "blocks.0.att.key.weight") p.shape = {128, 32};
  const std::string expected =
      "blocks.0.att.key.weight has shape [64, 64], the model expects [128, 32]";
  const std::string one = error_of([&] { load_checkpoint(path, r.model, other); });
  EXPECT_TRUE(contains(one, expected)) << one;
  EXPECT_FALSE(contains(one, "model.")) << one;
  const std::string w = error_of([&] { load_weights(path, other); });
  EXPECT_TRUE(
      contains(w, "checkpoint " + path + ": its weights do not match this model:\n  " + expected))
      << w;
}

TEST(Checkpoint, MissingAndExtraTensorsAreNamed) {
  const TempDir dir("missing");
  const TinyRun r = random_run(tiny_model(5), 4, 2);
  // A table without one tensor (offsets unchanged: that slice is simply not saved).
  auto fewer = r.table;
  const auto gone = std::find_if(fewer.params.begin(), fewer.params.end(), [](const auto& p) {
    return p.name == "blocks.1.ffn.value.weight";
  });
  ASSERT_NE(gone, fewer.params.end());
  const std::string shape =
      "[" + std::to_string(gone->shape[0]) + ", " + std::to_string(gone->shape[1]) + "]";
  fewer.params.erase(gone);

  const std::string full_path = save(dir / "full", r);
  const std::string extra = error_of([&] { load_checkpoint(full_path, r.model, fewer); });
  EXPECT_TRUE(contains(
      extra, "blocks.1.ffn.value.weight (shape " + shape + ") is not a parameter of this model"))
      << extra;
  EXPECT_TRUE(contains(error_of([&] { load_weights(full_path, fewer); }), "is not a parameter"));

  const std::string fewer_path = rwkv::trainer::save_checkpoint((dir / "fewer").string(), r.model,
                                                                fewer, r.tensors(), r.state);
  const std::string missing = error_of([&] { load_checkpoint(fewer_path, r.model, r.table); });
  EXPECT_TRUE(contains(
      missing, "blocks.1.ffn.value.weight is missing (the model expects shape " + shape + ")"))
      << missing;
  // Reported once, not again for adam_m and adam_v.
  EXPECT_FALSE(contains(missing, "adam_m/blocks.1.ffn.value.weight")) << missing;
}

TEST(Checkpoint, CorruptedDataFailsTheChecksum) {
  const TempDir dir("corrupt");
  const TinyRun r = random_run(tiny_model(7), 8, 3);
  const std::string path = save(dir, r);
  flip_bit(path, dataset_offset(path, "adam_v/emb.weight") + 5);
  const std::string e = error_of([&] { load_checkpoint(path, r.model, r.table); });
  EXPECT_TRUE(contains(e, "checkpoint " + path + ": checksum mismatch")) << e;
  EXPECT_TRUE(contains(error_of([&] { verify_checkpoint(path); }), "checksum mismatch"));
  // Weights alone: verified by default, readable when asked not to verify.
  EXPECT_TRUE(contains(error_of([&] { load_weights(path, r.table); }), "checksum mismatch"));
  EXPECT_TRUE(bitwise_equal(load_weights(path, r.table, false), r.params));
}

TEST(Checkpoint, NotACheckpointNamesTheFile) {
  const TempDir dir("garbage");
  const std::string path = (dir / "step-0000001.h5").string();
  std::ofstream(path) << "not an HDF5 file";
  const std::string e = error_of([&] { verify_checkpoint(path); });
  EXPECT_TRUE(contains(e, "checkpoint " + path + ": HDF5 call H5Fopen")) << e;
  EXPECT_TRUE(contains(e, "file signature not found")) << e;
}

TEST(Checkpoint, BadSaveInputsOverwriteNothing) {
  const TempDir dir("badsave");
  TinyRun r = random_run(tiny_model(4), 10, 4);
  const std::string path = save(dir, r);
  TinyRun bad = random_run(tiny_model(4), 10, 5);
  bad.adam_v.pop_back();
  const std::string e = error_of([&] { save(dir, bad); });
  EXPECT_TRUE(contains(e, "adam_v holds")) << e;
  bad = random_run(tiny_model(4), 10, 5);
  bad.state.rng["a/b"] = {1};
  EXPECT_TRUE(contains(error_of([&] { save(dir, bad); }), "RNG state name \"a/b\""));
  bad = random_run(tiny_model(4), 10, 5);
  bad.table.params[0].size -= 1;  // an entry whose size is not that of its shape
  const std::string t = error_of([&] { save(dir, bad); });
  EXPECT_TRUE(contains(t,
                       "parameter table: emb.weight holds 2367 floats at offset 0, its slab of "
                       "shape [37, 64] has 2368"))
      << t;
  const LoadedCheckpoint c = load_checkpoint(path, r.model, r.table);
  EXPECT_TRUE(bitwise_equal(c.params, r.params));
  EXPECT_EQ(list_checkpoints(dir.string()).size(), 1u);
}

TEST(H5Check, ThrowsNamingCallSourceAndHdf5Reason) {
  h5_silence_errors();
  ::testing::internal::CaptureStderr();
  const std::string e =
      error_of([] { H5_CHECK(H5Fopen("/nonexistent/x.h5", H5F_ACC_RDONLY, H5P_DEFAULT)); });
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");  // HDF5 printed nothing itself
  EXPECT_TRUE(
      contains(e, "HDF5 call H5Fopen(\"/nonexistent/x.h5\", H5F_ACC_RDONLY, H5P_DEFAULT) failed ("))
      << e;
  EXPECT_TRUE(contains(e, "test_checkpoint.cpp:")) << e;
  EXPECT_TRUE(contains(e, "unable to open file")) << e;
  const hid_t space = H5_CHECK(H5Screate(H5S_SCALAR));  // a good call passes its value on
  EXPECT_EQ(H5Iget_type(space), H5I_DATASPACE);
  H5Sclose(space);
}
