#pragma once
// The CUDA sources of kernels/cuda/ run on the CPU, for the tests: a CUDA file rewritten by
// to_host.py (a launch `k<<<grid, block, smem, stream>>>(args)` becomes a call of
// ::rwkv::emu::launch(grid, block, smem, stream).run) is compiled by the host compiler
// with this header included first (-include) and RWKV_CUDA_EMULATION defined.
//
// What it gives a kernel: every thread of a block is a fiber (Boost.Context) of one OS
// thread; __syncthreads() and the warp intrinsics switch fibers and wait for the block's
// (or the warp's) other threads; between two barriers the threads run one after the other
// in an order shuffled anew each time, and the blocks of a grid one at a time in a
// shuffled order (a GPU gives no order), so a missing barrier, or a block reading what
// another writes, gives wrong results about half the time per pair; `__shared__`
// variables are function statics; dynamic shared memory (256-byte aligned) and device
// allocations are filled with bytes 0xFF (NaN for fp32 and bf16) before use, so a read of
// what no thread wrote shows as on the GPU tests' poisoned buffers. A barrier some of the
// block's threads can never reach aborts, naming how many wait where. The launch
// configuration is checked as the GPU does (threads per block, grid size, dynamic shared
// memory over the 227 KiB of an sm_90 block, or over 48 KiB when no kernel was allowed as
// much with cudaFuncSetAttribute: the launch does not name its kernel here, so this is
// weaker than the GPU's check of that kernel's own attribute): a bad launch runs nothing
// and leaves its error for cudaGetLastError.
//
// What it gives the host code: the CUDA runtime, cuBLAS and NCCL calls the sources make are
// macros for functions of rwkv::emu working on host memory, synchronously: one emulated
// sm_90 device ("emulated sm_90", 16 GiB, 132 SMs, 227 KiB of opt-in shared memory per
// block; an allocation over 1 GiB is lazily zeroed pages, not poisoned; every allocation
// ends at a page that cannot be touched, so that an access past its end stops the program
// naming it, as compute-sanitizer's memcheck would),
// streams and events that order nothing (every call completes before it returns), cuBLAS's
// GemmEx computed in double from its fp32 or bf16 operands and rounded once to its output
// type (with CUBLAS_COMPUTE_32F_FAST_16BF the fp32 operands rounded to bf16 first), cub's
// radix sort of pairs as a stable sort on the key bits; NCCL's all-reduce over MPI between
// processes (emulated_nccl.cpp). The number of GPUs is RWKV_EMULATED_GPUS (default 1).
//
// Races (emulated_races.h): built with RWKV_EMULATED_RACES, the kernels and their tests
// under ThreadSanitizer, every thread is a TSan fiber and only the barriers order them, so
// two threads of a block touching one element (one writing) without a barrier between are
// reported, whatever order they ran in (in the first and the last block of each grid).
//
// What it cannot show: races between the blocks of a grid (they run one after the other),
// a tensor-core tile's result read back by lane 0 without a __syncwarp (lane 0 computes
// the whole tile here; tests/kernels/block_emulator.h checks every lane for the chunked
// WKV bodies), static shared memory left by the block before (not re-poisoned), speed and
// resources (registers, occupancy), the tensor cores (kernels/cuda/warp_tile.h's host
// arithmetic runs instead, with its alignment checks), and the device's own rounding of
// its math functions.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

#undef __shared__
#define __shared__ static
#undef __launch_bounds__
#define __launch_bounds__(...)

// CUDA's min and max of two numbers, which device code calls unqualified.
using std::max;
using std::min;

inline uint3 threadIdx;
inline uint3 blockIdx;
inline dim3 blockDim;
inline dim3 gridDim;

