// The training loop on one rank (tiny model, byte-level two-language dataset): the
// validation loss falls, metrics.jsonl and TensorBoard hold every step, train.wkv:
// sequential tracks the chunked run, non-finite
// steps are skipped and K of them stop the run, train.max_runtime stops it,
// checkpoint.init_from starts a new run from trained weights, a stop signal writes a
// checkpoint from which the run continues exactly, a checkpoint of another shape is
// refused, and a corrupted newest checkpoint is skipped.
#include <gtest/gtest.h>

#include <cmath>
#include <csignal>
#include <fstream>
#include <sstream>

#include "model/model_config.h"
#include "model/param_table.h"
#include "test_train_util.h"
#include "trainer/checkpoint.h"
#include "trainer/checkpoint_dir.h"
#include "trainer/tensorboard_writer.h"
#include "trainer/train_device.h"
#include "trainer/train_loop.h"

namespace rwkv::trainer {
namespace {

using namespace train_test;

struct Env {
  fs::path dir = fresh_dir("loop");
  std::string data = make_dataset(dir);
  ~Env() { fs::remove_all(dir); }  // at exit (one rank)
};

const Env& env() {
  static const Env e;
  return e;
}

TrainResult run(const Config& cfg, std::function<void(int64_t, std::span<float>)> hook = {},
                std::string* log = nullptr) {
  TrainOptions o;
  o.cfg = cfg;
  o.program_version = "rwkv test";
  o.grad_hook = std::move(hook);
  std::ostringstream out;
  TrainResult r = train(o, MPI_COMM_WORLD, out);
  if (log) *log = out.str();
  return r;
}

// 60 steps of 2 x 32 tokens, evaluated at steps 0, 30 and 60. At initialisation
// the loss is ~ln(512) = 6.2 (uniform over the tiny model's vocabulary). The
// threshold: a model that learned only the byte frequencies scores the unigram
// entropy, ~3.0 nats for the documents' text (3.1 for the corpus file, JSON syntax
// included, computed below as an upper stand-in); below min(2.5, that - 0.3) the
// model must use context (the grammar's words). Measured: ~0.8.
TEST(TrainLoop, ValidationLossFallsAndMetricsAreWritten) {
  const fs::path rd = env().dir / "falls";
  const Config cfg = tiny_config(env().data, rd,
                                 {"train.steps=60", "train.eval_every=30", "train.eval_batches=4",
                                  "optimizer.lr_init=1e-2", "optimizer.lr_final=1e-3"});
  run(cfg);
  const auto train_lines = metrics_lines(rd, "train");
  ASSERT_EQ(train_lines.size(), 60u);
  for (size_t i = 0; i < train_lines.size(); ++i)
    EXPECT_EQ(json_number(train_lines[i], "step"), static_cast<double>(i + 1));
  const auto eval = metrics_lines(rd, "eval");
  ASSERT_EQ(eval.size(), 3u);  // steps 0, 30, 60
  EXPECT_NE(eval[0].find("\"loss_by_lang\":{\"de\":"), std::string::npos) << eval[0];
  EXPECT_NE(eval[0].find("\"en\":"), std::string::npos) << eval[0];
  EXPECT_GT(json_number(eval[0], "bpb"), 0);

  std::map<int, double> freq;  // unigram entropy of the corpus file's bytes
  std::ifstream corpus(env().dir / "corpus.jsonl");
  double n = 0;
  for (char c; corpus.get(c); n += 1) freq[static_cast<unsigned char>(c)] += 1;
  double h = 0;
  for (const auto& [c, k] : freq) h -= k / n * std::log(k / n);
  EXPECT_NEAR(json_number(eval[0], "loss"), std::log(512.0), 0.3);  // the untrained model
  const double val_loss = json_number(eval[2], "loss");
  EXPECT_LT(val_loss, std::min(2.5, h - 0.3)) << "unigram entropy " << h;
  EXPECT_LT(val_loss, json_number(eval[1], "loss"));

  // TensorBoard: every step's train/loss, and the evaluations.
  std::vector<std::string> events;
  for (const auto& e : fs::directory_iterator(rd))
    if (e.path().filename().string().starts_with("events.out.tfevents")) events.push_back(e.path());
  ASSERT_EQ(events.size(), 1u);
  int train_loss = 0, val = 0;
  for (const auto& s : read_tensorboard_events(events[0])) {
    if (s.tag == "train/loss") {
      EXPECT_EQ(s.step, ++train_loss);
    }
    if (s.tag == "val/loss") ++val;
  }
  EXPECT_EQ(train_loss, 60);
  EXPECT_EQ(val, 3);
}

TEST(TrainLoop, NonFiniteStepsAreSkipped) {
  const fs::path rd = env().dir / "nan_skip";
  const Config cfg = tiny_config(env().data, rd, {"train.steps=8"});
  const TrainResult r = run(cfg, [](int64_t step, std::span<float> g) {
    if (step == 3 || step == 4) g[5] = std::nanf("");
  });
  EXPECT_EQ(r.outcome, TrainOutcome::finished);
  const auto lines = metrics_lines(rd, "train");
  ASSERT_EQ(lines.size(), 8u);
  for (size_t i = 0; i < lines.size(); ++i)
    EXPECT_EQ(lines[i].find("\"skipped\":true") != std::string::npos, i == 2 || i == 3) << lines[i];
  const model::ModelConfig mc = model::model_config_from(cfg);
  const LoadedCheckpoint ck = load_checkpoint(r.checkpoint, mc, model::build_param_table(mc));
  EXPECT_EQ(ck.state.step, 8);
  EXPECT_EQ(ck.state.optimizer_step, 6);
  for (float p : ck.params) ASSERT_TRUE(std::isfinite(p));
}

TEST(TrainLoop, TooManyNonFiniteStepsStopTheRunAndKeepTheCheckpoint) {
  const fs::path rd = env().dir / "nan_stop";
  const Config cfg = tiny_config(
      env().data, rd,
      {"train.steps=20", "checkpoint.save_every_steps=2", "train.max_nonfinite_skips=3"});
  try {
    run(cfg, [](int64_t step, std::span<float> g) {
      if (step >= 4) g[0] = std::numeric_limits<float>::infinity();
    });
    FAIL() << "expected an error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("3 consecutive steps with a non-finite"),
              std::string::npos)
        << e.what();
  }
  // Steps 4, 5, 6 skipped, the run stops after step 6 without saving it: the last
  // checkpoint (step 4, written after the first skip) is intact.
  const auto ckpts = list_checkpoints(rd.string());
  ASSERT_FALSE(ckpts.empty());
  EXPECT_EQ(ckpts.back().step, 4);
  EXPECT_NO_THROW(verify_checkpoint(ckpts.back().path));
}

// train.device: cuda where it cannot be had (CI: no GPU; or a build without CUDA) is a
// ConfigError naming the key, before any work; with a GPU the run trains
// (tests/trainer/test_train_cuda.cpp compares it with the CPU).
TEST(TrainLoop, CudaDeviceWithoutAGpuIsAClearError) {
  const fs::path rd = env().dir / "cuda";
  try {
    const TrainResult r = run(tiny_config(env().data, rd, {"train.steps=2", "train.device=cuda"}));
    EXPECT_EQ(r.outcome, TrainOutcome::finished);
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("train.device: cuda"), std::string::npos) << m;
    EXPECT_TRUE(m.find("no GPU") != std::string::npos ||
                m.find("built without the CUDA backend") != std::string::npos)
        << m;
    EXPECT_FALSE(fs::exists(rd / "metrics.jsonl"));
  }
}

