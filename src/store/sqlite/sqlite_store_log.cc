// SqliteStore: the Merkle-tree audit log (schema migration 4): entries, hash tiles, checkpoints and
// the checkpoint-signing key.
//
// Index assignment is the heart of this file. An append reads max(idx) + 1 INSIDE a
// BEGIN IMMEDIATE transaction, which holds the database's write lock from its first statement,
// so no other connection (another SqliteStore on the file, or the local CLI in another process
// next to a running server) can commit between the read and the insert: indices are consecutive
// and unique across processes, not just across this object's threads. The commit is durable when
// it returns (WAL + synchronous=FULL, sqlite_store.cc Configure), which is what lets the
// sequencer answer "your entry has index i" only once that is true (DESIGN.md §3 "audit
// invariant"). A BEFORE INSERT trigger (migrations.cc) refuses any other index, as a backstop.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "store/sqlite/internal/sqlite_handles.h"
#include "store/sqlite/sqlite_store.h"

namespace signet::store {
namespace {

using sqlite_internal::BindAll;
using sqlite_internal::Query;
using sqlite_internal::Transaction;

constexpr int kFullTileWidth = 256;
constexpr int kMaxTileLevel = 63;  // c2sp.org/tlog-tiles: L is 0..63
constexpr int64_t kMaxQueryLimit = 10000;

constexpr std::string_view kNextLogIndex = "SELECT coalesce(max(idx) + 1, 0) FROM log_entries";
constexpr std::string_view kInsertLogEntry =
    "INSERT INTO log_entries (idx, time, action, key_id, account_id, data)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
// The block summaries (migration 5, which explains them): entries 0..256*B-1 are summarised in
// log_blocks and log_block_terms; an append transaction that finds kSummaryBatch or more entries
// after them summarises every complete block among those. A block's entries are idx >> 8.
constexpr int kBlockBits = 8;
constexpr int64_t kSummaryBatch = 1024;
// How many blocks one query considers (through the summaries) per block it may read.
constexpr int64_t kBlockRangeFactor = 16;
constexpr std::string_view kLastBlock =
    "SELECT block, run_max FROM log_blocks ORDER BY block DESC LIMIT 1";
// ?1, ?2: the entries [?1, ?2), whole blocks; ?3: the run_max of the block before ?1 (or the
// smallest integer).
constexpr std::string_view kSummariseBlocks =
    "INSERT INTO log_blocks (block, min_time, max_time, run_max)"
    " SELECT block, min_time, max_time, max(?3, max(max_time) OVER (ORDER BY block))"
    " FROM (SELECT idx >> 8 AS block, min(time) AS min_time, max(time) AS max_time"
    "       FROM log_entries WHERE idx >= ?1 AND idx < ?2 GROUP BY block)"
    " ORDER BY block";
constexpr std::string_view kSummariseTerms =
    "INSERT OR IGNORE INTO log_block_terms (term, block)"
    " SELECT 'action:' || action, idx >> 8 FROM log_entries WHERE idx >= ?1 AND idx < ?2"
    " UNION SELECT 'key:' || key_id, idx >> 8 FROM log_entries"
    "   WHERE key_id != '' AND idx >= ?1 AND idx < ?2"
    " UNION SELECT 'account:' || account_id, idx >> 8 FROM log_entries"
    "   WHERE account_id != '' AND idx >= ?1 AND idx < ?2";
// The first block whose run_max reaches a time: no entry before it is at or after that time.
constexpr std::string_view kFirstBlockReaching =
    "SELECT block FROM log_blocks WHERE run_max >= ?1 ORDER BY run_max, block LIMIT 1";
constexpr std::string_view kReadLogEntries =
    "SELECT idx, time, action, key_id, account_id, data FROM log_entries"
    " WHERE idx >= ?1 ORDER BY idx LIMIT ?2";
constexpr std::string_view kSelectTile =
    "SELECT width, hashes FROM log_tiles WHERE level = ?1 AND idx = ?2";
constexpr std::string_view kInsertTile =
    "INSERT INTO log_tiles (level, idx, width, hashes) VALUES (?1, ?2, ?3, ?4)";
constexpr std::string_view kWidenTile =
    "UPDATE log_tiles SET width = ?3, hashes = ?4 WHERE level = ?1 AND idx = ?2";
constexpr std::string_view kMaxCheckpointSize = "SELECT max(size) FROM log_checkpoints";
constexpr std::string_view kInsertCheckpoint =
    "INSERT INTO log_checkpoints (size, root, note, time, entry_index)"
    " VALUES (?1, ?2, ?3, ?4, ?5)";
constexpr std::string_view kLatestCheckpoint =
    "SELECT size, root, note, time, entry_index FROM log_checkpoints ORDER BY size DESC LIMIT 1";
constexpr std::string_view kListCheckpoints =
    "SELECT size, root, note, time, entry_index FROM log_checkpoints WHERE size > ?1"
    " ORDER BY size LIMIT ?2";
constexpr std::string_view kLogKeyExists = "SELECT 1 FROM log_key";
constexpr std::string_view kInsertLogKey =
    "INSERT INTO log_key (id, origin, token_serial, hsm_key_id, public_key, created_at)"
    " VALUES (1, ?1, ?2, ?3, ?4, ?5)";
constexpr std::string_view kSelectLogKey =
    "SELECT origin, token_serial, hsm_key_id, public_key, created_at FROM log_key WHERE id = 1";

// "entry 3 of 5 (action 'sign')", or "entry (action 'sign')" alone, for errors about one entry
// of a batch. Only built once something failed: appends are the hot path.
std::string Position(size_t i, size_t n, std::string_view action) {
  std::string out = "entry ";
  if (n > 1) out += std::to_string(i + 1) + " of " + std::to_string(n) + " ";
  return out + "(action '" + std::string(action) + "')";
}

// What can be checked before the write lock is taken, so a malformed request never holds it.
Status CheckEntryShape(const LogEntryAppend& entry, size_t i, size_t n) {
  if (entry.action.empty()) {
    return InvalidArgument("log " + Position(i, n, entry.action) + " has no action name");
  }
  if (!entry.render) {
    return InvalidArgument("log " + Position(i, n, entry.action) + " has no render function");
  }
  return OkStatus();
}

Status CheckTileShape(const LogTileRow& tile) {
  const std::string name = "tile " + std::to_string(tile.level) + "/" + std::to_string(tile.index);
  if (tile.level < 0 || tile.level > kMaxTileLevel) {
    return InvalidArgument(name + ": level must be 0.." + std::to_string(kMaxTileLevel));
  }
  if (tile.index < 0) return InvalidArgument(name + ": index must not be negative");
  if (tile.width < 1 || tile.width > kFullTileWidth) {
    return InvalidArgument(name + ": width " + std::to_string(tile.width) + " is not in 1..256");
  }
  if (tile.hashes.size() != 32 * static_cast<size_t>(tile.width)) {
    return InvalidArgument(name + ": " + std::to_string(tile.hashes.size()) +
                           " bytes of hashes for width " + std::to_string(tile.width) +
                           " (needs 32 per hash)");
  }
  return OkStatus();
}

Status CheckLimit(int64_t limit, int64_t max, std::string_view what) {
  if (limit < 1 || limit > max) {
    return InvalidArgument(std::string(what) + ": limit " + std::to_string(limit) +
                           " is not in 1.." + std::to_string(max));
  }
  return OkStatus();
}

// Reads the row the query is on (columns as in kReadLogEntries).
LogEntryRow ReadEntryRow(const Query& query) {
  LogEntryRow row;
  row.index = query.Int64(0);
  row.time = FromUnixSeconds(query.Int64(1));
  row.action = query.Text(2);
  row.key_id = query.Text(3);
  row.account_id = query.Text(4);
  row.data = ToString(query.Blob(5));
  return row;
}

// Reads the row the query is on (columns as in kLatestCheckpoint).
LogCheckpointRow ReadCheckpointRow(const Query& query) {
  LogCheckpointRow row;
  row.size = query.Int64(0);
  row.root = query.Blob(1);
  row.note = query.Text(2);
  row.time = FromUnixSeconds(query.Int64(3));
  row.entry_index = query.Int64(4);
  return row;
}

// Whole seconds for an exclusive upper bound: the smallest s with every stored time (truncated to
// seconds) of an event before `t` below s. Truncating `t` instead would drop events from the
// fraction of a second before it.
int64_t CeilUnixSeconds(TimePoint t) {
  int64_t s = ToUnixSeconds(t);
  if (FromUnixSeconds(s) < t) ++s;
  return s;
}

}  // namespace

// ---- helpers (mu_ held, inside a write transaction) ----

Result<int64_t> SqliteStore::NextLogIndexLocked() {
  SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kNextLogIndex, "cannot read the log size"));
  SIGNET_ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row) return InternalError("cannot read the log size of " + path_ + ": no row");
  return query.Int64(0);
}

