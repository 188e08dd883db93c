// Config parsing, precedence, resolution and every validation error. Each error
// test asserts that the message names the offending key (and where it was set).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "common/config.h"
#include "common/config_schema.h"

namespace fs = std::filesystem;
using namespace rwkv;

namespace {

// A config file in a fresh temporary directory.
struct TempConfig {
  fs::path dir;
  fs::path file;
  explicit TempConfig(const std::string& text, const std::string& name = "run.yaml") {
    dir = fs::temp_directory_path() /
          ("rwkv_cfg_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
    file = dir / name;
    std::ofstream(file) << text;
  }
  ~TempConfig() { fs::remove_all(dir); }
};

Config load_text(const std::string& text, std::vector<std::string> sets = {}) {
  TempConfig t(text);
  return load_config({t.file.string(), std::move(sets)});
}

// The ConfigError message of loading `text`; fails the test if it loads.
std::string error_of(const std::string& text, std::vector<std::string> sets = {}) {
  try {
    load_text(text, std::move(sets));
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "config loaded but should have failed:\n" << text;
  return "";
}

#define EXPECT_HAS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "message: " << (haystack)

}  // namespace

TEST(Config, EmbeddedDefaultIsTinyPreset) {
  const Config c = load_config({});
  EXPECT_EQ(c.get_string("model.preset"), "tiny");
  EXPECT_EQ(c.get_int("model.n_layer"), 2);
  EXPECT_EQ(c.get_int("model.n_embd"), 64);
  EXPECT_EQ(c.get_int("model.dim_ffn"), 4 * 64);  // v7 default: 4C
  EXPECT_EQ(c.get_string("model.norm"), "layernorm");
  EXPECT_DOUBLE_EQ(c.get_float("optimizer.lr_init"), 6e-4);
}

TEST(Config, PresetThenFileThenSet) {
  const Config c =
      load_text("model: {preset: rwkv7-0.1b, n_layer: 6}\noptimizer:\n  lr_init: 3e-4\n",
                {"optimizer.lr_init=1e-3", "model.ctx_len=512"});
  EXPECT_EQ(c.get_int("model.version"), 7);
  EXPECT_EQ(c.get_int("model.n_embd"), 768);                 // from the preset
  EXPECT_EQ(c.get_int("model.n_layer"), 6);                  // the file overrides the preset
  EXPECT_DOUBLE_EQ(c.get_float("optimizer.lr_init"), 1e-3);  // --set overrides the file
  EXPECT_EQ(c.get_int("model.ctx_len"), 512);
}

TEST(Config, SetCanChoosePreset) {
  const Config c = load_config({"", {"model.preset=rwkv5-1.5b"}});
  EXPECT_EQ(c.get_int("model.version"), 5);
  EXPECT_EQ(c.get_int("model.n_layer"), 24);
  EXPECT_EQ(c.get_int("model.n_embd"), 2048);
}

TEST(Config, DepthAndWidthScaleSeparately) {
  const Config c = load_text("model: {preset: rwkv6-0.4b, n_embd: 512}\n");
  EXPECT_EQ(c.get_int("model.n_layer"), 24);
  EXPECT_EQ(c.get_int("model.n_embd"), 512);
}

TEST(Config, OfficialDimFfnDefaults) {
  EXPECT_EQ(default_dim_ffn(4, 768), 3072);
  EXPECT_EQ(default_dim_ffn(7, 768), 3072);
  EXPECT_EQ(default_dim_ffn(5, 768), 2688);  // int(3.5*768)//32*32
  EXPECT_EQ(default_dim_ffn(6, 2560), 8960);
  EXPECT_EQ(default_dim_ffn(6, 100), 320);  // 350 -> 320
  EXPECT_EQ(load_text("model: {preset: rwkv6-7.2b}\n").get_int("model.dim_ffn"), 14336);
  EXPECT_EQ(load_text("model: {preset: tiny, dim_ffn: 96}\n").get_int("model.dim_ffn"), 96);
}

TEST(Config, EveryPresetResolves) {
  ASSERT_EQ(preset_names().size(), 22u);  // 5 official sizes x 4 versions + tiny + small
  for (const auto& name : preset_names()) {
    const Config c = load_config({"", {"model.preset=" + name}});
    EXPECT_EQ(c.get_int("model.n_embd") % c.get_int("model.head_size"), 0) << name;
  }
}

TEST(Config, ResolvedYamlRoundTrips) {
  const Config c = load_text("model: {preset: rwkv5-0.4b}\noptimizer: {eps: 1e-18, beta2: 0.99}\n");
  const Config d = parse_resolved_config(c.to_yaml(), "roundtrip");
  EXPECT_EQ(c.values, d.values);
  EXPECT_EQ(d.to_yaml(), c.to_yaml());
}

TEST(Config, RelativePathsFollowTheConfigFile) {
  TempConfig t("data:\n  path: shards\n");
  fs::create_directories(t.dir / "shards");
  const Config c = load_config({t.file.string(), {}});
  EXPECT_EQ(fs::path(c.get_string("data.path")), (t.dir / "shards").lexically_normal());
}

TEST(ConfigErrors, UnknownKeySuggestsClosest) {
  const std::string m = error_of("model:\n  preset: tiny\n  n_embed: 128\n");
  EXPECT_HAS(m, "unknown key 'model.n_embed'");
  EXPECT_HAS(m, "did you mean 'model.n_embd'?");
  EXPECT_HAS(m, "run.yaml:3");
}

TEST(ConfigErrors, UnknownKeyInWrongSectionSuggestsRightSection) {
  const std::string m = error_of("train:\n  lr_init: 1e-3\n");
  EXPECT_HAS(m, "unknown key 'train.lr_init'");
  EXPECT_HAS(m, "did you mean 'optimizer.lr_init'?");
}

TEST(ConfigErrors, UnknownSection) {
  const std::string m = error_of("modle:\n  n_layer: 2\n");
  EXPECT_HAS(m, "unknown section 'modle'");
  EXPECT_HAS(m, "did you mean 'model'?");
}

TEST(ConfigErrors, UnknownKeyFromSet) {
  const std::string m = error_of("", {"model.n_layers=4"});
  EXPECT_HAS(m, "--set model.n_layers=4");
  EXPECT_HAS(m, "did you mean 'model.n_layer'?");
}

TEST(ConfigErrors, SetWithoutValue) {
  EXPECT_HAS(error_of("", {"model.n_layer"}), "--set model.n_layer: expected section.key=value");
}

TEST(ConfigErrors, WrongTypeInteger) {
  const std::string m = error_of("model:\n  n_layer: twelve\n");
  EXPECT_HAS(m, "'model.n_layer': expected an integer, got 'twelve'");
  EXPECT_HAS(m, "run.yaml:2");
}

TEST(ConfigErrors, WrongTypeFractionForInteger) {
  EXPECT_HAS(error_of("", {"train.micro_batch_size=2.5"}),
             "'train.micro_batch_size': expected an integer");
}

TEST(ConfigErrors, WrongTypeNumber) {
  EXPECT_HAS(error_of("optimizer:\n  lr_init: fast\n"),
             "'optimizer.lr_init': expected a finite number");
  EXPECT_HAS(error_of("optimizer:\n  lr_init: .nan\n"),
             "'optimizer.lr_init': expected a finite number");
}

TEST(ConfigErrors, WrongTypeMappingForScalar) {
  EXPECT_HAS(error_of("model:\n  n_layer: {a: 1}\n"),
             "'model.n_layer': expected a single value, got a mapping");
}

TEST(ConfigErrors, SectionNotAMapping) {
  EXPECT_HAS(error_of("model: 5\n"), "'model' must be a mapping");
}

TEST(ConfigErrors, OutOfRange) {
  EXPECT_HAS(error_of("model:\n  n_layer: 0\n"), "'model.n_layer' = 0 is out of range [1, 1024]");
  EXPECT_HAS(error_of("optimizer:\n  beta2: 1.5\n"), "'optimizer.beta2' = 1.5 is out of range");
  EXPECT_HAS(error_of("", {"optimizer.lr_init=-1e-3"}),
             "'optimizer.lr_init' = -0.001 is out of range");
}

TEST(ConfigErrors, VersionNotOfficial) {
  EXPECT_HAS(error_of("model: {version: 8}\n"), "'model.version' = 8 is not one of 4, 5, 6, 7");
}

TEST(ConfigErrors, EnumValue) {
  const std::string m = error_of("model: {norm: layernrom}\n");
  EXPECT_HAS(m, "'model.norm' = 'layernrom' is not one of layernorm, rmsnorm");
  EXPECT_HAS(m, "did you mean 'layernorm'?");
}

TEST(ConfigErrors, WidthNotMultipleOfHeadSize) {
  const std::string m = error_of("model: {n_embd: 100, head_size: 64}\n");
  EXPECT_HAS(m, "'model.n_embd' (100) must be a multiple of 'model.head_size' (64)");
}

TEST(ConfigErrors, HeadsNotDivisibleByTensorParallel) {
  // tiny: 64/16 = 4 heads
  const std::string m = error_of("model: {preset: tiny}\nparallel: {tp: 3}\n");
  EXPECT_HAS(m, "'parallel.tp' (3) must divide the head count n_embd/head_size = 4");
  EXPECT_HAS(m, "run.yaml:2");
}

TEST(ConfigErrors, DimFfnNotDivisibleByTensorParallel) {
  EXPECT_HAS(error_of("model: {preset: tiny, dim_ffn: 250}\nparallel: {tp: 4}\n"),
             "'parallel.tp' (4) must divide 'model.dim_ffn' (250)");
}

TEST(ConfigErrors, V4WidthNotDivisibleByTensorParallel) {
  EXPECT_HAS(error_of("model: {version: 4, n_embd: 96, head_size: 32}\nparallel: {tp: 64}\n"),
             "'parallel.tp' (64) must divide 'model.n_embd' (96)");
}

TEST(ConfigErrors, VocabularyTooSmallForTensorParallel) {
  // Slabs of ceil(5 / 4) = 2 rows: 2, 2, 1 and none for the 4th rank.
  EXPECT_HAS(error_of("model: {preset: tiny, vocab_size: 5}\nparallel: {tp: 4}\n"),
             "'parallel.tp' (4) is too large for 'model.vocab_size' (5)");
}

TEST(ConfigErrors, MissingDataPath) {
  const std::string m = error_of("data:\n  path: /nonexistent/rwkv/shards\n");
  EXPECT_HAS(m, "'data.path': no such file or directory: /nonexistent/rwkv/shards");
  EXPECT_HAS(m, "run.yaml:2");
}

TEST(ConfigErrors, MissingInitCheckpoint) {
  EXPECT_HAS(error_of("", {"checkpoint.init_from=/nonexistent/step-0000100.h5"}),
             "'checkpoint.init_from': no such file or directory");
}

TEST(ConfigErrors, MissingConfigFile) {
  try {
    load_config({"/nonexistent/run.yaml", {}});
    FAIL() << "loaded a missing file";
  } catch (const ConfigError& e) {
    EXPECT_HAS(e.what(), "cannot read config file /nonexistent/run.yaml");
  }
}

TEST(ConfigErrors, UnknownPresetSuggestsClosest) {
  const std::string m = error_of("model: {preset: rwkv7-0.2b}\n");
  EXPECT_HAS(m, "'model.preset': unknown preset 'rwkv7-0.2b'");
  EXPECT_HAS(m, "did you mean 'rwkv7-0.1b'?");
}

TEST(ConfigErrors, MissingPresetFile) {
  EXPECT_HAS(error_of("model: {preset: presets/mine.yaml}\n"),
             "'model.preset': cannot read preset file");
}

TEST(ConfigErrors, PresetFileMayOnlyHoldModel) {
  TempConfig t("model: {preset: mine.yaml}\n");
  std::ofstream(t.dir / "mine.yaml") << "model: {n_layer: 3}\ntrain: {steps: 5}\n";
  try {
    load_config({t.file.string(), {}});
    FAIL() << "loaded";
  } catch (const ConfigError& e) {
    EXPECT_HAS(e.what(), "mine.yaml:2");
    EXPECT_HAS(e.what(), "'train': a model preset may only hold the 'model' section");
  }
}

TEST(ConfigErrors, YamlSyntaxErrorNamesLine) {
  const std::string m = error_of("model:\n  n_layer: [1, 2\n");
  EXPECT_HAS(m, "YAML syntax error");
  EXPECT_HAS(m, "run.yaml:");
}

TEST(ConfigErrors, Bf16ProductsNeedCuda) {
  const std::string m = error_of("train:\n  matmul_precision: bf16\n");
  EXPECT_HAS(m, "'train.matmul_precision' (bf16) needs 'train.device: cuda'");
  EXPECT_HAS(m, "run.yaml:2");
}

TEST(ConfigErrors, AllProblemsReportedAtOnce) {
  const std::string m = error_of("model:\n  n_layer: 0\n  n_embed: 5\noptimizer: {beta1: x}\n");
  EXPECT_HAS(m, "model.n_layer");
  EXPECT_HAS(m, "model.n_embed");
  EXPECT_HAS(m, "optimizer.beta1");
}

TEST(ConfigDocs, EveryKeyIsDocumented) {
  std::ifstream in(std::string(RWKV_SOURCE_DIR) + "/docs/config.md");
  ASSERT_TRUE(in) << "docs/config.md missing";
  const std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const auto& k : config_schema()) EXPECT_HAS(doc, "`" + k.path + "`");
}