namespace rwkv::emu {

// A launch's configuration but its stream (streams order nothing here: every launch has
// run when it returns).
struct LaunchConfig {
  dim3 grid, block;
  size_t smem = 0;
};

// Runs thread_body once for every thread of every block of the grid (threadIdx, blockIdx,
// blockDim and gridDim set for each), or records the launch error and runs nothing.
void run_grid(const LaunchConfig& cfg, const std::function<void()>& thread_body);

void sync_block();  // __syncthreads
void sync_warp();   // __syncwarp
// The value `lane` of the calling thread's warp put in with this call (its own value when
// that lane is not in the block).
uint64_t exchange_in_warp(uint64_t mine, int lane);
int lane_id();
void* dynamic_shared();

struct Launch {
  LaunchConfig cfg;
  // call(args...) on every thread: call is a lambda calling the kernel, so that its
  // template arguments are deduced as in the launch; the arguments are copied once, as a
  // launch copies them to the device.
  template <typename Call, typename... Args>
  void run(Call&& call, Args&&... args) const {
    std::tuple<std::decay_t<Args>...> copy(std::forward<Args>(args)...);
    run_grid(cfg, [&] { std::apply(call, copy); });
  }
};

inline Launch launch(dim3 grid, dim3 block, size_t smem = 0, cudaStream_t = nullptr) {
  return {{grid, block, smem}};
}

template <typename T>
T shfl_xor(T v, int lane_mask) {
  static_assert(sizeof(T) <= sizeof(uint64_t) && std::is_trivially_copyable_v<T>);
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof v);
  bits = exchange_in_warp(bits, lane_id() ^ lane_mask);
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

// The CUDA runtime.
cudaError_t malloc_device(void** p, size_t bytes);
template <typename T>
cudaError_t malloc_device(T** p, size_t bytes) {
  return malloc_device(reinterpret_cast<void**>(p), bytes);
}
cudaError_t free_device(void* p);
cudaError_t memcpy_sync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t memcpy_async(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                         cudaStream_t stream = nullptr);
cudaError_t memset_sync(void* p, int value, size_t bytes);
cudaError_t memset_async(void* p, int value, size_t bytes, cudaStream_t stream = nullptr);
cudaError_t stream_create(cudaStream_t* s);
cudaError_t stream_create_with_flags(cudaStream_t* s, unsigned flags);
cudaError_t stream_destroy(cudaStream_t s);
cudaError_t stream_synchronize(cudaStream_t s);
cudaError_t stream_wait_event(cudaStream_t s, cudaEvent_t e, unsigned flags = 0);
cudaError_t device_synchronize();
cudaError_t get_last_error();
cudaError_t peek_at_last_error();
const char* error_name(cudaError_t e);
const char* error_string(cudaError_t e);
cudaError_t get_device_count(int* n);
cudaError_t get_device(int* d);
cudaError_t set_device(int d);
cudaError_t get_device_properties(cudaDeviceProp* prop, int device);
cudaError_t device_get_attribute(int* value, cudaDeviceAttr attr, int device);
cudaError_t mem_get_info(size_t* free_bytes, size_t* total_bytes);
cudaError_t event_create(cudaEvent_t* e);
cudaError_t event_create_with_flags(cudaEvent_t* e, unsigned flags);
cudaError_t event_destroy(cudaEvent_t e);
cudaError_t event_record(cudaEvent_t e, cudaStream_t s = nullptr);
cudaError_t event_synchronize(cudaEvent_t e);
cudaError_t event_elapsed_time(float* ms, cudaEvent_t start, cudaEvent_t end);
cudaError_t runtime_get_version(int* v);
cudaError_t driver_get_version(int* v);
cudaError_t func_set_attribute(const void* kernel, cudaFuncAttribute attr, int value);
template <typename T>
cudaError_t func_set_attribute(T* kernel, cudaFuncAttribute attr, int value) {
  return func_set_attribute(reinterpret_cast<const void*>(kernel), attr, value);
}

// cuBLAS.
cublasStatus_t blas_create(cublasHandle_t* h);
cublasStatus_t blas_destroy(cublasHandle_t h);
cublasStatus_t blas_set_stream(cublasHandle_t h, cudaStream_t s);
cublasStatus_t blas_get_stream(cublasHandle_t h, cudaStream_t* s);
cublasStatus_t blas_set_math_mode(cublasHandle_t h, cublasMath_t mode);
cublasStatus_t blas_set_workspace(cublasHandle_t h, void* workspace, size_t bytes);
cublasStatus_t blas_get_property(libraryPropertyType type, int* value);
const char* blas_status_string(cublasStatus_t s);
cublasStatus_t blas_gemm_ex(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                            int n, int k, const void* alpha, const void* a, cudaDataType a_type,
                            int lda, const void* b, cudaDataType b_type, int ldb, const void* beta,
                            void* c, cudaDataType c_type, int ldc, cublasComputeType_t compute,
                            cublasGemmAlgo_t algo);

// NCCL: versions and error strings here; the collectives the trainer calls over MPI in
// emulated_nccl.cpp (linked by the trainer's emulated build only).
ncclResult_t nccl_get_version(int* v);
const char* nccl_error_string(ncclResult_t r);
ncclResult_t nccl_get_unique_id(ncclUniqueId* id);
ncclResult_t nccl_comm_init_rank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank);
ncclResult_t nccl_comm_destroy(ncclComm_t comm);
ncclResult_t nccl_all_reduce(const void* send, void* recv, size_t count, ncclDataType_t type,
                             ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream);

