#include "store/sqlite/sqlite_store.h"

#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "store/sqlite/internal/sqlite_handles.h"
#include "store/sqlite/migrations.h"

namespace signet::store {

// Reaches SqliteStore's migration-list seam, to make a migration fail on purpose.
class SqliteStoreTestPeer {
 public:
  static Result<std::unique_ptr<SqliteStore>> OpenWith(const std::string& path,
                                                       std::span<const Migration> migrations) {
    return SqliteStore::OpenWith(path, SqliteStore::OpenMode::kCreateIfMissing, {}, migrations);
  }
};

namespace {

using namespace std::chrono_literals;
using sqlite_internal::Connection;

constexpr uid_t kNobody = 65534;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteAll(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

// A second, raw connection to a database file, as another process (or another program) would have.
Connection RawOpen(const std::string& path) {
  auto conn = Connection::Open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  if (!conn.ok()) {
    ADD_FAILURE() << conn.error().message();
    return Connection();
  }
  return std::move(conn).value();
}

int64_t RawPragma(const std::string& path, const std::string& pragma) {
  Connection conn = RawOpen(path);
  auto query = conn.Prepare("PRAGMA " + pragma, "test");
  if (!query.ok()) {
    ADD_FAILURE() << query.error().message();
    return -1;
  }
  auto row = query->Step();
  if (!row.ok() || !*row) {
    ADD_FAILURE() << "PRAGMA " << pragma << " returned no row";
    return -1;
  }
  return query->Int64(0);
}

void RawExec(const std::string& path, const std::string& sql) {
  Connection conn = RawOpen(path);
  Status status = conn.Exec(sql, "test");
  ASSERT_TRUE(status.ok()) << status.error().message();
}

KeyRecord MakeKey(const std::string& suffix) {
  KeyRecord key;
  key.id = "k_" + suffix;
  key.name = "key-" + suffix;
  key.algorithm = "ecdsa-p256";
  key.state = KeyState::kActive;
  key.owner = "local";
  key.token_label = "signet";
  key.token_serial = "0123456789abcdef";
  key.hsm_key_id = "a1b2c3";
  key.public_key_spki = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE";
  key.certificate_chain_pem = "";
  key.created_at = FromUnixSeconds(1'700'000'000);
  key.updated_at = FromUnixSeconds(1'700'000'000);
  return key;
}

void ExpectSameKey(const KeyRecord& got, const KeyRecord& want) {
  EXPECT_EQ(got.id, want.id);
  EXPECT_EQ(got.name, want.name);
  EXPECT_EQ(got.algorithm, want.algorithm);
  EXPECT_EQ(got.state, want.state);
  EXPECT_EQ(got.owner, want.owner);
  EXPECT_EQ(got.token_label, want.token_label);
  EXPECT_EQ(got.token_serial, want.token_serial);
  EXPECT_EQ(got.hsm_key_id, want.hsm_key_id);
  EXPECT_EQ(got.public_key_spki, want.public_key_spki);
  EXPECT_EQ(got.certificate_chain_pem, want.certificate_chain_pem);
  EXPECT_EQ(got.created_at, want.created_at);
  EXPECT_EQ(got.updated_at, want.updated_at);
}

// A record in which every field differs from MakeKey's, so a swapped column shows.
KeyRecord DistinctKey() {
  KeyRecord key;
  key.id = "k_3f2a9c0d1e5b4a7c";
  key.name = "release signing \xE2\x9C\x93";  // non-ASCII survives
  key.algorithm = "rsa-3072";
  key.state = KeyState::kDisabled;
  key.owner = "alice";
  key.token_label = "prod token";
  key.token_serial = "ffee000111";
  key.hsm_key_id = "00ff10";
  key.public_key_spki = std::string(600, 'Q');
  key.certificate_chain_pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  key.created_at = FromUnixSeconds(1'600'000'001);
  key.updated_at = FromUnixSeconds(1'650'000'002);
  return key;
}

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/signet-store-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/signet.db";
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::permissions(dir_, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::add, ec);
    std::filesystem::remove_all(dir_, ec);
  }

  std::unique_ptr<SqliteStore> OpenStore(const SqliteStoreOptions& options = {}) {
    auto store = SqliteStore::Open(path_, options);
    if (!store.ok()) {
      ADD_FAILURE() << store.error().message();
      return nullptr;
    }
    return std::move(store).value();
  }

  std::string dir_;
  std::string path_;
};

// ---- Port helpers and building blocks ----

TEST(KeyStateTest, NamesRoundTrip) {
  for (KeyState s : {KeyState::kActive, KeyState::kDisabled, KeyState::kDestroyed}) {
    auto parsed = ParseKeyState(KeyStateName(s));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, s);
  }
  EXPECT_EQ(KeyStateName(KeyState::kDisabled), "disabled");
}

TEST(KeyStateTest, ParseRejectsUnknownName) {
  auto parsed = ParseKeyState("Active");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.error().code(), ErrorCode::kInvalidArgument);
}

TEST(MigrationsTest, VersionsAreContiguousFromOne) {
  auto migrations = Migrations();
  ASSERT_FALSE(migrations.empty());
  for (size_t i = 0; i < migrations.size(); ++i) {
    EXPECT_EQ(migrations[i].version, static_cast<int>(i) + 1);
    EXPECT_FALSE(migrations[i].description.empty());
    EXPECT_FALSE(migrations[i].sql.empty());
  }
  EXPECT_EQ(LatestSchemaVersion(), migrations.back().version);
}

TEST(SqliteErrorTest, MapsResultCodesToErrorCodes) {
  using sqlite_internal::ErrorFromSqlite;
  auto code = [](int rc, int system_errno = 0) {
    return ErrorFromSqlite(rc, "/p.db", "ctx", "msg", system_errno).code();
  };
  EXPECT_EQ(code(SQLITE_BUSY), ErrorCode::kUnavailable);
  EXPECT_EQ(code(SQLITE_BUSY_SNAPSHOT), ErrorCode::kUnavailable);
  EXPECT_EQ(code(SQLITE_LOCKED), ErrorCode::kUnavailable);
  EXPECT_EQ(code(SQLITE_FULL), ErrorCode::kResourceExhausted);
  EXPECT_EQ(code(SQLITE_CORRUPT), ErrorCode::kDataLoss);
  EXPECT_EQ(code(SQLITE_NOTADB), ErrorCode::kDataLoss);
  // A file that cannot be written: the user's to fix when opening it, the service's failure
  // (never a request's refusal) once it is open.
  EXPECT_EQ(code(SQLITE_READONLY), ErrorCode::kUnavailable);
  EXPECT_EQ(ErrorFromSqlite(SQLITE_READONLY, "/p.db", "cannot open database", "msg", 0).code(),
            ErrorCode::kPermissionDenied);
  EXPECT_EQ(code(SQLITE_CANTOPEN, EACCES), ErrorCode::kPermissionDenied);
  EXPECT_EQ(code(SQLITE_CANTOPEN, EIO), ErrorCode::kInternal);
  EXPECT_EQ(code(SQLITE_CONSTRAINT_UNIQUE), ErrorCode::kAlreadyExists);
  EXPECT_EQ(code(SQLITE_CONSTRAINT_CHECK), ErrorCode::kInvalidArgument);
  // signet's triggers guard append-only tables: tampering or a bug, never a bad request.
  EXPECT_EQ(code(SQLITE_CONSTRAINT_TRIGGER), ErrorCode::kDataLoss);
  EXPECT_EQ(code(SQLITE_CONSTRAINT_COMMITHOOK), ErrorCode::kInternal);
  EXPECT_EQ(code(SQLITE_IOERR_WRITE), ErrorCode::kInternal);
  EXPECT_EQ(code(SQLITE_ERROR), ErrorCode::kInternal);
}

TEST(SqliteErrorTest, MessageNamesPathAndSqliteText) {
  Error e = sqlite_internal::ErrorFromSqlite(SQLITE_NOTADB, "/data/x.db", "open",
                                             "file is not a database");
  EXPECT_EQ(e.message(),
            "/data/x.db is not a signet database or is corrupt (sqlite: file is not a database)");
}

// ---- Key records ----

TEST_F(SqliteStoreTest, GetByNameReturnsEveryFieldInserted) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  KeyRecord key = DistinctKey();
  ASSERT_TRUE(store->InsertKey(key).ok());
  auto got = store->GetKeyByName(key.name);
  ASSERT_TRUE(got.ok()) << got.error().message();
  ExpectSameKey(*got, key);
}

TEST_F(SqliteStoreTest, GetByIdReturnsEveryFieldInserted) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  KeyRecord key = DistinctKey();
  ASSERT_TRUE(store->InsertKey(key).ok());
  auto got = store->GetKeyById(key.id);
  ASSERT_TRUE(got.ok()) << got.error().message();
  ExpectSameKey(*got, key);
}

TEST_F(SqliteStoreTest, ListKeysReturnsEveryKeyOrderedByName) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  KeyRecord distinct = DistinctKey();  // name "release ..." sorts between "key-b" and "zeta"
  KeyRecord b = MakeKey("b");
  KeyRecord a = MakeKey("a");
  KeyRecord z = MakeKey("z");
  z.name = "zeta";
  for (const KeyRecord& k : {z, distinct, b, a}) ASSERT_TRUE(store->InsertKey(k).ok());
  auto keys = store->ListKeys();
  ASSERT_TRUE(keys.ok()) << keys.error().message();
  ASSERT_EQ(keys->size(), 4u);
  ExpectSameKey((*keys)[0], a);
  ExpectSameKey((*keys)[1], b);
  ExpectSameKey((*keys)[2], distinct);
  ExpectSameKey((*keys)[3], z);
}

