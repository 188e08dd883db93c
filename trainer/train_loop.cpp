#include "trainer/train_loop.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <optional>
#include <type_traits>
#include <vector>

#include "common/byte_size.h"
#include "common/mpi_util.h"
#include "data_pipeline/loader.h"
#include "data_pipeline/manifest.h"
#include "data_pipeline/tokenizer.h"
#include "model/model.h"
#include "model/param_count.h"
#include "trainer/checkpoint.h"
#include "trainer/checkpoint_dir.h"
#include "trainer/data_parallel.h"
#include "trainer/evaluate.h"
#include "trainer/metrics_log.h"
#include "trainer/parallel_grid.h"
#include "trainer/preemption.h"
#include "trainer/schedule.h"
#include "trainer/tensorboard_writer.h"
#include "trainer/train_device.h"

namespace rwkv::trainer {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double unix_time() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Runs `fn` on every rank. If it throws on any rank, every rank throws ConfigError
// with the message of the lowest failing rank, so that none is left in a collective.
template <typename Fn>
void on_all_ranks(MPI_Comm comm, Fn&& fn) {
  const int rank = comm_rank(comm), size = comm_size(comm);
  std::string msg;
  int failed = size;  // "no failure" sorts above every rank
  try {
    fn();
  } catch (const std::exception& e) {
    failed = rank;
    msg = e.what();
  }
  MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MIN, comm));
  if (failed == size) return;
  throw ConfigError(broadcast_string(comm, msg, failed));
}

// UTF-8 bytes of every token id alone, for bits per byte.
std::vector<uint32_t> token_byte_lengths(const std::string& dataset) {
  const data::Manifest m = data::read_manifest(dataset);
  const std::string file = m.tokenizer_file.empty() ? "" : dataset + "/" + m.tokenizer_file;
  const auto tok = data::load_tokenizer(data::tokenizer_kind_from_name(m.tokenizer_kind), file);
  std::vector<uint32_t> out(tok->vocab_size());
  for (uint32_t id = 0; id < tok->vocab_size(); ++id)
    out[id] = static_cast<uint32_t>(tok->decode(std::span<const uint32_t>(&id, 1)).size());
  return out;
}

std::vector<int32_t> as_ids(const std::vector<uint32_t>& v) { return {v.begin(), v.end()}; }

// The L2 norm of the whole model's gradient g (backend memory): the squares of every
// slab, replicated tensors counted once (by TP rank 0), summed over the TP group. The
// counted tensors are summed in runs of adjacent ones (at TP rank 0 one run, the whole
// buffer), each deterministically (Backend::sum_squares).
template <typename A>
double grad_norm(kernels::Backend<float, A>& be, const model::ParamTable& t, const float* g,
                 const ParallelGrid& grid) {
  double s = 0;
  int64_t run_begin = 0, run_end = 0;  // the open run [run_begin, run_end)
  for (const model::ParamInfo& p : t.params) {
    if (p.split_dim < 0 && grid.tp_rank != 0) continue;
    if (p.offset != run_end) {
      s += be.sum_squares(g + run_begin, run_end - run_begin);
      run_begin = p.offset;
    }
    run_end = p.offset + p.size;
  }
  s += be.sum_squares(g + run_begin, run_end - run_begin);
  MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &s, 1, MPI_DOUBLE, MPI_SUM, grid.tp));
  return std::sqrt(s);
}

// The device's backend for activations of type A (train.activations chose the device's).
template <typename A>
kernels::Backend<float, A>& backend_of(TrainDevice& device) {
  kernels::Backend<float, A>* be = nullptr;
  if constexpr (std::is_same_v<A, float>)
    be = device.backend_fp32();
  else
    be = device.backend_bf16();
  if (!be) throw Error("train: the device was made for the other train.activations");
  return *be;
}

// The TP group's sum of A activations, for a model whose A is not its F (null otherwise:
// the model uses tp_comm). Collective over the group.
template <typename A>
model::TpAllReduce<A>* activation_group_of(TrainDevice& device) {
  if constexpr (std::is_same_v<A, float>)
    return nullptr;
  else
    return device.tp_comm_bf16();
}

