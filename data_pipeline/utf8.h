#pragma once
// UTF-8 validation and repair. Well-formed means the byte sequences of Unicode
// 15.0 Table 3-7: no overlong forms, no surrogates (U+D800-DFFF), nothing above
// U+10FFFF, no truncated sequences.
#include <cstddef>
#include <string>
#include <string_view>

namespace rwkv::data {

// Byte offset of the first ill-formed sequence in `text`, or std::string_view::npos
// when `text` is well-formed UTF-8.
size_t utf8_first_invalid(std::string_view text);

inline bool utf8_valid(std::string_view text) {
  return utf8_first_invalid(text) == std::string_view::npos;
}

// `text` with each maximal ill-formed subpart replaced by U+FFFD (the Unicode
// "substitution of maximal subparts" practice, Unicode 15.0 section 3.9, as in
// WHATWG's decoder). Well-formed text comes back unchanged.
std::string utf8_repair(std::string_view text);

// Appends the UTF-8 encoding of code point `cp` (< 0x110000, not a surrogate).
void utf8_append(std::string& out, char32_t cp);

}  // namespace rwkv::data
