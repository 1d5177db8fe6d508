#include "service/audit_sink.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "service/testing/fakes.h"
#include "store/sqlite/sqlite_store.h"

namespace signet::service {
namespace {

AuditEvent SampleEvent() {
  AuditEvent e;
  e.time = FromUnixSeconds(1'800'000'000);
  e.actor.account_id = "a_1";
  e.actor.account_name = "alice";
  e.actor.roles = store::RoleSet{store::Role::kSigner, store::Role::kAdmin};
  e.actor.auth_method = AuthMethod::kPasswordTotp;
  e.actor.client_address = "192.0.2.7:5000";
  e.action = AuditAction::kSign;
  e.object = "release";
  e.request_id = "req-1";
  e.signature = SignatureAudit{"k_1", "release", "ecdsa", "sha256", {"00ff", "ab"}};
  e.details["num_signatures"] = "2";
  return e;
}

TEST(AuditActionTest, EveryActionHasAUniqueNameThatParsesBack) {
  std::set<std::string> names;
  for (int i = 0; i <= static_cast<int>(AuditAction::kLogCheckpoint); ++i) {
    const auto action = static_cast<AuditAction>(i);
    const std::string name(AuditActionName(action));
    EXPECT_NE(name, "unknown");
    EXPECT_TRUE(names.insert(name).second) << name;
    auto parsed = ParseAuditAction(name);
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, action);
  }
  EXPECT_EQ(names.size(), 29u);
  EXPECT_EQ(AuditActionName(AuditAction::kSignRefused), "sign_refused");
  EXPECT_EQ(AuditActionName(AuditAction::kAccountResetTotp), "account_reset_totp");
  EXPECT_FALSE(ParseAuditAction("sign ").ok());
}

TEST(AuditActionTest, AuthMethodNames) {
  EXPECT_EQ(AuthMethodName(AuthMethod::kPasswordTotp), "password+totp");
  EXPECT_EQ(AuthMethodName(AuthMethod::kMtls), "mtls");
  EXPECT_EQ(AuthMethodName(AuthMethod::kLocalCli), "local-cli");
}

TEST(AuditJsonTest, CanonicalJsonHasSortedKeysAndNoWhitespace) {
  EXPECT_EQ(ToCanonicalJson(SampleEvent()),
            R"({"action":"sign","actor":{"account_id":"a_1","account_name":"alice",)"
            R"("auth_method":"password+totp","client_address":"192.0.2.7:5000",)"
            R"("roles":["admin","signer"]},"details":{"num_signatures":"2"},)"
            R"("object":"release","outcome":"success","request_id":"req-1",)"
            R"("signature":{"algorithm":"ecdsa","hash_algorithm":"sha256",)"
            R"("hashes":["00ff","ab"],"key_id":"k_1","key_name":"release"},)"
            R"("time":"2027-01-15T08:00:00Z","time_unix":1800000000})");
}

TEST(AuditJsonTest, SignatureIsOmittedWhenNotSet) {
  AuditEvent e = SampleEvent();
  e.signature.reset();
  EXPECT_FALSE(ToJson(e).contains("signature"));
}

TEST(AuditJsonTest, InvalidUtf8IsReplacedInsteadOfFailing) {
  AuditEvent e = SampleEvent();
  e.actor.account_name = std::string("bad\xff name");
  std::string json = ToCanonicalJson(e);
  EXPECT_NE(json.find("bad\xEF\xBF\xBD name"), std::string::npos);
  EXPECT_TRUE(nlohmann::json::accept(json));
}

// The canonical JSON of `event` with "index" added, as the log stores it.
std::string WithIndex(const AuditEvent& event, int64_t index) {
  nlohmann::json j = ToJson(event);
  j["index"] = index;
  return j.dump();
}

TEST(LogAuditSinkTest, AppendsCanonicalJsonWithIndexActionTimeAndQueryColumns) {
  signet::testing::MemoryStore store;
  LogAuditSink sink(DirectLogAppender(store));
  ASSERT_TRUE(sink.Record(SampleEvent()).ok());
  AuditEvent second = SampleEvent();
  second.action = AuditAction::kKeyDisable;
  second.signature.reset();
  second.details = {{"key_id", "k_9"}};
  ASSERT_TRUE(sink.Record(second).ok());

  auto rows = store.ReadLogEntries(0, 10);
  ASSERT_TRUE(rows.ok()) << rows.error().message();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].index, 0);
  EXPECT_EQ((*rows)[0].action, "sign");
  EXPECT_EQ((*rows)[0].time, SampleEvent().time);
  EXPECT_EQ((*rows)[0].key_id, "k_1");
  EXPECT_EQ((*rows)[0].account_id, "a_1");
  EXPECT_EQ((*rows)[0].data, WithIndex(SampleEvent(), 0));
  EXPECT_EQ((*rows)[1].index, 1);
  EXPECT_EQ((*rows)[1].action, "key_disable");
  EXPECT_EQ((*rows)[1].key_id, "k_9");
  EXPECT_EQ((*rows)[1].data, WithIndex(second, 1));
  // "index" sorts between "details" and "object": still canonical.
  EXPECT_NE((*rows)[1].data.find(R"("details":{"key_id":"k_9"},"index":1,"object")"),
            std::string::npos)
      << (*rows)[1].data;
}