// train.wkv: sequential trains with the naive recurrence instead of the chunked form
// (the log says which): the same run within fp32 rounding (every step's loss within 1e-5
// relative, parameters within 1e-5 relative L2), and not bitwise the same (so the other
// form did run).
TEST(TrainLoop, SequentialWkvTracksChunked) {
  const fs::path chunked = env().dir / "wkv_chunked", sequential = env().dir / "wkv_sequential";
  std::string log_c, log_s;
  const Config cfg_c = tiny_config(env().data, chunked, {"train.steps=6"});
  const Config cfg_s =
      tiny_config(env().data, sequential, {"train.steps=6", "train.wkv=sequential"});
  const TrainResult a = run(cfg_c, {}, &log_c);
  const TrainResult b = run(cfg_s, {}, &log_s);
  EXPECT_NE(log_c.find("chunked WKV"), std::string::npos) << log_c;
  EXPECT_NE(log_s.find("sequential WKV"), std::string::npos) << log_s;
  const std::vector<double> lc = losses(chunked), ls = losses(sequential);
  ASSERT_EQ(lc.size(), 6u);
  ASSERT_EQ(ls.size(), 6u);
  for (size_t i = 0; i < lc.size(); ++i)
    EXPECT_NEAR(ls[i], lc[i], 1e-5 * lc[i]) << "step " << i + 1;
  const std::vector<float> pc = params_of(cfg_c, a.checkpoint), ps = params_of(cfg_s, b.checkpoint);
  EXPECT_LE(relative_l2(ps, pc), 1e-5);
  EXPECT_TRUE(ps != pc) << "bitwise the chunked run's parameters: train.wkv had no effect";
}

