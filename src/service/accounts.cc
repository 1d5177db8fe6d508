#include "service/accounts.h"

#include <algorithm>
#include <utility>

#include "common/encoding.h"
#include "common/random.h"
#include "pki/pki.h"
#include "service/admin_session.h"
#include "service/hsm_failure.h"

namespace signet::service {
namespace {

constexpr std::string_view kWrongCurrentPassword = "the current password is wrong";

// Bearer tokens are stored and looked up only by their SHA-256 digest.
Result<Bytes> TokenHash(ByteView token) {
  return pki::ComputeDigest(HashAlgorithm::kSha256, token);
}

// For lookups: a digest that cannot be computed matches no stored token.
Bytes TokenHashOrEmpty(ByteView token) {
  auto hash = TokenHash(token);
  return hash.ok() ? std::move(*hash) : Bytes{};
}

constexpr size_t kMaxNameLength = 64;
constexpr size_t kTokenBytes = 32;
constexpr size_t kTokenTextLength = 43;       // base64url of 32 bytes, unpadded
constexpr size_t kTotpSeedBytes = 20;         // RFC 4226 §4: 160 bits, the HMAC-SHA1 block
// The additional data DummyTotpWork seals its seed with: no account id looks like it.
constexpr std::string_view kDummySeedAad = "signet dummy totp seed";
constexpr size_t kOneTimePasswordBytes = 18;  // 24 base64url characters
constexpr std::string_view kGenericLoginError =
    "the account name, password or one-time code is wrong";
constexpr std::string_view kInvalidTokenError = "the bearer token is not valid";
constexpr std::string_view kGenericActivationError = "the PIN (password) or one-time code is wrong";

// Associated data that binds a sealed seed to its account: a seed row copied onto another account
// does not open.
Bytes SeedAad(std::string_view account_id) {
  return ToBytes("signet totp-seed v1 account=" + std::string(account_id));
}

bool IsLockedAt(const store::AccountRecord& account, TimePoint now) {
  return account.locked_until && now < *account.locked_until;
}

Principal PrincipalOf(const store::AccountRecord& account) {
  return Principal{account.id, account.name, account.kind, account.roles,
                   account.must_change_password};
}

Result<std::string> NewAccountId() {
  Bytes raw(8);
  SIGNET_TRY(RandomBytes(raw));
  return "a_" + HexEncode(raw);
}

bool ValidPasswordLength(const SecretBytes& password, size_t max) {
  return !password.empty() && password.size() <= max;
}

}  // namespace

Principal SystemPrincipal() {
  return Principal{"system", "system", AccountKind::kService, RoleSet{Role::kAdmin}, false};
}

std::string_view AccountReasonName(AccountReason reason) {
  switch (reason) {
    case AccountReason::kSuccess:
      return "success";
    case AccountReason::kUnknownAccount:
      return "unknown_account";
    case AccountReason::kNotAPerson:
      return "not_a_person";
    case AccountReason::kWrongPassword:
      return "wrong_password";
    case AccountReason::kWrongTotp:
      return "wrong_totp";
    case AccountReason::kTotpReplayed:
      return "totp_replayed";
    case AccountReason::kTotpNotEnrolled:
      return "totp_not_enrolled";
    case AccountReason::kAccountLocked:
      return "account_locked";
    case AccountReason::kAccountDisabled:
      return "account_disabled";
    case AccountReason::kUnknownCertificate:
      return "unknown_certificate";
    case AccountReason::kUnknownToken:
      return "unknown_token";
    case AccountReason::kTokenExpired:
      return "token_expired";
    case AccountReason::kTokenRevoked:
      return "token_revoked";
    case AccountReason::kCertificateMismatch:
      return "certificate_mismatch";
    case AccountReason::kPermissionDenied:
      return "permission_denied";
    case AccountReason::kInvalidArgument:
      return "invalid_argument";
    case AccountReason::kError:
      return "error";
    case AccountReason::kSeveral:
      return "several";
  }
  return "error";
}

std::string_view AccountActionName(AccountAction action) {
  switch (action) {
    case AccountAction::kLoginSuccess:
      return "login_success";
    case AccountAction::kLoginFailure:
      return "login_failure";
    case AccountAction::kLockout:
      return "lockout";
    case AccountAction::kUnlock:
      return "unlock";
    case AccountAction::kTokenRevoke:
      return "token_revoke";
    case AccountAction::kTokenRejected:
      return "token_rejected";
    case AccountAction::kAccountCreate:
      return "account_create";
    case AccountAction::kAccountChange:
      return "account_change";
    case AccountAction::kAccountDisable:
      return "account_disable";
    case AccountAction::kAccountEnable:
      return "account_enable";
    case AccountAction::kAccountResetTotp:
      return "account_reset_totp";
    case AccountAction::kAccountRoles:
      return "account_roles";
  }
  return "unknown";
}

AccountService::AccountService(store::Store& store, hsm::SecretSealer& sealer,
                               PasswordHasher& hasher, Totp& totp, const Clock& clock,
                               AccountServiceOptions options, AccountEventSink sink)
    : store_(store),
      sealer_(sealer),
      hasher_(hasher),
      totp_(totp),
      clock_(clock),
      options_(std::move(options)),
      sink_(std::move(sink)),
      throttle_(options_.anonymous_rejections_per_minute) {
  (void)DummyHash();  // made now so that the first login does not pay for it; retried if it failed
}

Status AccountService::ValidateAccountName(std::string_view name) {
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  if (name.empty() || name.size() > kMaxNameLength || !alnum(name[0]) ||
      !std::all_of(name.begin(), name.end(), [&](char c) {
        return alnum(c) || c == '.' || c == '_' || c == '@' || c == '-';
      })) {
    return InvalidArgument(
        "an account name has 1 to 64 characters of A-Z a-z 0-9 . _ @ - and starts with a letter "
        "or digit");
  }
  return OkStatus();
}

Status AccountService::ValidateFingerprint(std::string_view fingerprint) {
  if (fingerprint.size() != 64 || !std::all_of(fingerprint.begin(), fingerprint.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
      })) {
    return InvalidArgument(
        "a client certificate fingerprint is the SHA-256 of its DER as 64 lower-case hex digits");
  }
  return OkStatus();
}

// ---- events ----

AccountEvent AccountService::MakeEvent(AccountAction action, AccountReason reason,
                                       const AccountCaller& caller, std::string_view object) const {
  const Principal& actor = caller.principal;
  AccountEvent event;
  event.time = clock_.Now();
  event.action = action;
  event.reason = reason;
  event.actor_id = actor.account_id;
  event.actor_name = actor.name;
  event.actor_roles = actor.roles;
  event.auth_method = actor.account_id == "system" ? "system" : "bearer";
  event.client_address = caller.client_address;
  event.request_id = caller.request_id;
  event.object = std::string(object);
  return event;
}

Status AccountService::Emit(AccountEvent event, const AuditedChange& change) {
  if (!sink_) {
    if (!change) return OkStatus();
    std::map<std::string, std::string> unused;
    return change(unused);
  }
  Status status = sink_(event, change);
  // A change's own refusal is returned as it is; the log's errors say what was not recorded.
  if (!status.ok() && !change) {
    return status.error().WithContext("cannot record the account event");
  }
  return status;
}

