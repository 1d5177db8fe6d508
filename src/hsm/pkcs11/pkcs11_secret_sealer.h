// Pkcs11SecretSealer: the SecretSealer (hsm/secret_sealer.h) backed by an AES-256 key that lives
// in the same PKCS#11 token as the code-signing keys and never leaves it.
//
// The key is a token object labelled "signet-secret-sealing" (by default): private, sensitive,
// non-extractable, usable for CKM_AES_GCM encryption and decryption only (no sign, verify, wrap,
// unwrap or derive). Open() finds it by label or generates it inside the token on first use, and
// refuses a key under that label whose attributes are weaker (e.g. an imported, extractable one).
//
// Sealed format (version 1), 1 + 12 + n + 16 bytes:
//   0x01 || IV (12 bytes, from C_GenerateRandom) || AES-256-GCM ciphertext (n bytes) || tag (16)
// with the caller's associated data as GCM AAD. IV length and tag length are enforced here,
// since SoftHSM accepts short IVs and tags without complaint (pkcs11-softhsm.md §8). With random
// 96-bit IVs one key may seal up to 2^32 secrets (NIST SP 800-38D §8.3); TOTP seeds are far fewer.
//
// Threads: Seal and Unseal may be called from many threads at once; each borrows one session of
// the key store and benefits from its recovery (lost sessions, logins, devices).
// Lifetime: the Pkcs11KeyStore passed to Open must outlive the sealer.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/bytes.h"
#include "common/result.h"
#include "hsm/key_store.h"
#include "hsm/pkcs11/pkcs11_key_store.h"
#include "hsm/secret_sealer.h"

namespace signet::hsm {

inline constexpr std::string_view kDefaultSealingKeyLabel = "signet-secret-sealing";

class Pkcs11SecretSealer final : public SecretSealer {
 public:
  // Finds the sealing key labelled `key_label` on the store's token, or generates it there.
  // FailedPrecondition if several keys carry the label, or the one found is not an AES-256 key
  // that is sensitive, non-extractable and allowed to encrypt and decrypt; Unavailable when the
  // module cannot be reached. Not safe against a second process creating the key at the same
  // moment (run it from the single composition root at start-up).
  static Result<std::unique_ptr<Pkcs11SecretSealer>> Open(
      Pkcs11KeyStore& store, std::string key_label = std::string(kDefaultSealingKeyLabel));

  // Deleted: holds a reference to the store; copies add nothing.
  Pkcs11SecretSealer(const Pkcs11SecretSealer&) = delete;
  Pkcs11SecretSealer& operator=(const Pkcs11SecretSealer&) = delete;

  // SecretSealer (see hsm/secret_sealer.h).
  Result<Bytes> Seal(ByteView plaintext, ByteView aad) override;
  Result<SecretBytes> Unseal(ByteView sealed, ByteView aad) override;

  // What the module reports about the sealing key (local, sensitive, extractable, ...), for
  // status output and tests.
  Result<KeyProtection> Protection();

  const std::string& key_label() const { return key_label_; }

 private:
  Pkcs11SecretSealer(Pkcs11KeyStore& store, std::string key_label)
      : store_(store), key_label_(std::move(key_label)) {}

  // Constant after construction.
  Pkcs11KeyStore& store_;
  const std::string key_label_;
};

}  // namespace signet::hsm
