#include "audit/entry.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <exception>
#include <nlohmann/json.hpp>
#include <string>
#include <system_error>
#include <tuple>
#include <utility>

#include "common/text.h"

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

// One pass over the text, without recursion: the open objects and arrays are kept on a stack of
// at most kMaxEntryDepth frames and the position and the value being read live in locals, so the
// loop over an entry's ~40 tokens is one function whose state stays in registers. (A recursive
// descent spent more time entering and leaving functions than looking at bytes.)
class Scanner {
 public:
  explicit Scanner(std::string_view data) : data_(data) {}

  // Scans the whole input as one value. `top_is_entry`: capture the entry's fields.
  Verdict Scan(bool top_is_entry) {
    if (!Run(top_is_entry ? ObjectRole::kTop : ObjectRole::kOther)) return verdict_;
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
  const Capture& checkpoint_size() const { return checkpoint_size_; }
  const Capture& checkpoint_root() const { return checkpoint_root_; }

 private:
  // An object or array being scanned. Every field is set when it opens (no initialisers: a scan
  // must not pay for clearing kMaxEntryDepth frames it mostly does not use).
  struct Frame {
    size_t begin;          // the offset of its '{' or '['
    Capture* slot;         // where its own capture goes when it closes (nullptr: nowhere)
    const char* previous;  // object: the previous member's name (nullptr: none yet)
    size_t previous_size;
    ObjectRole role;  // object: its role for field extraction
    bool object;
  };

  // Where a string or number ends, returned in registers.
  struct End {
    size_t pos = 0;     // string: the closing '"'; number: just after the last digit
    bool ok = false;    // false: the verdict is set
    bool flag = false;  // string: it holds an escape; number: it is negative
  };

  // The ways out of a scan are cold: marking them so keeps their string building out of the hot
  // loop.
  [[gnu::cold, gnu::noinline]] bool Reject(std::string reason) {
    verdict_ = Verdict::kRejected;
    reason_ = std::move(reason);
    return false;
  }
  [[gnu::cold, gnu::noinline]] bool RejectAt(size_t pos, std::string reason) {
    pos_ = pos;
    return Reject(std::move(reason));
  }
  [[gnu::cold, gnu::noinline]] End RejectEnd(size_t pos, std::string reason) {
    RejectAt(pos, std::move(reason));
    return End{};
  }
  [[gnu::cold, gnu::noinline]] bool RejectTooDeep(size_t pos) {
    return RejectAt(pos, "nested deeper than " + std::to_string(kMaxEntryDepth) + " levels");
  }
  [[gnu::cold, gnu::noinline]] bool RejectOrder(size_t pos, const char* name, size_t size,
                                                int order) {
    const std::string text(name, size);
    return RejectAt(pos, order == 0
                             ? "member \"" + text + "\" appears twice"
                             : "member \"" + text + "\" is out of order (keys must be sorted)");
  }
  [[gnu::cold, gnu::noinline]] bool Undecided(size_t pos) {
    pos_ = pos;
    verdict_ = Verdict::kUndecided;
    return false;
  }
  [[gnu::cold, gnu::noinline]] End UndecidedEnd(size_t pos) {
    Undecided(pos);
    return End{};
  }

  // The whole text as one value, with captures per `top_role`. On success pos_ is just after it.
  bool Run(ObjectRole top_role) {
    const char* const text = data_.data();
    const size_t size = data_.size();
    constexpr size_t kMaxDepth = kMaxEntryDepth;
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-member-init): see Frame.
    std::array<Frame, kMaxDepth> stack;
    size_t depth = 0;  // frames in use
    size_t pos = 0;
    // The next value's role (if it is an object) and where it is captured.
    ObjectRole role = top_role;
    Capture* slot = nullptr;
    while (true) {
      // A value starts at `pos`; once read, it is `kind` over [begin, end).
      if (pos >= size) return RejectAt(pos, "unexpected end of input");
      const char c = text[pos];
      ValueKind kind = ValueKind::kNone;
      size_t begin = pos;
      bool escaped = false;
      bool negative = false;
      if (c == '"') {
        const End end = String(pos);
        if (!end.ok) return false;
        kind = ValueKind::kString;
        begin = pos + 1;
        escaped = end.flag;
        pos = end.pos + 1;
      } else if (c == '{' || c == '[') {
        if (depth == kMaxDepth) return RejectTooDeep(pos);
        const bool object = c == '{';
        if (object && depth == 0) top_is_object_ = true;
        Frame& frame = stack[depth++];
        frame.begin = pos;
        frame.slot = slot;
        frame.previous = nullptr;
        frame.role = role;
        frame.object = object;
        ++pos;
        if (pos < size && text[pos] == (object ? '}' : ']')) {
          ++pos;
          --depth;
          kind = object ? ValueKind::kObject : ValueKind::kArray;
        } else if (object) {
          if (!MemberName(frame, pos, role, slot)) return false;
          continue;  // the first member's value
        } else {
          role = ObjectRole::kOther;
          slot = nullptr;
          continue;  // the first element
        }
      } else if (c == '-' || IsDigit(c)) {
        const End end = Number(pos);
        if (!end.ok) return false;
        kind = ValueKind::kInteger;
        negative = end.flag;
        pos = end.pos;
      } else if (c == 't' || c == 'f' || c == 'n') {
        const std::string_view word = c == 't' ? "true" : (c == 'f' ? "false" : "null");
        if (data_.substr(pos, word.size()) != word) return RejectAt(pos, "not a JSON value");
        kind = ValueKind::kLiteral;
        pos += word.size();
      } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        return RejectAt(pos, "whitespace");
      } else {
        return RejectAt(pos, "not a JSON value");
      }

      // A value ended: capture it, then read what follows it in its container (closing
      // containers, each a value that ends in turn, for as long as they close).
      while (true) {
        if (slot != nullptr) {
          // A string's capture is between its quotes.
          *slot =
              Capture{kind, begin, kind == ValueKind::kString ? pos - 1 : pos, escaped, negative};
        }
        if (depth == 0) {
          pos_ = pos;
          return true;
        }
        Frame& frame = stack[depth - 1];
        if (pos >= size) {
          return RejectAt(pos, frame.object ? "unexpected end of input in an object"
                                            : "unexpected end of input in an array");
        }
        const char d = text[pos];
        if (d == ',') {
          ++pos;
          if (frame.object) {
            if (!MemberName(frame, pos, role, slot)) return false;
          } else {
            role = ObjectRole::kOther;
            slot = nullptr;
          }
          break;  // the next value
        }
        if (d != (frame.object ? '}' : ']')) {
          return RejectAt(pos, frame.object ? "expected ',' or '}' in an object"
                                            : "expected ',' or ']' in an array");
        }
        ++pos;
        --depth;
        kind = frame.object ? ValueKind::kObject : ValueKind::kArray;
        begin = frame.begin;
        escaped = false;
        negative = false;
        slot = frame.slot;
      }
    }
  }

  // A member name and its ':' at `pos` in the object `frame`; sets the role and capture slot of
  // the member's value, which follows.
  [[gnu::always_inline]] bool MemberName(Frame& frame, size_t& pos, ObjectRole& role,
                                         Capture*& slot) {
    const char* const text = data_.data();
    if (pos >= data_.size()) return RejectAt(pos, "unexpected end of input in an object");
    if (text[pos] != '"') {
      return RejectAt(
          pos, text[pos] == ' ' || text[pos] == '\n' ? "whitespace" : "expected a member name");
    }
    const End end = String(pos);
    if (!end.ok) return false;
    const char* name = text + pos + 1;
    const size_t name_size = end.pos - pos - 1;
    pos = end.pos + 1;
    // A key's order is that of its decoded bytes; with escapes in it the raw text does not say.
    if (end.flag) return Undecided(pos);
    if (frame.previous != nullptr) {
      const int order = CompareNames(name, name_size, frame.previous, frame.previous_size);
      if (order <= 0) return RejectOrder(pos, name, name_size, order);
    }
    frame.previous = name;
    frame.previous_size = name_size;
    if (pos >= data_.size() || text[pos] != ':') {
      return RejectAt(pos, "expected ':' after a member name");
    }
    ++pos;
    role = ObjectRole::kOther;
    slot = nullptr;
    if (frame.role == ObjectRole::kTop) {
      if (NameIs(name, name_size, "details")) {
        role = ObjectRole::kDetails;
      } else if (NameIs(name, name_size, "index")) {
        slot = &index_;
      } else if (NameIs(name, name_size, "action")) {
        slot = &action_;
      }
    } else if (frame.role == ObjectRole::kDetails) {
      if (NameIs(name, name_size, "checkpoint")) {
        slot = &checkpoint_;
      } else if (NameIs(name, name_size, "size")) {
        slot = &checkpoint_size_;
      } else if (NameIs(name, name_size, "root")) {
        slot = &checkpoint_root_;
      }
    }
    return true;
  }

  // An integer at `begin` as dump() writes it: plain decimal ("-0" becomes "0"). Anything with a
  // fraction or an exponent, and integers too long to be sure they fit 64 bits, are left to the
  // definition.
  End Number(size_t begin) {
    const char* const text = data_.data();
    const size_t size = data_.size();
    size_t pos = begin;
    const bool negative = text[pos] == '-';
    if (negative) ++pos;
    if (pos >= size || !IsDigit(text[pos])) return RejectEnd(pos, "a '-' not followed by a digit");
    const size_t digits_begin = pos;
    if (text[pos] == '0') {
      ++pos;
      if (pos < size && IsDigit(text[pos])) return RejectEnd(pos, "a number with a leading zero");
    } else {
      while (pos < size && IsDigit(text[pos])) ++pos;
    }
    if (pos < size && (text[pos] == '.' || text[pos] == 'e' || text[pos] == 'E')) {
      return UndecidedEnd(pos);
    }
    const size_t digits = pos - digits_begin;
    if (digits > 18) return UndecidedEnd(pos);
    if (negative && digits == 1 && text[digits_begin] == '0') {
      return RejectEnd(begin, "\"-0\" (canonical form is \"0\")");
    }
    return End{pos, true, negative};
  }

  static int HexValue(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  // A string as dump() writes it, from its opening '"' at `open`: raw UTF-8 (well-formed, Unicode
  // table 3-7), the two-character escapes for " \ b f n r t, "\u00xx" (lower-case) for the other
  // control characters, and no other escape.
  //
  // Nearly every string in an entry is printable ASCII up to its closing quote: that case is
  // decided here, inline; anything else (an escape, a control character, non-ASCII, the last 16
  // bytes of the text) continues in StringRest, by the full rules.
  [[gnu::always_inline]] End String(size_t open) {
    size_t at = open + 1;
#if defined(__SSE2__)
    const size_t size = data_.size();
    const auto* bytes = reinterpret_cast<const unsigned char*>(data_.data());
    // Skip 16 plain bytes at a time: one signed compare flags both controls (< 0x20) and
    // non-ASCII (>= 0x80, negative as signed) bytes.
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i backslash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(0x20);
    while (at + 16 <= size) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes + at));
      const auto quotes = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, quote)));
      const auto others = static_cast<unsigned>(
          _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, backslash), _mm_cmplt_epi8(v, space))));
      const unsigned special = quotes | others;
      if (special != 0) {
        const unsigned first = special & (0u - special);  // the lowest set bit
        if ((first & quotes) != 0) {
          return End{at + static_cast<size_t>(__builtin_ctz(special)), true, false};
        }
        at += static_cast<size_t>(__builtin_ctz(special));
        break;
      }
      at += 16;
    }