TEST_F(SqliteStoreTest, ListKeysOfEmptyDatabaseIsEmpty) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto keys = store->ListKeys();
  ASSERT_TRUE(keys.ok());
  EXPECT_TRUE(keys->empty());
}

TEST_F(SqliteStoreTest, TimesAreKeptToTheSecond) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  KeyRecord key = MakeKey("t");
  key.created_at = FromUnixSeconds(1'700'000'123) + 987ms;
  key.updated_at = FromUnixSeconds(1'700'000'456) + 1ms;
  ASSERT_TRUE(store->InsertKey(key).ok());
  auto got = store->GetKeyById(key.id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->created_at, FromUnixSeconds(1'700'000'123));
  EXPECT_EQ(got->updated_at, FromUnixSeconds(1'700'000'456));
}

TEST_F(SqliteStoreTest, UnknownKeyIsNotFound) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto by_name = store->GetKeyByName("nope");
  ASSERT_FALSE(by_name.ok());
  EXPECT_EQ(by_name.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(by_name.error().message().find("'nope'"), std::string::npos);
  auto by_id = store->GetKeyById("k_nope");
  ASSERT_FALSE(by_id.ok());
  EXPECT_EQ(by_id.error().code(), ErrorCode::kNotFound);
}

TEST_F(SqliteStoreTest, DuplicateNameIsAlreadyExistsAndChangesNothing) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  KeyRecord first = MakeKey("1");
  ASSERT_TRUE(store->InsertKey(first).ok());
  KeyRecord second = MakeKey("2");
  second.name = first.name;
  second.algorithm = "rsa-4096";
  Status status = store->InsertKey(second);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(status.error().message(), "a key named 'key-1' already exists");
  auto keys = store->ListKeys();
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->size(), 1u);
  ExpectSameKey((*keys)[0], first);
  EXPECT_EQ(store->GetKeyById(second.id).error().code(), ErrorCode::kNotFound);
}

TEST_F(SqliteStoreTest, DuplicateIdIsAlreadyExists) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  KeyRecord first = MakeKey("1");
  ASSERT_TRUE(store->InsertKey(first).ok());
  KeyRecord second = MakeKey("2");
  second.id = first.id;
  Status status = store->InsertKey(second);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_NE(status.error().message().find("'k_1'"), std::string::npos);
  EXPECT_EQ(store->GetKeyByName(second.name).error().code(), ErrorCode::kNotFound);
}

TEST_F(SqliteStoreTest, EmptyIdOrNameIsInvalidArgument) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  KeyRecord no_id = MakeKey("1");
  no_id.id.clear();
  EXPECT_EQ(store->InsertKey(no_id).error().code(), ErrorCode::kInvalidArgument);
  KeyRecord no_name = MakeKey("2");
  no_name.name.clear();
  EXPECT_EQ(store->InsertKey(no_name).error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(SqliteStoreTest, UpdateKeyStateFromExpectedStateSucceeds) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  KeyRecord key = MakeKey("1");
  ASSERT_TRUE(store->InsertKey(key).ok());
  TimePoint later = FromUnixSeconds(1'800'000'000);
  Status status = store->UpdateKeyState(key.id, KeyState::kActive, KeyState::kDisabled, later);
  ASSERT_TRUE(status.ok()) << status.error().message();
  auto got = store->GetKeyById(key.id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->state, KeyState::kDisabled);
  EXPECT_EQ(got->updated_at, later);
  EXPECT_EQ(got->created_at, key.created_at);
}

TEST_F(SqliteStoreTest, UpdateKeyStateFromWrongStateIsFailedPrecondition) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  KeyRecord key = MakeKey("1");
  key.state = KeyState::kDisabled;
  ASSERT_TRUE(store->InsertKey(key).ok());
  Status status = store->UpdateKeyState(key.id, KeyState::kActive, KeyState::kDestroyed,
                                        FromUnixSeconds(1'800'000'000));
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(status.error().message(), "key 'key-1' is disabled, not active");
  auto got = store->GetKeyById(key.id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->state, KeyState::kDisabled);
  EXPECT_EQ(got->updated_at, key.updated_at);
}

TEST_F(SqliteStoreTest, UpdateKeyStateOfUnknownIdIsNotFound) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  Status status = store->UpdateKeyState("k_missing", KeyState::kActive, KeyState::kDisabled,
                                        FromUnixSeconds(1'800'000'000));
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code(), ErrorCode::kNotFound);
}

TEST_F(SqliteStoreTest, SetCertificateChainReplacesChainAndUpdatedAt) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  KeyRecord key = MakeKey("1");
  ASSERT_TRUE(store->InsertKey(key).ok());
  const std::string chain = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
  TimePoint later = FromUnixSeconds(1'800'000'000);
  ASSERT_TRUE(store->SetCertificateChain(key.id, chain, later).ok());
  auto got = store->GetKeyById(key.id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->certificate_chain_pem, chain);
  EXPECT_EQ(got->updated_at, later);
  ASSERT_TRUE(store->SetCertificateChain(key.id, "", later + 1s).ok());
  EXPECT_EQ(store->GetKeyById(key.id)->certificate_chain_pem, "");
}

TEST_F(SqliteStoreTest, SetCertificateChainOfUnknownIdIsNotFound) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  Status status = store->SetCertificateChain("k_missing", "pem", FromUnixSeconds(1));
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code(), ErrorCode::kNotFound);
}

TEST_F(SqliteStoreTest, PingSucceedsOnOpenDatabase) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->Ping().ok());
}

