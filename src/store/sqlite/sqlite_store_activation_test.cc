// Tests of SqliteStore's activation, grant, policy and audit-event methods (schema migration 3)
// against real SQLite files in a temporary folder, including races between threads and between
// separate stores (connections) on one file.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
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
  // The store connection's PRAGMA synchronous (2 = FULL, 1 = NORMAL), or -1.
  static int64_t Synchronous(SqliteStore& store) {
    std::lock_guard lock(store.mu_);
    auto query = store.conn_->Prepare("PRAGMA synchronous", "test");
    if (!query.ok()) return -1;
    auto row = query->Step();
    return row.ok() && *row ? query->Int64(0) : -1;
  }
};

namespace {

using namespace std::chrono_literals;

const TimePoint kT0 = FromUnixSeconds(1'800'000'000);  // a minute boundary (divisible by 60)

Bytes Digest(uint8_t fill, size_t size = 32) { return Bytes(size, fill); }

class ActivationStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("signet-activation-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "signet.db").string();
    auto store = SqliteStore::Open(path_);
    ASSERT_TRUE(store.ok()) << store.error().message();
    store_ = std::move(store).value();
    ASSERT_TRUE(store_->InsertKey(Key("k_1", "release")).ok());
    ASSERT_TRUE(store_->InsertKey(Key("k_2", "other")).ok());
    // Consuming needs the key active and the account's grant on it, as signing does.
    ASSERT_TRUE(store_->InsertGrant("k_1", "a_alice", kT0).ok());
    ASSERT_TRUE(store_->InsertGrant("k_1", "a_bob", kT0).ok());
    ASSERT_TRUE(store_->InsertGrant("k_2", "a_alice", kT0).ok());
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  static KeyRecord Key(const std::string& id, const std::string& name) {
    KeyRecord k;
    k.id = id;
    k.name = name;
    k.algorithm = "ec-p256";
    k.owner = "local";
    k.token_label = "t";
    k.token_serial = "1";
    k.hsm_key_id = "01";
    k.public_key_spki = "AA==";
    k.created_at = kT0;
    k.updated_at = kT0;
    return k;
  }

  static ActivationRecord Activation(uint8_t sad, std::vector<Bytes> hashes) {
    ActivationRecord a;
    a.sad_hash = Bytes(32, sad);
    a.account_id = "a_alice";
    a.key_id = "k_1";
    a.hash_algorithm = "sha256";
    a.num_signatures = static_cast<int64_t>(hashes.size());
    a.created_at = kT0;
    a.expires_at = kT0 + 5min;
    for (Bytes& h : hashes) a.hashes.push_back({std::move(h), std::nullopt});
    return a;
  }

  static ConsumeActivationRequest Consume(uint8_t sad, std::vector<Bytes> hashes) {
    ConsumeActivationRequest r;
    r.sad_hash = Bytes(32, sad);
    r.account_id = "a_alice";
    r.key_id = "k_1";
    r.hash_algorithm = "sha256";
    r.hashes = std::move(hashes);
    r.now = kT0 + 1min;
    return r;
  }

  // Asserts that nothing was consumed on activation `sad`.
  void ExpectUntouched(uint8_t sad) {
    auto a = store_->GetActivation(Bytes(32, sad));
    ASSERT_TRUE(a.ok()) << a.error().message();
    EXPECT_EQ(a->signatures_used, 0);
    for (const ActivationHash& h : a->hashes) EXPECT_FALSE(h.consumed_at.has_value());
  }

  std::filesystem::path dir_;
  std::string path_;
  std::unique_ptr<SqliteStore> store_;
};

TEST_F(ActivationStoreTest, NewDatabaseIsAtLatestSchemaVersion) {
  EXPECT_EQ(store_->SchemaVersion(), LatestSchemaVersion());
  EXPECT_GE(LatestSchemaVersion(), 3);
}

TEST_F(ActivationStoreTest, Migration3AppliesToExistingVersion2Database) {
  const std::string old_path = (dir_ / "old.db").string();
  std::vector<Migration> up_to_2(Migrations().begin(), Migrations().begin() + 2);
  {
    auto old = SqliteStoreTestPeer::OpenWith(old_path, up_to_2);
    ASSERT_TRUE(old.ok()) << old.error().message();
    EXPECT_EQ((*old)->SchemaVersion(), 2);
    ASSERT_TRUE((*old)->InsertKey(Key("k_1", "release")).ok());
  }
  auto store = SqliteStore::Open(old_path);
  ASSERT_TRUE(store.ok()) << store.error().message();
  EXPECT_EQ((*store)->MigratedFrom(), 2);
  EXPECT_EQ((*store)->SchemaVersion(), LatestSchemaVersion());
  EXPECT_TRUE((*store)->GetKeyById("k_1").ok());
  EXPECT_TRUE((*store)->InsertActivation(Activation(1, {Digest(0xa1)})).ok());
  EXPECT_TRUE((*store)->InsertGrant("k_1", "a_alice", kT0).ok());
}

TEST_F(ActivationStoreTest, InsertedActivationReadsBackWithEveryField) {
  ASSERT_TRUE(store_->InsertActivation(Activation(1, {Digest(0xa1), Digest(0xa2)})).ok());
  auto a = store_->GetActivation(Bytes(32, 1));
  ASSERT_TRUE(a.ok()) << a.error().message();
  EXPECT_EQ(a->account_id, "a_alice");
  EXPECT_EQ(a->key_id, "k_1");
  EXPECT_EQ(a->hash_algorithm, "sha256");
  EXPECT_EQ(a->num_signatures, 2);
  EXPECT_EQ(a->signatures_used, 0);
  EXPECT_EQ(a->created_at, kT0);
  EXPECT_EQ(a->expires_at, kT0 + 5min);
  ASSERT_EQ(a->hashes.size(), 2u);
  EXPECT_EQ(a->hashes[0].hash, Digest(0xa1));
  EXPECT_EQ(a->hashes[1].hash, Digest(0xa2));
}

TEST_F(ActivationStoreTest, InsertActivationRefusesDuplicatesAndUnknownKey) {
  ASSERT_TRUE(store_->InsertActivation(Activation(1, {Digest(0xa1)})).ok());
  EXPECT_EQ(store_->InsertActivation(Activation(1, {Digest(0xa1)})).error().code(),
            ErrorCode::kAlreadyExists);
  EXPECT_EQ(store_->InsertActivation(Activation(2, {Digest(0xa1), Digest(0xa1)})).error().code(),
            ErrorCode::kInvalidArgument);
  ActivationRecord unknown_key = Activation(3, {Digest(0xa1)});
  unknown_key.key_id = "k_missing";
  EXPECT_EQ(store_->InsertActivation(unknown_key).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->GetActivation(Bytes(32, 9)).error().code(), ErrorCode::kNotFound);
}

// Open: unexpired, with signatures left; per account.
TEST_F(ActivationStoreTest, CountOpenActivationsCountsUnexpiredOnesWithSignaturesLeft) {
  ASSERT_TRUE(store_->InsertActivation(Activation(1, {Digest(0xa1)})).ok());
  ASSERT_TRUE(store_->InsertActivation(Activation(2, {Digest(0xa1), Digest(0xa2)})).ok());
  ActivationRecord bobs = Activation(3, {Digest(0xa1)});
  bobs.account_id = "a_bob";
  ASSERT_TRUE(store_->InsertActivation(bobs).ok());
  ActivationRecord short_lived = Activation(4, {Digest(0xa1)});
  short_lived.expires_at = kT0 + 30s;
  ASSERT_TRUE(store_->InsertActivation(short_lived).ok());
  EXPECT_EQ(store_->CountOpenActivations("a_alice", kT0 + 1min).value(), 2);  // 4 has expired
  EXPECT_EQ(store_->CountOpenActivations("a_alice", kT0).value(), 3);
  ASSERT_TRUE(store_->ConsumeActivationHashes(Consume(1, {Digest(0xa1)})).ok());  // used up
  ASSERT_TRUE(store_->ConsumeActivationHashes(Consume(2, {Digest(0xa2)})).ok());  // one left
  EXPECT_EQ(store_->CountOpenActivations("a_alice", kT0 + 1min).value(), 1);
  EXPECT_EQ(store_->CountOpenActivations("a_bob", kT0 + 1min).value(), 1);
  EXPECT_EQ(store_->CountOpenActivations("a_nobody", kT0 + 1min).value(), 0);
  EXPECT_EQ(store_->CountOpenActivations("a_alice", kT0 + 5min).value(), 0);  // expires_at itself
}

TEST_F(ActivationStoreTest, ConsumeMarksHashesAndCountsSignatures) {
  ASSERT_TRUE(store_->InsertActivation(Activation(1, {Digest(0xa1), Digest(0xa2)})).ok());
  Status s = store_->ConsumeActivationHashes(Consume(1, {Digest(0xa2)}));
  ASSERT_TRUE(s.ok()) << s.error().message();
  auto a = store_->GetActivation(Bytes(32, 1));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->signatures_used, 1);
  EXPECT_FALSE(a->hashes[0].consumed_at.has_value());
  ASSERT_TRUE(a->hashes[1].consumed_at.has_value());
  EXPECT_EQ(*a->hashes[1].consumed_at, kT0 + 1min);
}

// The signing service's mode (the `sign` log entry's commit flushes the consumption): the same
// rules and atomicity, visible to other connections at once, and every later commit on the
// connection is flushed again, after a success and after a refusal alike.
TEST_F(ActivationStoreTest, ConsumeFlushedWithNextCommitIsAtomicVisibleAndRestoresFullSync) {
  ASSERT_EQ(SqliteStoreTestPeer::Synchronous(*store_), 2);
  ASSERT_TRUE(store_->InsertActivation(Activation(1, {Digest(0xa1), Digest(0xa2)})).ok());
  ConsumeActivationRequest r = Consume(1, {Digest(0xa1)});
  r.flush_with_next_commit = true;
  Status s = store_->ConsumeActivationHashes(r);
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(SqliteStoreTestPeer::Synchronous(*store_), 2);

  auto other = SqliteStore::Open(path_);  // another connection, as another process would have
  ASSERT_TRUE(other.ok()) << other.error().message();
  auto seen = (*other)->GetActivation(Bytes(32, 1));
  ASSERT_TRUE(seen.ok());
  EXPECT_EQ(seen->signatures_used, 1);
  EXPECT_TRUE(seen->hashes[0].consumed_at.has_value());
  Status again = (*other)->ConsumeActivationHashes(Consume(1, {Digest(0xa1)}));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), ErrorCode::kPermissionDenied) << again.error().message();

  Status refused = store_->ConsumeActivationHashes(r);  // the same hash again
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message().find("already used"), std::string::npos)
      << refused.error().message();
  EXPECT_EQ(SqliteStoreTestPeer::Synchronous(*store_), 2);
}

