#include "audit/entry.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <exception>
#include <nlohmann/json.hpp>
#include <string>
#include <system_error>
#include <utility>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace signet::audit {
namespace {

using nlohmann::json;

// Why a single pass and not parse + dump: verifying a log re-reads every entry, and a DOM parse
// and dump of a 400-byte entry costs several times the SHA-256 of it (docs/audit.md, bench). The
// scanner below accepts exactly the texts that dump() can produce for the JSON it understands, so
// "accepted" means canonical; where it meets something whose canonical form needs a number
// formatter or key decoding to decide (fractions, exponents, integers of 19+ digits, escaped
// keys) it says so, and the caller falls back to the definition itself.
enum class Verdict { kCanonical, kRejected, kUndecided };

// What role an object plays for field extraction.
enum class ObjectRole { kOther, kTop, kDetails };

enum class ValueKind { kNone, kObject, kArray, kString, kInteger, kLiteral };

struct Capture {
  ValueKind kind = ValueKind::kNone;
  size_t begin = 0;  // the value's bytes; for a string, between the quotes
  size_t end = 0;
  bool escaped = false;  // a string containing a backslash escape
  bool negative = false;
};

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Byte-wise (unsigned, as std::string orders them) comparison of two member names without
// escapes. Sibling names are short and usually differ in their first bytes, so a loop beats a
// call to memcmp here (this runs once per member of every entry).
int CompareNames(const char* a, size_t a_size, const char* b, size_t b_size) {
  const size_t n = a_size < b_size ? a_size : b_size;
  for (size_t i = 0; i < n; ++i) {
    const auto x = static_cast<unsigned char>(a[i]);
    const auto y = static_cast<unsigned char>(b[i]);
    if (x != y) return x < y ? -1 : 1;
  }
  return a_size < b_size ? -1 : (a_size > b_size ? 1 : 0);
}

// `name` equals the literal `word` (a constant-size compare the compiler inlines).
template <size_t N>
bool NameIs(const char* name, size_t size, const char (&word)[N]) {
  return size == N - 1 && std::memcmp(name, word, N - 1) == 0;
}

class Scanner {
 public:
  explicit Scanner(std::string_view data) : data_(data) {}

  // Scans the whole input as one value. `top_is_entry`: capture the entry's fields.
  Verdict Scan(bool top_is_entry) {
    if (!Value(0, top_is_entry ? ObjectRole::kTop : ObjectRole::kOther)) return verdict_;
    if (pos_ != data_.size()) {
      Reject("text after the JSON value");
      return verdict_;
    }
    return Verdict::kCanonical;
  }

  const std::string& reason() const { return reason_; }
  size_t offset() const { return pos_; }
  bool top_is_object() const { return top_is_object_; }
  const Capture& index() const { return index_; }
  const Capture& action() const { return action_; }
  const Capture& checkpoint() const { return checkpoint_; }

 private:
  bool Reject(std::string reason) {
    verdict_ = Verdict::kRejected;
    reason_ = std::move(reason);
    return false;
  }
  bool RejectAt(size_t pos, std::string reason) {
    pos_ = pos;
    return Reject(std::move(reason));
  }
  bool Undecided() {
    verdict_ = Verdict::kUndecided;
    return false;
  }
  bool AtEnd() const { return pos_ >= data_.size(); }
  char Peek() const { return data_[pos_]; }

  bool Value(int depth, ObjectRole role) {
    if (AtEnd()) return Reject("unexpected end of input");
    const char c = Peek();
    switch (c) {
      case '{':
        return Object(depth + 1, role);
      case '[':
        return Array(depth + 1);
      case '"':
        return String(&last_);
      case 't':
        return Literal("true");
      case 'f':
        return Literal("false");
      case 'n':
        return Literal("null");
      default:
        if (c == '-' || IsDigit(c)) return Number();
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') return Reject("whitespace");
        return Reject("not a JSON value");
    }
  }

