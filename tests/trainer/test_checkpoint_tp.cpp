// Tensor-parallel checkpoints, on 4 ranks split into two TP groups of 2 ({0, 1} and
// {2, 3}): a file written collectively at tp = 2 holds the whole tensors, loads
// bitwise at tp = 1, 2 and 4, equals the tp = 1 file of the same values dataset for
// dataset and carries the same checksum; an error on one rank of a group makes both
// ranks throw (a hang would fail the test by its timeout). The model is tiny_model: its
// vocabulary of 37 makes uneven slabs at tp = 2 (19 + 18) and tp = 4 (10, 10, 10, 7).
#include <gtest/gtest.h>
#include <mpi.h>

#include <optional>

#include "common/mpi_util.h"
#include "tests/trainer/test_checkpoint_util.h"
#include "trainer/checkpoint.h"
#include "trainer/checkpoint_dir.h"

using namespace rwkv::trainer;
using namespace ckpt_test;

namespace {

int world_rank() { return rwkv::comm_rank(MPI_COMM_WORLD); }

// One directory for all ranks: rank 0 makes it and removes it once every rank is done.
struct SharedDir {
  std::optional<TempDir> made;
  fs::path path;
  explicit SharedDir(const std::string& name) {
    if (world_rank() == 0) made.emplace(name);
    path = rwkv::broadcast_string(MPI_COMM_WORLD, made ? made->string() : "");
  }
  ~SharedDir() { MPI_Barrier(MPI_COMM_WORLD); }  // `made` is removed after this
  SharedDir(const SharedDir&) = delete;
  SharedDir& operator=(const SharedDir&) = delete;
};

// This rank's TP group of 2.
struct Pair {
  MPI_Comm comm = MPI_COMM_NULL;
  int group = world_rank() / 2;
  int rank = world_rank() % 2;
  Pair() { MPI_Comm_split(MPI_COMM_WORLD, group, rank, &comm); }
  ~Pair() { MPI_Comm_free(&comm); }
  Pair(const Pair&) = delete;
  Pair& operator=(const Pair&) = delete;
};

}  // namespace

class TpCheckpoint : public ::testing::TestWithParam<int> {};

TEST_P(TpCheckpoint, SavedAtTp2LoadsAtTp1Tp2Tp4AndEqualsTheTp1File) {
  ASSERT_EQ(rwkv::comm_size(MPI_COMM_WORLD), 4);
  const int version = GetParam();
  const SharedDir dir("tp_roundtrip" + std::to_string(version));
  const TinyRun whole = random_run(tiny_model(version), 40, 100 + static_cast<uint64_t>(version));
  const Pair pair;
  const TpSlabs mine = slabs_of(whole, {pair.rank, 2});
  const fs::path run = dir.path / ("group" + std::to_string(pair.group));
  const std::string path = save_checkpoint(run.string(), whole.model, mine.table, mine.tensors(),
                                           whole.state, pair.comm);
  EXPECT_EQ(path, (run / "checkpoints" / "step-0000040.h5").string());
  EXPECT_EQ(read_latest(run.string()), "step-0000040.h5");
  EXPECT_NO_THROW(verify_checkpoint(path));
  MPI_Barrier(MPI_COMM_WORLD);  // both groups' files are complete

  for (const int tp : {1, 2, 4}) {
    const TpSlabs want = slabs_of(whole, {world_rank() % tp, tp});
    // With the checksum the whole tensors are read and sliced, without it the slabs
    // alone (hyperslab reads): both ways.
    const LoadedCheckpoint c = load_checkpoint(path, whole.model, want.table, true);
    EXPECT_TRUE(bitwise_equal(c.params, want.params)) << "tp " << tp;
    EXPECT_TRUE(bitwise_equal(c.adam_m, want.adam_m)) << "tp " << tp;
    EXPECT_TRUE(bitwise_equal(c.adam_v, want.adam_v)) << "tp " << tp;
    EXPECT_EQ(c.state, whole.state) << "tp " << tp;
    const LoadedCheckpoint fast = load_checkpoint(path, whole.model, want.table, false);
    EXPECT_TRUE(bitwise_equal(fast.params, want.params)) << "tp " << tp;
    EXPECT_TRUE(bitwise_equal(fast.adam_m, want.adam_m)) << "tp " << tp;
    EXPECT_TRUE(bitwise_equal(fast.adam_v, want.adam_v)) << "tp " << tp;
    EXPECT_TRUE(bitwise_equal(load_weights(path, want.table, false), want.params)) << "tp " << tp;
    EXPECT_TRUE(bitwise_equal(load_weights(path, want.table, true), want.params)) << "tp " << tp;
  }

  // The same values saved at tp = 1: the same datasets, byte for byte, but the time of
  // writing; and the checksum of the tp = 2 file is the one of the tp = 1 file's
  // datasets with that time.
  if (world_rank() != 0) return;
  const std::string solo = save_checkpoint((dir.path / "solo").string(), whole.model, whole.table,
                                           whole.tensors(), whole.state);
  RawDatasets one = read_raw_datasets(solo);
  EXPECT_EQ(documented_sha256(one), sha256_attribute(solo));
  for (const std::string group : {"group0", "group1"}) {
    const std::string tp2_path = (dir.path / group / "checkpoints" / "step-0000040.h5").string();
    const RawDatasets two = read_raw_datasets(tp2_path);
    ASSERT_TRUE(two.count("state/created")) << tp2_path;
    EXPECT_EQ(documented_sha256(two), sha256_attribute(tp2_path)) << group;
    one["state/created"] = two.at("state/created");
    EXPECT_EQ(documented_sha256(one), sha256_attribute(tp2_path)) << group;
    EXPECT_EQ(two.size(), one.size()) << group;
    for (const auto& [name, d] : one) EXPECT_TRUE(two.count(name) && two.at(name) == d) << name;
  }
}

