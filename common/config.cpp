#include "common/config.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/config_schema.h"
#include "common/edit_distance.h"
#include "common/mpi_util.h"
#include "common/presets_embedded.h"

namespace fs = std::filesystem;

namespace rwkv {

namespace {

// One key as written somewhere: its YAML scalar and where it came from.
struct Entry {
  YAML::Node value;
  std::string origin;  // "run.yaml:12", "--set model.n_embd=5", "preset tiny:3"
  fs::path base_dir;   // relative paths in this entry are relative to this
};
using Entries = std::map<std::string, Entry>;

struct Problems {
  std::vector<std::string> lines;
  void add(const std::string& where, const std::string& msg) {
    lines.push_back(where.empty() ? msg : where + ": " + msg);
  }
};

std::string at(const std::string& file, const YAML::Mark& m) {
  return m.is_null() ? file : file + ":" + std::to_string(m.line + 1);
}

std::vector<std::string> all_key_paths() {
  std::vector<std::string> out;
  for (const auto& k : config_schema()) out.push_back(k.path);
  return out;
}

std::string suggestion(const std::string& word, const std::vector<std::string>& candidates) {
  const std::string m = closest_match(word, candidates);
  return m.empty() ? "" : " (did you mean '" + m + "'?)";
}

// Unknown `section.key`: suggest the closest key of the same section, else any key
// whose last part matches (train.lr_init -> optimizer.lr_init).
std::string key_suggestion(const std::string& path) {
  const std::string section = path.substr(0, path.find('.'));
  const std::string leaf = path.substr(path.find('.') + 1);
  std::vector<std::string> same;
  for (const auto& k : config_schema())
    if (k.path.rfind(section + ".", 0) == 0) same.push_back(k.path);
  std::string s = suggestion(path, same);
  if (!s.empty()) return s;
  for (const auto& k : config_schema())
    if (k.path.substr(k.path.find('.') + 1) == leaf) return " (did you mean '" + k.path + "'?)";
  return suggestion(path, all_key_paths());
}

YAML::Node parse_yaml(const std::string& text, const std::string& name, Problems& p) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    p.add(at(name, e.mark), "YAML syntax error: " + e.msg);
    return YAML::Node();
  }
}

// Collects section.key entries of a parsed file into `out` (keys already in `out`
// win: callers add higher-precedence sources first). `only_section` restricts the
// allowed sections (presets hold only `model`).
void collect(const YAML::Node& root, const std::string& name, const fs::path& base_dir,
             const std::string& only_section, Entries& out, Problems& p) {
  if (!root || root.IsNull()) return;
  if (!root.IsMap()) {
    p.add(at(name, root.Mark()), "the top level must be a mapping of sections (model:, train:, ...)");
    return;
  }
  const auto sections = config_sections();
  for (const auto& sec : root) {
    const std::string section = sec.first.as<std::string>();
    const std::string where = at(name, sec.first.Mark());
    if (!only_section.empty() && section != only_section) {
      p.add(where, "'" + section + "': a model preset may only hold the 'model' section");
      continue;
    }
    if (std::find(sections.begin(), sections.end(), section) == sections.end()) {
      p.add(where, "unknown section '" + section + "'" + suggestion(section, sections));
      continue;
    }
    if (sec.second.IsNull()) continue;
    if (!sec.second.IsMap()) {
      p.add(where, "'" + section + "' must be a mapping of keys");
      continue;
    }
    for (const auto& kv : sec.second) {
      const std::string path = section + "." + kv.first.as<std::string>();
      const std::string kwhere = at(name, kv.first.Mark());
      if (!find_key(path)) {
        p.add(kwhere, "unknown key '" + path + "'" + key_suggestion(path));
        continue;
      }
      if (!only_section.empty() && path == "model.preset") {
        p.add(kwhere, "'model.preset': a preset cannot name another preset");
        continue;
      }
      if (!kv.second.IsScalar() && !kv.second.IsNull()) {
        p.add(kwhere, "'" + path + "': expected a single value, got a " +
                          (kv.second.IsMap() ? "mapping" : "list"));
        continue;
      }
      if (!out.count(path)) out[path] = Entry{kv.second, kwhere, base_dir};
    }
  }
}

