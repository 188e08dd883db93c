#pragma once
// The YAML files under configs/ compiled into the binary (generated at build time
// by cmake/EmbedConfigs.cmake), so `rwkv` finds its presets from any directory.
#include <string>
#include <vector>

namespace rwkv {

struct EmbeddedPreset {
  std::string name;  // file name without .yaml, e.g. "rwkv7-0.1b"
  std::string text;
};

const std::vector<EmbeddedPreset>& embedded_presets();  // configs/model/*.yaml, by name
const std::string& embedded_default_config();           // configs/default.yaml

}  // namespace rwkv
