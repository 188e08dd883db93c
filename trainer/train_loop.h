#pragma once
// The training loop of `rwkv train` (docs/training.md), on the CPU or a GPU (train_device.h), data
// parallel over the ranks of a communicator:
//   per step: grad_accum micro-batches (forward + backward, gradients summed) ->
//   gradients averaged over ranks (data_parallel.h) -> global gradient norm ->
//   skip the update if the loss or the norm is not finite, else clip and AdamW with
//   the scheduled learning rate (schedule.h) -> log, evaluate, checkpoint, and stop
//   early on SIGTERM / SIGUSR1 / train.max_runtime (preemption.h).
// Every rank runs the same loop on its slice of each global batch and holds
// bitwise-identical parameters; rank 0 alone logs and writes checkpoints.
#include <mpi.h>

#include <cstdint>
#include <functional>
#include <ostream>
#include <span>
#include <string>

#include "common/config.h"

namespace rwkv::trainer {

struct TrainOptions {
  Config cfg;                   // resolved and validated (load_config_collective)
  bool resume = true;           // continue from the run directory's newest checkpoint
  std::string program_version;  // stored in checkpoints, e.g. "rwkv 0.1.0"
  // Called on every rank after the gradients are averaged and before the norm is
  // taken, with the step about to complete and the gradient buffer; tests inject
  // faults (a NaN) through it.
  std::function<void(int64_t step, std::span<float> grads)> grad_hook;
};

enum class TrainOutcome {
  finished,   // train.steps reached, final checkpoint written
  preempted,  // a stop signal or train.max_runtime: checkpoint written, resume later
};

struct TrainResult {
  TrainOutcome outcome = TrainOutcome::finished;
  int64_t step = 0;
  std::string checkpoint;  // the last checkpoint written ("" when none)
  int signal = 0;          // the stop signal, when preempted by one
};

// Runs the loop. Rank 0 writes progress to `out`. Errors that every rank sees
// (a config or checkpoint that does not fit, K consecutive non-finite steps) are
// thrown as ConfigError on every rank together.
TrainResult train(const TrainOptions& opts, MPI_Comm comm, std::ostream& out);

}  // namespace rwkv::trainer
