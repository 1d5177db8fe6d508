// SqliteStore: accounts and bearer tokens (schema migration 2). Kept apart from sqlite_store.cc so
// the key and account parts of the adapter can change independently.
//
// The two operations that decide security outcomes under concurrency are single statements whose
// WHERE clause carries the condition (RecordTotpStep) or whose arithmetic happens inside SQLite
// (RecordLoginFailure), so they are atomic between threads, processes and, with the same SQL on
// PostgreSQL later, nodes.
#include <sqlite3.h>

#include <mutex>
#include <string>
#include <utility>

#include "store/sqlite/internal/sqlite_handles.h"
#include "store/sqlite/sqlite_store.h"

namespace signet::store {
namespace {

using sqlite_internal::Connection;
using sqlite_internal::Query;
using sqlite_internal::Transaction;

constexpr std::string_view kAccountColumns =
    "id, name, kind, roles, state, password_hash, totp_seed_sealed, totp_last_step,"
    " failed_attempts, locked_until, mtls_fingerprint, must_change_password, created_at,"
    " updated_at";

std::string SelectAccountsWhere(std::string_view where) {
  return "SELECT " + std::string(kAccountColumns) + " FROM accounts " + std::string(where);
}

const std::string& SelectAccountById() {
  static const std::string sql = SelectAccountsWhere("WHERE id = ?1");
  return sql;
}
const std::string& SelectAccountByName() {
  static const std::string sql = SelectAccountsWhere("WHERE name = ?1");
  return sql;
}
const std::string& SelectAccountByFingerprint() {
  static const std::string sql = SelectAccountsWhere("WHERE mtls_fingerprint = ?1");
  return sql;
}
const std::string& SelectAllAccounts() {
  static const std::string sql = SelectAccountsWhere("ORDER BY name");
  return sql;
}

constexpr std::string_view kInsertAccount =
    "INSERT INTO accounts (id, name, kind, roles, state, password_hash, totp_seed_sealed,"
    " totp_last_step, failed_attempts, locked_until, mtls_fingerprint, must_change_password,"
    " created_at, updated_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";
constexpr std::string_view kAccountNameExists = "SELECT 1 FROM accounts WHERE name = ?1";
constexpr std::string_view kAccountIdExists = "SELECT 1 FROM accounts WHERE id = ?1";
constexpr std::string_view kFingerprintExists =
    "SELECT 1 FROM accounts WHERE mtls_fingerprint = ?1";
constexpr std::string_view kRecordTotpStep =
    "UPDATE accounts SET totp_last_step = ?1, updated_at = ?2"
    " WHERE id = ?3 AND totp_last_step < ?1 AND (locked_until IS NULL OR locked_until <= ?2)";
constexpr std::string_view kBurnTotpStep =
    "UPDATE accounts SET totp_last_step = ?1, updated_at = ?2 WHERE id = ?3 AND totp_last_step < "
    "?1";
constexpr std::string_view kAccountExists = "SELECT 1 FROM accounts WHERE id = ?1";
// The count and the lock are computed from the row's current values inside the one statement.
constexpr std::string_view kRecordLoginFailure =
    "UPDATE accounts SET"
    " locked_until = CASE WHEN failed_attempts + 1 >= ?1 THEN ?2 ELSE locked_until END,"
    " failed_attempts = CASE WHEN failed_attempts + 1 >= ?1 THEN 0 ELSE failed_attempts + 1 END,"
    " updated_at = ?3"
    " WHERE id = ?4 AND (locked_until IS NULL OR locked_until <= ?3)"
    " RETURNING failed_attempts, locked_until";
constexpr std::string_view kClearLoginFailures =
    "UPDATE accounts SET failed_attempts = 0, locked_until = NULL, updated_at = ?1 WHERE id = ?2";
constexpr std::string_view kForgiveLoginFailures =
    "UPDATE accounts SET failed_attempts = 0, locked_until = NULL, updated_at = ?1"
    " WHERE id = ?2 AND (locked_until IS NULL OR locked_until <= ?1)";
constexpr std::string_view kCompareAndSetAccountState =
    "UPDATE accounts SET state = ?1, updated_at = ?2 WHERE id = ?3 AND state = ?4";
constexpr std::string_view kSelectAccountNameAndState =
    "SELECT name, state FROM accounts WHERE id = ?1";
constexpr std::string_view kSetAccountRoles =
    "UPDATE accounts SET roles = ?1, updated_at = ?2 WHERE id = ?3";
constexpr std::string_view kSetPasswordHash =
    "UPDATE accounts SET password_hash = ?1, must_change_password = ?2, updated_at = ?3"
    " WHERE id = ?4";
constexpr std::string_view kSetTotpSeed =
    "UPDATE accounts SET totp_seed_sealed = ?1, totp_last_step = 0, updated_at = ?2 WHERE id = ?3";

constexpr std::string_view kInsertToken =
    "INSERT INTO bearer_tokens (token_hash, account_id, created_at, expires_at, revoked_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5)";
constexpr std::string_view kTokenExists = "SELECT 1 FROM bearer_tokens WHERE token_hash = ?1";
constexpr std::string_view kSelectToken =
    "SELECT token_hash, account_id, created_at, expires_at, revoked_at FROM bearer_tokens"
    " WHERE token_hash = ?1";
// COALESCE keeps the first revocation time, so repeating a revocation changes nothing.
constexpr std::string_view kRevokeToken =
    "UPDATE bearer_tokens SET revoked_at = COALESCE(revoked_at, ?1) WHERE token_hash = ?2";
constexpr std::string_view kRevokeAccountTokens =
    "UPDATE bearer_tokens SET revoked_at = ?1"
    " WHERE account_id = ?2 AND revoked_at IS NULL AND token_hash IS NOT ?3";
constexpr std::string_view kDeleteExpiredTokens = "DELETE FROM bearer_tokens WHERE expires_at < ?1";

Status BindOptional(Query& query, int index, const std::optional<std::string>& value) {
  return value ? query.Bind(index, std::string_view(*value)) : query.BindNull(index);
}
Status BindOptional(Query& query, int index, const std::optional<Bytes>& value) {
  return value ? query.Bind(index, ByteView(*value)) : query.BindNull(index);
}
Status BindOptional(Query& query, int index, const std::optional<TimePoint>& value) {
  return value ? query.Bind(index, ToUnixSeconds(*value)) : query.BindNull(index);
}

std::optional<TimePoint> OptionalTime(const Query& query, int column) {
  if (query.IsNull(column)) return std::nullopt;
  return FromUnixSeconds(query.Int64(column));
}

// Reads the row the query is on (columns in the order of kAccountColumns).
Result<AccountRecord> ReadAccountRow(const Query& query, const std::string& path) {
  AccountRecord account;
  account.id = query.Text(0);
  account.name = query.Text(1);
  auto corrupt = [&](std::string_view field, const Error& error) {
    return DataLoss(path + ": account '" + account.name + "' has an invalid " + std::string(field) +
                    ": " + error.message());
  };
  Result<AccountKind> kind = ParseAccountKind(query.Text(2));
  if (!kind.ok()) return corrupt("kind", kind.error());
  account.kind = *kind;
  Result<RoleSet> roles = RoleSet::Parse(query.Text(3));
  if (!roles.ok()) return corrupt("role list", roles.error());
  account.roles = *roles;
  Result<AccountState> state = ParseAccountState(query.Text(4));
  if (!state.ok()) return corrupt("state", state.error());
  account.state = *state;
  if (!query.IsNull(5)) account.password_hash = query.Text(5);
  if (!query.IsNull(6)) account.totp_seed_sealed = query.Blob(6);
  account.totp_last_step = query.Int64(7);
  account.failed_attempts = query.Int64(8);
  account.locked_until = OptionalTime(query, 9);
  if (!query.IsNull(10)) account.mtls_fingerprint = query.Text(10);
  account.must_change_password = query.Int64(11) != 0;
  account.created_at = FromUnixSeconds(query.Int64(12));
  account.updated_at = FromUnixSeconds(query.Int64(13));
  return account;
}

Result<bool> Exists(Connection& conn, std::string_view sql, std::string_view value,
                    std::string_view context) {
  SIGNET_ASSIGN_OR_RETURN(Query query, conn.Prepare(sql, context));
  SIGNET_TRY(query.Bind(1, value));
  return query.Step();
}

Result<bool> Exists(Connection& conn, std::string_view sql, ByteView value,
                    std::string_view context) {
  SIGNET_ASSIGN_OR_RETURN(Query query, conn.Prepare(sql, context));
  SIGNET_TRY(query.Bind(1, value));
  return query.Step();
}

}  // namespace

Status SqliteStore::InsertAccount(const AccountRecord& account) {
  if (account.id.empty() || account.name.empty()) {
    return InvalidArgument("an account record needs a non-empty id and name");
  }
  const std::string context = "cannot insert account '" + account.name + "'";
  std::lock_guard lock(mu_);
  SIGNET_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn_, context));
  // Checked first so the error names what is taken; the UNIQUE constraints back this up.
  SIGNET_ASSIGN_OR_RETURN(bool taken, Exists(*conn_, kAccountNameExists, account.name, context));
  if (taken) return AlreadyExists("an account named '" + account.name + "' already exists");
  SIGNET_ASSIGN_OR_RETURN(taken, Exists(*conn_, kAccountIdExists, account.id, context));
  if (taken) return AlreadyExists("an account with id '" + account.id + "' already exists");
  if (account.mtls_fingerprint) {
    SIGNET_ASSIGN_OR_RETURN(taken,
                            Exists(*conn_, kFingerprintExists, *account.mtls_fingerprint, context));
    if (taken) {
      return AlreadyExists("another account already uses the client certificate " +
                           *account.mtls_fingerprint);
    }
  }
  {
    SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kInsertAccount, context));
    SIGNET_TRY(query.Bind(1, std::string_view(account.id)));
    SIGNET_TRY(query.Bind(2, std::string_view(account.name)));
    SIGNET_TRY(query.Bind(3, AccountKindName(account.kind)));
    SIGNET_TRY(query.Bind(4, std::string_view(account.roles.ToString())));
    SIGNET_TRY(query.Bind(5, AccountStateName(account.state)));
    SIGNET_TRY(BindOptional(query, 6, account.password_hash));
    SIGNET_TRY(BindOptional(query, 7, account.totp_seed_sealed));
    SIGNET_TRY(query.Bind(8, account.totp_last_step));
    SIGNET_TRY(query.Bind(9, account.failed_attempts));
    SIGNET_TRY(BindOptional(query, 10, account.locked_until));
    SIGNET_TRY(BindOptional(query, 11, account.mtls_fingerprint));
    SIGNET_TRY(query.Bind(12, int64_t{account.must_change_password ? 1 : 0}));
    SIGNET_TRY(query.Bind(13, ToUnixSeconds(account.created_at)));
    SIGNET_TRY(query.Bind(14, ToUnixSeconds(account.updated_at)));
    SIGNET_TRY(query.Run());
  }
  return tx.Commit();
}

