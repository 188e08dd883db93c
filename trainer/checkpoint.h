#pragma once
// Training checkpoints: one HDF5 file per saved step, RUN_DIR/checkpoints/step-NNNNNNN.h5,
// holding everything a resumed run needs to continue as if it had never stopped:
//   /params/<official name>   float32, official shape: fp32 master weights
//   /adam_m/<official name>   float32, official shape: AdamW first moment
//   /adam_v/<official name>   float32, official shape: AdamW second moment
//   /state/...                step, tokens, optimizer step, RNG states, loader position,
//                             resolved config YAML, program version, creation time
//   root attributes           format_version, the model's shape, sha256 of every dataset
// Layout, checksum definition and an h5py snippet: docs/checkpoints.md.
//
// Writing: one tensor-parallel group writes a checkpoint (data-parallel replicas hold
// identical copies; the other replicas wait at a barrier the trainer places). Every
// dataset holds the whole tensor in its official shape whatever the TP degree: each TP
// rank writes its slab (model/param_table.h) with parallel HDF5, so a file does not
// depend on the TP degree that wrote it, and loads at any other. The file is written
// as step-N.h5.tmp, flushed, fsynced and renamed, then the `latest` pointer is updated
// the same way (checkpoint_dir.h): a crash leaves the previous checkpoints or the new
// one, never a half-written step-N.h5.
//
// Every function makes its HDF5 calls on the calling thread (libhdf5 is not
// thread-safe) and throws rwkv::Error whose message starts with "checkpoint <path>:".
#include <mpi.h>

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "data_pipeline/loader.h"
#include "model/model_config.h"
#include "model/param_table.h"

namespace rwkv::trainer {

inline constexpr int64_t kCheckpointFormatVersion = 1;

// Everything besides the tensors that a resumed run needs.
struct TrainerState {
  int64_t step = 0;             // training steps completed; names the file
  uint64_t tokens_seen = 0;     // tokens trained on, all ranks together
  int64_t optimizer_step = 0;   // AdamW's t (bias correction); lags `step` by skipped steps
  int64_t nonfinite_skips = 0;  // consecutive steps skipped for a non-finite loss/gradient
  // RNG states by name, as opaque bytes: the trainer decides what they hold. A name is
  // one HDF5 link name: not empty, no '/', not ".".
  std::map<std::string, std::vector<uint8_t>> rng;
  data::LoaderState loader;
  std::string config_yaml;      // Config::to_yaml() of the run
  std::string program_version;  // e.g. "rwkv 0.1.0"
  bool operator==(const TrainerState&) const = default;
};

// Host copies of the flat buffers (model/param_table.h), [table.total] floats each:
// at tp > 1 the rank's slabs, laid out by its table.
struct CheckpointTensors {
  std::span<const float> params;  // fp32 master weights
  std::span<const float> adam_m;  // AdamW first moment
  std::span<const float> adam_v;  // AdamW second moment
};

// Writes RUN_DIR/checkpoints/step-NNNNNNN.h5 (NNNNNNN = state.step, at least 7 digits)
// atomically, updates checkpoints/latest and removes leftover *.tmp files of crashed
// saves. Returns the path written. An existing file for the same step is replaced only
// once the new one is complete. Pruning is separate (prune_checkpoints).
//
// Collective over tp_comm, one TP group: rank r of tp_comm is TP rank r and passes the
// table of TP rank r (build_param_table(cfg, {r, size})) and its slabs. Replicated
// tensors, the state and the model come from TP rank 0 (the others must hold the same
// names and shapes; their values are not written). With MPI_COMM_SELF (tp = 1) no MPI
// call is made, so a program without MPI_Init may save. An error on any rank (bad
// inputs, tables that do not fit together, I/O) makes every rank throw the same
// rwkv::Error, naming the TP rank that failed; none is left waiting. Returns the path
// on every rank.
std::string save_checkpoint(const std::string& run_dir, const model::ModelConfig& model,
                            const model::ParamTable& table, const CheckpointTensors& tensors,
                            const TrainerState& state, MPI_Comm tp_comm = MPI_COMM_SELF);

struct LoadedCheckpoint {
  std::vector<float> params, adam_m, adam_v;  // [table.total] each
  TrainerState state;
  std::string created;  // UTC time of writing, ISO 8601 ("2026-11-27T13:05:09Z")
};

// Reads a checkpoint for resuming, written at any TP degree; with the table of a TP
// rank, only that rank's slabs are read ([table.total] floats each; each rank of the
// group calls it independently, no MPI). Before any tensor is read, checks the format
// version, the model's shape attributes against `model` and every tensor's name and
// official shape against `table` (missing, extra, other shape: one line each, naming the
// tensor and both shapes). With verify_checksum, the SHA-256 of all datasets is
// checked too; find_resume_checkpoint has already done that for the file it returns,
// so the trainer may pass false there and read the file once.
LoadedCheckpoint load_checkpoint(const std::string& path, const model::ModelConfig& model,
                                 const model::ParamTable& table, bool verify_checksum = true);

// Only the weights (/params), for starting a new run from a checkpoint (fine-tuning,
// checkpoint.init_from); the same name and shape checks, and the rank's slabs for a
// TP rank's table. [table.total] floats.
std::vector<float> load_weights(const std::string& path, const model::ParamTable& table,
                                bool verify_checksum = true);

// Opens the file and checks its format version and SHA-256; throws rwkv::Error
// naming the file and the problem (cannot open, truncated, checksum mismatch).
void verify_checkpoint(const std::string& path);

}  // namespace rwkv::trainer
