// LogMonitor on a real SqliteStore holding a log built by LogFixture. Tampering goes around the
// store through the SQLite API, with the append-only triggers dropped first, the way an operator
// with write access to the file could.
#include "audit/monitor.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "audit/testing/log_fixture.h"
#include "service/testing/fakes.h"
#include "store/sqlite/sqlite_store.h"

namespace signet::audit {
namespace {

using namespace std::chrono_literals;
using testing::LogFixture;

const TimePoint kT0 = FromUnixSeconds(1'800'000'000);

class LogMonitorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("signet-monitor-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "signet.db").string();
    auto store = store::SqliteStore::Open(path_);
    ASSERT_TRUE(store.ok()) << store.error().message();
    store_ = std::move(store).value();
    auto log = LogFixture::Create(*store_);
    ASSERT_TRUE(log.ok()) << log.error().message();
    log_ = std::move(log).value();
  }
  void TearDown() override {
    log_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Appends `count` entries and publishes a checkpoint over the whole log.
  store::LogCheckpointRow Grow(int64_t count) {
    auto appended = log_->Append(count);
    EXPECT_TRUE(appended.ok()) << appended.error().message();
    auto row = log_->Publish(clock_.Now());
    EXPECT_TRUE(row.ok()) << row.error().message();
    return row.ok() ? *row : store::LogCheckpointRow{};
  }

  // Runs `sql` on the database file through a second connection, with `blob` bound to ?1 if
  // given. The append-only triggers are dropped first (they are a guard rail, not the defence).
  void Tamper(const std::string& sql, const std::optional<Bytes>& blob = std::nullopt) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    for (const char* trigger : {"log_entries_no_update", "log_entries_no_delete",
                                "log_key_no_update", "log_tiles_only_widen", "log_tiles_no_delete",
                                "log_checkpoints_no_update", "log_checkpoints_no_delete"}) {
      const std::string drop = std::string("DROP TRIGGER IF EXISTS ") + trigger;
      ASSERT_EQ(sqlite3_exec(db, drop.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
          << sqlite3_errmsg(db);
    }
    sqlite3_stmt* stmt = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    if (blob) {
      ASSERT_EQ(sqlite3_bind_blob(stmt, 1, blob->data(), static_cast<int>(blob->size()),
                                  SQLITE_TRANSIENT),
                SQLITE_OK);
    }
    EXPECT_EQ(sqlite3_step(stmt), SQLITE_DONE) << sqlite3_errmsg(db);
    EXPECT_GT(sqlite3_changes(db), 0) << sql;
    sqlite3_finalize(stmt);
    sqlite3_close(db);
  }

  // The stored hashes of tile (level, index) with one bit of hash `which` flipped.
  Bytes FlippedTile(int level, int64_t index, int width, int which) {
    auto tile = store_->GetLogTile(level, index, width);
    EXPECT_TRUE(tile.ok() && tile->has_value());
    Bytes bytes = tile.ok() && tile->has_value() ? **tile : Bytes(32 * static_cast<size_t>(width));
    bytes[32 * static_cast<size_t>(which)] ^= 0x01;
    return bytes;
  }

  static void ExpectDataLoss(const Status& s, const std::string& mentions) {
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code(), ErrorCode::kDataLoss) << s.error().message();
    EXPECT_NE(s.error().message().find(mentions), std::string::npos) << s.error().message();
  }

  std::filesystem::path dir_;
  std::string path_;
  FakeClock clock_{kT0};
  std::unique_ptr<store::SqliteStore> store_;
  std::unique_ptr<LogFixture> log_;
};

TEST_F(LogMonitorTest, PassesBeforeTheFirstCheckpoint) {
  ASSERT_TRUE(log_->Append(5).ok());
  LogMonitor monitor(*store_, clock_);
  Status s = monitor.CheckOnce();
  ASSERT_TRUE(s.ok()) << s.error().message();
  const LogMonitorState state = monitor.State();
  ASSERT_TRUE(state.last.has_value());
  EXPECT_TRUE(state.last->ok());
  EXPECT_EQ(state.last->log_size, 5);
  EXPECT_EQ(state.last->checkpoint_size, 0);
  EXPECT_FALSE(state.last->checkpoint_time.has_value());
}

TEST_F(LogMonitorTest, PassesOnAnUntouchedLog) {
  Grow(300);                                        // checkpoint 300, its entry is 300
  const store::LogCheckpointRow latest = Grow(20);  // checkpoint 321
  ASSERT_EQ(latest.size, 321);
  clock_.Advance(5s);
  LogMonitor monitor(*store_, clock_);
  Status s = monitor.CheckOnce();
  ASSERT_TRUE(s.ok()) << s.error().message();
  LogMonitorState state = monitor.State();
  ASSERT_TRUE(state.last.has_value());
  EXPECT_EQ(state.last->checkpoint_size, 321);
  EXPECT_EQ(state.last->log_size, 322);
  // The first check starts from the stored checkpoint below the latest.
  EXPECT_EQ(state.last->checked_from, 300);
  EXPECT_EQ(state.last->checkpoint_time, latest.time);
  EXPECT_EQ(state.checks, 1u);
  EXPECT_EQ(state.failures, 0u);

  // The next check covers what was added since the one it verified.
  Grow(700);
  s = monitor.CheckOnce();
  ASSERT_TRUE(s.ok()) << s.error().message();
  state = monitor.State();
  EXPECT_EQ(state.last->checked_from, 321);
  EXPECT_EQ(state.last->checkpoint_size, 1022);
  // Nothing new: still fine, and the newest part is re-hashed again (an edit made since the last
  // check would be noticed).
  s = monitor.CheckOnce();
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(monitor.State().last->checked_from, 321);
  EXPECT_EQ(monitor.State().last->checkpoint_size, 1022);
}

// The newest part is re-hashed on every check, also when nothing was signed since: an entry edited
// after the check that verified it is noticed on the next one.
TEST_F(LogMonitorTest, FailsAfterAnEntryIsAlteredOnceItWasVerified) {
  Grow(30);
  Grow(30);
  LogMonitor monitor(*store_, clock_);
  ASSERT_TRUE(monitor.CheckOnce().ok());
  Tamper("UPDATE log_entries SET data = ?1 WHERE idx = 45",
         ToBytes(R"({"action":"grant","index":45,"n":14})"));
  ExpectDataLoss(monitor.CheckOnce(), "entry 45");
}

// An entry edited together with its hash in a full level-0 tile: the tiles still reproduce the
// signed root (the nodes above come from the level-1 tile), but the entries do not.
TEST_F(LogMonitorTest, FailsAfterAnEntryAndItsLeafHashAreAlteredTogether) {
  Grow(300);
  Grow(600);  // size 901: entries 512..767 are tile 0/002, whose root sits in tile 1/000
  const Bytes forged = ToBytes(R"({"action":"grant","index":600,"n":1})");
  auto tile = store_->GetLogTile(0, 2, 256);
  ASSERT_TRUE(tile.ok() && tile->has_value());
  Bytes hashes = **tile;
  const Sha256Digest leaf = HashLeaf(forged);
  std::copy(leaf.begin(), leaf.end(), hashes.begin() + 32 * (600 - 512));
  Tamper("UPDATE log_entries SET data = ?1 WHERE idx = 600", forged);
  Tamper("UPDATE log_tiles SET hashes = ?1 WHERE level = 0 AND idx = 2", hashes);
  LogMonitor monitor(*store_, clock_);
  ExpectDataLoss(monitor.CheckOnce(), "changed together");
}

TEST_F(LogMonitorTest, FirstCheckOfASingleCheckpointRehashesTheWholeLog) {
  Grow(40);
  LogMonitor monitor(*store_, clock_);
  ASSERT_TRUE(monitor.CheckOnce().ok());
  EXPECT_EQ(monitor.State().last->checked_from, 0);
}

TEST_F(LogMonitorTest, FindsThePreviousCheckpointAmongMany) {
  for (int i = 0; i < 9; ++i) Grow(3 + i);
  LogMonitor monitor(*store_, clock_);
  ASSERT_TRUE(monitor.CheckOnce().ok());
  const store::LogCheckpointRow latest = store_->LatestLogCheckpoint().value().value();
  auto all = store_->ListLogCheckpoints(-1, 100);
  ASSERT_TRUE(all.ok());
  ASSERT_GE(all->size(), 2u);
  EXPECT_EQ(monitor.State().last->checked_from, (*all)[all->size() - 2].size);
  EXPECT_EQ(monitor.State().last->checkpoint_size, latest.size);
}

TEST_F(LogMonitorTest, FailsAfterAnEntryIsAltered) {
  Grow(300);
  Grow(20);
  // Entry 310 lies in the newest part (between the two checkpoints).
  Tamper("UPDATE log_entries SET data = ?1 WHERE idx = 310",
         ToBytes(R"({"action":"sign","index":310,"n":999})"));
  LogMonitor monitor(*store_, clock_);
  ExpectDataLoss(monitor.CheckOnce(), "entry 310");
  const LogMonitorState state = monitor.State();
  ASSERT_TRUE(state.last.has_value());
  EXPECT_FALSE(state.last->ok());
  EXPECT_EQ(state.failures, 1u);
}

TEST_F(LogMonitorTest, FailsAfterAnEntryIsAlteredInTheRangeOfTheNextCheck) {
  Grow(30);
  LogMonitor monitor(*store_, clock_);
  ASSERT_TRUE(monitor.CheckOnce().ok());
  Grow(30);  // entries 31..60 are new since the verified checkpoint of size 30
  Tamper("UPDATE log_entries SET data = ?1 WHERE idx = 45",
         ToBytes(R"({"action":"grant","index":45,"n":14})"));
  ExpectDataLoss(monitor.CheckOnce(), "entry 45");
  // A failed check does not advance: the next one covers the same range and fails again.
  ExpectDataLoss(monitor.CheckOnce(), "entry 45");
  EXPECT_EQ(monitor.State().failures, 2u);
}

// A failed range stays under check after newer checkpoints are signed: without that, the next
// check would start from the last verified checkpoint, above the altered entry, and pass. (Entry
// 400 lies in the full tile 0/001, which later checkpoints leave as it is.)
TEST_F(LogMonitorTest, AFailedRangeIsCheckedAgainAfterANewerCheckpoint) {
  Grow(300);
  Grow(300);  // checkpoint 601
  LogMonitor monitor(*store_, clock_);
  ASSERT_TRUE(monitor.CheckOnce().ok());  // from the checkpoint of size 300
  Tamper("UPDATE log_entries SET data = ?1 WHERE idx = 400",
         ToBytes(R"({"action":"grant","index":400,"n":14})"));
  ExpectDataLoss(monitor.CheckOnce(), "entry 400");
  Grow(10);
  ExpectDataLoss(monitor.CheckOnce(), "entry 400");
  Grow(10);
  ExpectDataLoss(monitor.CheckOnce(), "entry 400");
  EXPECT_EQ(monitor.State().last->checked_from, 300);
}

// Put back as it was, the range passes again and the usual base returns.
TEST_F(LogMonitorTest, AFailedRangePassesOnceItIsPutBack) {
  Grow(300);
  Grow(300);
  LogMonitor monitor(*store_, clock_);
  ASSERT_TRUE(monitor.CheckOnce().ok());
  auto original = store_->ReadLogEntries(400, 1);
  ASSERT_TRUE(original.ok() && original->size() == 1);
  Tamper("UPDATE log_entries SET data = ?1 WHERE idx = 400",
         ToBytes(R"({"action":"grant","index":400,"n":14})"));
  ExpectDataLoss(monitor.CheckOnce(), "entry 400");
  const store::LogCheckpointRow grown = Grow(10);
  Tamper("UPDATE log_entries SET data = ?1 WHERE idx = 400", ToBytes((*original)[0].data));
  ASSERT_TRUE(monitor.CheckOnce().ok());
  EXPECT_EQ(monitor.State().last->checked_from, 300);
  EXPECT_TRUE(monitor.Health().ok());
  EXPECT_EQ(monitor.State().failures, 1u);
  // The range passed, so the next checkpoint is checked from the one verified last.
  Grow(5);
  ASSERT_TRUE(monitor.CheckOnce().ok());
  EXPECT_EQ(monitor.State().last->checked_from, grown.size);
}

// A tile the store cannot read is an outage of the store (its own error), not an altered log.
TEST_F(LogMonitorTest, AStoreThatCannotBeReadIsNotDataLoss) {
  Grow(300);
  Grow(20);
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    ASSERT_EQ(sqlite3_exec(db, "DROP TABLE log_tiles", nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  LogMonitor monitor(*store_, clock_);
  Status check = monitor.CheckOnce();
  ASSERT_FALSE(check.ok());
  EXPECT_NE(check.error().code(), ErrorCode::kDataLoss) << check.error().message();
}

TEST_F(LogMonitorTest, FailsAfterALevelZeroTileIsAltered) {
  Grow(300);
  Grow(20);  // size 321: tile 0/001 has width 65
  Tamper("UPDATE log_tiles SET hashes = ?1 WHERE level = 0 AND idx = 1", FlippedTile(0, 1, 65, 60));
  LogMonitor monitor(*store_, clock_);
  ExpectDataLoss(monitor.CheckOnce(), "root recomputed from the stored tiles");
}

TEST_F(LogMonitorTest, FailsAfterALevelOneTileIsAltered) {
  Grow(600);  // tile 1/000 holds the roots of the first two full level-0 tiles
  Grow(10);
  Tamper("UPDATE log_tiles SET hashes = ?1 WHERE level = 1 AND idx = 0", FlippedTile(1, 0, 2, 0));
  LogMonitor monitor(*store_, clock_);
  ExpectDataLoss(monitor.CheckOnce(), "root recomputed from the stored tiles");
}

TEST_F(LogMonitorTest, FailsAfterTheLatestCheckpointNoteIsAltered) {
  const store::LogCheckpointRow row = Grow(10);
  std::string note = row.note;
  note[note.find('\n') + 1] = '9';  // the size line
  Tamper(
      "UPDATE log_checkpoints SET note = CAST(?1 AS TEXT) WHERE size = " + std::to_string(row.size),
      ToBytes(note));
  LogMonitor monitor(*store_, clock_);
  ExpectDataLoss(monitor.CheckOnce(), "checkpoint of size 10");
}

// The service pins the key it checked against the HSM; a key row replaced in the database (with
// which someone could re-sign the log) is then a failure of its own, named as such.
TEST_F(LogMonitorTest, FailsWhenTheStoredLogKeyIsNotThePinnedOne) {
  Grow(10);
  auto key = store_->GetLogKey();
  ASSERT_TRUE(key.ok() && key->has_value());
  LogMonitorOptions options;
  options.pinned_key = **key;
  LogMonitor monitor(*store_, clock_, options);
  ASSERT_TRUE(monitor.CheckOnce().ok());
  Bytes other = (*key)->public_key;
  other[0] ^= 0x01;
  Tamper("UPDATE log_key SET public_key = ?1", other);
  ExpectDataLoss(monitor.CheckOnce(), "not the one the service started with");
}

TEST_F(LogMonitorTest, FailsWhenACheckpointIsReplacedByOneSignedOverOtherTiles) {
  // Even a note correctly signed with the log key fails when the tiles do not reproduce its root.
  Grow(10);
  Checkpoint forged{log_->origin(), TreeSize(10), Sha256Digest{}, {}};
  forged.root[0] = 1;
  auto note = log_->Sign(forged);
  ASSERT_TRUE(note.ok()) << note.error().message();
  Tamper("UPDATE log_checkpoints SET note = CAST(?1 AS TEXT) WHERE size = 10", ToBytes(*note));
  Tamper("UPDATE log_checkpoints SET root = ?1 WHERE size = 10",
         Bytes(forged.root.begin(), forged.root.end()));
  LogMonitor monitor(*store_, clock_);
  ExpectDataLoss(monitor.CheckOnce(), "root recomputed from the stored tiles");
}

TEST_F(LogMonitorTest, FailsWhenTheTailOfTheLogIsTruncated) {
  Grow(50);
  Tamper("DELETE FROM log_entries WHERE idx >= 20");
  LogMonitor monitor(*store_, clock_);
  ExpectDataLoss(monitor.CheckOnce(), "fewer than the checkpoint of size 50");
}

TEST_F(LogMonitorTest, FailsWhenCheckpointsVanishAfterOneWasVerified) {
  Grow(10);
  const store::LogCheckpointRow second = Grow(10);
  LogMonitor monitor(*store_, clock_);
  ASSERT_TRUE(monitor.CheckOnce().ok());
  Tamper("DELETE FROM log_checkpoints WHERE size = " + std::to_string(second.size));
  ExpectDataLoss(monitor.CheckOnce(), "rollback");
  Tamper("DELETE FROM log_checkpoints");
  ExpectDataLoss(monitor.CheckOnce(), "was verified before");
}

// A store in which the log grows and a new checkpoint is published while the monitor reads, right
// after it asks for the latest checkpoint (the integrator running between the monitor's reads).
class GrowingStore final : public signet::testing::MemoryStore {
 public:
  Result<std::optional<store::LogCheckpointRow>> LatestLogCheckpoint() override {
    if (grow_ && !growing_) {
      growing_ = true;
      grow_();
      growing_ = false;
    }
    return MemoryStore::LatestLogCheckpoint();
  }
  std::function<void()> grow_;

 private:
  bool growing_ = false;
};

TEST(LogMonitorRaceTest, ACheckpointPublishedDuringACheckIsNotMistakenForLostEntries) {
  GrowingStore store;
  auto log = LogFixture::Create(store);
  ASSERT_TRUE(log.ok()) << log.error().message();
  ASSERT_TRUE((*log)->Append(10).ok());
  ASSERT_TRUE((*log)->Publish().ok());
  FakeClock clock(kT0);
  LogMonitor monitor(store, clock);
  ASSERT_TRUE(monitor.CheckOnce().ok());
  store.grow_ = [&] {
    ASSERT_TRUE((*log)->Append(5).ok());
    ASSERT_TRUE((*log)->Publish().ok());
  };
  Status s = monitor.CheckOnce();
  EXPECT_TRUE(s.ok()) << s.error().message();
}

TEST_F(LogMonitorTest, ReportsEveryCheckToTheObserver) {
  std::vector<LogCheck> seen;
  LogMonitor monitor(*store_, clock_,
                     LogMonitorOptions{.on_check = [&](const LogCheck& c) { seen.push_back(c); },
                                       .pinned_key = std::nullopt});
  Grow(10);
  ASSERT_TRUE(monitor.CheckOnce().ok());
  Grow(5);  // entries 11..15, checkpoint 16
  Tamper("UPDATE log_entries SET data = ?1 WHERE idx = 12", ToBytes(R"({"x":2})"));
  EXPECT_FALSE(monitor.CheckOnce().ok());
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_TRUE(seen[0].ok());
  EXPECT_EQ(seen[0].checkpoint_size, 10);
  EXPECT_FALSE(seen[1].ok());
  EXPECT_EQ(seen[1].checkpoint_size, 16);
  EXPECT_EQ(seen[1].log_size, 17);
}

TEST_F(LogMonitorTest, HealthFollowsTheLastCheckAndItsAge) {
  LogMonitor monitor(*store_, clock_);
  EXPECT_EQ(monitor.Health().error().code(), ErrorCode::kFailedPrecondition);
  Grow(10);
  ASSERT_TRUE(monitor.CheckOnce().ok());
  EXPECT_TRUE(monitor.Health().ok());

  ASSERT_TRUE(monitor.Start(1h).ok());
  EXPECT_EQ(monitor.Start(1h).error().code(), ErrorCode::kFailedPrecondition);
  // The thread checks at once.
  for (int i = 0; i < 500 && monitor.State().checks < 2; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_GE(monitor.State().checks, 2u);
  EXPECT_EQ(monitor.State().interval, std::chrono::milliseconds(1h));
  EXPECT_TRUE(monitor.Health().ok());
  clock_.Advance(3h - 1s);
  EXPECT_TRUE(monitor.Health().ok());
  clock_.Advance(2s);
  Status overdue = monitor.Health();
  ASSERT_FALSE(overdue.ok());
  EXPECT_EQ(overdue.error().code(), ErrorCode::kUnavailable);
  monitor.Stop();
  monitor.Stop();
  EXPECT_FALSE(monitor.State().interval.has_value());
  // Stopped: the age no longer matters, the verdict of the last check does.
  EXPECT_TRUE(monitor.Health().ok());

  Grow(1);  // entry 11, checkpoint 12
  Tamper("UPDATE log_entries SET data = ?1 WHERE idx = 11", ToBytes(R"({"x":1})"));
  EXPECT_FALSE(monitor.CheckOnce().ok());
  EXPECT_EQ(monitor.Health().error().code(), ErrorCode::kDataLoss);
}

TEST_F(LogMonitorTest, BackgroundChecksRunUntilStopped) {
  Grow(10);
  LogMonitor monitor(*store_, clock_);
  EXPECT_EQ(monitor.Start(0ms).error().code(), ErrorCode::kInvalidArgument);
  ASSERT_TRUE(monitor.Start(5ms).ok());
  for (int i = 0; i < 500 && monitor.State().checks < 3; ++i) std::this_thread::sleep_for(10ms);
  monitor.Stop();
  const uint64_t checks = monitor.State().checks;
  EXPECT_GE(checks, 3u);
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(monitor.State().checks, checks);
  // It can be started again.
  ASSERT_TRUE(monitor.Start(5ms).ok());
}

}  // namespace
}  // namespace signet::audit
