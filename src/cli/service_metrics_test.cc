#include "cli/service_metrics.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "cli/account_audit.h"
#include "common/encoding.h"
#include "pki/pki.h"
#include "service/accounts.h"
#include "service/adapters/argon2_password_hasher.h"
#include "service/adapters/oath_totp.h"
#include "service/key_service.h"
#include "service/signing.h"
#include "service/testing/fakes.h"

namespace signet::cli {
namespace {

using namespace std::chrono_literals;
using service::AuditAction;
using service::AuditEvent;

// Records into a vector, or fails every call when `fail` is set.
class RecordingSink final : public service::AuditSink {
 public:
  Status Record(const AuditEvent& event) override {
    if (fail) return Unavailable("the audit store is down");
    events.push_back(event);
    return OkStatus();
  }
  Status RecordChange(const AuditEvent& event, const service::AuditedChange& change) override {
    if (fail) return Unavailable("the audit store is down");
    SIGNET_ASSIGN_OR_RETURN(AuditEvent recorded, signet::testing::MakeChange(event, change));
    events.push_back(std::move(recorded));
    return OkStatus();
  }
  // Not atomic here (no transaction to run the check in); the check's effect is what is tested.
  Status RecordIf(const service::AuditEvent& event, const service::AuditCheck& check) override {
    SIGNET_TRY(check());
    return Record(event);
  }
  bool fail = false;
  std::vector<AuditEvent> events;
};

// A KeyStore whose every call fails with `code`.
class BrokenKeyStore final : public hsm::KeyStore {
 public:
  explicit BrokenKeyStore(ErrorCode code) : code_(code) {}
  Result<hsm::GeneratedKey> GenerateKey(KeyAlgorithm, std::string_view) override { return E(); }
  Result<Bytes> PublicKey(const hsm::HsmKeyId&) override { return E(); }
  Result<Bytes> Sign(const hsm::HsmKeyId&, SignatureScheme, HashAlgorithm, ByteView) override {
    return E();
  }
  Result<hsm::KeyProtection> Protection(const hsm::HsmKeyId&) override { return E(); }
  Status DestroyKey(const hsm::HsmKeyId&) override { return E(); }
  Result<hsm::TokenDescription> DescribeToken() override { return E(); }
  Result<std::vector<hsm::TokenKey>> ListKeys() override { return E(); }

 private:
  Error E() const { return Error(code_, "module failure"); }
  ErrorCode code_;
};

AuditEvent SignEvent(AuditAction action, std::string key_name, std::string object, size_t hashes) {
  AuditEvent e;
  e.action = action;
  e.object = std::move(object);
  e.signature = service::SignatureAudit{};
  e.signature->key_name = std::move(key_name);
  for (size_t i = 0; i < hashes; ++i) e.signature->hashes.push_back(std::string(64, 'a'));
  return e;
}

AuditEvent Refused(AuditEvent e, std::string message, ErrorCode code) {
  e.outcome = std::move(message);
  e.details["error"] = std::string(ErrorCodeName(code));
  return e;
}

class MetricsAuditSinkTest : public ::testing::Test {
 protected:
  MetricsAuditSinkTest() : sink_(inner_, &store_, metrics_) {
    DeclareServiceMetrics(metrics_);
    store::KeyRecord key;
    key.id = "k_0123";
    key.name = "release";
    key.algorithm = "ec-p256";
    EXPECT_TRUE(store_.InsertKey(key).ok());
  }

  double V(std::string_view name, const server::Labels& labels = {}) {
    return metrics_.Value(name, labels);
  }