Status SqliteStore::InsertLogEntryLocked(const LogEntryAppend& entry, int64_t index, size_t i,
                                         size_t n) {
  // The render is the caller's code; an exception from it is turned into an error here, at the
  // adapter's edge, and the transaction rolls back as for any other failure.
  Result<std::string> data = InternalError("no render result");
  try {
    data = entry.render(index);
  } catch (const std::exception& e) {
    data = InternalError(std::string("the render function threw: ") + e.what());
  }
  if (!data.ok()) {
    return data.error().WithContext("cannot render log " + Position(i, n, entry.action) +
                                    " at index " + std::to_string(index));
  }
  if (data->empty() || data->size() > kMaxLogEntrySize) {
    return InvalidArgument("log " + Position(i, n, entry.action) + " renders " +
                           std::to_string(data->size()) + " bytes at index " +
                           std::to_string(index) + "; an entry has 1.." +
                           std::to_string(kMaxLogEntrySize) + " bytes");
  }
  SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kInsertLogEntry, "cannot append to the log"));
  SIGNET_TRY(BindAll(query, index, ToUnixSeconds(entry.time), std::string_view(entry.action),
                     std::string_view(entry.key_id), std::string_view(entry.account_id),
                     AsBytes(*data)));
  SIGNET_TRY(query.Run());
  return OkStatus();
}

