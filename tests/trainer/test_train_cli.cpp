// `rwkv train` as a process, the way a cluster runs it: a dataset made with
// `rwkv preprocess --tokenizer bytes`, then
//   - SIGKILL at two points (wherever the run is: mid-step or mid-checkpoint) and
//     resume each time: the same losses and bitwise-identical final parameters as an
//     uninterrupted run; with 2 ranks under mpirun, SIGKILL of one rank, then resume;
//   - SIGTERM and SIGUSR1: exit status 3 after writing a checkpoint of the step
//     reached; resuming continues exactly.
// The kills wait for a logged step, not for a time: when they land only decides
// where the run resumes, and the result must be the same wherever that is.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/config.h"
#include "model/model_config.h"
#include "model/param_table.h"
#include "trainer/checkpoint.h"
#include "trainer/checkpoint_dir.h"

extern char** environ;

namespace rwkv::trainer {
namespace {

namespace fs = std::filesystem;
const std::string kRwkv = RWKV_BINARY_DIR "/cli/rwkv";

// Starts args[0] (searched in PATH), stdout to /dev/null.
pid_t spawn(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error("cannot start " + args[0]);
  return pid;
}

// The `rwkv` processes among the children of `pid` (the ranks mpirun started).
std::vector<pid_t> rank_pids(pid_t pid) {
  std::vector<pid_t> out;
  const std::string p = "/proc/" + std::to_string(pid);
  std::ifstream children(p + "/task/" + std::to_string(pid) + "/children");
  for (pid_t c; children >> c;) {
    std::ifstream cmd("/proc/" + std::to_string(c) + "/cmdline");
    std::string argv0;
    std::getline(cmd, argv0, '\0');
    if (argv0.ends_with("/rwkv")) out.push_back(c);
  }
  return out;
}

// The exit status, or 128 + the signal that ended the process.
int wait_for(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// The step of the last "train" record of metrics.jsonl (0 when none yet).
int64_t last_step(const fs::path& run_dir) {
  std::ifstream f(run_dir / "metrics.jsonl");
  int64_t step = 0;
  const std::string key = "{\"kind\":\"train\",\"step\":";
  for (std::string line; std::getline(f, line);)
    if (line.starts_with(key) && line.back() == '}') step = std::stoll(line.substr(key.size()));
  return step;
}

// Waits until the run logs `step`; false if the process ends first (it is reaped).
bool wait_for_step(const fs::path& run_dir, int64_t step, pid_t pid) {
  while (last_step(run_dir) < step) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

std::map<int64_t, double> losses(const fs::path& run_dir) {
  std::ifstream f(run_dir / "metrics.jsonl");
  std::map<int64_t, double> out;  // last record of each step wins
  const std::string key = "{\"kind\":\"train\",\"step\":";
  for (std::string line; std::getline(f, line);) {
    if (!line.starts_with(key)) continue;
    const int64_t step = std::stoll(line.substr(key.size()));
    out[step] = std::stod(line.substr(line.find("\"loss\":") + 7));
  }
  return out;
}

// A corpus, preprocessed, and a run config; `run_dir` is set per run by --set.
struct Fixture {
  fs::path dir = fs::temp_directory_path() / ("rwkv_train_cli_" + std::to_string(getpid()));
  fs::path config = dir / "run.yaml";

  Fixture() {
    fs::remove_all(dir);
    fs::create_directories(dir);
    {
      std::ofstream c(dir / "corpus.txt");
      const char* words[] = {"alpha", "beta", "gamma", "delta", "Straße", "дом", "猫", "casa"};
      uint64_t s = 7;
      for (int d = 0; d < 200; ++d) {
        for (int w = 0; w < 30; ++w) {
          s = s * 6364136223846793005ull + 1442695040888963407ull;
          c << words[(s >> 33) % 8] << (w % 10 == 9 ? ".\n" : " ");
        }
        c << "\n%\n";
      }
    }
    EXPECT_EQ(wait_for(spawn({kRwkv, "preprocess", (dir / "corpus.txt").string(), "-o",
                              (dir / "data").string(), "--tokenizer", "bytes", "--doc-delimiter",
                              "\\n%\\n", "--val-fraction", "0.1"})),
              0);
    std::ofstream(config) << "model: {preset: tiny, ctx_len: 32}\n"
                          << "data: {path: " << (dir / "data").string() << "}\n"
                          << "train: {micro_batch_size: 2, steps: 120, eval_every: 0, threads: 1}\n"
                          << "optimizer: {lr_init: 3e-3, lr_final: 1e-3, warmup_steps: 5}\n"
                          << "checkpoint: {save_every_steps: 7, keep_last: 2}\n";
  }
  ~Fixture() { fs::remove_all(dir); }  // at exit
};

const Fixture& fixture() {
  static const Fixture f;
  return f;
}

std::vector<std::string> train_cmd(const fs::path& run_dir, int ranks = 0) {
  std::vector<std::string> cmd;
  if (ranks > 0) cmd = {"mpirun", "-q", "--oversubscribe", "-np", std::to_string(ranks)};
  for (const auto& a :
       {kRwkv, std::string("train"), fixture().config.string(), std::string("--set"),
        "log.run_dir=" + run_dir.string(), std::string("--set"),
        "train.micro_batch_size=" + std::to_string(ranks > 0 ? 2 / ranks : 2)})
    cmd.push_back(a);
  return cmd;
}

std::vector<float> final_params(const fs::path& run_dir) {
  const Config cfg = load_config({fixture().config.string(), {}});
  const model::ModelConfig mc = model::model_config_from(cfg);
  const auto ck = list_checkpoints(run_dir.string());
  if (ck.empty() || ck.back().step != 120)  // gtest reports the exception as a failure
    throw std::runtime_error(run_dir.string() + ": no checkpoint of the final step 120");
  return load_checkpoint(ck.back().path, mc, model::build_param_table(mc)).params;
}

const std::vector<float>& reference_params() {
  static const std::vector<float> p = [] {
    const fs::path rd = fixture().dir / "reference";
    EXPECT_EQ(wait_for(spawn(train_cmd(rd))), 0);
    return final_params(rd);
  }();
  return p;
}

// Two ranks of one window each reproduce the one-rank run of two windows only up to
// rounding (test_train_dp), so the two-rank runs have their own reference.
TEST(TrainCli, TwoRanksSigkillOfOneRankThenResumeIsExact) {
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  const fs::path ref = fixture().dir / "dp_reference", rd = fixture().dir / "dp_killed";
  ASSERT_EQ(wait_for(spawn(train_cmd(ref, 2))), 0);
  const pid_t pid = spawn(train_cmd(rd, 2));
  ASSERT_TRUE(wait_for_step(rd, 40, pid)) << "the run ended before step 40";
  const std::vector<pid_t> ranks = rank_pids(pid);
  ASSERT_EQ(ranks.size(), 2u);
  kill(ranks[1], SIGKILL);  // a crashed node: mpirun takes the other rank down
  EXPECT_NE(wait_for(pid), 0);
  EXPECT_EQ(wait_for(spawn(train_cmd(rd, 2))), 0);
  EXPECT_TRUE(final_params(ref) == final_params(rd));
  EXPECT_EQ(losses(ref), losses(rd));
}

TEST(TrainCli, SigkillTwiceThenResumeIsExact) {
  const fs::path rd = fixture().dir / "killed";
  for (int64_t at : {15, 60}) {
    const pid_t pid = spawn(train_cmd(rd));
    ASSERT_TRUE(wait_for_step(rd, at, pid)) << "the run ended before step " << at;
    kill(pid, SIGKILL);
    EXPECT_EQ(wait_for(pid), 128 + SIGKILL);
  }
  EXPECT_EQ(wait_for(spawn(train_cmd(rd))), 0);
  ASSERT_EQ(reference_params().size(), final_params(rd).size());
  EXPECT_TRUE(reference_params() == final_params(rd));
  EXPECT_EQ(losses(fixture().dir / "reference"), losses(rd));
}

TEST(TrainCli, SigtermAndSigusr1CheckpointAndExit3ThenResumeIsExact) {
  const fs::path rd = fixture().dir / "signalled";
  for (auto [sig, at] : {std::pair{SIGTERM, int64_t{20}}, std::pair{SIGUSR1, int64_t{70}}}) {
    const pid_t pid = spawn(train_cmd(rd));
    ASSERT_TRUE(wait_for_step(rd, at, pid)) << "the run ended before step " << at;
    kill(pid, sig);
    EXPECT_EQ(wait_for(pid), 3) << "signal " << sig;
    // The checkpoint of the step the run stopped at, the last step it logged.
    const auto ck = list_checkpoints(rd.string());
    ASSERT_FALSE(ck.empty());
    EXPECT_EQ(ck.back().step, last_step(rd));
    EXPECT_GE(ck.back().step, at);
    EXPECT_NO_THROW(verify_checkpoint(ck.back().path));
  }
  EXPECT_EQ(wait_for(spawn(train_cmd(rd))), 0);
  EXPECT_TRUE(reference_params() == final_params(rd));
  EXPECT_EQ(losses(fixture().dir / "reference"), losses(rd));
}

}  // namespace
}  // namespace rwkv::trainer
