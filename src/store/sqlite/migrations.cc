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

constexpr std::array kMigrations = {
    Migration{1, "create keys table", kCreateKeys},
};

}  // namespace

std::span<const Migration> Migrations() { return kMigrations; }

int LatestSchemaVersion() { return kMigrations.back().version; }

}  // namespace signet::store
