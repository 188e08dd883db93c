#include "kernels/cpu/wkv4.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/wkv_common.h"

namespace rwkv::kernels {
namespace {


// pp of the empty state: e^pp is 0 in fp32 and double, and pp - w stays finite.
constexpr double kEmptyPP = -1e38;

void check_args(const char* fn, int B, int T, int C, int c0, int c1) {
  if (B < 0 || T < 0 || C < 0 || c0 < 0 || c1 > C || c0 > c1) {
    std::ostringstream msg;
    msg << fn << ": bad shape B=" << B << " T=" << T << " C=" << C << " or channel range [" << c0
        << ", " << c1 << ")";
    throw Error(msg.str());
  }
}

}  // namespace

// Per batch row, time runs in the outer loop and channels in the inner one, so the
// inner loop reads contiguous memory of the [B, T, C] tensors.
template <typename F>
void wkv4_forward_naive(int B, int T, int C, int c0, int c1, const F* w, const F* u, const F* k,
                        const F* v, F* y, const std::type_identity_t<F>* state_in,
                        std::type_identity_t<F>* state_out) {
  check_args("wkv4_forward_naive", B, T, C, c0, c1);
  const int nc = c1 - c0;
  std::vector<F> aa(nc), bb(nc), pp(nc);
  for (int b = 0; b < B; ++b) {
    for (int c = 0; c < nc; ++c) {
      const F* s = state_in ? state_in + (size_t(b) * C + c0 + c) * 3 : nullptr;
      aa[c] = s ? s[0] : F(0);
      bb[c] = s ? s[1] : F(0);
      pp[c] = s ? s[2] : F(kEmptyPP);
    }
    for (int t = 0; t < T; ++t) {
      const size_t row = (size_t(b) * T + t) * C + c0;
      for (int c = 0; c < nc; ++c) {
        const F kk = k[row + c], vv = v[row + c];
        // Output: the current token enters with the bonus u.
        const F ww = u[c0 + c] + kk;
        F p = std::max(pp[c], ww);
        F e1 = fast::exp(pp[c] - p), e2 = fast::exp(ww - p);
        y[row + c] = (e1 * aa[c] + e2 * vv) / (e1 * bb[c] + e2);
        // State: decay by e^{-w}, then add the current token.
        const F wd = pp[c] - w[c0 + c];
        p = std::max(wd, kk);
        e1 = fast::exp(wd - p);
        e2 = fast::exp(kk - p);
        aa[c] = e1 * aa[c] + e2 * vv;
        bb[c] = e1 * bb[c] + e2;
        pp[c] = p;
      }
    }
    if (state_out) {
      for (int c = 0; c < nc; ++c) {
        F* s = state_out + (size_t(b) * C + c0 + c) * 3;
        s[0] = aa[c];
        s[1] = bb[c];
        s[2] = pp[c];
      }
    }
  }
}

// With a_t = sum_{i<=t} e^{-(t-i)w + k_i} v_i, b_t the same without v_i, the output is
// y_t = N_t / D_t with N_t = a_{t-1} + e^{u+k_t} v_t, D_t = b_{t-1} + e^{u+k_t}.
// Let q_t = dy_t / D_t. Then
//   du    = sum_t q_t e^{u+k_t} (v_t - y_t)
//   dw    = sum_t q_t (y_t beta_{t-1} - alpha_{t-1}),  alpha_t = sum_{i<=t} (t-i) e^{-(t-i)w+k_i}
//   v_i
//           (beta_t without v_i), alpha_t = e^{-w} (alpha_{t-1} + a_{t-1})
//   dk_t  = q_t e^{u+k_t} (v_t - y_t) + e^{k_t} (v_t A_t - Bq_t)
//   dv_t  = q_t e^{u+k_t} + e^{k_t} A_t
// with A_t = sum_{t'>t} e^{-(t'-1-t)w} q_t', Bq_t the same with q_t' y_t' (reverse scans
// A_{t-1} = q_t + e^{-w} A_t). Every running sum is kept as (mantissa, log scale) like
// the forward state, so nothing overflows: q_t = g_t e^{-p_t} with g_t = dy_t / den_t.
template <typename F>
void wkv4_backward_naive(int B, int T, int C, int c0, int c1, const F* w, const F* u, const F* k,
                         const F* v, const F* dy, F* dw, F* du, F* dk, F* dv) {
  check_args("wkv4_backward_naive", B, T, C, c0, c1);
  const int nc = c1 - c0;
  std::vector<F> aa(nc), bb(nc), pp(nc), ga(nc), gb(nc), sw(nc, F(0)), su(nc, F(0));
  // Per token of one batch row, [T, nc]: y_t, g_t and the scale p_t of D_t.
  std::vector<F> ys(size_t(T) * nc), gs(size_t(T) * nc), ps(size_t(T) * nc);
  for (int b = 0; b < B; ++b) {
    std::fill(aa.begin(), aa.end(), F(0));
    std::fill(bb.begin(), bb.end(), F(0));
    std::fill(pp.begin(), pp.end(), F(kEmptyPP));
    std::fill(ga.begin(), ga.end(), F(0));
    std::fill(gb.begin(), gb.end(), F(0));
    for (int t = 0; t < T; ++t) {
      const size_t row = (size_t(b) * T + t) * C + c0;
      F* yt = ys.data() + size_t(t) * nc;
      F* gt = gs.data() + size_t(t) * nc;
      F* pt = ps.data() + size_t(t) * nc;
      for (int c = 0; c < nc; ++c) {
        const F kk = k[row + c], vv = v[row + c];
        const F ww = u[c0 + c] + kk;
        F p = std::max(pp[c], ww);
        F e1 = fast::exp(pp[c] - p), e2 = fast::exp(ww - p);
        const F den = e1 * bb[c] + e2;
        const F yy = (e1 * aa[c] + e2 * vv) / den;
        const F g = dy[row + c] / den;
        su[c] += g * e2 * (vv - yy);
        sw[c] += g * e1 * (yy * gb[c] - ga[c]);
        yt[c] = yy;
        gt[c] = g;
        pt[c] = p;
        const F wd = pp[c] - w[c0 + c];
        p = std::max(wd, kk);
        e1 = fast::exp(wd - p);
        e2 = fast::exp(kk - p);
        ga[c] = e1 * (ga[c] + aa[c]);
        gb[c] = e1 * (gb[c] + bb[c]);
        aa[c] = e1 * aa[c] + e2 * vv;
        bb[c] = e1 * bb[c] + e2;
        pp[c] = p;
      }
    }
    // Reverse scan: aa, bb, pp now hold A_t, Bq_t and their log scale.
    std::fill(aa.begin(), aa.end(), F(0));
    std::fill(bb.begin(), bb.end(), F(0));
    std::fill(pp.begin(), pp.end(), F(kEmptyPP));
    for (int t = T - 1; t >= 0; --t) {
      const size_t row = (size_t(b) * T + t) * C + c0;
      const F* yt = ys.data() + size_t(t) * nc;
      const F* gt = gs.data() + size_t(t) * nc;
      const F* pt = ps.data() + size_t(t) * nc;
      for (int c = 0; c < nc; ++c) {
        const F kk = k[row + c], vv = v[row + c], yy = yt[c], g = gt[c];
        const F qe = g * fast::exp(u[c0 + c] + kk - pt[c]);  // q_t e^{u+k_t}
        const F ek = fast::exp(kk + pp[c]);                  // e^{k_t} x scale of A_t
        dk[row + c] = qe * (vv - yy) + ek * (vv * aa[c] - bb[c]);
        dv[row + c] = qe + ek * aa[c];
        const F wd = pp[c] - w[c0 + c];
        const F p = std::max(wd, -pt[c]);
        const F e1 = fast::exp(wd - p), e2 = fast::exp(-pt[c] - p) * g;
        aa[c] = e1 * aa[c] + e2;
        bb[c] = e1 * bb[c] + e2 * yy;
        pp[c] = p;
      }
    }
  }
  for (int c = 0; c < nc; ++c) {
    dw[c0 + c] = sw[c];
    du[c0 + c] = su[c];
  }
}

template void wkv4_forward_naive<float>(int, int, int, int, int, const float*, const float*,
                                        const float*, const float*, float*, const float*, float*);
template void wkv4_forward_naive<double>(int, int, int, int, int, const double*, const double*,
                                         const double*, const double*, double*, const double*,
                                         double*);
template void wkv4_backward_naive<float>(int, int, int, int, int, const float*, const float*,
                                         const float*, const float*, const float*, float*, float*,
                                         float*, float*);
template void wkv4_backward_naive<double>(int, int, int, int, int, const double*, const double*,
                                          const double*, const double*, const double*, double*,
                                          double*, double*, double*);

}  // namespace rwkv::kernels
