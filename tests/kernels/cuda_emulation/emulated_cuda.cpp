// The CPU side of emulated_cuda.h: the fibers that run a block's threads, the checks of a
// launch, and the runtime, cuBLAS and cub calls on host memory.
#include "tests/kernels/cuda_emulation/emulated_cuda.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <boost/context/fiber.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <numeric>
#include <random>
#include <vector>

#include "tests/kernels/cuda_emulation/emulated_races.h"

#if defined(RWKV_EMULATED_RACES)
// A race ends the test at its first report (TSan's default prints it and goes on).
extern "C" const char* __tsan_default_options() { return "halt_on_error=1"; }
#endif

namespace rwkv::emu {

namespace {

constexpr int kWarp = 32;
constexpr int kMaxThreads = 1024;
constexpr size_t kStackBytes = 256 * 1024;
constexpr size_t kDefaultSharedLimit = 48 * 1024;
constexpr size_t kSharedAlign = 256;
constexpr int kSharedOptin = 232448;  // an sm_90 block's opt-in limit (227 KiB)
constexpr int kSmCount = 132;
constexpr size_t kDeviceMemory = size_t(16) << 30;  // the emulated card's memory

cudaError_t last_error = cudaSuccess;

cudaError_t fail(cudaError_t e) {
  last_error = e;
  return e;
}

enum class State { run, at_block, at_warp, done };

namespace ctx = boost::context;

// A fiber's stack: one of the pool's, kept from launch to launch.
struct ReusedStack {
  char* base;
  ctx::stack_context allocate() {
    ctx::stack_context sc;
    sc.size = kStackBytes;
    sc.sp = base + kStackBytes;
    return sc;
  }
  void deallocate(ctx::stack_context&) noexcept {}
};

struct Fiber {
  ctx::fiber self;       // where the thread goes on
  ctx::fiber scheduler;  // where it returns to when it waits or ends
  uint3 tid{};
  State state = State::run;
  char* stack = nullptr;
};

struct Block {
  std::vector<Fiber> fibers;
  std::vector<uint64_t> slots;  // exchange_in_warp's values, by thread
  // The dynamic shared memory, aligned as a GPU's (the base of a block's shared memory).
  unsigned char* shared = nullptr;
  size_t shared_capacity = 0;
  const std::function<void()>* body = nullptr;
  int current = -1;
  // How many times each barrier has opened: the block's, then each warp's.
  unsigned opened[1 + kMaxThreads / kWarp] = {};
};

Block blk;
// The most dynamic shared memory any kernel was allowed
// (cudaFuncAttributeMaxDynamicSharedMemorySize).
size_t dynamic_limit = kDefaultSharedLimit;

// The calling thread waits at the block's barrier (at_block) or its warp's (at_warp);
// `orders_memory`: a barrier (__syncthreads, __syncwarp), not a shuffle's exchange.
void wait(State s, bool orders_memory) {
  Fiber& f = blk.fibers[size_t(blk.current)];
  f.state = s;
  const int scope = s == State::at_block ? 0 : 1 + blk.current / kWarp;
  void* sync = orders_memory ? races::arrive(scope, blk.opened[scope]) : nullptr;
  races::leave();
  f.scheduler = std::move(f.scheduler).resume();
  races::depart(sync);
}

[[noreturn]] void deadlock(int n) {
  int at_block = 0, at_warp = 0, done = 0;
  for (int t = 0; t < n; ++t) {
    const Fiber& f = blk.fibers[size_t(t)];
    at_block += f.state == State::at_block;
    at_warp += f.state == State::at_warp;
    done += f.state == State::done;
  }
  std::fprintf(stderr,
               "emulated CUDA: block %u of the grid cannot go on: of its %d threads %d wait at "
               "__syncthreads, %d at a warp barrier (shuffle or __syncwarp) and %d have "
               "returned (a barrier not every thread reaches)\n",
               blockIdx.x, n, at_block, at_warp, done);
  std::abort();
}

// Runs the block's n threads to their end: a fiber runs until it waits at a barrier or
// returns; a barrier opens when every thread of the block (of the warp) that has not
// returned waits at it. Between two barriers the threads run one after the other in an
// order shuffled anew each time (seeded by the block index: the same every run), so that a
// thread that reads what another writes with no barrier between sees, in about half of
// such pairs, the value from before the write.
void run_block(int n) {
  const unsigned bx = blockDim.x, by = blockDim.y;
  for (int t = 0; t < n; ++t) {
    Fiber& f = blk.fibers[size_t(t)];
    f.tid = {unsigned(t) % bx, unsigned(t) / bx % by, unsigned(t) / (bx * by)};
    f.state = State::run;
    f.self = ctx::fiber(std::allocator_arg, ReusedStack{f.stack}, [t](ctx::fiber&& scheduler) {
      Fiber& me = blk.fibers[size_t(t)];
      me.scheduler = std::move(scheduler);
      races::thread_begin(t, blockIdx.x, blockIdx.y, blockIdx.z);
      (*blk.body)();
      races::thread_end();
      me.state = State::done;
      races::leave();
      return std::move(me.scheduler);
    });
  }
  std::vector<int> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937 rng(blockIdx.x + 1000003u * blockIdx.y);
  for (;;) {
    std::shuffle(order.begin(), order.end(), rng);
    for (int t : order) {
      Fiber& f = blk.fibers[size_t(t)];
      if (f.state != State::run) continue;
      blk.current = t;
      threadIdx = f.tid;
      races::enter(t);
      f.self = std::move(f.self).resume();
    }
    int alive = 0, at_block = 0;
    for (int t = 0; t < n; ++t) {
      alive += blk.fibers[size_t(t)].state != State::done;
      at_block += blk.fibers[size_t(t)].state == State::at_block;
    }
    if (alive == 0) return;
    bool opened = false;
    if (at_block == alive) {
      for (int t = 0; t < n; ++t)
        if (blk.fibers[size_t(t)].state == State::at_block)
          blk.fibers[size_t(t)].state = State::run;
      ++blk.opened[0];
      opened = true;
    } else {
      for (int w0 = 0; w0 < n; w0 += kWarp) {
        const int w1 = std::min(n, w0 + kWarp);
        int waiting = 0, live = 0;
        for (int t = w0; t < w1; ++t) {
          live += blk.fibers[size_t(t)].state != State::done;
          waiting += blk.fibers[size_t(t)].state == State::at_warp;
        }
        if (waiting == 0 || waiting != live) continue;
        for (int t = w0; t < w1; ++t)
          if (blk.fibers[size_t(t)].state == State::at_warp)
            blk.fibers[size_t(t)].state = State::run;
        ++blk.opened[1 + w0 / kWarp];
        opened = true;
      }
    }
    if (!opened) deadlock(n);
  }
}

int linear_thread() { return blk.current; }

}  // namespace

void run_grid(const LaunchConfig& cfg, const std::function<void()>& body) {
  const int64_t threads = int64_t(cfg.block.x) * cfg.block.y * cfg.block.z;
  if (threads < 1 || threads > kMaxThreads || cfg.block.z > 64 || cfg.grid.x < 1 ||
      cfg.grid.y < 1 || cfg.grid.z < 1 || cfg.grid.y > 65535 || cfg.grid.z > 65535 ||
      cfg.grid.x > 2147483647u) {
    fail(cudaErrorInvalidConfiguration);
    return;
  }
  if (cfg.smem > dynamic_limit) {
    fail(cudaErrorInvalidValue);
    return;
  }
  const int n = int(threads);
  if (blk.fibers.size() < size_t(n)) {
    const size_t have = blk.fibers.size();
    blk.fibers.resize(size_t(n));
    for (size_t t = have; t < size_t(n); ++t)
      blk.fibers[t].stack = static_cast<char*>(std::malloc(kStackBytes));
  }
  blk.slots.assign(size_t(n), 0);
  if (cfg.smem > blk.shared_capacity) {
    std::free(blk.shared);
    blk.shared_capacity = (cfg.smem + kSharedAlign - 1) / kSharedAlign * kSharedAlign;
    blk.shared = static_cast<unsigned char*>(std::aligned_alloc(kSharedAlign, blk.shared_capacity));
  }
  blk.body = &body;
  blockDim = cfg.block;
  gridDim = cfg.grid;
  const int64_t blocks = int64_t(cfg.grid.x) * cfg.grid.y * cfg.grid.z;
  std::vector<int64_t> order(static_cast<size_t>(blocks));
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937(unsigned(blocks)));
  races::grid_begin();
  for (int64_t b : order) {
    blockIdx = {unsigned(b % cfg.grid.x), unsigned(b / cfg.grid.x % cfg.grid.y),
                unsigned(b / (int64_t(cfg.grid.x) * cfg.grid.y))};
    std::memset(blk.shared, 0xFF, cfg.smem);
    races::block_begin(races::tracks(b, blocks));
    run_block(n);
    races::block_end();
  }
  blk.current = -1;
}

