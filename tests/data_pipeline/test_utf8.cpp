#include <gtest/gtest.h>

#include "data_pipeline/utf8.h"
#include "tests/data_pipeline/text_samples.h"

namespace {

using rwkv::data::utf8_first_invalid;
using rwkv::data::utf8_repair;
using rwkv::data::utf8_valid;
constexpr size_t npos = std::string_view::npos;
const std::string kFFFD = "\xEF\xBF\xBD";

TEST(Utf8, WellFormedTextIsValid) {
  EXPECT_EQ(utf8_first_invalid(""), npos);
  EXPECT_EQ(utf8_first_invalid("plain ASCII, long enough for the 8-byte fast path"), npos);
  // Boundaries of each length: U+0080, U+07FF, U+0800, U+D7FF, U+E000, U+FFFF,
  // U+10000, U+10FFFF.
  EXPECT_TRUE(utf8_valid("\xC2\x80\xDF\xBF\xE0\xA0\x80\xED\x9F\xBF\xEE\x80\x80\xEF\xBF\xBF"
                         "\xF0\x90\x80\x80\xF4\x8F\xBF\xBF"));
  for (const auto& [lang, doc] : rwkv::data::samples::multilingual_documents()) {
    EXPECT_TRUE(utf8_valid(doc)) << lang;
    EXPECT_EQ(utf8_repair(doc), doc) << lang;
  }
}

TEST(Utf8, InvalidSequencesReportTheirOffset) {
  struct Case {
    std::string text;
    size_t offset;
    const char* what;
  };
  const std::vector<Case> cases = {
      {"abc\x80", 3, "lone continuation byte"},
      {"ab\xC0\xAF", 2, "overlong 2-byte (C0)"},
      {"\xC1\xBF", 0, "overlong 2-byte (C1)"},
      {"0123456789\xE0\x80\xAF", 10, "overlong 3-byte"},
      {"x\xF0\x80\x80\xAF", 1, "overlong 4-byte"},
      {"xy\xED\xA0\x80", 2, "surrogate U+D800"},
      {"\xED\xBF\xBF", 0, "surrogate U+DFFF"},
      {"abcd\xF4\x90\x80\x80", 4, "U+110000"},
      {"\xF5\x80\x80\x80", 0, "lead byte F5"},
      {"\xFF", 0, "byte FF"},
      {"ok\xE4\xB8", 2, "truncated 3-byte at the end"},
      {"ok\xE4\xB8x", 2, "truncated 3-byte before ASCII"},
      {"\xC3\xA9\xF0\x9F\x98", 2, "truncated 4-byte after a valid 2-byte"},
      {"\xE4\xB8\xAD\xC3", 3, "truncated 2-byte"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(utf8_first_invalid(c.text), c.offset) << c.what;
    EXPECT_FALSE(utf8_valid(c.text)) << c.what;
  }
}

TEST(Utf8, RepairReplacesMaximalSubparts) {
  // Unicode 15.0 section 3.9, table 3-8 style: one U+FFFD per maximal subpart.
  EXPECT_EQ(utf8_repair("a\x80z"), "a" + kFFFD + "z");
  EXPECT_EQ(utf8_repair("\xE4\xB8z"), kFFFD + "z");               // truncated: one FFFD
  EXPECT_EQ(utf8_repair("\xF0\x9F\x98"), kFFFD);                 // truncated at the end
  EXPECT_EQ(utf8_repair("\xC0\xAF"), kFFFD + kFFFD);             // C0 never starts a sequence
  EXPECT_EQ(utf8_repair("\xED\xA0\x80"), kFFFD + kFFFD + kFFFD); // surrogate: A0 not allowed after ED
  EXPECT_EQ(utf8_repair("\xF4\x90\x80\x80"), kFFFD + kFFFD + kFFFD + kFFFD);
  EXPECT_EQ(utf8_repair("\x80\x80"), kFFFD + kFFFD);
  EXPECT_EQ(utf8_repair("\xE4\xB8\xAD\xFF\xE6\x96\x87"), "\xE4\xB8\xAD" + kFFFD + "\xE6\x96\x87");
}

TEST(Utf8, RandomTextValidAndBrokenAfterCut) {
  std::mt19937_64 rng(20240501);
  for (int trial = 0; trial < 200; ++trial) {
    const std::string s = rwkv::data::samples::random_utf8(rng, 1 + rng() % 200);
    ASSERT_TRUE(utf8_valid(s));
    ASSERT_EQ(utf8_repair(s), s);
    // Dropping the last byte of a multi-byte final character leaves a truncated
    // sequence that starts at that character's lead byte.
    size_t lead = s.size() - 1;
    while ((static_cast<unsigned char>(s[lead]) & 0xC0) == 0x80) --lead;
    if (lead + 1 < s.size()) {
      const std::string cut = s.substr(0, s.size() - 1);
      EXPECT_EQ(utf8_first_invalid(cut), lead);
      EXPECT_EQ(utf8_repair(cut), s.substr(0, lead) + kFFFD);
    }
    const std::string repaired = utf8_repair(s.substr(0, rng() % (s.size() + 1)) + "\xFF");
    EXPECT_TRUE(utf8_valid(repaired));
  }
}

}  // namespace
