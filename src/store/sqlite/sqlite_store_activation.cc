// SqliteStore: activations (SADs), grants, key policies and rate counts (schema migration 3). The
// rules of consuming an activation live in store.cc (CheckActivationRequest,
// CheckActivationConsumable), shared with every adapter. A consumption is decided and written in
// one BEGIN IMMEDIATE transaction (the rules on the activation row, then the per-hash rules by
// conditional updates), so the checks and the updates see the same rows even when other
// processes write to the file; a refusal rolls that transaction back and a second one reads the
// requested rows to name the reason.
#include <sqlite3.h>

#include <optional>
#include <set>
#include <string>
#include <utility>

#include "store/sqlite/internal/sqlite_handles.h"
#include "store/sqlite/sqlite_store.h"

namespace signet::store {
namespace {

using sqlite_internal::BindAll;
using sqlite_internal::Connection;
using sqlite_internal::FlushDeferredScope;
using sqlite_internal::Query;
using sqlite_internal::Transaction;

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) {
    if (!out.empty()) out += ',';
    out += n;
  }
  return out;
}

std::vector<std::string> SplitNames(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    out.push_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

Status CheckActivationShape(const ActivationRecord& a) {
  if (a.sad_hash.size() != 32) return InvalidArgument("an activation needs a 32-byte SAD hash");
  if (a.hashes.empty()) return InvalidArgument("an activation needs at least one hash");
  std::set<Bytes> seen;
  for (const ActivationHash& h : a.hashes) {
    if (h.hash.empty()) return InvalidArgument("an activation hash is empty");
    if (!seen.insert(h.hash).second) {
      return InvalidArgument("an activation lists the same hash twice");
    }
  }
  if (a.num_signatures <= 0 || a.signatures_used < 0 || a.signatures_used > a.num_signatures) {
    return InvalidArgument("an activation needs 0 <= signatures_used <= num_signatures, > 0");
  }
  return OkStatus();
}

constexpr std::string_view kSelectActivation =
    "SELECT account_id, key_id, hash_algorithm, num_signatures, signatures_used, created_at,"
    " expires_at FROM activations WHERE sad_hash = ?1";
constexpr std::string_view kSelectActivationHashes =
    "SELECT hash, consumed_at FROM activation_hashes WHERE sad_hash = ?1 ORDER BY rowid";
// One hash of a SAD, by the (sad_hash, hash) primary key.
constexpr std::string_view kSelectActivationHash =
    "SELECT consumed_at FROM activation_hashes WHERE sad_hash = ?1 AND hash = ?2";
constexpr std::string_view kInsertActivation =
    "INSERT INTO activations (sad_hash, account_id, key_id, hash_algorithm, num_signatures,"
    " signatures_used, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
constexpr std::string_view kInsertActivationHash =
    "INSERT INTO activation_hashes (sad_hash, hash, consumed_at) VALUES (?1, ?2, NULL)";
constexpr std::string_view kInsertConsumedActivationHash =
    "INSERT INTO activation_hashes (sad_hash, hash, consumed_at) VALUES (?1, ?2, ?3)";
constexpr std::string_view kDeleteActivationHashes =
    "DELETE FROM activation_hashes WHERE sad_hash = ?1";
constexpr std::string_view kDeleteActivation = "DELETE FROM activations WHERE sad_hash = ?1";
constexpr std::string_view kDeleteExpiredActivationHashes =
    "DELETE FROM activation_hashes WHERE sad_hash IN"
    " (SELECT sad_hash FROM activations WHERE expires_at < ?1)";
constexpr std::string_view kDeleteExpiredActivations =
    "DELETE FROM activations WHERE expires_at < ?1";
constexpr std::string_view kConsumeHash =
    "UPDATE activation_hashes SET consumed_at = ?1"
    " WHERE sad_hash = ?2 AND hash = ?3 AND consumed_at IS NULL";
constexpr std::string_view kAddSignaturesUsed =
    "UPDATE activations SET signatures_used = signatures_used + ?1"
    " WHERE sad_hash = ?2 AND signatures_used + ?1 <= num_signatures";
// The key's state and whether the account still holds a grant on it; no row for an unknown key.
constexpr std::string_view kSelectKeyAndGrant =
    "SELECT state, EXISTS (SELECT 1 FROM key_grants WHERE key_id = ?1 AND account_id = ?2)"
    " FROM keys WHERE id = ?1";
constexpr std::string_view kSelectCounts =
    "SELECT (SELECT coalesce(sum(count), 0) FROM signature_counts"
    "         WHERE key_id = ?1 AND minute = ?3),"
    "       (SELECT coalesce(sum(count), 0) FROM signature_counts"
    "         WHERE key_id = ?1 AND account_id = ?2 AND minute = ?3),"
    "       (SELECT coalesce(sum(count), 0) FROM signature_counts"
    "         WHERE account_id = ?2 AND minute = ?3)";
constexpr std::string_view kAddCount =
    "INSERT INTO signature_counts (key_id, account_id, minute, count) VALUES (?1, ?2, ?3, ?4)"
    " ON CONFLICT (key_id, account_id, minute) DO UPDATE SET count = count + excluded.count";
constexpr std::string_view kPruneCounts = "DELETE FROM signature_counts WHERE minute < ?1";
constexpr std::string_view kKeyExists = "SELECT 1 FROM keys WHERE id = ?1";
constexpr std::string_view kGrantExists =
    "SELECT 1 FROM key_grants WHERE key_id = ?1 AND account_id = ?2";
constexpr std::string_view kInsertGrant =
    "INSERT INTO key_grants (key_id, account_id, created_at) VALUES (?1, ?2, ?3)";
constexpr std::string_view kDeleteGrant =
    "DELETE FROM key_grants WHERE key_id = ?1 AND account_id = ?2";
constexpr std::string_view kListGrants =
    "SELECT account_id FROM key_grants WHERE key_id = ?1 ORDER BY account_id";
constexpr std::string_view kUpsertPolicy =
    "INSERT INTO key_policies (key_id, allowed_sign_algos, allowed_hash_algos,"
    " max_signatures_per_authorization, rate_per_minute_key, rate_per_minute_account)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (key_id) DO UPDATE SET"
    " allowed_sign_algos = excluded.allowed_sign_algos,"
    " allowed_hash_algos = excluded.allowed_hash_algos,"
    " max_signatures_per_authorization = excluded.max_signatures_per_authorization,"
    " rate_per_minute_key = excluded.rate_per_minute_key,"
    " rate_per_minute_account = excluded.rate_per_minute_account";
constexpr std::string_view kSelectPolicy =
    "SELECT allowed_sign_algos, allowed_hash_algos, max_signatures_per_authorization,"
    " rate_per_minute_key, rate_per_minute_account FROM key_policies WHERE key_id = ?1";

}  // namespace

