// Checks and escapes for text that comes from outside the process (a server's answer, a client's
// request body) before it is parsed by a recursive library or shown on a terminal. Pure and
// thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace signet {

// How deep objects and arrays may nest in JSON that signet accepts from outside: request bodies,
// server answers, audit entries. nlohmann-json parses without recursion but copies, compares and
// dumps recursively, so a document nested a few hundred thousand deep (a few hundred KB) would
// overflow the stack of whoever copies it. Nothing signet exchanges nests deeper than a handful.
inline constexpr int kMaxJsonDepth = 64;

// Whether `text`, read as JSON, opens more than `max_depth` objects and arrays inside each other.
// Counted on the text without parsing it (brackets inside strings do not count), so it is safe to
// call before any parser; on text that is not JSON the answer is still a bound on what a parser
// would build.
bool JsonNestsDeeperThan(std::string_view text, int max_depth = kMaxJsonDepth);

// The longest prefix of `text` of at most `max_bytes` bytes that does not end inside a UTF-8
// sequence (continuation bytes are not split from their lead byte).
size_t Utf8CutPoint(std::string_view text, size_t max_bytes);

// `text` made safe to write to a terminal: every control character except the newline (C0, DEL,
// and the C1 range U+0080..U+009F written in UTF-8) becomes a visible escape (\x1b, \u009b), so a
// string from a server cannot move the cursor, rewrite what is shown, set the window title or the
// clipboard; so do the line and paragraph separators and the bidirectional controls (\u2028,
// \u202e), so it cannot break lines or reorder what is shown. If `text` is longer than `max_bytes`
// it is cut there (never inside a UTF-8 sequence) and "... (N bytes in all)" says so. Other bytes,
// invalid UTF-8 included, are kept.
std::string TerminalSafe(std::string_view text, size_t max_bytes = 4096);

// As TerminalSafe, but the newline is escaped too (\x0a), so the result is one line: for a line
// of a log that a message must not be able to split or forge (the operational log also doubles
// backslashes first, common/log.h, so that no text reads like an escape it is not).
std::string OneLineSafe(std::string_view text, size_t max_bytes = 4096);

// A copy with A-Z turned into a-z and every other byte kept (no locale: for header names, URL
// schemes and hex ids).
std::string AsciiLower(std::string_view text);

}  // namespace signet
