// rwkv: one executable, one subcommand per job (git style).
#include <iostream>
#include <string>
#include <vector>

#include "cli/command.h"
#include "common/edit_distance.h"

namespace rwkv::cli {

const std::vector<Command>& commands() {
  static const std::vector<Command> list = {
      {"config", "show, list and check run configs", run_config},
      {"preprocess", "tokenize corpora into HDF5 shards for training", run_preprocess},
      {"train", "train a model, data parallel over MPI ranks", run_train},
  };
  return list;
}

namespace {

void print_help() {
  std::cout << "usage: rwkv [--help] [--version] <command> [<args>]\n\n"
               "Train RWKV-4/5/6/7 language models on CPUs and GPUs.\n\ncommands:\n";
  for (const auto& c : commands()) {
    std::cout << "  " << c.name << std::string(12 - c.name.size(), ' ') << c.summary << "\n";
  }
  std::cout << "\n'rwkv <command> --help' describes a command.\n";
}

}  // namespace
}  // namespace rwkv::cli

int main(int argc, char** argv) {
  using namespace rwkv::cli;
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    print_help();
    return args.empty() ? kExitUsage : kExitOk;
  }
  if (args[0] == "--version") {
    std::cout << "rwkv " << RWKV_VERSION << "\n";
    return kExitOk;
  }
  if (args[0].starts_with("-")) return usage_error("rwkv", "unknown option '" + args[0] + "'");
  std::vector<std::string> names;
  for (const auto& c : commands()) {
    if (c.name == args[0]) return c.run({args.begin() + 1, args.end()});
    names.push_back(c.name);
  }
  const std::string guess = rwkv::closest_match(args[0], names);
  return usage_error("rwkv", "unknown command '" + args[0] + "'" +
                                 (guess.empty() ? "" : " (did you mean '" + guess + "'?)"));
}
