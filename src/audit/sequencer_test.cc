// Tests of the audit-log Sequencer on a real SqliteStore in a temporary folder: order and
// consecutive indices, group commit under many threads, error isolation inside a group, a store
// outage, and shutdown.
#include "audit/sequencer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <latch>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "store/sqlite/sqlite_store.h"

namespace signet::audit {
namespace {

using namespace std::chrono_literals;
using store::LogEntryAppend;

// An entry whose bytes name its index and a tag, so reads can check both.
LogEntryAppend Entry(const std::string& tag, std::string action = "sign") {
  LogEntryAppend e;
  e.time = FromUnixSeconds(1'800'000'000);
  e.action = std::move(action);
  e.render = [tag](int64_t index) -> Result<std::string> {
    return std::to_string(index) + ":" + tag;
  };
  return e;
}

std::vector<LogEntryAppend> Entries(const std::string& tag, int n) {
  std::vector<LogEntryAppend> out;
  for (int k = 0; k < n; ++k) out.push_back(Entry(tag + "/" + std::to_string(k)));
  return out;
}

class SequencerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("signet-sequencer-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    store_ = OpenStore(60s);
    ASSERT_NE(store_, nullptr);
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<store::SqliteStore> OpenStore(std::chrono::milliseconds busy_timeout) {
    store::SqliteStoreOptions options;
    options.busy_timeout = busy_timeout;
    auto s = store::SqliteStore::Open((dir_ / "signet.db").string(), options);
    if (!s.ok()) {
      ADD_FAILURE() << s.error().message();
      return nullptr;
    }
    return std::move(s).value();
  }

  // index -> data of the whole log.
  std::map<int64_t, std::string> Log() {
    std::map<int64_t, std::string> out;
    auto rows = store_->ReadLogEntries(0, 1'000'000);
    EXPECT_TRUE(rows.ok()) << rows.error().message();
    if (rows.ok()) {
      for (const store::LogEntryRow& r : *rows) out[r.index] = r.data;
    }
    return out;
  }

  std::filesystem::path dir_;
  std::unique_ptr<store::SqliteStore> store_;
};

TEST_F(SequencerTest, AppendsGetConsecutiveIndicesInCallOrder) {
  Sequencer seq(*store_);
  EXPECT_EQ(*seq.Append(Entries("a", 1)), 0);
  EXPECT_EQ(*seq.Append(Entries("b", 3)), 1);
  EXPECT_EQ(*seq.Append(Entries("c", 2)), 4);
  std::map<int64_t, std::string> log = Log();
  ASSERT_EQ(log.size(), 6u);
  EXPECT_EQ(log[0], "0:a/0");
  EXPECT_EQ(log[3], "3:b/2");
  EXPECT_EQ(log[5], "5:c/1");
  SequencerStats s = seq.stats();
  EXPECT_EQ(s.requests, 3);
  EXPECT_EQ(s.entries, 6);
  EXPECT_EQ(s.batches, 3);
  EXPECT_EQ(s.largest_batch, 3);
}

TEST_F(SequencerTest, MalformedRequestsAreInvalidArgumentAndWriteNothing) {
  Sequencer seq(*store_);
  EXPECT_EQ(seq.Append({}).error().code(), ErrorCode::kInvalidArgument);
  std::vector<LogEntryAppend> no_render = Entries("x", 2);
  no_render[1].render = nullptr;
  EXPECT_EQ(seq.Append(std::move(no_render)).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(seq.Append({Entry("x", "")}).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(*store_->LogSize(), 0);
  EXPECT_EQ(seq.stats().failed_requests, 3);
}

TEST_F(SequencerTest, AnAppendFromInsideAChangeIsRefusedInsteadOfHangingTheLog) {
  Sequencer seq(*store_);
  std::vector<LogEntryAppend> entries = Entries("outer", 1);
  Result<int64_t> inner = InternalError("not run");
  entries[0].apply = [&](store::Store&) -> Status {
    inner = seq.Append(Entries("inner", 1));
    return OkStatus();
  };
  Result<int64_t> outer = seq.Append(std::move(entries));
  ASSERT_TRUE(outer.ok()) << outer.error().message();
  ASSERT_FALSE(inner.ok());
  EXPECT_EQ(inner.error().code(), ErrorCode::kFailedPrecondition) << inner.error().message();
  EXPECT_EQ(Log().size(), 1u);
  EXPECT_EQ(*seq.Append(Entries("after", 1)), 1);
}

TEST_F(SequencerTest, ARenderThatThrowsFailsItsRequestAndTheSequencerGoesOn) {
  Sequencer seq(*store_);
  std::vector<LogEntryAppend> entries = Entries("x", 2);
  entries[0].render = [](int64_t) -> Result<std::string> { throw std::runtime_error("boom"); };
  Result<int64_t> r = seq.Append(std::move(entries));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInternal);
  EXPECT_NE(r.error().message().find("boom"), std::string::npos) << r.error().message();
  EXPECT_EQ(*seq.Append(Entries("y", 1)), 0);
}

TEST_F(SequencerTest, ARenderThrowingANonExceptionFailsItsRequestAndTheSequencerGoesOn) {
  Sequencer seq(*store_);
  std::vector<LogEntryAppend> entries = Entries("x", 2);
  entries[1].render = [](int64_t) -> Result<std::string> { throw 42; };
  Result<int64_t> r = seq.Append(std::move(entries));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInternal);
  EXPECT_EQ(*seq.Append(Entries("y", 1)), 0);
  EXPECT_EQ(*store_->LogSize(), 1);
}

TEST_F(SequencerTest, ConcurrentAppendsAreGroupedAndEachIndexIsGivenOnce) {
  Sequencer seq(*store_);
  std::atomic<int64_t> last_size{0};
  seq.SetOnAppended([&](int64_t size) {
    int64_t seen = last_size.load();
    while (size > seen && !last_size.compare_exchange_weak(seen, size)) {
    }
  });
  constexpr int kThreads = 64;
  constexpr int kAppends = 20;
  std::vector<std::vector<int64_t>> got(kThreads);
  std::atomic<int> failures{0};
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < kAppends; ++i) {
        auto index = seq.Append({Entry("t" + std::to_string(t) + "i" + std::to_string(i))});
        if (!index.ok()) {
          ++failures;
          continue;
        }
        got[static_cast<size_t>(t)].push_back(*index);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  ASSERT_EQ(failures.load(), 0);

  std::map<int64_t, std::string> log = Log();
  ASSERT_EQ(log.size(), static_cast<size_t>(kThreads * kAppends));
  EXPECT_EQ(log.rbegin()->first, kThreads * kAppends - 1);  // dense: 0 .. n-1
  for (int t = 0; t < kThreads; ++t) {
    const std::vector<int64_t>& mine = got[static_cast<size_t>(t)];
    EXPECT_TRUE(std::is_sorted(mine.begin(), mine.end())) << "thread " << t;
    for (int i = 0; i < kAppends; ++i) {
      const int64_t index = mine[static_cast<size_t>(i)];
      EXPECT_EQ(log[index],
                std::to_string(index) + ":t" + std::to_string(t) + "i" + std::to_string(i));
    }
  }
  const SequencerStats s = seq.stats();
  EXPECT_EQ(s.requests, kThreads * kAppends);
  EXPECT_EQ(s.entries, kThreads * kAppends);
  EXPECT_LT(s.batches, kThreads * kAppends) << "no two appends were ever grouped";
  EXPECT_GT(s.largest_batch, 1);
  EXPECT_LE(s.largest_batch, kThreads);
  EXPECT_EQ(last_size.load(), kThreads * kAppends);
}

TEST_F(SequencerTest, EachRequestsEntriesStayConsecutiveWithinAGroup) {
  Sequencer seq(*store_);
  constexpr int kThreads = 16;
  constexpr int kAppends = 10;
  std::mutex mu;
  std::map<int64_t, std::pair<std::string, int>> firsts;  // first index -> (tag, count)
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kAppends; ++i) {
        const int n = 1 + (t + i) % 4;
        const std::string tag = "t" + std::to_string(t) + "i" + std::to_string(i);
        auto first = seq.Append(Entries(tag, n));
        ASSERT_TRUE(first.ok()) << first.error().message();
        std::lock_guard lock(mu);
        firsts[*first] = {tag, n};
      }
    });
  }
  for (std::thread& th : threads) th.join();
  std::map<int64_t, std::string> log = Log();
  int64_t expected_first = 0;
  for (const auto& [first, what] : firsts) {
    ASSERT_EQ(first, expected_first);  // requests tile the log with no gap or overlap
    for (int k = 0; k < what.second; ++k) {
      EXPECT_EQ(log[first + k],
                std::to_string(first + k) + ":" + what.first + "/" + std::to_string(k));
    }
    expected_first = first + what.second;
  }
  EXPECT_EQ(expected_first, static_cast<int64_t>(log.size()));
}

