// Fuzzes the decoders of untrusted text and bytes in common/: hex, base64, base64url and the DER
// OCTET STRING reader, and the text checks of common/text.h. Properties: nothing crashes; whatever
// decodes re-encodes to a string that decodes to the same bytes (canonical forms only), and DER
// round-trips exactly; TerminalSafe leaves no control character but the newline (C0, DEL, C1 in
// UTF-8), and keeps text without them unchanged; JsonNestsDeeperThan is monotonic in its bound.
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/der.h"
#include "common/encoding.h"
#include "common/text.h"

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
  const std::string safe = signet::TerminalSafe(text, size + 1);
  bool had_control = false;
  for (size_t i = 0; i < safe.size(); ++i) {
    const auto c = static_cast<unsigned char>(safe[i]);
    if ((c < 0x20 && c != '\n') || c == 0x7f) std::abort();
    if (c == 0xc2 && i + 1 < safe.size() && static_cast<unsigned char>(safe[i + 1]) >= 0x80 &&
        static_cast<unsigned char>(safe[i + 1]) <= 0x9f) {
      std::abort();
    }
  }
  for (size_t i = 0; i < size && !had_control; ++i) {
    const auto c = static_cast<unsigned char>(data[i]);
    had_control = (c < 0x20 && c != '\n') || c == 0x7f ||
                  (c == 0xc2 && i + 1 < size && data[i + 1] >= 0x80 && data[i + 1] <= 0x9f);
  }
  if (!had_control && safe != text) std::abort();
  if (signet::JsonNestsDeeperThan(text, 3) && !signet::JsonNestsDeeperThan(text, 2)) std::abort();
  return 0;
}
