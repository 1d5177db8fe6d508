#include "store/sqlite/sqlite_store.h"

#include <fcntl.h>
#include <pwd.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <utility>

#include "store/sqlite/internal/sqlite_handles.h"

namespace signet::store {
namespace {

using sqlite_internal::Connection;
using sqlite_internal::BindAll;
using sqlite_internal::Query;
using sqlite_internal::Transaction;

// ---- Files, before SQLite sees them ----
//
// SQLite reports most file problems as "unable to open database file" or, worse, opens a
// write-protected file read-only and fails at the first write. These checks run first so the user
// learns which path is wrong and why.

Error FileError(const std::string& message, int err) {
  std::string m = message + " (" + std::strerror(err) + ")";
  if (err == EACCES || err == EPERM || err == EROFS) return PermissionDenied(std::move(m));
  if (err == ENOENT) return NotFound(std::move(m));
  if (err == ENAMETOOLONG || err == ELOOP) return InvalidArgument(std::move(m));
  return Unavailable(std::move(m));
}

std::string FolderOf(const std::string& path) {
  std::string folder = std::filesystem::path(path).parent_path().string();
  return folder.empty() ? "." : folder;
}

// Checks that `path` can hold a database this process reads and writes. Returns whether the file
// exists already.
Result<bool> CheckPath(const std::string& path) {
  if (path.empty()) return InvalidArgument("the database path is empty");
  bool exists = false;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) {
      return InvalidArgument(path + " is a folder; give the path of a database file");
    }
    if (!S_ISREG(st.st_mode)) {
      return InvalidArgument(path + " is not a regular file; give the path of a database file");
    }
    if (::access(path.c_str(), R_OK | W_OK) != 0) {
      return FileError("database " + path + " cannot be read and written by this user", errno);
    }
    // It holds password hashes, sealed TOTP seeds and token hashes: owner-only, as a database
    // signet creates is (a file made by `touch` is usually 0644).
    // Also for root: files SQLite would create beside it (-wal, -shm) would be root's, and the
    // service's own user could then no longer open its database.
    if (st.st_uid != ::geteuid()) {
      const struct passwd* owner = ::getpwuid(st.st_uid);  // NOLINT(concurrency-mt-unsafe)
      const std::string name =
          owner != nullptr ? std::string(owner->pw_name) : "uid " + std::to_string(st.st_uid);
      return PermissionDenied("database " + path + " belongs to " + name +
                              ", not to the user running signet; run signet as that user (e.g. "
                              "sudo -u " +
                              name + " signet ...)");
    }
    if ((st.st_mode & 077) != 0 && ::chmod(path.c_str(), 0600) != 0) {
      return FileError("database " + path +
                           " is readable by other users and cannot be made "
                           "owner-only",
                       errno);
    }
    exists = true;
  } else if (errno != ENOENT && errno != ENOTDIR) {
    return FileError("cannot access database " + path, errno);
  }

  const std::string folder = FolderOf(path);
  struct stat folder_st {};
  if (::stat(folder.c_str(), &folder_st) != 0) {
    int err = errno;
    if (err == ENOENT) {
      return NotFound("cannot use database " + path + ": folder " + folder +
                      " does not exist; create it first");
    }
    if (err == ENOTDIR) {
      return InvalidArgument("cannot use database " + path + ": a part of " + folder +
                             " is not a folder");
    }
    return FileError("cannot use database " + path + ": cannot access folder " + folder, err);
  }
  if (!S_ISDIR(folder_st.st_mode)) {
    return InvalidArgument("cannot use database " + path + ": " + folder + " is not a folder");
  }
  // SQLite creates and deletes <path>-wal and <path>-shm beside the database in WAL mode.
  if (::access(folder.c_str(), W_OK | X_OK) != 0) {
    return FileError("cannot use database " + path + ": folder " + folder +
                         " is not writable by this user, and signet must create " + path +
                         "-wal and " + path + "-shm there",
                     errno);
  }
  for (const char* suffix : {"-wal", "-shm"}) {
    const std::string side = path + suffix;
    if (::access(side.c_str(), F_OK) == 0 && ::access(side.c_str(), R_OK | W_OK) != 0) {
      return FileError(side +
                           " exists but cannot be read and written by this user; give it the "
                           "owner and mode of " +
                           path,
                       errno);
    }
    struct stat side_st {};
    if (::stat(side.c_str(), &side_st) == 0 && side_st.st_uid == ::geteuid() &&
        (side_st.st_mode & 077) != 0 && ::chmod(side.c_str(), 0600) != 0) {
      return FileError(side + " is readable by other users and cannot be made owner-only", errno);
    }
  }
  return exists;
}

