#pragma once

#include <string_view>

#include "common/bytes.h"
#include "common/clock.h"
#include "common/result.h"
#include "store/store.h"

namespace signet::service {

// An admin change is allowed on the strength of the session that requested it, read when the
// request began; the change may commit seconds later (an RSA key generation). Called inside the
// change's transaction, this re-reads that session and its account: OK if the bearer token (its
// SHA-256, as the store keeps it) is still live for `account_id` and the account is still an
// active, unlocked admin that need not change its password; Unauthenticated if the session ended,
// PermissionDenied if the account changed. An empty `token_hash` (the local CLI, the system) has
// no session to re-check and passes.
Status RecheckAdminSession(store::Store& store, std::string_view account_id,
                           std::string_view account_name, ByteView token_hash, TimePoint now);

// The same for a signer, called inside the transaction that records a signature before it is
// released (the HSM may have taken seconds): the session, if `token_hash` is not empty, as above;
// and the account, always: active, unlocked, with the signer role, no password change pending.
Status RecheckSignerSession(store::Store& store, std::string_view account_id,
                            std::string_view account_name, ByteView token_hash, TimePoint now);

}  // namespace signet::service
