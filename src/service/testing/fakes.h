// Hand-written fakes of the KeyStore and Store ports for unit tests of service/. FakeKeyStore keeps
// OpenSSL keys in memory (the opposite of what production does: tests only); MemoryStore keeps
// records in a map. Both can be told to fail the next call to exercise rollback paths. RSA keys
// of one size share their key material within a process (generation is slow); EC keys do not.
// Thread-safe (one mutex each).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "hsm/key_store.h"
#include "hsm/secret_sealer.h"
#include "service/audit_sink.h"
#include "store/store.h"

namespace signet::testing {

// What a fake AuditSink's RecordChange does once it has decided to succeed (a fake that is told
// to fail returns before calling this, so the change is not made): makes `change` and returns
// `event` with the details the change added, for the fake to keep; the change's error if it
// fails. Not atomic as LogAuditSink is; fakes keep their events in memory anyway.
// An empty change changes nothing. For AuditEvent and service::AccountEvent alike.
template <typename Event>
Result<Event> MakeChange(const Event& event, const service::AuditedChange& change) {
  if (!change) return event;
  service::AuditDetails added;
  SIGNET_TRY(change(added));
  Event recorded = event;
  for (auto& [k, v] : added) recorded.details[k] = std::move(v);
  return recorded;
}

// Checks `signature` over `digest` with the public key `spki_base64` (a KeyRecord's
// public_key_spki) using OpenSSL directly, independently of the code that signed.
bool VerifyWithPublicKey(std::string_view spki_base64, SignatureScheme scheme, HashAlgorithm hash,
                         ByteView digest, ByteView signature);

// RFC 4648 base32 without padding, for turning a TOTP enrolment back into the seed an
// authenticator app would use.
SecretBytes Base32Decode(std::string_view text);

class FakeKeyStore final : public hsm::KeyStore {
 public:
  FakeKeyStore();
  ~FakeKeyStore() override;
  Result<hsm::GeneratedKey> GenerateKey(KeyAlgorithm algorithm, std::string_view label) override;
  Result<Bytes> PublicKey(const hsm::HsmKeyId& id) override;
  Result<Bytes> Sign(const hsm::HsmKeyId& id, SignatureScheme scheme, HashAlgorithm hash,
                     ByteView input) override;
  Result<hsm::KeyProtection> Protection(const hsm::HsmKeyId& id) override;
  Status DestroyKey(const hsm::HsmKeyId& id) override;
  Result<hsm::TokenDescription> DescribeToken() override;
  Result<std::vector<hsm::TokenKey>> ListKeys() override;