// cub's radix sort of (key, value) pairs: a stable sort on bits [begin_bit, end_bit).
void sort_pairs(const void* keys_in, void* keys_out, const void* values_in, void* values_out, int n,
                int key_bytes, int value_bytes, int begin_bit, int end_bit);

}  // namespace rwkv::emu

inline void __syncthreads() { rwkv::emu::sync_block(); }
inline void __syncwarp(unsigned = 0xffffffffu) { rwkv::emu::sync_warp(); }
template <typename T>
T __shfl_xor_sync(unsigned, T v, int lane_mask, int = 32) {
  return rwkv::emu::shfl_xor(v, lane_mask);
}

namespace cub {
struct DeviceRadixSort {
  template <typename K, typename V>
  static cudaError_t SortPairs(void* temp, size_t& temp_bytes, const K* keys_in, K* keys_out,
                               const V* values_in, V* values_out, int n, int begin_bit = 0,
                               int end_bit = int(sizeof(K) * 8), cudaStream_t = nullptr) {
    if (temp == nullptr) {
      temp_bytes = 1;
      return cudaSuccess;
    }
    rwkv::emu::sort_pairs(keys_in, keys_out, values_in, values_out, n, int(sizeof(K)),
                          int(sizeof(V)), begin_bit, end_bit);
    return cudaSuccess;
  }
};
}  // namespace cub

