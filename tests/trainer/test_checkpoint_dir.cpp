// The checkpoints directory: file names, discovery with fallback past leftover,
// truncated and corrupted files and a wrong `latest`, pruning, the save policy.
#include <gtest/gtest.h>

#include <algorithm>

#include "common/error.h"
#include "tests/trainer/test_checkpoint_util.h"
#include "trainer/checkpoint.h"
#include "trainer/checkpoint_dir.h"

using namespace rwkv::trainer;
using namespace ckpt_test;

namespace {

bool any_contains(const std::vector<std::string>& v, const std::string& part) {
  return std::any_of(v.begin(), v.end(), [&](const std::string& s) { return contains(s, part); });
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += s + "\n";
  return out;
}

// Saves steps 100, 200, 300 of one tiny run; returns their paths.
std::vector<std::string> save_three(const fs::path& dir) {
  std::vector<std::string> paths;
  for (int64_t step : {100, 200, 300})
    paths.push_back(save(dir, random_run(tiny_model(7), step, 9)));
  return paths;
}

std::vector<int64_t> steps_on_disk(const fs::path& dir) {
  std::vector<int64_t> steps;
  for (const CheckpointFile& f : list_checkpoints(dir.string())) steps.push_back(f.step);
  return steps;
}

}  // namespace

TEST(CheckpointDir, FileNames) {
  EXPECT_EQ(checkpoint_file_name(100), "step-0000100.h5");
  EXPECT_EQ(checkpoint_file_name(123456789), "step-123456789.h5");
  EXPECT_EQ(parse_checkpoint_file_name("step-0000100.h5"), 100);
  EXPECT_EQ(parse_checkpoint_file_name("step-123456789.h5"), 123456789);
  EXPECT_EQ(parse_checkpoint_file_name("step-0000100.h5.tmp"), std::nullopt);
  EXPECT_EQ(parse_checkpoint_file_name("step-.h5"), std::nullopt);
  EXPECT_EQ(parse_checkpoint_file_name("step-12a.h5"), std::nullopt);
  EXPECT_EQ(parse_checkpoint_file_name("latest"), std::nullopt);
}

TEST(CheckpointDir, FreshRunHasNoResumePoint) {
  const TempDir dir("fresh");
  const ResumePoint r = find_resume_checkpoint(dir.string());
  EXPECT_EQ(r.path, "");
  EXPECT_TRUE(r.warnings.empty());
}

TEST(CheckpointDir, NewestValidIsChosen) {
  const TempDir dir("newest");
  const auto paths = save_three(dir);
  const ResumePoint r = find_resume_checkpoint(dir.string());
  EXPECT_EQ(r.path, paths[2]);
  EXPECT_EQ(r.step, 300);
  EXPECT_TRUE(r.warnings.empty()) << joined(r.warnings);
}

TEST(CheckpointDir, LeftoverTmpIsIgnoredAndRemovedByTheNextSave) {
  const TempDir dir("tmp");
  const auto paths = save_three(dir);
  // A crash in the middle of writing step 400.
  const std::string tmp = checkpoint_dir(dir.string()) + "/step-0000400.h5.tmp";
  std::ofstream(tmp) << "half of an HDF5 file";
  const ResumePoint r = find_resume_checkpoint(dir.string());
  EXPECT_EQ(r.path, paths[2]);
  EXPECT_TRUE(r.warnings.empty()) << joined(r.warnings);
  save(dir, random_run(tiny_model(7), 310, 9));
  EXPECT_FALSE(fs::exists(tmp));
}

TEST(CheckpointDir, TruncatedNewestFallsBackWithWarning) {
  const TempDir dir("truncated");
  const auto paths = save_three(dir);
  fs::resize_file(paths[2], file_size(paths[2]) / 2);
  const ResumePoint r = find_resume_checkpoint(dir.string());
  EXPECT_EQ(r.path, paths[1]);
  EXPECT_EQ(r.step, 200);
  EXPECT_TRUE(any_contains(r.warnings, "skipping checkpoint " + paths[2] + ": ") &&
              any_contains(r.warnings, "truncated file"))
      << joined(r.warnings);
  // `latest` names the broken file: reported too.
  EXPECT_TRUE(any_contains(r.warnings, "checkpoints/latest names step-0000300.h5"))
      << joined(r.warnings);
}