Result<AccountRecord> SqliteStore::GetAccountWhere(std::string_view sql, std::string_view value,
                                                   std::string_view what) {
  const std::string context = "cannot read account " + std::string(what);
  std::lock_guard lock(mu_);
  SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(sql, context));
  SIGNET_TRY(query.Bind(1, value));
  SIGNET_ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row) return NotFound("no account " + std::string(what));
  return ReadAccountRow(query, path_);
}

Result<AccountRecord> SqliteStore::GetAccountById(std::string_view id) {
  return GetAccountWhere(SelectAccountById(), id, "with id '" + std::string(id) + "'");
}

Result<AccountRecord> SqliteStore::GetAccountByName(std::string_view name) {
  return GetAccountWhere(SelectAccountByName(), name, "named '" + std::string(name) + "'");
}

Result<AccountRecord> SqliteStore::GetAccountByFingerprint(std::string_view fingerprint) {
  return GetAccountWhere(SelectAccountByFingerprint(), fingerprint,
                         "with client certificate " + std::string(fingerprint));
}

Result<std::vector<AccountRecord>> SqliteStore::ListAccounts() {
  std::lock_guard lock(mu_);
  SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(SelectAllAccounts(), "cannot list accounts"));
  std::vector<AccountRecord> accounts;
  for (;;) {
    SIGNET_ASSIGN_OR_RETURN(bool row, query.Step());
    if (!row) break;
    SIGNET_ASSIGN_OR_RETURN(AccountRecord account, ReadAccountRow(query, path_));
    accounts.push_back(std::move(account));
  }
  return accounts;
}

