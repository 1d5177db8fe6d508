// Tests of SqliteStore's audit log (schema migration 4) against real SQLite files in a temporary
// folder: appends and reads, queries, the all-or-nothing batch, index assignment under threads and
// between two stores on one file, persistence, tiles and checkpoints, and tamper attempts through
// a raw connection that the schema's triggers must refuse.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "store/sqlite/internal/sqlite_handles.h"
#include "store/sqlite/migrations.h"
#include "store/sqlite/sqlite_store.h"

namespace signet::store {

// Reaches SqliteStore's migration-list seam, to build a database at an older schema version.
class SqliteStoreTestPeer {
 public:
  static Result<std::unique_ptr<SqliteStore>> OpenWith(const std::string& path,
                                                       std::span<const Migration> migrations) {
    return SqliteStore::OpenWith(path, SqliteStore::OpenMode::kCreateIfMissing, {}, migrations);
  }
};

namespace {

using namespace std::chrono_literals;
using sqlite_internal::BindAll;

const TimePoint kT0 = FromUnixSeconds(1'800'000'000);

// An entry whose bytes name its index, so a read can check it was rendered at the right one.
LogEntryAppend Entry(std::string action, std::string payload = "x", TimePoint time = kT0,
                     std::string key_id = "", std::string account_id = "") {
  LogEntryAppend e;
  e.time = time;
  e.action = std::move(action);
  e.key_id = std::move(key_id);
  e.account_id = std::move(account_id);
  e.render = [payload = std::move(payload)](int64_t index) -> Result<std::string> {
    return "{\"index\":" + std::to_string(index) + ",\"p\":\"" + payload + "\"}";
  };
  return e;
}

std::string Rendered(int64_t index, const std::string& payload = "x") {
  return "{\"index\":" + std::to_string(index) + ",\"p\":\"" + payload + "\"}";
}

LogTileRow Tile(int level, int64_t index, int width, uint8_t fill = 0x11) {
  LogTileRow t;
  t.level = level;
  t.index = index;
  t.width = width;
  t.hashes.resize(32 * static_cast<size_t>(width));
  for (size_t i = 0; i < t.hashes.size(); ++i) {
    t.hashes[i] = static_cast<uint8_t>(fill + i / 32);  // hash k is filled with fill + k
  }
  return t;
}

LogCheckpointRow Checkpoint(int64_t size, uint8_t fill = 0xcc) {
  LogCheckpointRow c;
  c.size = size;
  c.root = Bytes(32, fill);
  c.note = "signet.example/test\n" + std::to_string(size) + "\nroot\n\n— sig\n";
  c.time = kT0 + 1min;
  return c;
}

LogKeyRecord Key() {
  LogKeyRecord k;
  k.origin = "signet.example/test";
  k.token_serial = "0001";
  k.hsm_key_id = "a1b2";
  k.public_key = Bytes(32, 0x42);
  k.created_at = kT0;
  return k;
}

class LogStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("signet-log-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "signet.db").string();
    store_ = Open();
    ASSERT_NE(store_, nullptr);
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<SqliteStore> Open(std::chrono::milliseconds busy = 5000ms) {
    SqliteStoreOptions options;
    options.busy_timeout = busy;
    auto store = SqliteStore::Open(path_, options);
    if (!store.ok()) {
      ADD_FAILURE() << store.error().message();
      return nullptr;
    }
    return std::move(store).value();
  }

  // A raw connection, as an operator at an sqlite3 prompt would have.
  sqlite_internal::Connection Raw() {
    auto raw = sqlite_internal::Connection::Open(path_, SQLITE_OPEN_READWRITE);
    EXPECT_TRUE(raw.ok());
    return std::move(raw).value();
  }

  // Appends `n` single entries "a0", "a1", ... and asserts they got 0..n-1.
  void AppendN(int n) {
    for (int i = 0; i < n; ++i) {
      LogEntryAppend e = Entry("login", "a" + std::to_string(i));
      auto index = store_->AppendLogEntries({&e, 1});
      ASSERT_TRUE(index.ok()) << index.error().message();
    }
  }

  std::vector<LogEntryRow> All() {
    auto rows = store_->ReadLogEntries(0, 1'000'000);
    EXPECT_TRUE(rows.ok()) << rows.error().message();
    return rows.ok() ? *rows : std::vector<LogEntryRow>{};
  }

  std::filesystem::path dir_;
  std::string path_;
  std::unique_ptr<SqliteStore> store_;
};

// ---- schema ----

TEST_F(LogStoreTest, NewDatabaseIsAtSchemaVersionFour) {
  EXPECT_EQ(store_->SchemaVersion(), LatestSchemaVersion());
  EXPECT_GE(LatestSchemaVersion(), 4);
}

TEST_F(LogStoreTest, Migration4AppliesToAVersion3DatabaseAndKeepsAuditEvents) {
  store_.reset();
  const std::string old_path = (dir_ / "old.db").string();
  {
    auto old = SqliteStoreTestPeer::OpenWith(old_path, Migrations().first(3));
    ASSERT_TRUE(old.ok()) << old.error().message();
  }
  {
    auto raw = sqlite_internal::Connection::Open(old_path, SQLITE_OPEN_READWRITE);
    ASSERT_TRUE(raw.ok()) << raw.error().message();
    ASSERT_TRUE(
        raw->Exec("INSERT INTO audit_events (time, action, json) VALUES (1, 'login', '{}')", "insert")
            .ok());
  }
  auto store = SqliteStore::Open(old_path);
  ASSERT_TRUE(store.ok()) << store.error().message();
  EXPECT_EQ((*store)->MigratedFrom(), 3);
  EXPECT_EQ((*store)->SchemaVersion(), LatestSchemaVersion());
  {
    auto raw = sqlite_internal::Connection::Open(old_path, SQLITE_OPEN_READONLY);
    ASSERT_TRUE(raw.ok()) << raw.error().message();
    auto query = raw->Prepare("SELECT count(*) FROM audit_events", "count");
    ASSERT_TRUE(query.ok());
    auto row = query->Step();
    ASSERT_TRUE(row.ok() && *row);
    EXPECT_EQ(query->Int64(0), 1);
  }
  LogEntryAppend e = Entry("login");
  auto index = (*store)->AppendLogEntries({&e, 1});
  ASSERT_TRUE(index.ok()) << index.error().message();
  EXPECT_EQ(*index, 0);
}

// ---- appends and reads ----

TEST_F(LogStoreTest, EmptyLogHasSizeZeroAndNoEntries) {
  EXPECT_EQ(*store_->LogSize(), 0);
  EXPECT_TRUE(All().empty());
}

TEST_F(LogStoreTest, AppendReturnsFirstIndexAndRendersEachEntryAtItsIndex) {
  std::vector<LogEntryAppend> batch = {Entry("login", "a"),
                                       Entry("sign", "b", kT0 + 1s, "k_1", "a_alice")};
  auto first = store_->AppendLogEntries(batch);
  ASSERT_TRUE(first.ok()) << first.error().message();
  EXPECT_EQ(*first, 0);
  std::vector<LogEntryAppend> more = {Entry("logout", "c")};
  EXPECT_EQ(*store_->AppendLogEntries(more), 2);
  EXPECT_EQ(*store_->LogSize(), 3);

  std::vector<LogEntryRow> rows = All();
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[1].index, 1);
  EXPECT_EQ(rows[1].time, kT0 + 1s);
  EXPECT_EQ(rows[1].action, "sign");
  EXPECT_EQ(rows[1].key_id, "k_1");
  EXPECT_EQ(rows[1].account_id, "a_alice");
  EXPECT_EQ(rows[1].data, Rendered(1, "b"));
  EXPECT_EQ(rows[2].data, Rendered(2, "c"));
  EXPECT_EQ(rows[0].key_id, "");
}

TEST_F(LogStoreTest, EntryBytesSurviveExactlyIncludingZeroBytes) {
  const std::string binary("a\0b\xff\n", 5);
  LogEntryAppend e = Entry("x");
  e.render = [&](int64_t) -> Result<std::string> { return binary; };
  ASSERT_TRUE(store_->AppendLogEntries({&e, 1}).ok());
  EXPECT_EQ(All().at(0).data, binary);
}

TEST_F(LogStoreTest, ReadLogEntriesPagesFromAnIndex) {
  AppendN(10);
  auto page = store_->ReadLogEntries(4, 3);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->size(), 3u);
  EXPECT_EQ((*page)[0].index, 4);
  EXPECT_EQ((*page)[2].index, 6);
  EXPECT_TRUE(store_->ReadLogEntries(10, 5)->empty());
  EXPECT_EQ(store_->ReadLogEntries(-1, 5).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(store_->ReadLogEntries(0, 0).error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(LogStoreTest, EmptyBatchIsInvalidArgument) {
  auto r = store_->AppendLogEntries({});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(LogStoreTest, EntryWithoutActionOrRenderIsRefusedBeforeAnythingIsWritten) {
  std::vector<LogEntryAppend> batch = {Entry("ok"), Entry("")};
  auto r = store_->AppendLogEntries(batch);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message().find("entry 2 of 2"), std::string::npos) << r.error().message();
  batch[1] = Entry("sign");
  batch[1].render = nullptr;
  EXPECT_EQ(store_->AppendLogEntries(batch).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(*store_->LogSize(), 0);
}

TEST_F(LogStoreTest, RenderErrorRollsBackTheWholeBatchAndKeepsItsCode) {
  AppendN(2);
  std::vector<LogEntryAppend> batch = {Entry("a"), Entry("b"), Entry("c")};
  batch[2].render = [](int64_t) -> Result<std::string> { return Unavailable("the clock is gone"); };
  auto r = store_->AppendLogEntries(batch);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message().find("entry 3 of 3 (action 'c')"), std::string::npos)
      << r.error().message();
  EXPECT_NE(r.error().message().find("the clock is gone"), std::string::npos);
  EXPECT_EQ(*store_->LogSize(), 2);
  // The indices the failed batch would have used are given to the next append.
  EXPECT_EQ(*store_->AppendLogEntries(std::vector<LogEntryAppend>{Entry("d")}), 2);
}

TEST_F(LogStoreTest, RenderThatThrowsIsInternalAndRollsBack) {
  std::vector<LogEntryAppend> batch = {Entry("a"), Entry("b")};
  batch[1].render = [](int64_t) -> Result<std::string> { throw std::runtime_error("bad utf-8"); };
  auto r = store_->AppendLogEntries(batch);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInternal);
  EXPECT_NE(r.error().message().find("bad utf-8"), std::string::npos) << r.error().message();
  EXPECT_EQ(*store_->LogSize(), 0);
}

// ---- changes that commit with the entry recording them (LogEntryAppend::apply) ----

KeyRecord ChangeKey(const std::string& suffix) {
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
  key.created_at = kT0;
  key.updated_at = kT0;
  return key;
}

TEST_F(LogStoreTest, ChangeCommitsWithItsEntryAndRunsBeforeTheRender) {
  ASSERT_TRUE(store_->InsertKey(ChangeKey("a")).ok());
  LogEntryAppend e = Entry("key_disable");
  e.apply = [](Store& s) {
    return s.UpdateKeyState("k_a", KeyState::kActive, KeyState::kDisabled, kT0);
  };
  // The render sees the change: it runs after it, in the same transaction.
  e.render = [this](int64_t index) -> Result<std::string> {
    SIGNET_ASSIGN_OR_RETURN(KeyRecord key, store_->GetKeyById("k_a"));
    return "{\"index\":" + std::to_string(index) + ",\"state\":\"" +
           std::string(KeyStateName(key.state)) + "\"}";
  };
  auto r = store_->AppendLogEntries({&e, 1});
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(store_->GetKeyById("k_a")->state, KeyState::kDisabled);
  ASSERT_EQ(All().size(), 1u);
  EXPECT_EQ(All()[0].data, "{\"index\":0,\"state\":\"disabled\"}");
}

TEST_F(LogStoreTest, FailingChangeFailsTheAppendKeepsItsCodeAndUndoesTheOthers) {
  ASSERT_TRUE(store_->InsertKey(ChangeKey("a")).ok());
  ASSERT_TRUE(store_->InsertKey(ChangeKey("b")).ok());
  AppendN(1);
  std::vector<LogEntryAppend> batch = {Entry("key_disable"), Entry("grant"), Entry("key_enable")};
  batch[0].apply = [](Store& s) {
    return s.UpdateKeyState("k_a", KeyState::kActive, KeyState::kDisabled, kT0);
  };
  batch[1].apply = [](Store& s) { return s.SetCertificateChain("k_b", "chain", kT0); };
  // k_b is active, not disabled: the compare-and-set refuses.
  batch[2].apply = [](Store& s) {
    return s.UpdateKeyState("k_b", KeyState::kDisabled, KeyState::kActive, kT0);
  };
  auto r = store_->AppendLogEntries(batch);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kFailedPrecondition) << r.error().message();
  EXPECT_NE(r.error().message().find("entry 3 of 3 (action 'key_enable')"), std::string::npos)
      << r.error().message();
  EXPECT_EQ(*store_->LogSize(), 1);
  EXPECT_EQ(store_->GetKeyById("k_a")->state, KeyState::kActive);
  EXPECT_EQ(store_->GetKeyById("k_b")->certificate_chain_pem, "");
}

TEST_F(LogStoreTest, FailingRenderUndoesTheChange) {
  ASSERT_TRUE(store_->InsertKey(ChangeKey("a")).ok());
  LogEntryAppend e = Entry("key_disable");
  e.apply = [](Store& s) {
    return s.UpdateKeyState("k_a", KeyState::kActive, KeyState::kDisabled, kT0);
  };
  e.render = [](int64_t) -> Result<std::string> { return Unavailable("the clock is gone"); };
  auto r = store_->AppendLogEntries({&e, 1});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(store_->GetKeyById("k_a")->state, KeyState::kActive);
  EXPECT_EQ(*store_->LogSize(), 0);
}

TEST_F(LogStoreTest, ChangeThatThrowsIsInternalAndUndone) {
  ASSERT_TRUE(store_->InsertKey(ChangeKey("a")).ok());
  LogEntryAppend e = Entry("key_disable");
  e.apply = [](Store& s) -> Status {
    (void)s.UpdateKeyState("k_a", KeyState::kActive, KeyState::kDisabled, kT0);
    throw std::runtime_error("out of paper");
  };
  auto r = store_->AppendLogEntries({&e, 1});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInternal);
  EXPECT_NE(r.error().message().find("out of paper"), std::string::npos) << r.error().message();
  EXPECT_EQ(store_->GetKeyById("k_a")->state, KeyState::kActive);
  EXPECT_EQ(*store_->LogSize(), 0);
}

TEST_F(LogStoreTest, ChangesOwnTransactionNestsAndAFailedOneUndoesOnlyItself) {
  // InsertKey runs its own transaction (duplicate check, insert): inside the append it is a
  // savepoint. A change may handle one failing step and go on; what that step did is undone,
  // what the change did before and after it commits.
  ASSERT_TRUE(store_->InsertKey(ChangeKey("a")).ok());
  LogEntryAppend e = Entry("key_create");
  Status duplicate;
  e.apply = [&](Store& s) -> Status {
    SIGNET_TRY(s.InsertKey(ChangeKey("b")));
    KeyRecord clash = ChangeKey("c");
    clash.name = "key-a";
    duplicate = s.InsertKey(clash);
    return s.SetCertificateChain("k_b", "chain", kT0);
  };
  auto r = store_->AppendLogEntries({&e, 1});
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(duplicate.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(store_->GetKeyById("k_b")->certificate_chain_pem, "chain");
  EXPECT_EQ(store_->GetKeyById("k_c").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(*store_->LogSize(), 1);
  // The connection is out of every transaction again: a plain write commits on its own.
  ASSERT_TRUE(store_->InsertKey(ChangeKey("d")).ok());
  store_.reset();
  store_ = Open();
  EXPECT_TRUE(store_->GetKeyById("k_d").ok());
  EXPECT_TRUE(store_->GetKeyById("k_b").ok());
}

// ---- sqlite_internal::Transaction nesting, under the store ----

int64_t CountRows(sqlite_internal::Connection& conn) {
  auto q = conn.Prepare("SELECT count(*) FROM t", "count");
  EXPECT_TRUE(q.ok());
  EXPECT_TRUE(*q->Step());
  return q->Int64(0);
}

TEST_F(LogStoreTest, ADroppedSavepointUndoesItsWritesAndAReleasedOneCommitsWithTheOuter) {
  sqlite_internal::Connection conn = Raw();
  ASSERT_TRUE(conn.Exec("CREATE TABLE t(x INTEGER)", "test").ok());
  {
    auto outer = sqlite_internal::Transaction::Begin(conn, "outer");
    ASSERT_TRUE(outer.ok()) << outer.error().message();
    ASSERT_TRUE(conn.Exec("INSERT INTO t VALUES (0)", "test").ok());
    conn.set_nesting_allowed(true);
    {
      auto dropped = sqlite_internal::Transaction::Begin(conn, "dropped");
      ASSERT_TRUE(dropped.ok()) << dropped.error().message();
      ASSERT_TRUE(conn.Exec("INSERT INTO t VALUES (1)", "test").ok());
    }
    {
      auto kept = sqlite_internal::Transaction::Begin(conn, "kept");
      ASSERT_TRUE(kept.ok()) << kept.error().message();
      ASSERT_TRUE(conn.Exec("INSERT INTO t VALUES (2)", "test").ok());
      ASSERT_TRUE(kept->Commit().ok());
    }
    conn.set_nesting_allowed(false);
    ASSERT_TRUE(outer->Commit().ok());
  }
  auto q = conn.Prepare("SELECT group_concat(x) FROM (SELECT x FROM t ORDER BY x)", "read");
  ASSERT_TRUE(q.ok());
  ASSERT_TRUE(*q->Step());
  EXPECT_EQ(q->Text(0), "0,2");
}

TEST_F(LogStoreTest, ATransactionLeftOpenIsNotSilentlyNestedInto) {
  sqlite_internal::Connection conn = Raw();
  auto outer = sqlite_internal::Transaction::Begin(conn, "outer");
  ASSERT_TRUE(outer.ok());
  auto again = sqlite_internal::Transaction::Begin(conn, "again");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), ErrorCode::kInternal);
}

TEST_F(LogStoreTest, NothingCommitsOnItsOwnWhileAChangeRuns) {
  // As after SQLite ended the append's transaction by itself: the change's next write finds the
  // connection in autocommit mode. It must fail, not commit alone.
  sqlite_internal::Connection conn = Raw();
  ASSERT_TRUE(conn.Exec("CREATE TABLE t(x INTEGER)", "test").ok());
  conn.set_nesting_allowed(true);
  EXPECT_FALSE(conn.Exec("INSERT INTO t VALUES (1)", "test").ok());
  {
    auto tx = sqlite_internal::Transaction::Begin(conn, "alone");
    ASSERT_TRUE(tx.ok());
    ASSERT_TRUE(conn.Exec("INSERT INTO t VALUES (2)", "test").ok());
    EXPECT_FALSE(tx->Commit().ok());
  }
  conn.set_nesting_allowed(false);
  EXPECT_EQ(CountRows(conn), 0);
}

TEST_F(LogStoreTest, ChangeCannotWriteToTheLogItself) {
  LogEntryAppend e = Entry("grant");
  Status nested;
  e.apply = [&](Store& s) -> Status {
    LogEntryAppend inner = Entry("sneaky");
    auto appended = s.AppendLogEntries({&inner, 1});
    if (appended.ok()) return OkStatus();
    return appended.error();
  };
  auto r = store_->AppendLogEntries({&e, 1});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kFailedPrecondition) << r.error().message();
  EXPECT_EQ(*store_->LogSize(), 0);

