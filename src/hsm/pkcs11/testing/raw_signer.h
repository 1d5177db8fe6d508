// RawSigner: the baseline the key-store benchmark compares against. It does only what the module
// needs for one signature: C_SignInit + C_Sign on a session of its own with a key handle found
// once; no pool, no recovery, no input checks, no DER conversion of ECDSA signatures. For
// PKCS#1 v1.5 it prepends the DigestInfo, as any caller of CKM_RSA_PKCS must.
//
// Threads: one RawSigner per thread (it owns one session). Its header has no PKCS#11 types, so
// bench/ does not include pkcs11.h.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "common/algorithms.h"
#include "common/bytes.h"
#include "common/result.h"
#include "hsm/key_store.h"

namespace signet::hsm::testing {

class RawSigner {
 public:
  // Loads the module (which must already be initialised in this process), opens a session on the
  // token `token_label`, logs in with `pin` (an existing login counts) and finds the private key.
  static Result<std::unique_ptr<RawSigner>> Open(const std::string& module_path,
                                                 std::string_view token_label,
                                                 const SecretBytes& pin, const HsmKeyId& key,
                                                 SignatureScheme scheme, HashAlgorithm hash);
  ~RawSigner();
  // Owns a session; a copy would close it twice.
  RawSigner(const RawSigner&) = delete;
  RawSigner& operator=(const RawSigner&) = delete;

  // Signs `digest` into `signature`, returning the signature's length. Internal on any module
  // error.
  Result<size_t> Sign(ByteView digest, std::span<uint8_t> signature);

 private:
  struct State;
  explicit RawSigner(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace signet::hsm::testing