TEST_F(SqliteStoreTest, PingReportsSchemaUpgradedByNewerSignet) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  RawExec(path_, "PRAGMA user_version=" + std::to_string(LatestSchemaVersion() + 1));
  Status status = store->Ping();
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code(), ErrorCode::kFailedPrecondition);
}

// ---- Files, schema and migrations ----

TEST_F(SqliteStoreTest, DataPersistsAcrossReopen) {
  KeyRecord key = DistinctKey();
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->InsertKey(key).ok());
  }
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  auto got = store->GetKeyByName(key.name);
  ASSERT_TRUE(got.ok());
  ExpectSameKey(*got, key);
}

TEST_F(SqliteStoreTest, NewDatabaseIsMarkedAndAtLatestSchemaVersion) {
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->SchemaVersion(), LatestSchemaVersion());
    EXPECT_EQ(store->MigratedFrom(), 0);
    EXPECT_EQ(store->path(), path_);
  }
  EXPECT_EQ(RawPragma(path_, "user_version"), LatestSchemaVersion());
  EXPECT_EQ(RawPragma(path_, "application_id"), kSignetApplicationId);
}

TEST_F(SqliteStoreTest, DatabaseUsesWalMode) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  Connection raw = RawOpen(path_);
  auto query = raw.Prepare("PRAGMA journal_mode", "test");
  ASSERT_TRUE(query.ok());
  ASSERT_TRUE(*query->Step());
  EXPECT_EQ(query->Text(0), "wal");
}

