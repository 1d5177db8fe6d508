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
// append-only: the triggers refuse UPDATE and DELETE from any connection, not only from signet's
// own code (which has no such statement).
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

constexpr std::array kMigrations = {
    Migration{1, "create keys table", kCreateKeys},
    Migration{2, "create accounts and bearer_tokens tables", kCreateAccounts},
    Migration{3, "create activation, grant, policy and audit tables", kCreateActivations},
};

}  // namespace

std::span<const Migration> Migrations() { return kMigrations; }

int LatestSchemaVersion() { return kMigrations.back().version; }

}  // namespace signet::store
