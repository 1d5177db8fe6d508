// AccountService: accounts, roles and authentication for the signing service (CSBR NCSSR 2.2.1.5
// lockout, MFA for people; DESIGN.md §3 "activation", "secrets"). Knows nothing of HTTP: the
// server authenticates a request with Authenticate() and passes the Principal it returns to the
// use cases, which check roles themselves.
//
// Accounts are people (password + TOTP, both required) or services (a TLS client certificate,
// named by the SHA-256 of its DER). Roles are admin, signer and auditor; an account may hold
// several and holds none unless given (least privilege).
//
// Secrets: passwords are kept only as Argon2id hashes (PasswordHasher), TOTP seeds only sealed by
// the HSM (hsm::SecretSealer, associated data binding the seed to its account), bearer tokens only
// as their SHA-256. One-time passwords, enrolments and tokens are returned once, in SecretBytes.
// No error message contains a secret.
//
// Login policy (LoginWithPassword):
//  - Five consecutive failures (wrong password, wrong or replayed code) lock the account for
//    15 minutes (both configurable). While locked, even correct credentials are refused. A
//    success resets the count. Attempts made while locked are not counted and do not extend the
//    lock. An admin can Unlock early.
//  - Each TOTP code is accepted at most once (the store's compare-and-set on the last used step),
//    also when two logins race; codes one step early or late are accepted.
//  - No account enumeration: an unknown name, a service account's name, a wrong password and a
//    wrong code all return the same Unauthenticated error with the same message, after the same
//    Argon2id work. A locked or disabled account is named as such ("account locked until <time>",
//    PermissionDenied) only to a caller who presented the correct password AND a correct, unused
//    code, i.e. the account's owner; anyone else sees the generic error, so neither a lock nor
//    the disabled state reveals that a name exists, and a lock gives no password oracle.
//  - The internal reason for each outcome goes to the event sink (see AccountEvent), never to the
//    caller.
//
// Events: every outcome of every operation (successes and each kind of failure, with the reason)
// is passed to the AccountEventSink given at construction, synchronously, before the operation
// returns. If the sink fails, the operation fails with the sink's error; a login whose success
// cannot be recorded revokes the token it just issued. Authenticate() reports only failures (it
// runs for every request). The sink is meant to be an adapter onto service/audit_sink.h.
// One exception bounds what anonymous requests can write: refused bearer tokens and logins
// refused before any credential, beyond a per-address budget, reach the sink as a count once
// their minute is over (AccountServiceOptions::anonymous_rejections_per_minute,
// RejectionThrottle, LogHeldRejections).
//
// Threads: safe to call from many threads if the ports are (the adapters are).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/bytes.h"
#include "common/clock.h"
#include "common/result.h"
#include "hsm/secret_sealer.h"
#include "service/audit_sink.h"
#include "service/password_hasher.h"
#include "service/rejection_throttle.h"
#include "service/totp.h"
#include "store/store.h"

namespace signet::service {

using store::AccountKind;
using store::AccountState;
using store::Role;
using store::RoleSet;

// An authenticated account, as Authenticate and the logins return it.
struct Principal {
  std::string account_id;
  std::string name;
  AccountKind kind = AccountKind::kPerson;
  RoleSet roles;
  // A person who logged in with a one-time password must change it before anything else; the
  // admin operations refuse such a principal.
  bool must_change_password = false;
  // The SHA-256 of the bearer token this principal authenticated with (as the store keeps it);
  // empty for the local CLI and the system. Lets a password change end the account's other
  // sessions but not the one making the change.
  Bytes token_hash = {};

