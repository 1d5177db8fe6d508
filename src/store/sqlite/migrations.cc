#include "store/sqlite/migrations.h"

#include <array>

namespace signet::store {
namespace {

// Times are Unix seconds (INTEGER). STRICT tables make SQLite enforce the declared column types
// instead of silently storing whatever it is given.
constexpr std::string_view kCreateKeys = R"sql(
CREATE TABLE keys (
  id                    TEXT    NOT NULL PRIMARY KEY CHECK (length(id) > 0),
  name                  TEXT    NOT NULL UNIQUE CHECK (length(name) > 0),
  algorithm             TEXT    NOT NULL,
  state                 TEXT    NOT NULL CHECK (state IN ('active', 'disabled', 'destroyed')),
  owner                 TEXT    NOT NULL,
  token_label           TEXT    NOT NULL,
  token_serial          TEXT    NOT NULL,
  hsm_key_id            TEXT    NOT NULL,
  public_key_spki       TEXT    NOT NULL,
  certificate_chain_pem TEXT    NOT NULL DEFAULT '',
  created_at            INTEGER NOT NULL,
  updated_at            INTEGER NOT NULL
) STRICT;
)sql";

// ---- accounts and bearer tokens (migration 2) ----
// roles: the canonical RoleSet text (store.h), so the CHECK lists every subset in its one order.
// Secrets appear only protected: password_hash is Argon2id's encoded string, totp_seed_sealed the
// HSM-sealed seed, bearer tokens only their SHA-256.
constexpr std::string_view kCreateAccounts = R"sql(
CREATE TABLE accounts (
  id                   TEXT    NOT NULL PRIMARY KEY CHECK (length(id) > 0),
  name                 TEXT    NOT NULL UNIQUE CHECK (length(name) > 0),
  kind                 TEXT    NOT NULL CHECK (kind IN ('person', 'service')),
  roles                TEXT    NOT NULL DEFAULT '' CHECK (roles IN ('', 'admin', 'signer',
                         'auditor', 'admin,signer', 'admin,auditor', 'signer,auditor',
                         'admin,signer,auditor')),
  state                TEXT    NOT NULL CHECK (state IN ('active', 'disabled')),
  password_hash        TEXT    CHECK (password_hash IS NULL OR password_hash LIKE '$argon2id$%'),
  totp_seed_sealed     BLOB,
  totp_last_step       INTEGER NOT NULL DEFAULT 0,
  failed_attempts      INTEGER NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
  locked_until         INTEGER,
  mtls_fingerprint     TEXT    UNIQUE CHECK (mtls_fingerprint IS NULL OR
                                             length(mtls_fingerprint) = 64),
  must_change_password INTEGER NOT NULL DEFAULT 0 CHECK (must_change_password IN (0, 1)),
  created_at           INTEGER NOT NULL,
  updated_at           INTEGER NOT NULL,
  CHECK (kind = 'person' OR (password_hash IS NULL AND totp_seed_sealed IS NULL)),
  CHECK (kind = 'service' OR mtls_fingerprint IS NULL)
) STRICT;
CREATE TABLE bearer_tokens (
  token_hash BLOB    NOT NULL PRIMARY KEY CHECK (length(token_hash) = 32),
  account_id TEXT    NOT NULL REFERENCES accounts (id),
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  revoked_at INTEGER
) STRICT;
CREATE INDEX bearer_tokens_by_account ON bearer_tokens (account_id);
CREATE INDEX bearer_tokens_by_expiry ON bearer_tokens (expires_at);
)sql";
// ---- end of accounts and bearer tokens ----

