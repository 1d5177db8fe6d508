// SqliteStore's accounts and bearer tokens (schema migration 2), against temporary database files.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
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
};

namespace {

using namespace std::chrono_literals;

const TimePoint kNow = FromUnixSeconds(1'700'000'000);

AccountRecord Person(const std::string& name) {
  AccountRecord a;
  a.id = "a_" + name;
  a.name = name;
  a.kind = AccountKind::kPerson;
  a.roles = RoleSet{Role::kSigner};
  a.password_hash = "$argon2id$v=19$m=256,t=1,p=1$c2FsdA$aGFzaA";
  a.totp_seed_sealed = Bytes{1, 2, 3, 0, 4};
  a.must_change_password = true;
  a.created_at = kNow;
  a.updated_at = kNow;
  return a;
}

AccountRecord Service(const std::string& name, char fp) {
  AccountRecord a;
  a.id = "a_" + name;
  a.name = name;
  a.kind = AccountKind::kService;
  a.mtls_fingerprint = std::string(64, fp);
  a.created_at = kNow;
  a.updated_at = kNow;
  return a;
}

BearerTokenRecord Token(const std::string& account_id, uint8_t fill) {
  BearerTokenRecord t;
  t.token_hash = Bytes(32, fill);
  t.account_id = account_id;
  t.created_at = kNow;
  t.expires_at = kNow + 15min;
  return t;
}

class SqliteAccountsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/signet-store-accounts-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/signet.db";
    auto store = SqliteStore::Open(path_);
    ASSERT_TRUE(store.ok()) << store.error().message();
    store_ = std::move(*store);
  }
  void TearDown() override {
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string dir_;
  std::string path_;
  std::unique_ptr<SqliteStore> store_;
};

TEST(RoleSetTest, CanonicalTextRoundTrips) {
  for (RoleSet roles : {RoleSet{}, RoleSet{Role::kAdmin}, RoleSet{Role::kAuditor, Role::kSigner},
                        RoleSet{Role::kAdmin, Role::kSigner, Role::kAuditor}}) {
    Result<RoleSet> parsed = RoleSet::Parse(roles.ToString());
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, roles);
  }
  EXPECT_EQ((RoleSet{Role::kAuditor, Role::kAdmin}).ToString(), "admin,auditor");
  for (const char* bad : {"root", "signer,admin", "admin,admin", "admin,", ",admin"}) {
    EXPECT_FALSE(RoleSet::Parse(bad).ok()) << bad;
  }
}

TEST_F(SqliteAccountsTest, InsertedAccountsReadBackWithEveryField) {
  AccountRecord alice = Person("alice");
  alice.locked_until = kNow + 5min;
  alice.failed_attempts = 2;
  alice.totp_last_step = 77;
  ASSERT_TRUE(store_->InsertAccount(alice).ok());
  AccountRecord ci = Service("ci", 'c');
  ASSERT_TRUE(store_->InsertAccount(ci).ok());

  Result<AccountRecord> got = store_->GetAccountByName("alice");
  ASSERT_TRUE(got.ok()) << got.error().message();
  EXPECT_EQ(got->id, alice.id);
  EXPECT_EQ(got->kind, AccountKind::kPerson);
  EXPECT_EQ(got->roles, alice.roles);
  EXPECT_EQ(got->state, AccountState::kActive);
  EXPECT_EQ(got->password_hash, alice.password_hash);
  EXPECT_EQ(got->totp_seed_sealed, alice.totp_seed_sealed);
  EXPECT_EQ(got->totp_last_step, 77);
  EXPECT_EQ(got->failed_attempts, 2);
  EXPECT_EQ(got->locked_until, alice.locked_until);
  EXPECT_FALSE(got->mtls_fingerprint.has_value());
  EXPECT_TRUE(got->must_change_password);
  EXPECT_EQ(got->created_at, kNow);

  Result<AccountRecord> by_fp = store_->GetAccountByFingerprint(std::string(64, 'c'));
  ASSERT_TRUE(by_fp.ok());
  EXPECT_EQ(by_fp->name, "ci");
  EXPECT_FALSE(by_fp->password_hash.has_value());
  EXPECT_FALSE(by_fp->totp_seed_sealed.has_value());
  EXPECT_FALSE(by_fp->locked_until.has_value());
  EXPECT_TRUE(store_->GetAccountById("a_ci").ok());

  Result<std::vector<AccountRecord>> all = store_->ListAccounts();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].name, "alice");
  EXPECT_EQ((*all)[1].name, "ci");
}

