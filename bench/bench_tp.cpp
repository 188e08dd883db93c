// Tensor- and data-parallel training steps over MPI (docs/performance.md, "Tensor
// parallelism"): per step, the bytes each rank hands to MPI all-reduces in the TP
// group and in the DP group, measured by intercepting MPI_Allreduce / MPI_Iallreduce
// (the MPI profiling interface), next to the count derived on paper; and tokens/s.
//
//   mpirun -np 2 build/bench/bench_tp --preset small --tp 2 --threads 1
//   mpirun -np 2 build/bench/bench_tp --preset small --tp 1 --threads 1   (dp = 2)
//   mpirun -np 1 build/bench/bench_tp --preset small --tp 1 --threads 2
//   mpirun -np 2 build/bench/bench_tp --preset small --tp 2 --activations bf16
//
// A step: forward + backward of one micro-batch per DP rank (synthetic tokens), the
// gradient all-reduce over DP overlapped with backward (trainer/data_parallel.h), and
// AdamW; the global batch is the same whatever the grid (micro-batch = batch / dp). With
// --activations bf16 the model runs on the CPU reference of bf16 activations and its TP
// group's activation all-reduces are bf16 (trainer/tp_comm_mpi.h, TpBf16Mpi).
#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "common/config.h"
#include "common/mpi_util.h"
#include "kernels/cpu/backend_cpu.h"
#include "kernels/cpu/bf16_activations.h"
#include "model/model.h"
#include "trainer/data_parallel.h"
#include "trainer/parallel_grid.h"
#include "trainer/tp_comm_mpi.h"

namespace {

// Payload bytes per communicator kind, counted while `counting` is set.
MPI_Comm g_tp = MPI_COMM_NULL, g_dp = MPI_COMM_NULL;
bool counting = false;
double tp_bytes = 0, dp_bytes = 0;

void count(MPI_Comm comm, int n, MPI_Datatype type) {
  if (!counting) return;
  int size = 0;
  MPI_Type_size(type, &size);
  int same = MPI_UNEQUAL;
  if (g_tp != MPI_COMM_NULL && (MPI_Comm_compare(comm, g_tp, &same), same == MPI_IDENT))
    tp_bytes += static_cast<double>(n) * size;
  else if (g_dp != MPI_COMM_NULL && (MPI_Comm_compare(comm, g_dp, &same), same == MPI_IDENT))
    dp_bytes += static_cast<double>(n) * size;
}

}  // namespace

// The MPI profiling interface: these replace the library's entry points in this
// program and forward to the PMPI_ ones.
extern "C" int MPI_Allreduce(const void* s, void* r, int n, MPI_Datatype t, MPI_Op op, MPI_Comm c) {
  count(c, n, t);
  return PMPI_Allreduce(s, r, n, t, op, c);
}
extern "C" int MPI_Iallreduce(const void* s, void* r, int n, MPI_Datatype t, MPI_Op op, MPI_Comm c,
                              MPI_Request* q) {
  count(c, n, t);
  return PMPI_Iallreduce(s, r, n, t, op, c, q);
}

namespace {

using namespace rwkv;

struct Args {
  std::string preset = "small";
  std::string activations = "fp32";  // or bf16
  int tp = 1, threads = 1, batch = 4, steps = 5;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--preset")
      a.preset = v;
    else if (k == "--tp")
      a.tp = std::stoi(v);
    else if (k == "--threads")
      a.threads = std::stoi(v);
    else if (k == "--batch")
      a.batch = std::stoi(v);
    else if (k == "--steps")
      a.steps = std::stoi(v);
    else if (k == "--activations" && (v == "fp32" || v == "bf16"))
      a.activations = v;
    else
      throw Error("bench_tp: unknown option " + k);
  }
  return a;
}

// All-reduce payload of one step on paper: see docs/parallelism.md. `act_bytes`: bytes per
// activation element (4 for fp32, 2 for bf16).
struct Paper {
  double tp = 0, dp = 0;
};

Paper on_paper(const model::ModelConfig& mc, const model::ParamTable& t, int64_t n, int tp, int dp,
               int act_bytes) {
  Paper p;
  if (tp > 1) {
    const double nC = static_cast<double>(n) * mc.n_embd;
    // Forward: embedding, 2 per block; backward: the head's input gradient, 2 per block.
    p.tp = act_bytes * nC * (2.0 + 4.0 * mc.n_layer);
    // Cross-entropy: (max, column) pairs of 8 bytes and [sum of exps; target logit].
    p.tp += 8.0 * n + 8.0 * n;
    // The replicated parameters' partial gradients, once per step.
    for (const auto& q : t.params)
      if (q.tp == model::TpPart::partial) p.tp += 4.0 * q.size;
  }
  if (dp > 1) p.dp = 4.0 * static_cast<double>(t.total);
  return p;
}