// The whole run with activations of type A.
template <typename A>
TrainResult train_as(const TrainOptions& opts, MPI_Comm comm, std::ostream& out) {
  const Config& cfg = opts.cfg;
  const int rank = comm_rank(comm), world = comm_size(comm);
  const bool root = rank == 0;
  install_stop_handlers();  // before the slow setup: a signal during it stops after step 1
  const ParallelGrid grid(comm, static_cast<int>(cfg.get_int("parallel.tp")));
  const int dp = grid.dp_size;
  if (cfg.get_string("data.path").empty())
    throw ConfigError("data.path: not set; point it at a dataset written by `rwkv preprocess`");

  const model::ModelConfig mc = model::model_config_from(cfg);
  const std::string run_dir = cfg.get_string("log.run_dir");
  const std::string dataset = cfg.get_string("data.path");
  const auto B = static_cast<uint64_t>(cfg.get_int("train.micro_batch_size"));
  const int64_t accum = cfg.get_int("train.grad_accum");
  const int64_t total_steps = cfg.get_int("train.steps");
  const int64_t eval_every = cfg.get_int("train.eval_every");
  const int64_t eval_batches = cfg.get_int("train.eval_batches");
  const int64_t max_skips = cfg.get_int("train.max_nonfinite_skips");
  const double max_runtime_s = 60 * cfg.get_float("train.max_runtime");
  const double grad_clip = cfg.get_float("optimizer.grad_clip");
  const double peak_flops = cfg.get_float("log.peak_flops");
  const int64_t log_every = cfg.get_int("log.every_steps");

  data::LoaderOptions lo;
  lo.dataset = dataset;
  lo.ctx_len = static_cast<uint64_t>(mc.ctx_len);
  lo.seed = static_cast<uint64_t>(cfg.get_int("train.seed"));
  lo.dp_rank = static_cast<uint64_t>(grid.dp_rank);
  lo.dp_size = dp;
  lo.micro_batch = B;
  lo.align_to_documents = cfg.get_string("data.align_to_documents") == "true";
  lo.temperature_alpha = cfg.get_float("data.blend_alpha");
  data::LoaderOptions vo = lo;
  vo.split = "val";
  on_all_ranks(comm, [&] {
    const data::Manifest m = data::read_manifest(dataset);
    if (m.vocab_size > static_cast<uint64_t>(mc.vocab_size))
      throw Error("model.vocab_size: " + std::to_string(mc.vocab_size) + " is smaller than the " +
                  "dataset's vocabulary (" + std::to_string(m.vocab_size) + ", " + dataset + ")");
    lo.expect_vocab_size = vo.expect_vocab_size = m.vocab_size;
    if (eval_every > 0) {
      vo.token_bytes = token_byte_lengths(dataset);
      data::Loader probe(vo);  // fails now, not at the first evaluation, without val windows
    }
  });
  on_all_ranks(comm, [&] {
    if (root) fs::create_directories(run_dir);
  });

  std::unique_ptr<TrainDevice> device;
  on_all_ranks(comm, [&] { device = make_train_device(cfg, grid, comm); });
  kernels::Backend<float, A>& be = backend_of<A>(*device);
  std::optional<model::Model<float, A>> built;
  // The CUDA backend takes the form from its device (it ignores the model's WkvAlgo).
  const bool chunked = chunked_wkv(cfg);
  model::ModelOptions model_opts;
  model_opts.wkv = chunked ? kernels::WkvAlgo::chunked : kernels::WkvAlgo::naive;
  model_opts.recompute = recompute_activations(cfg);
  on_all_ranks(comm, [&] {
    model::TpComm<float>& tp = device->tp_comm();
    built.emplace(mc, be, model_opts, &tp, activation_group_of<A>(*device));
  });
  model::Model<float, A>& model = *built;
  const auto activation_bytes = [&](bool recompute) {
    return model::Model<float, A>::activation_bytes(mc, model.ranges, recompute,
                                                    static_cast<int>(B), mc.ctx_len);
  };
  // Before AdamW's moments or the activations exist: does a step fit the device?
  on_all_ranks(comm, [&] {
    check_step_memory(device->memory_left(), activation_bytes(model_opts.recompute),
                      activation_bytes(true), 2 * model.table.total * int64_t{sizeof(float)},
                      model_opts.recompute);
  });

  // Where to start: the newest usable checkpoint, the weights of init_from, or init.
  TrainerState st;
  std::string resume_path;
  if (opts.resume) {
    resume_path = root_then_broadcast<ConfigError>(comm, [&] {
      const ResumePoint rp = find_resume_checkpoint(run_dir);
      for (const auto& w : rp.warnings) out << "warning: " << w << "\n";
      return rp.path;
    });
  }
  const std::string init_from = cfg.get_string("checkpoint.init_from");
  if (!resume_path.empty()) {
    on_all_ranks(comm, [&] {
      LoadedCheckpoint ck = load_checkpoint(resume_path, mc, model.table, false);
      model.set_params(ck.params);
      model.set_adam_moments(ck.adam_m, ck.adam_v);
      st = std::move(ck.state);
    });
    if (root) out << "resuming from " << resume_path << " (step " << st.step << ")\n";
  } else if (!init_from.empty()) {
    // Rank 0 checks the file's checksum; then each rank reads only its slabs.
    root_then_broadcast<ConfigError>(comm, [&] {
      verify_checkpoint(init_from);
      return std::string();
    });
    on_all_ranks(comm, [&] { model.set_params(load_weights(init_from, model.table, false)); });
    if (root) out << "initialised from the weights of " << init_from << "\n";
  } else {
    model.init(static_cast<uint64_t>(cfg.get_int("train.seed")));
  }
  st.config_yaml = cfg.to_yaml();
  st.program_version = opts.program_version;

  std::optional<data::Loader> loader;
  on_all_ranks(comm, [&] { loader.emplace(lo, st.loader); });

  Schedule sched;
  sched.lr_init = cfg.get_float("optimizer.lr_init");
  sched.lr_final = cfg.get_float("optimizer.lr_final");
  sched.warmup_steps = cfg.get_int("optimizer.warmup_steps");
  sched.tokens_per_step = B * static_cast<uint64_t>(dp * accum) * lo.ctx_len;
  sched.total_tokens = sched.tokens_per_step * static_cast<uint64_t>(total_steps);
  sched.decay = decay_kind_from_name(cfg.get_string("optimizer.schedule"));
  kernels::AdamWHyper hyper;
  hyper.beta1 = cfg.get_float("optimizer.beta1");
  hyper.beta2 = cfg.get_float("optimizer.beta2");
  hyper.eps = cfg.get_float("optimizer.eps");
  hyper.weight_decay = cfg.get_float("optimizer.weight_decay");
  // Training FLOPs per token: 6 per weight used in a product + 3 x the WKV forward
  // (model/param_count.h, docs/model.md).
  const double flops_per_token = static_cast<double>(model::count_flops(mc).training_per_token);

  const std::vector<GradBucket> buckets = make_grad_buckets(model.table, int64_t{1} << 22);
  const std::unique_ptr<GradSync> reducer = device->grad_sync(model.grads, buckets);
  std::unique_ptr<MetricsFile> metrics;
  std::unique_ptr<TensorBoardWriter> tb;
  if (root) {
    metrics = std::make_unique<MetricsFile>(run_dir);
    tb = std::make_unique<TensorBoardWriter>(run_dir);
    out << "model: RWKV-" << mc.version << ", " << mc.n_layer << " layers, n_embd " << mc.n_embd
        << ", " << model::count_params(mc).total << " parameters; " << grid.tp_size
        << " tensor-parallel x " << dp << " data-parallel rank" << (world > 1 ? "s" : "") << ", "
        << sched.tokens_per_step << " tokens per step; " << device->describe();
    if (mc.version >= 5) out << ", " << (chunked ? "chunked" : "sequential") << " WKV";
    out << "\nactivations: " << byte_size(double(activation_bytes(model_opts.recompute)))
        << " per rank" << (model_opts.recompute ? " (train.recompute: full)" : "") << "\n";
  }

  TrainResult result;
  const auto t_start = Clock::now();
  double last_save = 0;  // seconds since t_start, on rank 0's clock
  const int64_t first_step = st.step;
  // tokens/s: training time (no evaluation, no checkpoints) of the steps since the last log line
  double train_s_since_log = 0;
  int64_t steps_since_log = 0;

  auto save = [&](const char* why) {
    const std::vector<float> p = model.get_params(), m = model.get_adam_m(), v = model.get_adam_v();
    st.loader = loader->state();
    // Replica 0's TP group writes the file together, each rank its slabs; every rank of
    // the group throws alike on failure, and rank 0 passes the outcome on.
    std::string path, error;
    if (grid.dp_rank == 0) {
      try {
        path = save_checkpoint(run_dir, mc, model.table, {p, m, v}, st, grid.tp);
      } catch (const Error& e) {
        error = e.what();
      }
    }
    result.checkpoint = root_then_broadcast<ConfigError>(comm, [&] {
      if (!error.empty()) throw ConfigError(error);
      for (const auto& gone : prune_checkpoints(run_dir, cfg.get_int("checkpoint.keep_last"),
                                                cfg.get_int("checkpoint.keep_every"), st.step))
        out << "removed old checkpoint " << gone << "\n";
      out << "saved " << path << " (" << why << ")" << std::endl;
      return path;
    });
    last_save = seconds_since(t_start);
  };

  auto run_eval = [&] {
    EvalMetrics em = evaluate(model, vo, eval_batches, grid.dp);
    em.step = st.step;
    if (!root) return;
    out << format_eval_line(em) << std::endl;
    metrics->append(eval_json(em));
    const double wall = unix_time();
    tb->add_scalar("val/loss", static_cast<float>(em.loss), st.step, wall);
    tb->add_scalar("val/ppl", static_cast<float>(em.ppl), st.step, wall);
    if (em.bpb) tb->add_scalar("val/bpb", static_cast<float>(*em.bpb), st.step, wall);
    for (const auto& [lang, l] : em.loss_by_lang)
      tb->add_scalar("val/loss_" + lang, static_cast<float>(l), st.step, wall);
    tb->flush();
  };
  if (eval_every > 0 && st.step == 0) run_eval();  // the starting point of the curves

  while (st.step < total_steps) {
    const auto t0 = Clock::now();
    model.zero_grad();
    double loss = 0;
    reducer->start();
    for (int64_t a = 0; a < accum; ++a) {
      const data::Batch batch = loader->next();
      loss += model.forward(as_ids(batch.inputs), as_ids(batch.targets), static_cast<int>(B),
                            mc.ctx_len);
      // Only the last micro-batch's backward communicates, overlapping its own tail.
      if (a + 1 < accum)
        model.backward();
      else
        model.backward([&](int64_t ready_from) { reducer->ready(ready_from); });
    }
    // Each micro-batch's gradient is of its mean loss: average over micro-batches and ranks.
    reducer->finish(1.0 / static_cast<double>(accum * dp));
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &loss, 1, MPI_DOUBLE, MPI_SUM, grid.dp));
    loss /= static_cast<double>(accum * dp);
    if (opts.grad_hook) {  // on a host copy: the gradients may be in device memory
      std::vector<float> g(static_cast<size_t>(model.table.total));
      be.download(g.data(), model.grads, model.table.total);
      opts.grad_hook(st.step + 1, std::span<float>(g));
      be.upload(model.grads, g.data(), model.table.total);
    }
    const double norm = grad_norm(be, model.table, model.grads, grid);
    const double lr = learning_rate(sched, st.step, st.tokens_seen);
    const bool finite = std::isfinite(loss) && std::isfinite(norm);
    if (finite) {
      // torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when above.
      if (grad_clip > 0 && norm > grad_clip) {
        be.scale(model.grads, static_cast<float>(grad_clip / (norm + 1e-6)), model.table.total);
      }
      hyper.lr = lr;
      model.adamw_step(hyper, ++st.optimizer_step);
      st.nonfinite_skips = 0;
    } else {
      ++st.nonfinite_skips;
    }
    ++st.step;
    st.tokens_seen += sched.tokens_per_step;

    train_s_since_log += seconds_since(t0);
    ++steps_since_log;
    const double elapsed = seconds_since(t_start);
    if (root && (st.step % log_every == 0 || !finite || st.step == total_steps)) {
      StepMetrics sm;
      sm.step = st.step;
      sm.total_steps = total_steps;
      sm.loss = loss;
      sm.lr = lr;
      sm.grad_norm = norm;
      sm.tokens = st.tokens_seen;
      sm.tokens_per_s = static_cast<double>(sched.tokens_per_step) *
                        static_cast<double>(steps_since_log) / train_s_since_log;
      train_s_since_log = 0;
      steps_since_log = 0;
      if (peak_flops > 0) sm.mfu = flops_per_token * sm.tokens_per_s / (peak_flops * world);
      sm.elapsed_s = elapsed;
      sm.eta_s = elapsed / static_cast<double>(st.step - first_step) *
                 static_cast<double>(total_steps - st.step);
      sm.skipped = !finite;
      out << format_step_line(sm) << std::endl;
      metrics->append(step_json(sm));
      const double wall = unix_time();
      tb->add_scalar("train/loss", static_cast<float>(loss), st.step, wall);
      tb->add_scalar("train/lr", static_cast<float>(lr), st.step, wall);
      tb->add_scalar("train/grad_norm", static_cast<float>(norm), st.step, wall);
      tb->add_scalar("train/tokens_per_s", static_cast<float>(sm.tokens_per_s), st.step, wall);
      tb->flush();
    }
    if (st.nonfinite_skips >= max_skips) {
      const std::string last = result.checkpoint.empty() ? resume_path : result.checkpoint;
      throw ConfigError("train: " + std::to_string(st.nonfinite_skips) +
                        " consecutive steps with a non-finite loss or gradient norm (up to step " +
                        std::to_string(st.step) + ", train.max_nonfinite_skips = " +
                        std::to_string(max_skips) + "); stopping. " +
                        (last.empty() ? std::string("No checkpoint was written")
                                      : "The last checkpoint, " + last + ", is untouched"));
    }

    if (eval_every > 0 && st.step % eval_every == 0) run_eval();

    // Stop requests and the save policy, decided together: any rank's signal or
    // clock stops all; rank 0's clock decides time-based saves.
    const StopRequest stop =
        agree_stop(max_runtime_s > 0 && seconds_since(t_start) >= max_runtime_s, comm);
    int due = root && should_save(st.step, last_save, seconds_since(t_start),
                                  cfg.get_int("checkpoint.save_every_steps"),
                                  cfg.get_float("checkpoint.save_every_minutes"));
    MPI_CHECK(MPI_Bcast(&due, 1, MPI_INT, 0, comm));
    if (stop.stop()) {
      result.signal = stop.signal;
      save(stop.signal ? "stop signal" : "train.max_runtime reached");
      result.outcome = TrainOutcome::preempted;
      result.step = st.step;
      if (root)
        out << "stopped at step " << st.step << " of " << total_steps
            << "; run the same command again to continue" << std::endl;
      return result;
    }
    if (due || st.step == total_steps)
      save(st.step == total_steps ? "end of training" : "scheduled");
  }
  if (root) out << "training complete at step " << st.step << "\n";
  result.step = st.step;
  return result;
}

}  // namespace

TrainResult train(const TrainOptions& opts, MPI_Comm comm, std::ostream& out) {
  if (opts.cfg.get_string("train.activations") == "bf16")
    return train_as<kernels::Bf16>(opts, comm, out);
  return train_as<float>(opts, comm, out);
}

}  // namespace rwkv::trainer