// ---- helpers (mu_ held) ----

Result<bool> SqliteStore::KeyExistsLocked(std::string_view key_id) {
  SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kKeyExists, "cannot look up key"));
  SIGNET_TRY(query.Bind(1, key_id));
  return query.Step();
}

Result<std::optional<ActivationRecord>> SqliteStore::LoadActivationLocked(
    ByteView sad_hash, const std::vector<Bytes>* only) {
  static constexpr std::string_view kContext = "cannot read activation";
  ActivationRecord a;
  {
    SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kSelectActivation, kContext));
    SIGNET_TRY(query.Bind(1, sad_hash));
    SIGNET_ASSIGN_OR_RETURN(bool row, query.Step());
    if (!row) return std::optional<ActivationRecord>();
    a.sad_hash.assign(sad_hash.begin(), sad_hash.end());
    a.account_id = query.Text(0);
    a.key_id = query.Text(1);
    a.hash_algorithm = query.Text(2);
    a.num_signatures = query.Int64(3);
    a.signatures_used = query.Int64(4);
    a.created_at = FromUnixSeconds(query.Int64(5));
    a.expires_at = FromUnixSeconds(query.Int64(6));
  }
  if (only != nullptr) {
    // Point lookups: a signHash of one hash from a SAD of thousands reads one row, not all.
    for (const Bytes& hash : *only) {
      SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kSelectActivationHash, kContext));
      SIGNET_TRY(BindAll(query, sad_hash, ByteView(hash)));
      SIGNET_ASSIGN_OR_RETURN(bool row, query.Step());
      if (!row) continue;
      ActivationHash h;
      h.hash = hash;
      if (!query.IsNull(0)) h.consumed_at = FromUnixSeconds(query.Int64(0));
      a.hashes.push_back(std::move(h));
    }
    return std::optional<ActivationRecord>(std::move(a));
  }
  SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kSelectActivationHashes, kContext));
  SIGNET_TRY(query.Bind(1, sad_hash));
  for (;;) {
    SIGNET_ASSIGN_OR_RETURN(bool row, query.Step());
    if (!row) break;
    ActivationHash h;
    h.hash = query.Blob(0);
    if (!query.IsNull(1)) h.consumed_at = FromUnixSeconds(query.Int64(1));
    a.hashes.push_back(std::move(h));
  }
  return std::optional<ActivationRecord>(std::move(a));
}

