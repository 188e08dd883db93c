// Where the CPU training step's time goes, op by op: the step of bench_train_step.cpp
// (6 layers, C 512, head 64, vocab 8192, B 4, T 512, fp32; threads: one per CPU) run
// through ProfiledBackend (kernels/profiled_backend.h), per version: after a warm-up
// step, the wall time of each backend op summed over `steps` steps (argument 1,
// default 2), per step, as a markdown table. Usage: bench_train_step_ops [steps]
// [versions] [wkv chunk], e.g. bench_train_step_ops 2 7 16 (the defaults: 2 4567 16).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include "bench/train_step_shape.h"
#include "kernels/cpu/backend_cpu.h"
#include "kernels/profiled_backend.h"

namespace {

void profile(int version, int steps, int chunk) {
  rwkv::kernels::CpuBackend<float> cpu(chunk);
  rwkv::kernels::HostOpClock clock;
  rwkv::kernels::ProfiledBackend<float> be(cpu, &clock);
  bench::TrainStep train_step(version, be);
  train_step();  // warm-up: allocates and first-touches the activations
  clock.reset();
  const auto t0 = std::chrono::steady_clock::now();
  for (int s = 0; s < steps; ++s) train_step();
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() /
      steps;
  std::printf("\nRWKV-%d, %d threads, WKV chunk %d: %.1f ms per step (wall), ops below\n\n%s",
              version, cpu.threads, chunk, ms,
              rwkv::kernels::format_op_profile(clock.totals(), steps).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  const int steps = argc > 1 ? std::max(1, std::stoi(argv[1])) : 2;
  const std::string versions = argc > 2 ? argv[2] : "4567";
  const int chunk = argc > 3 ? std::stoi(argv[3]) : 16;
  for (char v : versions) profile(v - '0', steps, chunk);
}