Status AccountService::EmitHeld(const RejectionThrottle::Held& held) {
  AccountEvent event;
  event.time = held.last;
  const bool token = held.kind == AccountActionName(AccountAction::kTokenRejected);
  event.action = token ? AccountAction::kTokenRejected : AccountAction::kLoginFailure;
  event.auth_method = token ? "bearer" : "";
  event.client_address = held.address;
  event.reason = AccountReason::kSeveral;
  if (held.reasons.size() == 1) {
    for (int r = 0; r <= static_cast<int>(AccountReason::kSeveral); ++r) {
      if (AccountReasonName(static_cast<AccountReason>(r)) == held.reasons.begin()->first) {
        event.reason = static_cast<AccountReason>(r);
      }
    }
  }
  std::string reasons;
  for (const auto& [reason, n] : held.reasons) {
    if (!reasons.empty()) reasons += ",";
    reasons += reason + "=" + std::to_string(n);
  }
  event.details["reasons"] = std::move(reasons);
  event.details["not_logged_one_by_one"] = std::to_string(held.count);
  event.details["first"] = FormatRfc3339(held.first);
  event.details["last"] = FormatRfc3339(held.last);
  return Emit(std::move(event));
}

Status AccountService::EmitAnonymous(AccountEvent event,
                                     const std::function<void(AccountEvent&)>& finish) {
  RejectionThrottle::Decision decision =
      throttle_.Note(AccountActionName(event.action), AccountReasonName(event.reason),
                     event.client_address, event.time);
  for (size_t i = 0; i < decision.released.size(); ++i) {
    if (Status logged = EmitHeld(decision.released[i]); !logged.ok()) {
      throttle_.Requeue(
          {decision.released.begin() + static_cast<std::ptrdiff_t>(i), decision.released.end()});
      return logged;
    }
  }
  if (!decision.record) return OkStatus();
  if (finish) finish(event);
  return Emit(std::move(event));
}

Result<int64_t> AccountService::LogHeldRejections(TimePoint now) {
  std::vector<RejectionThrottle::Held> held = throttle_.Flush(now);
  for (size_t i = 0; i < held.size(); ++i) {
    if (Status logged = EmitHeld(held[i]); !logged.ok()) {
      // Kept for the next pass: a count is lost only with the process.
      throttle_.Requeue({held.begin() + static_cast<std::ptrdiff_t>(i), held.end()});
      return logged.error();
    }
  }
  return static_cast<int64_t>(held.size());
}

Error AccountService::Fail(AccountEvent event, Error error) {
  if (event.reason == AccountReason::kSuccess) {
    // An admin operation that failed: classify by the error.
    switch (error.code()) {
      case ErrorCode::kInvalidArgument:
      case ErrorCode::kNotFound:
      case ErrorCode::kAlreadyExists:
      case ErrorCode::kFailedPrecondition:
        event.reason = AccountReason::kInvalidArgument;
        break;
      case ErrorCode::kPermissionDenied:
        event.reason = AccountReason::kPermissionDenied;
        break;
      default:
        event.reason = AccountReason::kError;
        break;
    }
  }
  if (event.reason == AccountReason::kError || event.reason == AccountReason::kInvalidArgument) {
    event.details["error"] = error.message();
  }
  Status status = Emit(std::move(event));
  if (!status.ok()) return std::move(status).error();
  return error;
}

Error AccountService::RefusedChange(const AccountCaller& actor, AccountAction action,
                                    std::string_view object, Error error) {
  if (Status admin = RequireAdmin(actor, action, object); !admin.ok()) {
    return std::move(admin).error();
  }
  return Fail(MakeEvent(action, AccountReason::kSuccess, actor, object), std::move(error));
}

Error AccountService::RefusedOwnChange(const AccountCaller& actor, Error error) {
  return Fail(MakeEvent(AccountAction::kAccountChange, AccountReason::kInvalidArgument, actor,
                        actor.principal.name),
              std::move(error));
}

Status AccountService::RequireAdmin(const AccountCaller& actor, AccountAction action,
                                    std::string_view object) {
  const Principal& p = actor.principal;
  if (p.Has(Role::kAdmin) && !p.must_change_password) return OkStatus();
  std::string why = p.must_change_password
                        ? "account '" + p.name + "' must change its password first"
                        : "account '" + p.name + "' lacks the admin role";
  return Fail(MakeEvent(action, AccountReason::kPermissionDenied, actor, object),
              PermissionDenied(std::move(why)));
}

Status AccountService::StillAdmin(const Principal& p, TimePoint now) {
  return RecheckAdminSession(store_, p.account_id, p.name, p.token_hash, now);
}

// ---- helpers ----

AccountInfo AccountService::Info(const store::AccountRecord& account) const {
  AccountInfo info;
  info.id = account.id;
  info.name = account.name;
  info.kind = account.kind;
  info.roles = account.roles;
  info.state = account.state;
  info.totp_enrolled = account.totp_seed_sealed.has_value();
  info.must_change_password = account.must_change_password;
  info.failed_attempts = account.failed_attempts;
  if (IsLockedAt(account, clock_.Now())) info.locked_until = account.locked_until;
  info.mtls_fingerprint = account.mtls_fingerprint;
  info.created_at = account.created_at;
  info.updated_at = account.updated_at;
  return info;
}

Result<AccountInfo> AccountService::Reload(std::string_view id) {
  SIGNET_ASSIGN_OR_RETURN(store::AccountRecord account, store_.GetAccountById(id));
  return Info(account);
}

Result<TotpEnrolment> AccountService::NewTotpSeed(std::string_view account_id,
                                                  std::string_view name, Bytes* sealed) {
  Bytes raw(kTotpSeedBytes);
  SIGNET_TRY(RandomBytes(raw));
  SecretBytes seed{ByteView(raw)};
  SecureWipe(raw.data(), raw.size());
  SIGNET_ASSIGN_OR_RETURN(*sealed, FromHsm(sealer_.Seal(seed.view(), SeedAad(account_id))));
  std::string base32 = Base32Encode(seed.view());
  TotpEnrolment enrolment{SecretBytes(std::string_view(base32)),
                          TotpUri(options_.totp_issuer, name, seed, totp_.parameters())};
  SecureWipe(base32.data(), base32.size());
  return enrolment;
}

Status AccountService::CheckNotLastAdmin(std::string_view account_id, bool losing_admin) {
  if (!losing_admin) return OkStatus();
  SIGNET_ASSIGN_OR_RETURN(store::AccountRecord account, store_.GetAccountById(account_id));
  if (!account.roles.Has(Role::kAdmin) || account.state != AccountState::kActive) {
    return OkStatus();
  }
  SIGNET_ASSIGN_OR_RETURN(std::vector<store::AccountRecord> all, store_.ListAccounts());
  for (const store::AccountRecord& other : all) {
    if (other.id != account.id && other.roles.Has(Role::kAdmin) &&
        other.state == AccountState::kActive) {
      return OkStatus();
    }
  }
  return FailedPrecondition("account '" + account.name +
                            "' is the last active admin; make another admin first");
}

