#include "kernels/cpu/elementwise.h"

#include <cmath>

namespace rwkv::kernels {

namespace {

template <typename F>
F sigmoid(F x) {
  return F(1) / (F(1) + std::exp(-x));
}

}  // namespace

template <typename F>
void act_forward(Act act, F* out, const F* x, int64_t n) {
  switch (act) {
    case Act::sigmoid:
      for (int64_t i = 0; i < n; ++i) out[i] = sigmoid(x[i]);
      break;
    case Act::silu:
      for (int64_t i = 0; i < n; ++i) out[i] = x[i] * sigmoid(x[i]);
      break;
    case Act::tanh:
      for (int64_t i = 0; i < n; ++i) out[i] = std::tanh(x[i]);
      break;
    case Act::relu:
      for (int64_t i = 0; i < n; ++i) out[i] = x[i] > 0 ? x[i] : F(0);
      break;
    case Act::relu_sq:
      for (int64_t i = 0; i < n; ++i) out[i] = x[i] > 0 ? x[i] * x[i] : F(0);
      break;
    case Act::exp:
      for (int64_t i = 0; i < n; ++i) out[i] = std::exp(x[i]);
      break;
  }
}

template <typename F>
void act_backward(Act act, F* dx, const F* dout, const F* x, int64_t n) {
  switch (act) {
    case Act::sigmoid:
      for (int64_t i = 0; i < n; ++i) {
        const F s = sigmoid(x[i]);
        dx[i] += dout[i] * s * (F(1) - s);
      }
      break;
    case Act::silu:
      for (int64_t i = 0; i < n; ++i) {
        const F s = sigmoid(x[i]);
        dx[i] += dout[i] * s * (F(1) + x[i] * (F(1) - s));
      }
      break;
    case Act::tanh:
      for (int64_t i = 0; i < n; ++i) {
        const F t = std::tanh(x[i]);
        dx[i] += dout[i] * (F(1) - t * t);
      }
      break;
    case Act::relu:
      for (int64_t i = 0; i < n; ++i) dx[i] += x[i] > 0 ? dout[i] : F(0);
      break;
    case Act::relu_sq:
      for (int64_t i = 0; i < n; ++i) dx[i] += x[i] > 0 ? F(2) * x[i] * dout[i] : F(0);
      break;
    case Act::exp:
      for (int64_t i = 0; i < n; ++i) dx[i] += dout[i] * std::exp(x[i]);
      break;
  }
}

template <typename F>
void mul_forward(F* out, const F* a, const F* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] * b[i];
}

template <typename F>
void mul_backward(F* da, F* db, const F* dout, const F* a, const F* b, int64_t n) {
  if (da)
    for (int64_t i = 0; i < n; ++i) da[i] += dout[i] * b[i];
  if (db)
    for (int64_t i = 0; i < n; ++i) db[i] += dout[i] * a[i];
}

template <typename F>
void add_forward(F* out, const F* a, const F* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

template <typename F>
void accumulate(F* dst, const F* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

template <typename F>
void scale_channels_forward(F* out, const F* x, const F* vec, int64_t n, int64_t C) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < C; ++c) out[i * C + c] = x[i * C + c] * vec[c];
}

template <typename F>
void scale_channels_backward(F* dx, F* dvec, const F* dout, const F* x, const F* vec, int64_t n,
                             int64_t C) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < C; ++c) {
      if (dx) dx[i * C + c] += dout[i * C + c] * vec[c];
      if (dvec) dvec[c] += dout[i * C + c] * x[i * C + c];
    }
}

template <typename F>
void bias_sigmoid_forward(F* out, const F* bias, const F* z, int64_t n, int64_t C) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < C; ++c) out[i * C + c] = sigmoid(bias[c] + z[i * C + c]);
}

template <typename F>
void bias_sigmoid_backward(F* dbias, F* dz, const F* dout, const F* out, int64_t n, int64_t C) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < C; ++c) {
      const F s = out[i * C + c];
      const F g = dout[i * C + c] * s * (F(1) - s);
      if (dz) dz[i * C + c] += g;
      if (dbias) dbias[c] += g;
    }
}

#define RWKV_INSTANTIATE(F)                                                               \
  template void act_forward<F>(Act, F*, const F*, int64_t);                               \
  template void act_backward<F>(Act, F*, const F*, const F*, int64_t);                    \
  template void mul_forward<F>(F*, const F*, const F*, int64_t);                          \
  template void mul_backward<F>(F*, F*, const F*, const F*, const F*, int64_t);           \
  template void add_forward<F>(F*, const F*, const F*, int64_t);                          \
  template void accumulate<F>(F*, const F*, int64_t);                                     \
  template void scale_channels_forward<F>(F*, const F*, const F*, int64_t, int64_t);      \
  template void scale_channels_backward<F>(F*, F*, const F*, const F*, const F*, int64_t, \
                                           int64_t);                                      \
  template void bias_sigmoid_forward<F>(F*, const F*, const F*, int64_t, int64_t);        \
  template void bias_sigmoid_backward<F>(F*, F*, const F*, const F*, int64_t, int64_t);
RWKV_INSTANTIATE(float)
RWKV_INSTANTIATE(double)
#undef RWKV_INSTANTIATE

}  // namespace rwkv::kernels
