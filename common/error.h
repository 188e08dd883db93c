#pragma once
// Errors the user can act on. Their message is printed as is and names the file,
// key, line or tensor at fault.
#include <stdexcept>
#include <string>

namespace rwkv {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A config that fails validation; the message holds one line per problem, each
// naming the key path (e.g. "model.n_embd").
struct ConfigError : Error {
  using Error::Error;
};

}  // namespace rwkv
