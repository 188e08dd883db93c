#include <string>

#include "common/error.h"
#include "kernels/cuda/bf16.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/pointwise_launch.cuh"

// The formulas and their evaluation order are those of kernels/cpu/elementwise.cpp,
// one thread per element (launch shapes: kernels/cuda/pointwise_launch.cuh). E-typed
// values are widened as they are read and rounded once as they are written.

namespace rwkv::cuda {
namespace {

using kernels::Act;
using pointwise::check_sizes;

__device__ float sigmoid(float x) { return 1.f / (1.f + expf(-x)); }

// The activation is a template argument so that each kernel has no per-element switch.
template <typename E>
struct ActOps {
  template <Act A>
  struct Forward {
    E* out;
    const E* x;
    __device__ void operator()(int64_t o) const {
      const float v = to_float(x[o]);
      float r = 0.f;
      if constexpr (A == Act::sigmoid) r = sigmoid(v);
      if constexpr (A == Act::silu) r = v * sigmoid(v);
      if constexpr (A == Act::tanh) r = tanhf(v);
      if constexpr (A == Act::relu) r = v > 0 ? v : 0.f;
      if constexpr (A == Act::relu_sq) r = v > 0 ? v * v : 0.f;
      if constexpr (A == Act::exp) r = expf(v);
      out[o] = from_float<E>(r);
    }
  };