  bool Has(Role role) const { return roles.Has(role); }
};

// Where a call came from: the peer's address (e.g. "192.0.2.7:51234") and the request id the
// transport assigned, for the audit trail; and the SHA-256 (hex) of the TLS client certificate the
// transport verified, empty without one, which Authenticate checks for service accounts. All
// empty for the local CLI and the system. Views: valid for the duration of the call they are
// passed to, never kept.
struct CallOrigin {
  std::string_view client_address = {};
  std::string_view request_id = {};
  std::string_view client_cert_sha256 = {};
};

// An authenticated principal making one call: what the operations that change accounts take, so
// that their events carry the call's origin. A Principal alone converts to one with an empty
// origin (the local CLI, the system).
struct AccountCaller {
  AccountCaller(Principal p, CallOrigin o = {})  // NOLINT(google-explicit-constructor): see above
      : principal(std::move(p)), client_address(o.client_address), request_id(o.request_id) {}
  Principal principal;
  std::string client_address;
  std::string request_id;
};

// signet acting on its own behalf (creating the embedded default's bootstrap admin from the
// composition root): account id "system", admin role. Never returned by Authenticate.
Principal SystemPrincipal();

// What is shown about an account: everything but its secrets.
struct AccountInfo {
  std::string id;
  std::string name;
  AccountKind kind = AccountKind::kPerson;
  RoleSet roles;
  AccountState state = AccountState::kActive;
  bool totp_enrolled = false;
  bool must_change_password = false;
  int64_t failed_attempts = 0;
  std::optional<TimePoint> locked_until;  // only while the lock is in force
  std::optional<std::string> mtls_fingerprint;
  TimePoint created_at;
  TimePoint updated_at;
};

// An authenticator-app enrolment: the seed as base32 and as an otpauth:// URI (for a QR code).
struct TotpEnrolment {
  SecretBytes secret_base32;
  SecretBytes uri;
};

struct NewPerson {
  AccountInfo account;
  SecretBytes one_time_password;  // must be changed at first login
  TotpEnrolment totp;
};

// A bearer token, returned once; the store keeps only its SHA-256.
struct BearerToken {
  SecretBytes token;  // base64url of 32 random bytes (43 characters)
  TimePoint expires_at;
  Principal principal;
};

// Why an operation ended as it did; stable names (AccountReasonName) for audit records.
enum class AccountReason {
  kSuccess,              // "success"
  kUnknownAccount,       // "unknown_account": no account has that name
  kNotAPerson,           // "not_a_person": password login to a service account
  kWrongPassword,        // "wrong_password"
  kWrongTotp,            // "wrong_totp": no code in the accepted window matches
  kTotpReplayed,         // "totp_replayed": the code's step was already used
  kTotpNotEnrolled,      // "totp_not_enrolled"
  kAccountLocked,        // "account_locked"
  kAccountDisabled,      // "account_disabled"
  kUnknownCertificate,   // "unknown_certificate"
  kUnknownToken,         // "unknown_token"
  kTokenExpired,         // "token_expired"
  kTokenRevoked,         // "token_revoked"
  kCertificateMismatch,  // "certificate_mismatch": a service account's token without its
                         // client certificate on the connection
  kPermissionDenied,     // "permission_denied": the actor lacks the role
  kInvalidArgument,      // "invalid_argument": bad name, weak password, ...
  kError,                // "error": a dependency failed (store, HSM); see details["error"]
  kSeveral,              // "several": an entry counting rejections of different reasons
                         // (details["reasons"]; RejectionThrottle)
};
std::string_view AccountReasonName(AccountReason reason);

// The audited actions; names match service/audit_sink.h's AuditAction where one exists.
enum class AccountAction {
  kLoginSuccess,      // "login_success"
  kLoginFailure,      // "login_failure"
  kLockout,           // "lockout": this failure locked the account
  kUnlock,            // "unlock"
  kTokenRevoke,       // "token_revoke"
  kTokenRejected,     // "token_rejected": Authenticate refused a bearer token
  kAccountCreate,     // "account_create"
  kAccountChange,     // "account_change": password changed
  kAccountDisable,    // "account_disable"
  kAccountEnable,     // "account_enable"
  kAccountResetTotp,  // "account_reset_totp"
  kAccountRoles,      // "account_roles"
};
std::string_view AccountActionName(AccountAction action);

struct AccountEvent {
  TimePoint time;
  AccountAction action = AccountAction::kLoginFailure;
  AccountReason reason = AccountReason::kSuccess;
  // Who acted: for logins the account that tried (empty id if the name is unknown; the name as
  // given), for admin operations the admin.
  std::string actor_id;
  std::string actor_name;
  RoleSet actor_roles;
  std::string auth_method;  // "password+totp", "mtls", "bearer", "system"
  std::string client_address;
  std::string request_id;  // the transport's id for the request, if any
  std::string object;      // the account acted on, by name
  std::optional<TimePoint> locked_until;
  std::map<std::string, std::string> details;  // e.g. "roles", "error"; never secrets