TEST_F(ActivationStoreTest, ConsumeUnknownSadIsUnauthenticated) {
  Status s = store_->ConsumeActivationHashes(Consume(7, {Digest(0xa1)}));
  EXPECT_EQ(s.error().code(), ErrorCode::kUnauthenticated);
  EXPECT_NE(s.error().message().find("not valid"), std::string::npos);
}

TEST_F(ActivationStoreTest, ConsumeSadOfAnotherAccountIsUnauthenticatedAndChangesNothing) {
  ASSERT_TRUE(store_->InsertActivation(Activation(1, {Digest(0xa1)})).ok());
  ConsumeActivationRequest r = Consume(1, {Digest(0xa1)});
  r.account_id = "a_mallory";
  Status s = store_->ConsumeActivationHashes(r);
  EXPECT_EQ(s.error().code(), ErrorCode::kUnauthenticated);
  EXPECT_NE(s.error().message().find("another account"), std::string::npos);
  ExpectUntouched(1);
}

TEST_F(ActivationStoreTest, ConsumeSadForAnotherCredentialIsUnauthenticatedAndChangesNothing) {
  ASSERT_TRUE(store_->InsertActivation(Activation(1, {Digest(0xa1)})).ok());
  ConsumeActivationRequest r = Consume(1, {Digest(0xa1)});
  r.key_id = "k_2";
  Status s = store_->ConsumeActivationHashes(r);
  EXPECT_EQ(s.error().code(), ErrorCode::kUnauthenticated);
  EXPECT_NE(s.error().message().find("another credential"), std::string::npos);
  ExpectUntouched(1);
}