TEST(LogAuditSinkTest, AppendFailureIsReturned) {
  LogAuditSink sink([](std::vector<store::LogEntryAppend>) -> Result<int64_t> {
    return Unavailable("disk gone");
  });
  Status s = sink.Record(SampleEvent());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(s.error().message().find("disk gone"), std::string::npos);
  EXPECT_NE(s.error().message().find("'sign'"), std::string::npos);
}

// ---- RecordChange: a change and its entry, together or not at all ----

// A real SQLite store in a fresh folder, with one active key "k_1".
class RecordChangeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/signet-record-change-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    store_ = Open();
    ASSERT_NE(store_, nullptr);
    ASSERT_TRUE(store_->InsertKey(Key()).ok());
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::unique_ptr<store::SqliteStore> Open() {
    auto s = store::SqliteStore::Open(dir_ + "/signet.db");
    EXPECT_TRUE(s.ok()) << s.error().message();
    return s.ok() ? std::move(*s) : nullptr;
  }
  static store::KeyRecord Key() {
    store::KeyRecord key;
    key.id = "k_1";
    key.name = "release";
    key.algorithm = "ecdsa-p256";
    key.owner = "local";
    key.hsm_key_id = "01";
    key.public_key_spki = "spki";
    return key;
  }
  static AuditEvent DisableEvent() {
    AuditEvent e = SampleEvent();
    e.action = AuditAction::kKeyDisable;
    e.signature.reset();
    e.details = {{"key_id", "k_1"}};
    return e;
  }
  AuditedChange Disable() {
    return [this](AuditDetails& details) -> Status {
      SIGNET_TRY(store_->UpdateKeyState("k_1", store::KeyState::kActive, store::KeyState::kDisabled,
                                        FromUnixSeconds(1)));
      details["done_inside"] = "yes";
      return OkStatus();
    };
  }
  std::string dir_;
  std::unique_ptr<store::SqliteStore> store_;
};

TEST_F(RecordChangeTest, ChangeAndEntryCommitTogetherWithTheDetailsTheChangeAdded) {
  LogAuditSink sink(DirectLogAppender(*store_));
  ASSERT_TRUE(sink.RecordChange(DisableEvent(), Disable()).ok());
  EXPECT_EQ(store_->GetKeyById("k_1")->state, store::KeyState::kDisabled);
  auto rows = store_->ReadLogEntries(0, 10);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  AuditEvent want = DisableEvent();
  want.details["done_inside"] = "yes";
  EXPECT_EQ((*rows)[0].data, WithIndex(want, 0));
  EXPECT_EQ((*rows)[0].key_id, "k_1");
}

TEST_F(RecordChangeTest, ARefusedChangeIsReturnedAsItIsAndLogsNothing) {
  LogAuditSink sink(DirectLogAppender(*store_));
  ASSERT_TRUE(sink.RecordChange(DisableEvent(), Disable()).ok());
  Status again = sink.RecordChange(DisableEvent(), Disable());
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), ErrorCode::kFailedPrecondition);
  // The store's own words, without the log's context: the caller explains the refusal.
  EXPECT_EQ(again.error().message().find("cannot record audit event"), std::string::npos)
      << again.error().message();
  EXPECT_EQ(*store_->LogSize(), 1);
}