TEST_F(SqliteAccountsTest, DuplicatesAreAlreadyExists) {
  ASSERT_TRUE(store_->InsertAccount(Person("alice")).ok());
  AccountRecord same_name = Person("alice");
  same_name.id = "a_other";
  Status s = store_->InsertAccount(same_name);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(s.error().message(), "an account named 'alice' already exists");
  ASSERT_TRUE(store_->InsertAccount(Service("ci", 'c')).ok());
  Status fp = store_->InsertAccount(Service("ci2", 'c'));
  ASSERT_FALSE(fp.ok());
  EXPECT_EQ(fp.error().code(), ErrorCode::kAlreadyExists);
}

TEST_F(SqliteAccountsTest, SchemaRefusesInconsistentRows) {
  AccountRecord service_with_password = Service("ci", 'c');
  service_with_password.password_hash = "$argon2id$x";
  EXPECT_EQ(store_->InsertAccount(service_with_password).error().code(),
            ErrorCode::kInvalidArgument);
  AccountRecord plain_password = Person("bob");
  plain_password.password_hash = "hunter2";
  EXPECT_EQ(store_->InsertAccount(plain_password).error().code(), ErrorCode::kInvalidArgument);
  AccountRecord short_fp = Service("ci", 'c');
  short_fp.mtls_fingerprint = "abc";
  EXPECT_EQ(store_->InsertAccount(short_fp).error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(SqliteAccountsTest, UnknownAccountIsNotFound) {
  EXPECT_EQ(store_->GetAccountByName("nobody").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->GetAccountById("a_x").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->GetAccountByFingerprint(std::string(64, 'f')).error().code(),
            ErrorCode::kNotFound);
  EXPECT_EQ(store_->RecordTotpStep("a_x", 5, kNow).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->RecordLoginFailure("a_x", 5, kNow, kNow).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->ClearLoginFailures("a_x", kNow).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->ForgiveLoginFailures("a_x", kNow).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->SetAccountRoles("a_x", {}, kNow).error().code(), ErrorCode::kNotFound);
}

TEST_F(SqliteAccountsTest, TotpStepIsRecordedOnlyWhenItGrows) {
  ASSERT_TRUE(store_->InsertAccount(Person("alice")).ok());
  EXPECT_TRUE(*store_->RecordTotpStep("a_alice", 100, kNow));
  EXPECT_FALSE(*store_->RecordTotpStep("a_alice", 100, kNow));
  EXPECT_FALSE(*store_->RecordTotpStep("a_alice", 99, kNow));
  EXPECT_TRUE(*store_->RecordTotpStep("a_alice", 101, kNow));
  EXPECT_EQ(store_->GetAccountByName("alice")->totp_last_step, 101);
}

TEST_F(SqliteAccountsTest, ConcurrentTotpStepRecordsSucceedOnceAcrossConnections) {
  ASSERT_TRUE(store_->InsertAccount(Person("alice")).ok());
  constexpr int kThreads = 8;
  std::vector<std::unique_ptr<SqliteStore>> stores;
  for (int i = 0; i < kThreads; ++i) {
    auto s = SqliteStore::Open(path_);
    ASSERT_TRUE(s.ok());
    stores.push_back(std::move(*s));
  }
  for (int64_t step = 1; step <= 20; ++step) {
    std::atomic<int> accepted{0};
    std::barrier start(kThreads);
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] {
        start.arrive_and_wait();
        Result<bool> r = stores[i]->RecordTotpStep("a_alice", step, kNow);
        if (r.ok() && *r) ++accepted;
      });
    }
    for (std::thread& t : threads) t.join();
    EXPECT_EQ(accepted.load(), 1) << "step " << step;
  }
}