// Creates an empty owner-only file for a new database (SQLite would create it 0644). Returns false
// if another process created it first.
Result<bool> CreateDatabaseFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return false;
    return FileError("cannot create database " + path, errno);
  }
  ::close(fd);
  return true;
}

// Removes a database this process created and failed to initialise, so no later Open finds it
// half-done. Best effort: the original error is what the caller reports.
void RemoveDatabaseFiles(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
    ::unlink((path + suffix).c_str());
  }
}

// ---- SQL helpers ----

Result<int64_t> ReadInteger(Connection& conn, std::string_view sql, std::string_view context) {
  SIGNET_ASSIGN_OR_RETURN(Query query, conn.Prepare(sql, context));
  SIGNET_ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row) return InternalError(std::string(context) + ": query returned no row");
  return query.Int64(0);
}

Error NewerSchemaError(const std::string& path, int64_t found, int known) {
  return FailedPrecondition(path + ": database schema version " + std::to_string(found) +
                            " is newer than this signet (" + std::to_string(known) +
                            "); upgrade signet");
}

// ---- Opening ----

struct FileIdentity {
  int64_t application_id = 0;
  int64_t user_version = 0;
  int64_t schema_objects = 0;  // tables, indexes, views, triggers
};

// Reads the header fields and the schema. This is the first statement that reads the file, so a
// file that is not SQLite fails here with NOTADB (-> DataLoss).
Result<FileIdentity> ReadIdentity(Connection& conn) {
  static constexpr std::string_view kSql =
      "SELECT (SELECT application_id FROM pragma_application_id),"
      "       (SELECT user_version FROM pragma_user_version),"
      "       (SELECT count(*) FROM sqlite_master)";
  SIGNET_ASSIGN_OR_RETURN(Query query, conn.Prepare(kSql, "cannot read database header"));
  SIGNET_ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row) return InternalError("cannot read database header of " + conn.path());
  return FileIdentity{query.Int64(0), query.Int64(1), query.Int64(2)};
}

// PRAGMA quick_check: verifies the b-tree structure of every page (not index contents, which the
// full integrity_check also compares). It reads the whole file, which is the price of refusing a
// damaged database at open rather than at the first unlucky query.
Status QuickCheck(Connection& conn) {
  SIGNET_ASSIGN_OR_RETURN(Query query, conn.Prepare("PRAGMA quick_check(5)", "quick_check"));
  std::vector<std::string> findings;
  for (;;) {
    SIGNET_ASSIGN_OR_RETURN(bool row, query.Step());
    if (!row) break;
    findings.push_back(query.Text(0));
  }
  if (findings.size() == 1 && findings[0] == "ok") return OkStatus();
  std::string joined;
  for (const std::string& f : findings) {
    if (!joined.empty()) joined += "; ";
    joined += f;
  }
  return DataLoss(conn.path() +
                  " is not a signet database or is corrupt (sqlite quick_check: " + joined + ")");
}

// Per-connection settings, applied once the file is known to be ours (a foreign database is never
// switched to WAL).
Status Configure(Connection& conn) {
  {
    SIGNET_ASSIGN_OR_RETURN(Query query,
                            conn.Prepare("PRAGMA journal_mode=WAL", "cannot enable WAL mode"));
    SIGNET_ASSIGN_OR_RETURN(bool row, query.Step());
    std::string mode = row ? query.Text(0) : "";
    if (mode != "wal") {
      return FailedPrecondition("cannot switch database " + conn.path() +
                                " to WAL mode (journal mode stays '" + mode +
                                "'); put it on a local file system");
    }
  }
  // synchronous=FULL: in WAL mode, the WAL is synced at every commit, so a commit that returned
  // survives power loss (NORMAL would only protect against corruption, not loss of the last
  // commits).
  // secure_delete: freed pages (a replaced password hash or sealed seed, deleted activations)
  // are zeroed rather than left in the file; Debian's libsqlite3 does so by default, others not.
  return conn.Exec("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON;",
                   "cannot configure database");
}