Status SqliteStore::PutLogTileLocked(const LogTileRow& tile) {
  const std::string name = "tile " + std::to_string(tile.level) + "/" + std::to_string(tile.index);
  const std::string context = "cannot store log " + name;
  int64_t stored_width = 0;
  Bytes stored;
  {
    SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kSelectTile, context));
    SIGNET_TRY(BindAll(query, static_cast<int64_t>(tile.level), tile.index));
    SIGNET_ASSIGN_OR_RETURN(bool row, query.Step());
    if (row) {
      stored_width = query.Int64(0);
      stored = query.Blob(1);
    }
  }
  if (stored_width == 0) {
    SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kInsertTile, context));
    SIGNET_TRY(BindAll(query, static_cast<int64_t>(tile.level), tile.index,
                       static_cast<int64_t>(tile.width), ByteView(tile.hashes)));
    SIGNET_TRY(query.Run());
    return OkStatus();
  }
  // Both are prefixes of the same full tile, so they must agree on the hashes they share. If they
  // do not, the tree computed now differs from the one computed before: either the entries
  // changed under the log or the integrator is wrong. Neither may be papered over.
  const size_t shared = 32 * static_cast<size_t>(std::min<int64_t>(stored_width, tile.width));
  if (stored.size() < shared ||
      !std::equal(stored.begin(), stored.begin() + static_cast<std::ptrdiff_t>(shared),
                  tile.hashes.begin())) {
    return DataLoss(path_ + ": log " + name + " (width " + std::to_string(stored_width) +
                    ") disagrees with the new one (width " + std::to_string(tile.width) +
                    "); the log's entries or tiles were changed; run `signet audit verify`");
  }
  if (tile.width <= stored_width) return OkStatus();  // already as wide: nothing to add
  SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kWidenTile, context));
  SIGNET_TRY(BindAll(query, static_cast<int64_t>(tile.level), tile.index,
                     static_cast<int64_t>(tile.width), ByteView(tile.hashes)));
  SIGNET_TRY(query.Run());
  return OkStatus();
}

