// The schema history of signet's SQLite database: an ordered list of migrations, each taking the
// database from version N-1 to N. The version a database is at lives in `PRAGMA user_version`;
// SqliteStore::Open applies the missing ones, each in its own transaction together with the
// version bump, so a database is always exactly at one version.
//
// To change the schema, append a Migration with the next version number to the list in
// migrations.cc. Never edit or reorder one that has shipped: databases in the field are already
// at its version and will not run it again.
//
// Pure data; thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace signet::store {

// Written to `PRAGMA application_id` when signet creates a database, so signet can tell its own
// files from other SQLite databases ('SGNT').
inline constexpr int32_t kSignetApplicationId = 0x5347'4E54;

struct Migration {
  int version;                   // 1, 2, 3, ...: the schema version after this migration
  std::string_view description;  // for error messages, e.g. "create keys table"
  std::string_view sql;          // one or more statements; constant text, never holds values
};

// All migrations, in order; versions are 1, 2, ... without gaps.
std::span<const Migration> Migrations();

// The schema version this build of signet creates and understands (the last migration's).
int LatestSchemaVersion();

}  // namespace signet::store