TEST_F(ActivationStoreTest, ConsumeExpiredSadIsUnauthenticatedSadExpired) {
  ASSERT_TRUE(store_->InsertActivation(Activation(1, {Digest(0xa1)})).ok());
  ConsumeActivationRequest r = Consume(1, {Digest(0xa1)});
  r.now = kT0 + 5min;  // expires_at itself is already too late
  Status s = store_->ConsumeActivationHashes(r);
  EXPECT_EQ(s.error().code(), ErrorCode::kUnauthenticated);
  EXPECT_EQ(s.error().message(), "SAD expired");
  ExpectUntouched(1);
}

TEST_F(ActivationStoreTest, ConsumeHashNotInSadIsPermissionDeniedAndChangesNothing) {
  ASSERT_TRUE(store_->InsertActivation(Activation(1, {Digest(0xa1), Digest(0xa2)})).ok());
  Status s = store_->ConsumeActivationHashes(Consume(1, {Digest(0xa1), Digest(0xbb)}));
  EXPECT_EQ(s.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_TRUE(s.error().message().starts_with(kHashNotAuthorizedMessage)) << s.error().message();
  ExpectUntouched(1);  // the listed hash 0xa1 was not consumed either
}

TEST_F(ActivationStoreTest, ConsumeHashTwiceIsPermissionDenied) {
  ASSERT_TRUE(store_->InsertActivation(Activation(1, {Digest(0xa1), Digest(0xa2)})).ok());
  ASSERT_TRUE(store_->ConsumeActivationHashes(Consume(1, {Digest(0xa1)})).ok());
  Status s = store_->ConsumeActivationHashes(Consume(1, {Digest(0xa1)}));
  EXPECT_EQ(s.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_TRUE(s.error().message().starts_with(kHashNotAuthorizedMessage)) << s.error().message();
  EXPECT_NE(s.error().message().find("already used"), std::string::npos);
}

// A used hash after a fresh one: the fresh one's update is rolled back with the rest.
TEST_F(ActivationStoreTest, ConsumeWithOneUsedHashConsumesNoneOfTheOthers) {
  ASSERT_TRUE(
      store_->InsertActivation(Activation(1, {Digest(0xa1), Digest(0xa2), Digest(0xa3)})).ok());
  ASSERT_TRUE(store_->ConsumeActivationHashes(Consume(1, {Digest(0xa2)})).ok());
  Status s = store_->ConsumeActivationHashes(Consume(1, {Digest(0xa1), Digest(0xa2)}));
  EXPECT_EQ(s.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(s.error().message().find("already used"), std::string::npos) << s.error().message();
  auto a = store_->GetActivation(Bytes(32, 1));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->signatures_used, 1);
  EXPECT_FALSE(a->hashes[0].consumed_at.has_value());
  EXPECT_TRUE(a->hashes[1].consumed_at.has_value());
  ASSERT_TRUE(store_->ConsumeActivationHashes(Consume(1, {Digest(0xa1), Digest(0xa3)})).ok());
}

TEST_F(ActivationStoreTest, ConsumeSameHashTwiceInOneRequestIsInvalidArgument) {
  ASSERT_TRUE(store_->InsertActivation(Activation(1, {Digest(0xa1), Digest(0xa2)})).ok());
  Status s = store_->ConsumeActivationHashes(Consume(1, {Digest(0xa1), Digest(0xa1)}));
  EXPECT_EQ(s.error().code(), ErrorCode::kInvalidArgument);
  ExpectUntouched(1);
}

TEST_F(ActivationStoreTest, ConsumeMoreThanAuthorizedIsPermissionDenied) {
  ASSERT_TRUE(store_->InsertActivation(Activation(1, {Digest(0xa1), Digest(0xa2)})).ok());
  Status s =
      store_->ConsumeActivationHashes(Consume(1, {Digest(0xa1), Digest(0xa2), Digest(0xa3)}));
  EXPECT_EQ(s.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(s.error().message().find("more signatures than authorized"), std::string::npos);
  ExpectUntouched(1);
}

TEST_F(ActivationStoreTest, ConsumeWithOtherHashAlgorithmIsPermissionDenied) {
  ASSERT_TRUE(store_->InsertActivation(Activation(1, {Digest(0xa1)})).ok());
  ConsumeActivationRequest r = Consume(1, {Digest(0xa1)});
  r.hash_algorithm = "sha384";
  EXPECT_EQ(store_->ConsumeActivationHashes(r).error().code(), ErrorCode::kPermissionDenied);
  ExpectUntouched(1);
}

TEST_F(ActivationStoreTest, ConsumeNeedsTheKeyStillActiveAndTheGrantStillThere) {
  ASSERT_TRUE(store_->InsertActivation(Activation(1, {Digest(0xa1)})).ok());
  ASSERT_TRUE(store_->UpdateKeyState("k_1", KeyState::kActive, KeyState::kDisabled, kT0).ok());
  Status s = store_->ConsumeActivationHashes(Consume(1, {Digest(0xa1)}));
  EXPECT_EQ(s.error().code(), ErrorCode::kFailedPrecondition) << s.error().message();
  ExpectUntouched(1);
  ASSERT_TRUE(store_->UpdateKeyState("k_1", KeyState::kDisabled, KeyState::kActive, kT0).ok());
  ASSERT_TRUE(store_->DeleteGrant("k_1", "a_alice").ok());
  s = store_->ConsumeActivationHashes(Consume(1, {Digest(0xa1)}));
  EXPECT_EQ(s.error().code(), ErrorCode::kPermissionDenied) << s.error().message();
  ExpectUntouched(1);
  ASSERT_TRUE(store_->InsertGrant("k_1", "a_alice", kT0).ok());
  EXPECT_TRUE(store_->ConsumeActivationHashes(Consume(1, {Digest(0xa1)})).ok());
}

// The SAD's own rules come first (store.h, as MemoryStore checks them): a replayed hash on a key
// disabled since is refused as a replay, not as a disabled key.
TEST_F(ActivationStoreTest, TheSadsRulesComeBeforeTheKeysState) {
  ASSERT_TRUE(store_->InsertActivation(Activation(1, {Digest(0xa1), Digest(0xa2)})).ok());
  ASSERT_TRUE(store_->ConsumeActivationHashes(Consume(1, {Digest(0xa1)})).ok());
  ASSERT_TRUE(store_->UpdateKeyState("k_1", KeyState::kActive, KeyState::kDisabled, kT0).ok());
  Status s = store_->ConsumeActivationHashes(Consume(1, {Digest(0xa1)}));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kPermissionDenied) << s.error().message();
  EXPECT_EQ(s.error().message().rfind(kHashNotAuthorizedMessage, 0), 0u) << s.error().message();
  // A fresh hash on the disabled key: the key's state, and nothing consumed.
  s = store_->ConsumeActivationHashes(Consume(1, {Digest(0xa2)}));
  EXPECT_EQ(s.error().code(), ErrorCode::kFailedPrecondition) << s.error().message();
  auto a = store_->GetActivation(Bytes(32, 1));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->signatures_used, 1);
}

TEST_F(ActivationStoreTest, RateLimitPerKeyIsResourceExhaustedAndConsumesNothing) {
  ASSERT_TRUE(store_->InsertActivation(Activation(1, {Digest(0xa1), Digest(0xa2)})).ok());
  ActivationRecord bob = Activation(2, {Digest(0xb1), Digest(0xb2)});
  bob.account_id = "a_bob";
  ASSERT_TRUE(store_->InsertActivation(bob).ok());

  ConsumeActivationRequest r = Consume(1, {Digest(0xa1), Digest(0xa2)});
  r.limits.per_key = 3;
  ASSERT_TRUE(store_->ConsumeActivationHashes(r).ok());
  ConsumeActivationRequest rb = Consume(2, {Digest(0xb1), Digest(0xb2)});
  rb.account_id = "a_bob";
  rb.limits.per_key = 3;
  Status s = store_->ConsumeActivationHashes(rb);
  EXPECT_EQ(s.error().code(), ErrorCode::kResourceExhausted) << s.error().message();
  ExpectUntouched(2);
  rb.now = kT0 + 2min;  // the next window
  s = store_->ConsumeActivationHashes(rb);
  EXPECT_TRUE(s.ok()) << s.error().message();
}

// The bound on open activations is counted inside the insert's transaction: threads that all
// saw room before inserting cannot overshoot it together.
TEST_F(ActivationStoreTest, ConcurrentInsertsCannotOvershootTheOpenBound) {
  constexpr int kMax = 4;
  for (int i = 0; i < kMax - 1; ++i) {
    ASSERT_TRUE(store_
                    ->InsertActivation(Activation(static_cast<uint8_t>(10 + i),
                                                  {Digest(static_cast<uint8_t>(10 + i))}),
                                       kMax)
                    .ok());
  }
  constexpr int kThreads = 8;
  std::barrier start(kThreads);
  std::atomic<int> stored{0};
  std::atomic<int> refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      ActivationRecord a =
          Activation(static_cast<uint8_t>(100 + t), {Digest(static_cast<uint8_t>(100 + t))});
      start.arrive_and_wait();
      Status s = store_->InsertActivation(a, kMax);
      if (s.ok()) {
        ++stored;
      } else {
        EXPECT_EQ(s.error().code(), ErrorCode::kResourceExhausted) << s.error().message();
        EXPECT_EQ(s.error().message().rfind(kOpenActivationsMessage, 0), 0u) << s.error().message();
        ++refused;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(stored.load(), 1);
  EXPECT_EQ(refused.load(), kThreads - 1);
  EXPECT_EQ(*store_->CountOpenActivations("a_alice", kT0), kMax);
  // Without a bound (0), nothing is counted.
  EXPECT_TRUE(store_->InsertActivation(Activation(200, {Digest(200)})).ok());
}

// More hashes in one request than a minute allows can never pass: not "retry in the next minute".
TEST_F(ActivationStoreTest, ARequestLargerThanARateLimitIsRefusedForGood) {
  ASSERT_TRUE(
      store_->InsertActivation(Activation(1, {Digest(0xa1), Digest(0xa2), Digest(0xa3)})).ok());
  ConsumeActivationRequest r = Consume(1, {Digest(0xa1), Digest(0xa2), Digest(0xa3)});
  r.limits.per_account_key = 2;
  Status s = store_->ConsumeActivationHashes(r);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kPermissionDenied) << s.error().message();
  EXPECT_NE(s.error().message().find("send at most that many hashes"), std::string::npos)
      << s.error().message();
  ExpectUntouched(1);
}

TEST_F(ActivationStoreTest, RateLimitPerAccountCountsAllKeys) {
  ASSERT_TRUE(store_->InsertActivation(Activation(1, {Digest(0xa1)})).ok());
  ActivationRecord other_key = Activation(2, {Digest(0xa2)});
  other_key.key_id = "k_2";
  ASSERT_TRUE(store_->InsertActivation(other_key).ok());
  ConsumeActivationRequest r = Consume(1, {Digest(0xa1)});
  r.limits.per_account = 1;
  ASSERT_TRUE(store_->ConsumeActivationHashes(r).ok());
  ConsumeActivationRequest r2 = Consume(2, {Digest(0xa2)});
  r2.key_id = "k_2";
  r2.limits.per_account = 1;
  EXPECT_EQ(store_->ConsumeActivationHashes(r2).error().code(), ErrorCode::kResourceExhausted);
  r2.limits.per_account = 0;
  r2.limits.per_account_key = 1;  // k_2 has no signatures yet this minute
  EXPECT_TRUE(store_->ConsumeActivationHashes(r2).ok());
}

// The property the whole activation design rests on: of concurrent requests presenting the same
// SAD and hash, exactly one gets to sign.
TEST_F(ActivationStoreTest, EightThreadsConsumingOneHashHaveExactlyOneWinner) {
  for (int round = 0; round < 20; ++round) {
    const auto sad = static_cast<uint8_t>(round + 1);
    ASSERT_TRUE(store_->InsertActivation(Activation(sad, {Digest(0xa1)})).ok());
    constexpr int kThreads = 8;
    std::barrier start(kThreads);
    std::atomic<int> wins{0};
    std::atomic<int> already_used{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&] {
        start.arrive_and_wait();
        Status s = store_->ConsumeActivationHashes(Consume(sad, {Digest(0xa1)}));
        if (s.ok()) {
          ++wins;
        } else if (s.error().code() == ErrorCode::kPermissionDenied) {
          ++already_used;
        }
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(wins.load(), 1) << "round " << round;
    EXPECT_EQ(already_used.load(), kThreads - 1) << "round " << round;
    auto a = store_->GetActivation(Bytes(32, sad));
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(a->signatures_used, 1);
  }
}

// The same race between separate connections, as between processes or server nodes sharing the
// file: only BEGIN IMMEDIATE, not SqliteStore's mutex, keeps them apart.
TEST_F(ActivationStoreTest, EightStoresOnOneFileConsumingOneHashHaveExactlyOneWinner) {
  constexpr int kThreads = 8;
  std::vector<std::unique_ptr<SqliteStore>> stores;
  for (int i = 0; i < kThreads; ++i) {
    SqliteStoreOptions options;
    options.busy_timeout = 20s;
    auto s = SqliteStore::Open(path_, options);
    ASSERT_TRUE(s.ok()) << s.error().message();
    stores.push_back(std::move(s).value());
  }
  for (int round = 0; round < 10; ++round) {
    const auto sad = static_cast<uint8_t>(round + 1);
    ASSERT_TRUE(store_->InsertActivation(Activation(sad, {Digest(0xa1)})).ok());
    std::barrier start(kThreads);
    std::atomic<int> wins{0};
    std::atomic<int> other_errors{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] {
        start.arrive_and_wait();
        Status s = stores[i]->ConsumeActivationHashes(Consume(sad, {Digest(0xa1)}));
        if (s.ok()) {
          ++wins;
        } else if (s.error().code() != ErrorCode::kPermissionDenied) {
          ++other_errors;
          ADD_FAILURE() << s.error().message();
        }
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(wins.load(), 1) << "round " << round;
    EXPECT_EQ(other_errors.load(), 0);
  }
}

TEST_F(ActivationStoreTest, EightThreadsConsumingDistinctHashesAllSucceed) {
  std::vector<Bytes> hashes;
  for (int i = 0; i < 8; ++i) hashes.push_back(Digest(static_cast<uint8_t>(0xc0 + i)));
  ASSERT_TRUE(store_->InsertActivation(Activation(1, hashes)).ok());
  std::barrier start(8);
  std::atomic<int> wins{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      if (store_->ConsumeActivationHashes(Consume(1, {hashes[i]})).ok()) ++wins;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wins.load(), 8);
  auto a = store_->GetActivation(Bytes(32, 1));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->signatures_used, 8);
}

TEST_F(ActivationStoreTest, ReplaceActivationDeletesOldAndStoresNew) {
  ASSERT_TRUE(store_->InsertActivation(Activation(1, {Digest(0xa1)})).ok());
  Status s = store_->ReplaceActivation(Bytes(32, 1), "a_alice", "k_1", kT0 + 1min,
                                       Activation(2, {Digest(0xb1)}), 1000);
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(store_->GetActivation(Bytes(32, 1)).error().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(store_->GetActivation(Bytes(32, 2)).ok());
  EXPECT_EQ(store_->ConsumeActivationHashes(Consume(1, {Digest(0xa1)})).error().code(),
            ErrorCode::kUnauthenticated);
}

// Extending a used-up SAD makes a new open one: bounded like a new authorization, in the same
// transaction. Extending an open one leaves the number of open ones as it was.
TEST_F(ActivationStoreTest, ReplacingAUsedUpActivationIsBoundedLikeANewOne) {
  ASSERT_TRUE(store_->InsertActivation(Activation(1, {Digest(0xa1)})).ok());
  ASSERT_TRUE(store_->ConsumeActivationHashes(Consume(1, {Digest(0xa1)})).ok());  // used up
  ASSERT_TRUE(store_->InsertActivation(Activation(2, {Digest(0xb1)})).ok());
  ASSERT_TRUE(store_->InsertActivation(Activation(3, {Digest(0xc1)})).ok());
  Status s = store_->ReplaceActivation(Bytes(32, 1), "a_alice", "k_1", kT0 + 1min,
                                       Activation(4, {Digest(0xd1)}), 1000, 2);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_TRUE(s.error().message().starts_with(kOpenActivationsMessage)) << s.error().message();
  EXPECT_TRUE(store_->GetActivation(Bytes(32, 1)).ok());  // nothing changed
  EXPECT_EQ(store_->CountOpenActivations("a_alice", kT0 + 1min).value(), 2);
  // An open one replaced: still two open, within the bound.
  s = store_->ReplaceActivation(Bytes(32, 2), "a_alice", "k_1", kT0 + 1min,
                                Activation(5, {Digest(0xe1)}), 1000, 2);
  ASSERT_TRUE(s.ok()) << s.error().message();
  // With room for a third, the used-up one may be continued.
  s = store_->ReplaceActivation(Bytes(32, 1), "a_alice", "k_1", kT0 + 1min,
                                Activation(4, {Digest(0xd1)}), 1000, 3);
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(store_->CountOpenActivations("a_alice", kT0 + 1min).value(), 3);
}

TEST_F(ActivationStoreTest, ReplaceActivationContinuesTheTransactionsCounts) {
  ASSERT_TRUE(store_->InsertActivation(Activation(1, {Digest(0xa1), Digest(0xa2)})).ok());
  ASSERT_TRUE(store_->ConsumeActivationHashes(Consume(1, {Digest(0xa1)})).ok());
  // 2 authorized + 2 new > 3: refused, and nothing changes.
  Status s = store_->ReplaceActivation(Bytes(32, 1), "a_alice", "k_1", kT0 + 1min,
                                       Activation(2, {Digest(0xb1), Digest(0xb2)}), 3);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(s.error().message().find("would bring it to 4 (2 authorized so far); at most 3"),
            std::string::npos)
      << s.error().message();
  EXPECT_TRUE(store_->GetActivation(Bytes(32, 1)).ok());
  EXPECT_EQ(store_->GetActivation(Bytes(32, 2)).error().code(), ErrorCode::kNotFound);
  // 2 + 1 = 3: stored with the transaction's counts; only the new hash can be signed.
  s = store_->ReplaceActivation(Bytes(32, 1), "a_alice", "k_1", kT0 + 1min,
                                Activation(2, {Digest(0xb1)}), 3);
  ASSERT_TRUE(s.ok()) << s.error().message();
  auto next = store_->GetActivation(Bytes(32, 2));
  ASSERT_TRUE(next.ok()) << next.error().message();
  EXPECT_EQ(next->num_signatures, 3);
  EXPECT_EQ(next->signatures_used, 1);
  EXPECT_EQ(store_->ConsumeActivationHashes(Consume(2, {Digest(0xa2)})).error().code(),
            ErrorCode::kPermissionDenied);
  EXPECT_TRUE(store_->ConsumeActivationHashes(Consume(2, {Digest(0xb1)})).ok());
  // A replacement that claims counts of its own is a caller's error.
  ActivationRecord used = Activation(3, {Digest(0xc1)});
  used.signatures_used = 1;
  EXPECT_EQ(store_->ReplaceActivation(Bytes(32, 2), "a_alice", "k_1", kT0 + 1min, used, 10)
                .error()
                .code(),
            ErrorCode::kInvalidArgument);
  // So is one for another account or key: the transaction's signatures stay where they are.
  ActivationRecord elsewhere = Activation(3, {Digest(0xc1)});
  elsewhere.account_id = "a_bob";
  EXPECT_EQ(store_->ReplaceActivation(Bytes(32, 2), "a_alice", "k_1", kT0 + 1min, elsewhere, 10)
                .error()
                .code(),
            ErrorCode::kInvalidArgument);
  elsewhere = Activation(3, {Digest(0xc1)});
  elsewhere.key_id = "k_2";
  EXPECT_EQ(store_->ReplaceActivation(Bytes(32, 2), "a_alice", "k_1", kT0 + 1min, elsewhere, 10)
                .error()
                .code(),
            ErrorCode::kInvalidArgument);
  EXPECT_TRUE(store_->GetActivation(Bytes(32, 2)).ok());
}

TEST_F(ActivationStoreTest, ReplaceActivationOfAnotherAccountChangesNothing) {
  ASSERT_TRUE(store_->InsertActivation(Activation(1, {Digest(0xa1)})).ok());
  Status s = store_->ReplaceActivation(Bytes(32, 1), "a_mallory", "k_1", kT0 + 1min,
                                       Activation(2, {Digest(0xb1)}), 1000);
  EXPECT_EQ(s.error().code(), ErrorCode::kUnauthenticated);
  EXPECT_NE(s.error().message().find("another account"), std::string::npos);
  EXPECT_TRUE(store_->GetActivation(Bytes(32, 1)).ok());
  EXPECT_EQ(store_->GetActivation(Bytes(32, 2)).error().code(), ErrorCode::kNotFound);
  s = store_->ReplaceActivation(Bytes(32, 1), "a_alice", "k_1", kT0 + 6min,
                                Activation(2, {Digest(0xb1)}), 1000);
  EXPECT_EQ(s.error().code(), ErrorCode::kUnauthenticated);
}

TEST_F(ActivationStoreTest, DeleteExpiredActivationsRemovesOnlyExpired) {
  ASSERT_TRUE(store_->InsertActivation(Activation(1, {Digest(0xa1)})).ok());
  ActivationRecord later = Activation(2, {Digest(0xa1)});
  later.expires_at = kT0 + 1h;
  ASSERT_TRUE(store_->InsertActivation(later).ok());
  auto n = store_->DeleteExpiredActivations(kT0 + 10min);
  ASSERT_TRUE(n.ok()) << n.error().message();
  EXPECT_EQ(*n, 1);
  EXPECT_EQ(store_->GetActivation(Bytes(32, 1)).error().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(store_->GetActivation(Bytes(32, 2)).ok());
}

TEST_F(ActivationStoreTest, GrantsInsertListCheckAndDelete) {
  EXPECT_FALSE(*store_->HasGrant("k_2", "a_carol"));
  ASSERT_TRUE(store_->InsertGrant("k_2", "a_dave", kT0).ok());
  ASSERT_TRUE(store_->InsertGrant("k_2", "a_carol", kT0).ok());
  EXPECT_EQ(store_->InsertGrant("k_2", "a_carol", kT0).error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(store_->InsertGrant("k_missing", "a_carol", kT0).error().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(*store_->HasGrant("k_2", "a_carol"));
  EXPECT_FALSE(*store_->HasGrant("k_1", "a_carol"));
  // a_alice's grant is SetUp's.
  EXPECT_EQ(*store_->ListGrants("k_2"), (std::vector<std::string>{"a_alice", "a_carol", "a_dave"}));
  ASSERT_TRUE(store_->DeleteGrant("k_2", "a_carol").ok());
  EXPECT_FALSE(*store_->HasGrant("k_2", "a_carol"));
  EXPECT_EQ(store_->DeleteGrant("k_2", "a_carol").error().code(), ErrorCode::kNotFound);
}

TEST_F(ActivationStoreTest, PolicyPutGetAndReplace) {
  auto none = store_->GetKeyPolicy("k_1");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  KeyPolicyRecord p{"k_1", {"ecdsa"}, {"sha256", "sha384"}, 10, 100, 5};
  ASSERT_TRUE(store_->PutKeyPolicy(p).ok());
  auto got = store_->GetKeyPolicy("k_1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->allowed_sign_algos, p.allowed_sign_algos);
  EXPECT_EQ((*got)->allowed_hash_algos, p.allowed_hash_algos);
  EXPECT_EQ((*got)->max_signatures_per_authorization, 10);
  EXPECT_EQ((*got)->rate_per_minute_key, 100);
  EXPECT_EQ((*got)->rate_per_minute_account, 5);
  p.max_signatures_per_authorization = 20;
  ASSERT_TRUE(store_->PutKeyPolicy(p).ok());
  EXPECT_EQ((*store_->GetKeyPolicy("k_1"))->max_signatures_per_authorization, 20);
  p.key_id = "k_missing";
  EXPECT_EQ(store_->PutKeyPolicy(p).error().code(), ErrorCode::kNotFound);
}

// audit_events (migration 3) is no longer written or read: the Merkle log (migration 4) replaced
// it. Its rows, if an early database has any, are kept, and the schema still refuses to change
// them from any connection, also by INSERT OR REPLACE (which deletes without delete triggers).
TEST_F(ActivationStoreTest, OldAuditEventsCannotBeUpdatedOrDeletedInTheDatabase) {
  const std::string old_path = path_ + ".v3";
  {
    auto old = SqliteStoreTestPeer::OpenWith(old_path, Migrations().first(3));
    ASSERT_TRUE(old.ok()) << old.error().message();
    auto raw = sqlite_internal::Connection::Open(old_path, SQLITE_OPEN_READWRITE);
    ASSERT_TRUE(raw.ok());
    ASSERT_TRUE(
        raw->Exec(R"(INSERT INTO audit_events (time, action, json) VALUES (1, 'sign', '{"a":1}'))",
                  "insert")
            .ok());
  }
  ASSERT_TRUE(SqliteStore::Open(old_path).ok());  // migrated to the latest version
  auto raw = sqlite_internal::Connection::Open(old_path, SQLITE_OPEN_READWRITE);
  ASSERT_TRUE(raw.ok());
  for (const char* replace :
       {"INSERT OR REPLACE INTO audit_events (seq, time, action, json) VALUES (1, 1, 'sign', '{}')",
        "REPLACE INTO audit_events (seq, time, action, json) VALUES (1, 1, 'sign', '{}')",
        "INSERT INTO audit_events (time, action, json) VALUES (2, 'sign', '{}')"}) {
    SCOPED_TRACE(replace);
    Status refused = raw->Exec(replace, "tamper");
    ASSERT_FALSE(refused.ok());
    EXPECT_NE(refused.error().message().find("append-only"), std::string::npos);
  }
  Status update = raw->Exec("UPDATE audit_events SET json = '{}'", "tamper");
  ASSERT_FALSE(update.ok());
  EXPECT_NE(update.error().message().find("append-only"), std::string::npos);
  Status del = raw->Exec("DELETE FROM audit_events", "tamper");
  ASSERT_FALSE(del.ok());
  EXPECT_NE(del.error().message().find("append-only"), std::string::npos);
  auto query = raw->Prepare("SELECT json FROM audit_events", "read");
  ASSERT_TRUE(query.ok());
  auto row = query->Step();
  ASSERT_TRUE(row.ok() && *row);
  EXPECT_EQ(query->Text(0), R"({"a":1})");
}

}  // namespace
}  // namespace signet::store