TEST_F(SqliteAccountsTest, FailuresLockAtTheThresholdAndRestartTheCount) {
  ASSERT_TRUE(store_->InsertAccount(Person("alice")).ok());
  for (int i = 1; i <= 4; ++i) {
    Result<LoginFailureState> state = store_->RecordLoginFailure("a_alice", 5, kNow + 15min, kNow);
    ASSERT_TRUE(state.ok()) << state.error().message();
    EXPECT_EQ(state->failed_attempts, i);
    EXPECT_FALSE(state->locked_until.has_value());
  }
  Result<LoginFailureState> fifth = store_->RecordLoginFailure("a_alice", 5, kNow + 15min, kNow);
  ASSERT_TRUE(fifth.ok());
  EXPECT_EQ(fifth->failed_attempts, 0);
  EXPECT_EQ(fifth->locked_until, kNow + 15min);
  Result<AccountRecord> got = store_->GetAccountByName("alice");
  EXPECT_EQ(got->locked_until, kNow + 15min);
  // A later failure (after the lock expired) counts from zero and does not report the old lock.
  Result<LoginFailureState> later =
      store_->RecordLoginFailure("a_alice", 5, kNow + 60min, kNow + 30min);
  EXPECT_EQ(later->failed_attempts, 1);
  EXPECT_FALSE(later->locked_until.has_value());
  ASSERT_TRUE(store_->ClearLoginFailures("a_alice", kNow).ok());
  got = store_->GetAccountByName("alice");
  EXPECT_EQ(got->failed_attempts, 0);
  EXPECT_FALSE(got->locked_until.has_value());
}

// A success forgives the failures before a lock, never a lock that is in force; an admin's clear
// lifts it.
TEST_F(SqliteAccountsTest, ASuccessForgivesFailuresButNotALockInForce) {
  ASSERT_TRUE(store_->InsertAccount(Person("alice")).ok());
  ASSERT_TRUE(store_->RecordLoginFailure("a_alice", 5, kNow + 15min, kNow).ok());
  EXPECT_TRUE(*store_->ForgiveLoginFailures("a_alice", kNow));
  EXPECT_EQ(store_->GetAccountByName("alice")->failed_attempts, 0);
  ASSERT_TRUE(store_->RecordLoginFailure("a_alice", 1, kNow + 15min, kNow).ok());
  EXPECT_FALSE(*store_->ForgiveLoginFailures("a_alice", kNow + 14min));
  EXPECT_EQ(store_->GetAccountByName("alice")->locked_until, kNow + 15min);
  // An expired lock is lifted with the count.
  EXPECT_TRUE(*store_->ForgiveLoginFailures("a_alice", kNow + 15min));
  EXPECT_FALSE(store_->GetAccountByName("alice")->locked_until.has_value());
  ASSERT_TRUE(store_->RecordLoginFailure("a_alice", 1, kNow + 15min, kNow).ok());
  ASSERT_TRUE(store_->ClearLoginFailures("a_alice", kNow).ok());
  EXPECT_FALSE(store_->GetAccountByName("alice")->locked_until.has_value());
}

// While the account is locked, a failure (one that raced the lock) neither counts nor extends
// it, and no TOTP code is accepted; both in the one statement, so no request can slip between.
TEST_F(SqliteAccountsTest, ALockedAccountCountsNoFailureAndAcceptsNoCode) {
  ASSERT_TRUE(store_->InsertAccount(Person("alice")).ok());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(store_->RecordLoginFailure("a_alice", 5, kNow + 15min, kNow).ok());
  }
  ASSERT_EQ(store_->GetAccountByName("alice")->locked_until, kNow + 15min);
  Result<LoginFailureState> raced =
      store_->RecordLoginFailure("a_alice", 5, kNow + 20min, kNow + 1min);
  ASSERT_TRUE(raced.ok()) << raced.error().message();
  EXPECT_EQ(raced->failed_attempts, 0);
  EXPECT_FALSE(raced->locked_until.has_value());
  EXPECT_EQ(store_->GetAccountByName("alice")->locked_until, kNow + 15min);
  EXPECT_EQ(store_->GetAccountByName("alice")->failed_attempts, 0);
  EXPECT_FALSE(*store_->RecordTotpStep("a_alice", 500, kNow + 14min));
  EXPECT_EQ(store_->GetAccountByName("alice")->totp_last_step, 0);
  // The lock's last second is still locked; from its end on, codes and failures count again.
  EXPECT_FALSE(*store_->RecordTotpStep("a_alice", 500, kNow + 15min - 1s));
  EXPECT_TRUE(*store_->RecordTotpStep("a_alice", 500, kNow + 15min));
  EXPECT_EQ(store_->RecordLoginFailure("a_alice", 5, kNow + 40min, kNow + 15min)->failed_attempts,
            1);
}

