// Fuzzes the decoders of untrusted text and bytes in common/: hex, base64, base64url and the DER
// OCTET STRING reader. Properties: nothing crashes; whatever decodes re-encodes to a string that
// decodes to the same bytes (canonical forms only), and DER round-trips exactly.
#include <cstdlib>
#include <string_view>

#include "common/der.h"
#include "common/encoding.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto b = signet::HexDecode(text); b.ok()) {
    if (*signet::HexDecode(signet::HexEncode(*b)) != *b) std::abort();
  }
  if (auto b = signet::Base64Decode(text); b.ok()) {
    // Decoding is strict, so the accepted text must be exactly the canonical encoding.
    if (signet::Base64Encode(*b) != text) std::abort();
  }
  if (auto b = signet::Base64UrlDecode(text); b.ok()) {
    if (*signet::Base64UrlDecode(signet::Base64UrlEncode(*b)) != *b) std::abort();
  }
  signet::ByteView bytes(data, size);
  if (auto b = signet::der::ParseOctetString(bytes); b.ok()) {
    signet::Bytes again = signet::der::OctetString(*b);
    if (again != signet::Bytes(bytes.begin(), bytes.end())) std::abort();
  }
  return 0;
}