// ---- administration ----

Result<NewPerson> AccountService::CreatePerson(const AccountCaller& actor, std::string_view name,
                                               RoleSet roles) {
  SIGNET_TRY(RequireAdmin(actor, AccountAction::kAccountCreate, name));
  AccountEvent event =
      MakeEvent(AccountAction::kAccountCreate, AccountReason::kSuccess, actor, name);
  event.details["kind"] = "person";
  event.details["roles"] = roles.ToString();
  auto fail = [&](AccountReason reason, Error error) {
    event.reason = reason;
    return Fail(event, std::move(error));
  };
  if (Status valid = ValidateAccountName(name); !valid.ok()) {
    return fail(AccountReason::kInvalidArgument, valid.error());
  }
  Result<std::string> id = NewAccountId();
  if (!id.ok()) return fail(AccountReason::kError, id.error());
  Result<SecretBytes> password = RandomPrintableSecret(kOneTimePasswordBytes);
  if (!password.ok()) return fail(AccountReason::kError, password.error());
  Result<std::string> hash = hasher_.Hash(*password);
  if (!hash.ok()) return fail(AccountReason::kError, hash.error());
  Bytes sealed;
  Result<TotpEnrolment> enrolment = NewTotpSeed(*id, name, &sealed);
  if (!enrolment.ok()) return fail(AccountReason::kError, enrolment.error());

  const TimePoint now = clock_.Now();
  store::AccountRecord record;
  record.id = *id;
  record.name = std::string(name);
  record.kind = AccountKind::kPerson;
  record.roles = roles;
  record.password_hash = std::move(*hash);
  record.totp_seed_sealed = std::move(sealed);
  record.must_change_password = true;
  record.created_at = now;
  record.updated_at = now;
  if (Status inserted = Emit(event,
                             [&](AuditDetails&) -> Status {
                               SIGNET_TRY(StillAdmin(actor.principal, now));
                               return store_.InsertAccount(record);
                             });
      !inserted.ok()) {
    return fail(inserted.error().code() == ErrorCode::kAlreadyExists
                    ? AccountReason::kInvalidArgument
                    : AccountReason::kError,
                inserted.error());
  }
  return NewPerson{Info(record), std::move(*password), std::move(*enrolment)};
}

Result<AccountInfo> AccountService::CreateService(const AccountCaller& actor, std::string_view name,
                                                  RoleSet roles,
                                                  std::string_view mtls_fingerprint) {
  SIGNET_TRY(RequireAdmin(actor, AccountAction::kAccountCreate, name));
  AccountEvent event =
      MakeEvent(AccountAction::kAccountCreate, AccountReason::kSuccess, actor, name);
  event.details["kind"] = "service";
  event.details["roles"] = roles.ToString();
  event.details["mtls_fingerprint"] = std::string(mtls_fingerprint);
  auto fail = [&](AccountReason reason, Error error) {
    event.reason = reason;
    return Fail(event, std::move(error));
  };
  if (Status valid = ValidateAccountName(name); !valid.ok()) {
    return fail(AccountReason::kInvalidArgument, valid.error());
  }
  if (Status valid = ValidateFingerprint(mtls_fingerprint); !valid.ok()) {
    return fail(AccountReason::kInvalidArgument, valid.error());
  }
  Result<std::string> id = NewAccountId();
  if (!id.ok()) return fail(AccountReason::kError, id.error());
  const TimePoint now = clock_.Now();
  store::AccountRecord record;
  record.id = *id;
  record.name = std::string(name);
  record.kind = AccountKind::kService;
  record.roles = roles;
  record.mtls_fingerprint = std::string(mtls_fingerprint);
  record.created_at = now;
  record.updated_at = now;
  if (Status inserted = Emit(event,
                             [&](AuditDetails&) -> Status {
                               SIGNET_TRY(StillAdmin(actor.principal, now));
                               return store_.InsertAccount(record);
                             });
      !inserted.ok()) {
    return fail(inserted.error().code() == ErrorCode::kAlreadyExists
                    ? AccountReason::kInvalidArgument
                    : AccountReason::kError,
                inserted.error());
  }
  return Info(record);
}

// An admin operation on one existing account: finds it; `prepare` checks what it can beforehand,
// fills in the event and sets the store change, which commits with the event's log entry
// (Emit); reports the outcome.
template <typename Prepare>
Result<AccountInfo> AccountService::AdminChange(const AccountCaller& actor, AccountAction action,
                                                std::string_view name, Prepare prepare) {
  SIGNET_TRY(RequireAdmin(actor, action, name));
  AccountEvent event = MakeEvent(action, AccountReason::kSuccess, actor, name);
  Result<store::AccountRecord> account = store_.GetAccountByName(name);
  if (!account.ok()) return Fail(event, account.error());
  AuditedChange change;
  if (Status prepared = prepare(*account, clock_.Now(), event, change); !prepared.ok()) {
    return Fail(event, prepared.error());
  }
  AuditedChange checked = [&](AuditDetails& details) -> Status {
    SIGNET_TRY(StillAdmin(actor.principal, clock_.Now()));
    return change ? change(details) : OkStatus();
  };
  if (Status changed = Emit(event, checked); !changed.ok()) return Fail(event, changed.error());
  return Reload(account->id);
}

Result<AccountInfo> AccountService::Disable(const AccountCaller& actor, std::string_view name) {
  return AdminChange(actor, AccountAction::kAccountDisable, name,
                     [&](const store::AccountRecord& account, TimePoint now, AccountEvent&,
                         AuditedChange& change) -> Status {
                       change = [this, id = account.id, now](AuditDetails& details) -> Status {
                         SIGNET_TRY(CheckNotLastAdmin(id, /*losing_admin=*/true));
                         SIGNET_TRY(store_.UpdateAccountState(id, AccountState::kActive,
                                                              AccountState::kDisabled, now));
                         SIGNET_ASSIGN_OR_RETURN(int64_t revoked,
                                                 store_.RevokeAccountTokens(id, now, /*keep=*/{}));
                         details["tokens_revoked"] = std::to_string(revoked);
                         return OkStatus();
                       };
                       return OkStatus();
                     });
}

Result<AccountInfo> AccountService::Enable(const AccountCaller& actor, std::string_view name) {
  return AdminChange(actor, AccountAction::kAccountEnable, name,
                     [&](const store::AccountRecord& account, TimePoint now, AccountEvent&,
                         AuditedChange& change) -> Status {
                       change = [this, id = account.id, now](AuditDetails&) {
                         return store_.UpdateAccountState(id, AccountState::kDisabled,
                                                          AccountState::kActive, now);
                       };
                       return OkStatus();
                     });
}