Status SqliteStore::InsertActivationLocked(const ActivationRecord& a) {
  static constexpr std::string_view kContext = "cannot store activation";
  SIGNET_ASSIGN_OR_RETURN(bool key_exists, KeyExistsLocked(a.key_id));
  if (!key_exists) return NotFound("no key with id '" + a.key_id + "'");
  {
    SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kInsertActivation, kContext));
    SIGNET_TRY(BindAll(query, ByteView(a.sad_hash), a.account_id, a.key_id, a.hash_algorithm,
                       a.num_signatures, a.signatures_used, ToUnixSeconds(a.created_at),
                       ToUnixSeconds(a.expires_at)));
    SIGNET_TRY(query.Run());
  }
  for (const ActivationHash& h : a.hashes) {
    if (h.consumed_at.has_value()) {
      SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kInsertConsumedActivationHash, kContext));
      SIGNET_TRY(
          BindAll(query, ByteView(a.sad_hash), ByteView(h.hash), ToUnixSeconds(*h.consumed_at)));
      SIGNET_TRY(query.Run());
    } else {
      SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kInsertActivationHash, kContext));
      SIGNET_TRY(BindAll(query, ByteView(a.sad_hash), ByteView(h.hash)));
      SIGNET_TRY(query.Run());
    }
  }
  return OkStatus();
}

// ---- activations ----

Status SqliteStore::InsertActivation(const ActivationRecord& activation,
                                     int64_t max_open_for_account) {
  SIGNET_TRY(CheckActivationShape(activation));
  std::lock_guard lock(mu_);
  SIGNET_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn_, "cannot store activation"));
  if (max_open_for_account > 0) {
    SIGNET_ASSIGN_OR_RETURN(
        int64_t open, CountOpenActivationsLocked(activation.account_id, activation.created_at));
    if (open >= max_open_for_account) {
      return ResourceExhausted(std::string(kOpenActivationsMessage) + "account '" +
                               activation.account_id + "' holds " + std::to_string(open) +
                               " open authorizations, the most it may hold (" +
                               std::to_string(max_open_for_account) + ")");
    }
  }
  SIGNET_TRY(InsertActivationLocked(activation));
  return tx.Commit();
}

Result<int64_t> SqliteStore::DeleteExpiredActivations(TimePoint cutoff) {
  static constexpr std::string_view kContext = "cannot delete expired activations";
  std::lock_guard lock(mu_);
  SIGNET_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn_, kContext));
  {
    SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kDeleteExpiredActivationHashes, kContext));
    SIGNET_TRY(query.Bind(1, ToUnixSeconds(cutoff)));
    SIGNET_TRY(query.Run());
  }
  int64_t deleted = 0;
  {
    SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kDeleteExpiredActivations, kContext));
    SIGNET_TRY(query.Bind(1, ToUnixSeconds(cutoff)));
    SIGNET_ASSIGN_OR_RETURN(deleted, query.Run());
  }
  SIGNET_TRY(tx.Commit());
  return deleted;
}