// check_step_memory (before the first step; a GPU's arena has a budget, the CPU none):
// no budget or enough passes; too little is a ConfigError naming the keys and the
// numbers, offering recomputation only where it is off.
TEST(StepMemory, TooLittleIsAConfigErrorNamingTheKeys) {
  constexpr int64_t GiB = int64_t{1} << 30;
  check_step_memory(-1, 100 * GiB, 10 * GiB, 8 * GiB, false);
  check_step_memory(40 * GiB, 30 * GiB, 3 * GiB, 8 * GiB, false);
  const auto error_of = [](int64_t left, int64_t act, int64_t recomputed, int64_t moments,
                           bool recompute) -> std::string {
    try {
      check_step_memory(left, act, recomputed, moments, recompute);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  };
  const std::string m = error_of(20 * GiB, 35 * GiB, 4 * GiB, 3 * GiB, false);
  for (const char* want : {"train.micro_batch_size", "35.00 GiB", "3.00 GiB", "20.00 GiB",
                           "set train.recompute: full (4.00 GiB)", "train.gpu_memory"})
    EXPECT_NE(m.find(want), std::string::npos) << want << " in: " << m;
  const std::string r = error_of(2 * GiB, 3 * GiB, 3 * GiB, GiB / 2, true);
  EXPECT_NE(r.find("(train.recompute: full)"), std::string::npos) << r;
  EXPECT_EQ(r.find("set train.recompute"), std::string::npos) << r;
  EXPECT_EQ(error_of(3 * GiB, 2 * GiB, GiB, GiB / 2, false), "");  // 2.5 of 3 GiB
}

// check_chunked_wkv_memory (at the start of a GPU run with train.wkv: chunked): the
// chunked backward's shared memory at or under the card's limit passes; over it is a
// ConfigError naming the key, the version, the head size, both sizes, the card and the way
// out.
TEST(ChunkedWkvMemory, OverTheCardsLimitIsAConfigErrorNamingTheKey) {
  check_chunked_wkv_memory(7, 64, 164096, 232448, "NVIDIA H200 (sm_90)");
  check_chunked_wkv_memory(7, 64, 164096, 164096, "at the limit");
  try {
    check_chunked_wkv_memory(7, 64, 164096, 101376, "NVIDIA L40S (sm_89)");
    FAIL() << "164096 bytes fit 101376";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(),
                 "train.wkv: chunked: the chunked WKV backward of RWKV-7 at head size 64 needs "
                 "164096 bytes of shared memory per block; this GPU, NVIDIA L40S (sm_89), allows "
                 "101376: use train.wkv: sequential");
  }
}

// check_cuda_head_size: RWKV-4 (no heads) and the head sizes of the CUDA WKV kernels
// pass; another is a ConfigError naming model.head_size.
TEST(CudaHeadSize, OthersThan16_32_64AreAConfigErrorNamingTheKey) {
  for (int n : {16, 32, 64}) check_cuda_head_size(7, n);
  check_cuda_head_size(4, 128);
  for (int v : {5, 6, 7}) {
    try {
      check_cuda_head_size(v, 128);
      ADD_FAILURE() << "head size 128 accepted for RWKV-" << v;
    } catch (const ConfigError& e) {
      EXPECT_STREQ(e.what(),
                   "model.head_size: 128 is not one the CUDA WKV kernels are built for (16, 32 "
                   "or 64) with train.device: cuda; train on the CPU or pick one of those");
    }
  }
}

// The activation memory the log reports ("activations: X MiB per rank", or GiB), in MiB.
double logged_activation_mib(const std::string& log) {
  const size_t at = log.find("activations: ");
  if (at == std::string::npos) return -1;
  size_t len = 0;
  const double x = std::stod(log.substr(at + 13), &len);
  return log.compare(at + 13 + len, 4, " GiB") == 0 ? x * 1024 : x;
}

