// AuditSink: the port through which the service writes its audit trail (DESIGN.md §3 "audit
// invariant", "audit format"). Every use of a key, every refusal and every configuration change is
// one AuditEvent. Record is synchronous: it returns only once the event is durable, and a caller
// that is about to release a signature must not release it if Record failed ("no signature leaves
// the service unless the log entry that records it is durable").
//
// StoreAuditSink appends events to the Store's append-only audit_events table; the Merkle log of
// the next issue (audit/) will implement the same port. Events are canonical JSON (sorted keys, no
// insignificant whitespace), so the text that is stored is the text that will be hashed.
//
// Threads: AuditEvent is a plain value. AuditSink implementations must be safe to call from many
// threads at once (StoreAuditSink is, if its Store is).
#pragma once

#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "store/store.h"

namespace signet::service {

// How the actor proved who it is.
enum class AuthMethod {
  kPasswordTotp,  // "password+totp": a person with password and TOTP
  kMtls,          // "mtls": a service account by its TLS client certificate
  kLocalCli,      // "local-cli": the operator on the machine, through the signet command
  kSystem,        // "system": signet itself (start, stop, configuration at startup)
};
std::string_view AuthMethodName(AuthMethod method);

// Who did it. For kSystem events the ids and names may be empty.
struct Actor {
  std::string account_id;
  std::string account_name;
  store::RoleSet roles;
  AuthMethod auth_method = AuthMethod::kSystem;
  std::string client_address;  // e.g. "192.0.2.7:51234"; empty for local and system actors
};

// The closed set of audited actions. Their names (AuditActionName) are stable: they are stored
// and will be hashed into the log, so a name is never changed or reused.
enum class AuditAction {
  kLoginSuccess,
  kLoginFailure,
  kLockout,
  kUnlock,
  kTokenRevoke,
  kAuthorize,
  kAuthorizeRefused,
  kSign,
  kSignRefused,
  kKeyCreate,
  kKeyEnable,
  kKeyDisable,
  kKeyDestroy,
  kKeyCsr,
  kKeyImportCert,
  kGrant,
  kRevokeGrant,
  kPolicyChange,
  kAccountCreate,
  kAccountChange,
  kAccountDisable,
  kAccountEnable,
  kAccountResetTotp,
  kAccountRoles,
  kConfigStartup,
  kConfigChange,
  kServiceStart,
  kServiceStop,
};

// "login_success", "login_failure", "lockout", "unlock", "token_revoke", "authorize",
// "authorize_refused", "sign", "sign_refused", "key_create", "key_enable", "key_disable",
// "key_destroy", "key_csr", "key_import_cert", "grant", "revoke_grant", "policy_change",
// "account_create", "account_change", "account_disable", "account_enable", "account_reset_totp",
// "account_roles", "config_startup", "config_change", "service_start", "service_stop".
std::string_view AuditActionName(AuditAction action);
// Parses the names above; InvalidArgument for any other text.
Result<AuditAction> ParseAuditAction(std::string_view name);

// What was (or was to be) signed: recorded for authorize, sign and their refusals.
struct SignatureAudit {
  std::string key_id;
  std::string key_name;
  std::string algorithm;            // SignatureSchemeName(), e.g. "ecdsa"; empty for authorize
  std::string hash_algorithm;       // HashAlgorithmName(), e.g. "sha256"
  std::vector<std::string> hashes;  // every hash, lower-case hex, in request order
};

inline constexpr std::string_view kOutcomeSuccess = "success";

struct AuditEvent {
  TimePoint time;
  Actor actor;
  AuditAction action = AuditAction::kServiceStart;
  std::string object;                    // what was acted on: key name, account name, setting
  std::string outcome{kOutcomeSuccess};  // "success", or why it was refused or failed
  std::string request_id;
  std::optional<SignatureAudit> signature;
  std::map<std::string, std::string> details;  // anything else worth keeping, e.g. "error"

  bool succeeded() const { return outcome == kOutcomeSuccess; }
};

// The event as a JSON object:
//   {"action", "actor": {"account_id", "account_name", "auth_method", "client_address",
//    "roles": [names in the order admin, signer, auditor]}, "details": {...}, "object",
//   "outcome", "request_id", "signature": {"algorithm", "hash_algorithm", "hashes": [...],
//   "key_id", "key_name"} (only when set), "time": RFC 3339 UTC, "time_unix": seconds}.
// nlohmann's default object keeps keys sorted, so dump() of it is canonical.
nlohmann::json ToJson(const AuditEvent& event);

// dump() of ToJson: sorted keys, no whitespace, UTF-8. Bytes that are not valid UTF-8 in any
// string are replaced by U+FFFD rather than failing, so a client-supplied name can never make an
// event unrecordable. Never throws (allocation failure aside, which aborts as everywhere).
std::string ToCanonicalJson(const AuditEvent& event);

class AuditSink {
 public:
  virtual ~AuditSink() = default;

  // Makes `event` durable, then returns. On error the event may or may not have been kept; the
  // caller must treat it as not recorded (and so must not release a signature it describes).
  virtual Status Record(const AuditEvent& event) = 0;
};

// Appends each event to the Store (Store::AppendAuditEvent) as canonical JSON. Holds a reference
// to the store, which must outlive it.
class StoreAuditSink final : public AuditSink {
 public:
  explicit StoreAuditSink(store::Store& store) : store_(store) {}
  StoreAuditSink(const StoreAuditSink&) = delete;  // Holds a reference; copies add nothing.
  StoreAuditSink& operator=(const StoreAuditSink&) = delete;

  // The Store's error, with context, if the append fails.
  Status Record(const AuditEvent& event) override;

 private:
  store::Store& store_;  // constant after construction
};

}  // namespace signet::service