Result<AccountInfo> AccountService::Unlock(const AccountCaller& actor, std::string_view name) {
  return AdminChange(actor, AccountAction::kUnlock, name,
                     [&](const store::AccountRecord& account, TimePoint now, AccountEvent& event,
                         AuditedChange& change) -> Status {
                       if (account.locked_until) event.locked_until = account.locked_until;
                       event.details["failed_attempts"] = std::to_string(account.failed_attempts);
                       change = [this, id = account.id, now](AuditDetails&) {
                         return store_.ClearLoginFailures(id, now);
                       };
                       return OkStatus();
                     });
}

Result<AccountInfo> AccountService::SetRoles(const AccountCaller& actor, std::string_view name,
                                             RoleSet roles) {
  return AdminChange(
      actor, AccountAction::kAccountRoles, name,
      [&](const store::AccountRecord& account, TimePoint now, AccountEvent& event,
          AuditedChange& change) -> Status {
        event.details["roles"] = roles.ToString();
        // As read before the change, for the record of a refusal; the change replaces it with
        // what it read inside its transaction.
        event.details["roles_before"] = account.roles.ToString();
        change = [this, id = account.id, roles, now](AuditDetails& details) -> Status {
          // Read in the transaction, so it is what the change replaced.
          SIGNET_ASSIGN_OR_RETURN(store::AccountRecord current, store_.GetAccountById(id));
          details["roles_before"] = current.roles.ToString();
          SIGNET_TRY(CheckNotLastAdmin(id, !roles.Has(Role::kAdmin)));
          return store_.SetAccountRoles(id, roles, now);
        };
        return OkStatus();
      });
}

Result<TotpEnrolment> AccountService::ResetTotp(const AccountCaller& actor, std::string_view name,
                                                AccountInfo* account_after) {
  std::optional<TotpEnrolment> enrolment;
  Result<AccountInfo> changed =
      AdminChange(actor, AccountAction::kAccountResetTotp, name,
                  [&](const store::AccountRecord& account, TimePoint now, AccountEvent&,
                      AuditedChange& change) -> Status {
                    if (account.kind != AccountKind::kPerson) {
                      return InvalidArgument("account '" + account.name +
                                             "' is a service account and has no TOTP");
                    }
                    Bytes sealed;
                    SIGNET_ASSIGN_OR_RETURN(TotpEnrolment fresh,
                                            NewTotpSeed(account.id, account.name, &sealed));
                    // A reset usually means the old authenticator is lost or in other hands, so
                    // the sessions it helped open end too (the caller's own, if it resets its
                    // own seed, stays: it holds the new enrolment). Before the new seed is
                    // stored, so that a failure never leaves the new seed with old sessions.
                    Bytes keep = account.id == actor.principal.account_id
                                     ? actor.principal.token_hash
                                     : Bytes();
                    change = [this, id = account.id, keep = std::move(keep),
                              sealed = std::move(sealed), now](AuditDetails& details) -> Status {
                      SIGNET_ASSIGN_OR_RETURN(int64_t revoked,
                                              store_.RevokeAccountTokens(id, now, keep));
                      details["tokens_revoked"] = std::to_string(revoked);
                      return store_.SetTotpSeed(id, sealed, now);
                    };
                    enrolment = std::move(fresh);
                    return OkStatus();
                  });
  if (!changed.ok()) return std::move(changed).error();
  if (account_after != nullptr) *account_after = std::move(*changed);
  return std::move(*enrolment);
}

Result<SecretBytes> AccountService::ResetPassword(const AccountCaller& actor, std::string_view name,
                                                  AccountInfo* account_after) {
  std::optional<SecretBytes> one_time;
  Result<AccountInfo> changed = AdminChange(
      actor, AccountAction::kAccountChange, name,
      [&](const store::AccountRecord& account, TimePoint now, AccountEvent& event,
          AuditedChange& change) -> Status {
        event.details["change"] = "password_reset";
        if (account.kind != AccountKind::kPerson) {
          return InvalidArgument("account '" + account.name +
                                 "' is a service account and has no password");
        }
        SIGNET_ASSIGN_OR_RETURN(SecretBytes password, RandomPrintableSecret(kOneTimePasswordBytes));
        SIGNET_ASSIGN_OR_RETURN(std::string hash, hasher_.Hash(password));
        // Whoever knew the old password may hold a session from it.
        Bytes keep =
            account.id == actor.principal.account_id ? actor.principal.token_hash : Bytes();
        change = [this, id = account.id, keep = std::move(keep), hash = std::move(hash),
                  now](AuditDetails& details) -> Status {
          SIGNET_ASSIGN_OR_RETURN(int64_t revoked, store_.RevokeAccountTokens(id, now, keep));
          details["tokens_revoked"] = std::to_string(revoked);
          return store_.SetPasswordHash(id, hash, /*must_change_password=*/true, now);
        };
        one_time = std::move(password);
        return OkStatus();
      });
  if (!changed.ok()) return std::move(changed).error();
  if (account_after != nullptr) *account_after = std::move(*changed);
  return std::move(*one_time);
}

Result<AccountInfo> AccountService::Get(const Principal& actor, std::string_view name) {
  if (!actor.Has(Role::kAdmin) && !actor.Has(Role::kAuditor)) {
    return PermissionDenied("account '" + actor.name + "' lacks the admin or auditor role");
  }
  SIGNET_ASSIGN_OR_RETURN(store::AccountRecord account, store_.GetAccountByName(name));
  return Info(account);
}

Result<std::vector<AccountInfo>> AccountService::List(const Principal& actor) {
  if (!actor.Has(Role::kAdmin) && !actor.Has(Role::kAuditor)) {
    return PermissionDenied("account '" + actor.name + "' lacks the admin or auditor role");
  }
  SIGNET_ASSIGN_OR_RETURN(std::vector<store::AccountRecord> accounts, store_.ListAccounts());
  std::vector<AccountInfo> out;
  out.reserve(accounts.size());
  for (const store::AccountRecord& account : accounts) out.push_back(Info(account));
  return out;
}

Result<AccountInfo> AccountService::GetSelf(const Principal& who) {
  SIGNET_ASSIGN_OR_RETURN(store::AccountRecord account, store_.GetAccountById(who.account_id));
  return Info(account);
}

// ---- authentication ----

AccountEvent AccountService::LoginAttempt(std::string_view auth_method, CallOrigin origin,
                                          std::string_view name) const {
  AccountEvent event;
  event.time = clock_.Now();
  event.action = AccountAction::kLoginFailure;
  event.auth_method = std::string(auth_method);
  event.client_address = std::string(origin.client_address);
  event.request_id = std::string(origin.request_id);
  event.actor_name = std::string(name.substr(0, kMaxNameLength));
  event.object = event.actor_name;
  return event;
}

void AccountService::WithholdName(AccountEvent& event) {
  if (event.actor_name.empty()) return;
  event.actor_name.clear();
  event.object.clear();
  event.details["name"] = "withheld: not an account's name";
}

