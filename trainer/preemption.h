#pragma once
// Graceful stops. Slurm sends SIGTERM (or the signal of `--signal`, commonly
// SIGUSR1) before a time limit or a preemption; the trainer then finishes the
// current step, every rank agrees to stop, a checkpoint is written and the
// process exits with kExitPreempted (docs/training.md). train.max_runtime does the
// same at a wall-clock limit.
#include <mpi.h>

namespace rwkv::trainer {

// Installs handlers for SIGTERM and SIGUSR1 that only record the signal, and forgets
// any signal recorded before (a new run starts).
void install_stop_handlers();

struct StopRequest {
  int signal = 0;        // a stop signal some rank received (the largest number), or 0
  bool runtime = false;  // some rank's clock passed train.max_runtime
  bool stop() const { return signal != 0 || runtime; }
};

// Collective: what the ranks have seen, the same on every rank (one all-reduce).
StopRequest agree_stop(bool runtime_exceeded, MPI_Comm comm);

}  // namespace rwkv::trainer
