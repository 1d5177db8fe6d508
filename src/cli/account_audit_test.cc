#include "cli/account_audit.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <vector>

#include "store/sqlite/sqlite_store.h"

namespace signet::cli {
namespace {

using service::AccountAction;
using service::AccountEvent;
using service::AccountReason;
using service::AuditAction;
using service::AuthMethod;

class RecordingSink final : public service::AuditSink {
 public:
  Status Record(const service::AuditEvent& event) override {
    events.push_back(event);
    return OkStatus();
  }
  Status RecordChange(const service::AuditEvent& event,
                      const service::AuditedChange& change) override {
    std::map<std::string, std::string> added;
    SIGNET_TRY(change(added));
    service::AuditEvent recorded = event;
    for (auto& [k, v] : added) recorded.details[k] = std::move(v);
    events.push_back(std::move(recorded));
    return OkStatus();
  }
  // Not atomic here (no transaction to run the check in); the check's effect is what is tested.
  Status RecordIf(const service::AuditEvent& event, const service::AuditCheck& check) override {
    SIGNET_TRY(check());
    return Record(event);
  }
  std::vector<service::AuditEvent> events;
};

class AccountAuditTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/signet-account-audit-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto s = store::SqliteStore::Open(dir_ + "/t.db");
    ASSERT_TRUE(s.ok()) << s.error().message();
    store_ = std::move(*s);
  }
  void TearDown() override {
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string dir_;
  std::unique_ptr<store::SqliteStore> store_;
};

TEST_F(AccountAuditTest, LoginFailureKeepsReasonAndLock) {
  AccountEvent e;
  e.time = FromUnixSeconds(1700000000);
  e.action = AccountAction::kLockout;
  e.reason = AccountReason::kWrongPassword;
  e.actor_id = "a_1";
  e.actor_name = "alice";
  e.auth_method = "password+totp";
  e.client_address = "127.0.0.1:5";
  e.request_id = "0123456789abcdef0123456789abcdef";
  e.object = "alice";
  e.locked_until = FromUnixSeconds(1700000900);
  auto a = ToAuditEvent(e, store_.get());
  EXPECT_EQ(a.request_id, "0123456789abcdef0123456789abcdef");
  EXPECT_EQ(a.action, AuditAction::kLockout);
  EXPECT_EQ(a.outcome, "wrong_password");
  EXPECT_EQ(a.actor.auth_method, AuthMethod::kPasswordTotp);
  EXPECT_EQ(a.actor.account_name, "alice");
  EXPECT_EQ(a.actor.client_address, "127.0.0.1:5");
  EXPECT_EQ(a.object, "alice");
  EXPECT_EQ(a.details.at("locked_until"), FormatRfc3339(FromUnixSeconds(1700000900)));
}

TEST_F(AccountAuditTest, TokenRejectedBecomesLoginFailure) {
  AccountEvent e;
  e.action = AccountAction::kTokenRejected;
  e.reason = AccountReason::kTokenExpired;
  e.auth_method = "bearer";
  auto a = ToAuditEvent(e, store_.get());
  EXPECT_EQ(a.action, AuditAction::kLoginFailure);
  EXPECT_EQ(a.outcome, "token_expired");
  EXPECT_EQ(a.details.at("account_action"), "token_rejected");
  EXPECT_EQ(a.details.at("credential"), "bearer");
  // A token no account holds, and a login refused before any credential, proved nothing: not
  // signet's own "system".
  EXPECT_EQ(a.actor.auth_method, AuthMethod::kNone);
  AccountEvent refused_login;
  refused_login.action = AccountAction::kLoginFailure;
  refused_login.reason = AccountReason::kInvalidArgument;
  refused_login.auth_method = "";
  EXPECT_EQ(ToAuditEvent(refused_login, store_.get()).actor.auth_method, AuthMethod::kNone);
  EXPECT_EQ(service::AuthMethodName(AuthMethod::kNone), "none");
}

TEST_F(AccountAuditTest, BearerActorGetsItsAccountsLoginMethod) {
  store::AccountRecord svc;
  svc.id = "a_svc";
  svc.name = "builder";
  svc.kind = store::AccountKind::kService;
  svc.mtls_fingerprint = std::string(64, 'a');
  ASSERT_TRUE(store_->InsertAccount(svc).ok());
  AccountEvent e;
  e.action = AccountAction::kAccountCreate;
  e.reason = AccountReason::kSuccess;
  e.actor_id = "a_svc";
  e.auth_method = "bearer";
  e.object = "bob";
  auto a = ToAuditEvent(e, store_.get());
  EXPECT_EQ(a.action, AuditAction::kAccountCreate);
  EXPECT_TRUE(a.succeeded());
  EXPECT_EQ(a.actor.auth_method, AuthMethod::kMtls);
}

TEST_F(AccountAuditTest, SinkRecordsThenCallsHook) {
  RecordingSink audit;
  int hooked = 0;
  auto sink = MakeAccountAuditSink(*store_, audit, [&](const AccountEvent&) { ++hooked; });
  AccountEvent e;
  e.action = AccountAction::kAccountChange;
  e.auth_method = "system";
  ASSERT_TRUE(sink(e, {}).ok());
  ASSERT_EQ(audit.events.size(), 1u);
  EXPECT_EQ(audit.events[0].action, AuditAction::kAccountChange);
  EXPECT_EQ(audit.events[0].actor.auth_method, AuthMethod::kSystem);
  EXPECT_EQ(hooked, 1);
}

}  // namespace
}  // namespace signet::cli