// v4 splits channels (no heads), v7 heads; v5 and v6 split like v7.
INSTANTIATE_TEST_SUITE_P(V4V7, TpCheckpoint, ::testing::Values(4, 7));

TEST(TpCheckpointErrors, AnErrorOnOneRankMakesBothRanksThrow) {
  const SharedDir dir("tp_errors");
  const TinyRun whole = random_run(tiny_model(7), 10, 3);
  const Pair pair;
  const std::string run = (dir.path / ("group" + std::to_string(pair.group))).string();
  const TpSlabs mine = slabs_of(whole, {pair.rank, 2});
  const std::string good =
      save_checkpoint(run, whole.model, mine.table, mine.tensors(), whole.state, pair.comm);
  TrainerState later = whole.state;
  later.step = 20;
  const std::string failed = "checkpoint " + run + "/checkpoints/step-0000020.h5: ";
  const auto save_error = [&](const std::string& run_dir, const TpSlabs& s,
                              const TrainerState& st) {
    return error_of(
        [&] { save_checkpoint(run_dir, whole.model, s.table, s.tensors(), st, pair.comm); });
  };

  // Rank 1's second moments one float short.
  TpSlabs short_v = mine;
  if (pair.rank == 1) short_v.adam_v.pop_back();
  std::string e = save_error(run, short_v, later);
  EXPECT_TRUE(contains(e, failed + "TP rank 1: adam_v holds")) << e;

  // Rank 1 passes TP rank 0's table and slabs: the file would miss rank 1's rows.
  const TpSlabs rank0 = slabs_of(whole, {0, 2});
  e = save_error(run, pair.rank == 1 ? rank0 : mine, later);
  EXPECT_TRUE(contains(e, failed + "emb.weight: dimension 0 (37): TP rank 1 holds rows [0, 19)"))
      << e;

  // Rank 1's trainer state holds one more RNG state: another set of datasets.
  TrainerState more = later;
  if (pair.rank == 1) more.rng["extra"] = {1, 2, 3};
  e = save_error(run, mine, more);
  EXPECT_TRUE(contains(e, failed + "TP rank 1: the model, the tensors' names")) << e;

  // A run directory that cannot be made (a regular file is in the way): rank 0 fails.
  const std::string blocked = run + "_file";
  if (pair.rank == 0) std::ofstream(blocked) << "in the way";
  MPI_Barrier(pair.comm);
  e = save_error(blocked, mine, later);
  EXPECT_TRUE(contains(e, "checkpoint " + blocked + "/checkpoints/step-0000020.h5: TP rank 0: "))
      << e;
  EXPECT_TRUE(contains(e, "Not a directory")) << e;

  // A TP rank's table without its group: the slab does not cover the tensor.
  e = error_of(
      [&] { save_checkpoint(run, whole.model, mine.table, mine.tensors(), later, MPI_COMM_SELF); });
  EXPECT_TRUE(contains(e, "(a table of another TP")) << e;

  // Nothing was written: the first checkpoint is the only one and still loads.
  MPI_Barrier(pair.comm);
  const auto files = list_checkpoints(run);
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].path, good);
  EXPECT_EQ(remove_temp_files(checkpoint_dir(run)).size(), 0u);
  EXPECT_TRUE(bitwise_equal(load_checkpoint(good, whole.model, mine.table).params, mine.params));
}