TEST_F(SequencerTest, BatchesRespectMaxBatchEntriesButABigRequestStillGoesAlone) {
  Sequencer seq(*store_, SequencerOptions{.max_batch_entries = 4});
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        if (!seq.Append({Entry(std::to_string(t))}).ok()) ++failures;
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_LE(seq.stats().largest_batch, 4);
  auto big = seq.Append(Entries("big", 10));
  ASSERT_TRUE(big.ok()) << big.error().message();
  EXPECT_EQ(*big, 160);
  EXPECT_EQ(seq.stats().largest_batch, 10);
}

// Holds a leader inside its commit until `others` threads are about to append, so that they
// queue behind it and form the next group together. Start() returns once the blocker's commit
// has begun.
struct Gate {
  Gate(Sequencer& seq, std::ptrdiff_t others) : ready(others) {
    blocker = std::thread([this, &seq] {
      LogEntryAppend e = Entry("blocker");
      e.render = [this](int64_t index) -> Result<std::string> {
        if (!waited.exchange(true)) {
          entered.count_down();
          ready.wait();
          std::this_thread::sleep_for(300ms);  // time for them to reach the queue
        }
        return std::to_string(index) + ":blocker";
      };
      EXPECT_TRUE(seq.Append({std::move(e)}).ok());
    });
    entered.wait();
  }
  ~Gate() { blocker.join(); }
  std::latch entered{1};
  std::latch ready;
  std::atomic<bool> waited{false};
  std::thread blocker;
};