void sync_block() { wait(State::at_block, true); }
void sync_warp() { wait(State::at_warp, true); }

int lane_id() { return linear_thread() % kWarp; }

uint64_t exchange_in_warp(uint64_t mine, int lane) {
  const int t = linear_thread();
  const int w0 = t - t % kWarp;
  blk.slots[size_t(t)] = mine;
  wait(State::at_warp, false);
  const int from = w0 + lane;
  const uint64_t got =
      lane >= 0 && lane < kWarp && size_t(from) < blk.slots.size() ? blk.slots[size_t(from)] : mine;
  wait(State::at_warp, false);  // every lane has read before any lane's next value lands
  return got;
}

void* dynamic_shared() { return blk.shared; }

// The runtime. Device memory is host memory, filled with 0xFF bytes as the GPU tests
// poison their buffers: what a kernel leaves unwritten reads as NaN (an allocation over
// 1 GiB, a trainer's whole arena, is left as zero pages, which take memory only where
// written). Each allocation is mapped on its own between two pages that cannot be touched,
// ending (rounded up to 256 bytes, as cudaMalloc aligns) just before the second: a kernel
// or a copy that reaches past its end, or before the page it starts in, stops the program
// naming the allocation, as compute-sanitizer's memcheck reports it on a GPU; the at most
// 255 bytes between the end and that page (poisoned) are checked when it is freed.
namespace {
constexpr size_t kPoisonedBytes = size_t(1) << 30;
constexpr size_t kPage = 4096;

struct Allocation {
  char* base;     // the mapping, first guard page included
  size_t mapped;  // its bytes, both guard pages included
  size_t bytes;   // what was asked for
};
std::map<uintptr_t, Allocation> allocations;  // by the address handed out

// The allocation one of whose guard pages holds `at`.
const std::pair<const uintptr_t, Allocation>* guarded(uintptr_t at) {
  for (const auto& entry : allocations) {
    const uintptr_t base = uintptr_t(entry.second.base), end = base + entry.second.mapped;
    if ((at >= base && at < base + kPage) || (at >= end - kPage && at < end)) return &entry;
  }
  return nullptr;
}

void on_fault(int sig, siginfo_t* info, void*) {
  const auto* a = guarded(uintptr_t(info->si_addr));
  if (a == nullptr) {
    signal(sig, SIG_DFL);
    raise(sig);
    return;
  }
  char msg[256];
  const int n = std::snprintf(
      msg, sizeof msg,
      "emulated CUDA: an access at byte %lld of a device allocation of %zu bytes at %p, "
      "outside it\n",
      static_cast<long long>(int64_t(uintptr_t(info->si_addr)) - int64_t(a->first)),
      a->second.bytes, reinterpret_cast<void*>(a->first));
  if (n > 0) (void)!write(2, msg, size_t(std::min(n, int(sizeof msg) - 1)));
  std::abort();
}

void catch_faults() {
  static const bool installed = [] {
    struct sigaction sa {};
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGSEGV, &sa, nullptr) == 0;
  }();
  (void)installed;
}
}  // namespace