TEST_F(SqliteAccountsTest, ConcurrentFailuresAreAllCounted) {
  ASSERT_TRUE(store_->InsertAccount(Person("alice")).ok());
  auto other = SqliteStore::Open(path_);
  ASSERT_TRUE(other.ok());
  std::atomic<int> locks{0};
  auto hammer = [&](SqliteStore* s) {
    for (int i = 0; i < 50; ++i) {
      // Locks that end at once, so that every failure counts (a failure during a lock does not).
      Result<LoginFailureState> r = s->RecordLoginFailure("a_alice", 10, kNow, kNow);
      if (r.ok() && r->locked_until) ++locks;
    }
  };
  std::thread a(hammer, store_.get());
  std::thread b(hammer, other->get());
  a.join();
  b.join();
  EXPECT_EQ(locks.load(), 10);  // 100 failures, a lock every 10th
  EXPECT_EQ(store_->GetAccountByName("alice")->failed_attempts, 0);
}

TEST_F(SqliteAccountsTest, StateRolesPasswordAndSeedUpdates) {
  ASSERT_TRUE(store_->InsertAccount(Person("alice")).ok());
  ASSERT_TRUE(
      store_->UpdateAccountState("a_alice", AccountState::kActive, AccountState::kDisabled, kNow)
          .ok());
  Status again =
      store_->UpdateAccountState("a_alice", AccountState::kActive, AccountState::kDisabled, kNow);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(again.error().message(), "account 'alice' is disabled, not active");
  ASSERT_TRUE(store_->SetAccountRoles("a_alice", RoleSet{Role::kAdmin, Role::kAuditor}, kNow).ok());
  ASSERT_TRUE(store_->SetPasswordHash("a_alice", "$argon2id$new", false, kNow + 1s).ok());
  ASSERT_TRUE(store_->SetTotpSeed("a_alice", Bytes{9, 9, 9}, kNow + 2s).ok());
  Result<AccountRecord> got = store_->GetAccountByName("alice");
  EXPECT_EQ(got->state, AccountState::kDisabled);
  EXPECT_EQ(got->roles.ToString(), "admin,auditor");
  EXPECT_EQ(got->password_hash, "$argon2id$new");
  EXPECT_FALSE(got->must_change_password);
  EXPECT_EQ(got->totp_seed_sealed, (Bytes{9, 9, 9}));
  EXPECT_EQ(got->updated_at, kNow + 2s);
}

TEST_F(SqliteAccountsTest, BearerTokensInsertReadRevokeAndExpire) {
  ASSERT_TRUE(store_->InsertAccount(Person("alice")).ok());
  ASSERT_TRUE(store_->InsertBearerToken(Token("a_alice", 1)).ok());
  ASSERT_TRUE(store_->InsertBearerToken(Token("a_alice", 2)).ok());
  EXPECT_EQ(store_->InsertBearerToken(Token("a_alice", 1)).error().code(),
            ErrorCode::kAlreadyExists);
  EXPECT_EQ(store_->InsertBearerToken(Token("a_nobody", 3)).error().code(), ErrorCode::kNotFound);
  BearerTokenRecord short_hash = Token("a_alice", 4);
  short_hash.token_hash.resize(16);
  EXPECT_EQ(store_->InsertBearerToken(short_hash).error().code(), ErrorCode::kInvalidArgument);

  Result<BearerTokenRecord> got = store_->GetBearerToken(Bytes(32, 1));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->account_id, "a_alice");
  EXPECT_EQ(got->expires_at, kNow + 15min);
  EXPECT_FALSE(got->revoked_at.has_value());
  EXPECT_EQ(store_->GetBearerToken(Bytes(32, 7)).error().code(), ErrorCode::kNotFound);

  ASSERT_TRUE(store_->RevokeBearerToken(Bytes(32, 1), kNow + 1min).ok());
  ASSERT_TRUE(store_->RevokeBearerToken(Bytes(32, 1), kNow + 2min).ok());
  EXPECT_EQ(store_->GetBearerToken(Bytes(32, 1))->revoked_at, kNow + 1min);  // first time kept
  EXPECT_EQ(store_->RevokeBearerToken(Bytes(32, 7), kNow).error().code(), ErrorCode::kNotFound);

  Result<int64_t> revoked = store_->RevokeAccountTokens("a_alice", kNow + 3min, /*keep=*/{});
  ASSERT_TRUE(revoked.ok());
  EXPECT_EQ(*revoked, 1);  // only the one not yet revoked
  Result<int64_t> deleted = store_->DeleteExpiredBearerTokens(kNow + 16min);
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(*deleted, 2);
}