Result<bool> SqliteStore::RecordTotpStep(std::string_view id, int64_t step, TimePoint now) {
  return SetTotpStep(kRecordTotpStep, id, step, now);
}

Result<bool> SqliteStore::BurnTotpStep(std::string_view id, int64_t step, TimePoint now) {
  return SetTotpStep(kBurnTotpStep, id, step, now);
}

Result<bool> SqliteStore::SetTotpStep(std::string_view sql, std::string_view id, int64_t step,
                                      TimePoint now) {
  const std::string context = "cannot record the TOTP step of account '" + std::string(id) + "'";
  std::lock_guard lock(mu_);
  int64_t changed = 0;
  {
    SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(sql, context));
    SIGNET_TRY(query.Bind(1, step));
    SIGNET_TRY(query.Bind(2, ToUnixSeconds(now)));
    SIGNET_TRY(query.Bind(3, id));
    SIGNET_ASSIGN_OR_RETURN(changed, query.Run());
  }
  if (changed == 1) return true;
  SIGNET_ASSIGN_OR_RETURN(bool exists, Exists(*conn_, kAccountExists, id, context));
  if (!exists) return NotFound("no account with id '" + std::string(id) + "'");
  return false;
}

Result<LoginFailureState> SqliteStore::RecordLoginFailure(std::string_view id,
                                                          int64_t lock_threshold,
                                                          TimePoint lock_until, TimePoint now) {
  if (lock_threshold < 1) return InvalidArgument("the lock threshold must be at least 1");
  const std::string context = "cannot count a failed login of account '" + std::string(id) + "'";
  std::lock_guard lock(mu_);
  SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kRecordLoginFailure, context));
  SIGNET_TRY(query.Bind(1, lock_threshold));
  SIGNET_TRY(query.Bind(2, ToUnixSeconds(lock_until)));
  SIGNET_TRY(query.Bind(3, ToUnixSeconds(now)));
  SIGNET_TRY(query.Bind(4, id));
  SIGNET_ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row) {
    // No row changed: no such account, or one locked meanwhile (counted as nothing).
    SIGNET_ASSIGN_OR_RETURN(bool exists, Exists(*conn_, kAccountExists, id, context));
    if (!exists) return NotFound("no account with id '" + std::string(id) + "'");
    return LoginFailureState{};
  }
  LoginFailureState state;
  state.failed_attempts = query.Int64(0);
  // The count drops to 0 only when this failure reached the threshold and set the lock; otherwise
  // locked_until may hold an older, expired lock, which is not reported.
  if (state.failed_attempts == 0) state.locked_until = OptionalTime(query, 1);
  // Finish the statement so its write is complete before the lock is released.
  SIGNET_ASSIGN_OR_RETURN(bool more, query.Step());
  if (more) return InternalError(context + ": several accounts have this id");
  return state;
}

