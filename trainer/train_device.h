#pragma once
// Where `rwkv train` computes (train.device): the backend the model runs on and the
// collectives that go with its memory.
//   cpu:  kernels::CpuBackend (train.threads threads; 0: this rank's share of the CPUs
//         it may run on, cpu_threads.h), or CpuBf16Backend (train.activations: bf16);
//         TP and DP collectives over MPI on host memory (tp_comm_mpi.h, data_parallel.h).
//   cuda: kernels::CudaBackend on one GPU per rank, the node-local rank's (ranks on a
//         node found with MPI_Comm_split_type); TP and DP collectives through NCCL on
//         device memory, communicators bootstrapped over MPI (nccl_comm.h). The DP
//         all-reduce runs on a stream of its own, each bucket as soon as backward has
//         queued the last kernel writing it, so it overlaps the rest of backward.
// Both are built from the same Config and drive the same training loop.
#include <mpi.h>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "kernels/backend.h"
#include "model/tensor_parallel.h"
#include "trainer/data_parallel.h"
#include "trainer/parallel_grid.h"

namespace rwkv::trainer {

struct TrainDevice {
  virtual ~TrainDevice() = default;
  // The backend, of the device's activations (train.activations): fp32, or bf16; the
  // other is null.
  virtual kernels::Backend<float>* backend_fp32() { return nullptr; }
  virtual kernels::Backend<float, kernels::Bf16>* backend_bf16() { return nullptr; }
  // The TP group's collectives (grid.tp), for the model; the first call is collective
  // over the group (every rank makes it at the same point).
  virtual model::TpComm<float>& tp_comm() = 0;
  // The same group's sum of bf16 activations, on a device whose activations are bf16
  // (null on the others); call it after tp_comm(), on every rank of the group.
  virtual model::TpAllReduce<kernels::Bf16>* tp_comm_bf16() { return nullptr; }
  // The DP reduction of grads [sum of the buckets' sizes] (backend memory) over grid.dp.
  // grads and buckets must outlive it. Collective over grid.dp.
  virtual std::unique_ptr<GradSync> grad_sync(float* grads,
                                              const std::vector<GradBucket>& buckets) = 0;
  // For the log, e.g. "CPU, 2 threads" or "GPU 0 (NVIDIA H100), bf16 products".
  virtual std::string describe() const = 0;
  // The largest block the backend can still allocate, in bytes; -1 where its memory has
  // no fixed budget (the CPU's is the process's).
  virtual int64_t memory_left() const { return -1; }
};

// What a training step will allocate beside what is there before it: the training
// forward's activations (one block of the backend's memory; `recomputed`: the same with
// train.recompute: full) and AdamW's two moments. Throws ConfigError naming
// train.micro_batch_size, train.recompute and train.gpu_memory, with the numbers, when
// they do not fit `left` (TrainDevice::memory_left; -1: no budget). A lower bound: the
// backend's scratch and WKV workspaces, and the evaluation's buffers, come on top.
void check_step_memory(int64_t left, int64_t activations, int64_t recomputed, int64_t moments,
                       bool recompute);

// train.device: cuda runs RWKV-5/6/7's WKV at head sizes 16, 32 and 64 (the CUDA kernels'
// instances; every official preset's is 64). Throws ConfigError naming model.head_size
// otherwise, before the first step (the CPU backend takes any head size).
void check_cuda_head_size(int version, int head_size);

// train.wkv: chunked on a GPU: the chunked RWKV-`version` WKV backward at `head_size` needs
// `need` bytes of shared memory per block (kernels/cuda/wkv{6,7}.h), the card (`device`)
// allows `limit`. Throws ConfigError naming train.wkv, both sizes and the card when it
// does not fit (sm_86/sm_89 cards: 99 KB), before the first step.
void check_chunked_wkv_memory(int version, int head_size, size_t need, size_t limit,
                              const std::string& device);

// The device of train.device for this rank. Throws ConfigError naming the key when it
// cannot be had (a build without CUDA, no GPU, more ranks on a node than GPUs, too
// little GPU memory); the caller makes every rank agree (a rank may fail alone).
// Collective over world.
std::unique_ptr<TrainDevice> make_train_device(const Config& cfg, const ParallelGrid& grid,
                                               MPI_Comm world);

// train.wkv on this config's device: whether RWKV-5/6/7 run the chunked WKV kernels
// (else the sequential ones: the CPU's naive recurrence, the GPU's per-head scan). auto:
// chunked on the CPU, sequential on cuda, whose chunked kernels have not run on a GPU.
bool chunked_wkv(const Config& cfg);

// train.recompute: full (ModelOptions::recompute).
bool recompute_activations(const Config& cfg);

// The cuda device (train_device_cuda.cpp, in builds with the CUDA backend only).
std::unique_ptr<TrainDevice> make_cuda_train_device(const Config& cfg, const ParallelGrid& grid,
                                                    MPI_Comm world);

}  // namespace rwkv::trainer