TEST_F(SequencerTest, AFailingRenderFailsOnlyItsOwnRequestInAGroup) {
  Sequencer seq(*store_);
  constexpr int kOthers = 12;
  constexpr int kBad = 5;
  std::optional<Gate> gate(std::in_place, seq, kOthers);
  std::vector<Result<int64_t>> results(kOthers, InternalError("not run"));
  std::vector<std::thread> threads;
  for (int t = 0; t < kOthers; ++t) {
    threads.emplace_back([&, t] {
      std::vector<LogEntryAppend> entries = Entries("r" + std::to_string(t), 2);
      if (t == kBad) {
        entries[1].render = [](int64_t) -> Result<std::string> {
          return PermissionDenied("this entry may not be written");
        };
      }
      gate->ready.count_down();
      results[static_cast<size_t>(t)] = seq.Append(std::move(entries));
    });
  }
  for (std::thread& th : threads) th.join();
  gate.reset();

  for (int t = 0; t < kOthers; ++t) {
    const Result<int64_t>& r = results[static_cast<size_t>(t)];
    if (t == kBad) {
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.error().code(), ErrorCode::kPermissionDenied);
      EXPECT_NE(r.error().message().find("log entry 2 of 2"), std::string::npos)
          << r.error().message();
      EXPECT_NE(r.error().message().find("may not be written"), std::string::npos);
    } else {
      EXPECT_TRUE(r.ok()) << "request " << t << ": " << r.error().message();
    }
  }
  std::map<int64_t, std::string> log = Log();
  EXPECT_EQ(log.size(), static_cast<size_t>(1 + 2 * (kOthers - 1)));
  for (const auto& [index, data] : log) {
    EXPECT_EQ(data.find(":r" + std::to_string(kBad) + "/"), std::string::npos) << data;
  }
  const SequencerStats s = seq.stats();
  EXPECT_GE(s.retried_groups, 1) << "the bad request was never grouped with others";
  EXPECT_EQ(s.failed_requests, 1);
  EXPECT_EQ(s.requests, kOthers);  // the blocker and the 11 good ones
}

