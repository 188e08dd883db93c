// The RWKV "World" tokenizer: a vocabulary file (rwkv_vocab_v20230424.txt format)
// and greedy longest-match encoding over the UTF-8 bytes, as in RWKV-LM's
// rwkv_tokenizer.py (TRIE_TOKENIZER). File format, one token per line:
//   <id> <Python literal of a str or bytes> <byte length of its UTF-8 encoding>
// e.g. `1 '\x00' 1`, `40 "'" 1`, `129 b'\x80' 1`, `10250 '中' 3`. The literal is
// parsed here (never evaluated); ids 1-256 are the single bytes 0-255, id 0 is
// end-of-document and the vocabulary is padded to 65536 ids.
#include <array>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "common/error.h"
#include "data_pipeline/sha256.h"
#include "data_pipeline/tokenizer.h"
#include "data_pipeline/utf8.h"

namespace rwkv::data {

namespace {

constexpr uint32_t kWorldVocab = 65536;
constexpr uint32_t kNone = 0xFFFFFFFFu;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The bytes a Python str (as UTF-8) or bytes literal stands for. Handles the
// prefixes b/B, '...' and "...", and the escapes \\ \' \" \a \b \f \n \r \t \v,
// octal \ooo, \xhh, and (str only) \uhhhh and \Uhhhhhhhh. Throws a bare message;
// the caller adds file and line.
std::string parse_python_literal(std::string_view lit) {
  size_t i = 0;
  const bool is_bytes = !lit.empty() && (lit[0] == 'b' || lit[0] == 'B');
  if (is_bytes) ++i;
  if (i >= lit.size() || (lit[i] != '\'' && lit[i] != '"')) {
    throw Error("expected a quoted Python str or bytes literal");
  }
  const char quote = lit[i++];
  std::string out;
  auto put_code_point = [&](uint32_t cp, std::string_view escape) {
    if (is_bytes) {
      if (cp > 0xFF) throw Error("escape \\" + std::string(escape) + " is above 0xff in a bytes literal");
      out.push_back(static_cast<char>(cp));
    } else {
      if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        throw Error("escape \\" + std::string(escape) + " is not a Unicode scalar value");
      }
      utf8_append(out, static_cast<char32_t>(cp));
    }
  };
  auto read_hex = [&](size_t digits, std::string_view escape) {
    uint32_t v = 0;
    for (size_t k = 0; k < digits; ++k) {
      const int h = i + k < lit.size() ? hex_value(lit[i + k]) : -1;
      if (h < 0) {
        throw Error("escape \\" + std::string(escape) + " needs " + std::to_string(digits) +
                    " hex digits");
      }
      v = v * 16 + static_cast<uint32_t>(h);
    }
    i += digits;
    return v;
  };
  while (true) {
    if (i >= lit.size()) throw Error("unterminated literal (no closing quote)");
    const char c = lit[i++];
    if (c == quote) break;
    if (c != '\\') {
      if (is_bytes && static_cast<unsigned char>(c) >= 0x80) {
        throw Error("non-ASCII character in a bytes literal");
      }
      out.push_back(c);
      continue;
    }
    if (i >= lit.size()) throw Error("unterminated literal (ends in a backslash)");
    const char e = lit[i++];
    switch (e) {
      case '\\': case '\'': case '"': out.push_back(e); break;
      case 'a': out.push_back('\a'); break;
      case 'b': out.push_back('\b'); break;
      case 'f': out.push_back('\f'); break;
      case 'n': out.push_back('\n'); break;
      case 'r': out.push_back('\r'); break;
      case 't': out.push_back('\t'); break;
      case 'v': out.push_back('\v'); break;
      case 'x': put_code_point(read_hex(2, "x"), "x"); break;
      case 'u':
      case 'U':
        if (is_bytes) throw Error(std::string("escape \\") + e + " is not allowed in a bytes literal");
        put_code_point(read_hex(e == 'u' ? 4 : 8, std::string(1, e)), std::string(1, e));
        break;
      default:
        if (e >= '0' && e <= '7') {
          uint32_t v = static_cast<uint32_t>(e - '0');
          for (int k = 0; k < 2 && i < lit.size() && lit[i] >= '0' && lit[i] <= '7'; ++k) {
            v = v * 8 + static_cast<uint32_t>(lit[i++] - '0');
          }
          put_code_point(v, "ooo (octal)");
        } else {
          throw Error(std::string("unsupported escape \\") + e);
        }
    }
  }
  if (i != lit.size()) throw Error("unexpected text after the closing quote");
  return out;
}

// A decimal field of digits only, below `limit`.
bool parse_uint(std::string_view s, uint64_t limit, uint64_t& value) {
  if (s.empty() || s.size() > 12) return false;
  value = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  return value < limit;
}

// Byte trie for greedy longest match. Node 0 is the root; the root's children are
// a direct table, deeper edges live in one open-addressing hash table keyed by
// (parent << 8 | byte): about 2.5 MB for the published vocabulary (116k nodes).
struct ByteTrie {
  struct Slot {
    uint32_t key = kNone;  // parent << 8 | byte; nodes < 2^24 so kNone is never a key
    uint32_t child = 0;
  };
  std::array<uint32_t, 256> root_child{};  // 0 = no child (the root is no one's child)
  std::vector<uint32_t> token;             // [nodes] id spelled by the path to the node, or kNone
  std::vector<Slot> slots;                 // [2^k], at most half full
  uint32_t shift = 32;