TEST_F(SqliteStoreTest, ReopenDoesNotRerunMigrations) {
  ASSERT_NE(OpenStore(), nullptr);
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->MigratedFrom(), LatestSchemaVersion());
  EXPECT_EQ(store->SchemaVersion(), LatestSchemaVersion());
}

TEST_F(SqliteStoreTest, NewDatabaseFileIsOwnerOnly) {
  ASSERT_NE(OpenStore(), nullptr);
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// A file made by hand (touch: usually 0644) becomes owner-only before anything is written to it,
// and so do the WAL and shared-memory files SQLite makes with its mode.
TEST_F(SqliteStoreTest, AnExistingDatabaseFileIsMadeOwnerOnly) {
  {
    int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    ASSERT_GE(fd, 0);
    ::close(fd);
  }
  ASSERT_EQ(::chmod(path_.c_str(), 0644), 0);
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  for (const std::string& file : {path_, path_ + "-wal", path_ + "-shm"}) {
    SCOPED_TRACE(file);
    struct stat st {};
    ASSERT_EQ(::stat(file.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
  }
}

TEST_F(SqliteStoreTest, NewerSchemaVersionIsFailedPrecondition) {
  ASSERT_NE(OpenStore(), nullptr);
  const std::string newer = std::to_string(LatestSchemaVersion() + 1);
  RawExec(path_, "PRAGMA user_version=" + newer);
  auto store = SqliteStore::Open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(store.error().message(),
            path_ + ": database schema version " + newer + " is newer than this signet (" +
                std::to_string(LatestSchemaVersion()) + "); upgrade signet");
}

TEST_F(SqliteStoreTest, RandomBytesFileIsDataLossAndLeftAlone) {
  std::mt19937 rng(42);
  std::string junk(3 * 4096, '\0');
  for (char& c : junk) c = static_cast<char>(rng() & 0xff);
  WriteAll(path_, junk);
  auto store = SqliteStore::Open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code(), ErrorCode::kDataLoss);
  EXPECT_EQ(store.error().message().rfind(path_ + " is not a signet database or is corrupt", 0), 0u)
      << store.error().message();
  EXPECT_EQ(ReadAll(path_), junk);
}

TEST_F(SqliteStoreTest, GarbledPageIsDataLoss) {
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 200; ++i) {
      KeyRecord key = MakeKey(std::to_string(i));
      key.public_key_spki = std::string(400, 'P');
      ASSERT_TRUE(store->InsertKey(key).ok());
    }
  }
  // Closing the last connection checkpoints the WAL into the file and removes it.
  ASSERT_FALSE(std::filesystem::exists(path_ + "-wal"));
  std::string bytes = ReadAll(path_);
  ASSERT_GT(bytes.size(), 100u);
  size_t page_size = (static_cast<uint8_t>(bytes[16]) << 8) | static_cast<uint8_t>(bytes[17]);
  if (page_size == 1) page_size = 65536;
  ASSERT_GE(bytes.size(), 3 * page_size);
  // Page 2 is the root of the keys table (the first table migration 1 creates).
  for (size_t i = page_size; i < 2 * page_size; ++i) bytes[i] = static_cast<char>(0xA5);
  WriteAll(path_, bytes);

  auto store = SqliteStore::Open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code(), ErrorCode::kDataLoss) << store.error().message();
  EXPECT_NE(store.error().message().find("is not a signet database or is corrupt"),
            std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(path_));
}