  size_t KeyCount();
  // Puts a new P-256 key pair under `id`, as if the token had been swapped behind the service's
  // back. False if there is no key `id`.
  bool ReplaceKeyMaterial(const hsm::HsmKeyId& id);
  void FailNextDestroy(Error e);
  // The next Sign fails with `e`.
  void FailNextSign(Error e);
  // `during` runs inside the next Sign, before it signs (outside the fake's lock): for what
  // happens while an HSM is busy signing.
  void DuringNextSign(std::function<void()> during);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class MemoryStore : public store::Store {
 public:
  Status InsertKey(const store::KeyRecord& key) override;
  Result<store::KeyRecord> GetKeyByName(std::string_view name) override;
  Result<store::KeyRecord> GetKeyById(std::string_view id) override;
  Result<std::vector<store::KeyRecord>> ListKeys() override;
  Status UpdateKeyState(std::string_view id, store::KeyState from, store::KeyState to,
                        TimePoint now) override;
  Status SetCertificateChain(std::string_view id, std::string_view chain_pem,
                             TimePoint now) override;
  Status Ping() override { return OkStatus(); }

  // ---- accounts and bearer tokens (migration 2) ----
  Status InsertAccount(const store::AccountRecord& account) override;
  Result<store::AccountRecord> GetAccountById(std::string_view id) override;
  Result<store::AccountRecord> GetAccountByName(std::string_view name) override;
  Result<store::AccountRecord> GetAccountByFingerprint(std::string_view fingerprint) override;
  Result<std::vector<store::AccountRecord>> ListAccounts() override;
  Result<bool> RecordTotpStep(std::string_view id, int64_t step, TimePoint now) override;
  Result<bool> BurnTotpStep(std::string_view id, int64_t step, TimePoint now) override;
  Result<store::LoginFailureState> RecordLoginFailure(std::string_view id, int64_t lock_threshold,
                                                      TimePoint lock_until, TimePoint now) override;
  Status ClearLoginFailures(std::string_view id, TimePoint now) override;
  Result<bool> ForgiveLoginFailures(std::string_view id, TimePoint now) override;
  Status UpdateAccountState(std::string_view id, store::AccountState from, store::AccountState to,
                            TimePoint now) override;
  Status SetAccountRoles(std::string_view id, const store::RoleSet& roles, TimePoint now) override;
  Status SetPasswordHash(std::string_view id, std::string_view password_hash,
                         bool must_change_password, TimePoint now) override;
  Status SetTotpSeed(std::string_view id, ByteView sealed_seed, TimePoint now) override;
  Status InsertBearerToken(const store::BearerTokenRecord& token) override;
  Result<store::BearerTokenRecord> GetBearerToken(ByteView token_hash) override;
  Status RevokeBearerToken(ByteView token_hash, TimePoint now) override;
  Result<int64_t> RevokeAccountTokens(std::string_view account_id, TimePoint now,
                                      ByteView keep) override;
  Result<int64_t> DeleteExpiredBearerTokens(TimePoint cutoff) override;
  // ---- end of accounts and bearer tokens ----

  // ---- activations, grants, policies (migration 3) ----
  using store::Store::InsertActivation;
  Status InsertActivation(const store::ActivationRecord& activation,
                          int64_t max_open_for_account) override;
  Result<int64_t> DeleteExpiredActivations(TimePoint cutoff) override;
  Result<store::ActivationRecord> GetActivation(ByteView sad_hash) override;
  Result<int64_t> CountOpenActivations(std::string_view account_id, TimePoint now) override;
  Status ConsumeActivationHashes(const store::ConsumeActivationRequest& request) override;
  using store::Store::ReplaceActivation;
  Status ReplaceActivation(ByteView old_sad_hash, std::string_view account_id,
                           std::string_view key_id, TimePoint now,
                           const store::ActivationRecord& replacement,
                           int64_t max_transaction_signatures,
                           int64_t max_open_for_account) override;
  Status InsertGrant(std::string_view key_id, std::string_view account_id, TimePoint now) override;
  Status DeleteGrant(std::string_view key_id, std::string_view account_id) override;
  Result<bool> HasGrant(std::string_view key_id, std::string_view account_id) override;
  Result<std::vector<std::string>> ListGrants(std::string_view key_id) override;
  Status PutKeyPolicy(const store::KeyPolicyRecord& policy) override;
  Result<std::optional<store::KeyPolicyRecord>> GetKeyPolicy(std::string_view key_id) override;
  // ---- end of activations, grants, policies ----

  // ---- the audit log (migration 4) ----
  // The same contract and validation as SqliteStore, without durability; defined inline below.
  // `render` runs with mu_ held and must not call back into this store.
  Result<int64_t> AppendLogEntries(std::span<const store::LogEntryAppend> entries) override;
  Result<int64_t> LogSize() override;
  Result<std::vector<store::LogEntryRow>> ReadLogEntries(int64_t from, int64_t limit) override;
  Result<store::LogEntryPage> QueryLogEntries(const store::LogEntryQuery& query) override;
  Result<std::optional<Bytes>> GetLogTile(int level, int64_t index, int width) override;
  Result<int64_t> PublishLogCheckpoint(std::span<const store::LogTileRow> tiles,
                                       const store::LogCheckpointRow& checkpoint,
                                       const store::LogEntryAppend& entry) override;
  Result<std::optional<store::LogCheckpointRow>> LatestLogCheckpoint() override;
  Result<std::vector<store::LogCheckpointRow>> ListLogCheckpoints(int64_t after_size,
                                                                  int64_t limit) override;
  Status InsertLogKey(const store::LogKeyRecord& key) override;
  Result<std::optional<store::LogKeyRecord>> GetLogKey() override;
  // The next AppendLogEntries or PublishLogCheckpoint fails with `e` and changes nothing, as a
  // database outage would.
  void FailNextLogWrite(Error e);
  // Counts AppendLogEntries calls that committed, to observe group commit from tests.
  int64_t LogAppendCalls();
  // ---- end of the audit log ----

  void FailNextInsert(Error e);
  // The flush_with_next_commit of every ConsumeActivationHashes call, in order.
  std::vector<bool> ConsumeFlushModes();

 private:
  Result<bool> SetTotpStep(std::string_view id, int64_t step, TimePoint now, bool even_if_locked);

  // Recursive: an entry's apply change calls back into the store from AppendLogEntries.
  std::recursive_mutex mu_;
  std::map<std::string, store::KeyRecord> by_id_;  // guarded by mu_
  std::optional<Error> fail_insert_;               // guarded by mu_
  // ---- accounts and bearer tokens (migration 2) ----
  std::map<std::string, store::AccountRecord> accounts_by_id_;  // guarded by mu_
  std::map<Bytes, store::BearerTokenRecord> tokens_by_hash_;    // guarded by mu_
  // ---- end of accounts and bearer tokens ----
  // ---- activations, grants, policies (migration 3) ----
  std::map<Bytes, store::ActivationRecord> activations_;    // guarded by mu_
  std::set<std::pair<std::string, std::string>> grants_;    // (key, account); mu_
  std::map<std::string, store::KeyPolicyRecord> policies_;  // guarded by mu_
  std::map<std::tuple<std::string, std::string, int64_t>, int64_t> signature_counts_;  // mu_
  // ---- end of activations, grants, policies ----
  // ---- the audit log (migration 4) ----
  // Renders every entry of a batch at `first`, first + 1, ... into `out`; nothing is stored.
  static Status RenderLogEntries(std::span<const store::LogEntryAppend> entries, int64_t first,
                                 std::vector<store::LogEntryRow>& out);
  std::vector<store::LogEntryRow> log_entries_;                     // guarded by mu_
  std::map<std::pair<int, int64_t>, store::LogTileRow> log_tiles_;  // guarded by mu_
  std::map<int64_t, store::LogCheckpointRow> log_checkpoints_;      // by size; mu_
  std::optional<store::LogKeyRecord> log_key_;                      // guarded by mu_
  std::optional<Error> fail_log_write_;                             // guarded by mu_
  int64_t log_append_calls_ = 0;                                    // guarded by mu_
  std::vector<bool> consume_flush_modes_;                            // guarded by mu_
  // ---- end of the audit log ----
};

// Like MakeChange, but atomic as LogAuditSink's is: the change runs as the apply of a placeholder
// log entry (action "test_change") appended to `store`, inside its transaction (MemoryStore: under
// its lock). For tests of what a change checks inside that transaction.
template <typename Event>
Result<Event> MakeChangeInStore(store::Store& store, const Event& event,
                                const service::AuditedChange& change) {
  if (!change) return event;
  service::AuditDetails added;
  store::LogEntryAppend entry;
  entry.action = "test_change";
  entry.render = [](int64_t index) -> Result<std::string> { return std::to_string(index); };
  entry.apply = [&](store::Store&) {
    added.clear();
    return change(added);
  };
  SIGNET_TRY(store.AppendLogEntries({&entry, 1}));
  Event recorded = event;
  for (auto& [k, v] : added) recorded.details[k] = std::move(v);
  return recorded;
}

// ---- accounts and bearer tokens (migration 2) ----
// A SecretSealer with an AES-256-GCM key in process memory (OpenSSL) and the same sealed format
// as the PKCS#11 adapter; tests only.
class FakeSecretSealer final : public hsm::SecretSealer {
 public:
  FakeSecretSealer();
  Result<Bytes> Seal(ByteView plaintext, ByteView aad) override;
  Result<SecretBytes> Unseal(ByteView sealed, ByteView aad) override;

