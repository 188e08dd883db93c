#include "cli/command.h"

#include <iostream>

#include "common/error.h"
#include "common/mpi_util.h"

namespace rwkv::cli {

int usage_error(const std::string& prog, const std::string& msg) {
  std::cerr << prog << ": " << msg << " (see '" << prog << " --help')\n";
  return kExitUsage;
}

std::optional<int> parse_args(const std::string& prog, const std::string& usage,
                              const std::vector<std::string>& args,
                              const po::options_description& options,
                              const po::positional_options_description& positional,
                              po::variables_map& vm) {
  po::options_description all(options);
  all.add_options()("help,h", "print this help and exit");
  try {
    po::store(po::command_line_parser(args).options(all).positional(positional).run(), vm);
    if (vm.count("help")) {
      std::cout << "usage: " << prog << " " << usage << "\n\n" << all << "\n";
      return kExitOk;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    return usage_error(prog, e.what());
  }
  return std::nullopt;
}

int run_with_mpi(const std::string& prog, const std::function<int(int rank, int size)>& body) {
  MpiSession mpi(nullptr, nullptr);
  try {
    return body(mpi.rank, mpi.size);
  } catch (const ConfigError& e) {
    if (mpi.rank == 0) std::cerr << prog << ": " << e.what() << "\n";
    return kExitError;
  } catch (const std::exception& e) {
    std::cerr << prog << ": error";
    if (mpi.size > 1) std::cerr << " on rank " << mpi.rank;
    std::cerr << ": " << e.what() << "\n";
    if (mpi.size > 1) MPI_Abort(MPI_COMM_WORLD, kExitError);
    return kExitError;
  }
}

}  // namespace rwkv::cli
