#include <algorithm>
#include <bit>
#include <climits>
#include <cub/device/device_radix_sort.cuh>
#include <sstream>

#include "common/error.h"
#include "kernels/cuda/bf16.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/embedding.h"

// kernels/cpu/embedding.cpp defines the ops. The backward is a scatter-add where ids
// repeat, which a parallel loop over tokens would race on (or need float atomics, whose
// order and so whose result varies run to run). Instead, as PyTorch's deterministic
// embedding backward: the slab-relative ids are radix-sorted with their positions (CUB,
// stable, so equal ids keep position order), then each run of equal ids is summed by one
// block, one thread per column, in position order, starting from the current demb row:
// the additions are those of the CPU loop, in the same order.
//
// Scratch layout (each part 256-byte aligned): keys in, keys out [n] (uint32), positions
// in, positions out [n] (int32), CUB's temporary storage.

namespace rwkv::cuda {
namespace {

constexpr int kThreads = 256;  // threads per block: one block per row, threads over C
constexpr int kUnroll = 8;     // rows of a run loaded at once (a frequent id has thousands)

size_t align256(size_t bytes) { return (bytes + 255) / 256 * 256; }

// Keys are idx - v0 in the slab and the slab size Vs (sorted last) elsewhere: the sort
// needs the low bit_width(Vs) bits only (at least one).
int key_bits(int64_t Vs) { return std::max(1, int(std::bit_width(uint64_t(Vs)))); }

size_t sort_temp_bytes(int64_t n, int64_t Vs) {
  size_t bytes = 0;
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
      nullptr, bytes, static_cast<const uint32_t*>(nullptr), static_cast<uint32_t*>(nullptr),
      static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr), int(n), 0,
      key_bits(Vs)));
  return bytes;
}

void check_shape(const char* fn, int64_t n, int64_t C, int64_t v0, int64_t v1) {
  if (n < 0 || n > INT_MAX || C < 1 || v0 < 0 || v1 < v0 || v1 - v0 >= INT_MAX) {
    std::ostringstream msg;
    msg << fn << ": bad shape n=" << n << " C=" << C << " or vocabulary slab [" << v0 << ", " << v1
        << ") (need 0 <= n < 2^31, C >= 1, 0 <= v0 <= v1, v1 - v0 < 2^31 - 1)";
    throw Error(msg.str());
  }
}

// Block i writes row i of out [n, C] (rounded to E).
template <typename E>
__global__ void embedding_forward_kernel(E* __restrict__ out, const int32_t* __restrict__ idx,
                                         const float* __restrict__ emb, int64_t C, int64_t v0,
                                         int64_t v1) {
  const int64_t i = blockIdx.x, id = idx[i];
  E* o = out + i * C;
  if (id < v0 || id >= v1) {
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) o[c] = from_float<E>(0.f);
    return;
  }
  const float* row = emb + (id - v0) * C;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) o[c] = from_float<E>(row[c]);
}

// keys [n] = idx - v0 inside the slab, Vs outside; pos [n] = 0, 1, ..., n - 1.
__global__ void slab_keys_kernel(uint32_t* __restrict__ keys, int32_t* __restrict__ pos,
                                 const int32_t* __restrict__ idx, int64_t n, int64_t v0,
                                 int64_t v1) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int64_t id = idx[i];
  keys[i] = uint32_t(id >= v0 && id < v1 ? id - v0 : v1 - v0);
  pos[i] = int32_t(i);
}

// Block k: when sorted entry k starts a run of equal keys inside the slab, adds the run's
// dout rows (in position order) to demb row `key`.
template <typename E>
__global__ void embedding_runs_kernel(float* __restrict__ demb, const E* __restrict__ dout,
                                      const uint32_t* __restrict__ keys,
                                      const int32_t* __restrict__ pos, int64_t n, int64_t C,
                                      uint32_t Vs) {
  const int64_t k = blockIdx.x;
  const uint32_t key = keys[k];
  if (key == Vs || (k > 0 && keys[k - 1] == key)) return;
  int64_t end = k + 1;
  while (end < n && keys[end] == key) ++end;
  float* row = demb + int64_t(key) * C;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    float s = row[c];
    int64_t j = k;
    for (; j + kUnroll <= end; j += kUnroll) {  // kUnroll loads in flight, then the adds in order
      float d[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) d[u] = to_float(dout[int64_t(pos[j + u]) * C + c]);
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) s += d[u];
    }
    for (; j < end; ++j) s += to_float(dout[int64_t(pos[j]) * C + c]);
    row[c] = s;
  }
}

}  // namespace

template <typename E>
void embedding_forward(E* out, const int32_t* idx, const float* emb, int64_t n, int64_t C,
                       int64_t v0, int64_t v1, cudaStream_t stream) {
  check_shape("rwkv::cuda::embedding_forward", n, C, v0, v1);
  if (n == 0) return;
  const unsigned blocks = unsigned(n);
  embedding_forward_kernel<E><<<blocks, kThreads, 0, stream>>>(out, idx, emb, C, v0, v1);
  CUDA_CHECK_LAUNCH();
}

size_t embedding_backward_scratch_bytes(int64_t n, int64_t v0, int64_t v1) {
  check_shape("rwkv::cuda::embedding_backward_scratch_bytes", n, 1, v0, v1);
  return 4 * align256(size_t(n) * 4) + sort_temp_bytes(n, v1 - v0);
}

template <typename E>
void embedding_backward(float* demb, const E* dout, const int32_t* idx, int64_t n, int64_t C,
                        int64_t v0, int64_t v1, void* scratch, cudaStream_t stream) {
  check_shape("rwkv::cuda::embedding_backward", n, C, v0, v1);
  if (n == 0 || v1 == v0) return;
  const int64_t Vs = v1 - v0;
  const size_t part = align256(size_t(n) * 4);
  char* base = static_cast<char*>(scratch);
  uint32_t* keys_in = reinterpret_cast<uint32_t*>(base);
  uint32_t* keys = reinterpret_cast<uint32_t*>(base + part);
  int32_t* pos_in = reinterpret_cast<int32_t*>(base + 2 * part);
  int32_t* pos = reinterpret_cast<int32_t*>(base + 3 * part);
  size_t temp_bytes = sort_temp_bytes(n, Vs);

  const unsigned key_blocks = unsigned((n + kThreads - 1) / kThreads);
  slab_keys_kernel<<<key_blocks, kThreads, 0, stream>>>(keys_in, pos_in, idx, n, v0, v1);
  CUDA_CHECK_LAUNCH();
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(base + 4 * part, temp_bytes, keys_in, keys, pos_in,
                                             pos, int(n), 0, key_bits(Vs), stream));
  const unsigned run_blocks = unsigned(n);
  embedding_runs_kernel<E>
      <<<run_blocks, kThreads, 0, stream>>>(demb, dout, keys, pos, n, C, uint32_t(Vs));
  CUDA_CHECK_LAUNCH();
}

#define RWKV_INSTANTIATE(E)                                                                        \
  template void embedding_forward<E>(E*, const int32_t*, const float*, int64_t, int64_t, int64_t,  \
                                     int64_t, cudaStream_t);                                       \
  template void embedding_backward<E>(float*, const E*, const int32_t*, int64_t, int64_t, int64_t, \
                                      int64_t, void*, cudaStream_t);
RWKV_INSTANTIATE(float)
RWKV_INSTANTIATE(Bf16)
#undef RWKV_INSTANTIATE

}  // namespace rwkv::cuda