 private:
  SecretBytes key_;  // constant after construction
};
// ---- end of accounts and bearer tokens ----

// ---- the audit log (migration 4) ----
// MemoryStore's log methods are defined here rather than in fakes.cc: they are small, and tests
// of audit/ read them next to the contract they fake.

inline Status MemoryStore::RenderLogEntries(std::span<const store::LogEntryAppend> entries,
                                            int64_t first, std::vector<store::LogEntryRow>& out) {
  for (size_t i = 0; i < entries.size(); ++i) {
    const store::LogEntryAppend& e = entries[i];
    const std::string which = "log entry " + std::to_string(i + 1) + " of " +
                              std::to_string(entries.size()) + " (action '" + e.action + "')";
    if (e.action.empty()) return InvalidArgument(which + " has no action name");
    if (!e.render) return InvalidArgument(which + " has no render function");
    const int64_t index = first + static_cast<int64_t>(i);
    Result<std::string> data = e.render(index);
    if (!data.ok()) return data.error().WithContext("cannot render " + which);
    if (data->empty() || data->size() > store::kMaxLogEntrySize) {
      return InvalidArgument(which + " renders " + std::to_string(data->size()) +
                             " bytes; an entry has 1.." + std::to_string(store::kMaxLogEntrySize));
    }
    out.push_back({index, e.time, e.action, e.key_id, e.account_id, std::move(*data)});
  }
  return OkStatus();
}

inline Result<int64_t> MemoryStore::AppendLogEntries(
    std::span<const store::LogEntryAppend> entries) {
  if (entries.empty()) return InvalidArgument("cannot append to the log: no entries given");
  std::lock_guard lock(mu_);
  if (fail_log_write_) {
    Error e = *fail_log_write_;
    fail_log_write_.reset();
    return e;
  }
  // The entries' changes, as in one transaction: on any failure every record is put back.
  // (Copied only when there is a change to undo; most appends carry none.)
  struct Snapshot {
    std::map<std::string, store::KeyRecord> by_id;
    std::map<std::string, store::AccountRecord> accounts;
    std::map<Bytes, store::BearerTokenRecord> tokens;
    std::map<Bytes, store::ActivationRecord> activations;
    std::set<std::pair<std::string, std::string>> grants;
    std::map<std::string, store::KeyPolicyRecord> policies;
    std::map<std::tuple<std::string, std::string, int64_t>, int64_t> counts;
  };
  std::optional<Snapshot> before;
  if (std::any_of(entries.begin(), entries.end(), [](const auto& e) { return bool(e.apply); })) {
    before = Snapshot{by_id_,  accounts_by_id_, tokens_by_hash_,  activations_,
                      grants_, policies_,       signature_counts_};
  }
  const auto log_size = log_entries_.size();
  auto undo = [&] {
    if (!before) return;
    by_id_ = std::move(before->by_id);
    accounts_by_id_ = std::move(before->accounts);
    tokens_by_hash_ = std::move(before->tokens);
    activations_ = std::move(before->activations);
    grants_ = std::move(before->grants);
    policies_ = std::move(before->policies);
    signature_counts_ = std::move(before->counts);
    log_entries_.resize(log_size);
  };
  for (size_t i = 0; i < entries.size(); ++i) {
    if (!entries[i].apply) continue;
    Status applied = InternalError("no change result");
    try {
      applied = entries[i].apply(*this);
    } catch (const std::exception& e) {
      applied = InternalError(std::string("the change threw: ") + e.what());
    }
    if (log_entries_.size() != log_size) {
      applied = FailedPrecondition("a change a log entry records cannot append to the log");
    }
    if (!applied.ok()) {
      undo();
      return applied.error().WithContext("cannot make the change recorded by log entry " +
                                         std::to_string(i + 1));
    }
  }
  const auto first = static_cast<int64_t>(log_entries_.size());
  std::vector<store::LogEntryRow> rows;
  if (Status rendered = RenderLogEntries(entries, first, rows); !rendered.ok()) {
    undo();
    return rendered.error();
  }
  for (store::LogEntryRow& row : rows) log_entries_.push_back(std::move(row));
  ++log_append_calls_;
  return first;
}

inline Result<int64_t> MemoryStore::LogSize() {
  std::lock_guard lock(mu_);
  return static_cast<int64_t>(log_entries_.size());
}

inline Result<std::vector<store::LogEntryRow>> MemoryStore::ReadLogEntries(int64_t from,
                                                                           int64_t limit) {
  if (from < 0 || limit < 1) return InvalidArgument("cannot read log entries: bad from or limit");
  std::lock_guard lock(mu_);
  std::vector<store::LogEntryRow> out;
  for (auto i = static_cast<size_t>(from);
       i < log_entries_.size() && static_cast<int64_t>(out.size()) < limit; ++i) {
    out.push_back(log_entries_[i]);
  }
  return out;
}

inline Result<store::LogEntryPage> MemoryStore::QueryLogEntries(const store::LogEntryQuery& q) {
  if (q.limit < 1 || q.limit > 10000) {
    return InvalidArgument("cannot query log entries: limit must be 1..10000");
  }
  if (q.after_index < -1) {
    return InvalidArgument("cannot query log entries: after_index must be -1 or more");
  }
  if (q.max_scanned < 1 || q.max_bytes < 1) {
    return InvalidArgument("cannot query log entries: the work bounds must be at least 1");
  }
  // Whole seconds, as SqliteStore compares them: `since` rounded down, `until` up.
  const auto seconds = [](TimePoint t) { return FromUnixSeconds(ToUnixSeconds(t)); };
  std::lock_guard lock(mu_);
  store::LogEntryPage page;
  std::vector<store::LogEntryRow>& out = page.entries;
  int64_t scanned = 0;
  size_t bytes = 0;
  for (const store::LogEntryRow& row : log_entries_) {
    if (static_cast<int64_t>(out.size()) >= q.limit) break;
    if (row.index <= q.after_index) continue;
    // Entry by entry (SqliteStore counts whole blocks): the bound is "about" max_scanned.
    if (scanned++ >= q.max_scanned) {
      page.next_after = row.index - 1;
      return page;
    }
    const TimePoint t = seconds(row.time);
    if (q.since && t < seconds(*q.since)) continue;
    if (q.until && !(t < *q.until)) continue;
    if (!q.key_id.empty() && row.key_id != q.key_id) continue;
    if (!q.account_id.empty() && row.account_id != q.account_id) continue;
    if (!q.action.empty() && row.action != q.action) continue;
    out.push_back(row);
    bytes += row.data.size();
    if (bytes >= q.max_bytes && static_cast<int64_t>(out.size()) < q.limit) {
      page.next_after = row.index;
      return page;
    }
  }
  if (static_cast<int64_t>(out.size()) == q.limit) page.next_after = out.back().index;
  return page;
}

inline Result<std::optional<Bytes>> MemoryStore::GetLogTile(int level, int64_t index, int width) {
  if (level < 0 || level > 63 || index < 0 || width < 1 || width > 256) {
    return InvalidArgument("no such log tile: level 0..63, index >= 0 and width 1..256");
  }
  std::lock_guard lock(mu_);
  auto it = log_tiles_.find({level, index});
  if (it == log_tiles_.end() || it->second.width < width) return std::optional<Bytes>();
  const Bytes& h = it->second.hashes;
  return std::optional<Bytes>(Bytes(h.begin(), h.begin() + 32 * width));
}

inline Result<int64_t> MemoryStore::PublishLogCheckpoint(std::span<const store::LogTileRow> tiles,
                                                         const store::LogCheckpointRow& checkpoint,
                                                         const store::LogEntryAppend& entry) {
  if (entry.apply) return InvalidArgument("a checkpoint's log entry cannot carry a change");
  std::set<std::pair<int, int64_t>> seen;
  for (const store::LogTileRow& t : tiles) {
    if (t.level < 0 || t.level > 63 || t.index < 0 || t.width < 1 || t.width > 256 ||
        t.hashes.size() != 32 * static_cast<size_t>(t.width) ||
        !seen.insert({t.level, t.index}).second) {
      return InvalidArgument("malformed or repeated log tile " + std::to_string(t.level) + "/" +
                             std::to_string(t.index));
    }
  }
  if (checkpoint.size < 0 || checkpoint.root.size() != 32 || checkpoint.note.empty()) {
    return InvalidArgument("a checkpoint needs a size >= 0, a 32-byte root and a note");
  }
  std::lock_guard lock(mu_);
  if (fail_log_write_) {
    Error e = *fail_log_write_;
    fail_log_write_.reset();
    return e;
  }
  if (!log_checkpoints_.empty() && log_checkpoints_.rbegin()->first >= checkpoint.size) {
    return FailedPrecondition("a checkpoint of size " +
                              std::to_string(log_checkpoints_.rbegin()->first) + " exists already");
  }
  const auto entry_index = static_cast<int64_t>(log_entries_.size());
  if (checkpoint.size > entry_index) {
    return FailedPrecondition("the log has only " + std::to_string(entry_index) + " entries");
  }
  // Everything is checked before anything changes, so a failure leaves the store as it was.
  std::vector<const store::LogTileRow*> to_store;
  for (const store::LogTileRow& t : tiles) {
    auto it = log_tiles_.find({t.level, t.index});
    if (it == log_tiles_.end()) {
      to_store.push_back(&t);
      continue;
    }
    const size_t shared = 32 * static_cast<size_t>(std::min(it->second.width, t.width));
    if (!std::equal(t.hashes.begin(), t.hashes.begin() + static_cast<std::ptrdiff_t>(shared),
                    it->second.hashes.begin())) {
      return DataLoss("log tile " + std::to_string(t.level) + "/" + std::to_string(t.index) +
                      " disagrees with the stored one");
    }
    if (t.width > it->second.width) to_store.push_back(&t);
  }
  std::vector<store::LogEntryRow> rows;
  SIGNET_TRY(RenderLogEntries({&entry, 1}, entry_index, rows));
  for (const store::LogTileRow* t : to_store) log_tiles_[{t->level, t->index}] = *t;
  log_entries_.push_back(std::move(rows.front()));
  store::LogCheckpointRow stored = checkpoint;
  stored.entry_index = entry_index;
  log_checkpoints_[checkpoint.size] = std::move(stored);
  return entry_index;
}

inline Result<std::optional<store::LogCheckpointRow>> MemoryStore::LatestLogCheckpoint() {
  std::lock_guard lock(mu_);
  if (log_checkpoints_.empty()) return std::optional<store::LogCheckpointRow>();
  return std::optional<store::LogCheckpointRow>(log_checkpoints_.rbegin()->second);
}

inline Result<std::vector<store::LogCheckpointRow>> MemoryStore::ListLogCheckpoints(
    int64_t after_size, int64_t limit) {
  if (limit < 1) return InvalidArgument("cannot list log checkpoints: limit must be at least 1");
  std::lock_guard lock(mu_);
  std::vector<store::LogCheckpointRow> out;
  for (auto it = log_checkpoints_.upper_bound(after_size);
       it != log_checkpoints_.end() && static_cast<int64_t>(out.size()) < limit; ++it) {
    out.push_back(it->second);
  }
  return out;
}

inline Status MemoryStore::InsertLogKey(const store::LogKeyRecord& key) {
  if (key.origin.empty() || key.hsm_key_id.empty() || key.public_key.size() != 32) {
    return InvalidArgument("the log key needs an origin, an HSM key id and a 32-byte public key");
  }
  std::lock_guard lock(mu_);
  if (log_key_) return AlreadyExists("the log already has its checkpoint-signing key");
  log_key_ = key;
  return OkStatus();
}

inline Result<std::optional<store::LogKeyRecord>> MemoryStore::GetLogKey() {
  std::lock_guard lock(mu_);
  return log_key_;
}

inline void MemoryStore::FailNextLogWrite(Error e) {
  std::lock_guard lock(mu_);
  fail_log_write_ = std::move(e);
}

inline std::vector<bool> MemoryStore::ConsumeFlushModes() {
  std::lock_guard lock(mu_);
  return consume_flush_modes_;
}

inline int64_t MemoryStore::LogAppendCalls() {
  std::lock_guard lock(mu_);
  return log_append_calls_;
}
// ---- end of the audit log ----

// An admin account named `name` (id "a_" + name) with a bearer token of the given hash that is
// live until `now + lifetime`, in `store`; returns the Caller a request on that token would
// carry (session_token_hash set), for tests of the in-transaction admin re-check. An error if
// the store refuses either record.
Result<service::Caller> InsertAdminSession(store::Store& store, const std::string& name,
                                           const Bytes& token_hash, TimePoint now,
                                           std::chrono::seconds lifetime);

// The active account a test Caller stands for (its id, name and roles), in `store`, so that the
// service's in-transaction re-checks of the caller's account find it.
Status InsertCallerAccount(store::Store& store, const service::Caller& caller, TimePoint now);

}  // namespace signet::testing
