// Helpers for request-target and header text (internal/http_util.h).

#include "server/internal/http_util.h"

#include <cstdio>

#include "common/text.h"

namespace signet::server::internal {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

Result<std::string> PercentDecode(std::string_view text, bool plus_as_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '+' && plus_as_space) {
      out += ' ';
    } else if (c == '%') {
      if (text.size() - i < 3) {
        return InvalidArgument("truncated percent escape at offset " + std::to_string(i));
      }
      int hi = HexValue(text[i + 1]);
      int lo = HexValue(text[i + 2]);
      if (hi < 0 || lo < 0) {
        return InvalidArgument("bad percent escape at offset " + std::to_string(i));
      }
      char decoded = static_cast<char>(hi * 16 + lo);
      if (decoded == '\0') return InvalidArgument("percent escape %00 is not allowed");
      out += decoded;
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

Result<ParsedTarget> ParseTarget(std::string_view target) {
  if (target.empty() || target.front() != '/') {
    return InvalidArgument("the request target must be an absolute path starting with '/'");
  }
  for (char c : target) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == '#') {
      return InvalidArgument("the request target holds a character that is not allowed");
    }
  }
  ParsedTarget parsed;
  size_t question = target.find('?');
  parsed.path = std::string(target.substr(0, question));
  if (question == std::string_view::npos) return parsed;

  std::string_view query = target.substr(question + 1);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    if (parsed.query.size() == kMaxQueryParams) {
      return InvalidArgument("more than " + std::to_string(kMaxQueryParams) + " query parameters");
    }
    size_t eq = pair.find('=');
    auto name = PercentDecode(pair.substr(0, eq), true);
    if (!name.ok()) return name.error().WithContext("query parameter name");
    std::string value;
    if (eq != std::string_view::npos) {
      auto decoded = PercentDecode(pair.substr(eq + 1), true);
      if (!decoded.ok()) return decoded.error().WithContext("query parameter value");
      value = std::move(decoded).value();
    }
    parsed.query.emplace_back(std::move(name).value(), std::move(value));
  }
  return parsed;
}

bool IsHttpToken(std::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!ok) {
      switch (c) {
        case '!':
        case '#':
        case '$':
        case '%':
        case '&':
        case '\'':
        case '*':
        case '+':
        case '-':
        case '.':
        case '^':
        case '_':
        case '`':
        case '|':
        case '~':
          ok = true;
          break;
        default:
          break;
      }
    }
    if (!ok) return false;
  }
  return true;
}

bool HasLineBreakOrNul(std::string_view text) {
  return text.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

namespace {

// The length of the well-formed UTF-8 sequence that starts at text[at] (RFC 3629 §4: no overlong
// forms, no surrogates, nothing above U+10FFFF), or 0 if there is none.
size_t Utf8SequenceLength(std::string_view text, size_t at) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char lead = byte(at);
  if (lead < 0x80) return 1;
  size_t length = 0;
  unsigned char low = 0x80;   // the range of the second byte
  unsigned char high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;   // overlong
    if (lead == 0xED) high = 0x9F;  // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;   // overlong
    if (lead == 0xF4) high = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (text.size() - at < length || byte(at + 1) < low || byte(at + 1) > high) return 0;
  for (size_t k = 2; k < length; ++k) {
    if (byte(at + k) < 0x80 || byte(at + k) > 0xBF) return 0;
  }
  return length;
}

}  // namespace

std::string JsonEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (size_t at = 0; at < text.size();) {
    const char c = text[at];
    if (static_cast<unsigned char>(c) >= 0x80) {
      const size_t length = Utf8SequenceLength(text, at);
      if (length == 0) {
        out += "\\ufffd";  // U+FFFD REPLACEMENT CHARACTER for a byte that is not UTF-8
        ++at;
      } else {
        out.append(text.substr(at, length));
        at += length;
      }
      continue;
    }
    ++at;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
}

namespace http = boost::beast::http;

std::optional<std::string> FramingProblem(const http::request_header<>& message) {
  const size_t encodings = message.count(http::field::transfer_encoding);
  if (encodings > 0) {
    if (message.version() < 11) {
      return std::string("Transfer-Encoding is not allowed in an HTTP/1.0 request");
    }
    // Beast hands the value over without its surrounding whitespace (RFC 9110 §5.5).
    if (encodings > 1 ||
        AsciiLower(std::string_view(message[http::field::transfer_encoding])) != "chunked") {
      return std::string(
          "Transfer-Encoding must be exactly \"chunked\" (or absent, with Content-Length)");
    }
  }
  const size_t hosts = message.count(http::field::host);
  if (message.version() >= 11 && hosts != 1) {
    return std::string(hosts == 0 ? "an HTTP/1.1 request needs a Host header"
                                  : "the request has more than one Host header");
  }
  if (hosts > 1) return std::string("the request has more than one Host header");
  for (http::field f : {http::field::authorization, http::field::content_type}) {
    if (message.count(f) > 1) {
      return "the request has more than one " + std::string(http::to_string(f)) + " header";
    }
  }
  return std::nullopt;
}

}  // namespace signet::server::internal