cudaError_t malloc_device(void** p, size_t bytes) {
  if (bytes > kDeviceMemory) return fail(cudaErrorMemoryAllocation);
  catch_faults();
  const size_t tail = std::max<size_t>(256, (bytes + 255) / 256 * 256);
  const size_t data = (tail + kPage - 1) / kPage * kPage;
  const size_t mapped = data + 2 * kPage;
  void* m = mmap(nullptr, mapped, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) return fail(cudaErrorMemoryAllocation);
  char* base = static_cast<char*>(m);
  if (mprotect(base, kPage, PROT_NONE) != 0 ||
      mprotect(base + kPage + data, kPage, PROT_NONE) != 0) {
    munmap(m, mapped);
    return fail(cudaErrorMemoryAllocation);
  }
  char* user = base + kPage + data - tail;
  if (bytes <= kPoisonedBytes)
    std::memset(user, 0xFF, tail);
  else
    std::memset(user + bytes, 0xFF, tail - bytes);
  allocations[uintptr_t(user)] = {base, mapped, bytes};
  *p = user;
  return cudaSuccess;
}
cudaError_t free_device(void* p) {
  if (p == nullptr) return cudaSuccess;
  const auto a = allocations.find(uintptr_t(p));
  if (a == allocations.end()) return fail(cudaErrorInvalidValue);
  const Allocation& al = a->second;
  const unsigned char* end = static_cast<const unsigned char*>(p) + al.bytes;
  const unsigned char* page = reinterpret_cast<const unsigned char*>(al.base) + al.mapped - kPage;
  for (const unsigned char* q = end; q < page; ++q)
    if (*q != 0xFF) {
      std::fprintf(stderr,
                   "emulated CUDA: a device allocation of %zu bytes at %p was written past its "
                   "end (byte %lld after it changed)\n",
                   al.bytes, p, static_cast<long long>(q - end));
      std::abort();
    }
  munmap(al.base, al.mapped);
  allocations.erase(a);
  return cudaSuccess;
}
cudaError_t memcpy_sync(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  if (bytes) std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t memcpy_async(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                         cudaStream_t) {
  return memcpy_sync(dst, src, bytes, kind);
}
cudaError_t memset_sync(void* p, int value, size_t bytes) {
  if (bytes) std::memset(p, value, bytes);
  return cudaSuccess;
}
cudaError_t memset_async(void* p, int value, size_t bytes, cudaStream_t) {
  return memset_sync(p, value, bytes);
}

// Streams and events: handles only (every call has completed when it returns).
namespace {
struct Event {
  std::chrono::steady_clock::time_point at;
};
int stream_tag;
}  // namespace

cudaError_t stream_create(cudaStream_t* s) {
  *s = reinterpret_cast<cudaStream_t>(new int(++stream_tag));
  return cudaSuccess;
}
cudaError_t stream_create_with_flags(cudaStream_t* s, unsigned) { return stream_create(s); }
cudaError_t stream_destroy(cudaStream_t s) {
  delete reinterpret_cast<int*>(s);
  return cudaSuccess;
}
cudaError_t stream_synchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t stream_wait_event(cudaStream_t, cudaEvent_t, unsigned) { return cudaSuccess; }
cudaError_t device_synchronize() { return cudaSuccess; }
cudaError_t event_create(cudaEvent_t* e) {
  *e = reinterpret_cast<cudaEvent_t>(new Event{});
  return cudaSuccess;
}
cudaError_t event_create_with_flags(cudaEvent_t* e, unsigned) { return event_create(e); }
cudaError_t event_destroy(cudaEvent_t e) {
  delete reinterpret_cast<Event*>(e);
  return cudaSuccess;
}
cudaError_t event_record(cudaEvent_t e, cudaStream_t) {
  reinterpret_cast<Event*>(e)->at = std::chrono::steady_clock::now();
  return cudaSuccess;
}
cudaError_t event_synchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t event_elapsed_time(float* ms, cudaEvent_t start, cudaEvent_t end) {
  *ms = std::chrono::duration<float, std::milli>(reinterpret_cast<Event*>(end)->at -
                                                 reinterpret_cast<Event*>(start)->at)
            .count();
  return cudaSuccess;
}

cudaError_t get_last_error() {
  const cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}
cudaError_t peek_at_last_error() { return last_error; }
const char* error_name(cudaError_t e) {
  switch (e) {
    case cudaSuccess:
      return "cudaSuccess";
    case cudaErrorInvalidValue:
      return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation:
      return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration:
      return "cudaErrorInvalidConfiguration";
    default:
      return "cudaError (emulated)";
  }
}
const char* error_string(cudaError_t e) {
  switch (e) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorInvalidConfiguration:
      return "invalid configuration argument";
    default:
      return "an error of the emulated device";
  }
}

