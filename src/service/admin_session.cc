#include "service/admin_session.h"

#include <string>

namespace signet::service {

namespace {

Status RecheckToken(store::Store& store, std::string_view account_id, const std::string& name,
                    ByteView token_hash, TimePoint now) {
  Result<store::BearerTokenRecord> token = store.GetBearerToken(token_hash);
  if (!token.ok() && token.error().code() != ErrorCode::kNotFound) return token.error();
  if (!token.ok() || token->revoked_at || now >= token->expires_at ||
      token->account_id != account_id) {
    return Unauthenticated("the session of account '" + name +
                           "' ended while the request ran; log in again");
  }
  return OkStatus();
}

Status RecheckAccount(store::Store& store, std::string_view account_id, const std::string& name,
                      store::Role role, std::string_view what, TimePoint now) {
  Result<store::AccountRecord> current = store.GetAccountById(account_id);
  if (!current.ok() && current.error().code() == ErrorCode::kNotFound) {
    return PermissionDenied("account '" + name + "' was deleted while the request ran");
  }
  if (!current.ok()) return current.error();
  const bool locked = current->locked_until && now < *current->locked_until;
  if (current->state != store::AccountState::kActive || locked || !current->roles.Has(role) ||
      current->must_change_password) {
    return PermissionDenied("account '" + name + "' is no longer an active " + std::string(what) +
                            " (changed while the request ran)");
  }
  return OkStatus();
}

}  // namespace

Status RecheckAdminSession(store::Store& store, std::string_view account_id,
                           std::string_view account_name, ByteView token_hash, TimePoint now) {
  if (token_hash.empty()) return OkStatus();
  const std::string name(account_name);
  SIGNET_TRY(RecheckToken(store, account_id, name, token_hash, now));
  return RecheckAccount(store, account_id, name, store::Role::kAdmin, "admin", now);
}

Status RecheckSignerSession(store::Store& store, std::string_view account_id,
                            std::string_view account_name, ByteView token_hash, TimePoint now) {
  const std::string name(account_name);
  if (!token_hash.empty()) SIGNET_TRY(RecheckToken(store, account_id, name, token_hash, now));
  return RecheckAccount(store, account_id, name, store::Role::kSigner, "signer", now);
}

}  // namespace signet::service
