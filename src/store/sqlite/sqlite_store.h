// SqliteStore: the Store port kept in one SQLite file; signet's default database on one machine.
//
// The file is used in WAL mode with synchronous=FULL (a commit is on disk when the call returns),
// foreign keys on, and a busy timeout, so another process on the same file (a CLI next to a
// running server) waits for the lock instead of failing. Its schema is versioned (migrations.h):
// opening applies any missing migrations, each in its own transaction. Signet marks its files with
// `PRAGMA application_id` and refuses other applications' databases, damaged files and databases
// written by a newer signet.
//
// Threads: safe to use from many threads at once. The store holds one connection; every method
// takes mu_ for its whole duration, so the statements of one transaction never interleave with
// another thread's (SQLITE_OPEN_FULLMUTEX would only serialise single calls, not transactions).
// Writes that read first (compare-and-set, insert with its duplicate check) run in
// `BEGIN IMMEDIATE` transactions, which take the database write lock up front, so they wait on the
// busy timeout rather than failing when another process commits in between.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "store/sqlite/migrations.h"
#include "store/store.h"

namespace signet::store {

namespace sqlite_internal {
class Connection;
class Query;
}  // namespace sqlite_internal

struct SqliteStoreOptions {
  // How long a statement waits for a lock held by another connection or process before failing
  // with Unavailable.
  std::chrono::milliseconds busy_timeout{5000};
};

class SqliteStore final : public Store {
 public:
  // Opens the database file at `path`, creating it (mode 0600) if it does not exist, and applies
  // pending migrations, each in one transaction with its version bump. The folder must exist and be
  // writable (SQLite creates `<path>-wal` and `<path>-shm` beside the file). An existing empty file
  // is initialised. Also runs `PRAGMA quick_check`, which reads the whole file.
  // Errors:
  //   NotFound           the folder does not exist
  //   InvalidArgument    `path` or its folder is not what it should be (e.g. `path` is a folder)
  //   PermissionDenied   the file, its folder or its -wal/-shm files cannot be read and written
  //   DataLoss           the file is not an SQLite database, or it is damaged (quick_check)
  //   FailedPrecondition the file is another application's SQLite database, or its schema
  //                      version is newer than this signet knows
  //   Unavailable        another process held the database locked past the busy timeout
  // If this call created the file and then fails, it removes the file again, so a later Open never
  // finds a half-initialised database.
  static Result<std::unique_ptr<SqliteStore>> Open(const std::string& path,
                                                   const SqliteStoreOptions& options = {});

  // Like Open, but never creates state: NotFound if the file is missing or is an empty,
  // uninitialised file. Still applies pending migrations to an existing signet database.
  static Result<std::unique_ptr<SqliteStore>> OpenExisting(const std::string& path,
                                                           const SqliteStoreOptions& options = {});

  ~SqliteStore() override;
  // Deleted: the store owns its connection; a copy would close it twice.
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  // The schema version of the database after Open (== LatestSchemaVersion()).
  int SchemaVersion() const { return schema_version_; }
  // The schema version the file had before Open migrated it (0 for a new database); for a log
  // line such as "upgraded database schema from 1 to 2".
  int MigratedFrom() const { return migrated_from_; }
  const std::string& path() const { return path_; }

  // Store. Error codes as documented on Store, plus those of the mapping in
  // internal/sqlite_handles.h (Unavailable when locked past the busy timeout, ResourceExhausted
  // when the disk is full, DataLoss on corruption).

  // AlreadyExists names the taken name ("a key named 'x' already exists") or id. InvalidArgument
  // if the id or name is empty. Times are stored at second precision.
  Status InsertKey(const KeyRecord& key) override;
  Result<KeyRecord> GetKeyByName(std::string_view name) override;
  Result<KeyRecord> GetKeyById(std::string_view id) override;
  // Ordered by name, byte-wise.
  Result<std::vector<KeyRecord>> ListKeys() override;
  // NotFound if no key has that id; FailedPrecondition ("key 'x' is disabled, not active") if it
  // is in another state than `from`.
  Status UpdateKeyState(std::string_view id, KeyState from, KeyState to, TimePoint now) override;
  // NotFound if no key has that id.
  Status SetCertificateChain(std::string_view id, std::string_view chain_pem,
                             TimePoint now) override;
  // Reads the schema version from the file. FailedPrecondition if a newer signet has since
  // migrated the database beyond what this process knows.
  Status Ping() override;