TEST_F(SqliteStoreTest, ForeignDatabaseIsFailedPreconditionAndUntouched) {
  RawExec(path_, "CREATE TABLE foo (x INTEGER); INSERT INTO foo VALUES (1);");
  const std::string before = ReadAll(path_);
  auto store = SqliteStore::Open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(store.error().message(),
            path_ + " is an SQLite database of another application; refusing to use it");
  EXPECT_EQ(ReadAll(path_), before);
  EXPECT_FALSE(std::filesystem::exists(path_ + "-wal"));
}

TEST_F(SqliteStoreTest, OtherApplicationIdIsFailedPrecondition) {
  RawExec(path_, "PRAGMA application_id=1234");
  auto store = SqliteStore::Open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code(), ErrorCode::kFailedPrecondition);
}

TEST_F(SqliteStoreTest, EmptyFileIsInitialised) {
  WriteAll(path_, "");
  auto store = SqliteStore::Open(path_);
  ASSERT_TRUE(store.ok()) << store.error().message();
  EXPECT_EQ((*store)->SchemaVersion(), LatestSchemaVersion());
  EXPECT_TRUE((*store)->InsertKey(MakeKey("1")).ok());
}

TEST_F(SqliteStoreTest, OpenExistingOfMissingFileIsNotFoundAndCreatesNothing) {
  auto store = SqliteStore::OpenExisting(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(store.error().message().find(path_), std::string::npos);
  EXPECT_TRUE(std::filesystem::is_empty(dir_));
}

TEST_F(SqliteStoreTest, OpenExistingOfEmptyFileIsNotFound) {
  WriteAll(path_, "");
  auto store = SqliteStore::OpenExisting(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(ReadAll(path_), "");
}

TEST_F(SqliteStoreTest, OpenExistingOpensSignetDatabase) {
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->InsertKey(MakeKey("1")).ok());
  }
  auto store = SqliteStore::OpenExisting(path_);
  ASSERT_TRUE(store.ok()) << store.error().message();
  EXPECT_TRUE((*store)->GetKeyById("k_1").ok());
}