// train.recompute: full reaches the model (the log reports less activation memory and
// says so) and trains as without it: every step's loss within 1e-6 relative and the
// parameters within 1e-6 relative L2 (fp32; the recomputed blocks give the same bits,
// the logits chunked by rows sum the head's gradient in another order).
TEST(TrainLoop, RecomputeTrainsTheSame) {
  const fs::path kept = env().dir / "recompute_none", again = env().dir / "recompute_full";
  std::string log_k, log_a;
  const Config cfg_k = tiny_config(env().data, kept, {"train.steps=5", "train.grad_accum=2"});
  const Config cfg_a = tiny_config(env().data, again,
                                   {"train.steps=5", "train.grad_accum=2", "train.recompute=full"});
  const TrainResult a = run(cfg_k, {}, &log_k);
  const TrainResult b = run(cfg_a, {}, &log_a);
  EXPECT_NE(log_a.find("(train.recompute: full)"), std::string::npos) << log_a;
  EXPECT_GT(logged_activation_mib(log_a), 0) << log_a;
  EXPECT_LT(logged_activation_mib(log_a), logged_activation_mib(log_k)) << log_k << log_a;
  const std::vector<double> lk = losses(kept), la = losses(again);
  ASSERT_EQ(lk.size(), 5u);
  ASSERT_EQ(la.size(), 5u);
  for (size_t i = 0; i < lk.size(); ++i)
    EXPECT_NEAR(la[i], lk[i], 1e-6 * lk[i]) << "step " << i + 1;
  EXPECT_LE(relative_l2(params_of(cfg_a, b.checkpoint), params_of(cfg_k, a.checkpoint)), 1e-6);
}

// Uninterrupted 12 steps vs 6 steps, SIGTERM (raised during step 6), resume to 12:
// the same losses and bitwise-identical parameters.
TEST(TrainLoop, StopSignalThenResumeIsExact) {
  const fs::path full = env().dir / "full", split = env().dir / "split";
  const auto sets = std::vector<std::string>{"train.steps=12", "train.grad_accum=2"};
  const TrainResult a = run(tiny_config(env().data, full, sets));
  std::string log;
  const TrainResult b = run(
      tiny_config(env().data, split, sets),
      [](int64_t step, std::span<float>) {
        if (step == 6) std::raise(SIGTERM);
      },
      &log);
  EXPECT_EQ(b.outcome, TrainOutcome::preempted);
  EXPECT_EQ(b.signal, SIGTERM);
  EXPECT_EQ(b.step, 6);
  EXPECT_NE(log.find("stop signal"), std::string::npos) << log;
  const TrainResult c = run(tiny_config(env().data, split, sets), {}, &log);
  EXPECT_NE(log.find("resuming from"), std::string::npos) << log;
  EXPECT_EQ(c.outcome, TrainOutcome::finished);
  EXPECT_EQ(losses(full), losses(split));
  const Config cfg = tiny_config(env().data, full, sets);
  EXPECT_EQ(params_of(cfg, a.checkpoint), params_of(cfg, c.checkpoint));
}

// train.activations: bf16 (on the CPU, the reference CpuBf16Backend): the log says so, the
// activations take less memory, every step's loss is within 2% of the fp32 run's (the
// model test measures 0.5% over 40 steps: tests/model/test_model_bf16.cpp), and a run
// stopped by a signal and resumed continues exactly (the bf16 copy of the weights is
// rounded again from the checkpoint's fp32 parameters, as after every step).
TEST(TrainLoop, Bf16ActivationsTrackFp32AndResumeExactly) {
  const fs::path fp32 = env().dir / "acts_fp32", full = env().dir / "acts_bf16",
                 split = env().dir / "acts_bf16_split";
  const auto sets = std::vector<std::string>{"train.steps=8", "train.grad_accum=2"};
  auto bf16_sets = sets;
  bf16_sets.push_back("train.activations=bf16");
  std::string log_f, log_b;
  run(tiny_config(env().data, fp32, sets), {}, &log_f);
  const TrainResult a = run(tiny_config(env().data, full, bf16_sets), {}, &log_b);
  EXPECT_NE(log_b.find("bf16 activations"), std::string::npos) << log_b;
  EXPECT_LT(logged_activation_mib(log_b), 0.75 * logged_activation_mib(log_f)) << log_f << log_b;
  const std::vector<double> lf = losses(fp32), lb = losses(full);
  ASSERT_EQ(lf.size(), 8u);
  ASSERT_EQ(lb.size(), 8u);
  for (size_t i = 0; i < lf.size(); ++i)
    EXPECT_NEAR(lb[i], lf[i], 0.02 * lf[i]) << "step " << i + 1;
  const TrainResult b =
      run(tiny_config(env().data, split, bf16_sets), [](int64_t step, std::span<float>) {
        if (step == 4) std::raise(SIGTERM);
      });
  EXPECT_EQ(b.step, 4);
  const TrainResult c = run(tiny_config(env().data, split, bf16_sets));
  EXPECT_EQ(c.outcome, TrainOutcome::finished);
  EXPECT_EQ(losses(split), lb);
  const Config cfg = tiny_config(env().data, full, bf16_sets);
  EXPECT_EQ(params_of(cfg, c.checkpoint), params_of(cfg, a.checkpoint));
}

