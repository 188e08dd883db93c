#pragma once
// H5_CHECK(call): the call's value when it is not negative; otherwise throws
// rwkv::Error naming the call, the source file and the line, with HDF5's own
// explanation taken from its error stack (e.g. "truncated file: eof = 4096, ...").
// h5_silence_errors() stops HDF5 from printing that stack to stderr itself; call it
// once before the first HDF5 call. libhdf5 is not thread-safe: keep the calls on one
// thread.
#include <hdf5.h>

#include <string>
#include <type_traits>

namespace rwkv::trainer {

void h5_silence_errors();

// The current HDF5 error stack summarised in one line (innermost cause last), then
// cleared. "" when the stack is empty.
std::string h5_error_summary();

[[noreturn]] void throw_h5_error(const char* call, const char* file, int line);

template <typename T>
T h5_check_result(T rc, const char* call, const char* file, int line) {
  static_assert(std::is_signed_v<T>, "H5_CHECK: for calls that fail with a negative value");
  if (rc < 0) throw_h5_error(call, file, line);
  return rc;
}

}  // namespace rwkv::trainer

#define H5_CHECK(call) ::rwkv::trainer::h5_check_result((call), #call, __FILE__, __LINE__)
