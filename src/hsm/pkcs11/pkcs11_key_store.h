// Pkcs11KeyStore: the KeyStore (hsm/key_store.h) for any PKCS#11 v2.40 module, SoftHSM2 by
// default. It loads the module with dlopen, initialises it, finds one token by label or serial,
// logs in as the user and keeps a small pool of sessions on that token. Keys it generates are
// token objects with CKA_SENSITIVE=TRUE and CKA_EXTRACTABLE=FALSE; nothing here reads, wraps or
// imports private key material.
//
// Threads: every method may be called from many threads at once. Each call borrows one session
// for itself (a session is never used by two threads: SoftHSM crashes if it is), so up to
// `max_sessions` calls run in the module in parallel and further callers wait for a session. Key
// handles are cached per CKA_ID, so a signature costs C_SignInit + C_Sign and nothing else.
//
// Recovery (pkcs11-softhsm.md §4): a lost session is replaced and the call retried; a lost login
// (CKR_USER_NOT_LOGGED_IN, or a stale key handle) is repaired by logging in again and looking the
// keys up again; a lost device or module (CKR_DEVICE_ERROR, CKR_DEVICE_REMOVED,
// CKR_TOKEN_NOT_PRESENT, CKR_DEVICE_MEMORY, CKR_CRYPTOKI_NOT_INITIALIZED) by closing every
// session, re-initialising the module if this store initialised it (or nobody has any more),
// finding the token again by label or serial and logging in, a few times with a short back-off.
// Only when that does not help does a call fail, with Unavailable.
//
// Process-wide state: PKCS#11 login state belongs to the process, not the session. Another
// component that logs out of the same token, or finalises the module, disturbs this store; it
// recovers as above. For the same reason Open() cannot detect a wrong PIN when the token is already
// logged in by someone else in this process (the module answers CKR_USER_ALREADY_LOGGED_IN without
// checking it). Do not fork a process that has opened a store, except to exec.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "common/bytes.h"
#include "common/result.h"
#include "hsm/key_store.h"

namespace signet::hsm {

namespace internal {
class SessionRunner;
}  // namespace internal
class Pkcs11SecretSealer;

struct Pkcs11Options {
  std::string module_path;   // e.g. /usr/lib/softhsm/libsofthsm2.so
  std::string token_label;   // select the token by label ...
  std::string token_serial;  // ... or by serial (exactly one must be non-empty)
  SecretBytes user_pin;
  size_t max_sessions = 16;  // upper bound of the session pool
};

class Pkcs11KeyStore final : public KeyStore {
 public:
  // Loads the module (dlopen by path), calls C_Initialize with CKF_OS_LOCKING_OK (if the module is
  // already initialised in this process, uses it but never finalises it), finds the token by label
  // or serial via C_GetSlotList(CK_TRUE) + C_GetTokenInfo, and logs in as the user.
  // Fails with InvalidArgument for bad options; NotFound if the module file or the token does not
  // exist (the message lists the tokens present); FailedPrecondition if the module cannot be
  // loaded or initialised, or the token has no user PIN; Unauthenticated for a wrong PIN;
  // PermissionDenied for a locked PIN; Unavailable for device errors. Messages never contain the
  // PIN.
  static Result<std::unique_ptr<Pkcs11KeyStore>> Open(Pkcs11Options options);

  // Closes the store's sessions, calls C_Finalize only if this store initialised the module, and
  // unloads it. No call may be in progress.
  ~Pkcs11KeyStore() override;

  // The store owns the module's initialisation and its sessions: a copy would close and finalise
  // them twice.
  Pkcs11KeyStore(const Pkcs11KeyStore&) = delete;
  Pkcs11KeyStore& operator=(const Pkcs11KeyStore&) = delete;

  // KeyStore (see hsm/key_store.h for the contract of each).
  Result<GeneratedKey> GenerateKey(KeyAlgorithm algorithm, std::string_view label) override;
  Result<Bytes> PublicKey(const HsmKeyId& id) override;
  Result<Bytes> Sign(const HsmKeyId& id, SignatureScheme scheme, HashAlgorithm hash,
                     ByteView input) override;
  Result<KeyProtection> Protection(const HsmKeyId& id) override;
  Status DestroyKey(const HsmKeyId& id) override;
  Result<TokenDescription> DescribeToken() override;
  Result<std::vector<TokenKey>> ListKeys() override;

 private:
  // The secret sealer borrows this store's sessions and recovery (internal/session_runner.h).
  friend class Pkcs11SecretSealer;
  internal::SessionRunner& runner();

  class Impl;
  explicit Pkcs11KeyStore(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;  // Constant after construction; Impl is itself thread-safe.
};

// Initialises a fresh token in the module at `module_path`: picks a slot whose token is not yet
// initialised, C_InitToken with `label` (blank-padded to 32 bytes), logs in as SO, C_InitPIN with
// `user_pin`, logs out. If this call initialised the module it finalises it again, so a later
// Open() in the same process starts from a clean module.
// Fails with InvalidArgument for an empty or over-long (> 32 bytes) label or an empty PIN;
// AlreadyExists if a token with this label exists; FailedPrecondition if no uninitialised token
// slot is free; NotFound/FailedPrecondition if the module cannot be loaded. With
// `only_manufacturer` set, the module's C_GetInfo manufacturerID must be exactly that before any
// slot is looked at (FailedPrecondition naming the one it has otherwise): `signet init` makes a
// SoftHSM token inside its data folder, and must never initialise a slot of a real HSM.
Status InitializeToken(const std::string& module_path, std::string_view label,
                       const SecretBytes& so_pin, const SecretBytes& user_pin,
                       std::string_view only_manufacturer = {});

}  // namespace signet::hsm