  RecordingSink inner_;
  signet::testing::MemoryStore store_;
  server::Metrics metrics_;
  MetricsAuditSink sink_;
};

TEST_F(MetricsAuditSinkTest, CountsSignedHashesByKeyAfterRecording) {
  ASSERT_TRUE(sink_.Record(SignEvent(AuditAction::kSign, "release", "release", 3)).ok());
  ASSERT_EQ(inner_.events.size(), 1u);
  EXPECT_EQ(V("signet_signatures_total", {{"key", "release"}, {"outcome", "success"}}), 3);
  EXPECT_EQ(V("signet_sign_requests_total", {{"key", "release"}, {"outcome", "success"}}), 1);
  EXPECT_EQ(V("signet_audit_events_total", {{"action", "sign"}}), 1);
}

TEST_F(MetricsAuditSinkTest, CountsNothingWhenTheInnerSinkFails) {
  inner_.fail = true;
  Status s = sink_.Record(SignEvent(AuditAction::kSign, "release", "release", 2));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(V("signet_signatures_total", {{"key", "release"}, {"outcome", "success"}}), 0);
  EXPECT_EQ(V("signet_audit_events_total", {{"action", "sign"}}), 0);
  EXPECT_EQ(V("signet_audit_failures_total", {{"action", "sign"}}), 1);
}

TEST_F(MetricsAuditSinkTest, RefusalIsLabelledByErrorCodeNeverByMessage) {
  const std::string client_text = "evil\"label\nvalue";
  ASSERT_TRUE(sink_
                  .Record(Refused(SignEvent(AuditAction::kSignRefused, "", client_text, 1),
                                  "hash " + client_text + " is not authorized by the SAD",
                                  ErrorCode::kPermissionDenied))
                  .ok());
  EXPECT_EQ(V("signet_signatures_total", {{"key", "unknown"}, {"outcome", "permission_denied"}}),
            1);
  EXPECT_EQ(metrics_.RenderPrometheus().find("evil"), std::string::npos);
}

TEST_F(MetricsAuditSinkTest, RefusalBeforeKeyResolutionNamesAnExistingKeyByIdOrName) {
  ASSERT_TRUE(sink_
                  .Record(Refused(SignEvent(AuditAction::kSignRefused, "", "k_0123", 1), "no grant",
                                  ErrorCode::kPermissionDenied))
                  .ok());
  ASSERT_TRUE(sink_
                  .Record(Refused(SignEvent(AuditAction::kSignRefused, "", "release", 2),
                                  "no grant", ErrorCode::kPermissionDenied))
                  .ok());
  EXPECT_EQ(V("signet_signatures_total", {{"key", "release"}, {"outcome", "permission_denied"}}),
            3);
  EXPECT_EQ(V("signet_sign_requests_total", {{"key", "release"}, {"outcome", "permission_denied"}}),
            2);
}

TEST_F(MetricsAuditSinkTest, UnknownErrorTextBecomesOther) {
  AuditEvent e = SignEvent(AuditAction::kSignRefused, "release", "release", 1);
  e.outcome = "something new";
  e.details["error"] = "not-a-code";
  ASSERT_TRUE(sink_.Record(e).ok());
  EXPECT_EQ(V("signet_signatures_total", {{"key", "release"}, {"outcome", "other"}}), 1);
}

TEST_F(MetricsAuditSinkTest, CountsAuthorizationsByOutcome) {
  ASSERT_TRUE(sink_.Record(SignEvent(AuditAction::kAuthorize, "release", "release", 1)).ok());
  ASSERT_TRUE(
      sink_
          .Record(Refused(SignEvent(AuditAction::kAuthorizeRefused, "release", "release", 1),
                          "key 'release' is disabled", ErrorCode::kFailedPrecondition))
          .ok());
  EXPECT_EQ(V("signet_authorizations_total", {{"outcome", "success"}}), 1);
  EXPECT_EQ(V("signet_authorizations_total", {{"outcome", "failed_precondition"}}), 1);
}

TEST_F(MetricsAuditSinkTest, CountsLoginsFailuresAndLockoutsButNotTokenRejections) {
  auto login = [](AuditAction action, std::string outcome) {
    AuditEvent e;
    e.action = action;
    e.actor.auth_method = service::AuthMethod::kPasswordTotp;
    e.outcome = std::move(outcome);
    return e;
  };
  ASSERT_TRUE(sink_.Record(login(AuditAction::kLoginFailure, "wrong_password")).ok());
  ASSERT_TRUE(sink_.Record(login(AuditAction::kLockout, "totp_replayed")).ok());
  ASSERT_TRUE(sink_.Record(login(AuditAction::kLoginSuccess, "success")).ok());
  AuditEvent rejected = login(AuditAction::kLoginFailure, "token_expired");
  rejected.details["account_action"] = "token_rejected";
  ASSERT_TRUE(sink_.Record(rejected).ok());
  AuditEvent unbound = login(AuditAction::kLoginFailure, "certificate_mismatch");
  unbound.actor.auth_method = service::AuthMethod::kMtls;
  unbound.details["account_action"] = "token_rejected";
  ASSERT_TRUE(sink_.Record(unbound).ok());

  // Outcomes only, never the reason: these counters answer anyone.
  EXPECT_EQ(V("signet_bearer_token_rejections_total"), 2);
  // The lockout follows the failure that caused it and is not a second attempt.
  EXPECT_EQ(V("signet_logins_total", {{"method", "password+totp"}, {"outcome", "failure"}}), 1);
  EXPECT_EQ(V("signet_logins_total", {{"method", "password+totp"}, {"outcome", "success"}}), 1);
  EXPECT_EQ(V("signet_login_failures_total"), 1);
  EXPECT_EQ(V("signet_lockouts_total"), 1);
  const std::string text = metrics_.RenderPrometheus();
  for (const char* reason :
       {"wrong_password", "totp_replayed", "token_expired", "certificate_mismatch", "reason="}) {
    EXPECT_EQ(text.find(reason), std::string::npos) << reason << " in\n" << text;
  }
}

// An entry that stands for anonymous rejections not logged one by one (RejectionThrottle) counts
// as that many attempts: a flood must not vanish from the counters alerts are built on.
TEST_F(MetricsAuditSinkTest, ACountedEntryCountsAsTheAttemptsItStandsFor) {
  AuditEvent held;
  held.action = AuditAction::kLoginFailure;
  held.details["account_action"] = "token_rejected";
  held.details["not_logged_one_by_one"] = "9940";
  ASSERT_TRUE(sink_.Record(held).ok());
  EXPECT_EQ(V("signet_bearer_token_rejections_total"), 9940);
  AuditEvent refused;
  refused.action = AuditAction::kLoginFailure;
  refused.details["not_logged_one_by_one"] = "17";
  ASSERT_TRUE(sink_.Record(refused).ok());
  EXPECT_EQ(V("signet_login_failures_total"), 17);
  refused.details["not_logged_one_by_one"] = "garbage";
  ASSERT_TRUE(sink_.Record(refused).ok());
  EXPECT_EQ(V("signet_login_failures_total"), 18);
}

TEST_F(MetricsAuditSinkTest, UnlabelledCountersAreExportedFromTheStart) {
  const std::string text = metrics_.RenderPrometheus();
  EXPECT_NE(text.find("\nsignet_login_failures_total 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE signet_hsm_errors_total counter"), std::string::npos);
}

// A change the store refuses is the caller's answer; a failure while changing is the log's.
TEST(MetricsAuditSinkChangeTest, ARefusedChangeIsNotAnAuditFailureButAStoreFailureIs) {
  server::Metrics metrics;
  signet::testing::MemoryStore store;
  service::LogAuditSink log(service::DirectLogAppender(store));
  MetricsAuditSink sink(log, &store, metrics);
  AuditEvent event;
  event.action = service::AuditAction::kGrant;
  const server::Labels labels = {{"action", "grant"}};

  Status refused = sink.RecordChange(
      event, [](service::AuditDetails&) { return FailedPrecondition("key is destroyed"); });
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(refused.error().message(), "key is destroyed");
  EXPECT_EQ(metrics.Value("signet_audit_failures_total", labels), 0);

  Status broken = sink.RecordChange(
      event, [](service::AuditDetails&) { return ResourceExhausted("disk full"); });
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.error().message().find("cannot record audit event 'grant'"), std::string::npos)
      << broken.error().message();
  EXPECT_EQ(metrics.Value("signet_audit_failures_total", labels), 1);