Result<ActivationRecord> SqliteStore::GetActivation(ByteView sad_hash) {
  std::lock_guard lock(mu_);
  SIGNET_ASSIGN_OR_RETURN(std::optional<ActivationRecord> a, LoadActivationLocked(sad_hash));
  if (!a.has_value()) return NotFound("no activation with this SAD");
  return std::move(*a);
}

Result<int64_t> SqliteStore::CountOpenActivations(std::string_view account_id, TimePoint now) {
  std::lock_guard lock(mu_);
  return CountOpenActivationsLocked(account_id, now);
}

Result<int64_t> SqliteStore::CountOpenActivationsLocked(std::string_view account_id,
                                                        TimePoint now) {
  // activations_by_account (migration 6) keeps this to the account's unexpired rows.
  static constexpr std::string_view kCountOpen =
      "SELECT count(*) FROM activations WHERE account_id = ?1 AND expires_at > ?2 "
      "AND signatures_used < num_signatures";
  SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kCountOpen, "cannot count activations"));
  SIGNET_TRY(BindAll(query, account_id, ToUnixSeconds(now)));
  SIGNET_ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row) return InternalError("count(*) returned no row");
  return query.Int64(0);
}

Status SqliteStore::ConsumeActivationHashes(const ConsumeActivationRequest& request) {
  static constexpr std::string_view kContext = "cannot consume activation hashes";
  const int64_t now = ToUnixSeconds(request.now);
  const int64_t minute = RateMinute(request.now);
  const auto n = static_cast<int64_t>(request.hashes.size());
  std::lock_guard lock(mu_);
  // Declared before the transactions, so synchronous=FULL is back once they have ended.
  std::optional<FlushDeferredScope> deferred;
  if (request.flush_with_next_commit) {
    SIGNET_ASSIGN_OR_RETURN(FlushDeferredScope scope, FlushDeferredScope::Enter(*conn_, kContext));
    deferred.emplace(std::move(scope));
  }
  auto read_counts = [&]() -> Result<SignatureCounts> {
    SignatureCounts counts;
    SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kSelectCounts, kContext));
    SIGNET_TRY(BindAll(query, request.key_id, request.account_id, minute));
    SIGNET_ASSIGN_OR_RETURN(bool row, query.Step());
    if (row) counts = {query.Int64(0), query.Int64(1), query.Int64(2)};
    return counts;
  };
  // Each transaction takes the write lock before its first read, so no other connection can
  // consume a hash between a check and an update.
  //
  // The common case in one pass: only the activation row is read and checked
  // (CheckActivationRequest), then each hash is consumed by an update that matches only a bound,
  // unconsumed row. If a rule or an update fails, that transaction is rolled back and the full
  // check, reading the requested hash rows, names the reason: the same error, with the same
  // precedence, as checking everything first.
  {
    SIGNET_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn_, kContext));
    static const std::vector<Bytes> kNoHashes;
    SIGNET_ASSIGN_OR_RETURN(std::optional<ActivationRecord> activation,
                            LoadActivationLocked(request.sad_hash, &kNoHashes));
    SIGNET_ASSIGN_OR_RETURN(SignatureCounts counts, read_counts());
    bool allowed = CheckActivationRequest(activation, request, counts).ok();
    for (size_t i = 0; allowed && i < request.hashes.size(); ++i) {
      SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kConsumeHash, kContext));
      SIGNET_TRY(BindAll(query, now, ByteView(request.sad_hash), ByteView(request.hashes[i])));
      SIGNET_ASSIGN_OR_RETURN(int64_t changed, query.Run());
      allowed = changed == 1;
    }
    if (allowed) {
      // Once every rule of the SAD held (store.h: in that order, as MemoryStore checks), checked
      // by the service before and again here, where no disable, destroy or grant revocation can
      // commit in between: a key taken out of use while a request was on its way signs nothing
      // more. An early return rolls the hash updates above back.
      SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kSelectKeyAndGrant, kContext));
      SIGNET_TRY(BindAll(query, request.key_id, request.account_id));
      SIGNET_ASSIGN_OR_RETURN(bool row, query.Step());
      if (!row) return NotFound("key '" + request.key_id + "' does not exist");
      if (query.Text(0) != "active") {
        return FailedPrecondition("key '" + request.key_id + "' is " + query.Text(0) +
                                  "; only an active key can be used");
      }
      if (query.Int64(1) == 0) {
        return PermissionDenied("account '" + request.account_id + "' has no grant on key '" +
                                request.key_id + "'");
      }
    }
    if (allowed) {
      {
        SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kAddSignaturesUsed, kContext));
        SIGNET_TRY(BindAll(query, n, ByteView(request.sad_hash)));
        SIGNET_ASSIGN_OR_RETURN(int64_t changed, query.Run());
        if (changed != 1) {
          return InternalError("activation count changed during its own transaction");
        }
      }
      {
        SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kPruneCounts, kContext));
        SIGNET_TRY(query.Bind(1, minute - 1));
        SIGNET_TRY(query.Run());
      }
      {
        SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kAddCount, kContext));
        SIGNET_TRY(BindAll(query, request.key_id, request.account_id, minute, n));
        SIGNET_TRY(query.Run());
      }
      return tx.Commit();
    }
  }  // rolled back: nothing was consumed
  SIGNET_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn_, kContext));
  SIGNET_ASSIGN_OR_RETURN(std::optional<ActivationRecord> activation,
                          LoadActivationLocked(request.sad_hash, &request.hashes));
  SIGNET_ASSIGN_OR_RETURN(SignatureCounts counts, read_counts());
  SIGNET_TRY(CheckActivationConsumable(activation, request, counts));
  return InternalError("the SAD's hashes could not be consumed, yet every rule allows it");
}

