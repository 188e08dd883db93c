#include "common/mpi_util.h"

#include <cstdint>
#include <string>

namespace rwkv {

void throw_mpi_error(int code, const char* call, const char* file, int line) {
  char text[MPI_MAX_ERROR_STRING] = {0};
  int len = 0;
  MPI_Error_string(code, text, &len);
  throw Error(std::string(file) + ":" + std::to_string(line) + ": " + call +
              " failed: " + std::string(text, static_cast<size_t>(len)));
}

MpiSession::MpiSession(int* argc, char*** argv) {
  int provided = 0;
  // FUNNELED: only the main thread calls MPI; worker threads (BLAS, I/O) do not.
  MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
  MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  rank = comm_rank(MPI_COMM_WORLD);
  size = comm_size(MPI_COMM_WORLD);
}

MpiSession::~MpiSession() { MPI_Finalize(); }

int comm_rank(MPI_Comm comm) {
  int r = 0;
  MPI_CHECK(MPI_Comm_rank(comm, &r));
  return r;
}

int comm_size(MPI_Comm comm) {
  int s = 0;
  MPI_CHECK(MPI_Comm_size(comm, &s));
  return s;
}

std::string broadcast_string(MPI_Comm comm, const std::string& s, int root) {
  uint64_t n = s.size();
  MPI_CHECK(MPI_Bcast(&n, 1, MPI_UINT64_T, root, comm));
  std::string out = comm_rank(comm) == root ? s : std::string(n, '\0');
  // MPI counts are int: send in pieces so multi-GB strings also work.
  const uint64_t piece = 1u << 30;
  for (uint64_t off = 0; off < n; off += piece) {
    const int len = static_cast<int>(std::min<uint64_t>(piece, n - off));
    MPI_CHECK(MPI_Bcast(out.data() + off, len, MPI_CHAR, root, comm));
  }
  return out;
}

}  // namespace rwkv