Error AccountService::FailCounted(AccountEvent event, const store::AccountRecord& account,
                                  TimePoint now, Error error) {
  // The count is the failure entry's change, in its transaction: an attempt on a known name then
  // costs one durable commit, as one on an unknown name does (its entry alone), so the time a
  // refusal takes does not tell names apart.
  std::optional<TimePoint> locked_now;
  AuditedChange count = [this, id = account.id, now, &locked_now](AuditDetails& details) -> Status {
    locked_now.reset();  // a retried attempt starts again
    details.erase("locked_until");
    details.erase("tokens_revoked");
    SIGNET_ASSIGN_OR_RETURN(store::LoginFailureState state,
                            store_.RecordLoginFailure(id, options_.lockout_threshold,
                                                      now + options_.lockout_duration, now));
    // A lock ends the account's tokens, as disabling does: otherwise a token taken by whoever
    // guessed would work again the moment an admin unlocks the account (or the lock runs out
    // before the token does), with five more guesses.
    if (state.locked_until) {
      SIGNET_ASSIGN_OR_RETURN(int64_t revoked, store_.RevokeAccountTokens(id, now, /*keep=*/{}));
      // In the entry that commits with the lock: the lockout entry after it is a second append,
      // which a crash or a failing log could leave unwritten.
      details["locked_until"] = FormatRfc3339(*state.locked_until);
      details["tokens_revoked"] = std::to_string(revoked);
    }
    locked_now = state.locked_until;
    return OkStatus();
  };
  if (Status recorded = Emit(event, count); !recorded.ok()) return std::move(recorded).error();
  if (locked_now) {
    // The failure that locked the account is followed by the lockout itself.
    AccountEvent lockout = std::move(event);
    lockout.action = AccountAction::kLockout;
    lockout.locked_until = locked_now;
    if (Status recorded = Emit(std::move(lockout)); !recorded.ok()) {
      return std::move(recorded).error();
    }
  }
  return error;
}

Result<std::optional<int64_t>> AccountService::MatchTotp(const store::AccountRecord& account,
                                                         std::string_view code, TimePoint now,
                                                         AccountReason* reason) {
  if (!account.totp_seed_sealed) {
    SIGNET_TRY(DummyTotpWork(code, now));
    *reason = AccountReason::kTotpNotEnrolled;
    return std::nullopt;
  }
  SIGNET_ASSIGN_OR_RETURN(SecretBytes seed,
                          FromHsm(sealer_.Unseal(*account.totp_seed_sealed, SeedAad(account.id))));
  SIGNET_ASSIGN_OR_RETURN(std::optional<int64_t> step, totp_.Verify(seed, code, now));
  if (!step) *reason = AccountReason::kWrongTotp;
  return step;
}

Result<std::string> AccountService::DummyHash() {
  std::lock_guard lock(dummy_mu_);
  if (dummy_hash_.empty()) {
    SIGNET_ASSIGN_OR_RETURN(SecretBytes random, RandomPrintableSecret(16));
    SIGNET_ASSIGN_OR_RETURN(dummy_hash_, hasher_.Hash(random));
  }
  return dummy_hash_;
}

Status AccountService::DummyLoginWork(const SecretBytes& password, std::string_view code,
                                      TimePoint now) {
  SIGNET_ASSIGN_OR_RETURN(std::string hash, DummyHash());
  if (ValidPasswordLength(password, options_.max_password_length)) {
    Result<bool> verified = hasher_.Verify(hash, password);
    if (!verified.ok()) return std::move(verified).error();
  } else {
    (void)hasher_.Verify(hash, password);
  }
  return DummyTotpWork(code, now);
}

Status AccountService::DummyTotpWork(std::string_view code, TimePoint now) {
  Bytes sealed;
  {
    std::lock_guard lock(dummy_mu_);
    if (dummy_sealed_seed_.empty()) {
      Bytes seed(kTotpSeedBytes);
      SIGNET_TRY(RandomBytes(seed));
      Result<Bytes> made = FromHsm(sealer_.Seal(seed, AsBytes(std::string_view(kDummySeedAad))));
      SecureWipe(seed.data(), seed.size());
      if (!made.ok()) return std::move(made).error();
      dummy_sealed_seed_ = std::move(*made);
    }
    sealed = dummy_sealed_seed_;
  }
  SIGNET_ASSIGN_OR_RETURN(
      SecretBytes seed, FromHsm(sealer_.Unseal(sealed, AsBytes(std::string_view(kDummySeedAad)))));
  SIGNET_ASSIGN_OR_RETURN(std::optional<int64_t> step, totp_.Verify(seed, code, now));
  (void)step;
  return OkStatus();
}

Result<BearerToken> AccountService::IssueToken(const store::AccountRecord& account,
                                               AccountEvent success) {
  Bytes raw(kTokenBytes);
  SIGNET_TRY(RandomBytes(raw));
  std::string text = Base64UrlEncode(raw);
  SecureWipe(raw.data(), raw.size());
  SecretBytes token{std::string_view(text)};
  SecureWipe(text.data(), text.size());

  const TimePoint now = clock_.Now();
  store::BearerTokenRecord record;
  SIGNET_ASSIGN_OR_RETURN(record.token_hash, TokenHash(token.view()));
  record.account_id = account.id;
  record.created_at = now;
  // Whole seconds, as the store keeps them, so what the caller is told is what is enforced.
  record.expires_at = FromUnixSeconds(ToUnixSeconds(now + options_.token_lifetime));
  // The token and the login_success entry commit together. Inside that transaction the account
  // is read again: a password change, TOTP reset, certificate change or disable that committed
  // after the factors were checked here revoked the account's tokens, and must not be outrun by a
  // token issued on the strength of the old credentials.
  AuditedChange issue = [&](AuditDetails&) -> Status {
    SIGNET_ASSIGN_OR_RETURN(store::AccountRecord current, store_.GetAccountById(account.id));
    // A lock set meanwhile (a concurrent failed attempt reaching the threshold) revoked the
    // account's tokens as well.
    if (current.state != AccountState::kActive || IsLockedAt(current, now) ||
        current.password_hash != account.password_hash ||
        current.totp_seed_sealed != account.totp_seed_sealed ||
        current.mtls_fingerprint != account.mtls_fingerprint) {
      return Unauthenticated(
          "the account's credentials or state changed during the login; log in "
          "again");
    }
    return store_.InsertBearerToken(record);
  };
  SIGNET_TRY(Emit(std::move(success), issue));
  Principal principal = PrincipalOf(account);
  principal.token_hash = std::move(record.token_hash);
  return BearerToken{std::move(token), record.expires_at, std::move(principal)};
}