  bool succeeded() const { return reason == AccountReason::kSuccess; }
};

// Records an event; with a change (non-empty AuditedChange), makes the change and records the
// event together or not at all, adding the details the change reports (AuditSink::RecordChange).
using AccountEventSink = std::function<Status(const AccountEvent&, const AuditedChange& change)>;

struct AccountServiceOptions {
  std::chrono::seconds token_lifetime{15 * 60};
  int64_t lockout_threshold = 5;  // NCSSR 2.2.1.5: at most five attempts
  std::chrono::seconds lockout_duration{15 * 60};
  size_t min_password_length = 12;
  size_t max_password_length = 1024;
  std::string totp_issuer = "signet";
  // Per client address and minute, how many bearer tokens that match no token, and how many
  // logins refused before any credential could be checked, are logged one by one; the rest of
  // the minute are logged as a count (RejectionThrottle). 0: every one is logged.
  int64_t anonymous_rejections_per_minute = 60;
};

class AccountService {
 public:
  // The references must outlive the service. `sink` may be empty (events are then dropped).
  AccountService(store::Store& store, hsm::SecretSealer& sealer, PasswordHasher& hasher, Totp& totp,
                 const Clock& clock, AccountServiceOptions options = {},
                 AccountEventSink sink = {});
  AccountService(const AccountService&) = delete;  // Holds references; copies add nothing.
  AccountService& operator=(const AccountService&) = delete;

  // Account names: 1 to 64 characters of A-Z a-z 0-9 . _ @ -, starting with a letter or digit.
  static Status ValidateAccountName(std::string_view name);
  // SHA-256 fingerprints: 64 lower-case hex digits.
  static Status ValidateFingerprint(std::string_view fingerprint);

  // ---- administration (actor must hold admin and not be due a password change) ----

  // A person with a random one-time password (must_change_password set) and a fresh TOTP seed.
  // InvalidArgument for a bad name; AlreadyExists if the name is taken; PermissionDenied.
  Result<NewPerson> CreatePerson(const AccountCaller& actor, std::string_view name, RoleSet roles);
  // A service account identified by its client certificate's SHA-256 (hex). No password.
  // AlreadyExists if the name or the certificate is taken.
  Result<AccountInfo> CreateService(const AccountCaller& actor, std::string_view name,
                                    RoleSet roles, std::string_view mtls_fingerprint);
  // Disabling also revokes the account's bearer tokens. FailedPrecondition if already in that
  // state, or when it would leave no active admin.
  Result<AccountInfo> Disable(const AccountCaller& actor, std::string_view name);
  Result<AccountInfo> Enable(const AccountCaller& actor, std::string_view name);
  // Lifts a lock and resets the failure count.
  Result<AccountInfo> Unlock(const AccountCaller& actor, std::string_view name);
  // A new TOTP seed for a person (the old one stops working). InvalidArgument for a service.
  // `account`, if given, receives the account as it is after the change (read in the same call,
  // so that a caller never loses a secret that was committed to a failed read after it).
  Result<TotpEnrolment> ResetTotp(const AccountCaller& actor, std::string_view name,
                                  AccountInfo* account = nullptr);
  // A new one-time password for a person who lost theirs (the old one stops working; it must be
  // changed at the next login) and the end of the account's sessions (but the caller's own, when
  // it resets its own). Recorded as account_change with details change=password_reset.
  // InvalidArgument for a service account. `account` as for ResetTotp.
  Result<SecretBytes> ResetPassword(const AccountCaller& actor, std::string_view name,
                                    AccountInfo* account = nullptr);
  // FailedPrecondition when it would leave no active admin.
  Result<AccountInfo> SetRoles(const AccountCaller& actor, std::string_view name, RoleSet roles);
  // NotFound for an unknown name (admins and auditors only: this does reveal names).
  Result<AccountInfo> Get(const Principal& actor, std::string_view name);
  // Every account, by name. Admin or auditor.
  Result<std::vector<AccountInfo>> List(const Principal& actor);
  // The account of `who` itself (any role; for "who am I"). NotFound if it no longer exists.
  Result<AccountInfo> GetSelf(const Principal& who);