TEST(CheckpointDir, FlippedDataByteFallsBackWithWarning) {
  const TempDir dir("flipped");
  const auto paths = save_three(dir);
  flip_bit(paths[2], dataset_offset(paths[2], "params/blocks.1.ffn.key.weight") + 100);
  const ResumePoint r = find_resume_checkpoint(dir.string());
  EXPECT_EQ(r.path, paths[1]);
  EXPECT_TRUE(any_contains(r.warnings, "skipping checkpoint " + paths[2] + ": checksum mismatch"))
      << joined(r.warnings);
}

TEST(CheckpointDir, LatestNamingMissingFileFallsBack) {
  const TempDir dir("latest_missing");
  const auto paths = save_three(dir);
  write_file_durably(checkpoint_dir(dir.string()) + "/latest", "step-0000900.h5\n");
  const ResumePoint r = find_resume_checkpoint(dir.string());
  EXPECT_EQ(r.path, paths[2]);
  EXPECT_TRUE(
      any_contains(r.warnings, "step-0000900.h5 (named by checkpoints/latest) does not exist"))
      << joined(r.warnings);
}

TEST(CheckpointDir, LatestIsNotTrustedBlindly) {
  // Crash between the rename of step 300 and the update of `latest`: 300 is complete.
  const TempDir dir("latest_old");
  const auto paths = save_three(dir);
  write_file_durably(checkpoint_dir(dir.string()) + "/latest", "step-0000200.h5\n");
  const ResumePoint r = find_resume_checkpoint(dir.string());
  EXPECT_EQ(r.path, paths[2]);
  EXPECT_TRUE(any_contains(r.warnings, "checkpoints/latest names step-0000200.h5"))
      << joined(r.warnings);
}

TEST(CheckpointDir, NoUsableCheckpointIsAnError) {
  const TempDir dir("none_usable");
  const auto paths = save_three(dir);
  for (const std::string& p : paths) fs::resize_file(p, 100);
  try {
    find_resume_checkpoint(dir.string());
    FAIL() << "no error";
  } catch (const rwkv::Error& e) {
    const std::string msg = e.what();
    EXPECT_TRUE(contains(msg, "no usable checkpoint in " + checkpoint_dir(dir.string()))) << msg;
    for (const std::string& p : paths)
      EXPECT_TRUE(contains(msg, "skipping checkpoint " + p)) << msg;
  }
}

TEST(CheckpointDir, PruneKeepsLastAndEvery) {
  const TempDir dir("prune");
  const TinyRun r = random_run(tiny_model(4), 0, 3);
  for (int64_t step = 100; step <= 1000; step += 100) {
    TinyRun s = r;
    s.state.step = step;
    save(dir, s);
    prune_checkpoints(dir.string(), 3, 400, step);
  }
  EXPECT_EQ(steps_on_disk(dir), (std::vector<int64_t>{400, 800, 900, 1000}));

  // keep_every 0: only the newest; the one just saved survives even when older.
  const auto removed = prune_checkpoints(dir.string(), 1, 0, 400);
  EXPECT_EQ(steps_on_disk(dir), (std::vector<int64_t>{400, 1000}));
  EXPECT_EQ(removed.size(), 2u);
  EXPECT_THROW(prune_checkpoints(dir.string(), 0, 0, 400), rwkv::Error);
}

TEST(CheckpointDir, ShouldSave) {
  EXPECT_TRUE(should_save(1000, 0, 10, 500, 0));
  EXPECT_FALSE(should_save(1001, 0, 10, 500, 0));
  EXPECT_FALSE(should_save(1000, 0, 10, 0, 0));       // both off
  EXPECT_TRUE(should_save(7, 100, 100 + 120, 0, 2));  // two minutes passed
  EXPECT_FALSE(should_save(7, 100, 100 + 119.5, 0, 2));
  EXPECT_TRUE(should_save(7, 100, 100 + 119.5, 7, 2));
}