// train.max_runtime of ~0 (6e-8 s): the first step's end is past it on any machine.
TEST(TrainLoop, MaxRuntimeStopsAfterAStepWithACheckpoint) {
  const fs::path rd = env().dir / "max_runtime";
  const TrainResult r = run(tiny_config(env().data, rd, {"train.max_runtime=1e-9"}));
  EXPECT_EQ(r.outcome, TrainOutcome::preempted);
  EXPECT_EQ(r.signal, 0);
  EXPECT_EQ(r.step, 1);
  const auto ck = list_checkpoints(rd.string());
  ASSERT_EQ(ck.size(), 1u);
  EXPECT_EQ(ck[0].step, 1);
}

// checkpoint.init_from: a new run (step 1, fresh AdamW) from trained weights, whose
// first loss is the trained model's, not the ~6.2 of a fresh initialisation.
TEST(TrainLoop, InitFromStartsANewRunFromTrainedWeights) {
  const fs::path a = env().dir / "init_a", b = env().dir / "init_b";
  const TrainResult ra = run(tiny_config(env().data, a, {"train.steps=30"}));
  std::string log;
  const Config cfg =
      tiny_config(env().data, b, {"train.steps=3", "checkpoint.init_from=" + ra.checkpoint});
  const TrainResult rb = run(cfg, {}, &log);
  EXPECT_NE(log.find("initialised from the weights of " + ra.checkpoint), std::string::npos) << log;
  const auto la = losses(a), lb = losses(b);
  ASSERT_EQ(lb.size(), 3u);
  EXPECT_LT(lb.front(), 0.5 * (la.front() + la.back())) << "first loss " << lb.front();
  const model::ModelConfig mc = model::model_config_from(cfg);
  const LoadedCheckpoint ck = load_checkpoint(rb.checkpoint, mc, model::build_param_table(mc));
  EXPECT_EQ(ck.state.step, 3);
  EXPECT_EQ(ck.state.optimizer_step, 3);
}

TEST(TrainLoop, CheckpointOfAnotherShapeIsRefused) {
  const fs::path rd = env().dir / "shape";
  run(tiny_config(env().data, rd, {"train.steps=2"}));
  const auto before = list_checkpoints(rd.string());
  try {
    run(tiny_config(env().data, rd, {"train.steps=4", "model.n_embd=32"}));
    FAIL() << "expected an error";
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("emb.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("64"), std::string::npos) << msg;
    EXPECT_NE(msg.find("32"), std::string::npos) << msg;
  }
  const auto after = list_checkpoints(rd.string());
  ASSERT_EQ(after.size(), before.size());
  EXPECT_NO_THROW(verify_checkpoint(after.back().path));
}

TEST(TrainLoop, CorruptedNewestCheckpointFallsBackToThePrevious) {
  const fs::path rd = env().dir / "corrupt";
  run(tiny_config(env().data, rd, {"train.steps=4", "checkpoint.save_every_steps=2"}));
  const auto ck = list_checkpoints(rd.string());
  ASSERT_EQ(ck.back().step, 4);
  {  // flip bytes in the middle of the newest file
    std::fstream f(ck.back().path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(ck.back().path) / 2));
    f.write("XXXXXXXXXXXXXXXX", 16);
  }
  std::string log;
  const TrainResult r = run(tiny_config(env().data, rd, {"train.steps=6"}), {}, &log);
  EXPECT_NE(log.find("warning: "), std::string::npos) << log;
  EXPECT_NE(log.find("step-0000004.h5"), std::string::npos) << log;
  EXPECT_NE(log.find("resuming from"), std::string::npos) << log;
  EXPECT_NE(log.find("(step 2)"), std::string::npos) << log;
  EXPECT_EQ(r.step, 6);
}

}  // namespace
}  // namespace rwkv::trainer