// Brings the database from version `from` to the last of `migrations`, one transaction per
// migration. Returns the final version.
Result<int> ApplyMigrations(Connection& conn, std::span<const Migration> migrations, int from) {
  static constexpr std::string_view kUserVersion = "PRAGMA user_version";
  int current = from;
  int expected = 1;
  for (const Migration& m : migrations) {
    if (m.version != expected++) {
      return InternalError("schema migrations are not numbered 1, 2, 3, ...: found version " +
                           std::to_string(m.version));
    }
    if (m.version <= current) continue;
    const std::string context = "cannot apply schema migration " + std::to_string(m.version) +
                                " (" + std::string(m.description) + ") to " + conn.path();
    SIGNET_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(conn, context));
    // Another process may have migrated the file while this one waited for the write lock.
    SIGNET_ASSIGN_OR_RETURN(int64_t now, ReadInteger(conn, kUserVersion, context));
    if (now >= m.version) {
      SIGNET_TRY(tx.Commit());
      current = static_cast<int>(std::min<int64_t>(now, INT_MAX));
      continue;
    }
    // PRAGMA values cannot be bound as parameters; these are compile-time constants.
    if (now == 0) {
      SIGNET_TRY(
          conn.Exec("PRAGMA application_id=" + std::to_string(kSignetApplicationId), context));
    }
    SIGNET_TRY(conn.Exec(std::string(m.sql), context));
    SIGNET_TRY(conn.Exec("PRAGMA user_version=" + std::to_string(m.version), context));
    SIGNET_TRY(tx.Commit());
    current = m.version;
  }
  const int latest = migrations.empty() ? 0 : migrations.back().version;
  if (current > latest) return NewerSchemaError(conn.path(), current, latest);
  return current;
}

// ---- Key rows ----

constexpr std::string_view kSelectKeyByName =
    "SELECT id, name, algorithm, state, owner, token_label, token_serial, hsm_key_id,"
    " public_key_spki, certificate_chain_pem, created_at, updated_at FROM keys WHERE name = ?1";
constexpr std::string_view kSelectKeyById =
    "SELECT id, name, algorithm, state, owner, token_label, token_serial, hsm_key_id,"
    " public_key_spki, certificate_chain_pem, created_at, updated_at FROM keys WHERE id = ?1";
constexpr std::string_view kSelectAllKeys =
    "SELECT id, name, algorithm, state, owner, token_label, token_serial, hsm_key_id,"
    " public_key_spki, certificate_chain_pem, created_at, updated_at FROM keys ORDER BY name";
constexpr std::string_view kInsertKey =
    "INSERT INTO keys (id, name, algorithm, state, owner, token_label, token_serial, hsm_key_id,"
    " public_key_spki, certificate_chain_pem, created_at, updated_at)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
constexpr std::string_view kKeyNameExists = "SELECT 1 FROM keys WHERE name = ?1";
constexpr std::string_view kKeyIdExists = "SELECT 1 FROM keys WHERE id = ?1";
constexpr std::string_view kCompareAndSetState =
    "UPDATE keys SET state = ?1, updated_at = ?2 WHERE id = ?3 AND state = ?4";
constexpr std::string_view kSelectNameAndState = "SELECT name, state FROM keys WHERE id = ?1";
constexpr std::string_view kSetCertificateChain =
    "UPDATE keys SET certificate_chain_pem = ?1, updated_at = ?2 WHERE id = ?3";

// Reads the row the query is on (columns in the order of kSelectKeyById).
Result<KeyRecord> ReadKeyRow(const Query& query, const std::string& path) {
  KeyRecord key;
  key.id = query.Text(0);
  key.name = query.Text(1);
  key.algorithm = query.Text(2);
  Result<KeyState> state = ParseKeyState(query.Text(3));
  if (!state.ok()) {
    return DataLoss(path + ": key '" + key.name +
                    "' has an invalid state: " + state.error().message());
  }
  key.state = *state;
  key.owner = query.Text(4);
  key.token_label = query.Text(5);
  key.token_serial = query.Text(6);
  key.hsm_key_id = query.Text(7);
  key.public_key_spki = query.Text(8);
  key.certificate_chain_pem = query.Text(9);
  key.created_at = FromUnixSeconds(query.Int64(10));
  key.updated_at = FromUnixSeconds(query.Int64(11));
  return key;
}

Result<bool> RowExists(Connection& conn, std::string_view sql, std::string_view value,
                       std::string_view context) {
  SIGNET_ASSIGN_OR_RETURN(Query query, conn.Prepare(sql, context));
  SIGNET_TRY(query.Bind(1, value));
  return query.Step();
}

}  // namespace

