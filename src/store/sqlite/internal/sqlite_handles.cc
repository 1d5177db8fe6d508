#include "store/sqlite/internal/sqlite_handles.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace signet::store::sqlite_internal {

Error ErrorFromSqlite(int rc, std::string_view path, std::string_view context,
                      std::string_view sqlite_message, int system_errno) {
  const std::string p(path);
  std::string detail = " (sqlite: ";
  detail += sqlite_message.empty() ? std::string_view(sqlite3_errstr(rc)) : sqlite_message;
  if (system_errno != 0) {
    detail += "; ";
    detail += std::strerror(system_errno);
  }
  detail += ")";
  std::string what(context);
  what += ": ";

  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Unavailable(what + "database " + p +
                         " stayed locked by another connection past the busy timeout; retry later" +
                         detail);
    case SQLITE_FULL:
      return ResourceExhausted(what + "database " + p +
                               " cannot grow: the disk is full or a size limit was reached" +
                               detail);
    case SQLITE_NOMEM:
      return ResourceExhausted(what + "out of memory" + detail);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      // No context prefix: this message is the one a user sees when pointing signet at the wrong
      // file, and it should say that first.
      return DataLoss(p + " is not a signet database or is corrupt" + detail);
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH: {
      std::string m = what + "database " + p +
                      " cannot be written by this process; check the owner and mode of the "
                      "file, its folder and its -wal and -shm files" +
                      detail;
      // Opening, it is the user's to fix (PermissionDenied, the CLI's exit code 5). Once open,
      // a file that turns read-only (a disk remounted, a mode changed) is the service's failure,
      // never the refusal of a request: answered as unavailable, not as access_denied.
      if (context == "cannot open database") return PermissionDenied(std::move(m));
      return Unavailable(std::move(m));
    }
    case SQLITE_CANTOPEN:
      if (system_errno == EACCES || system_errno == EPERM || system_errno == EROFS) {
        return PermissionDenied(what + "cannot open database " + p +
                                " or its -wal/-shm files; check their owner and mode" + detail);
      }
      return InternalError(what + "cannot open database " + p + detail);
    case SQLITE_CONSTRAINT:
      if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        return AlreadyExists(what + "the record already exists" + detail);
      }
      if (rc == SQLITE_CONSTRAINT_TRIGGER) {
        // signet's triggers guard the append-only tables (the log, its tiles, checkpoints and
        // block summaries): an abort means rows were removed or changed behind signet's back, or
        // signet broke its own rule. Either way it is no request's fault.
        return DataLoss(what + "an append-only table's guard refused the write" + detail);
      }
      if (rc == SQLITE_CONSTRAINT_COMMITHOOK) {
        // A statement tried to commit while a change must join its log entry's transaction.
        return InternalError(what + "a commit was refused inside an audited change" + detail);
      }
      return InvalidArgument(what + "the record breaks a database constraint" + detail);
    case SQLITE_TOOBIG:
    case SQLITE_RANGE:
      return InvalidArgument(what + "value rejected by the database" + detail);
    default:
      return InternalError(what + "database " + p + " failed" + detail);
  }
}

// ---- Statement ----

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement::Statement(Statement&& other) noexcept : stmt_(std::exchange(other.stmt_, nullptr)) {}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(stmt_);
    stmt_ = std::exchange(other.stmt_, nullptr);
  }
  return *this;
}

// ---- Connection ----

Result<Connection> Connection::Open(const std::string& path, int flags) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  // sqlite3_open_v2 hands back a handle even on failure (it carries the message); own it at once.
  Connection conn(db, path);
  if (db == nullptr) return ResourceExhausted("cannot open database " + path + ": out of memory");
  if (rc != SQLITE_OK) {
    return ErrorFromSqlite(rc, path, "cannot open database", sqlite3_errmsg(db),
                           sqlite3_system_errno(db));
  }
  sqlite3_extended_result_codes(db, 1);
  return conn;
}

Connection::~Connection() { Close(); }

Connection::Connection(Connection&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)),
      path_(std::move(other.path_)),
      cache_(std::move(other.cache_)) {}

Connection& Connection::operator=(Connection&& other) noexcept {
  if (this != &other) {
    Close();
    db_ = std::exchange(other.db_, nullptr);
    path_ = std::move(other.path_);
    cache_ = std::move(other.cache_);
  }
  return *this;
}

void Connection::Close() {
  cache_.clear();  // statements first: sqlite3_close refuses a connection with live statements
  if (db_ != nullptr) sqlite3_close_v2(db_);
  db_ = nullptr;
}

Error Connection::ErrorFor(int rc, std::string_view context) const {
  return ErrorFromSqlite(rc, path_, context, sqlite3_errmsg(db_), sqlite3_system_errno(db_));
}

Status Connection::Exec(const std::string& sql, std::string_view context) {
  char* message = nullptr;
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message);
  if (rc == SQLITE_OK) return OkStatus();
  std::string text = message != nullptr ? message : "";
  sqlite3_free(message);
  return ErrorFromSqlite(rc, path_, context, text, sqlite3_system_errno(db_));
}

Result<Query> Connection::Prepare(std::string_view sql, std::string_view context) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    Statement owned(stmt);
    if (rc != SQLITE_OK) return ErrorFor(rc, context);
    if (stmt == nullptr) return InternalError(std::string(context) + ": empty SQL statement");
    it = cache_.emplace(std::string(sql), std::move(owned)).first;
  }
  return Query(this, it->second.get(), context);
}

// ---- Query ----

Query::~Query() {
  if (stmt_ != nullptr) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
}

