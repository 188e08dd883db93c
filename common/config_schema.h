#pragma once
// The schema of every config key: section.key, type, default, valid range, help.
// It is the single source for validation, `rwkv config keys` and docs/config.md
// (a test checks the doc lists every key).
#include <optional>
#include <string>
#include <vector>

namespace rwkv {

enum class KeyType { Int, Float, String, Enum, Path };

struct KeySpec {
  std::string path;           // "model.n_embd"
  KeyType type;
  std::string default_value;  // as YAML scalar text; "" for string/path means unset
  std::optional<double> min;  // inclusive bounds for Int and Float
  std::optional<double> max;
  std::vector<std::string> choices;  // allowed values for Enum; for Int, if non-empty
  std::string help;
  bool path_must_exist = true;       // Path: checked when the value is non-empty
};

const std::vector<KeySpec>& config_schema();
const KeySpec* find_key(const std::string& path);
std::vector<std::string> config_sections();
const char* key_type_name(KeyType t);

}  // namespace rwkv