TEST_F(SqliteAccountsTest, RevokeAccountTokensCanKeepOne) {
  ASSERT_TRUE(store_->InsertAccount(Person("alice")).ok());
  ASSERT_TRUE(store_->InsertAccount(Person("bob")).ok());
  ASSERT_TRUE(store_->InsertBearerToken(Token("a_alice", 1)).ok());
  ASSERT_TRUE(store_->InsertBearerToken(Token("a_alice", 2)).ok());
  ASSERT_TRUE(store_->InsertBearerToken(Token("a_alice", 3)).ok());
  ASSERT_TRUE(store_->InsertBearerToken(Token("a_bob", 4)).ok());
  Result<int64_t> revoked = store_->RevokeAccountTokens("a_alice", kNow + 1min, Bytes(32, 2));
  ASSERT_TRUE(revoked.ok()) << revoked.error().message();
  EXPECT_EQ(*revoked, 2);
  EXPECT_TRUE(store_->GetBearerToken(Bytes(32, 1))->revoked_at.has_value());
  EXPECT_FALSE(store_->GetBearerToken(Bytes(32, 2))->revoked_at.has_value());
  EXPECT_TRUE(store_->GetBearerToken(Bytes(32, 3))->revoked_at.has_value());
  EXPECT_FALSE(store_->GetBearerToken(Bytes(32, 4))->revoked_at.has_value());
  // Another account's token as `keep` keeps nothing of this one.
  EXPECT_EQ(*store_->RevokeAccountTokens("a_alice", kNow + 2min, Bytes(32, 4)), 1);
  EXPECT_FALSE(store_->GetBearerToken(Bytes(32, 4))->revoked_at.has_value());
}

TEST_F(SqliteAccountsTest, MigrationTwoAppliesOnTopOfAVersionOneDatabase) {
  store_.reset();
  std::filesystem::remove(path_);
  const std::string v1_path = dir_ + "/v1.db";
  {
    auto v1 = SqliteStoreTestPeer::OpenWith(v1_path, Migrations().first(1));
    ASSERT_TRUE(v1.ok()) << v1.error().message();
    EXPECT_EQ((*v1)->SchemaVersion(), 1);
    KeyRecord key;
    key.id = "k_1";
    key.name = "release";
    key.algorithm = "ec-p256";
    key.owner = "local";
    key.token_label = "signet";
    key.token_serial = "01";
    key.hsm_key_id = "aa";
    key.public_key_spki = "MFkw";
    key.created_at = kNow;
    key.updated_at = kNow;
    ASSERT_TRUE((*v1)->InsertKey(key).ok());
  }
  auto upgraded = SqliteStore::Open(v1_path);
  ASSERT_TRUE(upgraded.ok()) << upgraded.error().message();
  EXPECT_EQ((*upgraded)->MigratedFrom(), 1);
  EXPECT_EQ((*upgraded)->SchemaVersion(), LatestSchemaVersion());
  Result<KeyRecord> key = (*upgraded)->GetKeyByName("release");
  ASSERT_TRUE(key.ok()) << key.error().message();
  EXPECT_EQ(key->id, "k_1");
  EXPECT_TRUE((*upgraded)->InsertAccount(Person("alice")).ok());
  EXPECT_TRUE((*upgraded)->InsertBearerToken(Token("a_alice", 1)).ok());
}

}  // namespace
}  // namespace signet::store
