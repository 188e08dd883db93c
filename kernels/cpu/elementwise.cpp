#include "kernels/cpu/elementwise.h"

#include "kernels/cpu/fast_math.h"

// The float loops vectorise: exp, sigmoid and tanh from fast_math.h (libm's in double),
// the ReLUs as bitwise selects, and per-channel parameter gradients summed row by row
// in __restrict helpers (written inline next to other outputs that may alias, such
// loops stay scalar). Those sums add the rows in order, whatever the vector width.
namespace rwkv::kernels {

namespace {

// acc += dout * s (1 - s): the gradient through s = sigmoid(.), from s.
template <typename F>
[[gnu::always_inline]] inline void add_sigmoid_grad_row(F* __restrict acc, const F* __restrict dout,
                                                        const F* __restrict s, int64_t C) {
  for (int64_t c = 0; c < C; ++c) acc[c] += dout[c] * s[c] * (F(1) - s[c]);
}

}  // namespace

template <typename F>
RWKV_CPU_SIMD void act_forward(Act act, F* out, const F* x, int64_t n) {
  switch (act) {
    case Act::sigmoid:
      for (int64_t i = 0; i < n; ++i) out[i] = fast::sigmoid(x[i]);
      break;
    case Act::silu:
      for (int64_t i = 0; i < n; ++i) out[i] = x[i] * fast::sigmoid(x[i]);
      break;
    case Act::tanh:
      for (int64_t i = 0; i < n; ++i) out[i] = fast::tanh(x[i]);
      break;
    case Act::relu:
      for (int64_t i = 0; i < n; ++i) out[i] = fast::select(x[i] > 0, x[i], F(0));
      break;
    case Act::relu_sq:
      for (int64_t i = 0; i < n; ++i) out[i] = fast::select(x[i] > 0, x[i] * x[i], F(0));
      break;
    case Act::exp:
      for (int64_t i = 0; i < n; ++i) out[i] = fast::exp(x[i]);
      break;
  }
}

template <typename F>
RWKV_CPU_SIMD void act_backward(Act act, F* dx, const F* dout, const F* x, int64_t n) {
  switch (act) {
    case Act::sigmoid:
      for (int64_t i = 0; i < n; ++i) {
        const F s = fast::sigmoid(x[i]);
        dx[i] += dout[i] * s * (F(1) - s);
      }
      break;
    case Act::silu:
      for (int64_t i = 0; i < n; ++i) {
        const F s = fast::sigmoid(x[i]);
        dx[i] += dout[i] * s * (F(1) + x[i] * (F(1) - s));
      }
      break;
    case Act::tanh:
      for (int64_t i = 0; i < n; ++i) {
        const F t = fast::tanh(x[i]);
        dx[i] += dout[i] * (F(1) - t * t);
      }
      break;
    case Act::relu:
      for (int64_t i = 0; i < n; ++i) dx[i] += fast::select(x[i] > 0, dout[i], F(0));
      break;
    case Act::relu_sq:
      for (int64_t i = 0; i < n; ++i) dx[i] += fast::select(x[i] > 0, F(2) * x[i] * dout[i], F(0));
      break;
    case Act::exp:
      for (int64_t i = 0; i < n; ++i) dx[i] += dout[i] * fast::exp(x[i]);
      break;
  }
}

template <typename F>
void mul_forward(F* out, const F* a, const F* b, int64_t n) {
  fast::product(out, a, b, n);
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
RWKV_CPU_SIMD void scale_channels_backward(F* dx, F* dvec, const F* dout, const F* x, const F* vec,
                                           int64_t n, int64_t C) {
  for (int64_t i = 0; i < n; ++i) {
    if (dx) fast::add_product(dx + i * C, dout + i * C, vec, C);
    if (dvec) fast::add_product(dvec, dout + i * C, x + i * C, C);
  }
}

template <typename F>
RWKV_CPU_SIMD void bias_sigmoid_forward(F* out, const F* bias, const F* z, int64_t n, int64_t C) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < C; ++c) out[i * C + c] = fast::sigmoid(bias[c] + z[i * C + c]);
}

template <typename F>
RWKV_CPU_SIMD void bias_sigmoid_backward(F* dbias, F* dz, const F* dout, const F* out, int64_t n,
                                         int64_t C) {
  for (int64_t i = 0; i < n; ++i) {
    if (dz) add_sigmoid_grad_row(dz + i * C, dout + i * C, out + i * C, C);
    if (dbias) add_sigmoid_grad_row(dbias, dout + i * C, out + i * C, C);
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
