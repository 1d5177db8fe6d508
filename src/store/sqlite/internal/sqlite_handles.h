// Move-only owners of SQLite handles (sqlite3*, sqlite3_stmt*), a cursor over a prepared
// statement, and the one mapping from SQLite result codes to signet errors.
//
// Private to store/sqlite/, the only folder whose code (the adapter and its tests) sees
// <sqlite3.h>. Threads: a Connection, its cached statements and any Query on them may be used
// by one thread at a time (connections are opened with SQLITE_OPEN_NOMUTEX); SqliteStore provides
// the serialisation with its mutex.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "common/bytes.h"
#include "common/result.h"

namespace signet::store::sqlite_internal {

// Maps an SQLite result code (primary or extended) to a signet Error whose message names the
// database `path`, what was being done (`context`) and SQLite's own words. `system_errno` is
// sqlite3_system_errno() for codes that come from the operating system (SQLITE_CANTOPEN).
//   BUSY, LOCKED (still locked when the busy timeout ran out)      -> Unavailable
//   FULL, NOMEM                                                    -> ResourceExhausted
//   CORRUPT, NOTADB                                                -> DataLoss
//   READONLY, PERM, AUTH; CANTOPEN with EACCES/EPERM/EROFS (open)  -> PermissionDenied
//   READONLY, PERM, AUTH once the database is open                 -> Unavailable
//   CONSTRAINT_UNIQUE, CONSTRAINT_PRIMARYKEY                       -> AlreadyExists
//   CONSTRAINT_TRIGGER (an append-only guard)                      -> DataLoss
//   CONSTRAINT_COMMITHOOK (a commit inside an audited change)      -> Internal
//   other CONSTRAINT (CHECK, NOT NULL, ...), TOOBIG, RANGE         -> InvalidArgument
//   anything else                                                  -> Internal
Error ErrorFromSqlite(int rc, std::string_view path, std::string_view context,
                      std::string_view sqlite_message, int system_errno = 0);

// Owns one prepared statement; finalizes it on destruction.
class Statement {
 public:
  Statement() = default;
  explicit Statement(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~Statement();
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  // Deleted: two owners would finalize the same statement twice.
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  sqlite3_stmt* get() const { return stmt_; }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

class Query;

// Owns one database connection (closed on destruction) and a cache of its prepared statements.
class Connection {
 public:
  // Opens `path` with sqlite3_open_v2 `flags` (SQLITE_OPEN_NOMUTEX and extended result codes are
  // always added). Does not read the file yet: a file that is not a database is only noticed by
  // the first statement that touches it.
  static Result<Connection> Open(const std::string& path, int flags);

  Connection() = default;
  ~Connection();
  Connection(Connection&& other) noexcept;
  Connection& operator=(Connection&& other) noexcept;
  // Deleted: two owners would close the same connection twice.
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  sqlite3* get() const { return db_; }
  const std::string& path() const { return path_; }

  // The error for `rc` just returned by a call on this connection, with SQLite's message.
  Error ErrorFor(int rc, std::string_view context) const;

  // Runs constant SQL (one or more statements) that returns no rows: PRAGMAs, BEGIN/COMMIT,
  // migrations. Never pass SQL that contains values; bind them with Prepare() instead.
  Status Exec(const std::string& sql, std::string_view context);

  // A cursor over the prepared statement for `sql` (one statement), prepared on first use and
  // cached for the life of the connection. The Query must not outlive the connection.
  Result<Query> Prepare(std::string_view sql, std::string_view context);

  // True only while SqliteStore runs a log entry's change inside its append transaction. Then a
  // Transaction begun while one is open nests as a savepoint, and no commit can happen at all (a
  // commit hook turns it into a rollback): if SQLite ended the enclosing transaction by itself
  // (disk full, I/O error), a later step of the change fails instead of committing alone.
  // Otherwise an open transaction at Begin is a broken invariant, and Begin fails rather than
  // hide later writes in a transaction that never commits.
  void set_nesting_allowed(bool allowed);
  bool nesting_allowed() const { return nesting_allowed_; }

 private:
  Connection(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  void Close();

  sqlite3* db_ = nullptr;
  std::string path_;
  // Prepared statements keyed by their SQL; Close() finalizes them before closing db_.
  std::map<std::string, Statement, std::less<>> cache_;
  bool nesting_allowed_ = false;
};

// One execution of a cached statement: bind parameters (1-based), step, read columns (0-based).
// On destruction resets the statement and clears its bindings, which ends any read it holds open
// and leaves it clean for the next user.
class Query {
 public:
  Query(const Connection* conn, sqlite3_stmt* stmt, std::string_view context)
      : conn_(conn), stmt_(stmt), context_(context) {}
  ~Query();
  Query(Query&& other) noexcept;
  Query& operator=(Query&&) = delete;
  // Deleted: two cursors would reset the same statement under each other.
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  // Binds UTF-8 text (copied) or an integer to parameter `index`.
  Status Bind(int index, std::string_view text);
  Status Bind(int index, int64_t value);
  // Binds a BLOB (copied), or SQL NULL.
  Status Bind(int index, ByteView blob);
  Status BindNull(int index);

  // Advances to the next row: true if there is one, false when the statement is done.
  Result<bool> Step();
  // Runs a statement that returns no rows and returns how many rows it changed.
  Result<int64_t> Run();

  std::string Text(int column) const;
  int64_t Int64(int column) const;
  // The column as bytes (empty for NULL), and whether it is NULL.
  Bytes Blob(int column) const;
  bool IsNull(int column) const;

 private:
  const Connection* conn_;
  sqlite3_stmt* stmt_;
  std::string context_;
};

// For its lifetime, commits on `conn` are written to the WAL but not flushed (PRAGMA
// synchronous=NORMAL); the destructor restores synchronous=FULL. In WAL mode such a commit is
// atomic and visible to every connection at once, and the next commit under FULL flushes the WAL
// file up to its own end, this commit's frames included; until then a power loss or OS crash (not a
// process crash) may undo it. Declare it before the Transaction it covers, so the transaction ends
// first. If SQLite refused to restore FULL (it only sets a flag), the connection would silently
// stop flushing every later commit, so that aborts (a broken invariant, not an input error).
// Entered inside an enclosing transaction, it does nothing: the setting cannot change there, and
// the enclosing transaction commits under FULL.
class FlushDeferredScope {
 public:
  static Result<FlushDeferredScope> Enter(Connection& conn, std::string_view context);
  FlushDeferredScope(FlushDeferredScope&& other) noexcept
      : conn_(std::exchange(other.conn_, nullptr)) {}
  FlushDeferredScope& operator=(FlushDeferredScope&&) = delete;
  // Deleted: two guards would restore the same connection twice.
  FlushDeferredScope(const FlushDeferredScope&) = delete;
  FlushDeferredScope& operator=(const FlushDeferredScope&) = delete;
  ~FlushDeferredScope();

 private:
  explicit FlushDeferredScope(Connection* conn) : conn_(conn) {}
  Connection* conn_;  // nullptr once moved from
};

// A write transaction taken with BEGIN IMMEDIATE: the write lock is acquired at the start (waiting
// on the busy timeout), so no statement inside it can fail on a lock upgrade. Rolls back on
// destruction unless Commit() succeeded. Used by every SqliteStore source file.
//
// Begun while `conn` is already inside a transaction and conn.nesting_allowed() (a change a log
// entry carries, LogEntryAppend::apply, calling back into the store), it is a SAVEPOINT within
// that one instead: Commit releases the savepoint (nothing is durable until the outer transaction
// commits) and rollback undoes only what was done since the savepoint. Begun while inside a
// transaction otherwise, it fails (Internal).
class Transaction {
 public:
  static Result<Transaction> Begin(Connection& conn, std::string_view context);
  Transaction(Transaction&& other) noexcept
      : conn_(std::exchange(other.conn_, nullptr)),
        nested_(other.nested_),
        context_(std::move(other.context_)) {}
  Transaction& operator=(Transaction&&) = delete;
  // Deleted: two guards would end the same transaction twice.
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction() { Rollback(conn_, nested_); }

  Status Commit();

 private:
  Transaction(Connection* conn, bool nested, std::string_view context)
      : conn_(conn), nested_(nested), context_(context) {}
  static void Rollback(Connection* conn, bool nested);

  Connection* conn_;  // nullptr once committed or moved from
  bool nested_;       // a savepoint inside an enclosing transaction
  std::string context_;
};

// Binds `args` to parameters ?1, ?2, ... in order; stops at the first failure.
template <typename... Args>
Status BindAll(Query& query, const Args&... args) {
  int index = 0;
  Status status;
  ((status.ok() ? static_cast<void>(status = query.Bind(++index, args)) : static_cast<void>(0)),
   ...);
  return status;
}

}  // namespace signet::store::sqlite_internal
