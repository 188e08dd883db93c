// Official initialisation: every parameter name and shape per version (written out
// here from RWKV-LM), deterministic with the seed, and spot checks of the formulas.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "model/init.h"
#include "model/param_table.h"

namespace rwkv::model {
namespace {

using Shape = std::vector<int64_t>;

// Expected per-block names and shapes, C = 64, N = 16 (H = 4), dim_ffn Fd.
std::map<std::string, Shape> expected_block(int v, int64_t Fd) {
  const int64_t C = 64, H = 4, N = 16;
  const Shape c{C}, c11{1, 1, C}, cc{C, C};
  std::map<std::string, Shape> e{{"ln1.weight", c},           {"ln1.bias", c},
                                 {"ln2.weight", c},           {"ln2.bias", c},
                                 {"ffn.key.weight", {Fd, C}}, {"ffn.value.weight", {C, Fd}}};
  for (const char* m : {"key", "value", "receptance", "output"})
    e[std::string("att.") + m + ".weight"] = cc;
  if (v != 7) e["ffn.receptance.weight"] = cc;
  if (v == 4) {
    e["att.time_decay"] = c;
    e["att.time_first"] = c;
    for (const char* m : {"k", "v", "r"}) e[std::string("att.time_mix_") + m] = c11;
  }
  if (v == 4 || v == 5)
    for (const char* m : {"k", "r"}) e[std::string("ffn.time_mix_") + m] = c11;
  if (v == 5 || v == 6) {
    e["att.gate.weight"] = cc;
    e["att.time_faaaa"] = {H, N};
  }
  if (v >= 5) {
    e["att.ln_x.weight"] = c;
    e["att.ln_x.bias"] = c;
  }
  if (v == 5) {
    for (const char* m : {"k", "v", "r", "g"}) e[std::string("att.time_mix_") + m] = c11;
    e["att.time_decay"] = {H, N};
  }
  if (v == 6) {
    for (const char* m : {"x", "w", "k", "v", "r", "g"}) e[std::string("att.time_maa_") + m] = c11;
    e["att.time_maa_w1"] = {C, 160};
    e["att.time_maa_w2"] = {5, 32, C};
    e["att.time_decay"] = c11;
    e["att.time_decay_w1"] = {C, 64};
    e["att.time_decay_w2"] = {64, C};
    e["ffn.time_maa_k"] = c11;
    e["ffn.time_maa_r"] = c11;
  }
  if (v == 7) {
    for (const char* m : {"x_r", "x_w", "x_k", "x_v", "x_a", "x_g", "w0", "a0", "v0", "k_k", "k_a"})
      e[std::string("att.") + m] = c11;
    for (const char* m : {"w", "a", "v", "g"}) {  // ranks 32 at C = 64
      e[std::string("att.") + m + "1"] = {C, 32};
      e[std::string("att.") + m + "2"] = {32, C};
    }
    e["att.r_k"] = {H, N};
    e["ffn.x_k"] = c11;
  }
  return e;
}

ModelConfig small(int v) { return make_model_config(v, 3, 64, 16, 100, 128); }

TEST(Init, NamesAndShapes) {
  for (int v : {4, 5, 6, 7}) {
    const ModelConfig cfg = small(v);
    const ParamTable t = build_param_table(cfg);
    std::map<std::string, Shape> want{{"emb.weight", {100, 64}},     {"head.weight", {100, 64}},
                                      {"ln_out.weight", {64}},       {"ln_out.bias", {64}},
                                      {"blocks.0.ln0.weight", {64}}, {"blocks.0.ln0.bias", {64}}};
    for (int l = 0; l < 3; ++l)
      for (const auto& [n, s] : expected_block(v, cfg.dim_ffn))
        want["blocks." + std::to_string(l) + "." + n] = s;
    std::map<std::string, Shape> got;
    int64_t offset = 0;
    for (const ParamInfo& p : t.params) {
      got[p.name] = p.shape;
      EXPECT_EQ(p.offset, offset) << p.name;
      offset += p.size;
    }
    EXPECT_EQ(t.total, offset);
    EXPECT_EQ(got, want) << "version " << v;
  }
}

std::vector<double> init(const ModelConfig& cfg, uint64_t seed) {
  const ParamTable t = build_param_table(cfg);
  std::vector<double> p(static_cast<size_t>(t.total));
  init_params(cfg, t, seed, p.data());
  return p;
}

const double* at(const ModelConfig& cfg, const std::vector<double>& p, const std::string& n) {
  const ParamTable t = build_param_table(cfg);
  const ParamInfo* info = t.find(n);
  EXPECT_NE(info, nullptr) << n;
  return p.data() + (info ? info->offset : 0);
}

TEST(Init, DeterministicWithSeed) {
  for (int v : {4, 5, 6, 7}) {
    const ModelConfig cfg = small(v);
    EXPECT_EQ(init(cfg, 42), init(cfg, 42));
    EXPECT_NE(init(cfg, 42), init(cfg, 43));
  }
}

TEST(Init, Formulas) {
  const int64_t C = 64, L = 3;
  for (int v : {4, 5, 6, 7}) {
    const ModelConfig cfg = small(v);
    const auto p = init(cfg, 1);
    // Zero output projections (RWKV-LM generate_init_weight).
    for (const char* n : {"blocks.1.att.output.weight", "blocks.2.ffn.value.weight"})
      for (int64_t i = 0; i < C * C; ++i) ASSERT_EQ(at(cfg, p, n)[i], 0.0) << n;
    // Embedding U(-1e-4, 1e-4).
    const double* emb = at(cfg, p, "emb.weight");
    for (int64_t i = 0; i < 100 * C; ++i) ASSERT_LE(std::abs(emb[i]), 1e-4);
    // Head orthogonal with gain 0.5 sqrt(V / C): W^T W = gain^2 I.
    const double* head = at(cfg, p, "head.weight");
    const double g2 = 0.25 * 100.0 / 64.0;
    for (int64_t i = 0; i < C; i += 7)
      for (int64_t j = 0; j < C; j += 5) {
        double s = 0;
        for (int64_t r = 0; r < 100; ++r) s += head[r * C + i] * head[r * C + j];
        EXPECT_NEAR(s, i == j ? g2 : 0.0, 1e-12);
      }
    // LayerNorms: weight 1, bias 0.
    EXPECT_EQ(at(cfg, p, "blocks.2.ln1.weight")[5], 1.0);
    EXPECT_EQ(at(cfg, p, "ln_out.bias")[5], 0.0);
    if (v >= 5) {  // ln_x.weight = ((l + 1) / L)^0.7
      for (int l = 0; l < L; ++l) {
        EXPECT_DOUBLE_EQ(at(cfg, p, "blocks." + std::to_string(l) + ".att.ln_x.weight")[9],
                         std::pow((l + 1.0) / L, 0.7));
      }
    }
  }
  {  // v4 time_decay = -5 + 8 (i / (C-1))^(0.7 + 1.3 l / (L-1)); time_first log(0.3) + zigzag
    const ModelConfig cfg = small(4);
    const auto p = init(cfg, 1);
    EXPECT_DOUBLE_EQ(at(cfg, p, "blocks.1.att.time_decay")[10],
                     -5 + 8 * std::pow(10.0 / 63, 0.7 + 1.3 * 0.5));
    EXPECT_DOUBLE_EQ(at(cfg, p, "blocks.1.att.time_first")[1], std::log(0.3) + 0.5);
    EXPECT_DOUBLE_EQ(at(cfg, p, "blocks.2.att.time_mix_v")[32], std::pow(0.5, 1 - 2.0 / 3) + 0.3);
  }
  {  // v5 time_decay = -6 + 5 (i / (C-1))^(0.7 + 1.3 r); time_faaaa = r (1 - i/(C-1)) + zigzag
    const ModelConfig cfg = small(5);
    const auto p = init(cfg, 1);
    EXPECT_DOUBLE_EQ(at(cfg, p, "blocks.2.att.time_decay")[20], -6 + 5 * std::pow(20.0 / 63, 2.0));
    EXPECT_DOUBLE_EQ(at(cfg, p, "blocks.1.att.time_faaaa")[4], 0.5 * (1 - 4.0 / 63) + 0.1);
  }
  {  // v6: LoRA first factors zero, second U(-0.01, 0.01); maa = 1 - ddd^r
    const ModelConfig cfg = small(6);
    const auto p = init(cfg, 1);
    for (int64_t i = 0; i < C * 160; ++i) ASSERT_EQ(at(cfg, p, "blocks.0.att.time_maa_w1")[i], 0.0);
    const double* w2 = at(cfg, p, "blocks.0.att.time_decay_w2");
    double mx = 0;
    for (int64_t i = 0; i < 64 * C; ++i) mx = std::max(mx, std::abs(w2[i]));
    EXPECT_GT(mx, 0.005);
    EXPECT_LE(mx, 0.01);
    EXPECT_DOUBLE_EQ(at(cfg, p, "blocks.1.ffn.time_maa_k")[16],
                     1 - std::pow(0.25, std::pow(2.0 / 3, 3)));
  }
  {  // v7: w0, a0, v0, k_k, k_a, r_k, x_* formulas; LoRA w1 zero, w2 orthogonal 0.1
    const ModelConfig cfg = small(7);
    const auto p = init(cfg, 1);
    const int64_t i = 21;
    const double linear = i / 63.0 - 0.5;
    double zz = ((i % 16) - 7.5) / 7.5;
    zz *= std::abs(zz);
    EXPECT_DOUBLE_EQ(at(cfg, p, "blocks.1.att.w0")[i],
                     -6 + 6 * std::pow(i / 63.0, 1 + std::pow(0.5, 0.3)) + 0.5 + zz * 2.5);
    EXPECT_DOUBLE_EQ(at(cfg, p, "blocks.1.att.a0")[i], -0.19 + zz * 0.3 + linear * 0.4);
    EXPECT_DOUBLE_EQ(at(cfg, p, "blocks.1.att.v0")[i], 0.73 - linear * 0.4);
    EXPECT_DOUBLE_EQ(at(cfg, p, "blocks.1.att.k_k")[i], 0.71 - linear * 0.1);
    EXPECT_DOUBLE_EQ(at(cfg, p, "blocks.1.att.k_a")[i], 1.02);
    EXPECT_DOUBLE_EQ(at(cfg, p, "blocks.1.att.r_k")[i], -0.04);
    EXPECT_DOUBLE_EQ(at(cfg, p, "blocks.1.att.x_w")[i], 1 - std::pow(i / 64.0, 0.9 * (2.0 / 3)));
    EXPECT_DOUBLE_EQ(at(cfg, p, "blocks.2.ffn.x_k")[i],
                     1 - std::pow(i / 64.0, std::pow(1.0 / 3, 4)));
    EXPECT_EQ(at(cfg, p, "blocks.1.att.w1")[100], 0.0);
    const double* w2 = at(cfg, p, "blocks.1.att.w2");  // [32, 64], rows orthonormal * 0.1
    double s = 0;
    for (int64_t j = 0; j < C; ++j) s += w2[3 * C + j] * w2[3 * C + j];
    EXPECT_NEAR(s, 0.01, 1e-14);
  }
}

}  // namespace
}  // namespace rwkv::model