  // ---- accounts and bearer tokens (migration 2; sqlite_store_accounts.cc) ----
  // Error codes as documented on Store. Times are stored at second precision. InsertAccount's
  // AlreadyExists names what is taken (name, id or fingerprint). RecordTotpStep and
  // RecordLoginFailure are single conditional UPDATE statements, so they are atomic also between
  // processes sharing the file.
  Status InsertAccount(const AccountRecord& account) override;
  Result<AccountRecord> GetAccountById(std::string_view id) override;
  Result<AccountRecord> GetAccountByName(std::string_view name) override;
  Result<AccountRecord> GetAccountByFingerprint(std::string_view fingerprint) override;
  Result<std::vector<AccountRecord>> ListAccounts() override;
  Result<bool> RecordTotpStep(std::string_view id, int64_t step, TimePoint now) override;
  Result<bool> BurnTotpStep(std::string_view id, int64_t step, TimePoint now) override;
  Result<LoginFailureState> RecordLoginFailure(std::string_view id, int64_t lock_threshold,
                                               TimePoint lock_until, TimePoint now) override;
  Status ClearLoginFailures(std::string_view id, TimePoint now) override;
  Result<bool> ForgiveLoginFailures(std::string_view id, TimePoint now) override;
  Status UpdateAccountState(std::string_view id, AccountState from, AccountState to,
                            TimePoint now) override;
  Status SetAccountRoles(std::string_view id, const RoleSet& roles, TimePoint now) override;
  Status SetPasswordHash(std::string_view id, std::string_view password_hash,
                         bool must_change_password, TimePoint now) override;
  Status SetTotpSeed(std::string_view id, ByteView sealed_seed, TimePoint now) override;
  Status InsertBearerToken(const BearerTokenRecord& token) override;
  Result<BearerTokenRecord> GetBearerToken(ByteView token_hash) override;
  Status RevokeBearerToken(ByteView token_hash, TimePoint now) override;
  Result<int64_t> RevokeAccountTokens(std::string_view account_id, TimePoint now,
                                      ByteView keep) override;
  Result<int64_t> DeleteExpiredBearerTokens(TimePoint cutoff) override;
  // ---- end of accounts and bearer tokens ----

  // ---- activations, grants, policies (migration 3; sqlite_store_activation.cc) --
  // Error codes as documented on Store. ConsumeActivationHashes decides and commits in one
  // BEGIN IMMEDIATE transaction (a refusal is rolled back, then explained from a second one) and
  // ReplaceActivation runs in one, so both are atomic also between processes sharing the file.
  using Store::InsertActivation;
  Status InsertActivation(const ActivationRecord& activation,
                          int64_t max_open_for_account) override;
  Result<int64_t> DeleteExpiredActivations(TimePoint cutoff) override;
  Result<ActivationRecord> GetActivation(ByteView sad_hash) override;
  Result<int64_t> CountOpenActivations(std::string_view account_id, TimePoint now) override;
  Status ConsumeActivationHashes(const ConsumeActivationRequest& request) override;
  using Store::ReplaceActivation;
  Status ReplaceActivation(ByteView old_sad_hash, std::string_view account_id,
                           std::string_view key_id, TimePoint now,
                           const ActivationRecord& replacement, int64_t max_transaction_signatures,
                           int64_t max_open_for_account) override;
  Status InsertGrant(std::string_view key_id, std::string_view account_id, TimePoint now) override;
  Status DeleteGrant(std::string_view key_id, std::string_view account_id) override;
  Result<bool> HasGrant(std::string_view key_id, std::string_view account_id) override;
  Result<std::vector<std::string>> ListGrants(std::string_view key_id) override;
  Status PutKeyPolicy(const KeyPolicyRecord& policy) override;
  Result<std::optional<KeyPolicyRecord>> GetKeyPolicy(std::string_view key_id) override;
  // ---- end of activations, grants, policies ----

  // ---- the audit log (migration 4; sqlite_store_log.cc) ----
  // Error codes as documented on Store. AppendLogEntries and PublishLogCheckpoint run in one
  // BEGIN IMMEDIATE transaction that reads the next index inside it, so appends from other
  // SqliteStore objects or processes on the same file also get consecutive, unique indices; they
  // commit with synchronous=FULL (durable when they return). Entry, checkpoint and key times are
  // stored at second precision (the exact time is inside the entry's bytes); QueryLogEntries
  // compares at that precision (`since` rounded down, `until` rounded up to whole seconds).
  // `render` runs with mu_ held and must not call back into this store; `apply` runs with mu_ held
  // and calls back into it on the same thread (mu_ is recursive).
  Result<int64_t> AppendLogEntries(std::span<const LogEntryAppend> entries) override;
  Result<int64_t> LogSize() override;
  Result<std::vector<LogEntryRow>> ReadLogEntries(int64_t from, int64_t limit) override;
  Result<LogEntryPage> QueryLogEntries(const LogEntryQuery& query) override;
  Result<std::optional<Bytes>> GetLogTile(int level, int64_t index, int width) override;
  Result<int64_t> PublishLogCheckpoint(std::span<const LogTileRow> tiles,
                                       const LogCheckpointRow& checkpoint,
                                       const LogEntryAppend& entry) override;
  Result<std::optional<LogCheckpointRow>> LatestLogCheckpoint() override;
  Result<std::vector<LogCheckpointRow>> ListLogCheckpoints(int64_t after_size,
                                                           int64_t limit) override;
  Status InsertLogKey(const LogKeyRecord& key) override;
  Result<std::optional<LogKeyRecord>> GetLogKey() override;
  // ---- end of the audit log ----