// Both factors of a person (the login policy in accounts.h): password, then a fresh TOTP code;
// the lock, the failure count and the disabled state. On any refusal `event` (a login_failure or
// lockout) has been emitted and its error is returned; on success the failure count is cleared and
// nothing is emitted yet.
Status AccountService::CheckPersonFactors(const store::AccountRecord& account,
                                          const SecretBytes& password, std::string_view totp_code,
                                          TimePoint now, AccountEvent& event,
                                          const Error& generic) {
  bool locked = IsLockedAt(account, now);
  std::optional<TimePoint> locked_until = account.locked_until;

  bool password_ok = false;
  if (ValidPasswordLength(password, options_.max_password_length)) {
    Result<bool> verified = hasher_.Verify(*account.password_hash, password);
    if (!verified.ok()) {
      event.reason = AccountReason::kError;
      return Fail(event, verified.error());
    }
    password_ok = *verified;
  } else {
    // As for an unknown name (DummyLoginWork): the same work, and the same fault if the dummy
    // hash cannot be made.
    Result<std::string> dummy = DummyHash();
    if (!dummy.ok()) {
      event.reason = AccountReason::kError;
      return Fail(event, dummy.error());
    }
    (void)hasher_.Verify(*dummy, password);
  }

  // The seed is unsealed and the code matched whether or not the password was right, so neither
  // the time taken nor the HSM's operation count tells a right password from a wrong one.
  AccountReason totp_reason = AccountReason::kSuccess;
  Result<std::optional<int64_t>> step = MatchTotp(account, totp_code, now, &totp_reason);
  if (!step.ok()) {
    event.reason = AccountReason::kError;
    return Fail(event, step.error());
  }
  AccountReason reason = password_ok ? totp_reason : AccountReason::kWrongPassword;
  bool totp_ok = false;
  if (step->has_value() && (password_ok || locked)) {
    // The compare-and-set: of two logins with the same code, only one moves the step forward,
    // and none once a concurrent failure has locked the account (the store checks the lock in the
    // same statement), so parallel guesses cannot outrun the lock. A locked account's code is
    // used up as well, whatever the password: it only decides whether the owner is told of the
    // lock, so each code buys one password test (uncounted guesses with one seen code would
    // otherwise find the password by the answer that names the lock), and whoever finds a right
    // code by guessing during the lock must not be able to log in with it when the lock ends.
    Result<bool> fresh = locked ? store_.BurnTotpStep(account.id, **step, now)
                                : store_.RecordTotpStep(account.id, **step, now);
    if (!fresh.ok()) {
      event.reason = AccountReason::kError;
      return Fail(event, fresh.error());
    }
    totp_ok = *fresh;
    // A wrong password stays the reason recorded: the code's reuse is the lesser finding.
    if (!totp_ok && password_ok) reason = AccountReason::kTotpReplayed;
    if (!totp_ok && !locked) {
      // Refused by the store: a replayed code, or a lock set by a concurrent failure since the
      // account was read. Which one decides how the refusal is recorded.
      auto reread = store_.GetAccountById(account.id);
      if (reread.ok() && IsLockedAt(*reread, now)) {
        locked = true;
        locked_until = reread->locked_until;
        reason = AccountReason::kAccountLocked;  // the code was refused for the lock, not reuse
      }
    }
  }

  if (locked) {
    // Not counted and not extended. Only the owner, with both factors, learns of the lock.
    event.locked_until = locked_until;
    event.details["credentials"] = password_ok && totp_ok ? "valid" : AccountReasonName(reason);
    event.reason = AccountReason::kAccountLocked;
    if (!(password_ok && totp_ok)) return Fail(event, generic);
    return Fail(event, PermissionDenied("account '" + account.name + "' is locked until " +
                                        FormatRfc3339(*locked_until) +
                                        "; wait, or ask an admin to unlock it"));
  }

  if (!(password_ok && totp_ok)) {
    event.reason = reason;
    return FailCounted(std::move(event), account, now, generic);
  }

  if (account.state != AccountState::kActive) {
    event.reason = AccountReason::kAccountDisabled;
    return Fail(event, PermissionDenied("account '" + account.name +
                                        "' is disabled; ask an admin to enable it"));
  }

  {
    // Conditional: failures that reached the threshold after the account was read (and after the
    // code was accepted) locked it, and a success must not lift that lock. Made even when the
    // account had no failures when read: it is also the re-check of the lock (an activation has
    // no later transaction that would see it, as a login's token issue does).
    Result<bool> forgiven = store_.ForgiveLoginFailures(account.id, now);
    if (!forgiven.ok()) {
      event.reason = AccountReason::kError;
      return Fail(event, forgiven.error());
    }
    if (!*forgiven) {
      auto reread = store_.GetAccountById(account.id);
      if (reread.ok()) event.locked_until = reread->locked_until;
      event.details["credentials"] = "valid";
      event.reason = AccountReason::kAccountLocked;
      return Fail(event, PermissionDenied(
                             "account '" + account.name + "' was locked during the login" +
                             (event.locked_until ? " until " + FormatRfc3339(*event.locked_until)
                                                 : std::string()) +
                             "; wait, or ask an admin to unlock it"));
    }
  }
  return OkStatus();
}

Result<BearerToken> AccountService::LoginWithPassword(std::string_view name,
                                                      const SecretBytes& password,
                                                      std::string_view totp_code,
                                                      CallOrigin origin) {
  AccountEvent event = LoginAttempt("password+totp", origin, name);
  const TimePoint now = event.time;
  const Error generic = Unauthenticated(std::string(kGenericLoginError));
  auto refuse = [&](AccountReason reason) {
    event.reason = reason;
    return Fail(event, generic);
  };
  // Burns the same Argon2id and HSM work as a real verification, so neither the time taken nor
  // the HSM's operation count tells unknown names from known ones; and fails as a known name's
  // verification would (a server fault, not the generic refusal) when the hasher or the HSM does.
  auto dummy_verify = [&]() -> std::optional<Error> {
    Status done = DummyLoginWork(password, totp_code, now);
    if (done.ok()) return std::nullopt;
    event.reason = AccountReason::kError;
    WithholdName(event);
    return Fail(event, done.error());
  };

  Result<store::AccountRecord> found = ValidateAccountName(name).ok()
                                           ? store_.GetAccountByName(name)
                                           : Result<store::AccountRecord>(NotFound("bad name"));
  if (!found.ok()) {
    if (found.error().code() != ErrorCode::kNotFound) {
      event.reason = AccountReason::kError;
      WithholdName(event);  // not known to be an account's
      // The store's message names what was looked up; that may be a password typed into the
      // name field, and the entry is permanent (and perhaps public).
      std::string message = found.error().message();
      for (size_t at = 0; !name.empty() && (at = message.find(name, at)) != std::string::npos;) {
        message.replace(at, name.size(), "(withheld)");
        at += std::string_view("(withheld)").size();
      }
      return Fail(event, Error(found.error().code(), std::move(message)));
    }
    if (std::optional<Error> fault = dummy_verify()) return *std::move(fault);
    WithholdName(event);
    return refuse(AccountReason::kUnknownAccount);
  }
  const store::AccountRecord& account = *found;
  event.actor_id = account.id;
  event.actor_roles = account.roles;
  if (account.kind != AccountKind::kPerson || !account.password_hash) {
    if (std::optional<Error> fault = dummy_verify()) return *std::move(fault);
    return refuse(AccountReason::kNotAPerson);
  }
  SIGNET_TRY(CheckPersonFactors(account, password, totp_code, now, event, generic));
  AccountEvent success = event;
  success.action = AccountAction::kLoginSuccess;
  success.reason = AccountReason::kSuccess;
  if (account.must_change_password) success.details["must_change_password"] = "true";
  Result<BearerToken> token = IssueToken(account, std::move(success));
  if (!token.ok()) {
    event.reason = AccountReason::kError;
    return Fail(event, token.error());
  }
  return token;
}