#endif
    return StringRest(at);
  }

  // The rest of a string from `at`, where everything before `at` is plain.
  [[gnu::noinline]] End StringRest(size_t at) {
    bool escaped = false;
    const size_t size = data_.size();
    const auto* bytes = reinterpret_cast<const unsigned char*>(data_.data());
    while (true) {
#if defined(__SSE2__)
      const __m128i quote = _mm_set1_epi8('"');
      const __m128i backslash = _mm_set1_epi8('\\');
      const __m128i space = _mm_set1_epi8(0x20);
      while (at + 16 <= size) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes + at));
        const __m128i special =
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                         _mm_cmplt_epi8(v, space));
        const auto mask = static_cast<unsigned>(_mm_movemask_epi8(special));
        if (mask == 0) {
          at += 16;
          continue;
        }
        at += static_cast<size_t>(__builtin_ctz(mask));
        break;
      }
#endif
      if (at >= size) return RejectEnd(at, "unterminated string");
      const unsigned char c = bytes[at];
      if (c == '"') break;
      if (c >= 0x20 && c < 0x80 && c != '\\') {
        ++at;
        continue;
      }
      if (c < 0x20) return RejectEnd(at, "a raw control character in a string");
      if (c == '\\') {
        escaped = true;
        if (at + 1 >= size) return RejectEnd(at, "unterminated string");
        const char e = static_cast<char>(bytes[at + 1]);
        if (e == '"' || e == '\\' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't') {
          at += 2;
          continue;
        }
        if (e != 'u') {
          return RejectEnd(at,
                           e == '/' ? "\"\\/\" (canonical form is \"/\")" : "an invalid escape");
        }
        if (at + 6 > size) return RejectEnd(at, "a truncated \\u escape");
        int code = 0;
        bool lower = true;
        for (size_t k = 2; k < 6; ++k) {
          const char h = static_cast<char>(bytes[at + k]);
          const int v = HexValue(h);
          if (v < 0) return RejectEnd(at, "an invalid \\u escape");
          if (h >= 'A' && h <= 'F') lower = false;
          code = code * 16 + v;
        }
        if (code >= 0x20 || code == 0x08 || code == 0x09 || code == 0x0a || code == 0x0c ||
            code == 0x0d || !lower) {
          return RejectEnd(at, "a \\u escape where the canonical form writes the character");
        }
        at += 6;
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
        return RejectEnd(at, "invalid UTF-8");
      }
      if (at + length > size) return RejectEnd(at, "invalid UTF-8");
      const unsigned char second = bytes[at + 1];
      if (second < low || second > high) return RejectEnd(at, "invalid UTF-8");
      for (size_t k = 2; k < length; ++k) {
        if (bytes[at + k] < 0x80 || bytes[at + k] > 0xbf) return RejectEnd(at, "invalid UTF-8");
      }
      at += length;
    }
    return End{at, true, escaped};
  }

  std::string_view data_;
  size_t pos_ = 0;  // after a scan: where it ended or failed
  Verdict verdict_ = Verdict::kCanonical;
  std::string reason_;
  bool top_is_object_ = false;
  Capture index_;
  Capture action_;
  Capture checkpoint_;
  Capture checkpoint_size_;
  Capture checkpoint_root_;
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