TEST_F(SequencerTest, AFailingChangeFailsOnlyItsOwnRequestAndTheOthersChangesCommitOnce) {
  // Each request carries a change (a key record) with its entry. The bad one's change fails with
  // a code that, unblamed, would count as a store outage and fail the whole group.
  Sequencer seq(*store_);
  constexpr int kOthers = 8;
  constexpr int kBad = 3;
  std::optional<Gate> gate(std::in_place, seq, kOthers);
  std::vector<Result<int64_t>> results(kOthers, InternalError("not run"));
  std::vector<std::thread> threads;
  for (int t = 0; t < kOthers; ++t) {
    threads.emplace_back([&, t] {
      std::vector<LogEntryAppend> entries = Entries("c" + std::to_string(t), 1);
      entries[0].apply = [t](store::Store& s) -> Status {
        store::KeyRecord key;
        key.id = "k_" + std::to_string(t);
        key.name = "key-" + std::to_string(t);
        key.algorithm = "ecdsa-p256";
        key.owner = "local";
        key.hsm_key_id = "01";
        key.public_key_spki = "spki";
        SIGNET_TRY(s.InsertKey(key));
        if (t == kBad) return Unavailable("the change could not be made");
        return OkStatus();
      };
      gate->ready.count_down();
      results[static_cast<size_t>(t)] = seq.Append(std::move(entries));
    });
  }
  for (std::thread& th : threads) th.join();
  gate.reset();

  for (int t = 0; t < kOthers; ++t) {
    const Result<int64_t>& r = results[static_cast<size_t>(t)];
    if (t == kBad) {
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
      EXPECT_NE(r.error().message().find("could not be made"), std::string::npos)
          << r.error().message();
      EXPECT_EQ(store_->GetKeyById("k_" + std::to_string(t)).error().code(), ErrorCode::kNotFound);
    } else {
      EXPECT_TRUE(r.ok()) << "request " << t << ": " << r.error().message();
      // Retried after the group failed, the change ran again on a clean slate: one record.
      EXPECT_TRUE(store_->GetKeyById("k_" + std::to_string(t)).ok());
    }
  }
  auto keys = store_->ListKeys();
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ(keys->size(), static_cast<size_t>(kOthers - 1));
  EXPECT_EQ(Log().size(), static_cast<size_t>(1 + kOthers - 1));
  EXPECT_GE(seq.stats().retried_groups, 1) << "the bad request was never grouped with others";
}

TEST_F(SequencerTest, AnOversizedEntryFailsOnlyItsOwnRequest) {
  Sequencer seq(*store_);
  constexpr int kOthers = 6;
  std::optional<Gate> gate(std::in_place, seq, kOthers);
  std::vector<Result<int64_t>> results(kOthers, InternalError("not run"));
  std::vector<std::thread> threads;
  for (int t = 0; t < kOthers; ++t) {
    threads.emplace_back([&, t] {
      LogEntryAppend e = Entry("ok");
      if (t == 0) {
        e.render = [](int64_t) -> Result<std::string> {
          return std::string(store::kMaxLogEntrySize + 1, 'x');
        };
      }
      gate->ready.count_down();
      results[static_cast<size_t>(t)] = seq.Append({std::move(e)});
    });
  }
  for (std::thread& th : threads) th.join();
  gate.reset();
  ASSERT_FALSE(results[0].ok());
  EXPECT_EQ(results[0].error().code(), ErrorCode::kInvalidArgument);
  for (int t = 1; t < kOthers; ++t) EXPECT_TRUE(results[static_cast<size_t>(t)].ok());
  EXPECT_EQ(*store_->LogSize(), kOthers);  // the blocker and the 5 good ones
}

