#include "common/text.h"

#include <cstdint>
#include <cstdio>

namespace signet {

bool JsonNestsDeeperThan(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character, whatever it is, does not end the string
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) return true;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return false;
}

size_t Utf8CutPoint(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text.size();
  // Back up to the start of a UTF-8 sequence (continuation bytes are 10xxxxxx), which is at most
  // 3 bytes back; a longer run of continuation bytes is not UTF-8, and is cut where it stands.
  size_t keep = max_bytes;
  while (keep > 0 && max_bytes - keep < 3 && (static_cast<uint8_t>(text[keep]) & 0xc0) == 0x80) {
    --keep;
  }
  return (static_cast<uint8_t>(text[keep]) & 0xc0) == 0x80 ? max_bytes : keep;
}

namespace {

// The length of an invisible code point at text[i] that changes how the text around it reads:
// the line and paragraph separators U+2028/U+2029, which some viewers break lines at, and the
// bidirectional controls (U+061C, U+200E/U+200F, U+202A..U+202E, U+2066..U+2069), which reorder
// what a terminal shows. 0 if there is none.
size_t LayoutControlAt(std::string_view text, size_t i, size_t end, uint32_t* code_point) {
  auto at = [&](size_t k) { return static_cast<uint8_t>(text[k]); };
  if (i + 1 < end && at(i) == 0xd8 && at(i + 1) == 0x9c) {
    *code_point = 0x061c;
    return 2;
  }
  if (i + 2 >= end || at(i) != 0xe2) return 0;
  const uint32_t cp = ((at(i) & 0x0fu) << 12) | ((at(i + 1) & 0x3fu) << 6) | (at(i + 2) & 0x3fu);
  if ((at(i + 1) & 0xc0) != 0x80 || (at(i + 2) & 0xc0) != 0x80) return 0;
  if (cp == 0x200e || cp == 0x200f || (cp >= 0x2028 && cp <= 0x202e) ||
      (cp >= 0x2066 && cp <= 0x2069)) {
    *code_point = cp;
    return 3;
  }
  return 0;
}

std::string EscapeControls(std::string_view text, size_t max_bytes, bool keep_newline) {
  const size_t keep = Utf8CutPoint(text, max_bytes);
  std::string out;
  out.reserve(keep + 16);
  char escape[8];
  for (size_t i = 0; i < keep; ++i) {
    const auto c = static_cast<uint8_t>(text[i]);
    uint32_t code_point = 0;
    if (c == '\n' && keep_newline) {
      out.push_back('\n');
    } else if (c < 0x20 || c == 0x7f) {
      std::snprintf(escape, sizeof escape, "\\x%02x", c);
      out += escape;
    } else if (c == 0xc2 && i + 1 < keep && static_cast<uint8_t>(text[i + 1]) >= 0x80 &&
               static_cast<uint8_t>(text[i + 1]) <= 0x9f) {
      std::snprintf(escape, sizeof escape, "\\u%04x", static_cast<uint8_t>(text[i + 1]));
      out += escape;
      ++i;
    } else if (const size_t n = LayoutControlAt(text, i, keep, &code_point); n > 0) {
      std::snprintf(escape, sizeof escape, "\\u%04x", static_cast<unsigned>(code_point));
      out += escape;
      i += n - 1;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  if (keep < text.size()) out += "... (" + std::to_string(text.size()) + " bytes in all)";
  return out;
}

}  // namespace

std::string TerminalSafe(std::string_view text, size_t max_bytes) {
  return EscapeControls(text, max_bytes, /*keep_newline=*/true);
}

std::string OneLineSafe(std::string_view text, size_t max_bytes) {
  return EscapeControls(text, max_bytes, /*keep_newline=*/false);
}

std::string AsciiLower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace signet