Query::Query(Query&& other) noexcept
    : conn_(other.conn_),
      stmt_(std::exchange(other.stmt_, nullptr)),
      context_(std::move(other.context_)) {}

Status Query::Bind(int index, std::string_view text) {
  int rc =
      sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (rc != SQLITE_OK) return conn_->ErrorFor(rc, context_);
  return OkStatus();
}

Status Query::Bind(int index, int64_t value) {
  int rc = sqlite3_bind_int64(stmt_, index, value);
  if (rc != SQLITE_OK) return conn_->ErrorFor(rc, context_);
  return OkStatus();
}

Status Query::Bind(int index, ByteView blob) {
  // A zero-length blob with a null pointer would bind NULL; bind an empty, non-NULL blob instead.
  int rc = blob.empty() ? sqlite3_bind_zeroblob(stmt_, index, 0)
                        : sqlite3_bind_blob64(stmt_, index, blob.data(), blob.size(),
                                              SQLITE_TRANSIENT);
  if (rc != SQLITE_OK) return conn_->ErrorFor(rc, context_);
  return OkStatus();
}

Status Query::BindNull(int index) {
  int rc = sqlite3_bind_null(stmt_, index);
  if (rc != SQLITE_OK) return conn_->ErrorFor(rc, context_);
  return OkStatus();
}

Result<bool> Query::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return conn_->ErrorFor(rc, context_);
}

Result<int64_t> Query::Run() {
  SIGNET_ASSIGN_OR_RETURN(bool row, Step());
  if (row) return InternalError(context_ + ": statement unexpectedly returned rows");
  return static_cast<int64_t>(sqlite3_changes64(conn_->get()));
}

std::string Query::Text(int column) const {
  const unsigned char* text = sqlite3_column_text(stmt_, column);
  if (text == nullptr) return {};
  int size = sqlite3_column_bytes(stmt_, column);
  return std::string(reinterpret_cast<const char*>(text), static_cast<size_t>(size));
}

int64_t Query::Int64(int column) const { return sqlite3_column_int64(stmt_, column); }

Bytes Query::Blob(int column) const {
  const auto* data = static_cast<const uint8_t*>(sqlite3_column_blob(stmt_, column));
  if (data == nullptr) return {};
  int size = sqlite3_column_bytes(stmt_, column);
  return Bytes(data, data + size);
}

bool Query::IsNull(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }

namespace {
// Run through Exec, never a cached Prepare: SQLite applies PRAGMA synchronous while compiling the
// statement, so re-stepping a prepared copy would change nothing.
constexpr char kSyncNormal[] = "PRAGMA synchronous=NORMAL";
constexpr char kSyncFull[] = "PRAGMA synchronous=FULL";
}  // namespace

Result<FlushDeferredScope> FlushDeferredScope::Enter(Connection& conn, std::string_view context) {
  // Inside an enclosing transaction the synchronous setting cannot change; the enclosing
  // transaction's commit flushes as it always does.
  if (sqlite3_get_autocommit(conn.get()) == 0) return FlushDeferredScope(nullptr);
  SIGNET_TRY(conn.Exec(kSyncNormal, context));
  return FlushDeferredScope(&conn);
}

FlushDeferredScope::~FlushDeferredScope() {
  if (conn_ == nullptr) return;
  Status restored = conn_->Exec(kSyncFull, "cannot restore synchronous=FULL");
  if (restored.ok()) return;
  std::fprintf(stderr, "signet: fatal: %s\n", restored.error().message().c_str());
  std::abort();
}

namespace {
// BEGIN and COMMIT act when stepped, so the cached statement is reused instead of compiling the
// text on every transaction as Exec would.
Status RunCached(Connection& conn, std::string_view sql, std::string_view context) {
  SIGNET_ASSIGN_OR_RETURN(Query query, conn.Prepare(sql, context));
  SIGNET_TRY(query.Run());
  return OkStatus();
}
}  // namespace

void Connection::set_nesting_allowed(bool allowed) {
  nesting_allowed_ = allowed;
  if (allowed) {
    sqlite3_commit_hook(
        db_, [](void*) { return 1; }, nullptr);
  } else {
    sqlite3_commit_hook(db_, nullptr, nullptr);
  }
}

Result<Transaction> Transaction::Begin(Connection& conn, std::string_view context) {
  const bool nested = sqlite3_get_autocommit(conn.get()) == 0;
  if (nested && !conn.nesting_allowed()) {
    return InternalError(std::string(context) + ": a transaction is already open on " +
                         conn.path() + " (left open by an earlier failure)");
  }
  SIGNET_TRY(RunCached(conn, nested ? "SAVEPOINT nested" : "BEGIN IMMEDIATE", context));
  return Transaction(&conn, nested, context);
}

Status Transaction::Commit() {
  Connection* conn = std::exchange(conn_, nullptr);
  Status status = RunCached(*conn, nested_ ? "RELEASE nested" : "COMMIT", context_);
  if (!status.ok()) Rollback(conn, nested_);
  return status;
}

void Transaction::Rollback(Connection* conn, bool nested) {
  // SQLite has already rolled back after some errors (SQLITE_FULL, SQLITE_IOERR); then there is
  // nothing left to end (and a savepoint went with its enclosing transaction).
  if (conn == nullptr || sqlite3_get_autocommit(conn->get()) != 0) return;
  if (nested) {
    // Savepoints of one name nest: these name the innermost, this one.
    (void)conn->Exec("ROLLBACK TO nested; RELEASE nested", "rollback to savepoint");
  } else {
    (void)conn->Exec("ROLLBACK", "rollback");
  }
}

}  // namespace signet::store::sqlite_internal