Status AccountService::RecordRefusedLogin(std::string_view why, CallOrigin origin,
                                          std::string_view name) {
  AccountEvent event = LoginAttempt("", origin, name);
  event.reason = AccountReason::kInvalidArgument;
  event.details["error"] = std::string(why);
  return EmitAnonymous(std::move(event), [this, name](AccountEvent& e) {
    if (name.empty()) return;
    if (!ValidateAccountName(name).ok() || !store_.GetAccountByName(name).ok()) WithholdName(e);
  });
}

Status AccountService::VerifyActivationFactors(const Principal& who, const SecretBytes& password,
                                               std::string_view totp_code, CallOrigin origin) {
  AccountEvent event = LoginAttempt("password+totp", origin, who.name);
  const TimePoint now = event.time;
  event.actor_id = who.account_id;
  event.actor_roles = who.roles;
  event.details["purpose"] = "activation";
  const Error generic = Unauthenticated(std::string(kGenericActivationError));
  if (who.kind != AccountKind::kPerson) {
    event.reason = AccountReason::kNotAPerson;
    return Fail(event, InvalidArgument("account '" + who.name +
                                       "' is a service account: its mTLS login is its "
                                       "authentication, it has no PIN or one-time code"));
  }
  Result<store::AccountRecord> found = store_.GetAccountById(who.account_id);
  if (!found.ok()) {
    const bool gone = found.error().code() == ErrorCode::kNotFound;
    event.reason = gone ? AccountReason::kUnknownAccount : AccountReason::kError;
    return Fail(event, gone ? generic : found.error());
  }
  const store::AccountRecord& account = *found;
  event.actor_roles = account.roles;
  if (account.kind != AccountKind::kPerson || !account.password_hash) {
    event.reason = AccountReason::kNotAPerson;
    return Fail(event, generic);
  }
  SIGNET_TRY(CheckPersonFactors(account, password, totp_code, now, event, generic));
  AccountEvent success = std::move(event);
  success.action = AccountAction::kLoginSuccess;
  success.reason = AccountReason::kSuccess;
  return Emit(std::move(success));
}

Result<BearerToken> AccountService::LoginWithClientCertificate(std::string_view fingerprint,
                                                               CallOrigin origin) {
  AccountEvent event = LoginAttempt("mtls", origin, "");
  event.details["mtls_fingerprint"] = std::string(fingerprint.substr(0, 64));
  const Error generic = Unauthenticated("the client certificate belongs to no service account");
  if (!ValidateFingerprint(fingerprint).ok()) {
    event.reason = AccountReason::kUnknownCertificate;
    return Fail(event, generic);
  }
  Result<store::AccountRecord> found = store_.GetAccountByFingerprint(fingerprint);
  if (!found.ok()) {
    event.reason = found.error().code() == ErrorCode::kNotFound ? AccountReason::kUnknownCertificate
                                                                : AccountReason::kError;
    return Fail(event, event.reason == AccountReason::kError ? found.error() : generic);
  }
  const store::AccountRecord& account = *found;
  event.actor_id = account.id;
  event.actor_name = account.name;
  event.actor_roles = account.roles;
  event.object = account.name;
  if (account.kind != AccountKind::kService) {
    event.reason = AccountReason::kUnknownCertificate;
    return Fail(event, generic);
  }
  if (account.state != AccountState::kActive) {
    event.reason = AccountReason::kAccountDisabled;
    return Fail(event, PermissionDenied("service account '" + account.name + "' is disabled"));
  }
  AccountEvent success = event;
  success.action = AccountAction::kLoginSuccess;
  success.reason = AccountReason::kSuccess;
  Result<BearerToken> token = IssueToken(account, std::move(success));
  if (!token.ok()) {
    event.reason = AccountReason::kError;
    return Fail(event, token.error());
  }
  return token;
}

Result<Principal> AccountService::Authenticate(std::string_view bearer_token, CallOrigin origin) {
  const TimePoint now = clock_.Now();
  AccountEvent event;
  event.time = now;
  event.action = AccountAction::kTokenRejected;
  event.auth_method = "bearer";
  event.client_address = std::string(origin.client_address);
  event.request_id = std::string(origin.request_id);
  const Error invalid = Unauthenticated(std::string(kInvalidTokenError));
  // Anyone can send a token, so every refusal of one goes through the per-address throttle, the
  // live tokens' refusals too: were only unknown tokens held (answered without a durable write),
  // the time an answer takes would tell an attacker over budget which stolen tokens are real.
  auto refuse = [&](AccountReason reason) -> Error {
    event.reason = reason;
    Status recorded = EmitAnonymous(event);
    return recorded.ok() ? invalid : recorded.error();
  };
  auto unknown = [&]() -> Error { return refuse(AccountReason::kUnknownToken); };
  if (bearer_token.size() != kTokenTextLength) return unknown();
  Result<store::BearerTokenRecord> token =
      store_.GetBearerToken(TokenHashOrEmpty(AsBytes(bearer_token)));
  if (!token.ok()) {
    if (token.error().code() == ErrorCode::kNotFound) return unknown();
    event.reason = AccountReason::kError;
    return Fail(event, token.error());
  }
  event.actor_id = token->account_id;
  if (token->revoked_at) return refuse(AccountReason::kTokenRevoked);
  if (now >= token->expires_at) return refuse(AccountReason::kTokenExpired);
  Result<store::AccountRecord> account = store_.GetAccountById(token->account_id);
  if (!account.ok()) {
    event.reason = AccountReason::kError;
    return Fail(event, account.error());
  }
  event.actor_name = account->name;
  event.actor_roles = account->roles;
  event.object = account->name;
  if (account->state != AccountState::kActive) return refuse(AccountReason::kAccountDisabled);
  if (IsLockedAt(*account, now)) {
    event.locked_until = account->locked_until;
    return refuse(AccountReason::kAccountLocked);
  }
  // Fingerprints are stored and reported by the transport as lower-case hex.
  if (account->kind == AccountKind::kService &&
      (origin.client_cert_sha256.empty() ||
       origin.client_cert_sha256 != account->mtls_fingerprint.value_or(""))) {
    event.reason = AccountReason::kCertificateMismatch;
    event.details["mtls_fingerprint"] = origin.client_cert_sha256.empty()
                                            ? std::string("none")
                                            : std::string(origin.client_cert_sha256.substr(0, 64));
    // The generic answer: telling the holder of a stolen token why would confirm it is live.
    return refuse(AccountReason::kCertificateMismatch);
  }
  Principal principal = PrincipalOf(*account);
  principal.token_hash = std::move(token->token_hash);
  return principal;
}

