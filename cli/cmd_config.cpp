// rwkv config show|keys|presets
#include <iomanip>
#include <iostream>
#include <sstream>

#include "cli/command.h"
#include "common/byte_size.h"
#include "common/config.h"
#include "common/config_schema.h"
#include "model/model.h"
#include "model/model_config.h"
#include "model/param_count.h"
#include "trainer/train_device.h"

namespace rwkv::cli {

namespace {

// 1234567 -> "1,234,567".
std::string grouped(int64_t v) {
  std::string s = std::to_string(v), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return out;
}

// The model's size, as YAML comments after the config (docs/model.md has the formula).
void print_model_size(const Config& c) {
  const model::ModelConfig m = model::model_config_from(c);
  const model::ParamCounts p = model::count_params(m);
  const model::FlopCounts f = model::count_flops(m);
  std::ostringstream out;
  out << "# parameters: " << grouped(p.total) << " (embedding " << grouped(p.embedding)
      << ", blocks " << grouped(p.blocks) << ", head " << grouped(p.head) << ")\n"
      << "# training FLOPs per token: " << grouped(f.training_per_token) << " (6 x "
      << grouped(f.matmul_params) << " matmul weights + 3 x " << grouped(f.wkv_forward)
      << " WKV)\n";
  // What one rank's training forward allocates (tensor-parallel rank 0 of parallel.tp).
  const int B = static_cast<int>(c.get_int("train.micro_batch_size"));
  const int tp = static_cast<int>(c.get_int("parallel.tp"));
  const bool recompute = trainer::recompute_activations(c);
  const bool bf16 = c.get_string("train.activations") == "bf16";
  const model::TpRanges ranges = model::tp_ranges(m, {0, tp});
  const int64_t bytes =
      bf16
          ? model::Model<float, kernels::Bf16>::activation_bytes(m, ranges, recompute, B, m.ctx_len)
          : model::Model<float>::activation_bytes(m, ranges, recompute, B, m.ctx_len);
  out << "# activations per rank (micro-batch " << B << " x ctx_len " << m.ctx_len
      << (tp > 1 ? ", tp " + std::to_string(tp) : "") << (bf16 ? ", bf16" : ", fp32")
      << (recompute ? ", recomputed" : "") << "): " << byte_size(static_cast<double>(bytes))
      << "\n";
  std::cout << out.str();
}

int config_show(const std::vector<std::string>& args) {
  const std::string prog = "rwkv config show";
  po::options_description opts("options");
  opts.add_options()
      ("config", po::value<std::string>()->default_value(""),
       "run config (YAML); omitted: the embedded default (configs/default.yaml)")
      ("set", po::value<std::vector<std::string>>()->composing(),
       "override one key, e.g. --set model.n_layer=6 (repeatable)");
  po::positional_options_description pos;
  pos.add("config", 1);
  po::variables_map vm;
  if (auto rc = parse_args(prog, "[CONFIG] [--set section.key=value ...]", args, opts, pos, vm))
    return *rc;
  ConfigRequest req{vm["config"].as<std::string>(), {}};
  if (vm.count("set")) req.sets = vm["set"].as<std::vector<std::string>>();
  return run_with_mpi(prog, [&](int rank, int) {
    const Config c = load_config_collective(MPI_COMM_WORLD, req);
    if (rank == 0) {
      std::cout << "# resolved config of " << c.source << "\n" << c.to_yaml();
      print_model_size(c);
    }
    return kExitOk;
  });
}

int config_keys(const std::vector<std::string>& args) {
  po::options_description opts("options");
  po::variables_map vm;
  if (auto rc = parse_args("rwkv config keys", "", args, opts, {}, vm)) return *rc;
  for (const auto& k : config_schema()) {
    std::ostringstream type;
    if (k.choices.empty()) {
      type << key_type_name(k.type);
    } else {
      type << "{";
      for (size_t i = 0; i < k.choices.size(); ++i) type << (i ? "," : "") << k.choices[i];
      type << "}";
    }
    std::cout << std::left << std::setw(30) << k.path << std::setw(28) << type.str() << "default "
              << (k.default_value.empty() ? "(unset)" : k.default_value) << "\n    " << k.help
              << "\n";
  }
  return kExitOk;
}

int config_presets(const std::vector<std::string>& args) {
  po::options_description opts("options");
  po::variables_map vm;
  if (auto rc = parse_args("rwkv config presets", "", args, opts, {}, vm)) return *rc;
  for (const auto& name : preset_names()) std::cout << name << "\n";
  return kExitOk;
}

}  // namespace

int run_config(const std::vector<std::string>& args) {
  const std::string prog = "rwkv config";
  const std::string usage =
      "usage: rwkv config <show|keys|presets> [<args>]\n\n"
      "  show      print the resolved config (defaults, preset, file, --set), after validation\n"
      "  keys      list every config key with its type, default and meaning\n"
      "  presets   list the built-in model presets (configs/model/)\n";
  if (args.empty()) {
    std::cerr << usage;
    return kExitUsage;
  }
  if (args[0] == "--help" || args[0] == "-h") {
    std::cout << usage;
    return kExitOk;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "show") return config_show(rest);
  if (args[0] == "keys") return config_keys(rest);
  if (args[0] == "presets") return config_presets(rest);
  return usage_error(prog, "unknown subcommand '" + args[0] + "'");
}

}  // namespace rwkv::cli
