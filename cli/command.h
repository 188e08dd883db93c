#pragma once
// The `rwkv` subcommands and the option parsing they share (Boost.Program_options).
// Exit codes: 0 success, 1 error at run time (bad config, bad data), 2 usage error.
#include <boost/program_options.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace rwkv::cli {

namespace po = boost::program_options;

constexpr int kExitOk = 0;
constexpr int kExitError = 1;
constexpr int kExitUsage = 2;

struct Command {
  std::string name;
  std::string summary;
  int (*run)(const std::vector<std::string>& args);  // args after the command name
};

// Every subcommand, in `rwkv --help` order.
const std::vector<Command>& commands();

// Parses `args` for command `prog` ("rwkv config show"). Returns an exit code when
// the command must stop now: 0 after --help (usage printed), 2 after a usage error
// (one line on stderr). Otherwise fills `vm` and returns nullopt.
std::optional<int> parse_args(const std::string& prog, const std::string& usage,
                              const std::vector<std::string>& args,
                              const po::options_description& options,
                              const po::positional_options_description& positional,
                              po::variables_map& vm);

// One-line usage error on stderr; returns kExitUsage.
int usage_error(const std::string& prog, const std::string& msg);

// Runs `body` inside an MPI session. An rwkv::ConfigError (all ranks agree on it)
// is printed once, by rank 0, and every rank exits with 1. Any other exception is
// printed with its rank and the job is aborted with MPI_Abort, so that no rank is
// left waiting in a collective.
int run_with_mpi(const std::string& prog, const std::function<int(int rank, int size)>& body);

int run_config(const std::vector<std::string>& args);
int run_preprocess(const std::vector<std::string>& args);
int run_train(const std::vector<std::string>& args);

}  // namespace rwkv::cli
