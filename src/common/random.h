// Cryptographically secure random bytes from the kernel (getrandom(2)), for PINs, identifiers and
// nonces that must not be guessable. Thread-safe.
#pragma once

#include <span>

#include "common/bytes.h"
#include "common/result.h"

namespace signet {

// Fills `out` completely; Unavailable if the kernel cannot deliver (practically never).
Status RandomBytes(std::span<uint8_t> out);

// A random secret of `size` bytes, base64url-encoded (so it is printable and safe in files).
Result<SecretBytes> RandomPrintableSecret(size_t size);

}  // namespace signet