Result<SqliteStore::LastBlock> SqliteStore::LastBlockLocked() {
  SIGNET_ASSIGN_OR_RETURN(Query query,
                          conn_->Prepare(kLastBlock, "cannot read the log's block summaries"));
  SIGNET_ASSIGN_OR_RETURN(bool row, query.Step());
  LastBlock last;
  if (row) {
    last.end = query.Int64(0) + 1;
    last.run_max = query.Int64(1);
  }
  return last;
}

Status SqliteStore::SummariseLogBlocksLocked(int64_t next) {
  SIGNET_ASSIGN_OR_RETURN(LastBlock last, LastBlockLocked());
  const int64_t from = last.end << kBlockBits;
  if (next - from < kSummaryBatch) return OkStatus();
  const int64_t to = (next >> kBlockBits) << kBlockBits;
  static constexpr std::string_view kContext = "cannot summarise log blocks";
  {
    SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kSummariseBlocks, kContext));
    SIGNET_TRY(BindAll(query, from, to, last.run_max));
    SIGNET_TRY(query.Run());
  }
  SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kSummariseTerms, kContext));
  SIGNET_TRY(BindAll(query, from, to));
  SIGNET_TRY(query.Run());
  return OkStatus();
}

// ---- entries ----

Result<int64_t> SqliteStore::AppendLogEntries(std::span<const LogEntryAppend> entries) {
  if (entries.empty()) return InvalidArgument("cannot append to the log: no entries given");
  for (size_t i = 0; i < entries.size(); ++i) {
    SIGNET_TRY(CheckEntryShape(entries[i], i, entries.size()));
  }
  static constexpr std::string_view kContext = "cannot append to the log";
  std::lock_guard lock(mu_);
  if (applying_changes_) {
    return FailedPrecondition(std::string(kContext) +
                              ": a change a log entry records cannot itself append to the log");
  }
  SIGNET_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn_, kContext));
  // The changes first, so that the entries that record them are rendered and indexed after them.
  for (size_t i = 0; i < entries.size(); ++i) {
    if (!entries[i].apply) continue;
    applying_changes_ = true;
    conn_->set_nesting_allowed(true);
    Status applied = InternalError("no apply result");
    try {
      applied = entries[i].apply(*this);
    } catch (const std::exception& e) {
      applied = InternalError(std::string("the change threw: ") + e.what());
    } catch (...) {
      applied = InternalError("the change threw something not an exception");
    }
    conn_->set_nesting_allowed(false);
    applying_changes_ = false;
    // SQLite ends the whole transaction by itself after some errors (disk full, I/O); a change
    // that went on after one would have made its later steps in autocommit mode, each durable on
    // its own. Whatever the change says, the append cannot be all or nothing any more.
    if (applied.ok() && sqlite3_get_autocommit(conn_->get()) != 0) {
      applied = DataLoss("the database ended the transaction during the change (" + path_ +
                         "); some of the change may have been written without its entry");
    }
    if (!applied.ok()) {
      return applied.error().WithContext("cannot make the change recorded by log " +
                                         Position(i, entries.size(), entries[i].action));
    }
  }
  SIGNET_ASSIGN_OR_RETURN(int64_t first, NextLogIndexLocked());
  for (size_t i = 0; i < entries.size(); ++i) {
    // Any error returns before Commit; the Transaction's destructor rolls the whole batch back.
    SIGNET_TRY(
        InsertLogEntryLocked(entries[i], first + static_cast<int64_t>(i), i, entries.size()));
  }
  // In the same transaction: the summaries commit with the entries or not at all.
  SIGNET_TRY(SummariseLogBlocksLocked(first + static_cast<int64_t>(entries.size())));
  SIGNET_TRY(tx.Commit());
  return first;
}