TEST_F(RecordChangeTest, WhenTheEntryCannotBeWrittenTheChangeIsNotMadeEither) {
  // The append fails after the change ran, inside the same transaction (the render fails).
  LogAuditSink sink([this](std::vector<store::LogEntryAppend> entries) {
    entries[0].render = [](int64_t) -> Result<std::string> { return Unavailable("disk gone"); };
    return store_->AppendLogEntries(entries);
  });
  Status s = sink.RecordChange(DisableEvent(), Disable());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(s.error().message().find("'key_disable'"), std::string::npos) << s.error().message();
  EXPECT_EQ(store_->GetKeyById("k_1")->state, store::KeyState::kActive);
  EXPECT_EQ(*store_->LogSize(), 0);
}

TEST_F(RecordChangeTest, AProcessThatDiesBetweenChangeAndEntryLeavesNeither) {
  // The child makes the change, then dies while its entry is being written: the old order
  // (change committed, then logged) would leave the key disabled with no entry saying so.
  store_.reset();  // no SQLite connection crosses the fork
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto store = Open();
    if (store == nullptr) ::_exit(3);
    LogAuditSink sink([&](std::vector<store::LogEntryAppend> entries) {
      entries[0].render = [&](int64_t) -> Result<std::string> {
        // The change is made (in this transaction) when the process dies.
        if (store->GetKeyById("k_1")->state != store::KeyState::kDisabled) ::_exit(4);
        ::_exit(0);
      };
      return store->AppendLogEntries(entries);
    });
    (void)sink.RecordChange(DisableEvent(), [&](AuditDetails&) {
      return store->UpdateKeyState("k_1", store::KeyState::kActive, store::KeyState::kDisabled,
                                   FromUnixSeconds(1));
    });
    ::_exit(5);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0) << "the child did not die where it should";
  store_.reset();
  store_ = Open();
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(store_->GetKeyById("k_1")->state, store::KeyState::kActive);
  EXPECT_EQ(*store_->LogSize(), 0);
}

TEST_F(RecordChangeTest, AnEventWithASignatureCarriesNoChange) {
  LogAuditSink sink(DirectLogAppender(*store_));
  Status s = sink.RecordChange(SampleEvent(), Disable());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(store_->GetKeyById("k_1")->state, store::KeyState::kActive);
}

// ---- RecordIf: an event recorded only if a check passes in its own transaction ----

AuditCheck KeyIsActive(store::Store& store) {
  return [&store]() -> Status {
    SIGNET_ASSIGN_OR_RETURN(store::KeyRecord key, store.GetKeyById("k_1"));
    if (key.state != store::KeyState::kActive) return FailedPrecondition("key is not active");
    return OkStatus();
  };
}

TEST_F(RecordChangeTest, RecordIfAppendsEveryPartOfTheEventWhenTheCheckPasses) {
  LogAuditSink sink(DirectLogAppender(*store_));
  AuditEvent big = SampleEvent();
  big.signature->hashes.assign(3000, std::string(64, 'b'));  // several entries
  const size_t parts = ToLogEntries(big).size();
  ASSERT_GT(parts, 1u);
  int runs = 0;
  ASSERT_TRUE(sink.RecordIf(big,
                            [&]() -> Status {
                              ++runs;
                              return KeyIsActive(*store_)();
                            })
                  .ok());
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(*store_->LogSize(), static_cast<int64_t>(parts));
}

TEST_F(RecordChangeTest, RecordIfRefusedByItsCheckLogsNothingAndSaysWhy) {
  LogAuditSink sink(DirectLogAppender(*store_));
  ASSERT_TRUE(sink.RecordChange(DisableEvent(), Disable()).ok());
  AuditEvent big = SampleEvent();
  big.signature->hashes.assign(3000, std::string(64, 'b'));
  Status s = sink.RecordIf(big, KeyIsActive(*store_));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(s.error().message(), "key is not active");
  EXPECT_EQ(*store_->LogSize(), 1);  // the disable alone, no part of the event
}

