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
  size_t keep = max_bytes;
  // Back up to the start of a UTF-8 sequence (continuation bytes are 10xxxxxx).
  while (keep > 0 && (static_cast<uint8_t>(text[keep]) & 0xc0) == 0x80) --keep;
  return keep;
}

namespace {

std::string EscapeControls(std::string_view text, size_t max_bytes, bool keep_newline) {
  const size_t keep = Utf8CutPoint(text, max_bytes);
  std::string out;
  out.reserve(keep + 16);
  char escape[8];
  for (size_t i = 0; i < keep; ++i) {
    const auto c = static_cast<uint8_t>(text[i]);
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