  // dx += dout * act'(x).
  template <Act A>
  struct Backward {
    E* dx;
    const E* dout;
    const E* x;
    __device__ void operator()(int64_t o) const {
      const float v = to_float(x[o]), g = to_float(dout[o]);
      float d = 0.f;
      if constexpr (A == Act::sigmoid) {
        const float s = sigmoid(v);
        d = g * s * (1.f - s);
      }
      if constexpr (A == Act::silu) {
        const float s = sigmoid(v);
        d = g * s * (1.f + v * (1.f - s));
      }
      if constexpr (A == Act::tanh) {
        const float t = tanhf(v);
        d = g * (1.f - t * t);
      }
      if constexpr (A == Act::relu) d = v > 0 ? g : 0.f;
      if constexpr (A == Act::relu_sq) d = v > 0 ? 2.f * v * g : 0.f;
      if constexpr (A == Act::exp) d = g * expf(v);
      add_to(dx[o], d);
    }
  };
};

// Launches Op<act>{args...} over n elements.
template <template <Act> class Op, typename... Args>
void launch_act(const char* fn, Act act, int64_t n, cudaStream_t stream, Args... args) {
  switch (act) {
    case Act::sigmoid:
      return pointwise::launch_flat(fn, Op<Act::sigmoid>{args...}, n, stream);
    case Act::silu:
      return pointwise::launch_flat(fn, Op<Act::silu>{args...}, n, stream);
    case Act::tanh:
      return pointwise::launch_flat(fn, Op<Act::tanh>{args...}, n, stream);
    case Act::relu:
      return pointwise::launch_flat(fn, Op<Act::relu>{args...}, n, stream);
    case Act::relu_sq:
      return pointwise::launch_flat(fn, Op<Act::relu_sq>{args...}, n, stream);
    case Act::exp:
      return pointwise::launch_flat(fn, Op<Act::exp>{args...}, n, stream);
  }
  throw Error(std::string(fn) + ": unknown activation " + std::to_string(int(act)));
}

template <typename E>
struct MulForward {
  E* out;
  const E *a, *b;
  __device__ void operator()(int64_t o) const {
    out[o] = from_float<E>(to_float(a[o]) * to_float(b[o]));
  }
};

template <typename E>
struct MulBackward {
  E *da, *db;
  const E *dout, *a, *b;
  __device__ void operator()(int64_t o) const {
    const float g = to_float(dout[o]);
    if (da) add_to(da[o], g * to_float(b[o]));
    if (db) add_to(db[o], g * to_float(a[o]));
  }
};

template <typename E>
struct AddForward {
  E* out;
  const E *a, *b;
  __device__ void operator()(int64_t o) const {
    out[o] = from_float<E>(to_float(a[o]) + to_float(b[o]));
  }
};

template <typename E>
struct Accumulate {
  E* dst;
  const E* src;
  __device__ void operator()(int64_t o) const { add_to(dst[o], to_float(src[o])); }
};

template <typename E>
struct ScaleChannelsForward {
  E* out;
  const E* x;
  const float* vec;
  __device__ void operator()(int64_t o, int64_t c) const {
    out[o] = from_float<E>(to_float(x[o]) * vec[c]);
  }
};

// Returns dvec's term.
template <typename E>
struct ScaleChannelsBackward {
  E* dx;
  const E *dout, *x;
  const float* vec;
  __device__ float operator()(int64_t o, int64_t c) const {
    const float g = to_float(dout[o]);
    if (dx) add_to(dx[o], g * vec[c]);
    return g * to_float(x[o]);
  }
};

template <typename E>
struct BiasSigmoidForward {
  E* out;
  const float* bias;
  const E* z;
  __device__ void operator()(int64_t o, int64_t c) const {
    out[o] = from_float<E>(sigmoid(bias[c] + to_float(z[o])));
  }
};

// Returns dbias's term (the same as dz's).
template <typename E>
struct BiasSigmoidBackward {
  E* dz;
  const E *dout, *out;
  __device__ float operator()(int64_t o, int64_t) const {
    const float s = to_float(out[o]);
    const float g = to_float(dout[o]) * s * (1.f - s);
    if (dz) add_to(dz[o], g);
    return g;
  }
};

}  // namespace

template <typename E>
void act_forward(Act act, E* out, const E* x, int64_t n, cudaStream_t stream) {
  const char* fn = "rwkv::cuda::act_forward";
  check_sizes(fn, {{"n", n}});
  launch_act<ActOps<E>::template Forward>(fn, act, n, stream, out, x);
}

template <typename E>
void act_backward(Act act, E* dx, const E* dout, const E* x, int64_t n, cudaStream_t stream) {
  const char* fn = "rwkv::cuda::act_backward";
  check_sizes(fn, {{"n", n}});
  if (dx) launch_act<ActOps<E>::template Backward>(fn, act, n, stream, dx, dout, x);
}

template <typename E>
void mul_forward(E* out, const E* a, const E* b, int64_t n, cudaStream_t stream) {
  const char* fn = "rwkv::cuda::mul_forward";
  check_sizes(fn, {{"n", n}});
  pointwise::launch_flat(fn, MulForward<E>{out, a, b}, n, stream);
}

template <typename E>
void mul_backward(E* da, E* db, const E* dout, const E* a, const E* b, int64_t n,
                  cudaStream_t stream) {
  const char* fn = "rwkv::cuda::mul_backward";
  check_sizes(fn, {{"n", n}});
  if (da || db) pointwise::launch_flat(fn, MulBackward<E>{da, db, dout, a, b}, n, stream);
}

template <typename E>
void add_forward(E* out, const E* a, const E* b, int64_t n, cudaStream_t stream) {
  const char* fn = "rwkv::cuda::add_forward";
  check_sizes(fn, {{"n", n}});
  pointwise::launch_flat(fn, AddForward<E>{out, a, b}, n, stream);
}

template <typename E>
void accumulate(E* dst, const E* src, int64_t n, cudaStream_t stream) {
  const char* fn = "rwkv::cuda::accumulate";
  check_sizes(fn, {{"n", n}});
  pointwise::launch_flat(fn, Accumulate<E>{dst, src}, n, stream);
}

template <typename E>
void scale_channels_forward(E* out, const E* x, const float* vec, int64_t n, int64_t C,
                            cudaStream_t stream) {
  const char* fn = "rwkv::cuda::scale_channels_forward";
  check_sizes(fn, {{"n", n}, {"C", C}});
  pointwise::launch_channels(fn, ScaleChannelsForward<E>{out, x, vec}, n, C, stream);
}

template <typename E>
void scale_channels_backward(E* dx, float* dvec, const E* dout, const E* x, const float* vec,
                             int64_t n, int64_t C, cudaStream_t stream) {
  const char* fn = "rwkv::cuda::scale_channels_backward";
  check_sizes(fn, {{"n", n}, {"C", C}});
  if (dx || dvec)
    pointwise::launch_channels_sum(fn, ScaleChannelsBackward<E>{dx, dout, x, vec}, n, C, dvec,
                                   stream);
}

template <typename E>
void bias_sigmoid_forward(E* out, const float* bias, const E* z, int64_t n, int64_t C,
                          cudaStream_t stream) {
  const char* fn = "rwkv::cuda::bias_sigmoid_forward";
  check_sizes(fn, {{"n", n}, {"C", C}});
  pointwise::launch_channels(fn, BiasSigmoidForward<E>{out, bias, z}, n, C, stream);
}

template <typename E>
void bias_sigmoid_backward(float* dbias, E* dz, const E* dout, const E* out, int64_t n, int64_t C,
                           cudaStream_t stream) {
  const char* fn = "rwkv::cuda::bias_sigmoid_backward";
  check_sizes(fn, {{"n", n}, {"C", C}});
  if (dbias || dz)
    pointwise::launch_channels_sum(fn, BiasSigmoidBackward<E>{dz, dout, out}, n, C, dbias, stream);
}

#define RWKV_INSTANTIATE(E)                                                                       \
  template void act_forward<E>(Act, E*, const E*, int64_t, cudaStream_t);                         \
  template void act_backward<E>(Act, E*, const E*, const E*, int64_t, cudaStream_t);              \
  template void mul_forward<E>(E*, const E*, const E*, int64_t, cudaStream_t);                    \
  template void mul_backward<E>(E*, E*, const E*, const E*, const E*, int64_t, cudaStream_t);     \
  template void add_forward<E>(E*, const E*, const E*, int64_t, cudaStream_t);                    \
  template void accumulate<E>(E*, const E*, int64_t, cudaStream_t);                               \
  template void scale_channels_forward<E>(E*, const E*, const float*, int64_t, int64_t,           \
                                          cudaStream_t);                                          \
  template void scale_channels_backward<E>(E*, float*, const E*, const E*, const float*, int64_t, \
                                           int64_t, cudaStream_t);                                \
  template void bias_sigmoid_forward<E>(E*, const float*, const E*, int64_t, int64_t,             \
                                        cudaStream_t);                                            \
  template void bias_sigmoid_backward<E>(float*, E*, const E*, const E*, int64_t, int64_t,        \
                                         cudaStream_t);
RWKV_INSTANTIATE(float)
RWKV_INSTANTIATE(Bf16)
#undef RWKV_INSTANTIATE

}  // namespace rwkv::cuda