Result<int64_t> SqliteStore::LogSize() {
  std::lock_guard lock(mu_);
  return NextLogIndexLocked();
}

Result<std::vector<LogEntryRow>> SqliteStore::ReadLogEntries(int64_t from, int64_t limit) {
  if (from < 0) return InvalidArgument("cannot read log entries from negative index");
  if (limit < 1) return InvalidArgument("cannot read log entries: limit must be at least 1");
  std::lock_guard lock(mu_);
  SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kReadLogEntries, "cannot read log entries"));
  SIGNET_TRY(BindAll(query, from, limit));
  std::vector<LogEntryRow> out;
  for (;;) {
    SIGNET_ASSIGN_OR_RETURN(bool row, query.Step());
    if (!row) break;
    out.push_back(ReadEntryRow(query));
  }
  return out;
}

Result<LogEntryPage> SqliteStore::QueryLogEntries(const LogEntryQuery& q) {
  SIGNET_TRY(CheckLimit(q.limit, kMaxQueryLimit, "cannot query log entries"));
  if (q.after_index < -1) {
    return InvalidArgument("cannot query log entries: after_index must be -1 or more");
  }
  if (q.max_scanned < 1 || q.max_bytes < 1) {
    return InvalidArgument("cannot query log entries: the work bounds must be at least 1");
  }
  static constexpr std::string_view kContext = "cannot query log entries";
  const std::optional<int64_t> since =
      q.since ? std::optional<int64_t>(ToUnixSeconds(*q.since)) : std::nullopt;
  const std::optional<int64_t> until =
      q.until ? std::optional<int64_t>(CeilUnixSeconds(*q.until)) : std::nullopt;

  // The SQL texts depend only on which filters are set, never on their values, so the
  // connection's statement cache holds each shape once. Every entry read is filtered exactly;
  // the block summaries only decide which blocks are read.
  std::string entry_filters;
  if (since) entry_filters += " AND time >= ?4";
  if (until) entry_filters += " AND time < ?5";
  if (!q.key_id.empty()) entry_filters += " AND key_id = ?6";
  if (!q.account_id.empty()) entry_filters += " AND account_id = ?7";
  if (!q.action.empty()) entry_filters += " AND action = ?8";
  const std::string read_entries =
      "SELECT idx, time, action, key_id, account_id, data FROM log_entries"
      " WHERE idx >= ?1 AND idx < ?2" + entry_filters + " ORDER BY idx LIMIT ?3";
  std::vector<LogEntryRow> out;
  // Appends the matching entries of [from, to) to `out`, up to the limit; stops early, setting
  // `stopped_after`, once the entries collected hold max_bytes.
  size_t bytes = 0;
  std::optional<int64_t> stopped_after;
  auto read = [&](int64_t from, int64_t to) -> Status {
    SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(read_entries, kContext));
    SIGNET_TRY(BindAll(query, from, to, q.limit - static_cast<int64_t>(out.size())));
    if (since) SIGNET_TRY(query.Bind(4, *since));
    if (until) SIGNET_TRY(query.Bind(5, *until));
    if (!q.key_id.empty()) SIGNET_TRY(query.Bind(6, std::string_view(q.key_id)));
    if (!q.account_id.empty()) SIGNET_TRY(query.Bind(7, std::string_view(q.account_id)));
    if (!q.action.empty()) SIGNET_TRY(query.Bind(8, std::string_view(q.action)));
    for (;;) {
      SIGNET_ASSIGN_OR_RETURN(bool row, query.Step());
      if (!row) return OkStatus();
      out.push_back(ReadEntryRow(query));
      bytes += out.back().data.size();
      if (bytes >= q.max_bytes && static_cast<int64_t>(out.size()) < q.limit) {
        stopped_after = out.back().index;
        return OkStatus();
      }
    }
  };
  auto page = [&]() {
    LogEntryPage p;
    if (stopped_after) {
      p.next_after = stopped_after;
    } else if (static_cast<int64_t>(out.size()) == q.limit) {
      p.next_after = out.back().index;
    }
    p.entries = std::move(out);
    return p;
  };

  if (q.after_index == INT64_MAX) return LogEntryPage{};  // nothing comes after it
  std::lock_guard lock(mu_);
  // Blocks [0, last.end) are summarised; everything after them is read directly. last.end is
  // read once, so an append or summary from another process meanwhile can neither
  // hide nor repeat an entry (entries and summaries never change once written).
  SIGNET_ASSIGN_OR_RETURN(LastBlock last, LastBlockLocked());
  const int64_t start = q.after_index + 1;
  int64_t first_block = start >> kBlockBits;
  if (since && first_block < last.end) {
    SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kFirstBlockReaching, kContext));
    SIGNET_TRY(BindAll(query, *since));
    SIGNET_ASSIGN_OR_RETURN(bool row, query.Step());
    first_block = std::max(first_block, row ? query.Int64(0) : last.end);
  }
  if (first_block < last.end) {
    // The candidate blocks in order: through the postings of the most selective term the query
    // names (a key, else an account, else an action), each other term and the time range checked
    // on the block; without a term, through log_blocks.
    std::vector<std::pair<int, std::string>> terms;  // (parameter, term)
    if (!q.key_id.empty()) terms.emplace_back(6, "key:" + q.key_id);
    if (!q.account_id.empty()) terms.emplace_back(7, "account:" + q.account_id);
    if (!q.action.empty()) terms.emplace_back(8, "action:" + q.action);
    std::string blocks_sql;
    if (terms.empty()) {
      blocks_sql = "SELECT b.block FROM log_blocks AS b WHERE b.block >= ?1 AND b.block < ?2";
    } else {
      blocks_sql =
          "SELECT b.block FROM log_block_terms AS t CROSS JOIN log_blocks AS b"
          " ON b.block = t.block WHERE t.term = ?" + std::to_string(terms[0].first) +
          " AND t.block >= ?1 AND t.block < ?2";
      for (size_t i = 1; i < terms.size(); ++i) {
        blocks_sql += " AND EXISTS (SELECT 1 FROM log_block_terms WHERE term = ?" +
                      std::to_string(terms[i].first) + " AND block = b.block)";
      }
    }
    if (since) blocks_sql += " AND b.max_time >= ?4";
    if (until) blocks_sql += " AND b.min_time < ?5";
    blocks_sql += " ORDER BY b.block";
    // Whole blocks read are counted against max_scanned. The blocks the SQL passes over (a second
    // term absent, outside the time range) cost a look-up each; they are bounded by the range of
    // blocks one call considers, kBlockRangeFactor times the blocks it may read.
    const int64_t max_blocks = std::max<int64_t>(1, q.max_scanned >> kBlockBits);
    const int64_t range_end =
        first_block + std::min(last.end - first_block, max_blocks * kBlockRangeFactor);
    SIGNET_ASSIGN_OR_RETURN(Query blocks, conn_->Prepare(blocks_sql, kContext));
    SIGNET_TRY(BindAll(blocks, first_block, range_end));
    if (since) SIGNET_TRY(blocks.Bind(4, *since));
    if (until) SIGNET_TRY(blocks.Bind(5, *until));
    for (const auto& [parameter, term] : terms) SIGNET_TRY(blocks.Bind(parameter, term));
    int64_t scanned = 0;
    while (static_cast<int64_t>(out.size()) < q.limit && !stopped_after) {
      SIGNET_ASSIGN_OR_RETURN(bool row, blocks.Step());
      if (!row) break;
      const int64_t block = blocks.Int64(0);
      SIGNET_TRY(read(std::max(start, block << kBlockBits), (block + 1) << kBlockBits));
      if (++scanned >= max_blocks && static_cast<int64_t>(out.size()) < q.limit && !stopped_after) {
        stopped_after = ((block + 1) << kBlockBits) - 1;  // the rest of this block is read
      }
    }
    if (range_end < last.end && static_cast<int64_t>(out.size()) < q.limit && !stopped_after) {
      stopped_after = (range_end << kBlockBits) - 1;  // the blocks after the range come next
    }
  }
  // The entries after the summarised blocks: fewer than the blocks a summary pass waits for.
  if (static_cast<int64_t>(out.size()) < q.limit && !stopped_after) {
    SIGNET_TRY(read(std::max(start, last.end << kBlockBits), INT64_MAX));
  }
  return page();
}