  static uint32_t hash(uint32_t key) { return key * 0x9E3779B1u; }  // Fibonacci hashing

  uint32_t child(uint32_t node, uint8_t byte) const {
    const uint32_t key = node << 8 | byte;
    const uint32_t mask = static_cast<uint32_t>(slots.size() - 1);
    for (uint32_t s = hash(key) >> shift;; s = (s + 1) & mask) {
      if (slots[s].key == key) return slots[s].child;
      if (slots[s].key == kNone) return kNone;
    }
  }

  void build(const std::vector<std::pair<std::string, uint32_t>>& tokens) {
    std::unordered_map<uint32_t, uint32_t> edges;
    token.assign(1, kNone);
    for (const auto& [bytes, id] : tokens) {
      uint32_t node = 0;
      for (size_t k = 0; k < bytes.size(); ++k) {
        const auto b = static_cast<uint8_t>(bytes[k]);
        uint32_t next = kNone;
        if (k == 0) {
          if (root_child[b] != 0) next = root_child[b];
        } else if (const auto it = edges.find(node << 8 | b); it != edges.end()) {
          next = it->second;
        }
        if (next == kNone) {
          next = static_cast<uint32_t>(token.size());
          token.push_back(kNone);
          if (k == 0) {
            root_child[b] = next;
          } else {
            edges.emplace(node << 8 | b, next);
          }
        }
        node = next;
      }
      token[node] = id;
    }
    size_t size = 2;
    shift = 31;
    while (size < 2 * edges.size() + 2) {
      size *= 2;
      --shift;
    }
    slots.assign(size, Slot{});
    for (const auto& [key, child_node] : edges) {
      uint32_t s = hash(key) >> shift;
      while (slots[s].key != kNone) s = static_cast<uint32_t>((s + 1) & (size - 1));
      slots[s] = Slot{key, child_node};
    }
  }
};

struct WorldTokenizer final : Tokenizer {
  std::string path;
  std::string sha256;
  std::string token_bytes;                    // every token's bytes, concatenated
  std::vector<uint32_t> offset;               // [kWorldVocab + 1] token id's bytes start
  std::vector<uint8_t> present;               // [kWorldVocab] 1 when the id is a token
  ByteTrie trie;

  TokenizerKind kind() const override { return TokenizerKind::World; }

  void encode(std::string_view text, std::vector<uint32_t>& out) const override {
    const auto* p = reinterpret_cast<const uint8_t*>(text.data());
    const size_t n = text.size();
    size_t i = 0;
    while (i < n) {
      // Every single byte is a token (checked at load), so a match always exists.
      uint32_t node = trie.root_child[p[i]];
      uint32_t best = trie.token[node];
      size_t best_end = i + 1;
      for (size_t j = i + 1; j < n; ++j) {
        node = trie.child(node, p[j]);
        if (node == kNone) break;
        if (trie.token[node] != kNone) {
          best = trie.token[node];
          best_end = j + 1;
        }
      }
      out.push_back(best);
      i = best_end;
    }
  }

  std::string decode(std::span<const uint32_t> ids) const override {
    std::string text;
    for (size_t i = 0; i < ids.size(); ++i) {
      const uint32_t id = ids[i];
      if (id == 0) continue;  // end-of-document
      if (id >= kWorldVocab || !present[id]) {
        throw Error("world tokenizer " + path + ": id " + std::to_string(id) + " at position " +
                    std::to_string(i) + " is not in the vocabulary");
      }
      text.append(token_bytes, offset[id], offset[id + 1] - offset[id]);
    }
    return text;
  }