  bool Object(int depth, ObjectRole role) {
    if (depth > kMaxEntryDepth) {
      return Reject("nested deeper than " + std::to_string(kMaxEntryDepth) + " levels");
    }
    if (depth == 1) top_is_object_ = true;
    const size_t begin = pos_;
    ++pos_;  // '{'
    if (!AtEnd() && Peek() == '}') {
      ++pos_;
      last_ = Capture{ValueKind::kObject, begin, pos_};
      return true;
    }
    const char* previous = nullptr;  // the previous member's name (nullptr: none yet)
    size_t previous_size = 0;
    while (true) {
      if (AtEnd()) return Reject("unexpected end of input in an object");
      if (Peek() != '"') {
        return Reject(Peek() == ' ' || Peek() == '\n' ? "whitespace" : "expected a member name");
      }
      Capture key;
      if (!String(&key)) return false;
      // A key's order is that of its decoded bytes; with escapes in it the raw text does not say.
      if (key.escaped) return Undecided();
      const char* name = data_.data() + key.begin;
      const size_t name_size = key.end - key.begin;
      if (previous != nullptr) {
        const int order = CompareNames(name, name_size, previous, previous_size);
        if (order <= 0) {
          const std::string text(name, name_size);
          return Reject(order == 0
                            ? "member \"" + text + "\" appears twice"
                            : "member \"" + text + "\" is out of order (keys must be sorted)");
        }
      }
      previous = name;
      previous_size = name_size;
      if (AtEnd() || Peek() != ':') return Reject("expected ':' after a member name");
      ++pos_;
      ObjectRole child = ObjectRole::kOther;
      if (role == ObjectRole::kTop && NameIs(name, name_size, "details")) {
        child = ObjectRole::kDetails;
      }
      if (!Value(depth, child)) return false;
      if (role == ObjectRole::kTop) {
        if (NameIs(name, name_size, "index")) index_ = last_;
        if (NameIs(name, name_size, "action")) action_ = last_;
      } else if (role == ObjectRole::kDetails && NameIs(name, name_size, "checkpoint")) {
        checkpoint_ = last_;
      }
      if (AtEnd()) return Reject("unexpected end of input in an object");
      if (Peek() == ',') {
        ++pos_;
        continue;
      }
      if (Peek() == '}') {
        ++pos_;
        last_ = Capture{ValueKind::kObject, begin, pos_};
        return true;
      }
      return Reject("expected ',' or '}' in an object");
    }
  }

  bool Array(int depth) {
    if (depth > kMaxEntryDepth) {
      return Reject("nested deeper than " + std::to_string(kMaxEntryDepth) + " levels");
    }
    const size_t begin = pos_;
    ++pos_;  // '['
    if (!AtEnd() && Peek() == ']') {
      ++pos_;
      last_ = Capture{ValueKind::kArray, begin, pos_};
      return true;
    }
    while (true) {
      if (!Value(depth, ObjectRole::kOther)) return false;
      if (AtEnd()) return Reject("unexpected end of input in an array");
      if (Peek() == ',') {
        ++pos_;
        continue;
      }
      if (Peek() == ']') {
        ++pos_;
        last_ = Capture{ValueKind::kArray, begin, pos_};
        return true;
      }
      return Reject("expected ',' or ']' in an array");
    }
  }

  bool Literal(std::string_view word) {
    if (data_.substr(pos_, word.size()) != word) return Reject("not a JSON value");
    last_ = Capture{ValueKind::kLiteral, pos_, pos_ + word.size()};
    pos_ += word.size();
    return true;
  }

  // dump() writes integers as plain decimals ("-0" becomes "0"); anything with a fraction or an
  // exponent, and integers too long to be sure they fit 64 bits, are left to the definition.
  bool Number() {
    const size_t begin = pos_;
    const bool negative = Peek() == '-';
    if (negative) ++pos_;
    if (AtEnd() || !IsDigit(Peek())) return Reject("a '-' not followed by a digit");
    const size_t digits_begin = pos_;
    if (Peek() == '0') {
      ++pos_;
      if (!AtEnd() && IsDigit(Peek())) return Reject("a number with a leading zero");
    } else {
      while (!AtEnd() && IsDigit(Peek())) ++pos_;
    }
    if (!AtEnd() && (Peek() == '.' || Peek() == 'e' || Peek() == 'E')) return Undecided();
    const size_t digits = pos_ - digits_begin;
    if (digits > 18) return Undecided();
    if (negative && digits == 1 && data_[digits_begin] == '0') {
      pos_ = begin;
      return Reject("\"-0\" (canonical form is \"0\")");
    }
    last_ = Capture{ValueKind::kInteger, begin, pos_, false, negative};
    return true;
  }

