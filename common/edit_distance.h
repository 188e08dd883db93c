#pragma once
// "Did you mean" suggestions for mistyped keys, commands and presets.
#include <string>
#include <string_view>
#include <vector>

namespace rwkv {

// Levenshtein distance (insert, delete, substitute, each cost 1).
size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to `word`, or "" when none is within max(2, |word|/3) edits.
std::string closest_match(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace rwkv