 private:
  friend class SqliteStoreTestPeer;
  enum class OpenMode { kCreateIfMissing, kExistingOnly };

  // RecordTotpStep and BurnTotpStep: runs `sql` (one conditional UPDATE of the step).
  Result<bool> SetTotpStep(std::string_view sql, std::string_view id, int64_t step, TimePoint now);

  SqliteStore(std::string path, std::unique_ptr<sqlite_internal::Connection> conn,
              int schema_version, int migrated_from);

  // Open and OpenExisting with the migration list as a parameter, so tests can supply a list
  // with a failing migration.
  static Result<std::unique_ptr<SqliteStore>> OpenWith(const std::string& path, OpenMode mode,
                                                       const SqliteStoreOptions& options,
                                                       std::span<const Migration> migrations);
  static Result<std::unique_ptr<SqliteStore>> Initialise(const std::string& path, OpenMode mode,
                                                         const SqliteStoreOptions& options,
                                                         std::span<const Migration> migrations);

  Result<KeyRecord> GetKeyWhere(std::string_view sql, std::string_view value,
                                std::string_view what);

  // ---- accounts and bearer tokens (migration 2) ----
  Result<AccountRecord> GetAccountWhere(std::string_view sql, std::string_view value,
                                        std::string_view what);
  // Runs an UPDATE of one account (bound by `bind`); NotFound if it matched no row.
  Status UpdateOneAccount(std::string_view sql, std::string_view id, std::string_view what,
                          const std::function<Status(sqlite_internal::Query&)>& bind);
  // ---- end of accounts and bearer tokens ----

  // ---- activations, grants, policies (migration 3) ----
  // Read helpers for use inside a transaction; mu_ must be held.
  // The activation and all its hashes, or, with `only`, just those of its hashes listed there
  // (the ones it holds; a listed hash it does not hold is simply absent).
  Result<std::optional<ActivationRecord>> LoadActivationLocked(
      ByteView sad_hash, const std::vector<Bytes>* only = nullptr);
  Status InsertActivationLocked(const ActivationRecord& activation);
  Result<int64_t> CountOpenActivationsLocked(std::string_view account_id, TimePoint now);
  Result<bool> KeyExistsLocked(std::string_view key_id);
  // ---- end of activations, grants, policies ----

  // ---- the audit log (migration 4) ----
  // Helpers for use inside a write transaction; mu_ must be held.
  // The index the next entry gets: max(idx) + 1, or 0 for an empty log.
  Result<int64_t> NextLogIndexLocked();
  // Renders `entry` at `index` and inserts it; errors name it as entry i + 1 of n.
  Status InsertLogEntryLocked(const LogEntryAppend& entry, int64_t index, size_t i, size_t n);
  // Stores one tile under the rules of PublishLogCheckpoint (identical full tile kept, wider
  // partial replaces, DataLoss when hashes disagree).
  Status PutLogTileLocked(const LogTileRow& tile);
  // The end of the summarised blocks of migration 5 (entries 0..256 * end - 1) and the last
  // one's run_max (the smallest integer when there is none).
  struct LastBlock {
    int64_t end = 0;
    int64_t run_max = INT64_MIN;
  };
  Result<LastBlock> LastBlockLocked();
  // Summarises every complete block after the last summarised one, if at least kSummaryBatch
  // (sqlite_store_log.cc) entries are waiting; `next` is the log's size.
  Status SummariseLogBlocksLocked(int64_t next);
  // ---- end of the audit log ----

  // Constant after construction.
  const std::string path_;
  const int schema_version_;
  const int migrated_from_;

  // Recursive so that a LogEntryAppend::apply, which runs inside AppendLogEntries with mu_ held,
  // can call the store's public methods on the same thread; they join the open transaction
  // (sqlite_internal::Transaction nests as a savepoint).
  std::recursive_mutex mu_;
  // Guarded by mu_: the connection, its cached statements and any transaction on it. Held for
  // the whole of each public method.
  std::unique_ptr<sqlite_internal::Connection> conn_;
  // Guarded by mu_: true while AppendLogEntries runs entries' apply changes, which must not write
  // to the log themselves.
  bool applying_changes_ = false;
};

}  // namespace signet::store