  // ---- authentication ----

  // Person login with both factors. Unauthenticated "the account name, password or one-time
  // code is wrong" for every failure (see the header comment); PermissionDenied "account '<n>'
  // is locked until <RFC 3339>" / "account '<n>' is disabled" only with both factors correct.
  Result<BearerToken> LoginWithPassword(std::string_view name, const SecretBytes& password,
                                        std::string_view totp_code, CallOrigin origin);
  // The second authentication a person gives for each activation (CSC credentials/authorize,
  // before a SAD is issued): CSBR 6.2.7.3 asks for multi-factor authentication for every use of a
  // Signing Service key, and a bearer token alone is one factor that lives for minutes. `who` is
  // the bearer token's principal; `password` is its password (CSC "PIN") and `totp_code` a fresh
  // code (CSC "OTP"), under the login policy above: each code accepted once (a code already used
  // at login or at an earlier activation is refused), failures counted towards the lockout, a
  // success resets the count. Events: login_success / login_failure / lockout with
  // details["purpose"] = "activation". Unauthenticated "the PIN (password) or one-time code is
  // wrong" for any wrong factor; PermissionDenied for a locked or disabled account (only with
  // both factors correct, as at login); InvalidArgument for a service account, whose
  // activations rest on its mTLS login (CSBR "server-to-server").
  Status VerifyActivationFactors(const Principal& who, const SecretBytes& password,
                                 std::string_view totp_code, CallOrigin origin);
  // Logs the held counts of anonymous rejections (see AccountServiceOptions) whose minute has
  // ended by `now`: one login_failure or token_rejected entry per client address, with the count
  // in details["not_logged_one_by_one"] and the first and last time. Housekeeping calls it every
  // minute. Returns how many entries it logged.
  Result<int64_t> LogHeldRejections(TimePoint now);

