#include "service/totp.h"

#include <string>

namespace signet::service {
namespace {

// RFC 3986 unreserved characters pass; everything else is %XX.
std::string PercentEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if ((u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') || u == '-' ||
        u == '.' || u == '_' || u == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0x0f];
    }
  }
  return out;
}

}  // namespace

std::string Base32Encode(ByteView data) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out;
  out.reserve((data.size() * 8 + 4) / 5);
  uint32_t buffer = 0;
  int bits = 0;
  for (uint8_t byte : data) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += kAlphabet[(buffer >> (bits - 5)) & 0x1f];
      bits -= 5;
    }
  }
  if (bits > 0) out += kAlphabet[(buffer << (5 - bits)) & 0x1f];
  return out;
}

SecretBytes TotpUri(std::string_view issuer, std::string_view account, const SecretBytes& seed,
                    const TotpParameters& parameters) {
  std::string secret = Base32Encode(seed.view());
  const std::string issuer_enc = PercentEncode(issuer);
  std::string uri = "otpauth://totp/" + issuer_enc + ":" + PercentEncode(account) +
                    "?secret=" + secret + "&issuer=" + issuer_enc +
                    "&algorithm=SHA1&digits=" + std::to_string(parameters.digits) +
                    "&period=" + std::to_string(parameters.period.count());
  SecretBytes result{std::string_view(uri)};
  SecureWipe(secret.data(), secret.size());
  SecureWipe(uri.data(), uri.size());
  return result;
}

}  // namespace signet::service