// ---- activations, grants, policies, audit events (migration 3) ----
// SADs and bearer hashes are kept only as SHA-256 (DESIGN.md §3). activation_hashes rows are
// reserved once (consumed_at set) by SqliteStore::ConsumeActivationHashes. audit_events is
// append-only: the triggers refuse UPDATE and DELETE from any connection. It is no longer written
// or read (the Merkle log of migration 4 replaced it); it stays so that no row is ever dropped.
constexpr std::string_view kCreateActivations = R"sql(
CREATE TABLE key_grants (
  key_id     TEXT    NOT NULL REFERENCES keys (id),
  account_id TEXT    NOT NULL CHECK (length(account_id) > 0),
  created_at INTEGER NOT NULL,
  PRIMARY KEY (key_id, account_id)
) STRICT;
CREATE TABLE key_policies (
  key_id                           TEXT    NOT NULL PRIMARY KEY REFERENCES keys (id),
  allowed_sign_algos               TEXT    NOT NULL,
  allowed_hash_algos               TEXT    NOT NULL,
  max_signatures_per_authorization INTEGER NOT NULL CHECK (max_signatures_per_authorization > 0),
  rate_per_minute_key              INTEGER NOT NULL CHECK (rate_per_minute_key >= 0),
  rate_per_minute_account          INTEGER NOT NULL CHECK (rate_per_minute_account >= 0)
) STRICT;
CREATE TABLE activations (
  sad_hash        BLOB    NOT NULL PRIMARY KEY CHECK (length(sad_hash) = 32),
  account_id      TEXT    NOT NULL,
  key_id          TEXT    NOT NULL REFERENCES keys (id),
  hash_algorithm  TEXT    NOT NULL,
  num_signatures  INTEGER NOT NULL CHECK (num_signatures > 0),
  signatures_used INTEGER NOT NULL DEFAULT 0
                  CHECK (signatures_used >= 0 AND signatures_used <= num_signatures),
  created_at      INTEGER NOT NULL,
  expires_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX activations_by_expiry ON activations (expires_at);
CREATE TABLE activation_hashes (
  sad_hash    BLOB    NOT NULL REFERENCES activations (sad_hash) ON DELETE CASCADE,
  hash        BLOB    NOT NULL CHECK (length(hash) > 0),
  consumed_at INTEGER,
  PRIMARY KEY (sad_hash, hash)
) STRICT;
CREATE TABLE signature_counts (
  key_id     TEXT    NOT NULL,
  account_id TEXT    NOT NULL,
  minute     INTEGER NOT NULL,
  count      INTEGER NOT NULL CHECK (count >= 0),
  PRIMARY KEY (key_id, account_id, minute)
) STRICT;
CREATE INDEX signature_counts_by_account ON signature_counts (account_id, minute);
CREATE INDEX signature_counts_by_minute ON signature_counts (minute);
CREATE TABLE audit_events (
  seq    INTEGER PRIMARY KEY AUTOINCREMENT,
  time   INTEGER NOT NULL,
  action TEXT    NOT NULL CHECK (length(action) > 0),
  json   TEXT    NOT NULL CHECK (length(json) > 0)
) STRICT;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
)sql";
// ---- end of activations, grants, policies, audit events ----

