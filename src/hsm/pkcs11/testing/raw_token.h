// RawToken: a test's own access to a PKCS#11 module and one of its tokens, independent of
// Pkcs11KeyStore, to check from outside what the store did (which objects exist, which attributes
// can be read) and to disturb it (close all sessions, log out, re-initialise the module).
//
// It dlopens the module itself; in the same process that is the same module instance the store
// uses. It never initialises or finalises the module except when a test asks for exactly that.
// Not thread-safe, except that its disturbing calls may race with a store's threads on purpose.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/result.h"
#include "hsm/pkcs11/internal/cryptoki.h"
#include "hsm/pkcs11/internal/module.h"

namespace signet::hsm::testing {

class RawToken {
 public:
  // Loads the module; the token must be initialised and the module initialised by someone else.
  static Result<std::unique_ptr<RawToken>> Open(const std::string& module_path, std::string label);

  const internal::Module& module() const { return module_; }

  // The token's slot, searched afresh: slot ids change when the module is re-initialised.
  Result<CK_SLOT_ID> Slot() const;
  // A new read-write session on the token (public or logged in, as the process is).
  Result<internal::Session> OpenSession() const;
  // Objects of `object_class` with CKA_ID `id`, as the session sees them.
  Result<std::vector<CK_OBJECT_HANDLE>> FindKeys(const internal::Session& session,
                                                 CK_OBJECT_CLASS object_class, ByteView id) const;

  // Disturbances: C_CloseAllSessions on the token's slot; C_Logout from a session of its own;
  // C_Finalize followed by C_Initialize; C_Finalize alone.
  CK_RV CloseAllSessions() const;
  CK_RV Logout() const;
  CK_RV FinalizeAndInitialize() const;
  CK_RV Finalize() const;

 private:
  RawToken(internal::Module module, std::string label)
      : module_(std::move(module)), label_(std::move(label)) {}

  internal::Module module_;
  std::string label_;
};

}  // namespace signet::hsm::testing
