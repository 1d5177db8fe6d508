#include "service/admin_session.h"

#include <string>

namespace signet::service {

Status RecheckAdminSession(store::Store& store, std::string_view account_id,
                           std::string_view account_name, ByteView token_hash, TimePoint now) {
  if (token_hash.empty()) return OkStatus();
  const std::string name(account_name);
  Result<store::BearerTokenRecord> token = store.GetBearerToken(token_hash);
  if (!token.ok() && token.error().code() != ErrorCode::kNotFound) return token.error();
  if (!token.ok() || token->revoked_at || now >= token->expires_at ||
      token->account_id != account_id) {
    return Unauthenticated("the session of account '" + name +
                           "' ended while the request ran; log in again");
  }
  SIGNET_ASSIGN_OR_RETURN(store::AccountRecord current, store.GetAccountById(account_id));
  const bool locked = current.locked_until && now < *current.locked_until;
  if (current.state != store::AccountState::kActive || locked ||
      !current.roles.Has(store::Role::kAdmin) || current.must_change_password) {
    return PermissionDenied("account '" + name +
                            "' is no longer an active admin (changed while the request ran)");
  }
  return OkStatus();
}

}  // namespace signet::service
