// Small pure helpers of the transport that read untrusted text: splitting a request-target into
// path and query, percent-decoding, checking header text and a request header's framing. Also JSON
// string escaping for the transport's own error bodies. All functions are pure and thread-safe.
// ParseTarget has a fuzz target (fuzz/query_fuzz.cc), FramingProblem another with Beast's parser
// (fuzz/http_fuzz.cc).
#pragma once

#ifndef BOOST_BEAST_USE_STD_STRING_VIEW
#error "signet's server code uses Beast with std::string_view (see src/server/CMakeLists.txt)"
#endif
#include <boost/beast/http/message.hpp>
#include <cstddef>
#include <optional>
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

// What makes a request header's framing or its single-valued fields ambiguous, if anything (the
// server then answers 400 and closes the connection): a request two readers (signet and a proxy in
// front of it) could split or read differently is refused. RFC 9112 §6.1 and §6.3: a
// Transfer-Encoding other than exactly "chunked", or one in an HTTP/1.0 request, cannot be framed
// (Beast would read such a body as empty and parse the bytes as the next request); §3.2: an
// HTTP/1.1 request has exactly one Host. Authorization and Content-Type are read once, so a second
// one is refused rather than ignored (as repeated JSON keys are, docs/api.md). Beast itself
// refuses Content-Length together with Transfer-Encoding, and differing Content-Lengths.
std::optional<std::string> FramingProblem(const boost::beast::http::request_header<>& message);

}  // namespace signet::server::internal
