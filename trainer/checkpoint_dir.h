#pragma once
// The checkpoints directory of a run, RUN_DIR/checkpoints/: file names, durable
// writes, discovery for resuming, pruning and when to save. The HDF5 files
// themselves: checkpoint.h.
//
//   step-0000100.h5       a complete checkpoint (only ever created by rename)
//   step-0000200.h5.tmp   a save in progress, or left by a crash: ignored, removed
//                         by the next save
//   latest                "step-0000200.h5\n": the last file saved; a hint for
//                         people and tools, checked but not trusted by discovery
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace rwkv::trainer {

std::string checkpoint_dir(const std::string& run_dir);  // RUN_DIR/checkpoints
std::string checkpoint_file_name(int64_t step);          // "step-0000100.h5"
// The step of a complete checkpoint's file name; nullopt for any other name.
std::optional<int64_t> parse_checkpoint_file_name(const std::string& name);

struct CheckpointFile {
  int64_t step = 0;
  std::string path;
};
// The complete checkpoints (by name) of a run, oldest step first; empty when the
// directory does not exist.
std::vector<CheckpointFile> list_checkpoints(const std::string& run_dir);

// Durability on POSIX file systems: data reaches the disk with fsync of the file,
// and a rename with fsync of its directory. Both throw rwkv::Error naming the path.
void fsync_file(const std::string& path);
void fsync_dir(const std::string& dir);
// Writes `text` to path.tmp, fsyncs it, renames it to `path`, fsyncs the directory.
void write_file_durably(const std::string& path, const std::string& text);
// Removes every *.tmp file in `dir` (what crashed saves left). Returns their paths.
std::vector<std::string> remove_temp_files(const std::string& dir);

// The file name `latest` holds; "" when it is missing or empty.
std::string read_latest(const std::string& run_dir);

struct ResumePoint {
  std::string path;  // "" when the run has no checkpoint yet (a fresh start)
  int64_t step = -1;
  std::vector<std::string> warnings;  // skipped files and why; print them on rank 0
};

// The newest complete checkpoint by step number that opens and passes its checksum
// (verify_checkpoint); newer ones that fail are skipped with a warning naming them,
// and a `latest` that names a missing or other file is reported. Throws rwkv::Error,
// listing every file and its problem, when checkpoints exist but none is usable:
// silently starting over would be worse.
ResumePoint find_resume_checkpoint(const std::string& run_dir);

// After a successful save: keeps the `keep_last` (>= 1) newest checkpoints, those
// whose step is a multiple of `keep_every` (when > 0) and always `just_saved_step`;
// removes the others. Returns the removed paths.
std::vector<std::string> prune_checkpoints(const std::string& run_dir, int64_t keep_last,
                                           int64_t keep_every, int64_t just_saved_step);

// The save policy of checkpoint.save_every_steps / save_every_minutes (0 = off for
// either): true when `step` is a multiple of every_steps, or every_minutes have passed
// since the last save. Times in seconds on one clock. With several ranks, decide on
// rank 0 and broadcast: clocks differ between ranks.
bool should_save(int64_t step, double last_save_time, double now, int64_t every_steps,
                 double every_minutes);

}  // namespace rwkv::trainer
