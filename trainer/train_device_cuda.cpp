// train.device: cuda (trainer/train_device.h).
#include <cuda_runtime_api.h>
#include <unistd.h>

#include <algorithm>
#include <sstream>
#include <type_traits>

#include "common/error.h"
#include "common/mpi_check.h"
#include "common/mpi_util.h"
#include "kernels/cuda/backend_cuda.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/wkv6.h"
#include "kernels/cuda/wkv7.h"
#include "model/model_config.h"
#include "trainer/nccl_comm.h"
#include "trainer/tp_comm_nccl.h"
#include "trainer/train_device.h"

namespace rwkv::trainer {

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

std::string host_name() {
  char buf[256] = {};
  gethostname(buf, sizeof(buf) - 1);
  return buf;
}

// The node-local rank and the number of ranks on this node.
std::pair<int, int> local_rank(MPI_Comm world) {
  MPI_Comm node = MPI_COMM_NULL;
  int world_rank = 0, rank = 0, size = 1;
  MPI_CHECK(MPI_Comm_rank(world, &world_rank));
  MPI_CHECK(MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, world_rank, MPI_INFO_NULL, &node));
  MPI_CHECK(MPI_Comm_rank(node, &rank));
  MPI_CHECK(MPI_Comm_size(node, &size));
  MPI_CHECK(MPI_Comm_free(&node));
  return {rank, size};
}

// Selects this rank's GPU: the node-local rank's when the rank sees every GPU of the
// node, GPU 0 when the launcher gave each rank its own (one visible, e.g. srun
// --gpus-per-task=1 or a CUDA_VISIBLE_DEVICES per rank); throws ConfigError otherwise.
int select_gpu(MPI_Comm world) {
  const auto [rank, ranks] = local_rank(world);
  int count = 0;
  const cudaError_t rc = cudaGetDeviceCount(&count);
  if (rc != cudaSuccess || count == 0) {
    cudaGetLastError();
    throw ConfigError(
        "train.device: cuda, but no GPU is visible on " + host_name() + " (" +
        (rc != cudaSuccess ? std::string(cudaGetErrorString(rc)) : std::string("no device")) + ")");
  }
  if (ranks > count && count != 1)
    throw ConfigError("train.device: cuda: " + std::to_string(ranks) + " ranks on " + host_name() +
                      " but " + std::to_string(count) +
                      " GPUs visible to each; start one rank per GPU (e.g. srun "
                      "--ntasks-per-node=" +
                      std::to_string(count) + ")");
  const int gpu = ranks > count ? 0 : rank;
  CUDA_CHECK(cudaSetDevice(gpu));
  return gpu;
}

// A head size the CUDA WKV kernels are not built for, or train.wkv: chunked on a card
// whose blocks cannot have the chunked backward's shared memory, fails here, before any
// step (check_cuda_head_size, check_chunked_wkv_memory).
void check_wkv_kernels(const Config& cfg) {
  const model::ModelConfig mc = model::model_config_from(cfg);
  check_cuda_head_size(mc.version, mc.head_size);
  if (mc.version < 5 || !chunked_wkv(cfg)) return;
  const size_t need = mc.version == 7 ? cuda::wkv7_chunked_shared_bytes(mc.head_size)
                                      : cuda::wkv6_chunked_shared_bytes(mc.head_size);
  check_chunked_wkv_memory(mc.version, mc.head_size, need, cuda::shared_memory_optin(),
                           cuda::device_description());
}

// The arena: train.gpu_memory GiB, or all the free memory but 2 GiB.
size_t arena_bytes(const Config& cfg) {
  size_t free_b = 0, total_b = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  const double want = cfg.get_float("train.gpu_memory");
  const double reserve = 2 * kGiB;
  const double bytes = want > 0 ? want * kGiB : static_cast<double>(free_b) - reserve;
  if (bytes <= 0 || bytes > static_cast<double>(free_b)) {
    std::ostringstream m;
    m << "train.gpu_memory: " << (want > 0 ? std::to_string(want) + " GiB" : "auto")
      << " does not fit the GPU's free memory (" << static_cast<double>(free_b) / kGiB
      << " GiB free of " << static_cast<double>(total_b) / kGiB << ")";
    throw ConfigError(m.str());
  }
  return static_cast<size_t>(bytes);
}