  static int HexValue(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  // A string as dump() writes it: raw UTF-8 (well-formed, Unicode table 3-7), the two-character
  // escapes for " \ b f n r t, "\u00xx" (lower-case) for the other control characters, and no
  // other escape.
  bool String(Capture* out) {
    // The position lives in a local while scanning: stores through `out` could otherwise alias it
    // and force reloads in the loop.
    size_t pos = pos_ + 1;  // after the opening '"'
    const size_t begin = pos;
    bool escaped = false;
    const size_t size = data_.size();
    const auto* bytes = reinterpret_cast<const unsigned char*>(data_.data());
    while (true) {
#if defined(__SSE2__)
      // Skip 16 plain bytes at a time: one signed compare flags both controls (< 0x20) and
      // non-ASCII (>= 0x80, negative as signed) bytes.
      const __m128i quote = _mm_set1_epi8('"');
      const __m128i backslash = _mm_set1_epi8('\\');
      const __m128i space = _mm_set1_epi8(0x20);
      while (pos + 16 <= size) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes + pos));
        const __m128i special =
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                         _mm_cmplt_epi8(v, space));
        const auto mask = static_cast<unsigned>(_mm_movemask_epi8(special));
        if (mask == 0) {
          pos += 16;
          continue;
        }
        pos += static_cast<size_t>(__builtin_ctz(mask));
        break;
      }
#endif
      if (pos >= size) return RejectAt(pos, "unterminated string");
      const unsigned char c = bytes[pos];
      if (c == '"') break;
      if (c >= 0x20 && c < 0x80 && c != '\\') {
        ++pos;
        continue;
      }
      if (c < 0x20) return RejectAt(pos, "a raw control character in a string");
      if (c == '\\') {
        escaped = true;
        if (pos + 1 >= size) return RejectAt(pos, "unterminated string");
        const char e = static_cast<char>(bytes[pos + 1]);
        if (e == '"' || e == '\\' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't') {
          pos += 2;
          continue;
        }
        if (e != 'u') {
          return RejectAt(pos,
                          e == '/' ? "\"\\/\" (canonical form is \"/\")" : "an invalid escape");
        }
        if (pos + 6 > size) return RejectAt(pos, "a truncated \\u escape");
        int code = 0;
        bool lower = true;
        for (size_t k = 2; k < 6; ++k) {
          const char h = static_cast<char>(bytes[pos + k]);
          const int v = HexValue(h);
          if (v < 0) return RejectAt(pos, "an invalid \\u escape");
          if (h >= 'A' && h <= 'F') lower = false;
          code = code * 16 + v;
        }
        if (code >= 0x20 || code == 0x08 || code == 0x09 || code == 0x0a || code == 0x0c ||
            code == 0x0d || !lower) {
          return RejectAt(pos, "a \\u escape where the canonical form writes the character");
        }
        pos += 6;
        continue;
      }
      // UTF-8 (c >= 0x80).
      size_t length = 0;
      unsigned char low = 0x80;
      unsigned char high = 0xbf;
      if (c >= 0xc2 && c <= 0xdf) {
        length = 2;
      } else if (c >= 0xe0 && c <= 0xef) {
        length = 3;
        if (c == 0xe0) low = 0xa0;
        if (c == 0xed) high = 0x9f;
      } else if (c >= 0xf0 && c <= 0xf4) {
        length = 4;
        if (c == 0xf0) low = 0x90;
        if (c == 0xf4) high = 0x8f;
      } else {
        return RejectAt(pos, "invalid UTF-8");
      }
      if (pos + length > size) return RejectAt(pos, "invalid UTF-8");
      const unsigned char second = bytes[pos + 1];
      if (second < low || second > high) return RejectAt(pos, "invalid UTF-8");
      for (size_t k = 2; k < length; ++k) {
        if (bytes[pos + k] < 0x80 || bytes[pos + k] > 0xbf) return RejectAt(pos, "invalid UTF-8");
      }
      pos += length;
    }
    *out = Capture{ValueKind::kString, begin, pos, escaped};
    pos_ = pos + 1;  // after the closing '"'
    return true;
  }

  std::string_view data_;
  size_t pos_ = 0;
  Verdict verdict_ = Verdict::kCanonical;
  std::string reason_;
  bool top_is_object_ = false;
  Capture last_;
  Capture index_;
  Capture action_;
  Capture checkpoint_;
};

// The decoded text of a string the scanner accepted (so only the canonical escapes occur).
std::string DecodeString(std::string_view raw, bool escaped) {
  if (!escaped) return std::string(raw);
  std::string out;
  out.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '\\') {
      out.push_back(raw[i]);
      continue;
    }
    const char e = raw[++i];
    switch (e) {
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'u': {
        // "\u00xx" only, xx < 0x20, lower-case hex.
        auto hex = [](char h) { return h <= '9' ? h - '0' : h - 'a' + 10; };
        out.push_back(static_cast<char>(hex(raw[i + 3]) * 16 + hex(raw[i + 4])));
        i += 4;
        break;
      }
      default:
        out.push_back(e);
        break;  // '"' and '\\'
    }
  }
  return out;
}

// Any nesting deeper than kMaxEntryDepth, counted without parsing (brackets inside strings are
// skipped); the slow path checks this before handing text to nlohmann-json, whose dump() recurses.
bool NestsTooDeep(std::string_view data) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < data.size(); ++i) {
    const char c = data[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > kMaxEntryDepth) return true;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return false;
}