// ---- tiles and checkpoints ----

Result<std::optional<Bytes>> SqliteStore::GetLogTile(int level, int64_t index, int width) {
  if (level < 0 || level > kMaxTileLevel || index < 0 || width < 1 || width > kFullTileWidth) {
    return InvalidArgument("no log tile " + std::to_string(level) + "/" + std::to_string(index) +
                           " of width " + std::to_string(width) + ": level must be 0.." +
                           std::to_string(kMaxTileLevel) + ", index 0 or more and width 1..256");
  }
  std::lock_guard lock(mu_);
  SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kSelectTile, "cannot read log tile"));
  SIGNET_TRY(BindAll(query, static_cast<int64_t>(level), index));
  SIGNET_ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row || query.Int64(0) < width) return std::optional<Bytes>();
  Bytes hashes = query.Blob(1);
  const size_t want = 32 * static_cast<size_t>(width);
  if (hashes.size() < want) {
    return DataLoss(path_ + ": log tile " + std::to_string(level) + "/" + std::to_string(index) +
                    " holds fewer hashes than its width says");
  }
  hashes.resize(want);
  return std::optional<Bytes>(std::move(hashes));
}

Result<int64_t> SqliteStore::PublishLogCheckpoint(std::span<const LogTileRow> tiles,
                                                  const LogCheckpointRow& checkpoint,
                                                  const LogEntryAppend& entry) {
  std::set<std::pair<int, int64_t>> seen;
  for (const LogTileRow& tile : tiles) {
    SIGNET_TRY(CheckTileShape(tile));
    if (!seen.insert({tile.level, tile.index}).second) {
      return InvalidArgument("tile " + std::to_string(tile.level) + "/" +
                             std::to_string(tile.index) + " is given twice");
    }
  }
  if (checkpoint.size < 0) return InvalidArgument("a checkpoint's size must not be negative");
  if (checkpoint.root.size() != 32) {
    return InvalidArgument("a checkpoint's root hash must be 32 bytes, not " +
                           std::to_string(checkpoint.root.size()));
  }
  if (checkpoint.note.empty()) return InvalidArgument("a checkpoint needs its signed note");
  SIGNET_TRY(CheckEntryShape(entry, 0, 1));
  if (entry.apply) return InvalidArgument("a checkpoint's log entry cannot carry a change");

  const std::string context =
      "cannot publish the log checkpoint of size " + std::to_string(checkpoint.size);
  std::lock_guard lock(mu_);
  if (applying_changes_) {
    return FailedPrecondition(context +
                              ": a change a log entry records cannot publish a checkpoint");
  }
  SIGNET_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn_, context));
  SIGNET_ASSIGN_OR_RETURN(int64_t entry_index, NextLogIndexLocked());
  {
    SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kMaxCheckpointSize, context));
    SIGNET_ASSIGN_OR_RETURN(bool row, query.Step());
    if (row && !query.IsNull(0) && query.Int64(0) >= checkpoint.size) {
      return FailedPrecondition(context + ": a checkpoint of size " +
                                std::to_string(query.Int64(0)) +
                                " exists already (another integrator published first)");
    }
  }
  if (checkpoint.size > entry_index) {
    return FailedPrecondition(context + ": the log has only " + std::to_string(entry_index) +
                              " entries");
  }
  for (const LogTileRow& tile : tiles) SIGNET_TRY(PutLogTileLocked(tile));
  // Not summarised here: the next append's transaction summarises whatever blocks are complete,
  // this entry's included, and queries read unsummarised entries directly meanwhile.
  SIGNET_TRY(InsertLogEntryLocked(entry, entry_index, 0, 1));
  {
    SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kInsertCheckpoint, context));
    SIGNET_TRY(BindAll(query, checkpoint.size, ByteView(checkpoint.root),
                       std::string_view(checkpoint.note), ToUnixSeconds(checkpoint.time),
                       entry_index));
    SIGNET_TRY(query.Run());
  }
  SIGNET_TRY(tx.Commit());
  return entry_index;
}