// The definition: parse, dump, compare. Returns the parsed document when canonical.
Result<json> CanonicalBySlowPath(std::string_view data) {
  // Checked before nlohmann-json sees the text: its dump() recurses.
  if (JsonNestsDeeperThan(data, kMaxEntryDepth)) {
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

Error CheckpointDetailNotAString(std::string_view name) {
  return InvalidArgument("a \"log_checkpoint\" entry's \"details\".\"" + std::string(name) +
                         "\", if present, must be a string");
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
    for (auto [name, out] : {std::pair{"size", &fields.checkpoint_size},
                             std::pair{"root", &fields.checkpoint_root}}) {
      auto it = details->find(name);
      if (it == details->end()) continue;
      if (!it->is_string()) return CheckpointDetailNotAString(name);
      *out = it->get<std::string>();
    }
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
    for (auto [name, capture, out] :
         {std::tuple{"size", &scanner.checkpoint_size(), &fields.checkpoint_size},
          std::tuple{"root", &scanner.checkpoint_root(), &fields.checkpoint_root}}) {
      if (capture->kind == ValueKind::kNone) continue;
      if (capture->kind != ValueKind::kString) return CheckpointDetailNotAString(name);
      *out = DecodeString(data.substr(capture->begin, capture->end - capture->begin),
                          capture->escaped);
    }
  }
  return fields;
}

}  // namespace signet::audit
