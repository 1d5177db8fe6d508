// Text encodings of bytes: hex (lower case), base64 (RFC 4648 §4, padded) and base64url (RFC 4648
// §5, unpadded as JOSE and the CSC API use it). Decoders reject any character outside the
// alphabet, bad padding and non-canonical trailing bits, and say where the input went wrong.
// All functions are pure and thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "common/bytes.h"
#include "common/result.h"

namespace signet {

std::string HexEncode(ByteView data);
Result<Bytes> HexDecode(std::string_view text);

std::string Base64Encode(ByteView data);
Result<Bytes> Base64Decode(std::string_view text);

std::string Base64UrlEncode(ByteView data);
// Accepts base64url with or without '=' padding.
Result<Bytes> Base64UrlDecode(std::string_view text);

}  // namespace signet