TEST_F(SqliteStoreTest, PathThatIsAFolderIsInvalidArgument) {
  auto store = SqliteStore::Open(dir_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(store.error().message(), dir_ + " is a folder; give the path of a database file");
}

TEST_F(SqliteStoreTest, MissingFolderIsNotFound) {
  const std::string path = dir_ + "/missing/signet.db";
  auto store = SqliteStore::Open(path);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(store.error().message().find("folder " + dir_ + "/missing does not exist"),
            std::string::npos)
      << store.error().message();
}

TEST_F(SqliteStoreTest, FolderThatIsAFileIsInvalidArgument) {
  const std::string file = dir_ + "/plain";
  WriteAll(file, "x");
  auto store = SqliteStore::Open(file + "/signet.db");
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(store.error().message().find(file + " is not a folder"), std::string::npos)
      << store.error().message();
}

// ---- Permissions ----
//
// Root bypasses file permissions, so as root these tests open the database in a forked child that
// has dropped to the unprivileged user `nobody`; without the right to do that they are skipped.

struct OpenOutcome {
  bool skipped = false;
  bool ok = false;
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
};

OpenOutcome OpenAsUnprivilegedUser(const std::string& path) {
  if (::geteuid() != 0) {
    auto store = SqliteStore::Open(path);
    if (store.ok()) return {false, true, ErrorCode::kInternal, ""};
    return {false, false, store.error().code(), store.error().message()};
  }
  int fds[2];
  if (::pipe(fds) != 0) return {true, false, ErrorCode::kInternal, "pipe failed"};
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    std::string out;
    if (::setgroups(0, nullptr) != 0 || ::setgid(kNobody) != 0 || ::setuid(kNobody) != 0) {
      out = "skip";
    } else {
      auto store = SqliteStore::Open(path);
      out = store.ok() ? "ok"
                       : std::to_string(static_cast<int>(store.error().code())) + " " +
                             store.error().message();
    }
    ssize_t written = ::write(fds[1], out.data(), out.size());
    ::_exit(written == static_cast<ssize_t>(out.size()) ? 0 : 1);
  }
  ::close(fds[1]);
  std::string out;
  char buf[512];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, buf + n);
  ::close(fds[0]);
  int wstatus = 0;
  ::waitpid(pid, &wstatus, 0);
  if (out == "skip" || out.empty()) return {true, false, ErrorCode::kInternal, "cannot drop root"};
  if (out == "ok") return {false, true, ErrorCode::kInternal, ""};
  size_t space = out.find(' ');
  return {false, false, static_cast<ErrorCode>(std::stoi(out.substr(0, space))),
          out.substr(space + 1)};
}

#define SKIP_IF_CANNOT_TEST_PERMISSIONS(outcome)                                            \
  if ((outcome).skipped) {                                                                  \
    GTEST_SKIP() << "running as root, which bypasses file permissions, and cannot drop to " \
                    "uid 65534 to test them";                                               \
  }

