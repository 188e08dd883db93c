#include "model/init.h"

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/error.h"
#include "model/rng.h"

// LAPACK (Fortran ABI) from OpenBLAS: QR factorisation and forming Q.
extern "C" {
void dgeqrf_(const int* m, const int* n, double* a, const int* lda, double* tau, double* work,
             const int* lwork, int* info);
void dorgqr_(const int* m, const int* n, const int* k, double* a, const int* lda, const double* tau,
             double* work, const int* lwork, int* info);
}

namespace rwkv::model {

void orthogonal_init(double* out, int64_t rows, int64_t cols, double gain, uint64_t seed) {
  // torch: QR of a tall Gaussian matrix (the transpose when rows < cols), Q scaled
  // column-wise by sign(diag(R)).
  Rng rng(seed);
  const int m = static_cast<int>(std::max(rows, cols)), n = static_cast<int>(std::min(rows, cols));
  std::vector<double> a(static_cast<size_t>(m) * n), tau(static_cast<size_t>(n));
  for (double& x : a) x = rng.normal();
  int info = 0, lwork = -1;
  double query = 0;
  dgeqrf_(&m, &n, a.data(), &m, tau.data(), &query, &lwork, &info);
  lwork = static_cast<int>(query);
  std::vector<double> work(static_cast<size_t>(std::max(lwork, 1)));
  dgeqrf_(&m, &n, a.data(), &m, tau.data(), work.data(), &lwork, &info);
  if (info != 0) throw Error("orthogonal init: dgeqrf failed (info " + std::to_string(info) + ")");
  std::vector<double> sign(static_cast<size_t>(n));
  for (int j = 0; j < n; ++j) sign[j] = a[static_cast<size_t>(j) * m + j] < 0 ? -1.0 : 1.0;
  lwork = -1;
  dorgqr_(&m, &n, &n, a.data(), &m, tau.data(), &query, &lwork, &info);
  lwork = static_cast<int>(query);
  work.assign(static_cast<size_t>(std::max(lwork, 1)), 0.0);
  dorgqr_(&m, &n, &n, a.data(), &m, tau.data(), work.data(), &lwork, &info);
  if (info != 0) throw Error("orthogonal init: dorgqr failed (info " + std::to_string(info) + ")");
  // Q is column-major m x n: Q[i][j] = a[i + j*m].
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      const int64_t qi = rows >= cols ? i : j, qj = rows >= cols ? j : i;
      out[i * cols + j] = gain * sign[qj] * a[qj * m + qi];
    }
}

namespace {

// Per-layer ratios of the official __init__s. RWKV-LM divides by n_layer - 1; a
// one-layer model takes ratio_0_to_1 = 0.
struct Ratios {
  double r01;  // ratio_0_to_1 = l / (L - 1)
  double r10;  // ratio_1_to_almost0 = 1 - l / L
};

// ddd[i] = i / C; returns 1 - ddd^p (v6 / v7 form) or ddd^p (+ add).
double ddd_pow(int64_t i, int64_t C, double p) {
  return std::pow(static_cast<double>(i) / static_cast<double>(C), p);
}

struct Initialiser {
  const ModelConfig& cfg;
  uint64_t seed;

  // Fills v [p.whole_size()] (the whole tensor) for parameter p (index idx in the table).
  void fill(const ParamInfo& p, size_t idx, std::vector<double>& v) const {
    const int64_t C = cfg.n_embd, L = cfg.n_layer, V = cfg.vocab_size;
    const uint64_t s = stream_seed(seed, idx);
    const std::string& n = p.name;
    if (n == "emb.weight") {  // generate_init_weight: U(-1e-4, 1e-4)
      Rng rng(s);
      for (double& x : v) x = rng.uniform(-1e-4, 1e-4);
      return;
    }
    if (n == "head.weight") {  // orthogonal, gain 0.5 * sqrt(V / C) when V > C, else 0.5
      const double gain = V > C ? 0.5 * std::sqrt(static_cast<double>(V) / C) : 0.5;
      orthogonal_init(v.data(), V, C, gain, s);
      return;
    }
    if (n.rfind("ln_out.", 0) == 0) return norm_default(n, v);
    // blocks.{l}.<local>
    const size_t dot1 = n.find('.'), dot2 = n.find('.', dot1 + 1);
    const int l = std::stoi(n.substr(dot1 + 1, dot2 - dot1 - 1));
    const std::string local = n.substr(dot2 + 1);
    const Ratios r{L > 1 ? static_cast<double>(l) / static_cast<double>(L - 1) : 0.0,
                   1.0 - static_cast<double>(l) / static_cast<double>(L)};
    if (local == "att.ln_x.weight") {  // generate_init_weight: ((l + 1) / L)^0.7
      for (double& x : v) x = std::pow(static_cast<double>(l + 1) / static_cast<double>(L), 0.7);
      return;
    }
    if (local.rfind("ln", 0) == 0 || local == "att.ln_x.bias") return norm_default(n, v);
    if (local.ends_with(".weight")) return matrix(local, p, s, v);
    if (cfg.version == 4) return v4(local, r, v);
    if (cfg.version == 7) return v7(local, r, p, s, v);
    return v5v6(local, r, s, v);
  }