TEST_F(SequencerTest, AStoreOutageFailsTheWholeGroupAtOnce) {
  // A second store on the file holds the database's write lock (inside an append whose render
  // waits), as another process would; the sequencer's store gives up after 200 ms.
  std::unique_ptr<store::SqliteStore> holder = OpenStore(60s);
  ASSERT_NE(holder, nullptr);
  store_ = OpenStore(200ms);
  ASSERT_NE(store_, nullptr);
  std::latch locked(1);
  std::latch release(1);
  std::thread hold([&] {
    LogEntryAppend e = Entry("holder");
    e.render = [&](int64_t index) -> Result<std::string> {
      locked.count_down();
      release.wait();
      return std::to_string(index) + ":holder";
    };
    EXPECT_TRUE(holder->AppendLogEntries({&e, 1}).ok());
  });
  locked.wait();

  Sequencer seq(*store_);
  constexpr int kThreads = 8;
  std::vector<Result<int64_t>> results(kThreads, InternalError("not run"));
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back(
        [&, t] { results[static_cast<size_t>(t)] = seq.Append({Entry(std::to_string(t))}); });
  }
  for (std::thread& th : threads) th.join();
  const auto elapsed = std::chrono::steady_clock::now() - start;
  release.count_down();
  hold.join();

  for (const Result<int64_t>& r : results) {
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable) << r.error().message();
  }
  // Grouped requests share one lock wait instead of each waiting again alone. (Requests that
  // arrive during a wait form the next group, so a few waits are expected, never one per retry.)
  EXPECT_EQ(seq.stats().retried_groups, 0);
  EXPECT_LT(elapsed, kThreads * 200ms + 2s);
  EXPECT_EQ(*store_->LogSize(), 1);  // only the holder's entry
}

TEST_F(SequencerTest, ShutdownCommitsQueuedRequestsAndRefusesNewOnes) {
  auto seq = std::make_unique<Sequencer>(*store_);
  // unique_ptr::reset clears its pointer before the destructor runs; the test keeps its own.
  Sequencer* const raw = seq.get();
  std::latch in_commit(1);
  std::latch release(1);
  LogEntryAppend slow = Entry("slow");
  slow.render = [&](int64_t index) -> Result<std::string> {
    in_commit.count_down();
    release.wait();
    return std::to_string(index) + ":slow";
  };
  Result<int64_t> slow_result = InternalError("not run");
  Result<int64_t> queued_result = InternalError("not run");
  std::thread leader([&] { slow_result = raw->Append({std::move(slow)}); });
  in_commit.wait();
  std::thread follower([&] { queued_result = raw->Append({Entry("queued")}); });
  std::this_thread::sleep_for(200ms);  // the follower reaches the queue

  std::atomic<bool> destroyed{false};
  std::thread closer([&] {
    seq.reset();
    destroyed = true;
  });
  std::this_thread::sleep_for(300ms);  // the destructor has started and waits
  EXPECT_FALSE(destroyed.load());
  // The destructor is waiting for the appends in progress, so the object is still there; a new
  // append is refused at once instead of joining the queue.
  Result<int64_t> late = raw->Append({Entry("late")});
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().code(), ErrorCode::kUnavailable);
  release.count_down();
  leader.join();
  follower.join();
  closer.join();
  EXPECT_TRUE(destroyed.load());
  ASSERT_TRUE(slow_result.ok()) << slow_result.error().message();
  ASSERT_TRUE(queued_result.ok()) << queued_result.error().message();
  EXPECT_EQ(*slow_result, 0);
  EXPECT_EQ(*queued_result, 1);
  EXPECT_EQ(*store_->LogSize(), 2);
}

}  // namespace
}  // namespace signet::audit