  LogEntryAppend checkpoint_entry = Entry("log_checkpoint");
  checkpoint_entry.apply = [](Store&) { return OkStatus(); };
  auto published = store_->PublishLogCheckpoint({}, Checkpoint(0), checkpoint_entry);
  ASSERT_FALSE(published.ok());
  EXPECT_EQ(published.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(LogStoreTest, AnotherThreadWaitsForTheChangeAndItsEntry) {
  // While a change runs, the store is held: another thread's read sees the change and its entry
  // together, or neither.
  ASSERT_TRUE(store_->InsertKey(ChangeKey("a")).ok());
  std::atomic<bool> in_change{false};
  std::atomic<bool> release{false};
  LogEntryAppend e = Entry("key_disable");
  e.apply = [&](Store& s) {
    Status st = s.UpdateKeyState("k_a", KeyState::kActive, KeyState::kDisabled, kT0);
    in_change = true;
    while (!release) std::this_thread::sleep_for(1ms);
    return st;
  };
  std::thread writer([&] { EXPECT_TRUE(store_->AppendLogEntries({&e, 1}).ok()); });
  while (!in_change) std::this_thread::sleep_for(1ms);
  std::atomic<bool> read_done{false};
  std::optional<KeyState> seen_state;
  int64_t seen_size = -1;
  std::thread reader([&] {
    seen_state = store_->GetKeyById("k_a")->state;
    seen_size = *store_->LogSize();
    read_done = true;
  });
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(read_done);
  release = true;
  writer.join();
  reader.join();
  EXPECT_EQ(seen_state, KeyState::kDisabled);
  EXPECT_EQ(seen_size, 1);
}

TEST_F(LogStoreTest, EmptyOrOversizedRenderIsInvalidArgumentAndRollsBack) {
  std::vector<LogEntryAppend> batch = {Entry("a"), Entry("b")};
  batch[1].render = [](int64_t) -> Result<std::string> {
    return std::string(kMaxLogEntrySize + 1, 'x');
  };
  auto r = store_->AppendLogEntries(batch);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message().find("65536 bytes"), std::string::npos) << r.error().message();
  batch[1].render = [](int64_t) -> Result<std::string> { return std::string(); };
  EXPECT_EQ(store_->AppendLogEntries(batch).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(*store_->LogSize(), 0);

  batch[1].render = [](int64_t) -> Result<std::string> {
    return std::string(kMaxLogEntrySize, 'x');
  };
  ASSERT_TRUE(store_->AppendLogEntries(batch).ok());
  EXPECT_EQ(All().at(1).data.size(), kMaxLogEntrySize);
}

// ---- queries ----

class LogQueryTest : public LogStoreTest {
 protected:
  void SetUp() override {
    LogStoreTest::SetUp();
    // index: time, action, key, account
    std::vector<LogEntryAppend> batch = {
        Entry("login", "0", kT0, "", "a_alice"),                 // 0
        Entry("sign", "1", kT0 + 10s, "k_1", "a_alice"),         // 1
        Entry("sign", "2", kT0 + 20s, "k_2", "a_bob"),           // 2
        Entry("key_disable", "3", kT0 + 30s, "k_1", "a_admin"),  // 3
        Entry("sign", "4", kT0 + 40s, "k_1", "a_bob"),           // 4
        Entry("login", "5", kT0 + 50s, "", "a_bob"),             // 5
    };
    ASSERT_TRUE(store_->AppendLogEntries(batch).ok());
  }

  std::vector<int64_t> Indices(const LogEntryQuery& q) {
    auto rows = store_->QueryLogEntries(q);
    EXPECT_TRUE(rows.ok()) << rows.error().message();
    std::vector<int64_t> out;
    if (rows.ok()) {
      for (const LogEntryRow& r : rows->entries) out.push_back(r.index);
    }
    return out;
  }
};

TEST_F(LogQueryTest, NoFilterReturnsEverythingInIndexOrder) {
  EXPECT_EQ(Indices({}), (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
}

TEST_F(LogQueryTest, FiltersByKey) {
  LogEntryQuery q;
  q.key_id = "k_1";
  EXPECT_EQ(Indices(q), (std::vector<int64_t>{1, 3, 4}));
}

TEST_F(LogQueryTest, FiltersByAccount) {
  LogEntryQuery q;
  q.account_id = "a_bob";
  EXPECT_EQ(Indices(q), (std::vector<int64_t>{2, 4, 5}));
}

TEST_F(LogQueryTest, FiltersByAction) {
  LogEntryQuery q;
  q.action = "login";
  EXPECT_EQ(Indices(q), (std::vector<int64_t>{0, 5}));
}

TEST_F(LogQueryTest, FiltersByTimeWithInclusiveSinceAndExclusiveUntil) {
  LogEntryQuery q;
  q.since = kT0 + 20s;
  q.until = kT0 + 40s;
  EXPECT_EQ(Indices(q), (std::vector<int64_t>{2, 3}));
  // Stored times are whole seconds: an event at kT0 + 40s is before kT0 + 40.5s.
  q.until = kT0 + 40s + 500ms;
  EXPECT_EQ(Indices(q), (std::vector<int64_t>{2, 3, 4}));
}

TEST_F(LogQueryTest, CombinesFilters) {
  LogEntryQuery q;
  q.key_id = "k_1";
  q.account_id = "a_bob";
  q.action = "sign";
  EXPECT_EQ(Indices(q), (std::vector<int64_t>{4}));
  q.since = kT0 + 41s;
  EXPECT_TRUE(Indices(q).empty());
}

TEST_F(LogQueryTest, PagesWithAfterIndexAndLimit) {
  LogEntryQuery q;
  q.action = "sign";
  q.limit = 2;
  EXPECT_EQ(Indices(q), (std::vector<int64_t>{1, 2}));
  q.after_index = 2;
  EXPECT_EQ(Indices(q), (std::vector<int64_t>{4}));
  q.after_index = 4;
  EXPECT_TRUE(Indices(q).empty());
}

TEST_F(LogQueryTest, APageHasASuccessorOnlyWhenFullOrCutShort) {
  LogEntryQuery q;
  q.action = "sign";
  auto page = store_->QueryLogEntries(q);
  ASSERT_TRUE(page.ok());
  EXPECT_FALSE(page->next_after.has_value());  // the end, with room to spare
  q.limit = 3;
  page = store_->QueryLogEntries(q);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->next_after, std::optional<int64_t>(4));  // full
  q.limit = 100;
  q.max_bytes = 1;  // cut after the first entry found
  page = store_->QueryLogEntries(q);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->entries.size(), 1u);
  EXPECT_EQ(page->next_after, std::optional<int64_t>(1));
  q.max_scanned = 0;
  EXPECT_EQ(store_->QueryLogEntries(q).error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(LogQueryTest, LimitOutOfRangeIsInvalidArgument) {
  LogEntryQuery q;
  q.limit = 0;
  EXPECT_EQ(store_->QueryLogEntries(q).error().code(), ErrorCode::kInvalidArgument);
  q.limit = 10001;
  EXPECT_EQ(store_->QueryLogEntries(q).error().code(), ErrorCode::kInvalidArgument);
  q.limit = 10000;
  EXPECT_TRUE(store_->QueryLogEntries(q).ok());
  q.after_index = -2;
  EXPECT_EQ(store_->QueryLogEntries(q).error().code(), ErrorCode::kInvalidArgument);
  q.after_index = INT64_MAX;  // a page after the largest index there can be: empty, no overflow
  auto rows = store_->QueryLogEntries(q);
  ASSERT_TRUE(rows.ok()) << rows.error().message();
  EXPECT_TRUE(rows->entries.empty());
}

// ---- the query index (log_lookup, migration 5) ----

// How many entries the block summaries cover (0, 256, 512, ...), read through a raw connection,
// after checking that they are dense and that every summarised block names its actions.
int64_t Summarised(const std::string& path) {
  auto raw = sqlite_internal::Connection::Open(path, SQLITE_OPEN_READONLY);
  EXPECT_TRUE(raw.ok());
  if (!raw.ok()) return -1;
  auto query = raw->Prepare(
      "SELECT coalesce(max(block) + 1, 0), count(*),"
      " (SELECT count(DISTINCT block) FROM log_block_terms WHERE term LIKE 'action:%'"
      "  AND block <= (SELECT max(block) FROM log_blocks))"
      " FROM log_blocks",
      "count");
  EXPECT_TRUE(query.ok());
  if (!query.ok()) return -1;
  auto row = query->Step();
  EXPECT_TRUE(row.ok() && *row);
  EXPECT_EQ(query->Int64(1), query->Int64(0)) << "log_blocks is not dense";
  EXPECT_EQ(query->Int64(2), query->Int64(0)) << "a summarised block has no action term";
  const int64_t blocks = query->Int64(0);
  // Every term a summarised block's entries call for is there: its actions, keys and accounts.
  auto missing = raw->Prepare(
      "WITH e AS (SELECT * FROM log_entries"
      "           WHERE idx < (SELECT coalesce(max(block) + 1, 0) FROM log_blocks) << 8),"
      " want (term, block) AS ("
      "  SELECT 'action:' || action, idx >> 8 FROM e"
      "  UNION SELECT 'key:' || key_id, idx >> 8 FROM e WHERE key_id != ''"
      "  UNION SELECT 'account:' || account_id, idx >> 8 FROM e WHERE account_id != '')"
      " SELECT count(*), (SELECT min(term) FROM want WHERE NOT EXISTS (SELECT 1 FROM"
      "   log_block_terms AS t WHERE t.term = want.term AND t.block = want.block))"
      " FROM want WHERE NOT EXISTS (SELECT 1 FROM log_block_terms AS t"
      "   WHERE t.term = want.term AND t.block = want.block)",
      "missing terms");
  EXPECT_TRUE(missing.ok()) << missing.error().message();
  if (!missing.ok()) return -1;
  row = missing->Step();
  EXPECT_TRUE(row.ok() && *row);
  EXPECT_EQ(missing->Int64(0), 0) << "summarised blocks lack terms, such as '"
                                  << (missing->IsNull(1) ? "" : missing->Text(1)) << "'";
  return blocks * 256;
}

// What QueryLogEntries must return, computed from every entry.
std::vector<int64_t> Expected(const std::vector<LogEntryRow>& all, const LogEntryQuery& q) {
  std::vector<int64_t> out;
  for (const LogEntryRow& r : all) {
    if (static_cast<int64_t>(out.size()) == q.limit) break;
    if (r.index <= q.after_index) continue;
    if (q.since && r.time < FromUnixSeconds(ToUnixSeconds(*q.since))) continue;
    if (q.until && r.time >= *q.until) continue;
    if (!q.key_id.empty() && r.key_id != q.key_id) continue;
    if (!q.account_id.empty() && r.account_id != q.account_id) continue;
    if (!q.action.empty() && r.action != q.action) continue;
    out.push_back(r.index);
  }
  return out;
}

// Runs a set of queries (each filter alone and combined, time ranges, every page size and
// starting points on both sides of the summaries) and checks each against a filter over all
// entries. `summarised` is how many entries the block summaries cover.
void ExpectQueriesAgree(SqliteStore& store, const std::vector<LogEntryRow>& all,
                        int64_t summarised) {
  const auto n = static_cast<int64_t>(all.size());
  auto query = [](std::string action, std::string key, std::string account,
                  std::optional<TimePoint> since = std::nullopt,
                  std::optional<TimePoint> until = std::nullopt) {
    LogEntryQuery q;
    q.action = std::move(action);
    q.key_id = std::move(key);
    q.account_id = std::move(account);
    q.since = since;
    q.until = until;
    return q;
  };
  std::vector<LogEntryQuery> queries(1);
  for (const char* action : {"sign", "login", "key_disable", "absent"}) {
    queries.push_back(query(action, "", ""));
  }
  for (const char* key : {"k_1", "k_2", "k_3", "k_rare", "absent"}) {
    queries.push_back(query("", key, ""));
  }
  queries.push_back(query("", "", "a_bob"));
  queries.push_back(query("sign", "k_2", "a_alice"));
  queries.push_back(query("sign", "k_rare", "a_bob"));
  queries.push_back(query("login", "", "a_bob"));
  queries.push_back(query("sign", "", "a_alice"));
  queries.push_back(query("key_disable", "k_3", ""));
  queries.push_back(query("sign", "k_rare", ""));
  queries.push_back(query("absent", "k_1", ""));
  queries.push_back(query("login", "", "absent"));
  queries.push_back(query("", "", "", kT0 + 100s, kT0 + 400s + 500ms));
  queries.push_back(query("", "k_1", "", kT0 + 380s));
  queries.push_back(query("", "k_rare", "", kT0 - 1000s, kT0 - 50s));
  queries.push_back(query("login", "", "", std::nullopt, kT0 + 3s));
  queries.push_back(query("", "", "", kT0 + 100000s));
  for (LogEntryQuery q : queries) {
    for (int64_t limit : {int64_t{1}, int64_t{7}, int64_t{250}, int64_t{10000}}) {
      for (int64_t after : {int64_t{-1}, int64_t{5}, int64_t{300}, summarised - 4, summarised - 1,
                            summarised, n - 2, n}) {
        q.limit = limit;
        q.after_index = after;
        auto rows = store.QueryLogEntries(q);
        ASSERT_TRUE(rows.ok()) << rows.error().message();
        std::vector<int64_t> got;
        for (const LogEntryRow& r : rows->entries) {
          got.push_back(r.index);
          ASSERT_EQ(r.data, all[static_cast<size_t>(r.index)].data);
        }
        ASSERT_EQ(got, Expected(all, q))
            << "action '" << q.action << "' key '" << q.key_id << "' account '" << q.account_id
            << "' limit " << limit << " after " << after;
      }
    }
  }
  // Under tight work bounds pages come short, even empty, but following next_after until it is
  // absent gives the same entries, each once and in order.
  for (LogEntryQuery q : queries) {
    for (const auto& [scanned, bytes] :
         {std::pair<int64_t, size_t>{256, SIZE_MAX}, std::pair<int64_t, size_t>{700, 4000},
          std::pair<int64_t, size_t>{65536, 1}}) {
      q.limit = 10000;
      q.after_index = -1;
      q.max_scanned = scanned;
      q.max_bytes = bytes;
      std::vector<int64_t> got;
      for (int pages = 0;; ++pages) {
        ASSERT_LT(pages, 10 * n + 10) << "paging does not end";
        auto page = store.QueryLogEntries(q);
        ASSERT_TRUE(page.ok()) << page.error().message();
        for (const LogEntryRow& r : page->entries) got.push_back(r.index);
        if (!page->next_after) break;
        ASSERT_GT(*page->next_after, q.after_index);
        if (!page->entries.empty()) {
          ASSERT_GE(*page->next_after, page->entries.back().index);
        }
        q.after_index = *page->next_after;
      }
      LogEntryQuery whole = q;
      whole.after_index = -1;
      whole.limit = n + 1;
      ASSERT_EQ(got, Expected(all, whole))
          << "action '" << q.action << "' key '" << q.key_id << "' account '" << q.account_id
          << "' max_scanned " << scanned << " max_bytes " << bytes;
    }
  }
}

// The entry the query tests put at index i: three actions, three keys and a rare one, two
// accounts or none; times mostly rising, every 11th one 100 s back (a late event) and every
// 97th one far back, so blocks' time ranges overlap.
LogEntryAppend MixedEntry(size_t i) {
  static const char* const kActions[] = {"sign", "login", "key_disable"};
  static const char* const kKeys[] = {"", "k_1", "k_2", "k_3"};
  static const char* const kAccounts[] = {"", "a_alice", "a_bob"};
  auto seconds = static_cast<int64_t>(i / 7);
  if (i % 11 == 0) seconds -= 100;
  if (i % 97 == 0) seconds -= 1000;
  return Entry(kActions[i % 3], std::to_string(i), kT0 + std::chrono::seconds(seconds),
               i % 301 == 0 ? "k_rare" : kKeys[(i / 3) % 4], kAccounts[(i / 2) % 3]);
}

// Queries over a log with entries on both sides of the block summaries give what a filter over
// all entries gives; the summaries only ever cover whole blocks, in order.
TEST_F(LogStoreTest, QueriesAgreeOnBothSidesOfTheBlockSummaries) {
  size_t n = 0;
  // Single appends, then batches (one of them larger than a summary batch), then single appends.
  for (int i = 0; i < 700; ++i) {
    LogEntryAppend e = MixedEntry(n++);
    ASSERT_TRUE(store_->AppendLogEntries({&e, 1}).ok());
  }
  EXPECT_EQ(Summarised(path_), 0) << "fewer than 1024 entries waiting: nothing summarised yet";
  for (int size : {200, 1500, 64, 64}) {
    std::vector<LogEntryAppend> batch;
    for (int i = 0; i < size; ++i) batch.push_back(MixedEntry(n++));
    ASSERT_TRUE(store_->AppendLogEntries(batch).ok());
  }
  for (int i = 0; i < 300; ++i) {
    LogEntryAppend e = MixedEntry(n++);
    ASSERT_TRUE(store_->AppendLogEntries({&e, 1}).ok());
  }
  const int64_t summarised = Summarised(path_);
  EXPECT_EQ(summarised, 2304) << "700 + 200 + 1500 entries: 9 whole blocks";
  const std::vector<LogEntryRow> all = All();
  ASSERT_EQ(all.size(), n);
  ExpectQueriesAgree(*store_, all, summarised);
}

// Blocks the summaries rule out are not read, but each costs a look-up as the query walks the
// first term's blocks: a hot key in every block with an account found only in the last block
// walks them all. One call considers a bounded range of blocks, then says where the next starts;
// a query whose terms are both in every block (never in one entry) reads a bounded number.
TEST_F(LogStoreTest, AQueryConsidersABoundedRangeOfBlocks) {
  for (int batch = 0; batch < 5; ++batch) {
    std::vector<LogEntryAppend> entries;
    for (int i = 0; i < 1024; ++i) {
      const bool even = i % 2 == 0;
      const bool last_block = batch == 4 && i >= 768;
      entries.push_back(Entry(even ? "sign" : "login", "x", kT0, even ? "k_hot" : "",
                              even ? "a_common" : (last_block ? "a_rare" : "a_other")));
    }
    ASSERT_TRUE(store_->AppendLogEntries(entries).ok());
  }
  ASSERT_EQ(Summarised(path_), 5120);  // 20 blocks; a_rare only in block 19
  LogEntryQuery q;
  q.key_id = "k_hot";
  q.account_id = "a_rare";
  q.max_scanned = 256;  // one block read, 16 considered
  auto page = store_->QueryLogEntries(q);
  ASSERT_TRUE(page.ok()) << page.error().message();
  EXPECT_TRUE(page->entries.empty());
  EXPECT_EQ(page->next_after, std::optional<int64_t>(16 * 256 - 1));
  q.after_index = *page->next_after;
  page = store_->QueryLogEntries(q);
  ASSERT_TRUE(page.ok()) << page.error().message();
  EXPECT_TRUE(page->entries.empty());
  EXPECT_EQ(page->next_after, std::optional<int64_t>(20 * 256 - 1));  // block 19 read
  q.after_index = *page->next_after;
  page = store_->QueryLogEntries(q);
  ASSERT_TRUE(page.ok()) << page.error().message();
  EXPECT_FALSE(page->next_after.has_value());  // the tail: the end
  // Both terms in every block, never in one entry: one block read per call.
  q.account_id = "a_other";
  q.after_index = -1;
  page = store_->QueryLogEntries(q);
  ASSERT_TRUE(page.ok()) << page.error().message();
  EXPECT_TRUE(page->entries.empty());
  EXPECT_EQ(page->next_after, std::optional<int64_t>(255));
}

// A block whose entries are all earlier than an earlier block's: the first block that can hold an
// entry at or after a time is found through the running maximum, across separate summaries.
TEST_F(LogStoreTest, QueriesFindEntriesBeforeLaterBlocksWithEarlierTimes) {
  auto batch_at = [&](size_t count, TimePoint time, const std::string& action) {
    std::vector<LogEntryAppend> batch;
    for (size_t i = 0; i < count; ++i) batch.push_back(Entry(action, "x", time));
    ASSERT_TRUE(store_->AppendLogEntries(batch).ok());
  };
  batch_at(1024, kT0 + 1000s, "sign");   // blocks 0..3, summarised
  batch_at(1024, kT0 + 600s, "login");   // blocks 4..7, summarised by a second fill
  batch_at(300, kT0 + 1200s, "sign");    // 2048..2347, not summarised
  ASSERT_EQ(Summarised(path_), 2048);
  LogEntryQuery q;
  q.since = kT0 + 500s;
  q.limit = 3;
  auto rows = store_->QueryLogEntries(q);
  ASSERT_TRUE(rows.ok()) << rows.error().message();
  ASSERT_EQ(rows->entries.size(), 3u);
  EXPECT_EQ(rows->entries.at(0).index, 0);
  q.since = kT0 + 1100s;
  rows = store_->QueryLogEntries(q);
  ASSERT_TRUE(rows.ok()) << rows.error().message();
  ASSERT_EQ(rows->entries.size(), 3u);
  EXPECT_EQ(rows->entries.at(0).index, 2048);
  q.since = kT0 + 700s;
  q.until = kT0 + 1100s;
  q.action = "sign";
  q.after_index = 1020;
  rows = store_->QueryLogEntries(q);
  ASSERT_TRUE(rows.ok()) << rows.error().message();
  ASSERT_EQ(rows->entries.size(), 3u);
  EXPECT_EQ(rows->entries.at(0).index, 1021);
  EXPECT_EQ(rows->entries.at(2).index, 1023);
  ExpectQueriesAgree(*store_, All(), 2048);
}

TEST_F(LogStoreTest, BlockSummariesRollBackWithTheBatchThatFailed) {
  AppendN(1000);
  std::vector<LogEntryAppend> batch = {Entry("a"), Entry("b"), Entry("c")};
  batch[2].render = [](int64_t) -> Result<std::string> { return InternalError("no"); };
  EXPECT_FALSE(store_->AppendLogEntries(batch).ok());
  EXPECT_EQ(Summarised(path_), 0);
  EXPECT_EQ(*store_->LogSize(), 1000);
  batch.pop_back();
  ASSERT_TRUE(store_->AppendLogEntries(batch).ok());
  AppendN(21);  // 1023 entries
  EXPECT_EQ(Summarised(path_), 0);
  AppendN(1);  // the 1024th: four whole blocks wait, and are summarised
  EXPECT_EQ(Summarised(path_), 1024);
  AppendN(1023);
  EXPECT_EQ(Summarised(path_), 1024);
  AppendN(1);
  EXPECT_EQ(Summarised(path_), 2048);
}

TEST_F(LogStoreTest, Migration5SummarisesTheEntriesOfAVersion4Database) {
  store_.reset();
  const std::string old_path = (dir_ / "old.db").string();
  {
    auto old = SqliteStoreTestPeer::OpenWith(old_path, Migrations().first(4));
    ASSERT_TRUE(old.ok()) << old.error().message();
  }
  {
    // 512 entries (two whole blocks) written as version 4's code did (this code's appends also summarise).
    auto raw = sqlite_internal::Connection::Open(old_path, SQLITE_OPEN_READWRITE);
    ASSERT_TRUE(raw.ok()) << raw.error().message();
    for (size_t i = 0; i < 512; ++i) {
      const LogEntryAppend e = MixedEntry(i);
      auto data = e.render(static_cast<int64_t>(i));
      ASSERT_TRUE(data.ok());
      auto insert = raw->Prepare(
          "INSERT INTO log_entries (idx, time, action, key_id, account_id, data)"
          " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
          "insert");
      ASSERT_TRUE(insert.ok()) << insert.error().message();
      ASSERT_TRUE(BindAll(*insert, static_cast<int64_t>(i), ToUnixSeconds(e.time),
                          std::string_view(e.action), std::string_view(e.key_id),
                          std::string_view(e.account_id), AsBytes(*data))
                      .ok());
      ASSERT_TRUE(insert->Run().ok());
    }
  }
  auto store = SqliteStore::Open(old_path);
  ASSERT_TRUE(store.ok()) << store.error().message();
  EXPECT_EQ((*store)->MigratedFrom(), 4);
  EXPECT_EQ(Summarised(old_path), 512);
  auto all = (*store)->ReadLogEntries(0, 1000);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 512u);
  ExpectQueriesAgree(**store, *all, 512);
  // Appends after the migration continue its summaries, running maximum included: entries earlier
  // than the last migrated ones (kT0 + 73 s), then queries from times in between.
  std::vector<LogEntryAppend> batch;
  for (size_t i = 0; i < 1024; ++i) batch.push_back(Entry("login", "late", kT0 + 50s));
  ASSERT_TRUE((*store)->AppendLogEntries(batch).ok());
  batch.resize(100);  // and a tail after the summaries
  ASSERT_TRUE((*store)->AppendLogEntries(batch).ok());
  EXPECT_EQ(Summarised(old_path), 1536);
  all = (*store)->ReadLogEntries(0, 10000);
  ASSERT_TRUE(all.ok());
  ExpectQueriesAgree(**store, *all, 1536);
  for (auto since : {kT0 + 40s, kT0 + 51s, kT0 + 80s}) {
    LogEntryQuery q;
    q.since = since;
    q.limit = 5;
    auto rows = (*store)->QueryLogEntries(q);
    ASSERT_TRUE(rows.ok()) << rows.error().message();
    std::vector<int64_t> got;
    for (const LogEntryRow& r : rows->entries) got.push_back(r.index);
    EXPECT_EQ(got, Expected(*all, q));
  }
}

// ---- index assignment under concurrency ----

// Every index 0..n-1 is present once and holds what was rendered for it.
void ExpectDenseAndSelfConsistent(const std::vector<LogEntryRow>& rows, int64_t n) {
  ASSERT_EQ(static_cast<int64_t>(rows.size()), n);
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(rows[static_cast<size_t>(i)].index, i);
    const std::string& data = rows[static_cast<size_t>(i)].data;
    ASSERT_EQ(data.rfind("{\"index\":" + std::to_string(i) + ",", 0), 0u) << data;
  }
}

TEST_F(LogStoreTest, ConcurrentAppendsGetEveryIndexOnceInEachThreadsOrder) {
  constexpr int kThreads = 8;
  constexpr int kAppends = 200;
  std::vector<std::vector<int64_t>> got(kThreads);
  std::atomic<int> failures{0};
  {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kAppends; ++i) {
          LogEntryAppend e = Entry("sign", "t" + std::to_string(t) + "-" + std::to_string(i));
          auto index = store_->AppendLogEntries({&e, 1});
          if (!index.ok()) {
            ++failures;
            continue;
          }
          got[static_cast<size_t>(t)].push_back(*index);
        }
      });
    }
    for (std::thread& th : threads) th.join();
  }
  ASSERT_EQ(failures.load(), 0);
  std::vector<LogEntryRow> rows = All();
  ExpectDenseAndSelfConsistent(rows, kThreads * kAppends);
  for (int t = 0; t < kThreads; ++t) {
    const auto& mine = got[static_cast<size_t>(t)];
    ASSERT_EQ(mine.size(), static_cast<size_t>(kAppends));
    EXPECT_TRUE(std::is_sorted(mine.begin(), mine.end()));
    for (int i = 0; i < kAppends; ++i) {
      // The entry at the returned index is the one this thread appended.
      EXPECT_EQ(rows[static_cast<size_t>(mine[static_cast<size_t>(i)])].data,
                Rendered(mine[static_cast<size_t>(i)],
                         "t" + std::to_string(t) + "-" + std::to_string(i)));
    }
  }
}

