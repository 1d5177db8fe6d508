// Small pure helpers of the transport that read untrusted text: splitting a request-target into
// path and query, percent-decoding, and checking header text. Also JSON string escaping for the
// transport's own error bodies. All functions are pure and thread-safe. ParseTarget has a fuzz
// target (fuzz/query_fuzz.cc).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace signet::server::internal {

// Limits on what ParseTarget accepts; the target itself is already bounded by max_header_bytes.
inline constexpr size_t kMaxQueryParams = 64;

struct ParsedTarget {
  std::string path;  // up to '?', as sent (not decoded)
  std::vector<std::pair<std::string, std::string>> query;
};

// Splits an origin-form request-target (RFC 9112 §3.2.1) "/path?query". The query is read as
// application/x-www-form-urlencoded: pairs separated by '&', name and value by the first '=',
// '+' is a space, %XX decoded; empty pairs ("a&&b") are skipped; a pair without '=' has an empty
// value. Fails with InvalidArgument if the target does not start with '/', holds '#', a control
// character, space or non-ASCII byte, a malformed or NUL-producing percent escape, or more than
// kMaxQueryParams pairs.
Result<ParsedTarget> ParseTarget(std::string_view target);

// Decodes %XX escapes (and '+' as space when `plus_as_space`). Fails with InvalidArgument on a
// truncated or non-hex escape or an escape that decodes to NUL.
Result<std::string> PercentDecode(std::string_view text, bool plus_as_space);

// True if `text` is an HTTP token (RFC 9110 §5.6.2), e.g. a method or header name.
bool IsHttpToken(std::string_view text);

// True if `text` holds CR, LF or NUL (not allowed in a header value we send).
bool HasLineBreakOrNul(std::string_view text);

// `text` as the inside of a JSON string (RFC 8259 §7): quotes, backslash and control characters
// escaped; well-formed UTF-8 copied as it is, and each byte that is not part of it (a request's
// raw bytes echoed in an error) written as \ufffd, so that the result is always valid JSON text.
std::string JsonEscape(std::string_view text);

}  // namespace signet::server::internal