Status SqliteStore::UpdateOneAccount(std::string_view sql, std::string_view id,
                                     std::string_view what,
                                     const std::function<Status(Query&)>& bind) {
  const std::string context =
      "cannot " + std::string(what) + " of account '" + std::string(id) + "'";
  std::lock_guard lock(mu_);
  SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(sql, context));
  SIGNET_TRY(bind(query));
  SIGNET_ASSIGN_OR_RETURN(int64_t changed, query.Run());
  if (changed == 0) return NotFound("no account with id '" + std::string(id) + "'");
  return OkStatus();
}

Status SqliteStore::ClearLoginFailures(std::string_view id, TimePoint now) {
  return UpdateOneAccount(kClearLoginFailures, id, "clear the failed logins",
                          [&](Query& query) -> Status {
                            SIGNET_TRY(query.Bind(1, ToUnixSeconds(now)));
                            return query.Bind(2, id);
                          });
}

Result<bool> SqliteStore::ForgiveLoginFailures(std::string_view id, TimePoint now) {
  const std::string context = "cannot clear the failed logins of account '" + std::string(id) + "'";
  std::lock_guard lock(mu_);
  SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kForgiveLoginFailures, context));
  SIGNET_TRY(query.Bind(1, ToUnixSeconds(now)));
  SIGNET_TRY(query.Bind(2, id));
  SIGNET_ASSIGN_OR_RETURN(int64_t changed, query.Run());
  if (changed != 0) return true;
  // No row changed: no such account, or one locked meanwhile.
  SIGNET_ASSIGN_OR_RETURN(bool exists, Exists(*conn_, kAccountExists, id, context));
  if (!exists) return NotFound("no account with id '" + std::string(id) + "'");
  return false;
}