// ---- SqliteStore ----

SqliteStore::SqliteStore(std::string path, std::unique_ptr<Connection> conn, int schema_version,
                         int migrated_from)
    : path_(std::move(path)),
      schema_version_(schema_version),
      migrated_from_(migrated_from),
      conn_(std::move(conn)) {}

SqliteStore::~SqliteStore() = default;

Result<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path,
                                                       const SqliteStoreOptions& options) {
  return OpenWith(path, OpenMode::kCreateIfMissing, options, Migrations());
}

Result<std::unique_ptr<SqliteStore>> SqliteStore::OpenExisting(const std::string& path,
                                                               const SqliteStoreOptions& options) {
  return OpenWith(path, OpenMode::kExistingOnly, options, Migrations());
}

Result<std::unique_ptr<SqliteStore>> SqliteStore::OpenWith(const std::string& path, OpenMode mode,
                                                           const SqliteStoreOptions& options,
                                                           std::span<const Migration> migrations) {
  if (sqlite3_threadsafe() == 0) {
    return InternalError(
        "the SQLite library was built without thread support "
        "(SQLITE_THREADSAFE=0); signet needs a thread-safe build");
  }
  SIGNET_ASSIGN_OR_RETURN(bool exists, CheckPath(path));
  bool created = false;
  if (!exists) {
    if (mode == OpenMode::kExistingOnly) {
      return NotFound("database " + path + " does not exist");
    }
    SIGNET_ASSIGN_OR_RETURN(created, CreateDatabaseFile(path));
  }
  auto store = Initialise(path, mode, options, migrations);
  // Unavailable means another connection holds the file; it may be initialising it right now,
  // so the file is left alone (an uninitialised file is accepted by the next Open anyway).
  if (!store.ok() && created && store.error().code() != ErrorCode::kUnavailable) {
    RemoveDatabaseFiles(path);
  }
  return store;
}

Result<std::unique_ptr<SqliteStore>> SqliteStore::Initialise(
    const std::string& path, OpenMode mode, const SqliteStoreOptions& options,
    std::span<const Migration> migrations) {
  SIGNET_ASSIGN_OR_RETURN(Connection conn, Connection::Open(path, SQLITE_OPEN_READWRITE));
  sqlite3* db = conn.get();
  // SQLITE_OPEN_READWRITE silently falls back to read-only for a write-protected file.
  if (sqlite3_db_readonly(db, "main") == 1) {
    return PermissionDenied("database " + path + " was opened read-only; check its mode and owner");
  }
  const int64_t timeout_ms = std::clamp<int64_t>(options.busy_timeout.count(), 0, INT_MAX);
  sqlite3_busy_timeout(db, static_cast<int>(timeout_ms));
  // Refuse SQL that could corrupt the file on purpose (writable_schema and the like) and do not
  // run functions named in the schema: a database file is data, not code.
  sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, static_cast<int*>(nullptr));
  sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, static_cast<int*>(nullptr));

  // Identify the file before changing anything, so another application's database stays
  // untouched.
  SIGNET_ASSIGN_OR_RETURN(FileIdentity identity, ReadIdentity(conn));
  const bool uninitialised =
      identity.application_id == 0 && identity.user_version == 0 && identity.schema_objects == 0;
  if (!uninitialised && identity.application_id != kSignetApplicationId) {
    return FailedPrecondition(path +
                              " is an SQLite database of another application; refusing to use it");
  }
  if (uninitialised && mode == OpenMode::kExistingOnly) {
    return NotFound("database " + path + " is empty; it has not been initialised by signet");
  }
  const int latest = migrations.empty() ? 0 : migrations.back().version;
  if (identity.user_version > latest) {
    return NewerSchemaError(path, identity.user_version, latest);
  }
  SIGNET_TRY(QuickCheck(conn));
  SIGNET_TRY(Configure(conn));
  const int from = static_cast<int>(identity.user_version);
  SIGNET_ASSIGN_OR_RETURN(int version, ApplyMigrations(conn, migrations, from));

  auto owned = std::make_unique<Connection>(std::move(conn));
  return std::unique_ptr<SqliteStore>(new SqliteStore(path, std::move(owned), version, from));
}

