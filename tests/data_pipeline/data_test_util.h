#pragma once
// Helpers shared by the data pipeline tests: scratch directories, files, and
// running the rwkv executable (optionally under mpiexec) with its output.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace rwkv::data::test {

// A fresh, empty directory under the build tree, removed by nothing: tests
// leave their data for inspection after a failure.
inline std::string scratch_dir(const std::string& name) {
  const std::string dir = std::string(RWKV_BINARY_DIR) + "/test_scratch/" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline void write_file(const std::string& path, const std::string& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct RunResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs `rwkv <args>` through the shell (args are shell words), on `np` ranks
// under mpiexec when np > 0.
inline RunResult run_rwkv(const std::string& args, int np = 0) {
  // The environment of the project's MPI tests (cmake/RwkvTesting.cmake), set
  // here too so that the test binaries also work when run by hand.
  std::string cmd =
      "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
      "OMPI_MCA_btl_vader_single_copy_mechanism=none ";
  if (np > 0) cmd += std::string(RWKV_MPIEXEC) + " -n " + std::to_string(np) + " --oversubscribe ";
  cmd += std::string(RWKV_BINARY_DIR) + "/cli/rwkv " + args + " 2>&1";
  RunResult r;
  std::FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) r.output.append(buf, n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace rwkv::data::test