TEST_F(LogStoreTest, ConcurrentBatchesStayConsecutive) {
  constexpr int kThreads = 4;
  constexpr int kBatches = 25;
  constexpr int kBatchSize = 5;
  std::mutex mu;
  std::map<int64_t, std::string> firsts;  // first index -> thread/batch tag
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int b = 0; b < kBatches; ++b) {
        const std::string tag = "t" + std::to_string(t) + "b" + std::to_string(b);
        std::vector<LogEntryAppend> batch;
        for (int k = 0; k < kBatchSize; ++k) batch.push_back(Entry("sign", tag));
        auto first = store_->AppendLogEntries(batch);
        ASSERT_TRUE(first.ok()) << first.error().message();
        std::lock_guard lock(mu);
        firsts[*first] = tag;
      }
    });
  }
  for (std::thread& th : threads) th.join();
  std::vector<LogEntryRow> rows = All();
  ExpectDenseAndSelfConsistent(rows, kThreads * kBatches * kBatchSize);
  ASSERT_EQ(firsts.size(), static_cast<size_t>(kThreads * kBatches));
  for (const auto& [first, tag] : firsts) {
    for (int k = 0; k < kBatchSize; ++k) {
      EXPECT_EQ(rows[static_cast<size_t>(first + k)].data, Rendered(first + k, tag));
    }
  }
}