  // Records a login attempt the transport refused before any credential could be checked (no
  // credentials, malformed HTTP Basic, no code with a password, an unsupported scheme): a
  // login_failure with reason invalid_argument and `why` in details["error"], so every
  // authentication attempt is in the log (beyond the per-address budget, as a count). `name` is the
  // account name if one could be read; if it names no account it is recorded only as a digest (see
  // LoginAttempt). Not counted towards the lockout (no credential was tried). Returns the sink's
  // error, if any.
  Status RecordRefusedLogin(std::string_view why, CallOrigin origin, std::string_view name = {});
  // For a change the caller refused before calling the method that would make it (the management
  // API's check of the request body): records `action` on account `object` as refused and
  // returns the error. The role comes first, as in the methods: for an actor who may not
  // administer accounts, the refusal recorded and returned is that, whatever `error` says.
  Error RefusedChange(const AccountCaller& actor, AccountAction action, std::string_view object,
                      Error error);
  // The same for a change of the caller's own account (auth/password: a body without its
  // fields), which needs no role: recorded as account_change on the caller, refused with `error`.
  Error RefusedOwnChange(const AccountCaller& actor, Error error);
  // Server-to-server login: `fingerprint` is the SHA-256 (hex) of the client certificate the TLS
  // layer verified. Unauthenticated for an unknown certificate; PermissionDenied for a disabled
  // service account (the certificate already proved who it is, so naming the state leaks
  // nothing).
  Result<BearerToken> LoginWithClientCertificate(std::string_view fingerprint, CallOrigin origin);
  // The account behind a bearer token. Unauthenticated "the bearer token is not valid" for an
  // unknown, expired or revoked token, or one whose account is disabled or locked. A service
  // account's token is bound to its client certificate (as RFC 8705 binds tokens): it works only
  // when `origin.client_cert_sha256` is that account's fingerprint, so every use of it is
  // server-to-server authenticated, not just the login (the same generic error otherwise; the
  // event says certificate_mismatch). The rest of `origin` only goes into the event of a
  // refusal.
  Result<Principal> Authenticate(std::string_view bearer_token, CallOrigin origin = {});
  // For auth/revoke naming a token other than the one the caller authenticated with: true if it
  // is a live (known, unexpired, unrevoked) token issued to `caller`. Otherwise false, whatever
  // the reason (unknown, expired, revoked, another account's), so that the answer tells nobody
  // whether someone else's token is live; each such case is recorded as a token rejection with
  // the caller as actor (and the owner's id as object for another account's token). Naming a
  // token is not a use of it: no certificate binding is checked.
  Result<bool> OwnsLiveToken(const Principal& caller, std::string_view bearer_token,
                             CallOrigin origin = {});
  // Logout: revokes the token (repeating succeeds). Unauthenticated for an unknown token.
  Status RevokeToken(std::string_view bearer_token, CallOrigin origin = {});
  // Changes the principal's own password, clears must_change_password and revokes the account's
  // other bearer tokens (all but `who.principal.token_hash`). Unauthenticated (and
  // counted as a failed attempt) if `old_password` is wrong; InvalidArgument if the new one is
  // shorter than the minimum, longer than the maximum, equal to the old one or to the name.
  // IsWrongCurrentPassword tells the wrong password apart from a session that ended meanwhile
  // (also Unauthenticated).
  static bool IsWrongCurrentPassword(const Error& error);
  Status ChangePassword(const AccountCaller& who, const SecretBytes& old_password,
                        const SecretBytes& new_password);

