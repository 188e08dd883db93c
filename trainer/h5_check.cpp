#include "trainer/h5_check.h"

#include <vector>

#include "common/error.h"

namespace rwkv::trainer {

void h5_silence_errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

std::string h5_error_summary() {
  std::vector<std::string> descs;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_DOWNWARD,
      [](unsigned, const H5E_error2_t* e, void* out) -> herr_t {
        auto& v = *static_cast<std::vector<std::string>*>(out);
        const std::string d = e->desc ? e->desc : "";
        // Each layer of the library repeats "unable to open file" and the like: keep
        // every distinct description once, outermost first.
        bool seen = d.empty();
        for (const std::string& s : v) seen = seen || s == d;
        if (!seen) v.push_back(d);
        return 0;
      },
      &descs);
  H5Eclear2(H5E_DEFAULT);
  std::string out;
  for (const std::string& d : descs) {
    if (!out.empty()) out += ": ";
    out += d;
  }
  return out;
}

void throw_h5_error(const char* call, const char* file, int line) {
  std::string msg = "HDF5 call ";
  msg += call;
  msg += " failed (" + std::string(file) + ":" + std::to_string(line) + ")";
  const std::string why = h5_error_summary();
  if (!why.empty()) msg += ": " + why;
  throw Error(msg);
}

}  // namespace rwkv::trainer