Status SqliteStore::UpdateAccountState(std::string_view id, AccountState from, AccountState to,
                                       TimePoint now) {
  const std::string context =
      "cannot change the state of account with id '" + std::string(id) + "'";
  std::lock_guard lock(mu_);
  SIGNET_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn_, context));
  int64_t changed = 0;
  {
    SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kCompareAndSetAccountState, context));
    SIGNET_TRY(query.Bind(1, AccountStateName(to)));
    SIGNET_TRY(query.Bind(2, ToUnixSeconds(now)));
    SIGNET_TRY(query.Bind(3, id));
    SIGNET_TRY(query.Bind(4, AccountStateName(from)));
    SIGNET_ASSIGN_OR_RETURN(changed, query.Run());
  }
  if (changed == 1) return tx.Commit();
  SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kSelectAccountNameAndState, context));
  SIGNET_TRY(query.Bind(1, id));
  SIGNET_ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row) return NotFound("no account with id '" + std::string(id) + "'");
  return FailedPrecondition("account '" + query.Text(0) + "' is " + query.Text(1) + ", not " +
                            std::string(AccountStateName(from)));
}

Status SqliteStore::SetAccountRoles(std::string_view id, const RoleSet& roles, TimePoint now) {
  const std::string text = roles.ToString();
  return UpdateOneAccount(kSetAccountRoles, id, "set the roles", [&](Query& query) -> Status {
    SIGNET_TRY(query.Bind(1, std::string_view(text)));
    SIGNET_TRY(query.Bind(2, ToUnixSeconds(now)));
    return query.Bind(3, id);
  });
}

Status SqliteStore::SetPasswordHash(std::string_view id, std::string_view password_hash,
                                    bool must_change_password, TimePoint now) {
  return UpdateOneAccount(kSetPasswordHash, id, "set the password", [&](Query& query) -> Status {
    SIGNET_TRY(query.Bind(1, password_hash));
    SIGNET_TRY(query.Bind(2, int64_t{must_change_password ? 1 : 0}));
    SIGNET_TRY(query.Bind(3, ToUnixSeconds(now)));
    return query.Bind(4, id);
  });
}

Status SqliteStore::SetTotpSeed(std::string_view id, ByteView sealed_seed, TimePoint now) {
  return UpdateOneAccount(kSetTotpSeed, id, "set the TOTP seed", [&](Query& query) -> Status {
    SIGNET_TRY(query.Bind(1, sealed_seed));
    SIGNET_TRY(query.Bind(2, ToUnixSeconds(now)));
    return query.Bind(3, id);
  });
}