TEST_F(LogStoreTest, TwoStoresOnOneFileAppendConcurrentlyWithoutCollisions) {
  // Two connections, as a running server and the local CLI in another process would have. The
  // long busy timeout keeps a loaded test machine from turning lock waits into failures.
  std::unique_ptr<SqliteStore> other = Open(60s);
  ASSERT_NE(other, nullptr);
  store_ = Open(60s);
  ASSERT_NE(store_, nullptr);
  constexpr int kThreadsPerStore = 3;
  constexpr int kAppends = 40;
  std::mutex mu;
  std::set<int64_t> seen;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (SqliteStore* s : {store_.get(), other.get()}) {
    for (int t = 0; t < kThreadsPerStore; ++t) {
      threads.emplace_back([&, s] {
        for (int i = 0; i < kAppends; ++i) {
          std::vector<LogEntryAppend> batch = {Entry("sign"), Entry("sign")};
          auto first = s->AppendLogEntries(batch);
          if (!first.ok()) {
            ADD_FAILURE() << first.error().message();
            ++failures;
            continue;
          }
          std::lock_guard lock(mu);
          EXPECT_TRUE(seen.insert(*first).second) << "index " << *first << " given twice";
        }
      });
    }
  }
  for (std::thread& th : threads) th.join();
  ASSERT_EQ(failures.load(), 0);
  ExpectDenseAndSelfConsistent(All(), 2 * kThreadsPerStore * kAppends * 2);
  EXPECT_EQ(*other->LogSize(), *store_->LogSize());
}