// ---- the audit log (migration 4) ----
// The Merkle-tree log (DESIGN.md §3 "audit invariant", issue 4). log_entries holds each leaf's
// exact bytes at its index; log_tiles the C2SP tlog-tiles hash tiles the integrator computed;
// log_checkpoints the signed checkpoints; log_key the one checkpoint-signing key.
//
// The triggers make every table append-only for any connection, not only signet's (which has no
// UPDATE or DELETE statement for them): a slip at an sqlite3 prompt fails instead of silently
// rewriting history. They are a guard rail, not the security argument: whoever can write the file
// can also drop a trigger. What makes a rewrite detectable is the Merkle tree and the signed
// checkpoints that outsiders keep.
//
// INSERT OR REPLACE resolves a conflict by deleting the old row WITHOUT firing delete triggers
// (unless recursive_triggers is on), so each table also has a BEFORE INSERT trigger that refuses
// any insert that could conflict: entries only at the next index, checkpoints only larger than
// every existing one, a tile only where none is stored, the key only once.
//
// Tiles: a full tile (width 256) never changes; a partial one may only be replaced by a wider one
// that starts with the same hashes (the narrower tile is a prefix of every later one).
//
// audit_events (migration 3) stays as it is; nothing writes it any more.
constexpr std::string_view kCreateLog = R"sql(
CREATE TABLE log_entries (
  idx        INTEGER PRIMARY KEY CHECK (idx >= 0),
  time       INTEGER NOT NULL,
  action     TEXT    NOT NULL CHECK (length(action) > 0),
  key_id     TEXT    NOT NULL DEFAULT '',
  account_id TEXT    NOT NULL DEFAULT '',
  data       BLOB    NOT NULL CHECK (length(data) BETWEEN 1 AND 65535)
) STRICT;
CREATE INDEX log_entries_by_time ON log_entries (time);
CREATE INDEX log_entries_by_key ON log_entries (key_id) WHERE key_id != '';
CREATE INDEX log_entries_by_account ON log_entries (account_id) WHERE account_id != '';
CREATE INDEX log_entries_by_action ON log_entries (action);
CREATE TRIGGER log_entries_next_index_only BEFORE INSERT ON log_entries
WHEN NEW.idx IS NOT (SELECT coalesce(max(idx) + 1, 0) FROM log_entries)
BEGIN SELECT RAISE(ABORT, 'log_entries is append-only: entries go at the next index'); END;
CREATE TRIGGER log_entries_no_update BEFORE UPDATE ON log_entries
BEGIN SELECT RAISE(ABORT, 'log_entries is append-only'); END;
CREATE TRIGGER log_entries_no_delete BEFORE DELETE ON log_entries
BEGIN SELECT RAISE(ABORT, 'log_entries is append-only'); END;

CREATE TABLE log_tiles (
  level  INTEGER NOT NULL CHECK (level BETWEEN 0 AND 63),
  idx    INTEGER NOT NULL CHECK (idx >= 0),
  width  INTEGER NOT NULL CHECK (width BETWEEN 1 AND 256),
  hashes BLOB    NOT NULL CHECK (length(hashes) = 32 * width),
  PRIMARY KEY (level, idx)
) STRICT;
CREATE TRIGGER log_tiles_insert_new_only BEFORE INSERT ON log_tiles
WHEN EXISTS (SELECT 1 FROM log_tiles WHERE level = NEW.level AND idx = NEW.idx)
BEGIN SELECT RAISE(ABORT, 'log_tiles: this tile exists; only a wider partial tile may replace it'); END;
CREATE TRIGGER log_tiles_only_widen BEFORE UPDATE ON log_tiles
WHEN OLD.width = 256 OR NEW.width <= OLD.width OR NEW.level IS NOT OLD.level
  OR NEW.idx IS NOT OLD.idx OR substr(NEW.hashes, 1, 32 * OLD.width) IS NOT OLD.hashes
BEGIN SELECT RAISE(ABORT, 'log_tiles: a full tile never changes; a partial one only widens'); END;
CREATE TRIGGER log_tiles_no_delete BEFORE DELETE ON log_tiles
BEGIN SELECT RAISE(ABORT, 'log_tiles: tiles are never deleted'); END;

CREATE TABLE log_checkpoints (
  size        INTEGER NOT NULL PRIMARY KEY CHECK (size >= 0),
  root        BLOB    NOT NULL CHECK (length(root) = 32),
  note        TEXT    NOT NULL CHECK (length(note) > 0),
  time        INTEGER NOT NULL,
  entry_index INTEGER NOT NULL REFERENCES log_entries (idx),
  CHECK (entry_index >= size)
) STRICT;
CREATE TRIGGER log_checkpoints_only_grow BEFORE INSERT ON log_checkpoints
WHEN NEW.size <= (SELECT max(size) FROM log_checkpoints)
BEGIN SELECT RAISE(ABORT, 'log_checkpoints is append-only: each checkpoint is larger than the last'); END;
CREATE TRIGGER log_checkpoints_no_update BEFORE UPDATE ON log_checkpoints
BEGIN SELECT RAISE(ABORT, 'log_checkpoints is append-only'); END;
CREATE TRIGGER log_checkpoints_no_delete BEFORE DELETE ON log_checkpoints
BEGIN SELECT RAISE(ABORT, 'log_checkpoints is append-only'); END;