// The DP reduction through NCCL on a stream of its own. ready(from): the buckets at or
// after `from` have all their kernels queued on the backend's stream; an event there
// makes the communication stream wait for them, so the all-reduces run while backward
// goes on. finish: the backend's stream waits for the communication, then scales.
template <typename A>
struct NcclGradSync final : GradSync {
  NcclGradSync(float* grads_, const std::vector<GradBucket>& buckets_, MPI_Comm group,
               kernels::CudaBackend<A>& be_)
      : grads(grads_), buckets(buckets_), nccl(group), be(be_) {
    if (!nccl.comm) return;
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&queued, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&reduced, cudaEventDisableTiming));
  }
  ~NcclGradSync() override {
    if (reduced) cudaEventDestroy(reduced);
    if (queued) cudaEventDestroy(queued);
    if (stream) cudaStreamDestroy(stream);
  }
  NcclGradSync(const NcclGradSync&) = delete;
  NcclGradSync& operator=(const NcclGradSync&) = delete;

  void start() override { issued = 0; }

  void ready(int64_t from) override {
    if (!nccl.comm || issued == buckets.size() || buckets[issued].offset < from) return;
    CUDA_CHECK(cudaEventRecord(queued, be.stream));
    CUDA_CHECK(cudaStreamWaitEvent(stream, queued, 0));
    for (; issued < buckets.size() && buckets[issued].offset >= from; ++issued) {
      float* b = grads + buckets[issued].offset;
      NCCL_CHECK(ncclAllReduce(b, b, static_cast<size_t>(buckets[issued].size), ncclFloat, ncclSum,
                               nccl.comm, stream));
    }
  }

  void finish(double scale) override {
    if (nccl.comm) {
      ready(0);
      CUDA_CHECK(cudaEventRecord(reduced, stream));
      CUDA_CHECK(cudaStreamWaitEvent(be.stream, reduced, 0));
    }
    if (scale == 1.0) return;
    for (const GradBucket& b : buckets)
      be.scale(grads + b.offset, static_cast<float>(scale), b.size);
  }

  float* grads;
  const std::vector<GradBucket>& buckets;
  NcclComm nccl;
  kernels::CudaBackend<A>& be;
  cudaStream_t stream = nullptr;
  cudaEvent_t queued = nullptr, reduced = nullptr;
  size_t issued = 0;
};

// A: the activations (train.activations): float, or Bf16 (then the products are bf16).
template <typename A>
struct CudaTrainDevice final : TrainDevice {
  static constexpr bool kBf16Activations = std::is_same_v<A, kernels::Bf16>;
  CudaTrainDevice(const Config& cfg, const ParallelGrid& grid, int gpu_)
      : gpu(gpu_),
        be(arena_bytes(cfg),
           kBf16Activations || cfg.get_string("train.matmul_precision") == "bf16"
               ? kernels::MatmulPrecision::bf16
               : kernels::MatmulPrecision::fp32,
           chunked_wkv(cfg) ? kernels::WkvKernels::chunked : kernels::WkvKernels::sequential),
        tp_group(grid.tp),
        dp_comm(grid.dp) {
    // What the arena's out-of-memory error (a step that needs more than check_step_memory
    // counts: WKV workspaces, scratch) tells a user of rwkv train.
    be.arena.advice =
        "lower train.micro_batch_size or model.ctx_len, set train.recompute: full, or raise "
        "train.gpu_memory (the arena's size; auto: the GPU's free memory but 2 GiB)";
  }
  kernels::Backend<float>* backend_fp32() override {
    if constexpr (kBf16Activations)
      return nullptr;
    else
      return &be;
  }
  kernels::Backend<float, kernels::Bf16>* backend_bf16() override {
    if constexpr (kBf16Activations)
      return &be;
    else
      return nullptr;
  }
  // Made on first use, not in the constructor: NCCL's set-up is collective, and the
  // constructor may fail on one rank alone (no GPU, no memory) before the ranks agree.
  model::TpComm<float>& tp_comm() override {
    if (!tp) {
      if (comm_size(tp_group) == 1) {
        tp = std::make_unique<model::TpSolo<float>>();
      } else {
        auto nccl = std::make_unique<TpCommNccl<A>>(tp_group, be);
        if constexpr (kBf16Activations) tp_bf16 = std::make_unique<TpBf16Nccl>(*nccl);
        tp = std::move(nccl);
      }
    }
    return *tp;
  }
  // Null with one rank: the model then needs no sum of activations.
  model::TpAllReduce<kernels::Bf16>* tp_comm_bf16() override {
    tp_comm();
    return tp_bf16.get();
  }
  std::unique_ptr<GradSync> grad_sync(float* grads,
                                      const std::vector<GradBucket>& buckets) override {
    return std::make_unique<NcclGradSync<A>>(grads, buckets, dp_comm, be);
  }
  std::string describe() const override {
    cudaDeviceProp prop{};
    CUDA_CHECK(cudaGetDeviceProperties(&prop, gpu));
    std::ostringstream s;
    s << "GPU " << gpu << " (" << prop.name << "), "
      << (kBf16Activations ? "bf16 activations and " : "")
      << (be.precision == kernels::MatmulPrecision::bf16 ? "bf16" : "fp32") << " products, "
      << static_cast<double>(be.arena.capacity()) / kGiB << " GiB arena";
    return s.str();
  }

  int64_t memory_left() const override { return static_cast<int64_t>(be.arena.largest_free()); }

  int gpu;
  kernels::CudaBackend<A> be;
  MPI_Comm tp_group;
  std::unique_ptr<model::TpComm<float>> tp;
  std::unique_ptr<TpBf16Nccl> tp_bf16;  // declared after tp, which it refers to
  MPI_Comm dp_comm;
};

}  // namespace

std::unique_ptr<TrainDevice> make_cuda_train_device(const Config& cfg, const ParallelGrid& grid,
                                                    MPI_Comm world) {
  const int gpu = select_gpu(world);
  check_wkv_kernels(cfg);
  if (cfg.get_string("train.activations") == "bf16")
    return std::make_unique<CudaTrainDevice<kernels::Bf16>>(cfg, grid, gpu);
  return std::make_unique<CudaTrainDevice<float>>(cfg, grid, gpu);
}

}  // namespace rwkv::trainer
