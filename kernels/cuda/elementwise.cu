#include <string>

#include "common/error.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/pointwise_launch.cuh"

// The formulas and their evaluation order are those of kernels/cpu/elementwise.cpp,
// one thread per element (launch shapes: kernels/cuda/pointwise_launch.cuh).

namespace rwkv::cuda {
namespace {

using kernels::Act;
using pointwise::check_sizes;

__device__ float sigmoid(float x) { return 1.f / (1.f + expf(-x)); }

// The activation is a template argument so that each kernel has no per-element switch.
template <Act A>
struct ActForward {
  float* out;
  const float* x;
  __device__ void operator()(int64_t o) const {
    const float v = x[o];
    if constexpr (A == Act::sigmoid) out[o] = sigmoid(v);
    if constexpr (A == Act::silu) out[o] = v * sigmoid(v);
    if constexpr (A == Act::tanh) out[o] = tanhf(v);
    if constexpr (A == Act::relu) out[o] = v > 0 ? v : 0.f;
    if constexpr (A == Act::relu_sq) out[o] = v > 0 ? v * v : 0.f;
    if constexpr (A == Act::exp) out[o] = expf(v);
  }
};

// dx += dout * act'(x).
template <Act A>
struct ActBackward {
  float* dx;
  const float* dout;
  const float* x;
  __device__ void operator()(int64_t o) const {
    const float v = x[o], g = dout[o];
    if constexpr (A == Act::sigmoid) {
      const float s = sigmoid(v);
      dx[o] += g * s * (1.f - s);
    }
    if constexpr (A == Act::silu) {
      const float s = sigmoid(v);
      dx[o] += g * s * (1.f + v * (1.f - s));
    }
    if constexpr (A == Act::tanh) {
      const float t = tanhf(v);
      dx[o] += g * (1.f - t * t);
    }
    if constexpr (A == Act::relu) dx[o] += v > 0 ? g : 0.f;
    if constexpr (A == Act::relu_sq) dx[o] += v > 0 ? 2.f * v * g : 0.f;
    if constexpr (A == Act::exp) dx[o] += g * expf(v);
  }
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

struct MulForward {
  float* out;
  const float *a, *b;
  __device__ void operator()(int64_t o) const { out[o] = a[o] * b[o]; }
};

struct MulBackward {
  float *da, *db;
  const float *dout, *a, *b;
  __device__ void operator()(int64_t o) const {
    if (da) da[o] += dout[o] * b[o];
    if (db) db[o] += dout[o] * a[o];
  }
};

struct AddForward {
  float* out;
  const float *a, *b;
  __device__ void operator()(int64_t o) const { out[o] = a[o] + b[o]; }
};

struct Accumulate {
  float* dst;
  const float* src;
  __device__ void operator()(int64_t o) const { dst[o] += src[o]; }
};

struct ScaleChannelsForward {
  float* out;
  const float *x, *vec;
  __device__ void operator()(int64_t o, int64_t c) const { out[o] = x[o] * vec[c]; }
};

// Returns dvec's term.
struct ScaleChannelsBackward {
  float* dx;
  const float *dout, *x, *vec;
  __device__ float operator()(int64_t o, int64_t c) const {
    if (dx) dx[o] += dout[o] * vec[c];
    return dout[o] * x[o];
  }
};

struct BiasSigmoidForward {
  float* out;
  const float *bias, *z;
  __device__ void operator()(int64_t o, int64_t c) const { out[o] = sigmoid(bias[c] + z[o]); }
};

// Returns dbias's term (the same as dz's).
struct BiasSigmoidBackward {
  float* dz;
  const float *dout, *out;
  __device__ float operator()(int64_t o, int64_t) const {
    const float s = out[o];
    const float g = dout[o] * s * (1.f - s);
    if (dz) dz[o] += g;
    return g;
  }
};

}  // namespace

void act_forward(Act act, float* out, const float* x, int64_t n, cudaStream_t stream) {
  const char* fn = "rwkv::cuda::act_forward";
  check_sizes(fn, {{"n", n}});
  launch_act<ActForward>(fn, act, n, stream, out, x);
}

void act_backward(Act act, float* dx, const float* dout, const float* x, int64_t n,
                  cudaStream_t stream) {
  const char* fn = "rwkv::cuda::act_backward";
  check_sizes(fn, {{"n", n}});
  if (dx) launch_act<ActBackward>(fn, act, n, stream, dx, dout, x);
}

void mul_forward(float* out, const float* a, const float* b, int64_t n, cudaStream_t stream) {
  const char* fn = "rwkv::cuda::mul_forward";
  check_sizes(fn, {{"n", n}});
  pointwise::launch_flat(fn, MulForward{out, a, b}, n, stream);
}

void mul_backward(float* da, float* db, const float* dout, const float* a, const float* b,
                  int64_t n, cudaStream_t stream) {
  const char* fn = "rwkv::cuda::mul_backward";
  check_sizes(fn, {{"n", n}});
  if (da || db) pointwise::launch_flat(fn, MulBackward{da, db, dout, a, b}, n, stream);
}

void add_forward(float* out, const float* a, const float* b, int64_t n, cudaStream_t stream) {
  const char* fn = "rwkv::cuda::add_forward";
  check_sizes(fn, {{"n", n}});
  pointwise::launch_flat(fn, AddForward{out, a, b}, n, stream);
}

void accumulate(float* dst, const float* src, int64_t n, cudaStream_t stream) {
  const char* fn = "rwkv::cuda::accumulate";
  check_sizes(fn, {{"n", n}});
  pointwise::launch_flat(fn, Accumulate{dst, src}, n, stream);
}

void scale_channels_forward(float* out, const float* x, const float* vec, int64_t n, int64_t C,
                            cudaStream_t stream) {
  const char* fn = "rwkv::cuda::scale_channels_forward";
  check_sizes(fn, {{"n", n}, {"C", C}});
  pointwise::launch_channels(fn, ScaleChannelsForward{out, x, vec}, n, C, stream);
}

void scale_channels_backward(float* dx, float* dvec, const float* dout, const float* x,
                             const float* vec, int64_t n, int64_t C, cudaStream_t stream) {
  const char* fn = "rwkv::cuda::scale_channels_backward";
  check_sizes(fn, {{"n", n}, {"C", C}});
  if (dx || dvec)
    pointwise::launch_channels_sum(fn, ScaleChannelsBackward{dx, dout, x, vec}, n, C, dvec, stream);
}

void bias_sigmoid_forward(float* out, const float* bias, const float* z, int64_t n, int64_t C,
                          cudaStream_t stream) {
  const char* fn = "rwkv::cuda::bias_sigmoid_forward";
  check_sizes(fn, {{"n", n}, {"C", C}});
  pointwise::launch_channels(fn, BiasSigmoidForward{out, bias, z}, n, C, stream);
}

void bias_sigmoid_backward(float* dbias, float* dz, const float* dout, const float* out, int64_t n,
                           int64_t C, cudaStream_t stream) {
  const char* fn = "rwkv::cuda::bias_sigmoid_backward";
  check_sizes(fn, {{"n", n}, {"C", C}});
  if (dbias || dz)
    pointwise::launch_channels_sum(fn, BiasSigmoidBackward{dz, dout, out}, n, C, dbias, stream);
}

}  // namespace rwkv::cuda