Status SqliteStore::ReplaceActivation(ByteView old_sad_hash, std::string_view account_id,
                                      std::string_view key_id, TimePoint now,
                                      const ActivationRecord& replacement,
                                      int64_t max_transaction_signatures,
                                      int64_t max_open_for_account) {
  static constexpr std::string_view kContext = "cannot replace activation";
  SIGNET_TRY(CheckActivationShape(replacement));
  std::lock_guard lock(mu_);
  SIGNET_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn_, kContext));
  SIGNET_ASSIGN_OR_RETURN(std::optional<ActivationRecord> old, LoadActivationLocked(old_sad_hash));
  // The binding rules only: account, credential, expiry (no hash is consumed here).
  SIGNET_TRY(CheckActivationBinding(old, account_id, key_id, now));
  // A used-up activation is not open; its continuation would be, so it is bounded as a new one
  // is, in this transaction (concurrent extensions and authorizations cannot overshoot together).
  if (max_open_for_account > 0 && old->signatures_used >= old->num_signatures) {
    SIGNET_ASSIGN_OR_RETURN(int64_t open, CountOpenActivationsLocked(account_id, now));
    if (open >= max_open_for_account) {
      return ResourceExhausted(std::string(kOpenActivationsMessage) + "account '" +
                               std::string(account_id) + "' holds " + std::to_string(open) +
                               " open authorizations, the most it may hold (" +
                               std::to_string(max_open_for_account) + ")");
    }
  }
  SIGNET_ASSIGN_OR_RETURN(ActivationRecord next,
                          ContinueTransaction(*old, replacement, max_transaction_signatures));
  for (std::string_view sql : {kDeleteActivationHashes, kDeleteActivation}) {
    SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(sql, kContext));
    SIGNET_TRY(query.Bind(1, old_sad_hash));
    SIGNET_TRY(query.Run());
  }
  SIGNET_TRY(InsertActivationLocked(next));
  return tx.Commit();
}

// ---- grants ----

