#include "service/audit_sink.h"

#include <array>
#include <exception>
#include <nlohmann/json.hpp>
#include <utility>

namespace signet::service {
namespace {

struct ActionEntry {
  AuditAction action;
  std::string_view name;
};

// One table for both directions, so a name cannot be added to one and forgotten in the other.
constexpr std::array kActions = {
    ActionEntry{AuditAction::kLoginSuccess, "login_success"},
    ActionEntry{AuditAction::kLoginFailure, "login_failure"},
    ActionEntry{AuditAction::kLockout, "lockout"},
    ActionEntry{AuditAction::kUnlock, "unlock"},
    ActionEntry{AuditAction::kTokenRevoke, "token_revoke"},
    ActionEntry{AuditAction::kAuthorize, "authorize"},
    ActionEntry{AuditAction::kAuthorizeRefused, "authorize_refused"},
    ActionEntry{AuditAction::kSign, "sign"},
    ActionEntry{AuditAction::kSignRefused, "sign_refused"},
    ActionEntry{AuditAction::kKeyCreate, "key_create"},
    ActionEntry{AuditAction::kKeyEnable, "key_enable"},
    ActionEntry{AuditAction::kKeyDisable, "key_disable"},
    ActionEntry{AuditAction::kKeyDestroy, "key_destroy"},
    ActionEntry{AuditAction::kKeyCsr, "key_csr"},
    ActionEntry{AuditAction::kKeyImportCert, "key_import_cert"},
    ActionEntry{AuditAction::kGrant, "grant"},
    ActionEntry{AuditAction::kRevokeGrant, "revoke_grant"},
    ActionEntry{AuditAction::kPolicyChange, "policy_change"},
    ActionEntry{AuditAction::kAccountCreate, "account_create"},
    ActionEntry{AuditAction::kAccountChange, "account_change"},
    ActionEntry{AuditAction::kAccountDisable, "account_disable"},
    ActionEntry{AuditAction::kAccountEnable, "account_enable"},
    ActionEntry{AuditAction::kAccountResetTotp, "account_reset_totp"},
    ActionEntry{AuditAction::kAccountRoles, "account_roles"},
    ActionEntry{AuditAction::kConfigStartup, "config_startup"},
    ActionEntry{AuditAction::kConfigChange, "config_change"},
    ActionEntry{AuditAction::kServiceStart, "service_start"},
    ActionEntry{AuditAction::kServiceStop, "service_stop"},
};

}  // namespace

std::string_view AuthMethodName(AuthMethod method) {
  switch (method) {
    case AuthMethod::kPasswordTotp:
      return "password+totp";
    case AuthMethod::kMtls:
      return "mtls";
    case AuthMethod::kLocalCli:
      return "local-cli";
    case AuthMethod::kSystem:
      return "system";
  }
  return "unknown";
}

std::string_view AuditActionName(AuditAction action) {
  for (const ActionEntry& e : kActions) {
    if (e.action == action) return e.name;
  }
  return "unknown";
}

Result<AuditAction> ParseAuditAction(std::string_view name) {
  for (const ActionEntry& e : kActions) {
    if (e.name == name) return e.action;
  }
  return InvalidArgument("unknown audit action '" + std::string(name) + "'");
}

nlohmann::json ToJson(const AuditEvent& event) {
  nlohmann::json roles = nlohmann::json::array();
  for (store::Role r : {store::Role::kAdmin, store::Role::kSigner, store::Role::kAuditor}) {
    if (event.actor.roles.Has(r)) roles.push_back(std::string(store::RoleName(r)));
  }
  nlohmann::json j = {
      {"time", FormatRfc3339(event.time)},
      {"time_unix", ToUnixSeconds(event.time)},
      {"action", std::string(AuditActionName(event.action))},
      {"actor",
       {{"account_id", event.actor.account_id},
        {"account_name", event.actor.account_name},
        {"auth_method", std::string(AuthMethodName(event.actor.auth_method))},
        {"client_address", event.actor.client_address},
        {"roles", std::move(roles)}}},
      {"object", event.object},
      {"outcome", event.outcome},
      {"request_id", event.request_id},
      {"details", nlohmann::json::object()},
  };
  for (const auto& [k, v] : event.details) j["details"][k] = v;
  if (event.signature.has_value()) {
    const SignatureAudit& s = *event.signature;
    j["signature"] = {{"key_id", s.key_id},
                      {"key_name", s.key_name},
                      {"algorithm", s.algorithm},
                      {"hash_algorithm", s.hash_algorithm},
                      {"hashes", s.hashes}};
  }
  return j;
}

std::string ToCanonicalJson(const AuditEvent& event) {
  return ToJson(event).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Status StoreAuditSink::Record(const AuditEvent& event) {
  std::string json;
  try {
    json = ToCanonicalJson(event);
  } catch (const std::exception& e) {
    // nlohmann reports errors as exceptions; none is expected with the replace handler, but none
    // may cross the component boundary either.
    return InternalError(std::string("cannot serialise audit event: ") + e.what());
  }
  auto seq = store_.AppendAuditEvent(event.time, AuditActionName(event.action), json);
  if (!seq.ok()) {
    return seq.error().WithContext("cannot record audit event '" +
                                   std::string(AuditActionName(event.action)) + "'");
  }
  return OkStatus();
}

}  // namespace signet::service
