#pragma once
// Text for the tokenizer and UTF-8 tests: hand-written multilingual documents and
// seeded random well-formed UTF-8.
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "data_pipeline/utf8.h"

namespace rwkv::data::samples {

// {language, document}. Covers diacritics (precomposed and combining), Cyrillic,
// Greek, CJK, Arabic, Devanagari, emoji with ZWJ sequences and skin tones, runs of
// spaces, tabs, CR/LF, leading and trailing whitespace, and the empty document.
inline const std::vector<std::pair<std::string, std::string>>& multilingual_documents() {
  using namespace std::string_literals;  // the "misc" document holds a NUL
  static const std::vector<std::pair<std::string, std::string>> docs = {
      {"en", "The quick brown fox jumps over the lazy dog.\nIt was 1984; the clocks struck 13."},
      {"en", "  leading spaces, trailing spaces   "},
      {"en", "tabs\tand\t\ttabs,\nnew\n\nlines,\r\nCRLF and    four spaces.\n"},
      {"en", ""},
      {"en", " "},
      {"en", "\n\n\t \n"},
      {"fr", "Les na\u00efves \u00e9l\u00e8ves de l'\u00e9cole fran\u00e7aise "
             "\u00e9tudient \u00e0 No\u00ebl. \u00c0 bient\u00f4t !"},
      {"fr", "Combining: Cafe\u0301, nai\u0308ve, A\u030a, e\u0301\u0302\u0323 stacked."},
      {"de", "Stra\u00dfe, Gr\u00f6\u00dfe, \u00dcbergr\u00f6\u00dfentr\u00e4ger, \u00e4\u00f6\u00fc \u00c4\u00d6\u00dc."},
      {"ru", "\u0421\u044a\u0435\u0448\u044c \u0436\u0435 \u0435\u0449\u0451 \u044d\u0442\u0438\u0445 "
             "\u043c\u044f\u0433\u043a\u0438\u0445 \u0444\u0440\u0430\u043d\u0446\u0443\u0437\u0441\u043a\u0438\u0445 "
             "\u0431\u0443\u043b\u043e\u043a, \u0434\u0430 \u0432\u044b\u043f\u0435\u0439 \u0447\u0430\u044e."},
      {"el", "\u039e\u03b5\u03c3\u03ba\u03b5\u03c0\u03ac\u03b6\u03c9 \u03c4\u1f74\u03bd "
             "\u03c8\u03c5\u03c7\u03bf\u03c6\u03b8\u03cc\u03c1\u03b1 \u03b2\u03b4\u03b5\u03bb\u03c5\u03b3\u03bc\u03af\u03b1."},
      {"zh", "\u6211\u80fd\u541e\u4e0b\u73bb\u7483\u800c\u4e0d\u4f24\u8eab\u4f53\u3002"
             "\u4e2d\u6587\u6587\u672c\uff0c\u5168\u89d2\u6807\u70b9\uff01"},
      {"ja", "\u3044\u308d\u306f\u306b\u307b\u3078\u3068 \u30ab\u30bf\u30ab\u30ca \u6f22\u5b57\u3002"},
      {"ar", "\u0623\u0646\u0627 \u0642\u0627\u062f\u0631 \u0639\u0644\u0649 \u0623\u0643\u0644 "
             "\u0627\u0644\u0632\u062c\u0627\u062c \u0648 \u0647\u0630\u0627 \u0644\u0627 "
             "\u064a\u0624\u0644\u0645\u0646\u064a."},
      {"hi", "\u092e\u0948\u0902 \u0915\u093e\u0901\u091a \u0916\u093e \u0938\u0915\u0924\u093e "
             "\u0939\u0942\u0901 \u0914\u0930 \u092e\u0941\u091d\u0947 \u0909\u0938\u0938\u0947 "
             "\u0915\u094b\u0908 \u091a\u094b\u091f \u0928\u0939\u0940\u0902 \u092a\u0939\u0941\u0902\u091a\u0924\u0940\u0964"},
      {"emoji", "\U0001F600 \U0001F44D\U0001F3FD \U0001F469\u200D\U0001F469\u200D\U0001F467\u200D\U0001F466 "
                "\U0001F3F3\uFE0F\u200D\U0001F308 \U0001F1EB\U0001F1F7 \U0001F9D1\U0001F3FF\u200D\U0001F4BB"},
      {"misc", "U+2581 \u2581 is SentencePiece's space mark: \u2581\u2581x\u2581; NUL \0 here; "
               "fullwidth \uff21\uff42, ligature \ufb01, U+FFFD \ufffd, BOM \ufeff, max \U0010FFFF."s},
  };
  return docs;
}

// `n_chars` code points of well-formed UTF-8 from every encoded length, whitespace
// and control characters included (surrogates excluded: they are not scalar values).
inline std::string random_utf8(std::mt19937_64& rng, size_t n_chars) {
  std::string s;
  for (size_t i = 0; i < n_chars; ++i) {
    char32_t cp = 0;
    switch (rng() % 6) {
      case 0: cp = static_cast<char32_t>(rng() % 0x80); break;
      case 1: cp = U" \t\n\r"[rng() % 4]; break;
      case 2: cp = static_cast<char32_t>(0x80 + rng() % (0x800 - 0x80)); break;
      case 3: cp = static_cast<char32_t>(0x800 + rng() % (0xD800 - 0x800)); break;
      case 4: cp = static_cast<char32_t>(0xE000 + rng() % (0x10000 - 0xE000)); break;
      default: cp = static_cast<char32_t>(0x10000 + rng() % (0x110000 - 0x10000)); break;
    }
    utf8_append(s, cp);
  }
  return s;
}

}  // namespace rwkv::data::samples
