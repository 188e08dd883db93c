#pragma once
// Small MPI helpers shared by every subcommand: session setup, agreement on a
// verdict, string broadcast. An error seen on any rank must reach every rank, so
// that all of them exit together instead of leaving some blocked in a collective.
#include <mpi.h>

#include <string>

#include "common/mpi_check.h"

namespace rwkv {

// RAII MPI_Init_thread/MPI_Finalize. Sets MPI_ERRORS_RETURN on MPI_COMM_WORLD.
struct MpiSession {
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  int rank = 0;
  int size = 1;
};

int comm_rank(MPI_Comm comm);
int comm_size(MPI_Comm comm);

// Broadcasts `s` from `root` (length first, then bytes); returns it on every rank.
std::string broadcast_string(MPI_Comm comm, const std::string& s, int root = 0);

// Runs `fn` on the root rank only and broadcasts its outcome: on success every
// rank receives the string `fn` returned; if `fn` threw rwkv::Error (or a subtype
// E), every rank throws E with the same message. No rank is left waiting.
template <typename E, typename Fn>
std::string root_then_broadcast(MPI_Comm comm, Fn&& fn, int root = 0) {
  int ok = 1;
  std::string payload;
  if (comm_rank(comm) == root) {
    try {
      payload = fn();
    } catch (const std::exception& e) {
      ok = 0;
      payload = e.what();
    }
  }
  MPI_CHECK(MPI_Bcast(&ok, 1, MPI_INT, root, comm));
  payload = broadcast_string(comm, payload, root);
  if (!ok) throw E(payload);
  return payload;
}

}  // namespace rwkv