// The definition: parse, dump, compare. Returns the parsed document when canonical.
Result<json> CanonicalBySlowPath(std::string_view data) {
  if (NestsTooDeep(data)) {
    return InvalidArgument("not canonical JSON: nested deeper than " +
                           std::to_string(kMaxEntryDepth) + " levels");
  }
  json doc = json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return InvalidArgument("not JSON");
  std::string dumped;
  try {
    dumped = doc.dump(-1, ' ', false, json::error_handler_t::strict);
  } catch (const std::exception&) {
    return InvalidArgument("not canonical JSON: a string is not UTF-8");
  }
  if (dumped != data) {
    const auto mismatch = std::mismatch(dumped.begin(), dumped.end(), data.begin(), data.end());
    return InvalidArgument("not canonical JSON at byte " +
                           std::to_string(mismatch.second - data.begin()) +
                           " (sorted keys, no whitespace, minimal escapes)");
  }
  return doc;
}

Error ScannerError(const Scanner& scanner) {
  return InvalidArgument("not canonical JSON at byte " + std::to_string(scanner.offset()) + ": " +
                         scanner.reason());
}

Result<EntryFields> FieldsFromDocument(const json& doc) {
  if (!doc.is_object()) return InvalidArgument("an entry must be a JSON object");
  EntryFields fields;
  auto index = doc.find("index");
  if (index == doc.end() || !index->is_number_unsigned()) {
    return InvalidArgument("an entry needs \"index\", a non-negative integer");
  }
  fields.index = LeafIndex(index->get<uint64_t>());
  auto action = doc.find("action");
  if (action == doc.end() || !action->is_string() ||
      action->get_ref<const std::string&>().empty()) {
    return InvalidArgument("an entry needs \"action\", a non-empty string");
  }
  fields.action = action->get<std::string>();
  if (fields.action == kCheckpointAction) {
    auto details = doc.find("details");
    const json* note = nullptr;
    if (details != doc.end() && details->is_object()) {
      auto it = details->find("checkpoint");
      if (it != details->end() && it->is_string()) note = &*it;
    }
    if (note == nullptr) {
      return InvalidArgument(
          "a \"log_checkpoint\" entry needs \"details\".\"checkpoint\", the "
          "signed note, as a string");
    }
    fields.checkpoint_note = note->get<std::string>();
  }
  return fields;
}

Status CheckSize(std::string_view data) {
  if (data.empty()) return InvalidArgument("an entry must not be empty");
  if (data.size() > kMaxEntrySize) {
    return InvalidArgument("an entry holds at most " + std::to_string(kMaxEntrySize) +
                           " bytes, this one " + std::to_string(data.size()));
  }
  return OkStatus();
}

}  // namespace

Status CheckCanonicalJson(std::string_view data) {
  Scanner scanner(data);
  switch (scanner.Scan(/*top_is_entry=*/false)) {
    case Verdict::kCanonical:
      return OkStatus();
    case Verdict::kRejected:
      return ScannerError(scanner);
    case Verdict::kUndecided:
      break;
  }
  auto doc = CanonicalBySlowPath(data);
  if (!doc.ok()) return std::move(doc).error();
  return OkStatus();
}

Result<EntryFields> ParseEntryFields(std::string_view data) {
  SIGNET_TRY(CheckSize(data));
  Scanner scanner(data);
  const Verdict verdict = scanner.Scan(/*top_is_entry=*/true);
  if (verdict == Verdict::kRejected) return ScannerError(scanner);
  if (verdict == Verdict::kUndecided) {
    SIGNET_ASSIGN_OR_RETURN(json doc, CanonicalBySlowPath(data));
    return FieldsFromDocument(doc);
  }
  if (!scanner.top_is_object()) return InvalidArgument("an entry must be a JSON object");

  EntryFields fields;
  const Capture& index = scanner.index();
  if (index.kind != ValueKind::kInteger || index.negative) {
    return InvalidArgument("an entry needs \"index\", a non-negative integer");
  }
  uint64_t value = 0;
  // At most 18 digits (the scanner leaves longer ones to the slow path), so this cannot overflow.
  if (std::from_chars(data.data() + index.begin, data.data() + index.end, value).ec !=
      std::errc()) {
    return InternalError("entry index could not be read back");
  }
  fields.index = LeafIndex(value);

  const Capture& action = scanner.action();
  if (action.kind != ValueKind::kString || action.begin == action.end) {
    return InvalidArgument("an entry needs \"action\", a non-empty string");
  }
  fields.action =
      DecodeString(data.substr(action.begin, action.end - action.begin), action.escaped);
  if (fields.action == kCheckpointAction) {
    const Capture& note = scanner.checkpoint();
    if (note.kind != ValueKind::kString) {
      return InvalidArgument(
          "a \"log_checkpoint\" entry needs \"details\".\"checkpoint\", the "
          "signed note, as a string");
    }
    fields.checkpoint_note =
        DecodeString(data.substr(note.begin, note.end - note.begin), note.escaped);
  }
  return fields;
}

}  // namespace signet::audit