  static void norm_default(const std::string& n, std::vector<double>& v) {
    const double val = n.ends_with(".weight") ? 1.0 : 0.0;
    for (double& x : v) x = val;
  }

  // Linear weights [out, in]: zero, or orthogonal with the version's gain.
  void matrix(const std::string& local, const ParamInfo& p, uint64_t s,
              std::vector<double>& v) const {
    const int64_t rows = p.shape[0], cols = p.shape[1];
    double scale = 1.0;
    if (cfg.version == 4) {
      // RWKV-v4neo generate_init_weight: zero key, receptance, output, ffn value and
      // receptance; the rest gain sqrt(rows / cols) when rows > cols.
      for (const char* z :
           {"att.key.", "att.receptance.", "att.output.", "ffn.value.", "ffn.receptance."})
        if (local.rfind(z, 0) == 0) scale = 0.0;
      if (rows > cols) scale *= std::sqrt(static_cast<double>(rows) / static_cast<double>(cols));
    } else {
      // RWKV-v5 / v7 generate_init_weight: zero output, ffn value and receptance; key
      // and gate 0.1; the rest 1.
      for (const char* z : {"att.output.", "ffn.value.", "ffn.receptance."})
        if (local.rfind(z, 0) == 0) scale = 0.0;
      if (local.rfind("att.key.", 0) == 0 || local.rfind("att.gate.", 0) == 0) scale = 0.1;
    }
    if (scale == 0.0) {
      for (double& x : v) x = 0.0;
      return;
    }
    orthogonal_init(v.data(), rows, cols, scale, s);
  }

  // RWKV-v4neo RWKV_TimeMix / RWKV_ChannelMix.
  void v4(const std::string& local, const Ratios& r, std::vector<double>& v) const {
    const int64_t C = cfg.n_embd;
    for (int64_t i = 0; i < C; ++i) {
      const double fi = static_cast<double>(i), c1 = static_cast<double>(C - 1);
      double x = 0;
      if (local == "att.time_decay")
        x = -5.0 + 8.0 * std::pow(fi / c1, 0.7 + 1.3 * r.r01);
      else if (local == "att.time_first")
        x = std::log(0.3) + static_cast<double>((i + 1) % 3 - 1) * 0.5;
      else if (local == "att.time_mix_k" || local == "ffn.time_mix_k" || local == "ffn.time_mix_r")
        x = ddd_pow(i, C, r.r10);
      else if (local == "att.time_mix_v")
        x = ddd_pow(i, C, r.r10) + 0.3 * r.r01;
      else if (local == "att.time_mix_r")
        x = ddd_pow(i, C, 0.5 * r.r10);
      else
        throw Error("init: no rule for parameter '" + local + "'");
      v[static_cast<size_t>(i)] = x;
    }
  }

