// AuditSink: the port through which the service writes its audit trail (DESIGN.md §3 "audit
// invariant", "audit format"). Every use of a key, every refusal and every configuration change is
// one AuditEvent. Record is synchronous: it returns only once the event is durable, and a caller
// that is about to release a signature must not release it if Record failed ("no signature leaves
// the service unless the log entry that records it is durable").
//
// LogAuditSink appends events to the Merkle log (audit/, Store "the audit log") as canonical JSON
// entries (sorted keys, no insignificant whitespace), so the text that is stored is the text that
// is hashed.
//
// Threads: AuditEvent is a plain value. AuditSink implementations must be safe to call from many
// threads at once (LogAuditSink is, if its append function is).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
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
  kNone,          // "none": no one proved anything (a bearer token no account holds, a login
                  // refused before any credential was checked)
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

// Who is calling, as the transport authenticated it (bearer token or mTLS), and the request id the
// transport assigned, for the audit trail. An Actor alone converts to a Caller without a request
// id: the local CLI and the system act outside any request.
struct Caller {
  Caller() = default;
  Caller(Actor a, std::string id = {})  // NOLINT(google-explicit-constructor): see above
      : actor(std::move(a)), request_id(std::move(id)) {}
  Actor actor;
  std::string request_id;
  // The SHA-256 of the bearer token the call came with (as the store keeps it); empty for the
  // local CLI and the system. Admin changes re-check that session inside their transaction
  // (RecheckAdminSession), so an admin demoted or logged out mid-request changes nothing.
  Bytes session_token_hash = {};
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
  kLogCheckpoint,
  kClockStep,
};

// "login_success", "login_failure", "lockout", "unlock", "token_revoke", "authorize",
// "authorize_refused", "sign", "sign_refused", "key_create", "key_enable", "key_disable",
// "key_destroy", "key_csr", "key_import_cert", "grant", "revoke_grant", "policy_change",
// "account_create", "account_change", "account_disable", "account_enable", "account_reset_totp",
// "account_roles", "config_startup", "config_change", "service_start", "service_stop",
// "log_checkpoint", "clock_step".
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

// A change to the store that an audit event records (a key disabled, a grant given, an account
// created), made through the service's Store, which must be the store the sink's log is in. It
// may add entries to `details` (how many tokens it revoked, the roles it replaced); they are
// recorded with the event. It may run more than once (a retried group commit), each time on a
// store where none of its earlier attempts left a trace, so it must do nothing outside the store
// and must not record audit events itself.
using AuditDetails = std::map<std::string, std::string>;

// Whether an error a change returned is the change's answer (the request is wrong, or the store's
// state forbids it: InvalidArgument, NotFound, AlreadyExists, FailedPrecondition,
// PermissionDenied, Unauthenticated) rather than a failure of the store or the log.
bool IsRefusal(const Error& error);
using AuditedChange = std::function<Status(AuditDetails& details)>;

// A condition an event is recorded under (the signer may still sign with the key): it reads the
// service's Store, which must be the store the sink's log is in. It may also write what must be
// stored exactly when the event is (an authorization's activation); unlike an AuditedChange it
// adds no details to the event. Like a change, it may run more than once, inside the transaction
// that appends the event, and what it wrote is undone with a failed append.
using AuditCheck = std::function<Status()>;

class AuditSink {
 public:
  virtual ~AuditSink() = default;

  // Makes `event` durable, then returns. On error the event may or may not have been kept; the
  // caller must treat it as not recorded (and so must not release a signature it describes).
  virtual Status Record(const AuditEvent& event) = 0;

  // Makes `change` and records `event` (with the details the change added) together: both are
  // durable when this returns OK, and neither happened when it returns an error, whatever the
  // error and whenever the process dies (DESIGN.md §3: no configuration change the log does not
  // show). A refusal by the change (IsRefusal) is returned as the change gave it, so the caller
  // can explain it; any other error says the event could not be recorded. InvalidArgument for an
  // event with a signature (changes are configuration, never signatures).
  virtual Status RecordChange(const AuditEvent& event, const AuditedChange& change) = 0;

  // Records `event` only if `check` passes inside the transaction that appends it, so no change
  // the log records can fall between the check and the event (a key disabled while the HSM
  // signed is either before the `sign` entry, and refuses it, or after it). Durable when this
  // returns OK, like Record; the event may carry a signature. A refusal by the check (IsRefusal)
  // is returned as the check gave it, with nothing recorded; any other error says the event
  // could not be recorded.
  virtual Status RecordIf(const AuditEvent& event, const AuditCheck& check) = 0;
};

// Appends entries to the Merkle log consecutively, all or nothing, and returns the first index
// once they are durable: audit::Sequencer::Append (concurrent calls grouped into one transaction)
// in the service, Store::AppendLogEntries (one transaction per call) in one-shot CLI commands.
using LogAppendFn = std::function<Result<int64_t>(std::vector<store::LogEntryAppend>)>;

// Appends straight to the store, one transaction per event. `store` must outlive the function.
LogAppendFn DirectLogAppender(store::Store& store);

// The log entries that record `event` (DESIGN.md "audit format"): ToJson(event) plus "index", the
// leaf index the store assigns, rendered canonically. One entry normally; a signature event whose
// hashes would not fit in store::kMaxLogEntrySize is split into consecutive entries that each
// carry a slice of the hashes and "signature": {"hashes_part": i (1-based), "hashes_parts": n,
// "hashes_total": all}. Strings of the object, the details, the actor's name and the request id
// longer than kMaxAuditFieldSize bytes are cut there (with a note of the full length), so no
// client-supplied text can make an event too large to record. The query columns are the key
// (signature key_id, else details["key_id"]) and the actor's account id.
std::vector<store::LogEntryAppend> ToLogEntries(const AuditEvent& event);
inline constexpr size_t kMaxAuditFieldSize = 2048;

// The entry recording a signed checkpoint (action "log_checkpoint", actor "system", object the
// origin, details {"checkpoint": the signed note, "root": base64, "size": decimal}) at `index`;
// what audit::Integrator's render_checkpoint_entry is given.
Result<std::string> RenderCheckpointEntry(int64_t index, const store::LogCheckpointRow& checkpoint,
                                          std::string_view origin);

// Records each event in the Merkle log through `append`. The event is durable when Record returns
// OK (the append function returns only then).
class LogAuditSink final : public AuditSink {
 public:
  explicit LogAuditSink(LogAppendFn append) : append_(std::move(append)) {}

  // The append's error, with context, if the event cannot be recorded.
  Status Record(const AuditEvent& event) override;
  // The change travels with the event's log entry (store::LogEntryAppend::apply) and commits in
  // the append's transaction; the entry is rendered after it, with the details it added.
  Status RecordChange(const AuditEvent& event, const AuditedChange& change) override;
  Status RecordIf(const AuditEvent& event, const AuditCheck& check) override;

 private:
  const LogAppendFn append_;
};

}  // namespace signet::service
