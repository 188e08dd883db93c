#pragma once
// Run configs: YAML files with the sections model, data, train, optimizer,
// parallel, checkpoint, log; defaults from the schema (config_schema.h); a model
// preset underneath; `--set section.key=value` overrides on top.
//
// Precedence, lowest first: schema default < preset < config file < --set.
#include <mpi.h>

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "common/error.h"
#include "common/model_defaults.h"

namespace rwkv {

using ConfigValue = std::variant<int64_t, double, std::string>;

// A resolved, validated config: every schema key has a value.
struct Config {
  std::map<std::string, ConfigValue> values;  // by key path, e.g. "model.n_embd"
  std::string source;                         // the file it came from ("<embedded default>")

  int64_t get_int(const std::string& path) const;
  double get_float(const std::string& path) const;
  const std::string& get_string(const std::string& path) const;
  // The resolved config as YAML, in schema order; parsing it back gives the same Config.
  std::string to_yaml() const;
};

struct ConfigRequest {
  std::string path;                // config file; "" = the embedded default (configs/default.yaml)
  std::vector<std::string> sets;   // "section.key=value" overrides
};

// Reads, merges, validates and resolves. Throws ConfigError listing every problem,
// one per line, each naming the key path and where it was set (file:line or --set).
Config load_config(const ConfigRequest& req);

// As load_config, collectively: rank 0 validates (reading files once), the verdict
// is broadcast, and every rank either gets the same Config or throws the same
// ConfigError. No rank blocks if another fails.
Config load_config_collective(MPI_Comm comm, const ConfigRequest& req);

// Parses the YAML of an already resolved config (Config::to_yaml output).
Config parse_resolved_config(const std::string& yaml, const std::string& source);

// Embedded model presets (configs/model/*.yaml), by name.
std::vector<std::string> preset_names();
const std::string* preset_text(const std::string& name);

}  // namespace rwkv