namespace {
int device_count() {
  static const int n = [] {
    const char* env = std::getenv("RWKV_EMULATED_GPUS");
    return env ? std::max(1, std::atoi(env)) : 1;
  }();
  return n;
}
int current_device = 0;
}  // namespace

cudaError_t get_device_count(int* n) {
  *n = device_count();
  return cudaSuccess;
}
cudaError_t get_device(int* d) {
  *d = current_device;
  return cudaSuccess;
}
cudaError_t set_device(int d) {
  if (d < 0 || d >= device_count()) return fail(cudaErrorInvalidDevice);
  current_device = d;
  return cudaSuccess;
}
cudaError_t get_device_properties(cudaDeviceProp* prop, int device) {
  if (device < 0 || device >= device_count()) return fail(cudaErrorInvalidDevice);
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof prop->name, "emulated sm_90");
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = kSmCount;
  prop->totalGlobalMem = kDeviceMemory;
  prop->sharedMemPerBlockOptin = size_t(kSharedOptin);
  prop->warpSize = kWarp;
  prop->maxThreadsPerBlock = kMaxThreads;
  return cudaSuccess;
}
cudaError_t device_get_attribute(int* value, cudaDeviceAttr attr, int device) {
  if (device < 0 || device >= device_count()) return fail(cudaErrorInvalidDevice);
  switch (attr) {
    case cudaDevAttrMaxSharedMemoryPerBlockOptin:
      *value = kSharedOptin;
      return cudaSuccess;
    case cudaDevAttrMultiProcessorCount:
      *value = kSmCount;
      return cudaSuccess;
    default:
      return fail(cudaErrorInvalidValue);
  }
}
cudaError_t mem_get_info(size_t* free_bytes, size_t* total_bytes) {
  *free_bytes = *total_bytes = kDeviceMemory;
  return cudaSuccess;
}
cudaError_t runtime_get_version(int* v) {
  *v = CUDART_VERSION;
  return cudaSuccess;
}
cudaError_t driver_get_version(int* v) {
  *v = CUDART_VERSION;
  return cudaSuccess;
}
cudaError_t func_set_attribute(const void* kernel, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaSuccess;
  if (value < 0 || value > kSharedOptin) return fail(cudaErrorInvalidValue);
  (void)kernel;
  dynamic_limit = std::max(dynamic_limit, size_t(value));
  return cudaSuccess;
}

