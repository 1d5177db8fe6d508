// SessionRunner: lends other parts of the PKCS#11 adapter (the secret sealer) a logged-in session
// of a Pkcs11KeyStore, with that store's recovery: an operation that reports a lost session,
// login or device is retried after the store repaired it (pkcs11-softhsm.md §4), exactly as the
// store's own operations are.
//
// Threads: RunWithSession may be called from many threads at once; each call gets a session of
// its own for the duration of `op`. `op` must not call RunWithSession again (the recovery gate is
// not recursive).
#pragma once

#include <functional>
#include <string_view>

#include "common/result.h"
#include "hsm/pkcs11/internal/ckr.h"
#include "hsm/pkcs11/internal/cryptoki.h"
#include "hsm/pkcs11/internal/module.h"

namespace signet::hsm::internal {

// How an operation reports a failed module call, so the runner can tell a recoverable failure
// (retry after recovery) from a final one.
struct CallFailure {
  CK_RV rv = CKR_OK;
  std::string_view function;  // must be a string literal

  Error Fail(CK_RV failed, std::string_view failed_function, std::string_view context,
             std::string_view advice = {}) {
    rv = failed;
    function = failed_function;
    return RvError(failed, failed_function, context, advice);
  }
};

class SessionRunner {
 public:
  virtual ~SessionRunner() = default;

  // The module the sessions belong to; valid as long as the runner.
  virtual const Module& module() const = 0;
  // "token 'x'", for messages.
  virtual const std::string& token_name() const = 0;

  // Runs `op` with a leased session (logged in as the user when leased). Errors `op` returns
  // without recording a module failure in its CallFailure are returned as they are.
  virtual Status RunWithSession(
      const std::function<Status(CK_SESSION_HANDLE, CallFailure&)>& op) = 0;
};

}  // namespace signet::hsm::internal