CREATE TABLE log_key (
  id           INTEGER PRIMARY KEY CHECK (id = 1),
  origin       TEXT    NOT NULL CHECK (length(origin) > 0),
  token_serial TEXT    NOT NULL,
  hsm_key_id   TEXT    NOT NULL CHECK (length(hsm_key_id) > 0),
  public_key   BLOB    NOT NULL CHECK (length(public_key) = 32),
  created_at   INTEGER NOT NULL
) STRICT;
CREATE TRIGGER log_key_once BEFORE INSERT ON log_key
WHEN EXISTS (SELECT 1 FROM log_key)
BEGIN SELECT RAISE(ABORT, 'log_key: the log key is created once and never replaced'); END;
CREATE TRIGGER log_key_no_update BEFORE UPDATE ON log_key
BEGIN SELECT RAISE(ABORT, 'log_key is never changed'); END;
CREATE TRIGGER log_key_no_delete BEFORE DELETE ON log_key
BEGIN SELECT RAISE(ABORT, 'log_key is never deleted'); END;
)sql";
// ---- end of the audit log ----

// ---- the log's query index (migration 5) ----
// Entry queries (by time, key, account, action) used to be served by four indexes on log_entries.
// Every append then paid four B-tree inserts: about a third of the CPU of a durable append
// (docs/benchmarks.md, "The audit log"). Migration 5 drops them for a summary per block of 256
// consecutive entries (the width of a hash tile), written once per block instead of once per
// entry:
//   log_blocks       each block's earliest and latest entry time, and run_max, the latest time
//                    of this block and every block before it (never decreasing, so the first
//                    block that can hold an entry at or after a time is one index look-up);
//   log_block_terms  (term, block) for each action ('action:sign'), key ('key:<id>') and account
//                    ('account:<id>') that occurs in the block.
// A query walks the blocks that can match (through the most selective term it names, or through
// log_blocks) and reads only their entries, filtered exactly; entries after the last summarised
// block are read directly. SqliteStore adds the summaries of all complete blocks, in the append
// transaction that finds 1024 or more entries unsummarised (sqlite_store_log.cc,
// SummariseLogBlocksLocked). Both tables are derived from log_entries alone: nothing here is
// needed to verify the log. Like the rest of the log they are append-only.
//
// A summary is checked against the entries when it is inserted (one look at 256 entries per
// block), so neither a slip at an sqlite3 prompt nor a bug can store one that hides entries from
// queries. A term row is not checked (that would cost a look per term); a false one only makes a
// query read a block it did not need to, and the fill ignores a row that is already there.
//
// Frozen with this migration: the statements below fill both tables for the entries already
// stored, with the same rules as kSummariseBlocks and kSummariseTerms in sqlite_store_log.cc.
constexpr std::string_view kCreateLogBlocks = R"sql(
DROP INDEX log_entries_by_time;
DROP INDEX log_entries_by_key;
DROP INDEX log_entries_by_account;
DROP INDEX log_entries_by_action;
CREATE TABLE log_blocks (
  block    INTEGER PRIMARY KEY CHECK (block >= 0),
  min_time INTEGER NOT NULL,
  max_time INTEGER NOT NULL,
  run_max  INTEGER NOT NULL,
  CHECK (min_time <= max_time AND max_time <= run_max)
) STRICT;
CREATE INDEX log_blocks_by_run_max ON log_blocks (run_max);
CREATE TABLE log_block_terms (
  term  TEXT    NOT NULL CHECK (length(term) > 0),
  block INTEGER NOT NULL CHECK (block >= 0),
  PRIMARY KEY (term, block)
) STRICT, WITHOUT ROWID;
CREATE TRIGGER log_blocks_as_their_entries_say BEFORE INSERT ON log_blocks
WHEN NEW.block IS NOT (SELECT coalesce(max(block) + 1, 0) FROM log_blocks)
  OR (SELECT count(*) FROM log_entries
      WHERE idx >= NEW.block << 8 AND idx < (NEW.block + 1) << 8) IS NOT 256
  OR NEW.min_time IS NOT (SELECT min(time) FROM log_entries
                          WHERE idx >= NEW.block << 8 AND idx < (NEW.block + 1) << 8)
  OR NEW.max_time IS NOT (SELECT max(time) FROM log_entries
                          WHERE idx >= NEW.block << 8 AND idx < (NEW.block + 1) << 8)
  OR NEW.run_max IS NOT max(NEW.max_time, coalesce((SELECT run_max FROM log_blocks
                                                    WHERE block = NEW.block - 1), NEW.max_time))
