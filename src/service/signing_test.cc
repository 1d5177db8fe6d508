#include "service/signing.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/encoding.h"
#include "pki/pki.h"
#include "pki/testing/test_ca.h"
#include "service/key_service.h"
#include "service/testing/fakes.h"
#include "store/sqlite/sqlite_store.h"

namespace signet::service {
namespace {

using namespace std::chrono_literals;
using store::Role;

// Keeps every event in memory; can be told to fail for some actions.
class RecordingAuditSink final : public AuditSink {
 public:
  Status Record(const AuditEvent& event) override {
    std::lock_guard lock(mu_);
    if (fail_ && fail_(event)) return Error(fail_code_, "audit log unavailable (test)");
    events_.push_back(event);
    return OkStatus();
  }
  Status RecordChange(const AuditEvent& event, const AuditedChange& change) override {
    std::lock_guard lock(mu_);
    if (fail_ && fail_(event)) return Error(fail_code_, "audit log unavailable (test)");
    SIGNET_ASSIGN_OR_RETURN(AuditEvent recorded, signet::testing::MakeChange(event, change));
    events_.push_back(std::move(recorded));
    return OkStatus();
  }
  // Not atomic here (no transaction to run the check in), but a sink told to fail fails before
  // the check, so that what the check writes (an activation) is not made, as with RecordChange.
  Status RecordIf(const AuditEvent& event, const AuditCheck& check) override {
    {
      std::lock_guard lock(mu_);
      if (fail_ && fail_(event)) return Error(fail_code_, "audit log unavailable (test)");
    }
    SIGNET_TRY(check());
    return Record(event);
  }
  void FailWhen(std::function<bool(const AuditEvent&)> f,
                ErrorCode code = ErrorCode::kUnavailable) {
    std::lock_guard lock(mu_);
    fail_ = std::move(f);
    fail_code_ = code;
  }
  std::vector<AuditEvent> events() {
    std::lock_guard lock(mu_);
    return events_;
  }
  AuditEvent last() {
    std::lock_guard lock(mu_);
    return events_.empty() ? AuditEvent{} : events_.back();
  }