Status SqliteStore::InsertGrant(std::string_view key_id, std::string_view account_id,
                                TimePoint now) {
  if (account_id.empty()) return InvalidArgument("a grant needs an account id");
  static constexpr std::string_view kContext = "cannot store grant";
  std::lock_guard lock(mu_);
  SIGNET_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn_, kContext));
  SIGNET_ASSIGN_OR_RETURN(bool key_exists, KeyExistsLocked(key_id));
  if (!key_exists) return NotFound("no key with id '" + std::string(key_id) + "'");
  {
    SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kGrantExists, kContext));
    SIGNET_TRY(BindAll(query, key_id, account_id));
    SIGNET_ASSIGN_OR_RETURN(bool exists, query.Step());
    if (exists) {
      return AlreadyExists("account '" + std::string(account_id) +
                           "' already has a grant on key id '" + std::string(key_id) + "'");
    }
  }
  {
    SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kInsertGrant, kContext));
    SIGNET_TRY(BindAll(query, key_id, account_id, ToUnixSeconds(now)));
    SIGNET_TRY(query.Run());
  }
  return tx.Commit();
}

Status SqliteStore::DeleteGrant(std::string_view key_id, std::string_view account_id) {
  std::lock_guard lock(mu_);
  SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kDeleteGrant, "cannot delete grant"));
  SIGNET_TRY(BindAll(query, key_id, account_id));
  SIGNET_ASSIGN_OR_RETURN(int64_t changed, query.Run());
  if (changed == 0) {
    return NotFound("account '" + std::string(account_id) + "' has no grant on key id '" +
                    std::string(key_id) + "'");
  }
  return OkStatus();
}

Result<bool> SqliteStore::HasGrant(std::string_view key_id, std::string_view account_id) {
  std::lock_guard lock(mu_);
  SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kGrantExists, "cannot read grant"));
  SIGNET_TRY(BindAll(query, key_id, account_id));
  return query.Step();
}

Result<std::vector<std::string>> SqliteStore::ListGrants(std::string_view key_id) {
  std::lock_guard lock(mu_);
  SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kListGrants, "cannot list grants"));
  SIGNET_TRY(query.Bind(1, key_id));
  std::vector<std::string> out;
  for (;;) {
    SIGNET_ASSIGN_OR_RETURN(bool row, query.Step());
    if (!row) break;
    out.push_back(query.Text(0));
  }
  return out;
}

// ---- policies ----

Status SqliteStore::PutKeyPolicy(const KeyPolicyRecord& policy) {
  static constexpr std::string_view kContext = "cannot store key policy";
  std::lock_guard lock(mu_);
  SIGNET_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn_, kContext));
  SIGNET_ASSIGN_OR_RETURN(bool key_exists, KeyExistsLocked(policy.key_id));
  if (!key_exists) return NotFound("no key with id '" + policy.key_id + "'");
  {
    SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kUpsertPolicy, kContext));
    SIGNET_TRY(BindAll(query, policy.key_id, JoinNames(policy.allowed_sign_algos),
                       JoinNames(policy.allowed_hash_algos),
                       policy.max_signatures_per_authorization, policy.rate_per_minute_key,
                       policy.rate_per_minute_account));
    SIGNET_TRY(query.Run());
  }
  return tx.Commit();
}

Result<std::optional<KeyPolicyRecord>> SqliteStore::GetKeyPolicy(std::string_view key_id) {
  std::lock_guard lock(mu_);
  SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kSelectPolicy, "cannot read key policy"));
  SIGNET_TRY(query.Bind(1, key_id));
  SIGNET_ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row) return std::optional<KeyPolicyRecord>();
  KeyPolicyRecord p;
  p.key_id = std::string(key_id);
  p.allowed_sign_algos = SplitNames(query.Text(0));
  p.allowed_hash_algos = SplitNames(query.Text(1));
  p.max_signatures_per_authorization = query.Int64(2);
  p.rate_per_minute_key = query.Int64(3);
  p.rate_per_minute_account = query.Int64(4);
  return std::optional<KeyPolicyRecord>(std::move(p));
}

}  // namespace signet::store