TEST_F(LogStoreTest, EntriesCheckpointsTilesAndKeySurviveReopening) {
  AppendN(3);
  LogTileRow tile = Tile(0, 0, 3);
  ASSERT_TRUE(store_->PublishLogCheckpoint({&tile, 1}, Checkpoint(3), Entry("checkpoint")).ok());
  ASSERT_TRUE(store_->InsertLogKey(Key()).ok());
  store_.reset();

  store_ = Open();
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(*store_->LogSize(), 4);
  EXPECT_EQ(All().at(2).data, Rendered(2, "a2"));
  EXPECT_EQ((*store_->LatestLogCheckpoint())->size, 3);
  EXPECT_EQ(**store_->GetLogTile(0, 0, 3), tile.hashes);
  EXPECT_EQ((*store_->GetLogKey())->origin, "signet.example/test");
  LogEntryAppend e = Entry("login");
  EXPECT_EQ(*store_->AppendLogEntries({&e, 1}), 4);
}

// ---- tiles ----

TEST_F(LogStoreTest, GetLogTileCutsToTheAskedWidthOrSaysItIsMissing) {
  AppendN(1);
  LogTileRow tile = Tile(0, 0, 5);
  ASSERT_TRUE(store_->PublishLogCheckpoint({&tile, 1}, Checkpoint(1), Entry("checkpoint")).ok());
  auto three = store_->GetLogTile(0, 0, 3);
  ASSERT_TRUE(three.ok());
  ASSERT_TRUE(three->has_value());
  EXPECT_EQ(**three, Bytes(tile.hashes.begin(), tile.hashes.begin() + 96));
  EXPECT_FALSE(store_->GetLogTile(0, 0, 6)->has_value());
  EXPECT_FALSE(store_->GetLogTile(1, 0, 1)->has_value());
  EXPECT_EQ(store_->GetLogTile(0, 0, 0).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(store_->GetLogTile(0, 0, 257).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(store_->GetLogTile(-1, 0, 1).error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(LogStoreTest, PartialTileIsReplacedByAWiderOneAndKeptAgainstANarrowerOne) {
  AppendN(10);
  LogTileRow narrow = Tile(0, 0, 3);
  ASSERT_TRUE(store_->PublishLogCheckpoint({&narrow, 1}, Checkpoint(3), Entry("cp")).ok());
  LogTileRow wide = Tile(0, 0, 7);
  ASSERT_TRUE(store_->PublishLogCheckpoint({&wide, 1}, Checkpoint(7), Entry("cp")).ok());
  EXPECT_EQ(**store_->GetLogTile(0, 0, 7), wide.hashes);
  // A narrower tile (a prefix of the stored one) adds nothing and changes nothing.
  LogTileRow narrower = Tile(0, 0, 5);
  ASSERT_TRUE(store_->PublishLogCheckpoint({&narrower, 1}, Checkpoint(9), Entry("cp")).ok());
  EXPECT_EQ(**store_->GetLogTile(0, 0, 7), wide.hashes);
}

TEST_F(LogStoreTest, TileThatDisagreesWithTheStoredOneIsDataLossAndPublishesNothing) {
  AppendN(300);
  LogTileRow full = Tile(0, 0, 256);
  ASSERT_TRUE(store_->PublishLogCheckpoint({&full, 1}, Checkpoint(256), Entry("cp")).ok());
  const int64_t size_before = *store_->LogSize();

  LogTileRow different_full = Tile(0, 0, 256, 0x77);
  auto r = store_->PublishLogCheckpoint({&different_full, 1}, Checkpoint(280), Entry("cp"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kDataLoss);
  // The same full tile again is fine (an integrator may rewrite what it computed before).
  ASSERT_TRUE(store_->PublishLogCheckpoint({&full, 1}, Checkpoint(280), Entry("cp")).ok());

  LogTileRow partial = Tile(0, 1, 10);
  ASSERT_TRUE(store_->PublishLogCheckpoint({&partial, 1}, Checkpoint(290), Entry("cp")).ok());
  LogTileRow wider_but_different = Tile(0, 1, 20, 0x99);
  r = store_->PublishLogCheckpoint({&wider_but_different, 1}, Checkpoint(295), Entry("cp"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kDataLoss);
  EXPECT_EQ(*store_->LogSize(), size_before + 2);  // the two failed publishes left no entry
  EXPECT_EQ((*store_->LatestLogCheckpoint())->size, 290);
}

TEST_F(LogStoreTest, MalformedTilesAreInvalidArgument) {
  AppendN(1);
  auto publish = [&](LogTileRow tile) {
    return store_->PublishLogCheckpoint({&tile, 1}, Checkpoint(1), Entry("cp"));
  };
  LogTileRow bad = Tile(0, 0, 2);
  bad.hashes.pop_back();
  EXPECT_EQ(publish(bad).error().code(), ErrorCode::kInvalidArgument);
  bad = Tile(0, 0, 1);
  bad.width = 0;
  bad.hashes.clear();
  EXPECT_EQ(publish(bad).error().code(), ErrorCode::kInvalidArgument);
  bad = Tile(0, 0, 256);
  bad.width = 257;
  EXPECT_EQ(publish(bad).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(publish(Tile(64, 0, 1)).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(publish(Tile(0, -1, 1)).error().code(), ErrorCode::kInvalidArgument);
  std::vector<LogTileRow> twice = {Tile(0, 0, 1), Tile(0, 0, 1)};
  EXPECT_EQ(store_->PublishLogCheckpoint(twice, Checkpoint(1), Entry("cp")).error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(*store_->LogSize(), 1);
}

// ---- checkpoints ----

TEST_F(LogStoreTest, PublishAppendsTheCheckpointEntryAndReturnsItsIndex) {
  AppendN(5);
  std::vector<LogTileRow> tiles = {Tile(0, 0, 5)};
  LogEntryAppend entry = Entry("checkpoint", "cp5");
  auto index = store_->PublishLogCheckpoint(tiles, Checkpoint(5), entry);
  ASSERT_TRUE(index.ok()) << index.error().message();
  EXPECT_EQ(*index, 5);
  EXPECT_EQ(*store_->LogSize(), 6);
  EXPECT_EQ(All().at(5).data, Rendered(5, "cp5"));
  EXPECT_EQ(All().at(5).action, "checkpoint");

  auto latest = store_->LatestLogCheckpoint();
  ASSERT_TRUE(latest.ok());
  ASSERT_TRUE(latest->has_value());
  EXPECT_EQ((*latest)->size, 5);
  EXPECT_EQ((*latest)->root, Bytes(32, 0xcc));
  EXPECT_EQ((*latest)->note, Checkpoint(5).note);
  EXPECT_EQ((*latest)->time, kT0 + 1min);
  EXPECT_EQ((*latest)->entry_index, 5);
}

TEST_F(LogStoreTest, CheckpointOfTheEmptyLogIsAllowed) {
  auto index = store_->PublishLogCheckpoint({}, Checkpoint(0), Entry("checkpoint"));
  ASSERT_TRUE(index.ok()) << index.error().message();
  EXPECT_EQ(*index, 0);
}

TEST_F(LogStoreTest, NoCheckpointBeforeTheFirst) {
  auto latest = store_->LatestLogCheckpoint();
  ASSERT_TRUE(latest.ok());
  EXPECT_FALSE(latest->has_value());
  EXPECT_TRUE(store_->ListLogCheckpoints(-1, 10)->empty());
}

TEST_F(LogStoreTest, PublishIsFailedPreconditionForAnOldOrTooLargeSize) {
  AppendN(4);
  auto too_large = store_->PublishLogCheckpoint({}, Checkpoint(5), Entry("cp"));
  ASSERT_FALSE(too_large.ok());
  EXPECT_EQ(too_large.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(too_large.error().message().find("only 4 entries"), std::string::npos)
      << too_large.error().message();

  ASSERT_TRUE(store_->PublishLogCheckpoint({}, Checkpoint(3), Entry("cp")).ok());
  auto same = store_->PublishLogCheckpoint({}, Checkpoint(3), Entry("cp"));
  ASSERT_FALSE(same.ok());
  EXPECT_EQ(same.error().code(), ErrorCode::kFailedPrecondition);
  auto smaller = store_->PublishLogCheckpoint({}, Checkpoint(2), Entry("cp"));
  ASSERT_FALSE(smaller.ok());
  EXPECT_EQ(smaller.error().code(), ErrorCode::kFailedPrecondition);
  // Only the successful publish added an entry.
  EXPECT_EQ(*store_->LogSize(), 5);
  // The log grew by the checkpoint entry, so a checkpoint of size 5 is now possible.
  EXPECT_TRUE(store_->PublishLogCheckpoint({}, Checkpoint(5), Entry("cp")).ok());
}

TEST_F(LogStoreTest, PublishValidatesRootNoteAndEntryAndRollsBackOnRenderFailure) {
  AppendN(2);
  LogCheckpointRow bad = Checkpoint(2);
  bad.root.resize(31);
  EXPECT_EQ(store_->PublishLogCheckpoint({}, bad, Entry("cp")).error().code(),
            ErrorCode::kInvalidArgument);
  bad = Checkpoint(2);
  bad.note.clear();
  EXPECT_EQ(store_->PublishLogCheckpoint({}, bad, Entry("cp")).error().code(),
            ErrorCode::kInvalidArgument);
  bad = Checkpoint(-1);
  EXPECT_EQ(store_->PublishLogCheckpoint({}, bad, Entry("cp")).error().code(),
            ErrorCode::kInvalidArgument);

  LogTileRow tile = Tile(0, 0, 2);
  LogEntryAppend failing = Entry("cp");
  failing.render = [](int64_t) -> Result<std::string> { return InternalError("no signature"); };
  auto r = store_->PublishLogCheckpoint({&tile, 1}, Checkpoint(2), failing);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInternal);
  EXPECT_FALSE(store_->LatestLogCheckpoint()->has_value());
  EXPECT_FALSE(store_->GetLogTile(0, 0, 1)->has_value());  // the tile was rolled back too
  EXPECT_EQ(*store_->LogSize(), 2);
}

TEST_F(LogStoreTest, ListLogCheckpointsPagesBySize) {
  AppendN(3);
  for (int64_t size : {1, 2, 4, 5}) {
    ASSERT_TRUE(store_->PublishLogCheckpoint({}, Checkpoint(size), Entry("cp")).ok());
  }
  auto page = store_->ListLogCheckpoints(-1, 3);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->size(), 3u);
  EXPECT_EQ((*page)[0].size, 1);
  EXPECT_EQ((*page)[2].size, 4);
  EXPECT_EQ((*page)[2].entry_index, 5);
  page = store_->ListLogCheckpoints(4, 10);
  ASSERT_EQ(page->size(), 1u);
  EXPECT_EQ((*page)[0].size, 5);
  EXPECT_EQ(store_->ListLogCheckpoints(0, 0).error().code(), ErrorCode::kInvalidArgument);
}

// ---- the log key ----

TEST_F(LogStoreTest, LogKeyIsInsertedOnceAndReadBack) {
  EXPECT_FALSE(store_->GetLogKey()->has_value());
  ASSERT_TRUE(store_->InsertLogKey(Key()).ok());
  auto key = store_->GetLogKey();
  ASSERT_TRUE(key.ok());
  ASSERT_TRUE(key->has_value());
  EXPECT_EQ((*key)->origin, "signet.example/test");
  EXPECT_EQ((*key)->token_serial, "0001");
  EXPECT_EQ((*key)->hsm_key_id, "a1b2");
  EXPECT_EQ((*key)->public_key, Bytes(32, 0x42));
  EXPECT_EQ((*key)->created_at, kT0);

  LogKeyRecord other = Key();
  other.origin = "evil.example/x";
  EXPECT_EQ(store_->InsertLogKey(other).error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ((*store_->GetLogKey())->origin, "signet.example/test");
}

TEST_F(LogStoreTest, MalformedLogKeyIsInvalidArgument) {
  LogKeyRecord k = Key();
  k.public_key.resize(31);
  EXPECT_EQ(store_->InsertLogKey(k).error().code(), ErrorCode::kInvalidArgument);
  k = Key();
  k.origin.clear();
  EXPECT_EQ(store_->InsertLogKey(k).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_FALSE(store_->GetLogKey()->has_value());
}

// ---- tampering through raw SQL ----

// Runs `sql` on a raw connection and expects the database to refuse it.
void ExpectRefused(sqlite_internal::Connection& raw, const std::string& sql) {
  Status s = raw.Exec(sql, "tamper");
  EXPECT_FALSE(s.ok()) << "the database accepted: " << sql;
}

TEST_F(LogStoreTest, RawSqlCannotChangeOrRemoveEntries) {
  AppendN(3);
  const std::vector<LogEntryRow> before = All();
  sqlite_internal::Connection raw = Raw();
  ExpectRefused(raw, "UPDATE log_entries SET data = X'00' WHERE idx = 1");
  ExpectRefused(raw, "UPDATE log_entries SET idx = 7 WHERE idx = 2");
  ExpectRefused(raw, "DELETE FROM log_entries WHERE idx = 2");
  ExpectRefused(raw, "DELETE FROM log_entries");
  ExpectRefused(raw,
                "INSERT OR REPLACE INTO log_entries (idx, time, action, data)"
                " VALUES (1, 0, 'x', X'00')");
  ExpectRefused(raw,
                "INSERT INTO log_entries (idx, time, action, data) VALUES (5, 0, 'gap', X'00')");
  const std::vector<LogEntryRow> after = All();
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < after.size(); ++i) EXPECT_EQ(after[i].data, before[i].data);
  // The next index is still the only one an insert may use (what signet itself does).
  EXPECT_TRUE(raw.Exec("INSERT INTO log_entries (idx, time, action, data)"
                       " VALUES (3, 0, 'next', X'01')",
                       "append")
                  .ok());
}

TEST_F(LogStoreTest, RawSqlCannotChangeRemoveOrFalsifyBlockSummaries) {
  AppendN(1024);
  ASSERT_EQ(Summarised(path_), 1024);
  const int64_t t0 = ToUnixSeconds(kT0);
  auto block_4 = [&](int64_t min_time, int64_t max_time, int64_t run_max) {
    return "INSERT INTO log_blocks (block, min_time, max_time, run_max) VALUES (4, " +
           std::to_string(min_time) + ", " + std::to_string(max_time) + ", " +
           std::to_string(run_max) + ")";
  };
  {
    sqlite_internal::Connection raw = Raw();
    ExpectRefused(raw, "UPDATE log_blocks SET max_time = 0 WHERE block = 1");
    ExpectRefused(raw, "DELETE FROM log_blocks WHERE block = 3");
    ExpectRefused(raw, "INSERT OR REPLACE INTO log_blocks (block, min_time, max_time, run_max)"
                       " VALUES (1, 0, 0, 0)");
    ExpectRefused(raw, "INSERT INTO log_blocks (block, min_time, max_time, run_max)"
                       " VALUES (9, 0, 0, 0)");
    ExpectRefused(raw, block_4(t0, t0, t0));  // its entries are not stored yet
    ExpectRefused(raw, "UPDATE log_block_terms SET term = 'action:x'");
    ExpectRefused(raw, "DELETE FROM log_block_terms WHERE block = 2");
  }
  AppendN(256);  // block 4 is complete, and waits to be summarised
  {
    sqlite_internal::Connection raw = Raw();
    ExpectRefused(raw, block_4(0, 0, 0));
    ExpectRefused(raw, block_4(t0, t0 + 1, t0 + 1));
    ExpectRefused(raw, block_4(t0, t0, t0 - 1));
    // Term rows are not checked: a false one costs a query a needless block read, and the next
    // summary keeps going past one that is already there.
    ASSERT_TRUE(raw.Exec("INSERT INTO log_block_terms (term, block) VALUES ('action:login', 4),"
                         " ('key:bogus', 4)",
                         "insert terms")
                    .ok());
  }
  EXPECT_EQ(Summarised(path_), 1024);
  AppendN(768);  // 2048 entries: blocks 4..7 are summarised
  EXPECT_EQ(Summarised(path_), 2048);
  LogEntryQuery q;
  q.action = "login";
  q.limit = 10000;
  EXPECT_EQ(store_->QueryLogEntries(q)->entries.size(), 2048u);
  q.action.clear();
  q.key_id = "bogus";
  EXPECT_TRUE(store_->QueryLogEntries(q)->entries.empty());
}

TEST_F(LogStoreTest, RawSqlCannotChangeOrRemoveCheckpoints) {
  AppendN(2);
  ASSERT_TRUE(store_->PublishLogCheckpoint({}, Checkpoint(2), Entry("cp")).ok());
  sqlite_internal::Connection raw = Raw();
  ExpectRefused(raw, "UPDATE log_checkpoints SET note = 'forged'");
  ExpectRefused(raw, "UPDATE log_checkpoints SET root = zeroblob(32)");
  ExpectRefused(raw, "DELETE FROM log_checkpoints");
  ExpectRefused(raw,
                "INSERT OR REPLACE INTO log_checkpoints (size, root, note, time, entry_index)"
                " VALUES (2, zeroblob(32), 'forged', 0, 2)");
  ExpectRefused(raw,
                "INSERT INTO log_checkpoints (size, root, note, time, entry_index)"
                " VALUES (1, zeroblob(32), 'older', 0, 2)");
  auto latest = store_->LatestLogCheckpoint();
  ASSERT_TRUE(latest.ok() && latest->has_value());
  EXPECT_EQ((*latest)->note, Checkpoint(2).note);
  EXPECT_EQ((*latest)->root, Checkpoint(2).root);
}

TEST_F(LogStoreTest, RawSqlCannotChangeRemoveOrReplaceTheKey) {
  ASSERT_TRUE(store_->InsertLogKey(Key()).ok());
  sqlite_internal::Connection raw = Raw();
  ExpectRefused(raw, "UPDATE log_key SET public_key = zeroblob(32)");
  ExpectRefused(raw, "DELETE FROM log_key");
  ExpectRefused(raw,
                "INSERT OR REPLACE INTO log_key (id, origin, token_serial, hsm_key_id, public_key,"
                " created_at) VALUES (1, 'evil', '', 'ff', zeroblob(32), 0)");
  EXPECT_EQ((*store_->GetLogKey())->public_key, Bytes(32, 0x42));
}

TEST_F(LogStoreTest, RawSqlCannotChangeAFullTileOrNarrowAPartialOne) {
  AppendN(300);
  std::vector<LogTileRow> tiles = {Tile(0, 0, 256), Tile(0, 1, 10)};
  ASSERT_TRUE(store_->PublishLogCheckpoint(tiles, Checkpoint(266), Entry("cp")).ok());
  sqlite_internal::Connection raw = Raw();
  ExpectRefused(raw, "UPDATE log_tiles SET hashes = zeroblob(8192) WHERE level = 0 AND idx = 0");
  ExpectRefused(raw, "DELETE FROM log_tiles WHERE level = 0 AND idx = 0");
  ExpectRefused(raw,
                "INSERT OR REPLACE INTO log_tiles (level, idx, width, hashes)"
                " VALUES (0, 0, 256, zeroblob(8192))");
  // Partial tile: narrower, same width with other hashes, or wider with another prefix.
  ExpectRefused(raw,
                "UPDATE log_tiles SET width = 5, hashes = substr(hashes, 1, 160)"
                " WHERE level = 0 AND idx = 1");
  ExpectRefused(raw, "UPDATE log_tiles SET hashes = zeroblob(320) WHERE level = 0 AND idx = 1");
  ExpectRefused(raw,
                "UPDATE log_tiles SET width = 11, hashes = zeroblob(352)"
                " WHERE level = 0 AND idx = 1");
  ExpectRefused(raw, "UPDATE log_tiles SET idx = 5 WHERE level = 0 AND idx = 1");
  EXPECT_EQ(**store_->GetLogTile(0, 0, 256), tiles[0].hashes);
  EXPECT_EQ(**store_->GetLogTile(0, 1, 10), tiles[1].hashes);
  // Widening with the same prefix is what the integrator does; the schema allows it.
  auto widen = raw.Prepare(
      "UPDATE log_tiles SET width = 11, hashes = ?1 WHERE level = 0 AND idx = 1", "widen");
  ASSERT_TRUE(widen.ok());
  const LogTileRow wider = Tile(0, 1, 11);
  ASSERT_TRUE(widen->Bind(1, ByteView(wider.hashes)).ok());
  auto changed = widen->Run();
  ASSERT_TRUE(changed.ok()) << changed.error().message();
  EXPECT_EQ(*changed, 1);
}

}  // namespace
}  // namespace signet::store
