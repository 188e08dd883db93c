// rwkv train: the training loop (trainer/train_loop.h, docs/training.md).
#include <iostream>

#include "cli/command.h"
#include "common/config.h"
#include "trainer/train_loop.h"

namespace rwkv::cli {

namespace {

// Exit status of a run stopped by SIGTERM / SIGUSR1 / train.max_runtime after writing
// its checkpoint: run it again to continue (docs/training.md).
constexpr int kExitPreempted = 3;

}  // namespace

int run_train(const std::vector<std::string>& args) {
  const std::string prog = "rwkv train";
  po::options_description opts("options");
  opts.add_options()
      ("config", po::value<std::string>()->default_value(""),
       "run config (YAML); omitted: the embedded default (configs/default.yaml)")
      ("set", po::value<std::vector<std::string>>()->composing(),
       "override one key, e.g. --set train.steps=200 (repeatable)")
      ("resume", po::value<std::string>()->default_value("auto"),
       "auto: continue from the newest usable checkpoint of log.run_dir when there is one; "
       "never: start from scratch (checkpoints of the same steps are replaced)")
      ("init-from", po::value<std::string>()->default_value(""),
       "start a new run from this checkpoint's weights (fine-tuning); same as "
       "--set checkpoint.init_from=CKPT");
  po::positional_options_description pos;
  pos.add("config", 1);
  po::variables_map vm;
  const std::string usage =
      "[CONFIG] [--set section.key=value ...] [--resume auto|never] [--init-from CKPT]\n\n"
      "Trains on the dataset of data.path; run under mpirun for data-parallel ranks.\n"
      "Exit status: 0 training complete, 1 error, 2 usage error, 3 stopped by SIGTERM,\n"
      "SIGUSR1 or train.max_runtime after writing a checkpoint (run again to continue).";
  if (auto rc = parse_args(prog, usage, args, opts, pos, vm)) return *rc;
  const std::string resume = vm["resume"].as<std::string>();
  if (resume != "auto" && resume != "never")
    return usage_error(prog, "--resume must be auto or never");
  ConfigRequest req{vm["config"].as<std::string>(), {}};
  if (vm.count("set")) req.sets = vm["set"].as<std::vector<std::string>>();
  if (const auto& init = vm["init-from"].as<std::string>(); !init.empty())
    req.sets.push_back("checkpoint.init_from=" + init);
  return run_with_mpi(prog, [&](int, int) {
    trainer::TrainOptions o;
    o.cfg = load_config_collective(MPI_COMM_WORLD, req);
    o.resume = resume == "auto";
    o.program_version = std::string("rwkv ") + RWKV_VERSION;
    const trainer::TrainResult r = trainer::train(o, MPI_COMM_WORLD, std::cout);
    return r.outcome == trainer::TrainOutcome::preempted ? kExitPreempted : kExitOk;
  });
}

}  // namespace rwkv::cli