TEST_F(SqliteStoreTest, ReadOnlyFolderIsPermissionDenied) {
  ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);
  const std::string folder = dir_ + "/ro";
  ASSERT_EQ(::mkdir(folder.c_str(), 0555), 0);
  const std::string path = folder + "/signet.db";
  OpenOutcome outcome = OpenAsUnprivilegedUser(path);
  SKIP_IF_CANNOT_TEST_PERMISSIONS(outcome);
  ASSERT_FALSE(outcome.ok);
  EXPECT_EQ(outcome.code, ErrorCode::kPermissionDenied);
  EXPECT_NE(outcome.message.find("folder " + folder + " is not writable"), std::string::npos)
      << outcome.message;
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST_F(SqliteStoreTest, ReadOnlyFileIsPermissionDenied) {
  ASSERT_NE(OpenStore(), nullptr);
  ASSERT_EQ(::chmod(dir_.c_str(), 0777), 0);
  ASSERT_EQ(::chmod(path_.c_str(), ::geteuid() == 0 ? 0644 : 0400), 0);
  OpenOutcome outcome = OpenAsUnprivilegedUser(path_);
  SKIP_IF_CANNOT_TEST_PERMISSIONS(outcome);
  ASSERT_FALSE(outcome.ok);
  EXPECT_EQ(outcome.code, ErrorCode::kPermissionDenied);
  EXPECT_NE(outcome.message.find("database " + path_ + " cannot be read and written"),
            std::string::npos)
      << outcome.message;
}

TEST_F(SqliteStoreTest, WritableFileInReadOnlyFolderIsPermissionDenied) {
  // The file itself is writable, but SQLite could not create signet.db-wal beside it.
  ASSERT_NE(OpenStore(), nullptr);
  if (::geteuid() == 0) {
    ASSERT_EQ(::chown(path_.c_str(), kNobody, kNobody), 0);
    ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);
  } else {
    ASSERT_EQ(::chmod(dir_.c_str(), 0500), 0);
  }
  OpenOutcome outcome = OpenAsUnprivilegedUser(path_);
  SKIP_IF_CANNOT_TEST_PERMISSIONS(outcome);
  ASSERT_FALSE(outcome.ok);
  EXPECT_EQ(outcome.code, ErrorCode::kPermissionDenied);
  EXPECT_NE(outcome.message.find("-wal"), std::string::npos) << outcome.message;
}

// ---- Nothing half-written ----

TEST_F(SqliteStoreTest, FailedFirstMigrationRemovesCreatedFile) {
  const Migration broken[] = {
      {1, "broken", "CREATE TABLE a (x INTEGER); INSERT INTO no_such_table VALUES (1);"},
  };
  auto store = SqliteStoreTestPeer::OpenWith(path_, broken);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code(), ErrorCode::kInternal);
  EXPECT_NE(store.error().message().find("schema migration 1 (broken)"), std::string::npos)
      << store.error().message();
  EXPECT_TRUE(std::filesystem::is_empty(dir_));
}

TEST_F(SqliteStoreTest, FailedLaterMigrationLeavesPreviousVersionIntact) {
  {
    auto store = OpenStore();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->InsertKey(MakeKey("1")).ok());
  }
  std::vector<Migration> migrations(Migrations().begin(), Migrations().end());
  migrations.push_back({LatestSchemaVersion() + 1, "broken",
                        "CREATE TABLE half (x INTEGER); INSERT INTO no_such_table VALUES (1);"});
  auto failed = SqliteStoreTestPeer::OpenWith(path_, migrations);
  ASSERT_FALSE(failed.ok());
  EXPECT_TRUE(std::filesystem::exists(path_));
  EXPECT_EQ(RawPragma(path_, "user_version"), LatestSchemaVersion());

  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->GetKeyById("k_1").ok());
  Connection raw = RawOpen(path_);
  auto query = raw.Prepare("SELECT count(*) FROM sqlite_master WHERE name = 'half'", "test");
  ASSERT_TRUE(query.ok());
  ASSERT_TRUE(*query->Step());
  EXPECT_EQ(query->Int64(0), 0);
}

// ---- Locks and threads ----

TEST_F(SqliteStoreTest, WriterWaitsForAnotherProcessShortLock) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  Connection other = RawOpen(path_);
  ASSERT_TRUE(other.Exec("BEGIN IMMEDIATE", "test").ok());
  std::thread release([&other] {
    std::this_thread::sleep_for(300ms);
    EXPECT_TRUE(other.Exec("COMMIT", "test").ok());
  });
  Status status = store->InsertKey(MakeKey("1"));
  release.join();
  EXPECT_TRUE(status.ok()) << status.error().message();
}