TEST_F(RecordChangeTest, RecordIfWhoseEntryCannotBeWrittenIsTheLogsFailureNotARefusal) {
  LogAuditSink sink([this](std::vector<store::LogEntryAppend> entries) {
    entries[0].render = [](int64_t) -> Result<std::string> {
      return InvalidArgument("the log refused the bytes");
    };
    return store_->AppendLogEntries(entries);
  });
  Status s = sink.RecordIf(SampleEvent(), KeyIsActive(*store_));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("cannot record audit event 'sign'"), std::string::npos)
      << s.error().message();
  EXPECT_EQ(*store_->LogSize(), 0);
}

// 5000 SHA-512 hashes (640 KB of hex) cannot be one tlog-tiles entry: they are split into
// consecutive parts, each within the limit, that together hold every hash once, in order.
TEST(LogAuditSinkTest, LargeSignatureEventsAreSplitIntoParts) {
  AuditEvent e = SampleEvent();
  e.signature->hash_algorithm = "sha512";
  e.signature->hashes.clear();
  for (int i = 0; i < 5000; ++i) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%08x", i);
    e.signature->hashes.push_back(std::string(buf) + std::string(120, 'a'));
  }
  std::vector<store::LogEntryAppend> entries = ToLogEntries(e);
  ASSERT_GT(entries.size(), 9u);
  std::vector<std::string> seen;
  for (size_t p = 0; p < entries.size(); ++p) {
    auto text = entries[p].render(static_cast<int64_t>(1'000'000'000'000 + p));
    ASSERT_TRUE(text.ok());
    EXPECT_LE(text->size(), store::kMaxLogEntrySize);
    auto j = nlohmann::json::parse(*text);
    EXPECT_EQ(j.dump(), *text);  // canonical
    EXPECT_EQ(j["signature"]["hashes_part"], p + 1);
    EXPECT_EQ(j["signature"]["hashes_parts"], entries.size());
    EXPECT_EQ(j["signature"]["hashes_total"], 5000);
    EXPECT_EQ(j["action"], "sign");
    EXPECT_EQ(entries[p].key_id, "k_1");
    for (const auto& h : j["signature"]["hashes"]) seen.push_back(h.get<std::string>());
  }
  EXPECT_EQ(seen, e.signature->hashes);
}

// A client-chosen name of a megabyte (bodies may be that large) is cut, so the refusal that
// records it still fits in one entry.
TEST(LogAuditSinkTest, HugeClientTextIsCutNotRefused) {
  AuditEvent e = SampleEvent();
  e.action = AuditAction::kSignRefused;
  e.object = std::string(1 << 20, 'x');
  e.details["error"] = std::string(1 << 20, 'y');
  // The outcome is the refusal's message, which may quote the client (a 70 KB credentialID).
  e.outcome = "unknown credential '" + std::string(70'000, 'z') + "'";
  e.signature->hash_algorithm = std::string(1 << 20, 'h');
  e.signature->hashes = {std::string(1 << 20, 'a')};
  std::vector<store::LogEntryAppend> entries = ToLogEntries(e);
  ASSERT_EQ(entries.size(), 1u);
  auto text = entries[0].render(7);
  ASSERT_TRUE(text.ok()) << text.error().message();
  EXPECT_LE(text->size(), 6 * kMaxAuditFieldSize + 1024);
  EXPECT_NE(text->find("(cut, 1048576 bytes)"), std::string::npos);
}

TEST(LogAuditSinkTest, CheckpointEntry) {
  store::LogCheckpointRow row;
  row.size = 42;
  row.root = Bytes(32, 0x11);
  row.note = "signet.example/t\n42\nERERERERERERERERERERERERERERERERERERERERERE=\n\n- sig\n";
  row.time = FromUnixSeconds(1'800'000'000);
  auto text = RenderCheckpointEntry(50, row, "signet.example/t");
  ASSERT_TRUE(text.ok());
  auto j = nlohmann::json::parse(*text);
  EXPECT_EQ(j.dump(), *text);
  EXPECT_EQ(j["index"], 50);
  EXPECT_EQ(j["action"], "log_checkpoint");
  EXPECT_EQ(j["object"], "signet.example/t");
  EXPECT_EQ(j["details"]["checkpoint"], row.note);
  EXPECT_EQ(j["details"]["size"], "42");
  EXPECT_EQ(j["details"]["root"], "ERERERERERERERERERERERERERERERERERERERERERE=");
  EXPECT_EQ(j["actor"]["auth_method"], "system");
}

}  // namespace
}  // namespace signet::service