 private:
  Status RequireAdmin(const AccountCaller& actor, AccountAction action, std::string_view object);
  // Inside an admin change's transaction: the caller (a remote session) must still be an active,
  // unlocked admin whose session is live; a demotion, disable, lock or revocation that committed
  // while the request ran wins. Unauthenticated / PermissionDenied otherwise.
  Status StillAdmin(const Principal& p, TimePoint now);
  template <typename Prepare>
  Result<AccountInfo> AdminChange(const AccountCaller& actor, AccountAction action,
                                  std::string_view name, Prepare prepare);
  // Passes `event` to the sink; with `change`, the sink makes the change and records the event
  // together (AuditSink::RecordChange), or neither. Without a sink, the change is made alone.
  Status Emit(AccountEvent event, const AuditedChange& change = {});
  AccountEvent MakeEvent(AccountAction action, AccountReason reason, const AccountCaller& actor,
                         std::string_view object) const;
  // A login_failure event for an attempt by `auth_method` from `origin`, naming `name` (cut to
  // the longest valid name) as actor and object; the caller fills in the rest.
  // A name that turns out to be no account's goes through WithholdName: the log keeps entries
  // forever and may be public, and what people type into a name field that is no account's name
  // is often a password (even a digest of it would give it away to a dictionary). The address,
  // time and reason stay in clear.
  AccountEvent LoginAttempt(std::string_view auth_method, CallOrigin origin,
                            std::string_view name) const;
  // Clears the event's actor name and object and says why in details["name"].
  static void WithholdName(AccountEvent& event);
  // Returns `error` after reporting it (or the sink's error if reporting fails).
  Error Fail(AccountEvent event, Error error);
  // Emits an anonymous rejection (a refused bearer token, a login refused before any
  // credential) through throttle_: recorded, or only counted; held counts of an ended minute go
  // first. `finish`, if given, completes the event only when it is recorded (so that a held one
  // costs no store look-up).
  Status EmitAnonymous(AccountEvent event, const std::function<void(AccountEvent&)>& finish = {});
  Status EmitHeld(const RejectionThrottle::Held& held);
  Result<TotpEnrolment> NewTotpSeed(std::string_view account_id, std::string_view name,
                                    Bytes* sealed);
  Result<BearerToken> IssueToken(const store::AccountRecord& account, AccountEvent success);
  // Unseals the account's TOTP seed and returns the step `code` matches, or nullopt with *reason
  // set (wrong code, or no seed: then DummyTotpWork stands in for the unseal). Uses nothing up.
  Result<std::optional<int64_t>> MatchTotp(const store::AccountRecord& account,
                                           std::string_view code, TimePoint now,
                                           AccountReason* reason);
  // The HSM and TOTP work of MatchTotp on a seed sealed for no account, for attempts that have no
  // seed to check (unknown names), so they cost what a real check costs.
  Status DummyTotpWork(std::string_view code, TimePoint now);
  // The password work of a login whose account is unknown (or no person): Argon2id against a hash
  // of a random password, and DummyTotpWork. Its errors are those a known account's would give
  // (the hasher's, the HSM's), so a fault does not tell names apart either.
  Status DummyLoginWork(const SecretBytes& password, std::string_view code, TimePoint now);
  // dummy_hash_, made now if it could not be made before.
  Result<std::string> DummyHash();
  // The factor checks of LoginWithPassword and VerifyActivationFactors (see CheckPersonFactors
  // in accounts.cc); `generic` is the error every wrong factor gets.
  Status CheckPersonFactors(const store::AccountRecord& account, const SecretBytes& password,
                            std::string_view totp_code, TimePoint now, AccountEvent& event,
                            const Error& generic);
  // Records `event` (a failed attempt on `account`) with the failure counted in the same
  // transaction; if that locked the account, records a lockout event after it. Returns `error`,
  // or the sink's error if recording failed.
  Error FailCounted(AccountEvent event, const store::AccountRecord& account, TimePoint now,
                    Error error);
  // Reads the account again and fails if it is the last active admin and would lose that. Run
  // inside the change's store transaction (an AuditedChange), so that two admins disabling each
  // other at once, in one process or on nodes sharing the database, cannot both pass it.
  Status CheckNotLastAdmin(std::string_view account_id, bool losing_admin);
  AccountInfo Info(const store::AccountRecord& account) const;
  Result<AccountInfo> Reload(std::string_view id);

  // Constant after construction.
  store::Store& store_;
  hsm::SecretSealer& sealer_;
  PasswordHasher& hasher_;
  Totp& totp_;
  const Clock& clock_;
  const AccountServiceOptions options_;
  const AccountEventSink sink_;
  // Anonymous rejections per client address (thread-safe itself).
  RejectionThrottle throttle_;
  std::mutex dummy_mu_;
  // A hash of a random password, verified against when the account does not exist, so unknown
  // names cost the same Argon2id work as known ones. Made at construction, or on first need if
  // hashing failed then. Guarded by dummy_mu_.
  std::string dummy_hash_;
  // DummyTotpWork's seed, sealed on first need (the HSM may not be there at construction).
  Bytes dummy_sealed_seed_;  // guarded by dummy_mu_
};

}  // namespace signet::service