Status SqliteStore::InsertKey(const KeyRecord& key) {
  if (key.id.empty() || key.name.empty()) {
    return InvalidArgument("a key record needs a non-empty id and name");
  }
  const std::string context = "cannot insert key '" + key.name + "'";
  std::lock_guard lock(mu_);
  SIGNET_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn_, context));
  // Checked first so the error names what is taken; the UNIQUE constraints still back this up.
  SIGNET_ASSIGN_OR_RETURN(bool taken, RowExists(*conn_, kKeyNameExists, key.name, context));
  if (taken) return AlreadyExists("a key named '" + key.name + "' already exists");
  SIGNET_ASSIGN_OR_RETURN(taken, RowExists(*conn_, kKeyIdExists, key.id, context));
  if (taken) return AlreadyExists("a key with id '" + key.id + "' already exists");
  {
    SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kInsertKey, context));
    SIGNET_TRY(BindAll(query, key.id, key.name, key.algorithm, KeyStateName(key.state), key.owner,
                       key.token_label, key.token_serial, key.hsm_key_id, key.public_key_spki,
                       key.certificate_chain_pem, ToUnixSeconds(key.created_at),
                       ToUnixSeconds(key.updated_at)));
    SIGNET_TRY(query.Run());
  }
  return tx.Commit();
}

Result<KeyRecord> SqliteStore::GetKeyWhere(std::string_view sql, std::string_view value,
                                           std::string_view what) {
  const std::string context = "cannot read key " + std::string(what);
  std::lock_guard lock(mu_);
  SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(sql, context));
  SIGNET_TRY(query.Bind(1, value));
  SIGNET_ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row) return NotFound("no key " + std::string(what));
  return ReadKeyRow(query, path_);
}

Result<KeyRecord> SqliteStore::GetKeyByName(std::string_view name) {
  return GetKeyWhere(kSelectKeyByName, name, "named '" + std::string(name) + "'");
}

Result<KeyRecord> SqliteStore::GetKeyById(std::string_view id) {
  return GetKeyWhere(kSelectKeyById, id, "with id '" + std::string(id) + "'");
}

Result<std::vector<KeyRecord>> SqliteStore::ListKeys() {
  std::lock_guard lock(mu_);
  SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kSelectAllKeys, "cannot list keys"));
  std::vector<KeyRecord> keys;
  for (;;) {
    SIGNET_ASSIGN_OR_RETURN(bool row, query.Step());
    if (!row) break;
    SIGNET_ASSIGN_OR_RETURN(KeyRecord key, ReadKeyRow(query, path_));
    keys.push_back(std::move(key));
  }
  return keys;
}

Status SqliteStore::UpdateKeyState(std::string_view id, KeyState from, KeyState to, TimePoint now) {
  const std::string context = "cannot change the state of key with id '" + std::string(id) + "'";
  std::lock_guard lock(mu_);
  // One transaction, so that when the update matches nothing the state read to explain why is the
  // state that made it fail.
  SIGNET_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn_, context));
  int64_t changed = 0;
  {
    SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kCompareAndSetState, context));
    SIGNET_TRY(BindAll(query, KeyStateName(to), ToUnixSeconds(now), id, KeyStateName(from)));
    SIGNET_ASSIGN_OR_RETURN(changed, query.Run());
  }
  if (changed == 1) return tx.Commit();

  SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kSelectNameAndState, context));
  SIGNET_TRY(query.Bind(1, id));
  SIGNET_ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row) return NotFound("no key with id '" + std::string(id) + "'");
  return FailedPrecondition("key '" + query.Text(0) + "' is " + query.Text(1) + ", not " +
                            std::string(KeyStateName(from)));
}

Status SqliteStore::SetCertificateChain(std::string_view id, std::string_view chain_pem,
                                        TimePoint now) {
  const std::string context =
      "cannot set the certificate chain of key with id '" + std::string(id) + "'";
  std::lock_guard lock(mu_);
  SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kSetCertificateChain, context));
  SIGNET_TRY(BindAll(query, chain_pem, ToUnixSeconds(now), id));
  SIGNET_ASSIGN_OR_RETURN(int64_t changed, query.Run());
  if (changed == 0) return NotFound("no key with id '" + std::string(id) + "'");
  return OkStatus();
}

Status SqliteStore::Ping() {
  std::lock_guard lock(mu_);
  SIGNET_ASSIGN_OR_RETURN(int64_t version,
                          ReadInteger(*conn_, "PRAGMA user_version", "database ping"));
  if (version > schema_version_) return NewerSchemaError(path_, version, schema_version_);
  return OkStatus();
}

}  // namespace signet::store
