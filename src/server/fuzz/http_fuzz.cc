// libFuzzer target for reading requests off a connection as the server does (server_core.cc):
// Beast's request parser with the server's default limits, requests one after another from the
// same bytes (keep-alive and pipelining), each header held to FramingProblem
// (internal/http_util.h). Checks that nothing crashes or reads out of bounds (ASan/UBSan), that the
// parser never claims more bytes than it was given, and that a request the server would go on to
// handle is framed one way only: its body is exactly as long as its Content-Length says, or it is
// chunked with nothing but "chunked", or it has no body. Another reading of the same bytes (a
// proxy's) could otherwise see a different request boundary.

#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/text.h"
#include "server/internal/http_util.h"
#include "server/server.h"

namespace {

namespace http = boost::beast::http;

// The decimal Content-Length Beast accepted (it refuses signs, differing repeats and overflow;
// "5, 5" is one length given twice).
bool ParseLength(std::string_view text, uint64_t* out) {
  const size_t comma = text.find(',');
  if (comma != std::string_view::npos) text = text.substr(0, comma);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  if (text.empty()) return false;
  uint64_t n = 0;
  for (char c : text) {
    if (c < '0' || c > '9' || n > (UINT64_MAX - 9) / 10) return false;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = n;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const signet::server::ServerOptions defaults;
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  for (int request = 0; request < 16 && !rest.empty(); ++request) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<uint32_t>(defaults.max_header_bytes));
    parser.body_limit(defaults.max_body_bytes);
    parser.eager(true);
    boost::system::error_code ec;
    while (!parser.is_done()) {
      const size_t used = parser.put(boost::asio::buffer(rest.data(), rest.size()), ec);
      if (used > rest.size()) std::abort();
      rest.remove_prefix(used);
      if (ec || used == 0) break;
    }
    if (!parser.is_header_done()) return 0;  // refused (400/431) or cut short: the connection ends
    const auto& message = parser.get();
    if (signet::server::internal::FramingProblem(message)) return 0;  // 400, connection closed
    if (ec || !parser.is_done()) return 0;  // body refused (413/400) or cut short
    const bool chunked = message.count(http::field::transfer_encoding) > 0;
    const auto length = message.find(http::field::content_length);
    if (chunked) {
      if (length != message.end()) std::abort();  // both framings at once
      if (signet::AsciiLower(std::string_view(message[http::field::transfer_encoding])) !=
          "chunked") {
        std::abort();
      }
    } else if (length != message.end()) {
      uint64_t n = 0;
      if (!ParseLength(std::string_view(length->value()), &n)) std::abort();
      if (message.body().size() != n) std::abort();
    } else if (!message.body().empty()) {
      std::abort();  // a request without either has no body (RFC 9112 §6.3)
    }
    if (!message.keep_alive()) return 0;
  }
  return 0;
}
