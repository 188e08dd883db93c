#include "trainer/train_device.h"

#include <optional>
#include <sstream>
#include <type_traits>

#include "common/byte_size.h"
#include "common/error.h"
#include "kernels/cpu/backend_cpu.h"
#include "kernels/cpu/bf16_activations.h"
#include "kernels/cuda/device.h"
#include "trainer/cpu_threads.h"
#include "trainer/tp_comm_mpi.h"

namespace rwkv::trainer {

namespace {

// B: CpuBackend<float> (fp32 activations) or CpuBf16Backend (bf16, the reference).
template <typename B>
struct CpuTrainDevice final : TrainDevice {
  CpuTrainDevice(int threads, const ParallelGrid& grid)
      : be(16, threads), tp_group(grid.tp), tp(grid.tp), dp_comm(grid.dp) {}
  kernels::Backend<float>* backend_fp32() override {
    if constexpr (std::is_same_v<B, kernels::CpuBackend<float>>)
      return &be;
    else
      return nullptr;
  }
  kernels::Backend<float, kernels::Bf16>* backend_bf16() override {
    if constexpr (std::is_same_v<B, kernels::CpuBf16Backend>)
      return &be;
    else
      return nullptr;
  }
  model::TpComm<float>& tp_comm() override { return tp; }
  model::TpAllReduce<kernels::Bf16>* tp_comm_bf16() override {
    if constexpr (std::is_same_v<B, kernels::CpuBf16Backend>) {
      if (!tp_bf16) tp_bf16.emplace(tp_group);
      return &*tp_bf16;
    } else {
      return nullptr;
    }
  }
  std::unique_ptr<GradSync> grad_sync(float* grads,
                                      const std::vector<GradBucket>& buckets) override {
    return std::make_unique<MpiGradSync>(grads, buckets, dp_comm);
  }
  std::string describe() const override {
    std::ostringstream s;
    int threads = 0;
    if constexpr (std::is_same_v<B, kernels::CpuBf16Backend>)
      threads = be.fp32.threads;
    else
      threads = be.threads;
    s << "CPU, " << threads << " thread" << (threads > 1 ? "s" : "");
    if constexpr (std::is_same_v<B, kernels::CpuBf16Backend>) s << ", bf16 activations";
    return s.str();
  }

  B be;  // WKV chunk 16
  MPI_Comm tp_group;
  TpCommMpi<float> tp;
  std::optional<TpBf16Mpi> tp_bf16;  // made by the first tp_comm_bf16()
  MPI_Comm dp_comm;
};

}  // namespace

std::unique_ptr<TrainDevice> make_train_device(const Config& cfg, const ParallelGrid& grid,
                                               MPI_Comm world) {
  const std::string device = cfg.get_string("train.device");
  if (device == "cuda") {
#ifdef RWKV_HAVE_CUDA
    return make_cuda_train_device(cfg, grid, world);
#else
    throw ConfigError(
        "train.device: cuda, but this rwkv was built without the CUDA backend (configure with "
        "-DRWKV_CUDA=ON on a machine with the CUDA toolkit)");
#endif
  }
  const int threads = static_cast<int>(cfg.get_int("train.threads"));
  const int n = threads > 0 ? threads : default_cpu_threads(world);
  if (cfg.get_string("train.activations") == "bf16")
    return std::make_unique<CpuTrainDevice<kernels::CpuBf16Backend>>(n, grid);
  return std::make_unique<CpuTrainDevice<kernels::CpuBackend<float>>>(n, grid);
}

void check_step_memory(int64_t left, int64_t activations, int64_t recomputed, int64_t moments,
                       bool recompute) {
  if (left < 0 || activations + moments <= left) return;
  std::ostringstream m;
  m << "train.micro_batch_size: a training step needs " << byte_size(double(activations))
    << " for the forward's activations";
  if (recompute) m << " (train.recompute: full)";
  m << " and " << byte_size(double(moments)) << " for AdamW's moments, more than the "
    << byte_size(double(left)) << " the device has left after the parameters and gradients; "
    << "lower train.micro_batch_size or model.ctx_len";
  if (!recompute) m << ", set train.recompute: full (" << byte_size(double(recomputed)) << ")";
  m << " or raise train.gpu_memory";
  throw ConfigError(m.str());
}

void check_cuda_head_size(int version, int head_size) {
  if (version < 5 || head_size == 16 || head_size == 32 || head_size == 64) return;
  throw ConfigError("model.head_size: " + std::to_string(head_size) +
                    " is not one the CUDA WKV kernels are built for (16, 32 or 64) with "
                    "train.device: cuda; train on the CPU or pick one of those");
}

void check_chunked_wkv_memory(int version, int head_size, size_t need, size_t limit,
                              const std::string& device) {
  if (need <= limit) return;
  const std::string what = "the chunked WKV backward of RWKV-" + std::to_string(version) +
                           " at head size " + std::to_string(head_size);
  throw ConfigError("train.wkv: chunked: " + cuda::shared_memory_error(what, need, limit, device) +
                    ": use train.wkv: sequential");
}

bool chunked_wkv(const Config& cfg) {
  const std::string wkv = cfg.get_string("train.wkv");
  return wkv == "auto" ? cfg.get_string("train.device") == "cpu" : wkv == "chunked";
}

bool recompute_activations(const Config& cfg) {
  return cfg.get_string("train.recompute") == "full";
}

}  // namespace rwkv::trainer