  // RWKV-v5 RWKV_Tmix_x052 / x060 and RWKV_CMix_x052 / x060.
  void v5v6(const std::string& local, const Ratios& r, uint64_t s, std::vector<double>& v) const {
    const int64_t C = cfg.n_embd;
    if (local == "att.time_maa_w2" || local == "att.time_decay_w2") {  // U(-0.01, 0.01)
      Rng rng(s);
      for (double& x : v) x = rng.uniform(-0.01, 0.01);
      return;
    }
    if (local == "att.time_maa_w1" || local == "att.time_decay_w1") {
      for (double& x : v) x = 0.0;
      return;
    }
    for (int64_t i = 0; i < C; ++i) {
      const double fi = static_cast<double>(i), c1 = static_cast<double>(C - 1);
      const double p1 = ddd_pow(i, C, r.r10), ph = ddd_pow(i, C, 0.5 * r.r10);
      double x = 0;
      if (local == "att.time_mix_k")
        x = p1;
      else if (local == "att.time_mix_v")
        x = p1 + 0.3 * r.r01;
      else if (local == "att.time_mix_r" || local == "att.time_mix_g")
        x = ph;
      else if (local == "att.time_maa_x" || local == "att.time_maa_w" || local == "att.time_maa_k")
        x = 1.0 - p1;
      else if (local == "att.time_maa_v")
        x = 1.0 - (p1 + 0.3 * r.r01);
      else if (local == "att.time_maa_r" || local == "att.time_maa_g")
        x = 1.0 - ph;
      else if (local == "att.time_decay")
        x = -6.0 + 5.0 * std::pow(fi / c1, 0.7 + 1.3 * r.r01);
      else if (local == "att.time_faaaa")
        x = r.r01 * (1.0 - fi / c1) + static_cast<double>((i + 1) % 3 - 1) * 0.1;
      else if (local == "ffn.time_mix_k" || local == "ffn.time_mix_r")
        x = p1;
      else if (local == "ffn.time_maa_k" || local == "ffn.time_maa_r")
        x = 1.0 - ddd_pow(i, C, r.r10 * r.r10 * r.r10);
      else
        throw Error("init: no rule for parameter '" + local + "'");
      v[static_cast<size_t>(i)] = x;
    }
  }

  // RWKV-v7 train_temp RWKV_Tmix_x070 / RWKV_CMix_x070.
  void v7(const std::string& local, const Ratios& r, const ParamInfo& p, uint64_t s,
          std::vector<double>& v) const {
    const int64_t C = cfg.n_embd, N = cfg.head_size;
    if (local == "att.w1" || local == "att.a1" || local == "att.v1" || local == "att.g1") {
      for (double& x : v) x = 0.0;
      return;
    }
    if (local == "att.w2" || local == "att.a2" || local == "att.v2" || local == "att.g2") {
      // ortho_init(x, 0.1): gain sqrt(rows / cols) when rows > cols.
      const int64_t rows = p.shape[0], cols = p.shape[1];
      const double gain =
          rows > cols ? std::sqrt(static_cast<double>(rows) / static_cast<double>(cols)) : 1.0;
      orthogonal_init(v.data(), rows, cols, gain * 0.1, s);
      return;
    }
    const double half = static_cast<double>(N - 1) / 2.0;
    for (int64_t i = 0; i < C; ++i) {
      const double fi = static_cast<double>(i), c1 = static_cast<double>(C - 1);
      const double linear = fi / c1 - 0.5;
      double zz = (static_cast<double>(i % N) - half) / half;
      zz = zz * std::abs(zz);
      double x = 0;
      if (local == "att.x_r" || local == "att.x_g")
        x = 1.0 - ddd_pow(i, C, 0.2 * r.r10);
      else if (local == "att.x_w" || local == "att.x_a")
        x = 1.0 - ddd_pow(i, C, 0.9 * r.r10);
      else if (local == "att.x_k" || local == "att.x_v")
        x = 1.0 - ddd_pow(i, C, 0.7 * r.r10);
      else if (local == "att.w0")
        x = -6.0 + 6.0 * std::pow(fi / c1, 1.0 + std::pow(r.r01, 0.3)) + 0.5 + zz * 2.5;
      else if (local == "att.a0")
        x = -0.19 + zz * 0.3 + linear * 0.4;
      else if (local == "att.v0")
        x = 0.73 - linear * 0.4;
      else if (local == "att.k_k")
        x = 0.71 - linear * 0.1;
      else if (local == "att.k_a")
        x = 1.02;
      else if (local == "att.r_k")
        x = -0.04;
      else if (local == "ffn.x_k")
        x = 1.0 - ddd_pow(i, C, std::pow(r.r10, 4.0));
      else
        throw Error("init: no rule for parameter '" + local + "'");
      v[static_cast<size_t>(i)] = x;
    }
  }
};

}  // namespace

template <typename F>
void init_params(const ModelConfig& cfg, const ParamTable& table, uint64_t seed, F* host) {
  const Initialiser init{cfg, seed};
  std::vector<double> v;
  for (size_t i = 0; i < table.params.size(); ++i) {
    // The whole tensor, then this rank's slab: every TP layout gets the same values.
    const ParamInfo& p = table.params[i];
    v.assign(static_cast<size_t>(p.whole_size()), 0.0);
    init.fill(p, i, v);
    p.slab_from_whole(v.data(), host + p.offset);
  }
}

template void init_params<float>(const ModelConfig&, const ParamTable&, uint64_t, float*);
template void init_params<double>(const ModelConfig&, const ParamTable&, uint64_t, double*);

}  // namespace rwkv::model
