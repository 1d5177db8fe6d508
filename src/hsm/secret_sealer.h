// SecretSealer: the port through which signet protects small secrets at rest (TOTP seeds) with a
// key that never leaves the crypto module (DESIGN.md §3 "secrets"). Sealing is authenticated
// encryption: the sealed form is useless without the module, and any change to it, or an attempt
// to open it under another record's associated data, is detected.
//
// The associated data (`aad`) binds a sealed secret to the record it belongs to (e.g. account id
// and purpose, "totp-seed:a_3f2a..."), so a sealed blob copied from one database row to another
// does not open. It is authenticated, not secret, and must be given again, byte for byte, to
// Unseal.
//
// Threads: every method may be called from many threads at once.
#pragma once

#include "common/bytes.h"
#include "common/result.h"

namespace signet::hsm {

class SecretSealer {
 public:
  virtual ~SecretSealer() = default;

  // Encrypts `plaintext` (at most 4096 bytes) bound to `aad`. Two seals of the same plaintext
  // differ (a fresh random nonce each time). The result is self-describing (it carries a format
  // version) and is what the caller stores. InvalidArgument for an empty or oversized plaintext;
  // Unavailable when the module cannot be reached.
  virtual Result<Bytes> Seal(ByteView plaintext, ByteView aad) = 0;

  // Decrypts what Seal returned for the same `aad`. DataLoss "sealed secret failed its integrity
  // check" if the blob was altered, the aad differs, or it was sealed under another key;
  // DataLoss also for a blob of unknown format or length. Unavailable when the module cannot be
  // reached.
  virtual Result<SecretBytes> Unseal(ByteView sealed, ByteView aad) = 0;
};

}  // namespace signet::hsm