// The timed steps with activations of type A (float, or Bf16 on the CPU reference).
template <typename A>
void run(const Args& a, const model::ModelConfig& mc, const trainer::ParallelGrid& grid,
         int world_rank) {
  const int B = a.batch / grid.dp_size, T = mc.ctx_len;
  const int64_t n = static_cast<int64_t>(B) * T;
  constexpr bool kBf16 = std::is_same_v<A, kernels::Bf16>;
  trainer::TpCommMpi<float> comm(grid.tp);
  trainer::TpBf16Mpi comm_bf16(grid.tp);
  model::TpAllReduce<A>* act = nullptr;
  if constexpr (kBf16) act = &comm_bf16;
  std::conditional_t<kBf16, kernels::CpuBf16Backend, kernels::CpuBackend<float>> be(16, a.threads);
  model::Model<float, A> m(mc, be, {}, &comm, act);
  m.init(1);
  const auto buckets = trainer::make_grad_buckets(m.table, int64_t{1} << 22);
  std::vector<int32_t> idx(static_cast<size_t>(n)), tgt(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {  // this DP rank's windows, the same on its TP ranks
    idx[static_cast<size_t>(i)] =
        static_cast<int32_t>((i * 7919 + grid.dp_rank * 104729) % mc.vocab_size);
    tgt[static_cast<size_t>(i)] = static_cast<int32_t>((i * 31 + 5) % mc.vocab_size);
  }
  kernels::AdamWHyper h;
  h.lr = 1e-4;
  double seconds = 0;
  for (int s = 0; s <= a.steps; ++s) {  // step 0 warms up, uncounted
    counting = s > 0;
    MPI_Barrier(MPI_COMM_WORLD);
    const auto t0 = std::chrono::steady_clock::now();
    m.zero_grad();
    trainer::GradReducer reducer(m.grads, buckets, grid.dp);
    m.forward(idx, tgt, B, T);
    m.backward([&](int64_t from) { reducer.ready(from); });
    reducer.finish(1.0 / grid.dp_size);
    m.adamw_step(h, s + 1);
    MPI_Barrier(MPI_COMM_WORLD);
    if (s > 0)
      seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  counting = false;
  const Paper p = on_paper(mc, m.table, n, grid.tp_size, grid.dp_size, kBf16 ? 2 : 4);
  double sums[2] = {tp_bytes / a.steps, dp_bytes / a.steps}, most[2];
  MPI_Allreduce(sums, most, 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  if (world_rank == 0) {
    const double tokens = static_cast<double>(a.batch) * T * a.steps;
    std::printf(
        "%s (RWKV-%d, %d layers, C %d, V %d), global batch %d x %d, tp %d x dp %d, "
        "%d thread(s) per rank, %s activations, %d steps\n",
        a.preset.c_str(), mc.version, mc.n_layer, mc.n_embd, mc.vocab_size, a.batch, T,
        grid.tp_size, grid.dp_size, a.threads, a.activations.c_str(), a.steps);
    std::printf(
        "  all-reduce payload per step and rank: TP %.3f MB measured, %.3f MB on paper; "
        "DP %.3f MB measured, %.3f MB on paper\n",
        most[0] / 1e6, p.tp / 1e6, most[1] / 1e6, p.dp / 1e6);
    std::printf(
        "  sent per rank by a ring all-reduce (2 (p-1)/p x payload): TP %.3f MB, "
        "DP %.3f MB\n",
        most[0] * 2.0 * (grid.tp_size - 1) / grid.tp_size / 1e6,
        most[1] * 2.0 * (grid.dp_size - 1) / grid.dp_size / 1e6);
    std::printf("  %.0f tokens/s (%.3f s per step)\n", tokens / seconds, seconds / a.steps);
  }
}

}  // namespace

int main(int argc, char** argv) {
  MpiSession mpi(&argc, &argv);
  try {
    const Args a = parse(argc, argv);
    ConfigRequest req;
    req.sets = {"model.preset=" + a.preset, "parallel.tp=" + std::to_string(a.tp)};
    const Config cfg = load_config(req);
    const model::ModelConfig mc = model::model_config_from(cfg);
    const trainer::ParallelGrid grid(MPI_COMM_WORLD, a.tp);
    if (a.batch % grid.dp_size != 0) throw Error("bench_tp: --batch must be a multiple of dp");
    g_tp = grid.tp;
    g_dp = grid.dp;
    if (a.activations == "bf16")
      run<kernels::Bf16>(a, mc, grid, mpi.rank);
    else
      run<float>(a, mc, grid, mpi.rank);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_tp: %s\n", e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  return 0;
}
