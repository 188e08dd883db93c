#pragma once
// MPI_CHECK(call): throws rwkv::Error naming the call, the file and the line when an
// MPI call fails. MPI_COMM_WORLD gets MPI_ERRORS_RETURN in MpiSession so that
// failures come back here instead of aborting inside the library.
#include <mpi.h>

#include <string>

#include "common/error.h"

namespace rwkv {

[[noreturn]] void throw_mpi_error(int code, const char* call, const char* file, int line);

}  // namespace rwkv

#define MPI_CHECK(call)                                                  \
  do {                                                                   \
    int rwkv_mpi_rc_ = (call);                                           \
    if (rwkv_mpi_rc_ != MPI_SUCCESS)                                     \
      ::rwkv::throw_mpi_error(rwkv_mpi_rc_, #call, __FILE__, __LINE__);  \
  } while (0)