Result<bool> AccountService::OwnsLiveToken(const Principal& caller, std::string_view bearer_token,
                                           CallOrigin origin) {
  const TimePoint now = clock_.Now();
  AccountEvent event;
  event.time = now;
  event.action = AccountAction::kTokenRejected;
  event.actor_id = caller.account_id;
  event.actor_name = caller.name;
  event.actor_roles = caller.roles;
  event.auth_method = "bearer";
  event.client_address = std::string(origin.client_address);
  event.request_id = std::string(origin.request_id);
  event.details["purpose"] = "revoke";
  auto not_own = [&](AccountReason reason) -> Result<bool> {
    event.reason = reason;
    SIGNET_TRY(Emit(std::move(event)));
    return false;
  };
  if (bearer_token.size() != kTokenTextLength) return not_own(AccountReason::kUnknownToken);
  Result<store::BearerTokenRecord> token =
      store_.GetBearerToken(TokenHashOrEmpty(AsBytes(bearer_token)));
  if (!token.ok()) {
    if (token.error().code() == ErrorCode::kNotFound) return not_own(AccountReason::kUnknownToken);
    return token.error();
  }
  if (token->account_id != caller.account_id) {
    // Another account's token: the owner, by id, is the object; its state is not looked at.
    event.object = token->account_id;
    return not_own(AccountReason::kPermissionDenied);
  }
  if (token->revoked_at) return not_own(AccountReason::kTokenRevoked);
  if (now >= token->expires_at) return not_own(AccountReason::kTokenExpired);
  return true;
}

Status AccountService::RevokeToken(std::string_view bearer_token, CallOrigin origin) {
  const TimePoint now = clock_.Now();
  AccountEvent event;
  event.time = now;
  event.action = AccountAction::kTokenRevoke;
  event.auth_method = "bearer";
  event.client_address = std::string(origin.client_address);
  event.request_id = std::string(origin.request_id);
  const Error invalid = Unauthenticated(std::string(kInvalidTokenError));
  if (bearer_token.size() != kTokenTextLength) {
    event.reason = AccountReason::kUnknownToken;
    return Fail(event, invalid);
  }
  SIGNET_ASSIGN_OR_RETURN(const Bytes hash, TokenHash(AsBytes(bearer_token)));
  Result<store::BearerTokenRecord> token = store_.GetBearerToken(hash);
  if (!token.ok()) {
    event.reason = token.error().code() == ErrorCode::kNotFound ? AccountReason::kUnknownToken
                                                                : AccountReason::kError;
    return Fail(event, event.reason == AccountReason::kError ? token.error() : invalid);
  }
  event.actor_id = token->account_id;
  if (Status revoked =
          Emit(event, [&](AuditDetails&) { return store_.RevokeBearerToken(hash, now); });
      !revoked.ok()) {
    event.reason = AccountReason::kError;
    return Fail(event, revoked.error());
  }
  return OkStatus();
}

bool AccountService::IsWrongCurrentPassword(const Error& error) {
  return error.code() == ErrorCode::kUnauthenticated &&
         error.message().starts_with(kWrongCurrentPassword);
}

Status AccountService::ChangePassword(const AccountCaller& who, const SecretBytes& old_password,
                                      const SecretBytes& new_password) {
  const TimePoint now = clock_.Now();
  AccountEvent event =
      MakeEvent(AccountAction::kAccountChange, AccountReason::kSuccess, who, who.principal.name);
  event.details["change"] = "password";
  Result<store::AccountRecord> account = store_.GetAccountById(who.principal.account_id);
  if (!account.ok()) {
    event.reason = AccountReason::kError;
    return Fail(event, account.error());
  }
  if (account->kind != AccountKind::kPerson || !account->password_hash) {
    event.reason = AccountReason::kNotAPerson;
    return Fail(event, FailedPrecondition("account '" + account->name + "' has no password"));
  }
  bool old_ok = false;
  if (ValidPasswordLength(old_password, options_.max_password_length)) {
    Result<bool> verified = hasher_.Verify(*account->password_hash, old_password);
    if (!verified.ok()) {
      event.reason = AccountReason::kError;
      return Fail(event, verified.error());
    }
    old_ok = *verified;
  }
  if (!old_ok) {
    event.reason = AccountReason::kWrongPassword;
    // Counted as at login, with the lockout recorded after the failure that caused it.
    return FailCounted(std::move(event), *account, now,
                       Unauthenticated(std::string(kWrongCurrentPassword)));
  }
  std::string problem;
  // The minimum counts characters (UTF-8 code points: a byte that does not continue one starts
  // one), not bytes: six CJK characters are 18 bytes but six characters. The maximum bounds the
  // hash's input, in bytes.
  size_t characters = 0;
  for (uint8_t b : new_password.view()) characters += (b & 0xC0) != 0x80 ? 1 : 0;
  if (characters < options_.min_password_length) {
    problem = "the new password must have at least " +
              std::to_string(options_.min_password_length) + " characters";
  } else if (new_password.size() > options_.max_password_length) {
    problem = "the new password must have at most " + std::to_string(options_.max_password_length) +
              " bytes (UTF-8)";
  } else if (new_password.Equals(old_password)) {
    problem = "the new password must differ from the current one";
  } else if (ConstantTimeEquals(new_password.view(), AsBytes(account->name))) {
    problem = "the new password must not be the account name";
  }
  if (!problem.empty()) {
    event.reason = AccountReason::kInvalidArgument;
    return Fail(event, InvalidArgument(std::move(problem)));
  }
  Result<std::string> hash = hasher_.Hash(new_password);
  if (!hash.ok()) {
    event.reason = AccountReason::kError;
    return Fail(event, hash.error());
  }
  // Whoever learnt the old password may hold a session from it: the change ends every session
  // of the account but the caller's own (which proved the old password just now), in the same
  // transaction as the new password and the event that records both.
  // Inside that transaction the account and the caller's session are read again: a password
  // change, disable, lock or revocation that committed while the hashes were computed above must
  // not be overridden by a change decided on the old password (it would end the other change's
  // sessions and keep the caller's).
  AuditedChange change = [&](AuditDetails& details) -> Status {
    SIGNET_ASSIGN_OR_RETURN(store::AccountRecord current, store_.GetAccountById(account->id));
    bool session_live = true;
    if (!who.principal.token_hash.empty()) {
      Result<store::BearerTokenRecord> token = store_.GetBearerToken(who.principal.token_hash);
      if (!token.ok() && token.error().code() != ErrorCode::kNotFound) return token.error();
      session_live = token.ok() && !token->revoked_at && now < token->expires_at &&
                     token->account_id == account->id;
    }
    if (current.state != AccountState::kActive || IsLockedAt(current, now) ||
        current.password_hash != account->password_hash || !session_live) {
      return Unauthenticated(
          "the account's password, state or session changed during the password change; log in "
          "again");
    }
    SIGNET_ASSIGN_OR_RETURN(int64_t revoked,
                            store_.RevokeAccountTokens(account->id, now, who.principal.token_hash));
    details["tokens_revoked"] = std::to_string(revoked);
    return store_.SetPasswordHash(account->id, *hash, /*must_change_password=*/false, now);
  };
  if (Status changed = Emit(event, change); !changed.ok()) {
    event.reason = AccountReason::kError;
    return Fail(event, changed.error());
  }
  return OkStatus();
}

}  // namespace signet::service
