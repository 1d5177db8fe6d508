#include "pki/internal/openssl_util.h"

#include <openssl/err.h>

#include <chrono>
#include <cstdio>
#include <ctime>

#include "common/encoding.h"
#include "pki/internal/openssl_ptr.h"

namespace signet::pki::internal {

std::string DrainOpenSslErrors() {
  std::string out;
  // Bounded so a pathological queue cannot produce an enormous message.
  for (int i = 0; i < 16; ++i) {
    unsigned long code = ERR_get_error();
    if (code == 0) break;
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof(buffer));
    if (!out.empty()) out += "; ";
    out += buffer;
  }
  ERR_clear_error();
  return out;
}

Error OpenSslError(ErrorCode code, std::string message) {
  std::string details = DrainOpenSslErrors();
  if (!details.empty()) message += ": " + details;
  return Error(code, std::move(message));
}

std::string PemEncode(std::string_view label, ByteView der) {
  std::string base64 = Base64Encode(der);
  std::string out;
  out.reserve(base64.size() + base64.size() / 64 + 2 * label.size() + 40);
  out += "-----BEGIN ";
  out += label;
  out += "-----\n";
  for (size_t i = 0; i < base64.size(); i += 64) {
    out.append(base64, i, 64);
    out += '\n';
  }
  out += "-----END ";
  out += label;
  out += "-----\n";
  return out;
}

std::string NameToString(const X509_NAME* name) {
  UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr) return {};
  // RFC 2253/4514 form, but UTF-8 characters are printed as they are instead of \XX escapes.
  constexpr unsigned long kFlags = XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB;
  if (X509_NAME_print_ex(bio.get(), name, 0, kFlags) < 0) {
    DrainOpenSslErrors();
    return {};
  }
  std::string out(BIO_ctrl_pending(bio.get()), '\0');
  if (!out.empty() && BIO_read(bio.get(), out.data(), ToInt(out.size())) != ToInt(out.size())) {
    DrainOpenSslErrors();
    return {};
  }
  return out;
}

namespace {

// The broken-down time of an X.509 Time, its date checked.
Result<std::tm> AsnTimeParts(const ASN1_TIME* time) {
  std::tm parts{};
  if (time == nullptr || ASN1_TIME_to_tm(time, &parts) != 1) {
    return OpenSslError(ErrorCode::kInvalidArgument, "malformed X.509 time");
  }
  namespace chrono = std::chrono;
  const chrono::year_month_day date{chrono::year{parts.tm_year + 1900},
                                    chrono::month{static_cast<unsigned>(parts.tm_mon + 1)},
                                    chrono::day{static_cast<unsigned>(parts.tm_mday)}};
  if (!date.ok()) return InvalidArgument("malformed X.509 time: no such date");
  if (parts.tm_hour < 0 || parts.tm_hour > 23 || parts.tm_min < 0 || parts.tm_min > 59 ||
      parts.tm_sec < 0 || parts.tm_sec > 60) {
    return InvalidArgument("malformed X.509 time: no such time of day");
  }
  return parts;
}

}  // namespace

Result<TimePoint> AsnTimeToTimePoint(const ASN1_TIME* time) {
  SIGNET_ASSIGN_OR_RETURN(const std::tm parts, AsnTimeParts(time));
  namespace chrono = std::chrono;
  const chrono::year_month_day date{chrono::year{parts.tm_year + 1900},
                                    chrono::month{static_cast<unsigned>(parts.tm_mon + 1)},
                                    chrono::day{static_cast<unsigned>(parts.tm_mday)}};
  // In seconds first (64-bit seconds cover every year X.509 can encode), then clamped to what
  // a nanosecond TimePoint holds.
  const chrono::sys_seconds seconds = chrono::sys_days(date) + chrono::hours(parts.tm_hour) +
                                      chrono::minutes(parts.tm_min) + chrono::seconds(parts.tm_sec);
  const auto lowest = chrono::ceil<chrono::seconds>(TimePoint::min());
  const auto highest = chrono::floor<chrono::seconds>(TimePoint::max());
  if (seconds < lowest) return TimePoint::min();
  if (seconds > highest) return TimePoint::max();
  return chrono::time_point_cast<TimePoint::duration>(seconds);
}

Result<std::string> AsnTimeToGeneralizedTime(const ASN1_TIME* time) {
  SIGNET_ASSIGN_OR_RETURN(const std::tm parts, AsnTimeParts(time));
  char text[32];
  const int n =
      std::snprintf(text, sizeof text, "%04d%02d%02d%02d%02d%02dZ", parts.tm_year + 1900,
                    parts.tm_mon + 1, parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec);
  if (n != 15) return InvalidArgument("malformed X.509 time: year out of range");
  return std::string(text, static_cast<size_t>(n));
}

Result<UniquePtr<EVP_PKEY>> ParseSpki(ByteView der, std::string_view what) {
  if (der.empty()) return InvalidArgument(std::string(what) + " is empty");
  const unsigned char* cursor = der.data();
  UniquePtr<EVP_PKEY> key(d2i_PUBKEY(nullptr, &cursor, static_cast<long>(der.size())));
  if (key == nullptr) {
    return OpenSslError(ErrorCode::kInvalidArgument,
                        std::string(what) + " is not a DER SubjectPublicKeyInfo");
  }
  if (cursor != der.data() + der.size()) {
    return InvalidArgument(std::string(what) + " has " +
                           std::to_string(der.data() + der.size() - cursor) +
                           " bytes after the DER SubjectPublicKeyInfo");
  }
  return key;
}

std::string Sha256Hex(ByteView data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr) != 1) {
    DrainOpenSslErrors();
    return "(unavailable)";
  }
  return HexEncode(ByteView(digest, length));
}

std::string QuoteForMessage(std::string_view text, size_t max_chars) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  size_t shown = text.size() < max_chars ? text.size() : max_chars;
  for (size_t i = 0; i < shown; ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0x0f];
    }
  }
  if (shown < text.size()) out += "...";
  return out;
}

}  // namespace signet::pki::internal