 private:
  std::mutex mu_;
  std::vector<AuditEvent> events_;               // guarded by mu_
  std::function<bool(const AuditEvent&)> fail_;  // guarded by mu_
  ErrorCode fail_code_ = ErrorCode::kUnavailable;  // guarded by mu_
};

Caller MakeCaller(const std::string& id, store::RoleSet roles) {
  Caller c;
  c.actor.account_id = id;
  c.actor.account_name = id + "-name";
  c.actor.roles = roles;
  c.actor.auth_method = AuthMethod::kPasswordTotp;
  c.actor.client_address = "192.0.2.1:4000";
  c.request_id = "req-" + id;
  return c;
}

Bytes Sha256Of(std::string_view text) {
  return pki::ComputeDigest(HashAlgorithm::kSha256, AsBytes(text)).value();
}

bool Verify(const store::KeyRecord& key, SignatureScheme scheme, HashAlgorithm hash,
            ByteView digest, ByteView sig) {
  return signet::testing::VerifyWithPublicKey(key.public_key_spki, scheme, hash, digest, sig);
}

class SigningTest : public ::testing::Test {
 protected:
  SigningTest()
      : clock_(FromUnixSeconds(1'800'000'000)),
        keys_svc_(keys_, store_, clock_, key_audit_, TokenIdentity{"fake-token", "0001"}),
        signing_(keys_, store_, clock_, audit_),
        alice_(MakeCaller("a_alice", {Role::kSigner})),
        bob_(MakeCaller("a_bob", {Role::kSigner})),
        admin_(MakeCaller("a_admin", {Role::kAdmin})),
        auditor_(MakeCaller("a_auditor", {Role::kAuditor})) {}

  void SetUp() override {
    for (const Caller* c : {&alice_, &bob_, &admin_, &auditor_}) {
      ASSERT_TRUE(signet::testing::InsertCallerAccount(store_, *c, clock_.Now()).ok());
    }
    auto k = keys_svc_.CreateKey(admin_.actor, "release", KeyAlgorithm::kEcP256, "a_admin");
    ASSERT_TRUE(k.ok()) << k.error().message();
    key_ = *k;
    ASSERT_TRUE(signing_.Grant(admin_, "release", "a_alice").ok());
  }

  Authorization AuthorizeOk(const Caller& c, std::string_view credential,
                            const std::vector<Bytes>& hashes) {
    auto a = signing_.Authorize(c, credential, HashAlgorithm::kSha256, hashes,
                                static_cast<int64_t>(hashes.size()));
    EXPECT_TRUE(a.ok()) << a.error().message();
    return a.ok() ? std::move(a).value() : Authorization{};
  }

  Result<std::vector<Bytes>> Sign(const Caller& c, std::string_view credential,
                                  const SecretBytes& sad, const std::vector<Bytes>& hashes) {
    return signing_.SignHash(c, credential, sad, hashes, SignatureScheme::kEcdsa,
                             HashAlgorithm::kSha256);
  }

  // The last event is a refusal of `action` whose outcome mentions `reason`.
  void ExpectRefusalRecorded(AuditAction action, const std::string& reason) {
    AuditEvent e = audit_.last();
    EXPECT_EQ(AuditActionName(e.action), AuditActionName(action));
    EXPECT_NE(e.outcome, kOutcomeSuccess);
    EXPECT_NE(e.outcome.find(reason), std::string::npos) << e.outcome;
    EXPECT_FALSE(e.details["error"].empty());
  }

  FakeClock clock_;
  signet::testing::FakeKeyStore keys_;
  signet::testing::MemoryStore store_;
  RecordingAuditSink audit_;
  RecordingAuditSink key_audit_;  // key lifecycle events, kept apart from the signing events
  KeyService keys_svc_;
  SigningService signing_;
  Caller alice_, bob_, admin_, auditor_;
  store::KeyRecord key_;
  const Bytes h1_ = Sha256Of("file one");
  const Bytes h2_ = Sha256Of("file two");
  const Bytes h3_ = Sha256Of("file three");
};

// ---- the happy path ----

TEST_F(SigningTest, AuthorizeThenSignReturnsSignaturesThatVerify) {
  Authorization a = AuthorizeOk(alice_, "release", {h1_, h2_});
  EXPECT_EQ(a.expires_in, 300s);
  EXPECT_EQ(a.expires_at, clock_.Now() + 300s);
  EXPECT_EQ(Base64UrlDecode(a.sad.text_view())->size(), 32u);
  auto sigs = Sign(alice_, "release", a.sad, {h2_, h1_});
  ASSERT_TRUE(sigs.ok()) << sigs.error().message();
  ASSERT_EQ(sigs->size(), 2u);
  EXPECT_TRUE(Verify(key_, SignatureScheme::kEcdsa, HashAlgorithm::kSha256, h2_, (*sigs)[0]));
  EXPECT_TRUE(Verify(key_, SignatureScheme::kEcdsa, HashAlgorithm::kSha256, h1_, (*sigs)[1]));
  EXPECT_FALSE(Verify(key_, SignatureScheme::kEcdsa, HashAlgorithm::kSha256, h1_, (*sigs)[0]));
}

// The consumption's flush is left to the audit commit only when the wiring says the sink commits
// to the same store; otherwise it is flushed on its own.
// Grants and policies are admin changes: the session the request came with must still be an
// admin's when the change commits (RecheckAdminSession), not only when the request began.
TEST_F(SigningTest, GrantCommitsOnlyWhileTheSessionIsStillAnAdmins) {
  Result<Caller> session = signet::testing::InsertAdminSession(
      store_, "root", Bytes(32, 0x17), clock_.Now(), std::chrono::minutes(10));
  ASSERT_TRUE(session.ok()) << session.error().message();
  const Caller admin = *session;
  const std::string root_id = admin.actor.account_id;

  ASSERT_TRUE(signing_.Grant(admin, "release", "a_bob").ok());
  ASSERT_TRUE(store_.SetAccountRoles(root_id, store::RoleSet{Role::kSigner}, clock_.Now()).ok());
  Status revoked = signing_.Revoke(admin, "release", "a_bob");
  ASSERT_FALSE(revoked.ok());
  EXPECT_EQ(revoked.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_TRUE(*store_.HasGrant(key_.id, "a_bob"));
  ExpectRefusalRecorded(AuditAction::kRevokeGrant, "no longer an active admin");

  ASSERT_TRUE(store_.SetAccountRoles(root_id, admin.actor.roles, clock_.Now()).ok());
  clock_.Advance(std::chrono::minutes(11));  // the session expired meanwhile
  Status granted = signing_.Grant(admin, "release", "a_carol");
  ASSERT_FALSE(granted.ok());
  EXPECT_EQ(granted.error().code(), ErrorCode::kUnauthenticated);
  EXPECT_FALSE(*store_.HasGrant(key_.id, "a_carol"));
}

TEST_F(SigningTest, ConsumptionIsFlushedAloneUnlessTheAuditCommitsToTheStore) {
  auto a = AuthorizeOk(alice_, "release", {h1_, h2_});
  ASSERT_TRUE(Sign(alice_, "release", a.sad, {h1_}).ok());
  SigningOptions options;
  options.audit_commits_to_store = true;
  SigningService relaxed(keys_, store_, clock_, audit_, options);
  ASSERT_TRUE(relaxed
                  .SignHash(alice_, "release", a.sad, {h2_}, SignatureScheme::kEcdsa,
                            HashAlgorithm::kSha256)
                  .ok());
  EXPECT_EQ(store_.ConsumeFlushModes(), (std::vector<bool>{false, true}));
}

TEST_F(SigningTest, MalformedRequestIsRecordedAsItsRefusalOnly) {
  Error e = signing_.RecordMalformedRequest(alice_, AuditAction::kSignRefused, "release",
                                            InvalidArgument("'hashes' must be an array"));
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(e.message(), "'hashes' must be an array");
  AuditEvent last = audit_.last();
  EXPECT_EQ(AuditActionName(last.action), "sign_refused");
  EXPECT_EQ(last.object, "release");
  EXPECT_EQ(last.outcome, "'hashes' must be an array");
  EXPECT_EQ(last.details["error"], "invalid_argument");
  // Only the two refusal actions: a malformed request never records a success.
  Error wrong = signing_.RecordMalformedRequest(alice_, AuditAction::kSign, "release",
                                                InvalidArgument("x"));
  EXPECT_EQ(wrong.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(wrong.message().find("authorize_refused or sign_refused"), std::string::npos);
  EXPECT_EQ(AuditActionName(audit_.last().action), "sign_refused");
  EXPECT_EQ(audit_.last().outcome, "'hashes' must be an array");
}

TEST_F(SigningTest, CredentialCanBeGivenByKeyId) {
  Authorization a = AuthorizeOk(alice_, key_.id, {h1_});
  auto sigs = Sign(alice_, key_.id, a.sad, {h1_});
  EXPECT_TRUE(sigs.ok()) << sigs.error().message();
}

TEST_F(SigningTest, RsaKeySignsWithPkcs1AndPssThatVerify) {
  auto rsa = keys_svc_.CreateKey(admin_.actor, "rsa", KeyAlgorithm::kRsa3072, "a_admin");
  ASSERT_TRUE(rsa.ok());
  ASSERT_TRUE(signing_.Grant(admin_, "rsa", "a_alice").ok());
  const Bytes d384 = pki::ComputeDigest(HashAlgorithm::kSha384, AsBytes("x")).value();
  for (SignatureScheme scheme : {SignatureScheme::kRsaPkcs1v15, SignatureScheme::kRsaPss}) {
    auto a = signing_.Authorize(alice_, "rsa", HashAlgorithm::kSha384, {d384}, 1);
    ASSERT_TRUE(a.ok()) << a.error().message();
    auto sigs = signing_.SignHash(alice_, "rsa", a->sad, {d384}, scheme, HashAlgorithm::kSha384);
    ASSERT_TRUE(sigs.ok()) << sigs.error().message();
    EXPECT_TRUE(Verify(*rsa, scheme, HashAlgorithm::kSha384, d384, (*sigs)[0]))
        << SignatureSchemeName(scheme);
  }
}

TEST_F(SigningTest, SadIsStoredOnlyAsItsSha256) {
  Authorization a = AuthorizeOk(alice_, "release", {h1_});
  const Bytes sad_hash = pki::ComputeDigest(HashAlgorithm::kSha256, a.sad.view()).value();
  auto stored = store_.GetActivation(sad_hash);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->account_id, "a_alice");
  EXPECT_EQ(stored->key_id, key_.id);
  EXPECT_EQ(store_.GetActivation(Bytes(a.sad.view().begin(), a.sad.view().end())).error().code(),
            ErrorCode::kNotFound);
}

TEST_F(SigningTest, SignEventListsCallerKeyAlgorithmAndEveryHash) {
  Authorization a = AuthorizeOk(alice_, "release", {h1_, h2_});
  EXPECT_EQ(audit_.last().action, AuditAction::kAuthorize);
  ASSERT_TRUE(Sign(alice_, "release", a.sad, {h1_, h2_}).ok());
  AuditEvent e = audit_.last();
  EXPECT_EQ(e.action, AuditAction::kSign);
  EXPECT_EQ(e.outcome, kOutcomeSuccess);
  EXPECT_EQ(e.actor.account_id, "a_alice");
  EXPECT_EQ(e.actor.client_address, "192.0.2.1:4000");
  EXPECT_EQ(e.request_id, "req-a_alice");
  EXPECT_EQ(e.object, "release");
  ASSERT_TRUE(e.signature.has_value());
  EXPECT_EQ(e.signature->key_id, key_.id);
  EXPECT_EQ(e.signature->key_name, "release");
  EXPECT_EQ(e.signature->algorithm, "ecdsa");
  EXPECT_EQ(e.signature->hash_algorithm, "sha256");
  EXPECT_EQ(e.signature->hashes, (std::vector<std::string>{HexEncode(h1_), HexEncode(h2_)}));
}

// ---- one test per refusal ----

TEST_F(SigningTest, SadForAnotherCredentialIsRefused) {
  ASSERT_TRUE(keys_svc_.CreateKey(admin_.actor, "other", KeyAlgorithm::kEcP256, "a_admin").ok());
  ASSERT_TRUE(signing_.Grant(admin_, "other", "a_alice").ok());
  Authorization a = AuthorizeOk(alice_, "release", {h1_});
  auto sigs = Sign(alice_, "other", a.sad, {h1_});
  ASSERT_FALSE(sigs.ok());
  EXPECT_EQ(sigs.error().code(), ErrorCode::kUnauthenticated);
  EXPECT_FALSE(SigningService::IsExpiredSad(sigs.error()));
  EXPECT_NE(sigs.error().message().find("another credential"), std::string::npos);
  ExpectRefusalRecorded(AuditAction::kSignRefused, "another credential");
  EXPECT_TRUE(Sign(alice_, "release", a.sad, {h1_}).ok());  // nothing was consumed
}

TEST_F(SigningTest, AnotherAccountsSadIsRefused) {
  ASSERT_TRUE(signing_.Grant(admin_, "release", "a_bob").ok());
  Authorization a = AuthorizeOk(alice_, "release", {h1_});
  auto sigs = Sign(bob_, "release", a.sad, {h1_});
  ASSERT_FALSE(sigs.ok());
  EXPECT_EQ(sigs.error().code(), ErrorCode::kUnauthenticated);
  EXPECT_FALSE(SigningService::IsExpiredSad(sigs.error()));
  // Bob is told what he would be told of a SAD that never existed; only the log says whose it is.
  EXPECT_EQ(sigs.error().message(), store::kSadNotValidMessage);
  ExpectRefusalRecorded(AuditAction::kSignRefused, "another account");
  EXPECT_EQ(audit_.last().actor.account_id, "a_bob");
  auto unknown = Sign(bob_, "release", SecretBytes(Bytes(32, 0x5a)), {h1_});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code(), sigs.error().code());
  EXPECT_EQ(unknown.error().message(), sigs.error().message());
  EXPECT_TRUE(Sign(alice_, "release", a.sad, {h1_}).ok());  // nothing was consumed
}

TEST_F(SigningTest, HashNotInSadIsRefused) {
  Authorization a = AuthorizeOk(alice_, "release", {h1_, h2_});
  auto sigs = Sign(alice_, "release", a.sad, {h3_});
  ASSERT_FALSE(sigs.ok());
  EXPECT_EQ(sigs.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_TRUE(SigningService::IsUnauthorizedHash(sigs.error()));
  EXPECT_NE(sigs.error().message().find("not authorized by the SAD"), std::string::npos);
  ExpectRefusalRecorded(AuditAction::kSignRefused, "not authorized by the SAD");
}

TEST_F(SigningTest, HashUsedTwiceIsRefused) {
  Authorization a = AuthorizeOk(alice_, "release", {h1_, h2_});
  ASSERT_TRUE(Sign(alice_, "release", a.sad, {h1_}).ok());
  auto again = Sign(alice_, "release", a.sad, {h1_});
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_TRUE(SigningService::IsUnauthorizedHash(again.error()));
  EXPECT_NE(again.error().message().find("already used"), std::string::npos);
  ExpectRefusalRecorded(AuditAction::kSignRefused, "already used");
  EXPECT_TRUE(Sign(alice_, "release", a.sad, {h2_}).ok());
}

TEST_F(SigningTest, ExpiredSadIsRefused) {
  Authorization a = AuthorizeOk(alice_, "release", {h1_});
  clock_.Advance(5min);
  auto sigs = Sign(alice_, "release", a.sad, {h1_});
  ASSERT_FALSE(sigs.ok());
  EXPECT_EQ(sigs.error().code(), ErrorCode::kUnauthenticated);
  EXPECT_EQ(sigs.error().message(), "SAD expired");
  // The CSC layer's description of this case ("SAD expired") starts with this message.
  EXPECT_TRUE(SigningService::IsExpiredSad(sigs.error()));
  ExpectRefusalRecorded(AuditAction::kSignRefused, "SAD expired");
}

// An account holds a bounded number of open SADs (a service account needs no fresh second factor
// per authorization): beyond it Authorize refuses as a rate limit; a SAD used up or expired, or
// another account's, does not count.
TEST_F(SigningTest, OpenSadsPerAccountAreBounded) {
  SigningOptions options;
  options.max_open_activations_per_account = 2;
  SigningService bounded(keys_, store_, clock_, audit_, options);
  ASSERT_TRUE(bounded.Grant(admin_, "release", "a_bob").ok());
  auto authorize = [&](const Caller& c, const Bytes& h) {
    return bounded.Authorize(c, "release", HashAlgorithm::kSha256, {h}, 1);
  };
  auto first = authorize(alice_, h1_);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(authorize(alice_, h2_).ok());
  auto third = authorize(alice_, h3_);
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_TRUE(SigningService::IsRateLimit(third.error())) << third.error().message();
  EXPECT_NE(third.error().message().find("holds 2 SADs"), std::string::npos)
      << third.error().message();
  ExpectRefusalRecorded(AuditAction::kAuthorizeRefused, "too many open authorizations");
  EXPECT_TRUE(authorize(bob_, h3_).ok()) << "another account's SADs counted";

  // Used up, the first no longer counts.
  ASSERT_TRUE(bounded
                  .SignHash(alice_, "release", first->sad, {h1_}, SignatureScheme::kEcdsa,
                            HashAlgorithm::kSha256)
                  .ok());
  ASSERT_TRUE(authorize(alice_, h3_).ok());
  EXPECT_FALSE(authorize(alice_, h3_).ok());
  // Expired, none counts.
  clock_.Advance(5min);
  EXPECT_TRUE(authorize(alice_, h3_).ok());
}

// Extending a used-up SAD opens it again: bounded as a new authorization is. Extending an open
// one replaces it and leaves the count as it was.
TEST_F(SigningTest, ExtendingAUsedUpSadIsBoundedLikeANewOne) {
  SigningOptions options;
  options.max_open_activations_per_account = 1;
  SigningService bounded(keys_, store_, clock_, audit_, options);
  auto first = bounded.Authorize(alice_, "release", HashAlgorithm::kSha256, {h1_}, 1);
  ASSERT_TRUE(first.ok());
  auto extended =
      bounded.ExtendTransaction(alice_, "release", first->sad, HashAlgorithm::kSha256, {h2_});
  EXPECT_TRUE(extended.ok()) << "an open SAD at the bound could not be extended: "
                             << extended.error().message();

  ASSERT_TRUE(bounded.Grant(admin_, "release", "a_bob").ok());
  auto bobs = bounded.Authorize(bob_, "release", HashAlgorithm::kSha256, {h1_}, 1);
  ASSERT_TRUE(bobs.ok());
  ASSERT_TRUE(bounded
                  .SignHash(bob_, "release", bobs->sad, {h1_}, SignatureScheme::kEcdsa,
                            HashAlgorithm::kSha256)
                  .ok());  // used up: bob holds no open SAD
  ASSERT_TRUE(bounded.Authorize(bob_, "release", HashAlgorithm::kSha256, {h3_}, 1).ok());
  auto reopened =
      bounded.ExtendTransaction(bob_, "release", bobs->sad, HashAlgorithm::kSha256, {h2_});
  ASSERT_FALSE(reopened.ok());
  EXPECT_EQ(reopened.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_TRUE(SigningService::IsRateLimit(reopened.error())) << reopened.error().message();
}

TEST_F(SigningTest, MoreSignaturesThanAuthorizedAreRefused) {
  Authorization a = AuthorizeOk(alice_, "release", {h1_, h2_});
  auto sigs = Sign(alice_, "release", a.sad, {h1_, h2_, h3_});
  ASSERT_FALSE(sigs.ok());
  EXPECT_EQ(sigs.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(sigs.error().message().find("more signatures than authorized"), std::string::npos);
  EXPECT_FALSE(SigningService::IsUnauthorizedHash(sigs.error()));  // a count, not a hash
  ExpectRefusalRecorded(AuditAction::kSignRefused, "more signatures than authorized");
}

TEST_F(SigningTest, DisabledKeyIsRefused) {
  Authorization a = AuthorizeOk(alice_, "release", {h1_});
  ASSERT_TRUE(keys_svc_.DisableKey(admin_.actor, "release").ok());
  auto sigs = Sign(alice_, "release", a.sad, {h1_});
  ASSERT_FALSE(sigs.ok());
  EXPECT_EQ(sigs.error().code(), ErrorCode::kFailedPrecondition);
  ExpectRefusalRecorded(AuditAction::kSignRefused, "disabled");
  // Logged under the key, so that the log's query by key finds the attempt.
  ASSERT_TRUE(audit_.last().signature.has_value());
  EXPECT_EQ(audit_.last().signature->key_id, key_.id);
  auto again = signing_.Authorize(alice_, "release", HashAlgorithm::kSha256, {h2_}, 1);
  EXPECT_EQ(again.error().code(), ErrorCode::kFailedPrecondition);
  ExpectRefusalRecorded(AuditAction::kAuthorizeRefused, "disabled");
  ASSERT_TRUE(audit_.last().signature.has_value());
  EXPECT_EQ(audit_.last().signature->key_id, key_.id);
  EXPECT_EQ(audit_.last().object, "release");
  // A signer without a grant gets the answer of an unknown key; the log still names the key.
  auto ungranted = signing_.Authorize(bob_, key_.id, HashAlgorithm::kSha256, {h2_}, 1);
  EXPECT_EQ(ungranted.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_EQ(ungranted.error().message().find("release"), std::string::npos)
      << ungranted.error().message();
  ASSERT_TRUE(audit_.last().signature.has_value());
  EXPECT_EQ(audit_.last().signature->key_id, key_.id);
}

// A signature made outside the validity of the key's certificate would not validate, so none is
// made: authorize and signHash are refused once the leaf expired (also with a SAD issued before),
// and before its notBefore. A renewed chain is used at once.
TEST_F(SigningTest, KeyWithCertificateOutsideItsValidityIsRefused) {
  clock_.Set(std::chrono::time_point_cast<TimePoint::duration>(std::chrono::system_clock::now()));
  auto ca = pki::testing::TestCodeSigningCa::Create("signing test CA");
  ASSERT_TRUE(ca.ok()) << ca.error().message();
  auto import = [&](std::chrono::seconds shift) {
    auto csr = keys_svc_.CreateCsr(admin_.actor, "release", "/CN=release");
    ASSERT_TRUE(csr.ok()) << csr.error().message();
    auto chain = (*ca)->Issue(*csr, shift);
    ASSERT_TRUE(chain.ok()) << chain.error().message();
    auto imported = keys_svc_.ImportCertificateChain(admin_.actor, "release", *chain);
    ASSERT_TRUE(imported.ok()) << imported.error().message();
  };
  import(0s);
  auto sign_ok = [&](const Bytes& h) {
    Authorization a = AuthorizeOk(alice_, "release", {h});
    auto sigs = Sign(alice_, "release", a.sad, {h});
    EXPECT_TRUE(sigs.ok()) << sigs.error().message();
  };
  sign_ok(h1_);

  // The test CA's leaves end 30 days after their issue. A SAD issued a minute before
  // the end is no use after it.
  clock_.Advance(30 * 24h - 1min);
  Authorization late = AuthorizeOk(alice_, "release", {h2_});
  clock_.Advance(2min);
  auto sigs = Sign(alice_, "release", late.sad, {h2_});
  ASSERT_FALSE(sigs.ok());
  EXPECT_EQ(sigs.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(sigs.error().message().find("expired at"), std::string::npos) << sigs.error().message();
  ExpectRefusalRecorded(AuditAction::kSignRefused, "expired at");
  auto again = signing_.Authorize(alice_, "release", HashAlgorithm::kSha256, {h3_}, 1);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), ErrorCode::kFailedPrecondition);
  ExpectRefusalRecorded(AuditAction::kAuthorizeRefused, "expired at");

  // A renewed certificate is used at once (the validity read from the old chain is not kept).
  import(30 * 24h);
  sign_ok(h3_);

  // Before the renewed leaf's notBefore (an hour before the renewal's issue).
  clock_.Advance(-2h);
  auto early = signing_.Authorize(alice_, "release", HashAlgorithm::kSha256, {h1_}, 1);
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(early.error().message().find("not valid before"), std::string::npos)
      << early.error().message();
}

// A renewal imported before its notBefore would replace a chain that is still good by one signing
// refuses until then: refused while the chain in use is valid, accepted once the new one is.
TEST_F(SigningTest, EarlyRenewalDoesNotStopSigning) {
  clock_.Set(std::chrono::time_point_cast<TimePoint::duration>(std::chrono::system_clock::now()));
  auto ca = pki::testing::TestCodeSigningCa::Create("signing test CA");
  ASSERT_TRUE(ca.ok()) << ca.error().message();
  auto chain_for = [&](std::chrono::seconds shift) -> std::string {
    auto csr = keys_svc_.CreateCsr(admin_.actor, "release", "/CN=release");
    EXPECT_TRUE(csr.ok()) << csr.error().message();
    auto chain = (*ca)->Issue(csr.ok() ? *csr : std::string(), shift);
    EXPECT_TRUE(chain.ok()) << chain.error().message();
    return chain.ok() ? *chain : std::string();
  };
  ASSERT_TRUE(keys_svc_.ImportCertificateChain(admin_.actor, "release", chain_for(0s)).ok());
  const std::string renewal = chain_for(2h);  // valid from an hour from now
  auto early = keys_svc_.ImportCertificateChain(admin_.actor, "release", renewal);
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(early.error().message().find("would stop signing"), std::string::npos)
      << early.error().message();
  Authorization a = AuthorizeOk(alice_, "release", {h1_});
  EXPECT_TRUE(Sign(alice_, "release", a.sad, {h1_}).ok());
  clock_.Advance(1h + 1min);
  auto in_time = keys_svc_.ImportCertificateChain(admin_.actor, "release", renewal);
  EXPECT_TRUE(in_time.ok()) << in_time.error().message();
  Authorization b = AuthorizeOk(alice_, "release", {h2_});
  EXPECT_TRUE(Sign(alice_, "release", b.sad, {h2_}).ok());
}

TEST_F(SigningTest, SignerWithoutGrantIsRefused) {
  auto a = signing_.Authorize(bob_, "release", HashAlgorithm::kSha256, {h1_}, 1);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(a.error().message().find("no grant"), std::string::npos);
  ExpectRefusalRecorded(AuditAction::kAuthorizeRefused, "no grant");
  // Bob also cannot sign with Alice's SAD (the grant check comes first).
  Authorization alice_sad = AuthorizeOk(alice_, "release", {h1_});
  auto sigs = Sign(bob_, "release", alice_sad.sad, {h1_});
  EXPECT_EQ(sigs.error().code(), ErrorCode::kPermissionDenied);
  ExpectRefusalRecorded(AuditAction::kSignRefused, "no grant");
}

TEST_F(SigningTest, UnknownCredentialLooksLikeMissingGrant) {
  auto a = signing_.Authorize(alice_, "no-such-key", HashAlgorithm::kSha256, {h1_}, 1);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(a.error().message().find("does not exist or"), std::string::npos);
}

TEST_F(SigningTest, AuditorCannotSignEvenWithAGrant) {
  ASSERT_TRUE(signing_.Grant(admin_, "release", "a_auditor").ok());
  auto a = signing_.Authorize(auditor_, "release", HashAlgorithm::kSha256, {h1_}, 1);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(a.error().message().find("signer role"), std::string::npos);
  ExpectRefusalRecorded(AuditAction::kAuthorizeRefused, "signer role");
  Authorization alice_sad = AuthorizeOk(alice_, "release", {h1_});
  auto sigs = Sign(auditor_, "release", alice_sad.sad, {h1_});
  EXPECT_EQ(sigs.error().code(), ErrorCode::kPermissionDenied);
  ExpectRefusalRecorded(AuditAction::kSignRefused, "signer role");
}

TEST_F(SigningTest, AdminAloneCannotSign) {
  ASSERT_TRUE(signing_.Grant(admin_, "release", "a_admin").ok());
  auto a = signing_.Authorize(admin_, "release", HashAlgorithm::kSha256, {h1_}, 1);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().code(), ErrorCode::kPermissionDenied);
}

TEST_F(SigningTest, NonAdminCannotChangePolicy) {
  KeyPolicy p = signing_.DefaultPolicy(KeyAlgorithm::kEcP256);
  p.max_signatures_per_authorization = 1;
  Status s = signing_.SetPolicy(alice_, "release", p);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kPermissionDenied);
  AuditEvent e = audit_.last();
  EXPECT_EQ(e.action, AuditAction::kPolicyChange);
  EXPECT_NE(e.outcome.find("admin role"), std::string::npos);
  EXPECT_EQ(e.actor.account_id, "a_alice");
  EXPECT_EQ(signing_.GetPolicy(admin_, "release")->max_signatures_per_authorization, 1000);
}

TEST_F(SigningTest, NonAdminCannotGrantOrRevoke) {
  EXPECT_EQ(signing_.Grant(alice_, "release", "a_bob").error().code(),
            ErrorCode::kPermissionDenied);
  EXPECT_EQ(audit_.last().action, AuditAction::kGrant);
  EXPECT_NE(audit_.last().outcome, kOutcomeSuccess);
  EXPECT_EQ(signing_.Revoke(alice_, "release", "a_alice").error().code(),
            ErrorCode::kPermissionDenied);
  EXPECT_EQ(audit_.last().action, AuditAction::kRevokeGrant);
  EXPECT_FALSE(*store_.HasGrant(key_.id, "a_bob"));
  EXPECT_TRUE(*store_.HasGrant(key_.id, "a_alice"));
}

// ---- input checks ----

TEST_F(SigningTest, AuthorizeRejectsMalformedHashLists) {
  auto empty = signing_.Authorize(alice_, "release", HashAlgorithm::kSha256, {}, 0);
  EXPECT_EQ(empty.error().code(), ErrorCode::kInvalidArgument);
  auto short_hash =
      signing_.Authorize(alice_, "release", HashAlgorithm::kSha256, {Bytes(20, 1)}, 1);
  EXPECT_EQ(short_hash.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(short_hash.error().message().find("20 bytes"), std::string::npos);
  auto wrong_alg = signing_.Authorize(alice_, "release", HashAlgorithm::kSha384, {h1_}, 1);
  EXPECT_EQ(wrong_alg.error().code(), ErrorCode::kInvalidArgument);
  auto dup = signing_.Authorize(alice_, "release", HashAlgorithm::kSha256, {h1_, h1_}, 2);
  EXPECT_EQ(dup.error().code(), ErrorCode::kInvalidArgument);
  auto count = signing_.Authorize(alice_, "release", HashAlgorithm::kSha256, {h1_, h2_}, 3);
  EXPECT_EQ(count.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(count.error().message().find("numSignatures"), std::string::npos);
  ExpectRefusalRecorded(AuditAction::kAuthorizeRefused, "numSignatures");
}

TEST_F(SigningTest, SignRejectsWrongHashLengthAndUnfitScheme) {
  Authorization a = AuthorizeOk(alice_, "release", {h1_});
  auto bad_len = Sign(alice_, "release", a.sad, {Bytes(31, 0)});
  EXPECT_EQ(bad_len.error().code(), ErrorCode::kInvalidArgument);
  auto rsa_scheme = signing_.SignHash(alice_, "release", a.sad, {h1_}, SignatureScheme::kRsaPss,
                                      HashAlgorithm::kSha256);
  EXPECT_EQ(rsa_scheme.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(rsa_scheme.error().message().find("does not fit"), std::string::npos);
  EXPECT_TRUE(Sign(alice_, "release", a.sad, {h1_}).ok());  // nothing was consumed
}

TEST_F(SigningTest, PolicyLimitsHashAlgorithmsAndSignaturesPerAuthorization) {
  KeyPolicy p = signing_.DefaultPolicy(KeyAlgorithm::kEcP256);
  p.allowed_hash_algorithms = {HashAlgorithm::kSha384};
  p.max_signatures_per_authorization = 2;
  ASSERT_TRUE(signing_.SetPolicy(admin_, "release", p).ok());
  EXPECT_EQ(audit_.last().action, AuditAction::kPolicyChange);
  EXPECT_EQ(audit_.last().outcome, kOutcomeSuccess);
  auto sha256 = signing_.Authorize(alice_, "release", HashAlgorithm::kSha256, {h1_}, 1);
  EXPECT_EQ(sha256.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(sha256.error().message().find("does not allow sha256"), std::string::npos);
  std::vector<Bytes> three;
  for (const char* t : {"a", "b", "c"}) {
    three.push_back(pki::ComputeDigest(HashAlgorithm::kSha384, AsBytes(t)).value());
  }
  auto too_many = signing_.Authorize(alice_, "release", HashAlgorithm::kSha384, three, 3);
  EXPECT_EQ(too_many.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(too_many.error().message().find("at most 2"), std::string::npos);
}

TEST_F(SigningTest, SetPolicyRejectsSchemesThatDoNotFitTheKey) {
  KeyPolicy p = signing_.DefaultPolicy(KeyAlgorithm::kEcP256);
  p.allowed_sign_schemes = {SignatureScheme::kRsaPss};
  EXPECT_EQ(signing_.SetPolicy(admin_, "release", p).error().code(), ErrorCode::kInvalidArgument);
  p.allowed_sign_schemes = {};
  EXPECT_EQ(signing_.SetPolicy(admin_, "release", p).error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(SigningTest, RateLimitPerKeyIsResourceExhausted) {
  KeyPolicy p = signing_.DefaultPolicy(KeyAlgorithm::kEcP256);
  p.rate_per_minute_key = 2;
  ASSERT_TRUE(signing_.SetPolicy(admin_, "release", p).ok());
  Authorization a = AuthorizeOk(alice_, "release", {h1_, h2_, h3_});
  ASSERT_TRUE(Sign(alice_, "release", a.sad, {h1_, h2_}).ok());
  auto limited = Sign(alice_, "release", a.sad, {h3_});
  ASSERT_FALSE(limited.ok());
  EXPECT_EQ(limited.error().code(), ErrorCode::kResourceExhausted);
  ExpectRefusalRecorded(AuditAction::kSignRefused, "rate limit");
  clock_.Advance(1min);  // next window; the hash was not consumed by the refused call
  EXPECT_TRUE(Sign(alice_, "release", a.sad, {h3_}).ok());
}

// A request larger than the per-minute limit could never pass by waiting: refused with what to do
// instead, nothing consumed, and smaller requests from the same SAD sign.
TEST_F(SigningTest, ARequestLargerThanARateLimitSaysToSplitIt) {
  KeyPolicy p = signing_.DefaultPolicy(KeyAlgorithm::kEcP256);
  p.rate_per_minute_account = 2;
  ASSERT_TRUE(signing_.SetPolicy(admin_, "release", p).ok());
  Authorization a = AuthorizeOk(alice_, "release", {h1_, h2_, h3_});
  auto too_many = Sign(alice_, "release", a.sad, {h1_, h2_, h3_});
  ASSERT_FALSE(too_many.ok());
  EXPECT_EQ(too_many.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(too_many.error().message().find("send at most that many hashes"), std::string::npos)
      << too_many.error().message();
  EXPECT_FALSE(SigningService::HashesUsedUp(too_many.error()));
  EXPECT_TRUE(Sign(alice_, "release", a.sad, {h1_, h2_}).ok());
  clock_.Advance(1min);
  EXPECT_TRUE(Sign(alice_, "release", a.sad, {h3_}).ok());
}

// A key record the store holds damaged is the service's fault, never the caller's bad request.
TEST_F(SigningTest, ADamagedKeyRecordIsDataLossNotABadRequest) {
  store::KeyRecord broken = key_;
  broken.id = "k_00000000000000b0";
  broken.name = "broken";
  broken.algorithm = "rsa-1023";
  broken.hsm_key_id = "not hex";
  ASSERT_TRUE(store_.InsertKey(broken).ok());
  ASSERT_TRUE(signing_.Grant(admin_, "broken", "a_alice").ok());
  auto a = signing_.Authorize(alice_, "broken", HashAlgorithm::kSha256, {h1_}, 1);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().code(), ErrorCode::kDataLoss) << a.error().message();
}

// ---- the audit invariant ----

TEST_F(SigningTest, NoSignatureIsReturnedWhenTheSignEventCannotBeRecorded) {
  Authorization a = AuthorizeOk(alice_, "release", {h1_});
  audit_.FailWhen([](const AuditEvent& e) { return e.action == AuditAction::kSign; });
  auto sigs = Sign(alice_, "release", a.sad, {h1_});
  ASSERT_FALSE(sigs.ok());
  EXPECT_EQ(sigs.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(sigs.error().message().find("audit log could not record"), std::string::npos);
  // The failure itself is logged as a refusal; the hash stays spent (the safe direction).
  ExpectRefusalRecorded(AuditAction::kSignRefused, "audit log could not record");
  audit_.FailWhen(nullptr);
  auto retry = Sign(alice_, "release", a.sad, {h1_});
  EXPECT_EQ(retry.error().code(), ErrorCode::kPermissionDenied);

  // Whatever the log answered, it is the service's failure, not a bad request of the caller's.
  Authorization b = AuthorizeOk(alice_, "release", {h2_});
  audit_.FailWhen([](const AuditEvent& e) { return e.action == AuditAction::kSign; },
                  ErrorCode::kInvalidArgument);
  sigs = Sign(alice_, "release", b.sad, {h2_});
  ASSERT_FALSE(sigs.ok());
  EXPECT_EQ(sigs.error().code(), ErrorCode::kInternal);
  audit_.FailWhen(nullptr);
  for (const AuditEvent& e : audit_.events()) EXPECT_NE(e.action, AuditAction::kSign);
}

TEST_F(SigningTest, NoSadIsReturnedWhenTheAuthorizeEventCannotBeRecorded) {
  audit_.FailWhen([](const AuditEvent& e) { return e.action == AuditAction::kAuthorize; });
  auto a = signing_.Authorize(alice_, "release", HashAlgorithm::kSha256, {h1_}, 1);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(audit_.last().action, AuditAction::kAuthorizeRefused);
}

TEST_F(SigningTest, HsmFailureAfterConsumingLeavesHashesSpentAndIsRecorded) {
  Authorization a = AuthorizeOk(alice_, "release", {h1_});
  // Remove the key from the (fake) HSM behind signet's back.
  ASSERT_TRUE(keys_.DestroyKey(hsm::HsmKeyId{HexDecode(key_.hsm_key_id).value()}).ok());
  auto sigs = Sign(alice_, "release", a.sad, {h1_});
  ASSERT_FALSE(sigs.ok());
  EXPECT_NE(sigs.error().message().find("authorize again"), std::string::npos);
  EXPECT_EQ(sigs.error().code(), ErrorCode::kInternal);  // the HSM lost the key: not the caller's
  ExpectRefusalRecorded(AuditAction::kSignRefused, "HSM could not sign");
  EXPECT_EQ(Sign(alice_, "release", a.sad, {h1_}).error().code(), ErrorCode::kPermissionDenied);
}

TEST_F(SigningTest, ARefusedRequestRecordsAFewOfItsHashesAndADigestOfAll) {
  // 1000 hashes with a SAD that is no SAD: refused before anything was authorized or spent.
  std::vector<Bytes> many;
  std::string joined;
  for (int i = 0; i < 1000; ++i) {
    many.push_back(*pki::ComputeDigest(HashAlgorithm::kSha256, AsBytes(std::to_string(i))));
    joined += HexEncode(many.back());
  }
  auto sigs = Sign(alice_, "release", SecretBytes("not a sad"), many);
  ASSERT_FALSE(sigs.ok());
  AuditEvent e = audit_.last();
  ASSERT_EQ(e.action, AuditAction::kSignRefused);
  ASSERT_TRUE(e.signature.has_value());
  ASSERT_EQ(e.signature->hashes.size(), 16u);
  EXPECT_EQ(e.signature->hashes[0], HexEncode(many[0]));
  EXPECT_EQ(e.details.at("hashes_total"), "1000");
  EXPECT_EQ(e.details.at("hashes_recorded"), "16");
  EXPECT_EQ(e.details.at("hashes_sha256"),
            HexEncode(*pki::ComputeDigest(HashAlgorithm::kSha256, AsBytes(joined))));
  EXPECT_FALSE(e.details.contains("hashes_consumed"));
}

TEST_F(SigningTest, AFailureAfterConsumingRecordsEveryHashAndWhatTheHsmMade) {
  std::vector<Bytes> hashes;
  for (int i = 0; i < 20; ++i) {
    hashes.push_back(*pki::ComputeDigest(HashAlgorithm::kSha256, AsBytes("h" + std::to_string(i))));
  }
  Authorization a = AuthorizeOk(alice_, "release", hashes);
  keys_.FailNextSign(Unavailable("CKR_DEVICE_REMOVED"));
  ASSERT_FALSE(Sign(alice_, "release", a.sad, hashes).ok());
  AuditEvent e = audit_.last();
  ASSERT_EQ(e.action, AuditAction::kSignRefused);
  EXPECT_EQ(e.signature->hashes.size(), 20u);  // spent: all of them
  EXPECT_EQ(e.details.at("hashes_consumed"), "true");
  EXPECT_EQ(e.details.at("hsm_signatures_made"), "0");
  // A signature's own entry carries no such mark.
  Authorization b = AuthorizeOk(alice_, "release", {h1_});
  ASSERT_TRUE(Sign(alice_, "release", b.sad, {h1_}).ok());
  EXPECT_EQ(audit_.last().action, AuditAction::kSign);
  EXPECT_FALSE(audit_.last().details.contains("hashes_consumed"));
}

// A store where an admin's change commits just before the hashes are consumed: after the
// service checked the key and the grant, before the consumption.
class ChangeBeforeConsume : public signet::testing::MemoryStore {
 public:
  Status ConsumeActivationHashes(const store::ConsumeActivationRequest& request) override {
    if (before) std::exchange(before, nullptr)();
    return MemoryStore::ConsumeActivationHashes(request);
  }
  std::function<void()> before;
};

TEST(SigningRaceTest, AKeyDisabledOrAGrantRevokedMeanwhileSignsNothing) {
  ChangeBeforeConsume store;
  signet::testing::FakeKeyStore keys;
  FakeClock clock(FromUnixSeconds(1'800'000'000));
  RecordingAuditSink audit;
  KeyService key_service(keys, store, clock, audit, TokenIdentity{"fake", "0001"});
  SigningService signing(keys, store, clock, audit);
  Caller admin(
      Actor{"a_admin", "admin", store::RoleSet{store::Role::kAdmin}, AuthMethod::kLocalCli, ""});
  Caller alice(
      Actor{"a_alice", "alice", store::RoleSet{store::Role::kSigner}, AuthMethod::kMtls, ""});
  auto key = key_service.CreateKey(admin, "release", KeyAlgorithm::kEcP256, "admin");
  ASSERT_TRUE(key.ok());
  ASSERT_TRUE(signing.Grant(admin, "release", "a_alice").ok());
  const Bytes h = *pki::ComputeDigest(HashAlgorithm::kSha256, AsBytes("payload"));
  auto sign_with = [&](std::function<void()> meanwhile) {
    auto a = signing.Authorize(alice, "release", HashAlgorithm::kSha256, {h}, 1);
    EXPECT_TRUE(a.ok()) << a.error().message();
    store.before = std::move(meanwhile);
    return signing.SignHash(alice, "release", a->sad, {h}, SignatureScheme::kEcdsa,
                            HashAlgorithm::kSha256);
  };
  auto disabled = sign_with([&] { ASSERT_TRUE(key_service.DisableKey(admin, "release").ok()); });
  ASSERT_FALSE(disabled.ok());
  EXPECT_EQ(disabled.error().code(), ErrorCode::kFailedPrecondition) << disabled.error().message();
  ASSERT_TRUE(key_service.EnableKey(admin, "release").ok());
  auto revoked = sign_with([&] { ASSERT_TRUE(signing.Revoke(admin, "release", "a_alice").ok()); });
  ASSERT_FALSE(revoked.ok());
  for (const AuditEvent& e : audit.events()) EXPECT_NE(e.action, AuditAction::kSign);
}

// The HSM may take seconds; whatever took the caller's right to sign meanwhile (after the
// consuming transaction, while the HSM signs) is seen by the re-check in the transaction that
// records the signatures: nothing is released, and the refusal is recorded.
TEST_F(SigningTest, ARightLostWhileTheHsmSignsReleasesNothing) {
  Bytes token_hash = Sha256Of("alice's bearer token");
  store::BearerTokenRecord token;
  token.token_hash = token_hash;
  token.account_id = alice_.actor.account_id;
  token.created_at = clock_.Now();
  token.expires_at = clock_.Now() + std::chrono::hours(1);
  ASSERT_TRUE(store_.InsertBearerToken(token).ok());
  Caller with_session = alice_;
  with_session.session_token_hash = token_hash;

  struct Case {
    std::string what;
    std::function<void()> meanwhile;
    ErrorCode code;
    std::string says;
    std::function<void()> undo;
  };
  const std::vector<Case> cases = {
      {"key disabled", [&] { ASSERT_TRUE(keys_svc_.DisableKey(admin_.actor, "release").ok()); },
       ErrorCode::kFailedPrecondition, "became disabled",
       [&] { ASSERT_TRUE(keys_svc_.EnableKey(admin_.actor, "release").ok()); }},
      {"grant revoked", [&] { ASSERT_TRUE(signing_.Revoke(admin_, "release", "a_alice").ok()); },
       ErrorCode::kPermissionDenied, "was revoked",
       [&] { ASSERT_TRUE(signing_.Grant(admin_, "release", "a_alice").ok()); }},
      {"account disabled",
       [&] {
         ASSERT_TRUE(store_
                         .UpdateAccountState("a_alice", store::AccountState::kActive,
                                             store::AccountState::kDisabled, clock_.Now())
                         .ok());
       },
       ErrorCode::kPermissionDenied, "no longer an active signer",
       [&] {
         ASSERT_TRUE(store_
                         .UpdateAccountState("a_alice", store::AccountState::kDisabled,
                                             store::AccountState::kActive, clock_.Now())
                         .ok());
       }},
      {"signer role removed",
       [&] { ASSERT_TRUE(store_.SetAccountRoles("a_alice", {}, clock_.Now()).ok()); },
       ErrorCode::kPermissionDenied, "no longer an active signer",
       [&] { ASSERT_TRUE(store_.SetAccountRoles("a_alice", {Role::kSigner}, clock_.Now()).ok()); }},
      {"session ended",
       [&] { ASSERT_TRUE(store_.RevokeBearerToken(token_hash, clock_.Now()).ok()); },
       ErrorCode::kUnauthenticated, "ended while the request ran", nullptr},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    Authorization a = AuthorizeOk(with_session, "release", {h1_});
    keys_.DuringNextSign(c.meanwhile);
    auto sigs = signing_.SignHash(with_session, "release", a.sad, {h1_}, SignatureScheme::kEcdsa,
                                  HashAlgorithm::kSha256);
    ASSERT_FALSE(sigs.ok());
    EXPECT_EQ(sigs.error().code(), c.code) << sigs.error().message();
    EXPECT_NE(sigs.error().message().find(c.says), std::string::npos) << sigs.error().message();
    EXPECT_TRUE(SigningService::HashesUsedUp(sigs.error())) << sigs.error().message();
    AuditEvent e = audit_.last();
    EXPECT_EQ(e.action, AuditAction::kSignRefused);
    EXPECT_EQ(e.details["stage"], "release");
    EXPECT_EQ(e.details["hashes_consumed"], "true");
    if (c.undo) c.undo();
  }
  for (const AuditEvent& e : audit_.events()) EXPECT_NE(e.action, AuditAction::kSign);

  // Nothing lost meanwhile: a fresh session signs as before.
  Authorization a = AuthorizeOk(alice_, "release", {h2_});
  auto sigs = Sign(alice_, "release", a.sad, {h2_});
  ASSERT_TRUE(sigs.ok()) << sigs.error().message();
  EXPECT_EQ(audit_.last().action, AuditAction::kSign);
}

// What the HSM answers after the checks is never read as the caller's fault: a lost login
// (CKR_USER_NOT_LOGGED_IN is Unauthenticated in the PKCS#11 adapter) would otherwise pass for a
// bad SAD, and a refusal of the key for a missing permission.
TEST_F(SigningTest, HsmRefusalsAfterConsumingAreTheServicesFailure) {
  const std::vector<std::pair<Error, ErrorCode>> cases = {
      {Unauthenticated("CKR_USER_NOT_LOGGED_IN"), ErrorCode::kUnavailable},
      {PermissionDenied("CKR_KEY_FUNCTION_NOT_PERMITTED"), ErrorCode::kInternal},
      {InvalidArgument("CKR_DATA_LEN_RANGE"), ErrorCode::kInternal},
      {Unavailable("CKR_DEVICE_REMOVED"), ErrorCode::kUnavailable},
  };
  for (const auto& [hsm_error, expected] : cases) {
    Authorization a = AuthorizeOk(alice_, "release", {h1_});
    keys_.FailNextSign(hsm_error);
    auto sigs = Sign(alice_, "release", a.sad, {h1_});
    ASSERT_FALSE(sigs.ok());
    EXPECT_EQ(sigs.error().code(), expected) << hsm_error.message();
    EXPECT_NE(sigs.error().message().find(hsm_error.message()), std::string::npos);
    EXPECT_NE(sigs.error().message().find("authorize again"), std::string::npos);
    ExpectRefusalRecorded(AuditAction::kSignRefused, hsm_error.message());
  }
}

TEST_F(SigningTest, GrantChangeIsUndoneWhenItCannotBeRecorded) {
  audit_.FailWhen([](const AuditEvent& e) { return e.action == AuditAction::kGrant; });
  Status s = signing_.Grant(admin_, "release", "a_bob");
  ASSERT_FALSE(s.ok());
  EXPECT_FALSE(*store_.HasGrant(key_.id, "a_bob"));
}

TEST_F(SigningTest, PolicyChangeIsUndoneWhenItCannotBeRecorded) {
  audit_.FailWhen([](const AuditEvent& e) { return e.action == AuditAction::kPolicyChange; });
  KeyPolicy p = signing_.DefaultPolicy(KeyAlgorithm::kEcP256);
  p.max_signatures_per_authorization = 7;
  ASSERT_FALSE(signing_.SetPolicy(admin_, "release", p).ok());
  EXPECT_EQ(signing_.GetPolicy(admin_, "release")->max_signatures_per_authorization, 1000);
}

// ---- grants, policies, extendTransaction ----

TEST_F(SigningTest, RevokedGrantStopsSigningAndIsRecorded) {
  Authorization a = AuthorizeOk(alice_, "release", {h1_});
  ASSERT_TRUE(signing_.Revoke(admin_, "release", "a_alice").ok());
  EXPECT_EQ(audit_.last().action, AuditAction::kRevokeGrant);
  EXPECT_EQ(audit_.last().details["account_id"], "a_alice");
  EXPECT_EQ(Sign(alice_, "release", a.sad, {h1_}).error().code(), ErrorCode::kPermissionDenied);
  EXPECT_EQ(signing_.Revoke(admin_, "release", "a_alice").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(signing_.Grant(admin_, "nope", "a_alice").error().code(), ErrorCode::kNotFound);
}

TEST_F(SigningTest, GetPolicyIsForAdminsAuditorsAndGrantees) {
  auto p = signing_.GetPolicy(alice_, "release");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, signing_.DefaultPolicy(KeyAlgorithm::kEcP256));
  EXPECT_EQ(p->allowed_sign_schemes, std::vector<SignatureScheme>{SignatureScheme::kEcdsa});
  EXPECT_TRUE(signing_.GetPolicy(auditor_, "release").ok());
  EXPECT_EQ(signing_.GetPolicy(bob_, "release").error().code(), ErrorCode::kPermissionDenied);
}

TEST_F(SigningTest, ListGrantsIsForAdminsAndAuditors) {
  ASSERT_TRUE(signing_.Grant(admin_, "release", "a_bob").ok());
  auto grants = signing_.ListGrants(auditor_, "release");
  ASSERT_TRUE(grants.ok()) << grants.error().message();
  EXPECT_EQ(*grants, (std::vector<std::string>{"a_alice", "a_bob"}));
  EXPECT_EQ(signing_.ListGrants(admin_, key_.id)->size(), 2u);
  EXPECT_EQ(signing_.ListGrants(alice_, "release").error().code(), ErrorCode::kPermissionDenied);
  EXPECT_EQ(signing_.ListGrants(admin_, "nope").error().code(), ErrorCode::kNotFound);
}

TEST_F(SigningTest, IsExpiredSadNeedsUnauthenticatedAndThePrefix) {
  EXPECT_TRUE(SigningService::IsExpiredSad(Unauthenticated(std::string(kSadExpiredPrefix))));
  EXPECT_FALSE(SigningService::IsExpiredSad(PermissionDenied(std::string(kSadExpiredPrefix))));
  EXPECT_FALSE(SigningService::IsExpiredSad(Unauthenticated("the bearer token expired")));
}

TEST_F(SigningTest, IsUnauthorizedHashNeedsPermissionDeniedAndThePrefix) {
  const std::string text = std::string(store::kHashNotAuthorizedMessage) + ": 00ff";
  EXPECT_TRUE(SigningService::IsUnauthorizedHash(PermissionDenied(text)));
  EXPECT_FALSE(SigningService::IsUnauthorizedHash(InvalidArgument(text)));
  EXPECT_FALSE(SigningService::IsUnauthorizedHash(PermissionDenied("no grant on key 'release'")));
}

TEST_F(SigningTest, ExtendTransactionReplacesTheSad) {
  Authorization first = AuthorizeOk(alice_, "release", {h1_});
  ASSERT_TRUE(Sign(alice_, "release", first.sad, {h1_}).ok());
  clock_.Advance(1min);
  auto second =
      signing_.ExtendTransaction(alice_, "release", first.sad, HashAlgorithm::kSha256, {h2_});
  ASSERT_TRUE(second.ok()) << second.error().message();
  EXPECT_EQ(audit_.last().action, AuditAction::kAuthorize);
  EXPECT_EQ(audit_.last().details["operation"], "extend_transaction");
  auto old = Sign(alice_, "release", first.sad, {h2_});
  EXPECT_EQ(old.error().code(), ErrorCode::kUnauthenticated);
  EXPECT_FALSE(SigningService::IsExpiredSad(old.error()));  // replaced, not expired
  EXPECT_TRUE(Sign(alice_, "release", second->sad, {h2_}).ok());
}

TEST_F(SigningTest, ExtendTransactionIsBoundToAccountAndCappedInTime) {
  ASSERT_TRUE(signing_.Grant(admin_, "release", "a_bob").ok());
  Authorization first = AuthorizeOk(alice_, "release", {h1_});
  auto stolen =
      signing_.ExtendTransaction(bob_, "release", first.sad, HashAlgorithm::kSha256, {h2_});
  EXPECT_EQ(stolen.error().code(), ErrorCode::kUnauthenticated);
  EXPECT_EQ(stolen.error().message(), store::kSadNotValidMessage);
  ExpectRefusalRecorded(AuditAction::kAuthorizeRefused, "another account");
  // Chain extensions; none may be valid past authorization time + max_transaction_lifetime.
  const TimePoint authorized_at = clock_.Now();
  SecretBytes sad = first.sad.Clone();
  for (int i = 0; i < 15; ++i) {
    clock_.Advance(4min);
    auto next = signing_.ExtendTransaction(alice_, "release", sad, HashAlgorithm::kSha256,
                                           {Sha256Of("n" + std::to_string(i))});
    if (clock_.Now() >= authorized_at + 1h) {
      EXPECT_EQ(next.error().code(), ErrorCode::kUnauthenticated);
      EXPECT_TRUE(SigningService::IsExpiredSad(next.error())) << next.error().message();
      break;
    }
    ASSERT_TRUE(next.ok()) << i << ": " << next.error().message();
    EXPECT_LE(next->expires_at, authorized_at + 1h);
    sad = std::move(next->sad);
  }
}

TEST_F(SigningTest, ExtensionsNeverAllowMoreSignaturesThanOneAuthorization) {
  KeyPolicy p = signing_.DefaultPolicy(KeyAlgorithm::kEcP256);
  p.max_signatures_per_authorization = 3;
  ASSERT_TRUE(signing_.SetPolicy(admin_, "release", p).ok());
  Authorization first = AuthorizeOk(alice_, "release", {h1_, h2_});
  ASSERT_TRUE(Sign(alice_, "release", first.sad, {h1_}).ok());
  auto second =
      signing_.ExtendTransaction(alice_, "release", first.sad, HashAlgorithm::kSha256, {h3_});
  ASSERT_TRUE(second.ok()) << second.error().message();
  EXPECT_EQ(audit_.last().details["transaction_num_signatures"], "3");
  ASSERT_TRUE(Sign(alice_, "release", second->sad, {h3_}).ok());
  // A fourth signature in the same transaction needs a new authorization (fresh factors).
  auto third = signing_.ExtendTransaction(alice_, "release", second->sad, HashAlgorithm::kSha256,
                                          {Sha256Of("fourth")});
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(third.error().message().find("would bring it to 4 (3 authorized so far); at most 3"),
            std::string::npos)
      << third.error().message();
  ExpectRefusalRecorded(AuditAction::kAuthorizeRefused, "at most 3");
  EXPECT_EQ(audit_.last().details.count("transaction_num_signatures"), 0u);
  // The refused extension changed nothing: the second SAD is still the transaction's.
  auto still = store_.GetActivation(
      pki::ComputeDigest(HashAlgorithm::kSha256, second->sad.view()).value());
  ASSERT_TRUE(still.ok()) << still.error().message();
  EXPECT_EQ(still->num_signatures, 3);
  EXPECT_EQ(still->signatures_used, 2);
  EXPECT_EQ(Sign(alice_, "release", second->sad, {h3_}).error().code(),
            ErrorCode::kPermissionDenied);  // h3 was used, not replaced
}

// ---- with the real SQLite store ----

class SqliteSigningTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("signet-signing-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto s = store::SqliteStore::Open((dir_ / "signet.db").string());
    ASSERT_TRUE(s.ok()) << s.error().message();
    store_ = std::move(s).value();
    for (const Caller* c : {&alice_, &admin_}) {
      ASSERT_TRUE(signet::testing::InsertCallerAccount(*store_, *c, clock_.Now()).ok());
    }
    // The real log, which can be made to fail every `authorize` append after the store ran the
    // entry's change: the render fails, so the whole transaction is undone.
    LogAppendFn direct = DirectLogAppender(*store_);
    sink_ = std::make_unique<LogAuditSink>(
        [this, direct](std::vector<store::LogEntryAppend> entries) -> Result<int64_t> {
          if (fail_authorize_ && !entries.empty() && entries.front().action == "authorize") {
            for (store::LogEntryAppend& e : entries) {
              e.render = [](int64_t) -> Result<std::string> {
                return Unavailable("the log's disk is full (test)");
              };
            }
          }
          return direct(std::move(entries));
        });
    keys_svc_ =
        std::make_unique<KeyService>(keys_, *store_, clock_, *sink_, TokenIdentity{"t", "1"});
    signing_ = std::make_unique<SigningService>(keys_, *store_, clock_, *sink_);
    auto k = keys_svc_->CreateKey(Actor{}, "release", KeyAlgorithm::kEcP384, "a_admin");
    ASSERT_TRUE(k.ok()) << k.error().message();
    key_ = *k;
    ASSERT_TRUE(signing_->Grant(admin_, "release", "a_alice").ok());
  }
  void TearDown() override {
    signing_.reset();
    keys_svc_.reset();
    sink_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::vector<nlohmann::json> Events(std::string_view action) {
    std::vector<nlohmann::json> out;
    auto rows = store_->ReadLogEntries(0, 1000);
    EXPECT_TRUE(rows.ok());
    if (!rows.ok()) return out;
    for (const auto& row : *rows) {
      if (row.action == action) out.push_back(nlohmann::json::parse(row.data));
    }
    return out;
  }

  std::filesystem::path dir_;
  FakeClock clock_{FromUnixSeconds(1'800'000'000)};
  signet::testing::FakeKeyStore keys_;
  std::unique_ptr<store::SqliteStore> store_;
  std::unique_ptr<LogAuditSink> sink_;
  std::atomic<bool> fail_authorize_{false};
  std::unique_ptr<KeyService> keys_svc_;
  std::unique_ptr<SigningService> signing_;
  store::KeyRecord key_;
  Caller alice_ = MakeCaller("a_alice", {Role::kSigner});
  Caller admin_ = MakeCaller("a_admin", {Role::kAdmin});
};

// With the real log: a key disabled while the HSM signs comes before the refusal in the log, and
// no `sign` entry follows it.
TEST_F(SqliteSigningTest, AKeyDisabledWhileTheHsmSignsIsInTheLogBeforeTheRefusal) {
  const Bytes h = pki::ComputeDigest(HashAlgorithm::kSha384, AsBytes("late.exe")).value();
  auto a = signing_->Authorize(alice_, "release", HashAlgorithm::kSha384, {h}, 1);
  ASSERT_TRUE(a.ok()) << a.error().message();
  keys_.DuringNextSign([&] { ASSERT_TRUE(keys_svc_->DisableKey(admin_.actor, "release").ok()); });
  auto sigs = signing_->SignHash(alice_, "release", a->sad, {h}, SignatureScheme::kEcdsa,
                                 HashAlgorithm::kSha384);
  ASSERT_FALSE(sigs.ok());
  EXPECT_EQ(sigs.error().code(), ErrorCode::kFailedPrecondition) << sigs.error().message();
  EXPECT_TRUE(Events("sign").empty());
  auto rows = store_->ReadLogEntries(0, 1000);
  ASSERT_TRUE(rows.ok());
  ASSERT_GE(rows->size(), 2u);
  EXPECT_EQ((*rows)[rows->size() - 2].action, "key_disable");
  EXPECT_EQ(rows->back().action, "sign_refused");
  auto refusal = nlohmann::json::parse(rows->back().data);
  EXPECT_EQ(refusal["details"]["stage"], "release");
}

// An authorization the log cannot record stores nothing: an extension leaves the old SAD as it
// was, and a new one does not count toward the account's open authorizations.
TEST_F(SqliteSigningTest, AnAuthorizationTheLogCannotRecordStoresNothing) {
  const Bytes h1 = pki::ComputeDigest(HashAlgorithm::kSha384, AsBytes("one.exe")).value();
  const Bytes h2 = pki::ComputeDigest(HashAlgorithm::kSha384, AsBytes("two.exe")).value();
  auto a = signing_->Authorize(alice_, "release", HashAlgorithm::kSha384, {h1}, 1);
  ASSERT_TRUE(a.ok()) << a.error().message();

  fail_authorize_ = true;
  auto extended =
      signing_->ExtendTransaction(alice_, "release", a->sad, HashAlgorithm::kSha384, {h2});
  ASSERT_FALSE(extended.ok());
  EXPECT_EQ(extended.error().code(), ErrorCode::kUnavailable) << extended.error().message();
  EXPECT_NE(extended.error().message().find("no SAD issued"), std::string::npos);
  auto fresh = signing_->Authorize(alice_, "release", HashAlgorithm::kSha384, {h2}, 1);
  ASSERT_FALSE(fresh.ok());
  EXPECT_EQ(fresh.error().code(), ErrorCode::kUnavailable) << fresh.error().message();
  fail_authorize_ = false;

  auto open = store_->CountOpenActivations("a_alice", clock_.Now());
  ASSERT_TRUE(open.ok()) << open.error().message();
  EXPECT_EQ(*open, 1);
  auto sigs = signing_->SignHash(alice_, "release", a->sad, {h1}, SignatureScheme::kEcdsa,
                                 HashAlgorithm::kSha384);
  EXPECT_TRUE(sigs.ok()) << sigs.error().message();
  const std::vector<nlohmann::json> refusals = Events("authorize_refused");
  ASSERT_EQ(refusals.size(), 2u);
  for (const nlohmann::json& r : refusals) {
    EXPECT_FALSE(r["details"].contains("sad_sha256")) << r.dump();  // never issued
  }
  EXPECT_EQ(Events("authorize").size(), 1u);
}

TEST_F(SqliteSigningTest, ConcurrentSignHashWithSameSadAndHashSignsExactlyOnce) {
  for (int round = 0; round < 5; ++round) {
    const Bytes hr =
        pki::ComputeDigest(HashAlgorithm::kSha384, AsBytes("app.exe" + std::to_string(round)))
            .value();
    auto a = signing_->Authorize(alice_, "release", HashAlgorithm::kSha384, {hr}, 1);
    ASSERT_TRUE(a.ok()) << a.error().message();
    constexpr int kThreads = 8;
    std::barrier start(kThreads);
    std::atomic<int> signed_count{0};
    std::atomic<int> refused{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&] {
        start.arrive_and_wait();
        auto sigs = signing_->SignHash(alice_, "release", a->sad, {hr}, SignatureScheme::kEcdsa,
                                       HashAlgorithm::kSha384);
        if (sigs.ok()) {
          EXPECT_EQ(sigs->size(), 1u);
          ++signed_count;
        } else {
          EXPECT_EQ(sigs.error().code(), ErrorCode::kPermissionDenied);
          ++refused;
        }
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(signed_count.load(), 1) << "round " << round;
    EXPECT_EQ(refused.load(), kThreads - 1) << "round " << round;
  }
  EXPECT_EQ(Events("sign").size(), 5u);
  EXPECT_EQ(Events("sign_refused").size(), 5u * 7u);
}

TEST_F(SqliteSigningTest, SignEventIsDurableCanonicalJsonWithEveryHash) {
  const Bytes h1 = pki::ComputeDigest(HashAlgorithm::kSha384, AsBytes("a")).value();
  const Bytes h2 = pki::ComputeDigest(HashAlgorithm::kSha384, AsBytes("b")).value();
  auto a = signing_->Authorize(alice_, "release", HashAlgorithm::kSha384, {h1, h2}, 2);
  ASSERT_TRUE(a.ok());
  auto sigs = signing_->SignHash(alice_, "release", a->sad, {h1, h2}, SignatureScheme::kEcdsa,
                                 HashAlgorithm::kSha384);
  ASSERT_TRUE(sigs.ok()) << sigs.error().message();
  auto rows = store_->ReadLogEntries(0, 1000);
  ASSERT_TRUE(rows.ok());
  ASSERT_FALSE(rows->empty());
  const store::LogEntryRow& last = rows->back();
  EXPECT_EQ(last.action, "sign");
  EXPECT_EQ(last.key_id, key_.id);
  nlohmann::json j = nlohmann::json::parse(last.data);
  EXPECT_EQ(j.dump(), last.data);  // stored text is already canonical
  EXPECT_EQ(j["index"], last.index);
  EXPECT_EQ(j["actor"]["account_id"], "a_alice");
  EXPECT_EQ(j["signature"]["key_name"], "release");
  EXPECT_EQ(j["signature"]["algorithm"], "ecdsa");
  EXPECT_EQ(j["signature"]["hash_algorithm"], "sha384");
  EXPECT_EQ(j["signature"]["hashes"], nlohmann::json::array({HexEncode(h1), HexEncode(h2)}));
  EXPECT_EQ(j["outcome"], "success");
  EXPECT_EQ(j["request_id"], "req-a_alice");
  EXPECT_EQ(j["actor"]["client_address"], "192.0.2.1:4000");
  EXPECT_TRUE(Verify(key_, SignatureScheme::kEcdsa, HashAlgorithm::kSha384, h1, (*sigs)[0]));
}

TEST_F(SqliteSigningTest, ExpiredSadIsRefusedAgainstSqlite) {
  const Bytes h = pki::ComputeDigest(HashAlgorithm::kSha384, AsBytes("x")).value();
  auto a = signing_->Authorize(alice_, "release", HashAlgorithm::kSha384, {h}, 1);
  ASSERT_TRUE(a.ok());
  clock_.Advance(301s);
  auto sigs = signing_->SignHash(alice_, "release", a->sad, {h}, SignatureScheme::kEcdsa,
                                 HashAlgorithm::kSha384);
  ASSERT_FALSE(sigs.ok());
  EXPECT_EQ(sigs.error().message(), "SAD expired");
  EXPECT_TRUE(SigningService::IsExpiredSad(sigs.error()));
  auto refused = Events("sign_refused");
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0]["outcome"], "SAD expired");
  EXPECT_EQ(refused[0]["details"]["error"], "unauthenticated");
}

}  // namespace
}  // namespace signet::service