BEGIN SELECT RAISE(ABORT, 'log_blocks: a block is summarised once, in order, complete, as its entries say'); END;
CREATE TRIGGER log_blocks_no_update BEFORE UPDATE ON log_blocks
BEGIN SELECT RAISE(ABORT, 'log_blocks is append-only'); END;
CREATE TRIGGER log_blocks_no_delete BEFORE DELETE ON log_blocks
BEGIN SELECT RAISE(ABORT, 'log_blocks is append-only'); END;
CREATE TRIGGER log_block_terms_no_update BEFORE UPDATE ON log_block_terms
BEGIN SELECT RAISE(ABORT, 'log_block_terms is append-only'); END;
CREATE TRIGGER log_block_terms_no_delete BEFORE DELETE ON log_block_terms
BEGIN SELECT RAISE(ABORT, 'log_block_terms is append-only'); END;
INSERT INTO log_blocks (block, min_time, max_time, run_max)
  SELECT block, min_time, max_time, max(max_time) OVER (ORDER BY block)
  FROM (SELECT idx >> 8 AS block, min(time) AS min_time, max(time) AS max_time FROM log_entries
        WHERE idx < (SELECT ((coalesce(max(idx), -1) + 1) >> 8) << 8 FROM log_entries)
        GROUP BY block)
  ORDER BY block;
INSERT OR IGNORE INTO log_block_terms (term, block)
  SELECT 'action:' || action, idx >> 8 FROM log_entries
    WHERE idx < (SELECT max(block) + 1 FROM log_blocks) << 8
  UNION SELECT 'key:' || key_id, idx >> 8 FROM log_entries
    WHERE key_id != '' AND idx < (SELECT max(block) + 1 FROM log_blocks) << 8
  UNION SELECT 'account:' || account_id, idx >> 8 FROM log_entries
    WHERE account_id != '' AND idx < (SELECT max(block) + 1 FROM log_blocks) << 8;
)sql";
// ---- end of the log's query index ----

// ---- open activations by account (migration 6) ----
// SigningService bounds how many open SADs an account holds; counting them must not scan every
// account's activations.
constexpr std::string_view kCreateActivationsByAccount = R"sql(
CREATE INDEX activations_by_account ON activations (account_id, expires_at);
)sql";

// ---- closing audit_events (migration 7) ----
// audit_events had only UPDATE and DELETE triggers, and INSERT OR REPLACE deletes a conflicting row
// without firing them: an old event could be replaced from an sqlite3 prompt. Nothing writes the
// table since migration 4, so every insert is refused.
constexpr std::string_view kCloseAuditEvents = R"sql(
CREATE TRIGGER audit_events_closed BEFORE INSERT ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only and closed: the log is log_entries'); END;
)sql";

constexpr std::array kMigrations = {
    Migration{1, "create keys table", kCreateKeys},
    Migration{2, "create accounts and bearer_tokens tables", kCreateAccounts},
    Migration{3, "create activation, grant, policy and audit tables", kCreateActivations},
    Migration{4, "create the audit log tables", kCreateLog},
    Migration{5, "replace the log's query indexes by block summaries", kCreateLogBlocks},
    Migration{6, "index activations by account", kCreateActivationsByAccount},
    Migration{7, "close audit_events to inserts", kCloseAuditEvents},
};

}  // namespace

std::span<const Migration> Migrations() { return kMigrations; }

int LatestSchemaVersion() { return kMigrations.back().version; }

}  // namespace signet::store
