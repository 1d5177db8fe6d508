#include "service/audit_sink.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "service/testing/fakes.h"

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
  for (int i = 0; i <= static_cast<int>(AuditAction::kServiceStop); ++i) {
    const auto action = static_cast<AuditAction>(i);
    const std::string name(AuditActionName(action));
    EXPECT_NE(name, "unknown");
    EXPECT_TRUE(names.insert(name).second) << name;
    auto parsed = ParseAuditAction(name);
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, action);
  }
  EXPECT_EQ(names.size(), 28u);
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

TEST(StoreAuditSinkTest, AppendsCanonicalJsonWithActionAndTime) {
  signet::testing::MemoryStore store;
  StoreAuditSink sink(store);
  ASSERT_TRUE(sink.Record(SampleEvent()).ok());
  auto rows = store.ListAuditEvents(0, 10);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].action, "sign");
  EXPECT_EQ((*rows)[0].time, SampleEvent().time);
  EXPECT_EQ((*rows)[0].json, ToCanonicalJson(SampleEvent()));
}

TEST(StoreAuditSinkTest, StoreFailureIsReturned) {
  signet::testing::MemoryStore store;
  StoreAuditSink sink(store);
  store.FailNextAuditAppend(Unavailable("disk gone"));
  Status s = sink.Record(SampleEvent());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(s.error().message().find("disk gone"), std::string::npos);
  EXPECT_TRUE(store.ListAuditEvents(0, 10)->empty());
}

}  // namespace
}  // namespace signet::service