void collect_sets(const std::vector<std::string>& sets, Entries& out, Problems& p) {
  for (const auto& s : sets) {
    const std::string where = "--set " + s;
    const auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0) {
      p.add(where, "expected section.key=value");
      continue;
    }
    const std::string path = s.substr(0, eq);
    if (!find_key(path)) {
      p.add(where, "unknown key '" + path + "'" + key_suggestion(path));
      continue;
    }
    YAML::Node v = parse_yaml(s.substr(eq + 1), where, p);
    if (v && !v.IsScalar() && !v.IsNull()) {
      p.add(where, "'" + path + "': expected a single value");
      continue;
    }
    out[path] = Entry{v, where, fs::current_path()};  // later --set wins
  }
}

std::string format_float(double v) {
  // Shortest %g form that reads back as the same double.
  char buf[64];
  for (int prec = 6; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  // Keep a '.' in the mantissa so YAML 1.1 readers (PyYAML) also see a float: 6e-05 -> 6.0e-05.
  std::string s = buf;
  const size_t e = s.find_first_of("eE");
  const std::string mantissa = s.substr(0, e);
  if (mantissa.find_first_of(".n") == std::string::npos) s.insert(e == std::string::npos ? s.size() : e, ".0");
  return s;
}

std::string in_range_text(const KeySpec& k) {
  auto bound = [&](const std::optional<double>& b, const char* none) {
    if (!b) return std::string(none);
    return k.type == KeyType::Int ? std::to_string(static_cast<int64_t>(*b)) : format_float(*b);
  };
  return "[" + bound(k.min, "-inf") + ", " + bound(k.max, "inf") + "]";
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

// Converts one scalar to its schema type, checking range and choices.
std::optional<ConfigValue> convert(const KeySpec& k, const YAML::Node& node,
                                   const std::string& where, const fs::path& base_dir,
                                   bool check_files, Problems& p) {
  const std::string text = node && node.IsScalar() ? node.Scalar() : "";
  switch (k.type) {
    case KeyType::Int: {
      int64_t v = 0;
      if (!YAML::convert<int64_t>::decode(node, v)) {
        p.add(where, "'" + k.path + "': expected an integer, got '" + text + "'");
        return std::nullopt;
      }
      if (!k.choices.empty() &&
          std::find(k.choices.begin(), k.choices.end(), std::to_string(v)) == k.choices.end()) {
        p.add(where, "'" + k.path + "' = " + std::to_string(v) + " is not one of " +
                         join(k.choices, ", "));
        return std::nullopt;
      }
      if ((k.min && v < *k.min) || (k.max && v > *k.max)) {
        p.add(where, "'" + k.path + "' = " + std::to_string(v) + " is out of range " +
                         in_range_text(k));
        return std::nullopt;
      }
      return ConfigValue{v};
    }
    case KeyType::Float: {
      double v = 0;
      if (!YAML::convert<double>::decode(node, v) || !std::isfinite(v)) {
        p.add(where, "'" + k.path + "': expected a finite number, got '" + text + "'");
        return std::nullopt;
      }
      if ((k.min && v < *k.min) || (k.max && v > *k.max)) {
        p.add(where, "'" + k.path + "' = " + format_float(v) + " is out of range " +
                         in_range_text(k));
        return std::nullopt;
      }
      return ConfigValue{v};
    }
    case KeyType::Enum: {
      if (std::find(k.choices.begin(), k.choices.end(), text) == k.choices.end()) {
        p.add(where, "'" + k.path + "' = '" + text + "' is not one of " + join(k.choices, ", ") +
                         suggestion(text, k.choices));
        return std::nullopt;
      }
      return ConfigValue{text};
    }
    case KeyType::String:
      return ConfigValue{text};
    case KeyType::Path: {
      if (text.empty()) return ConfigValue{std::string()};
      const fs::path resolved = (base_dir / text).lexically_normal();
      if (check_files && k.path_must_exist && !fs::exists(resolved)) {
        p.add(where, "'" + k.path + "': no such file or directory: " + resolved.string());
        return std::nullopt;
      }
      return ConfigValue{resolved.string()};
    }
  }
  return std::nullopt;
}

// Fills every schema key (entry or default), then runs the cross-key checks.
Config resolve(const Entries& entries, const std::string& source, bool check_files, Problems& p) {
  Config c;
  c.source = source;
  for (const auto& k : config_schema()) {
    const auto it = entries.find(k.path);
    std::optional<ConfigValue> v;
    if (it != entries.end()) {
      v = convert(k, it->second.value, it->second.origin, it->second.base_dir, check_files, p);
    } else {
      v = convert(k, YAML::Node(k.default_value), "default of " + k.path, fs::path(),
                  false, p);
    }
    if (v) c.values[k.path] = *v;
  }
  if (!p.lines.empty()) return c;

  auto where = [&](const std::string& path) {
    const auto it = entries.find(path);
    return it == entries.end() ? std::string("default") : it->second.origin;
  };
  const int64_t version = c.get_int("model.version");
  const int64_t C = c.get_int("model.n_embd");
  const int64_t N = c.get_int("model.head_size");
  const int64_t tp = c.get_int("parallel.tp");
  if (C % N != 0) {
    p.add(where("model.n_embd"), "'model.n_embd' (" + std::to_string(C) +
                                     ") must be a multiple of 'model.head_size' (" +
                                     std::to_string(N) + ")");
    return c;
  }
  if (c.get_int("model.dim_ffn") == 0) c.values["model.dim_ffn"] = default_dim_ffn(version, C);
  const int64_t F = c.get_int("model.dim_ffn");
  if (version >= 5 && (C / N) % tp != 0) {
    p.add(where("parallel.tp"), "'parallel.tp' (" + std::to_string(tp) +
                                    ") must divide the head count n_embd/head_size = " +
                                    std::to_string(C / N));
  } else if (version == 4 && C % tp != 0) {
    p.add(where("parallel.tp"), "'parallel.tp' (" + std::to_string(tp) +
                                    ") must divide 'model.n_embd' (" + std::to_string(C) + ")");
  }
  if (F % tp != 0) {
    p.add(where("parallel.tp"), "'parallel.tp' (" + std::to_string(tp) +
                                    ") must divide 'model.dim_ffn' (" + std::to_string(F) + ")");
  }
  if (c.get_string("train.matmul_precision") != "fp32" && c.get_string("train.device") != "cuda") {
    p.add(where("train.matmul_precision"),
          "'train.matmul_precision' (" + c.get_string("train.matmul_precision") +
              ") needs 'train.device: cuda'; the CPU backend multiplies in fp32");
  }
  const int64_t V = c.get_int("model.vocab_size"), slab = vocab_slab_rows(V, tp);
  if (!vocab_splits(V, tp)) {
    p.add(where("parallel.tp"), "'parallel.tp' (" + std::to_string(tp) +
                                    ") is too large for 'model.vocab_size' (" + std::to_string(V) +
                                    "): vocabulary slabs of " + std::to_string(slab) +
                                    " rows leave the last rank without any");
  }
  return c;
}

[[noreturn]] void fail(const std::string& source, const Problems& p) {
  throw ConfigError("invalid config " + source + ":\n  " + join(p.lines, "\n  "));
}

}  // namespace

std::vector<std::string> preset_names() {
  std::vector<std::string> out;
  for (const auto& p : embedded_presets()) out.push_back(p.name);
  return out;
}

const std::string* preset_text(const std::string& name) {
  for (const auto& p : embedded_presets())
    if (p.name == name) return &p.text;
  return nullptr;
}

int64_t Config::get_int(const std::string& path) const { return std::get<int64_t>(values.at(path)); }
double Config::get_float(const std::string& path) const { return std::get<double>(values.at(path)); }
const std::string& Config::get_string(const std::string& path) const {
  return std::get<std::string>(values.at(path));
}

std::string Config::to_yaml() const {
  YAML::Emitter e;
  e << YAML::BeginMap;
  std::string section;
  for (const auto& k : config_schema()) {
    const std::string s = k.path.substr(0, k.path.find('.'));
    if (s != section) {
      if (!section.empty()) e << YAML::EndMap;
      e << YAML::Key << s << YAML::Value << YAML::BeginMap;
      section = s;
    }
    e << YAML::Key << k.path.substr(k.path.find('.') + 1) << YAML::Value;
    const ConfigValue& v = values.at(k.path);
    if (const auto* i = std::get_if<int64_t>(&v)) e << *i;
    else if (const auto* d = std::get_if<double>(&v)) e << format_float(*d);
    else e << YAML::DoubleQuoted << std::get<std::string>(v);
  }
  if (!section.empty()) e << YAML::EndMap;
  e << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

Config load_config(const ConfigRequest& req) {
  Problems p;
  std::string text, name;
  fs::path base_dir = fs::current_path();
  if (req.path.empty()) {
    text = embedded_default_config();
    name = "<embedded default>";
  } else {
    std::ifstream in(req.path, std::ios::binary);
    if (!in) throw ConfigError("cannot read config file " + req.path + ": no such file or not readable");
    std::ostringstream ss;
    ss << in.rdbuf();
    text = ss.str();
    name = req.path;
    base_dir = fs::absolute(req.path).parent_path();
  }

  // Highest precedence first: --set, then the file, then the preset.
  Entries entries;
  collect_sets(req.sets, entries, p);
  collect(parse_yaml(text, name, p), name, base_dir, "", entries, p);

  if (const auto it = entries.find("model.preset");
      it != entries.end() && it->second.value.IsScalar() && !it->second.value.Scalar().empty()) {
    const std::string preset = it->second.value.Scalar();
    const std::string* builtin = preset_text(preset);
    if (builtin) {
      collect(parse_yaml(*builtin, "preset " + preset, p), "preset " + preset, base_dir, "model",
              entries, p);
    } else if (preset.find('/') != std::string::npos || preset.ends_with(".yaml") ||
               preset.ends_with(".yml")) {
      const fs::path file = (it->second.base_dir / preset).lexically_normal();
      std::ifstream in(file, std::ios::binary);
      if (!in) {
        p.add(it->second.origin, "'model.preset': cannot read preset file " + file.string());
      } else {
        std::ostringstream ss;
        ss << in.rdbuf();
        collect(parse_yaml(ss.str(), file.string(), p), file.string(), file.parent_path(), "model",
                entries, p);
      }
    } else {
      p.add(it->second.origin, "'model.preset': unknown preset '" + preset + "'" +
                                   suggestion(preset, preset_names()) +
                                   "; `rwkv config presets` lists them");
    }
  }
  // Resolve even after problems above, so that one run reports every problem.
  Config c = resolve(entries, name, /*check_files=*/true, p);
  if (!p.lines.empty()) fail(name, p);
  return c;
}

Config parse_resolved_config(const std::string& yaml, const std::string& source) {
  Problems p;
  Entries entries;
  collect(parse_yaml(yaml, source, p), source, fs::path(), "", entries, p);
  Config c = resolve(entries, source, /*check_files=*/false, p);
  if (!p.lines.empty()) fail(source, p);
  return c;
}

Config load_config_collective(MPI_Comm comm, const ConfigRequest& req) {
  const std::string yaml = root_then_broadcast<ConfigError>(comm, [&] { return load_config(req).to_yaml(); });
  const std::string source = req.path.empty() ? "<embedded default>" : req.path;
  return parse_resolved_config(yaml, source);
}

}  // namespace rwkv