// The calls of the sources, by name, to the functions above (after the real headers, which
// declare the real ones; nothing of libcudart, cuBLAS or NCCL is linked).
#undef cudaMalloc
#define cudaMalloc ::rwkv::emu::malloc_device
#undef cudaFree
#define cudaFree ::rwkv::emu::free_device
#undef cudaMemcpy
#define cudaMemcpy ::rwkv::emu::memcpy_sync
#undef cudaMemcpyAsync
#define cudaMemcpyAsync ::rwkv::emu::memcpy_async
#undef cudaMemset
#define cudaMemset ::rwkv::emu::memset_sync
#undef cudaMemsetAsync
#define cudaMemsetAsync ::rwkv::emu::memset_async
#undef cudaStreamCreate
#define cudaStreamCreate ::rwkv::emu::stream_create
#undef cudaStreamCreateWithFlags
#define cudaStreamCreateWithFlags ::rwkv::emu::stream_create_with_flags
#undef cudaStreamDestroy
#define cudaStreamDestroy ::rwkv::emu::stream_destroy
#undef cudaStreamSynchronize
#define cudaStreamSynchronize ::rwkv::emu::stream_synchronize
#undef cudaStreamWaitEvent
#define cudaStreamWaitEvent ::rwkv::emu::stream_wait_event
#undef cudaDeviceSynchronize
#define cudaDeviceSynchronize ::rwkv::emu::device_synchronize
#undef cudaGetLastError
#define cudaGetLastError ::rwkv::emu::get_last_error
#undef cudaPeekAtLastError
#define cudaPeekAtLastError ::rwkv::emu::peek_at_last_error
#undef cudaGetErrorName
#define cudaGetErrorName ::rwkv::emu::error_name
#undef cudaGetErrorString
#define cudaGetErrorString ::rwkv::emu::error_string
#undef cudaGetDeviceCount
#define cudaGetDeviceCount ::rwkv::emu::get_device_count
#undef cudaGetDevice
#define cudaGetDevice ::rwkv::emu::get_device
#undef cudaSetDevice
#define cudaSetDevice ::rwkv::emu::set_device
#undef cudaGetDeviceProperties
#define cudaGetDeviceProperties ::rwkv::emu::get_device_properties
#undef cudaDeviceGetAttribute
#define cudaDeviceGetAttribute ::rwkv::emu::device_get_attribute
#undef cudaMemGetInfo
#define cudaMemGetInfo ::rwkv::emu::mem_get_info
#undef cudaEventCreate
#define cudaEventCreate ::rwkv::emu::event_create
#undef cudaEventCreateWithFlags
#define cudaEventCreateWithFlags ::rwkv::emu::event_create_with_flags
#undef cudaEventDestroy
#define cudaEventDestroy ::rwkv::emu::event_destroy
#undef cudaEventRecord
#define cudaEventRecord ::rwkv::emu::event_record
#undef cudaEventSynchronize
#define cudaEventSynchronize ::rwkv::emu::event_synchronize
#undef cudaEventElapsedTime
#define cudaEventElapsedTime ::rwkv::emu::event_elapsed_time
#undef cudaRuntimeGetVersion
#define cudaRuntimeGetVersion ::rwkv::emu::runtime_get_version
#undef cudaDriverGetVersion
#define cudaDriverGetVersion ::rwkv::emu::driver_get_version
#undef cudaFuncSetAttribute
#define cudaFuncSetAttribute ::rwkv::emu::func_set_attribute
#undef cublasCreate
#define cublasCreate ::rwkv::emu::blas_create
#undef cublasDestroy
#define cublasDestroy ::rwkv::emu::blas_destroy
#undef cublasSetStream
#define cublasSetStream ::rwkv::emu::blas_set_stream
#undef cublasGetStream
#define cublasGetStream ::rwkv::emu::blas_get_stream
#undef cublasSetMathMode
#define cublasSetMathMode ::rwkv::emu::blas_set_math_mode
#undef cublasSetWorkspace
#define cublasSetWorkspace ::rwkv::emu::blas_set_workspace
#undef cublasGetProperty
#define cublasGetProperty ::rwkv::emu::blas_get_property
#undef cublasGetStatusString
#define cublasGetStatusString ::rwkv::emu::blas_status_string
#undef cublasGemmEx
#define cublasGemmEx ::rwkv::emu::blas_gemm_ex
#undef ncclGetVersion
#define ncclGetVersion ::rwkv::emu::nccl_get_version
#undef ncclGetErrorString
#define ncclGetErrorString ::rwkv::emu::nccl_error_string
#undef ncclGetUniqueId
#define ncclGetUniqueId ::rwkv::emu::nccl_get_unique_id
#undef ncclCommInitRank
#define ncclCommInitRank ::rwkv::emu::nccl_comm_init_rank
#undef ncclCommDestroy
#define ncclCommDestroy ::rwkv::emu::nccl_comm_destroy
#undef ncclAllReduce
#define ncclAllReduce ::rwkv::emu::nccl_all_reduce