TEST_F(SqliteStoreTest, LockHeldPastBusyTimeoutIsUnavailable) {
  auto store = OpenStore({.busy_timeout = 100ms});
  ASSERT_NE(store, nullptr);
  Connection other = RawOpen(path_);
  ASSERT_TRUE(other.Exec("BEGIN IMMEDIATE", "test").ok());
  Status status = store->InsertKey(MakeKey("1"));
  ASSERT_TRUE(other.Exec("ROLLBACK", "test").ok());
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code(), ErrorCode::kUnavailable) << status.error().message();
  EXPECT_TRUE(store->InsertKey(MakeKey("1")).ok());
}

TEST_F(SqliteStoreTest, ManyThreadsInsertReadAndUpdateWithoutErrors) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  constexpr int kThreads = 8;
  constexpr int kPerThread = 200;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        KeyRecord key = MakeKey(std::to_string(t) + "-" + std::to_string(i));
        Status inserted = store->InsertKey(key);
        auto got = store->GetKeyByName(key.name);
        Status updated = store->UpdateKeyState(key.id, KeyState::kActive, KeyState::kDisabled,
                                               FromUnixSeconds(1'800'000'000));
        if (!inserted.ok() || !got.ok() || got->id != key.id || !updated.ok()) ++failures;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  auto keys = store->ListKeys();
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->size(), static_cast<size_t>(kThreads * kPerThread));
  for (const KeyRecord& k : *keys) EXPECT_EQ(k.state, KeyState::kDisabled);
}

TEST_F(SqliteStoreTest, RacingCompareAndSetHasExactlyOneWinner) {
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  constexpr int kRounds = 50;
  for (int round = 0; round < kRounds; ++round) {
    KeyRecord key = MakeKey(std::to_string(round));
    ASSERT_TRUE(store->InsertKey(key).ok());
    std::barrier start(2);
    Status results[2] = {OkStatus(), OkStatus()};
    std::thread racers[2];
    for (int r = 0; r < 2; ++r) {
      racers[r] = std::thread([&, r] {
        start.arrive_and_wait();
        results[r] = store->UpdateKeyState(key.id, KeyState::kActive,
                                           r == 0 ? KeyState::kDisabled : KeyState::kDestroyed,
                                           FromUnixSeconds(1'800'000'000));
      });
    }
    for (std::thread& t : racers) t.join();
    ASSERT_NE(results[0].ok(), results[1].ok()) << "round " << round;
    const Status& loser = results[0].ok() ? results[1] : results[0];
    EXPECT_EQ(loser.error().code(), ErrorCode::kFailedPrecondition);
    auto got = store->GetKeyById(key.id);
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(got->state, results[0].ok() ? KeyState::kDisabled : KeyState::kDestroyed);
  }
}

TEST_F(SqliteStoreTest, TwoStoresOnOneFileRaceCompareAndSetWithOneWinner) {
  // Two connections, as a CLI and a server would have: SQLite's file locks decide.
  auto first = OpenStore();
  auto second = OpenStore();
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  constexpr int kKeys = 100;
  for (int i = 0; i < kKeys; ++i) ASSERT_TRUE(first->InsertKey(MakeKey(std::to_string(i))).ok());
  std::atomic<int> wins{0};
  std::atomic<int> unexpected{0};
  auto race = [&](SqliteStore* store, KeyState to) {
    for (int i = 0; i < kKeys; ++i) {
      Status s = store->UpdateKeyState("k_" + std::to_string(i), KeyState::kActive, to,
                                       FromUnixSeconds(1'800'000'000));
      if (s.ok()) {
        ++wins;
      } else if (s.error().code() != ErrorCode::kFailedPrecondition) {
        ++unexpected;
      }
    }
  };
  std::thread a(race, first.get(), KeyState::kDisabled);
  std::thread b(race, second.get(), KeyState::kDestroyed);
  a.join();
  b.join();
  EXPECT_EQ(unexpected.load(), 0);
  EXPECT_EQ(wins.load(), kKeys);
}

}  // namespace
}  // namespace signet::store