  uint32_t vocab_size() const override { return kWorldVocab; }
  uint32_t eod_id() const override { return 0; }
  std::string file_sha256() const override { return sha256; }
};

}  // namespace

std::unique_ptr<Tokenizer> load_world_tokenizer(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open the World vocabulary file");
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) throw Error(path + ": read error");
  const std::string content = buf.str();

  auto t = std::make_unique<WorldTokenizer>();
  t->path = path;
  t->sha256 = sha256_hex({reinterpret_cast<const uint8_t*>(content.data()), content.size()});

  std::vector<std::string> by_id(kWorldVocab);
  std::vector<size_t> line_of_id(kWorldVocab, 0);
  std::unordered_map<std::string, size_t> line_of_token;
  size_t line_no = 0;
  for (size_t start = 0; start < content.size();) {
    size_t end = content.find('\n', start);
    if (end == std::string::npos) end = content.size();
    std::string_view line(content.data() + start, end - start);
    start = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);  // CRLF, as published
    if (line.empty()) continue;
    const std::string where = path + ":" + std::to_string(line_no) + ": ";
    if (!utf8_valid(line)) throw Error(where + "invalid UTF-8");
    const size_t first = line.find(' ');
    const size_t last = line.rfind(' ');
    if (first == std::string_view::npos || first == last) {
      throw Error(where + "expected '<id> <Python str or bytes literal> <byte length>'");
    }
    uint64_t id = 0;
    uint64_t length = 0;
    if (!parse_uint(line.substr(0, first), kWorldVocab, id)) {
      throw Error(where + "id '" + std::string(line.substr(0, first)) +
                  "' is not an integer in 1..65535");
    }
    if (id == 0) throw Error(where + "id 0 is reserved for end-of-document");
    if (!parse_uint(line.substr(last + 1), uint64_t{1} << 32, length)) {
      throw Error(where + "byte length '" + std::string(line.substr(last + 1)) +
                  "' is not a non-negative integer");
    }
    std::string bytes;
    try {
      bytes = parse_python_literal(line.substr(first + 1, last - first - 1));
    } catch (const Error& e) {
      throw Error(where + e.what());
    }
    if (bytes.size() != length) {
      throw Error(where + "byte length column says " + std::to_string(length) +
                  " but the literal is " + std::to_string(bytes.size()) + " bytes");
    }
    if (bytes.empty()) throw Error(where + "empty token");
    if (line_of_id[id] != 0) {
      throw Error(where + "id " + std::to_string(id) + " already defined on line " +
                  std::to_string(line_of_id[id]));
    }
    if (bytes.size() == 1 && id != 1u + static_cast<uint8_t>(bytes[0])) {
      throw Error(where + "single-byte token must have id 1 + its byte value (" +
                  std::to_string(1u + static_cast<uint8_t>(bytes[0])) + ")");
    }
    const auto [it, inserted] = line_of_token.emplace(bytes, line_no);
    if (!inserted) {
      throw Error(where + "same token as line " + std::to_string(it->second));
    }
    line_of_id[id] = line_no;
    by_id[id] = std::move(bytes);
  }
  for (uint32_t b = 0; b < 256; ++b) {
    if (line_of_id[b + 1] == 0) {
      throw Error(path + ": the vocabulary lacks the single-byte token " + std::to_string(b) +
                  " (id " + std::to_string(b + 1) + "); every byte needs one to encode any text");
    }
  }

  size_t total_bytes = 0;
  for (const auto& bytes : by_id) total_bytes += bytes.size();
  if (total_bytes >= (size_t{1} << 24)) {
    throw Error(path + ": the tokens hold " + std::to_string(total_bytes) +
                " bytes in all; at most 16 MiB is supported");
  }
  t->present.assign(kWorldVocab, 0);
  t->offset.assign(kWorldVocab + 1, 0);
  std::vector<std::pair<std::string, uint32_t>> tokens;
  for (uint32_t id = 0; id < kWorldVocab; ++id) {
    t->offset[id] = static_cast<uint32_t>(t->token_bytes.size());
    if (line_of_id[id] == 0) continue;
    t->present[id] = 1;
    t->token_bytes += by_id[id];
    tokens.emplace_back(std::move(by_id[id]), id);
  }
  t->offset[kWorldVocab] = static_cast<uint32_t>(t->token_bytes.size());
  t->trie.build(tokens);
  return t;
}

}  // namespace rwkv::data