// cuBLAS: column-major C = alpha op(A) op(B) + beta C, summed in double from the operands
// as they are (bf16 or fp32; rounded to bf16 first under COMPUTE_32F_FAST_16BF), the
// result rounded once to C's type. beta 0 does not read C (it may hold NaN).
namespace {
struct BlasHandle {
  cudaStream_t stream = nullptr;
};

double load(const void* p, cudaDataType t, int64_t i, bool bf16_operands) {
  if (t == CUDA_R_16BF) return double(__bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]));
  const float x = static_cast<const float*>(p)[i];
  return bf16_operands ? double(__bfloat162float(__float2bfloat16(x))) : double(x);
}
}  // namespace

cublasStatus_t blas_create(cublasHandle_t* h) {
  *h = reinterpret_cast<cublasHandle_t>(new BlasHandle{});
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t blas_destroy(cublasHandle_t h) {
  delete reinterpret_cast<BlasHandle*>(h);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t blas_set_stream(cublasHandle_t h, cudaStream_t s) {
  reinterpret_cast<BlasHandle*>(h)->stream = s;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t blas_get_stream(cublasHandle_t h, cudaStream_t* s) {
  *s = reinterpret_cast<BlasHandle*>(h)->stream;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t blas_set_math_mode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t blas_set_workspace(cublasHandle_t, void*, size_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t blas_get_property(libraryPropertyType, int* value) {
  *value = 0;
  return CUBLAS_STATUS_SUCCESS;
}
const char* blas_status_string(cublasStatus_t s) {
  return s == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "CUBLAS_STATUS_INVALID_VALUE";
}

cublasStatus_t blas_gemm_ex(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m,
                            int n, int k, const void* alpha, const void* a, cudaDataType a_type,
                            int lda, const void* b, cudaDataType b_type, int ldb, const void* beta,
                            void* c, cudaDataType c_type, int ldc, cublasComputeType_t compute,
                            cublasGemmAlgo_t) {
  const bool types_ok = (a_type == CUDA_R_32F || a_type == CUDA_R_16BF) && a_type == b_type &&
                        (c_type == CUDA_R_32F || c_type == CUDA_R_16BF) &&
                        (compute == CUBLAS_COMPUTE_32F || compute == CUBLAS_COMPUTE_32F_FAST_16BF);
  const int a_rows = ta == CUBLAS_OP_N ? m : k, b_rows = tb == CUBLAS_OP_N ? k : n;
  if (!types_ok || m < 0 || n < 0 || k < 0 || lda < std::max(1, a_rows) ||
      ldb < std::max(1, b_rows) || ldc < std::max(1, m))
    return CUBLAS_STATUS_INVALID_VALUE;
  const bool round = compute == CUBLAS_COMPUTE_32F_FAST_16BF;
  const double al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) {
      double s = 0;
      for (int p = 0; p < k; ++p) {
        const int64_t ai = ta == CUBLAS_OP_N ? int64_t(p) * lda + i : int64_t(i) * lda + p;
        const int64_t bi = tb == CUBLAS_OP_N ? int64_t(j) * ldb + p : int64_t(p) * ldb + j;
        s += load(a, a_type, ai, round) * load(b, b_type, bi, round);
      }
      const int64_t ci = int64_t(j) * ldc + i;
      double r = al * s;
      if (be != 0) r += be * load(c, c_type, ci, false);
      if (c_type == CUDA_R_16BF)
        static_cast<__nv_bfloat16*>(c)[ci] = __float2bfloat16(float(r));
      else
        static_cast<float*>(c)[ci] = float(r);
    }
  return CUBLAS_STATUS_SUCCESS;
}

ncclResult_t nccl_get_version(int* v) {
  *v = 0;
  return ncclSuccess;
}
const char* nccl_error_string(ncclResult_t r) {
  return r == ncclSuccess ? "no error" : "an NCCL error (emulated: NCCL is not emulated)";
}

void sort_pairs(const void* keys_in, void* keys_out, const void* values_in, void* values_out, int n,
                int key_bytes, int value_bytes, int begin_bit, int end_bit) {
  const auto key = [&](int i) {
    uint64_t k = 0;
    std::memcpy(&k, static_cast<const char*>(keys_in) + int64_t(i) * key_bytes, size_t(key_bytes));
    const int bits = end_bit - begin_bit;
    return (k >> begin_bit) & (bits >= 64 ? ~uint64_t(0) : (uint64_t(1) << bits) - 1);
  };
  std::vector<int> order(size_t(std::max(n, 0)));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return key(x) < key(y); });
  std::vector<char> k(size_t(n) * size_t(key_bytes)), v(size_t(n) * size_t(value_bytes));
  for (int i = 0; i < n; ++i) {
    std::memcpy(&k[size_t(i) * size_t(key_bytes)],
                static_cast<const char*>(keys_in) + int64_t(order[size_t(i)]) * key_bytes,
                size_t(key_bytes));
    std::memcpy(&v[size_t(i) * size_t(value_bytes)],
                static_cast<const char*>(values_in) + int64_t(order[size_t(i)]) * value_bytes,
                size_t(value_bytes));
  }
  if (n > 0) {
    std::memcpy(keys_out, k.data(), k.size());
    std::memcpy(values_out, v.data(), v.size());
  }
}

}  // namespace rwkv::emu