  ASSERT_TRUE(sink.RecordChange(event, [](service::AuditDetails&) { return OkStatus(); }).ok());
  EXPECT_EQ(metrics.Value("signet_audit_events_total", labels), 1);
  EXPECT_EQ(*store.LogSize(), 1);
}

// The decorator relies on what SigningService puts in its events (key name once resolved,
// details["error"]); this drives the real service so a change there shows up here.
TEST(MetricsAuditSinkServiceTest, CountsWhatTheSigningServiceRecords) {
  server::Metrics metrics;
  RecordingSink inner;
  signet::testing::MemoryStore store;
  signet::testing::FakeKeyStore keys;
  FakeClock clock(FromUnixSeconds(1700000000));
  MetricsAuditSink sink(inner, &store, metrics);
  service::KeyService key_service(keys, store, clock, sink, {"fake", "1"});
  service::SigningService signing(keys, store, clock, sink);

  auto key = key_service.CreateKey(service::Actor{}, "release", KeyAlgorithm::kEcP256, "admin");
  ASSERT_TRUE(key.ok());
  service::Caller admin;
  admin.actor.account_id = "a_admin";
  admin.actor.roles = store::RoleSet{store::Role::kAdmin};
  ASSERT_TRUE(signing.Grant(admin, "release", "a_signer").ok());
  service::Caller signer;
  signer.actor.account_id = "a_signer";
  signer.actor.roles = store::RoleSet{store::Role::kSigner};
  service::Caller stranger;
  stranger.actor.account_id = "a_stranger";
  stranger.actor.roles = store::RoleSet{store::Role::kSigner};
  ASSERT_TRUE(signet::testing::InsertCallerAccount(store, signer, clock.Now()).ok());

  const std::vector<Bytes> hashes = {*pki::ComputeDigest(HashAlgorithm::kSha256, AsBytes("one")),
                                     *pki::ComputeDigest(HashAlgorithm::kSha256, AsBytes("two"))};
  auto sad = signing.Authorize(signer, key->id, HashAlgorithm::kSha256, hashes, 2);
  ASSERT_TRUE(sad.ok()) << sad.error().message();
  ASSERT_TRUE(signing
                  .SignHash(signer, key->id, sad->sad, hashes, SignatureScheme::kEcdsa,
                            HashAlgorithm::kSha256)
                  .ok());
  // Again: both hashes are used up.
  ASSERT_FALSE(signing
                   .SignHash(signer, key->id, sad->sad, hashes, SignatureScheme::kEcdsa,
                             HashAlgorithm::kSha256)
                   .ok());
  // No grant: refused before the service resolves the key.
  ASSERT_FALSE(signing
                   .SignHash(stranger, "release", sad->sad, hashes, SignatureScheme::kEcdsa,
                             HashAlgorithm::kSha256)
                   .ok());
  ASSERT_FALSE(signing
                   .SignHash(signer, "no-such-key", sad->sad, hashes, SignatureScheme::kEcdsa,
                             HashAlgorithm::kSha256)
                   .ok());

  EXPECT_EQ(metrics.Value("signet_signatures_total", {{"key", "release"}, {"outcome", "success"}}),
            2);
  EXPECT_EQ(metrics.Value("signet_signatures_total",
                          {{"key", "release"}, {"outcome", "permission_denied"}}),
            4);
  EXPECT_EQ(metrics.Value("signet_signatures_total",
                          {{"key", "unknown"}, {"outcome", "permission_denied"}}),
            2);
  EXPECT_EQ(metrics.Value("signet_authorizations_total", {{"outcome", "success"}}), 1);
}

// Likewise for AccountService through the account_audit adapter: failures, the lockout, and the
// bearer-token rejections that the adapter records as login_failure.
TEST(MetricsAuditSinkServiceTest, CountsWhatTheAccountServiceRecords) {
  server::Metrics metrics;
  RecordingSink inner;
  signet::testing::MemoryStore store;
  signet::testing::FakeSecretSealer sealer;
  service::Argon2PasswordHasher hasher({.iterations = 1, .memory_kib = 64, .parallelism = 1});
  service::OathTotp totp;
  FakeClock clock(FromUnixSeconds(1700000000));
  MetricsAuditSink sink(inner, &store, metrics);
  service::AccountService accounts(store, sealer, hasher, totp, clock, {},
                                   MakeAccountAuditSink(store, sink));
  auto alice = accounts.CreatePerson(service::SystemPrincipal(), "alice", {store::Role::kSigner});
  ASSERT_TRUE(alice.ok());
  const SecretBytes wrong("not the password");
  for (int i = 0; i < 5; ++i) {
    ASSERT_FALSE(accounts.LoginWithPassword("alice", wrong, "000000", {"192.0.2.1:1"}).ok());
  }
  ASSERT_FALSE(accounts.Authenticate(std::string(43, 'x')).ok());

  EXPECT_EQ(metrics.Value("signet_login_failures_total"), 5);
  EXPECT_EQ(metrics.Value("signet_lockouts_total"), 1);
  EXPECT_EQ(
      metrics.Value("signet_logins_total", {{"method", "password+totp"}, {"outcome", "failure"}}),
      5);
  EXPECT_EQ(metrics.Value("signet_bearer_token_rejections_total"), 1);
}

// ---- MetricsKeyStore, MetricsSecretSealer ----

TEST(MetricsKeyStoreTest, PassesResultsThroughAndCountsOperations) {
  server::Metrics metrics;
  signet::testing::FakeKeyStore inner;
  MetricsKeyStore keys(inner, metrics);
  auto key = keys.GenerateKey(KeyAlgorithm::kEcP256, "k");
  ASSERT_TRUE(key.ok());
  const Bytes digest = *pki::ComputeDigest(HashAlgorithm::kSha256, AsBytes("data"));
  auto sig = keys.Sign(key->id, SignatureScheme::kEcdsa, HashAlgorithm::kSha256, digest);
  ASSERT_TRUE(sig.ok());
  EXPECT_TRUE(signet::testing::VerifyWithPublicKey(Base64Encode(key->public_key_spki),
                                                   SignatureScheme::kEcdsa, HashAlgorithm::kSha256,
                                                   digest, *sig));
  EXPECT_EQ(metrics.Value("signet_hsm_operations_total", {{"operation", "generate_key"}}), 1);
  EXPECT_EQ(metrics.Value("signet_hsm_operations_total", {{"operation", "sign"}}), 1);
  EXPECT_EQ(
      metrics.Value("signet_hsm_errors_total", {{"operation", "sign"}, {"code", "not_found"}}), 0);

  auto missing = keys.Sign(hsm::HsmKeyId{Bytes{1, 2, 3}}, SignatureScheme::kEcdsa,
                           HashAlgorithm::kSha256, digest);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(metrics.Value("signet_hsm_operations_total", {{"operation", "sign"}}), 2);
  EXPECT_EQ(metrics.Value("signet_hsm_errors_total",
                          {{"operation", "sign"},
                           {"code", std::string(ErrorCodeName(missing.error().code()))}}),
            1);
}

TEST(MetricsKeyStoreTest, CountsEveryOperationsErrorsByCode) {
  server::Metrics metrics;
  BrokenKeyStore inner(ErrorCode::kUnavailable);
  MetricsKeyStore keys(inner, metrics);
  const hsm::HsmKeyId id{Bytes{1}};
  const Bytes digest(32, 0);
  EXPECT_EQ(keys.GenerateKey(KeyAlgorithm::kEcP256, "k").error().code(), ErrorCode::kUnavailable);
  EXPECT_FALSE(keys.PublicKey(id).ok());
  EXPECT_FALSE(keys.Sign(id, SignatureScheme::kEcdsa, HashAlgorithm::kSha256, digest).ok());
  EXPECT_FALSE(keys.Protection(id).ok());
  EXPECT_FALSE(keys.DestroyKey(id).ok());
  EXPECT_FALSE(keys.DescribeToken().ok());
  for (const char* op :
       {"generate_key", "public_key", "sign", "protection", "destroy_key", "describe_token"}) {
    EXPECT_EQ(
        metrics.Value("signet_hsm_errors_total", {{"operation", op}, {"code", "unavailable"}}), 1)
        << op;
    EXPECT_EQ(metrics.Value("signet_hsm_operations_total", {{"operation", op}}), 1) << op;
  }
}

TEST(MetricsSecretSealerTest, CountsSealsUnsealsAndIntegrityFailures) {
  server::Metrics metrics;
  signet::testing::FakeSecretSealer inner;
  MetricsSecretSealer sealer(inner, metrics);
  auto sealed = sealer.Seal(AsBytes("seed"), AsBytes("aad-1"));
  ASSERT_TRUE(sealed.ok());
  auto opened = sealer.Unseal(*sealed, AsBytes("aad-1"));
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(opened->text_view(), "seed");
  auto wrong = sealer.Unseal(*sealed, AsBytes("aad-2"));
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(metrics.Value("signet_hsm_operations_total", {{"operation", "seal"}}), 1);
  EXPECT_EQ(metrics.Value("signet_hsm_operations_total", {{"operation", "unseal"}}), 2);
  EXPECT_EQ(metrics.Value("signet_hsm_errors_total",
                          {{"operation", "unseal"},
                           {"code", std::string(ErrorCodeName(wrong.error().code()))}}),
            1);
  EXPECT_EQ(
      metrics.Value("signet_hsm_errors_total", {{"operation", "seal"}, {"code", "data_loss"}}), 0);
}

}  // namespace
}  // namespace signet::cli