Result<std::optional<LogCheckpointRow>> SqliteStore::LatestLogCheckpoint() {
  std::lock_guard lock(mu_);
  SIGNET_ASSIGN_OR_RETURN(Query query,
                          conn_->Prepare(kLatestCheckpoint, "cannot read the latest checkpoint"));
  SIGNET_ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row) return std::optional<LogCheckpointRow>();
  return std::optional<LogCheckpointRow>(ReadCheckpointRow(query));
}

Result<std::vector<LogCheckpointRow>> SqliteStore::ListLogCheckpoints(int64_t after_size,
                                                                      int64_t limit) {
  if (limit < 1) return InvalidArgument("cannot list log checkpoints: limit must be at least 1");
  std::lock_guard lock(mu_);
  SIGNET_ASSIGN_OR_RETURN(Query query,
                          conn_->Prepare(kListCheckpoints, "cannot list log checkpoints"));
  SIGNET_TRY(BindAll(query, after_size, limit));
  std::vector<LogCheckpointRow> out;
  for (;;) {
    SIGNET_ASSIGN_OR_RETURN(bool row, query.Step());
    if (!row) break;
    out.push_back(ReadCheckpointRow(query));
  }
  return out;
}

// ---- the checkpoint-signing key ----

Status SqliteStore::InsertLogKey(const LogKeyRecord& key) {
  if (key.origin.empty()) return InvalidArgument("the log key needs an origin");
  if (key.hsm_key_id.empty()) return InvalidArgument("the log key needs its HSM key id");
  if (key.public_key.size() != 32) {
    return InvalidArgument("the log key's Ed25519 public key must be 32 bytes, not " +
                           std::to_string(key.public_key.size()));
  }
  static constexpr std::string_view kContext = "cannot store the log key";
  std::lock_guard lock(mu_);
  SIGNET_ASSIGN_OR_RETURN(Transaction tx, Transaction::Begin(*conn_, kContext));
  {
    // Checked first so the caller gets AlreadyExists; the log_key_once trigger would refuse the
    // insert too, but with a constraint error.
    SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kLogKeyExists, kContext));
    SIGNET_ASSIGN_OR_RETURN(bool exists, query.Step());
    if (exists) return AlreadyExists("the log already has its checkpoint-signing key");
  }
  {
    SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kInsertLogKey, kContext));
    SIGNET_TRY(BindAll(query, std::string_view(key.origin), std::string_view(key.token_serial),
                       std::string_view(key.hsm_key_id), ByteView(key.public_key),
                       ToUnixSeconds(key.created_at)));
    SIGNET_TRY(query.Run());
  }
  return tx.Commit();
}

Result<std::optional<LogKeyRecord>> SqliteStore::GetLogKey() {
  std::lock_guard lock(mu_);
  SIGNET_ASSIGN_OR_RETURN(Query query, conn_->Prepare(kSelectLogKey, "cannot read the log key"));
  SIGNET_ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row) return std::optional<LogKeyRecord>();
  LogKeyRecord key;
  key.origin = query.Text(0);
  key.token_serial = query.Text(1);
  key.hsm_key_id = query.Text(2);
  key.public_key = query.Blob(3);
  key.created_at = FromUnixSeconds(query.Int64(4));
  return std::optional<LogKeyRecord>(std::move(key));
}

}  // namespace signet::store
