#include "trainer/preemption.h"

#include <csignal>

#include "common/mpi_check.h"

namespace rwkv::trainer {

namespace {

volatile std::sig_atomic_t g_stop_signal = 0;

void record_stop_signal(int sig) { g_stop_signal = sig; }

}  // namespace

void install_stop_handlers() {
  g_stop_signal = 0;
  struct sigaction sa = {};
  sa.sa_handler = record_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // blocking reads and MPI progress resume after the handler
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGUSR1, &sa, nullptr);
}

StopRequest agree_stop(bool runtime_exceeded, MPI_Comm comm) {
  int v[2] = {static_cast<int>(g_stop_signal), runtime_exceeded ? 1 : 0};
  MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_INT, MPI_MAX, comm));
  return {v[0], v[1] != 0};
}

}  // namespace rwkv::trainer