Status SqliteStore::InsertBearerToken(const BearerTokenRecord& token) {
  if (token.token_hash.size() != 32) {
    return InvalidArgument("a bearer token hash has 32 bytes (SHA-256), not " +
                           std::to_string(token.token_hash.size()));
  }
  const std::string context = "cannot store a bearer token for account '" + token.account_id + "'";
  std::lock_guard lock(mu_);
  SIGNET_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn_, context));
  SIGNET_ASSIGN_OR_RETURN(
      bool exists, Exists(*conn_, kAccountExists, std::string_view(token.account_id), context));
  if (!exists) return NotFound("no account with id '" + token.account_id + "'");
  SIGNET_ASSIGN_OR_RETURN(bool taken,
                          Exists(*conn_, kTokenExists, ByteView(token.token_hash), context));
  if (taken) return AlreadyExists(context + ": a token with this hash already exists");
  {
    SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kInsertToken, context));
    SIGNET_TRY(query.Bind(1, ByteView(token.token_hash)));
    SIGNET_TRY(query.Bind(2, std::string_view(token.account_id)));
    SIGNET_TRY(query.Bind(3, ToUnixSeconds(token.created_at)));
    SIGNET_TRY(query.Bind(4, ToUnixSeconds(token.expires_at)));
    SIGNET_TRY(BindOptional(query, 5, token.revoked_at));
    SIGNET_TRY(query.Run());
  }
  return tx.Commit();
}

Result<BearerTokenRecord> SqliteStore::GetBearerToken(ByteView token_hash) {
  std::lock_guard lock(mu_);
  SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kSelectToken, "cannot read a bearer token"));
  SIGNET_TRY(query.Bind(1, token_hash));
  SIGNET_ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row) return NotFound("no such bearer token");
  BearerTokenRecord token;
  token.token_hash = query.Blob(0);
  token.account_id = query.Text(1);
  token.created_at = FromUnixSeconds(query.Int64(2));
  token.expires_at = FromUnixSeconds(query.Int64(3));
  token.revoked_at = OptionalTime(query, 4);
  return token;
}

Status SqliteStore::RevokeBearerToken(ByteView token_hash, TimePoint now) {
  std::lock_guard lock(mu_);
  SIGNET_ASSIGN_OR_RETURN(Query query,
                          conn_->Prepare(kRevokeToken, "cannot revoke a bearer token"));
  SIGNET_TRY(query.Bind(1, ToUnixSeconds(now)));
  SIGNET_TRY(query.Bind(2, token_hash));
  SIGNET_ASSIGN_OR_RETURN(int64_t changed, query.Run());
  if (changed == 0) return NotFound("no such bearer token");
  return OkStatus();
}

Result<int64_t> SqliteStore::RevokeAccountTokens(std::string_view account_id, TimePoint now,
                                                 ByteView keep) {
  std::lock_guard lock(mu_);
  SIGNET_ASSIGN_OR_RETURN(
      Query query,
      conn_->Prepare(kRevokeAccountTokens, "cannot revoke the bearer tokens of account '" +
                                               std::string(account_id) + "'"));
  SIGNET_TRY(query.Bind(1, ToUnixSeconds(now)));
  SIGNET_TRY(query.Bind(2, account_id));
  SIGNET_TRY(keep.empty() ? query.BindNull(3) : query.Bind(3, keep));
  return query.Run();
}

Result<int64_t> SqliteStore::DeleteExpiredBearerTokens(TimePoint cutoff) {
  std::lock_guard lock(mu_);
  SIGNET_ASSIGN_OR_RETURN(
      Query query, conn_->Prepare(kDeleteExpiredTokens, "cannot delete expired bearer tokens"));
  SIGNET_TRY(query.Bind(1, ToUnixSeconds(cutoff)));
  return query.Run();
}

}  // namespace signet::store
