// The CSC API v2 handlers driven through the Router (no network): real AccountService (Argon2id,
// liboath, in-memory store, fake sealer), real SigningService and KeyService on the FakeKeyStore.
#include "server/csc/csc_api.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/encoding.h"
#include "common/log.h"
#include "pki/pki.h"
#include "pki/testing/test_ca.h"
#include "service/adapters/argon2_password_hasher.h"
#include "service/adapters/oath_totp.h"
#include "service/testing/fakes.h"

namespace signet::server::csc {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using store::Role;

constexpr service::Argon2Parameters kFastArgon2{
    .iterations = 1, .memory_kib = 256, .parallelism = 1};
constexpr std::string_view kSha256Oid = "2.16.840.1.101.3.4.2.1";
const std::string kFingerprint(64, 'c');

// Keeps every event, so tests can look at what the handlers had recorded.
class KeepingAuditSink final : public service::AuditSink {
 public:
  Status Record(const service::AuditEvent& event) override {
    std::lock_guard lock(mu_);
    events_.push_back(event);
    return OkStatus();
  }
  Status RecordChange(const service::AuditEvent& event,
                      const service::AuditedChange& change) override {
    std::lock_guard lock(mu_);
    SIGNET_ASSIGN_OR_RETURN(service::AuditEvent recorded,
                            signet::testing::MakeChange(event, change));
    events_.push_back(std::move(recorded));
    return OkStatus();
  }
  // Not atomic here (no transaction to run the check in); the check's effect is what is tested.
  Status RecordIf(const service::AuditEvent& event, const service::AuditCheck& check) override {
    SIGNET_TRY(check());
    return Record(event);
  }
  std::vector<service::AuditEvent> events() {
    std::lock_guard lock(mu_);
    return events_;
  }

 private:
  std::mutex mu_;
  std::vector<service::AuditEvent> events_;
};

using signet::testing::Base32Decode;

std::string B64Hash(std::string_view text, HashAlgorithm h = HashAlgorithm::kSha256) {
  return Base64Encode(pki::ComputeDigest(h, AsBytes(text)).value());
}

bool Verify(const store::KeyRecord& key, SignatureScheme scheme, HashAlgorithm hash,
            ByteView digest, ByteView sig) {
  return signet::testing::VerifyWithPublicKey(key.public_key_spki, scheme, hash, digest, sig);
}

struct Person {
  std::string id;
  std::string name;
  std::string password;
  SecretBytes seed;
};

class CscApiTest : public ::testing::Test {
 protected:
  CscApiTest()
      : clock_(FromUnixSeconds(ToUnixSeconds(std::chrono::system_clock::now()))),
        accounts_(
            store_, sealer_, hasher_, totp_, clock_, {},
            [this](const service::AccountEvent& e, const service::AuditedChange& change) -> Status {
              std::lock_guard lock(account_events_mu_);
              SIGNET_ASSIGN_OR_RETURN(service::AccountEvent recorded,
                                      signet::testing::MakeChange(e, change));
              account_events_.push_back(std::move(recorded));
              return OkStatus();
            }),
        key_service_(key_store_, store_, clock_, audit_, service::TokenIdentity{"fake", "0001"}),
        signing_(key_store_, store_, clock_, audit_) {}

  void SetUp() override {
    ASSERT_TRUE(
        RegisterCscRoutes(router_, {accounts_, signing_, key_service_, clock_, "signet-test"})
            .ok());
    alice_ = MakePerson("alice");
    bob_ = MakePerson("bob");
    auto ec = key_service_.CreateKey(service::Actor{}, "ec", KeyAlgorithm::kEcP256, "a_admin");
    ASSERT_TRUE(ec.ok()) << ec.error().message();
    ec_ = *ec;
    auto rsa = key_service_.CreateKey(service::Actor{}, "rsa", KeyAlgorithm::kRsa3072, "a_admin");
    ASSERT_TRUE(rsa.ok()) << rsa.error().message();
    rsa_ = *rsa;
    auto other =
        key_service_.CreateKey(service::Actor{}, "other", KeyAlgorithm::kEcP256, "a_admin");
    ASSERT_TRUE(other.ok());
    service::Caller admin;
    admin.actor.account_id = "a_admin";
    admin.actor.roles = store::RoleSet{Role::kAdmin};
    for (const char* key : {"ec", "rsa"}) {
      ASSERT_TRUE(signing_.Grant(admin, key, alice_.id).ok());
    }
    ASSERT_TRUE(signing_.Grant(admin, "ec", bob_.id).ok());
  }

  // A signer who has already replaced the one-time password; the clock moves to a fresh step.
  Person MakePerson(const std::string& name) {
    auto created =
        accounts_.CreatePerson(service::SystemPrincipal(), name, store::RoleSet{Role::kSigner});
    EXPECT_TRUE(created.ok());
    Person p{created->account.id, name, "", Base32Decode(created->totp.secret_base32.text_view())};
    auto token = accounts_.LoginWithPassword(name, created->one_time_password, Code(p), {"x"});
    EXPECT_TRUE(token.ok()) << token.error().message();
    p.password = name + " has a long password";
    EXPECT_TRUE(accounts_
                    .ChangePassword(token->principal, created->one_time_password,
                                    SecretBytes(std::string_view(p.password)))
                    .ok());
    clock_.Advance(30s);
    return p;
  }

  std::string Code(const Person& p) {
    return std::string(totp_.Generate(p.seed, clock_.Now())->text_view());
  }

  Response Call(std::string_view route, std::string body,
                std::vector<std::pair<std::string, std::string>> headers = {},
                std::string content_type = "application/json") {
    Request r;
    r.method = "POST";
    r.path = "/csc/v2/" + std::string(route);
    r.target = r.path;
    r.body = std::move(body);
    if (!content_type.empty()) r.headers.emplace_back("content-type", content_type);
    for (auto& h : headers) r.headers.push_back(std::move(h));
    r.client_address = "192.0.2.9:4444";
    r.request_id = std::string(32, 'f');
    r.client_cert_sha256 = client_cert_;
    Router::Match m = router_.Find("POST", r.path);
    EXPECT_NE(m.route, nullptr) << r.path;
    if (m.route == nullptr) return {};
    r.route = m.route->pattern;
    return m.route->handler(r);
  }

  Response CallAs(const std::string& token, std::string_view route, const json& body) {
    return Call(route, body.dump(), {{"authorization", "Bearer " + token}});
  }

  Response LoginResponse(const Person& p, const std::string& password, const std::string& otp) {
    std::string basic = Base64Encode(AsBytes(p.name + ":" + password));
    return Call("auth/login", json{{"otp", otp}}.dump(), {{"authorization", "Basic " + basic}});
  }

  std::string Login(const Person& p) {
    Response r = LoginResponse(p, p.password, Code(p));
    EXPECT_EQ(r.status, 200) << r.body;
    clock_.Advance(30s);
    std::string token = json::parse(r.body).value("access_token", "");
    people_by_token_[token] = &p;
    return token;
  }

  // The authData of one activation by `p`: the password and the current step's code; the clock
  // then moves to the next step, so the next call has a fresh code.
  json AuthData(const Person& p, const std::string& pin = "") {
    json data = json::array({{{"id", "PIN"}, {"value", pin.empty() ? p.password : pin}},
                             {{"id", "OTP"}, {"value", Code(p)}}});
    clock_.Advance(30s);
    return data;
  }

  Response AuthorizeAs(const std::string& token, const std::string& credential,
                       const std::vector<std::string>& hashes) {
    json body = {{"credentialID", credential},
                 {"numSignatures", hashes.size()},
                 {"hashes", hashes},
                 {"hashAlgorithmOID", kSha256Oid}};
    if (auto it = people_by_token_.find(token); it != people_by_token_.end()) {
      body["authData"] = AuthData(*it->second);
    }
    return CallAs(token, "credentials/authorize", body);
  }

  std::string AuthorizeOk(const std::string& token, const std::string& credential,
                          const std::vector<std::string>& hashes) {
    Response r = AuthorizeAs(token, credential, hashes);
    EXPECT_EQ(r.status, 200) << r.body;
    return json::parse(r.body).value("SAD", "");
  }

  // signHash of one freshly authorized hash with the P-256 key, its HSM signature failing with
  // `failure`.
  Response SignHashWithFailure(Error failure) {
    std::string token = Login(alice_);
    std::string hash = B64Hash("fails in the HSM");
    std::string sad = AuthorizeOk(token, ec_.id, {hash});
    key_store_.FailNextSign(std::move(failure));
    return CallAs(token, "signatures/signHash",
                  {{"credentialID", ec_.id},
                   {"SAD", sad},
                   {"hashes", {hash}},
                   {"signAlgo", "1.2.840.10045.4.3.2"}});
  }

  static void ExpectError(const Response& r, int status, std::string_view error) {
    EXPECT_EQ(r.status, status) << r.body;
    json body = json::parse(r.body, nullptr, false);
    ASSERT_TRUE(body.is_object()) << r.body;
    EXPECT_EQ(body.value("error", ""), error) << r.body;
    EXPECT_FALSE(body.value("error_description", "").empty());
  }

  FakeClock clock_;
  signet::testing::MemoryStore store_;
  signet::testing::FakeSecretSealer sealer_;
  service::Argon2PasswordHasher hasher_{kFastArgon2};
  service::OathTotp totp_;
  signet::testing::FakeKeyStore key_store_;
  KeepingAuditSink audit_;
  std::mutex account_events_mu_;
  std::vector<service::AccountEvent> account_events_;  // guarded by account_events_mu_
  service::AccountService accounts_;
  service::KeyService key_service_;
  service::SigningService signing_;
  Router router_;
  std::optional<std::string> client_cert_;
  Person alice_, bob_;
  // Whose token it is, for authData (the people outlive their tokens: fixture members or locals).
  std::map<std::string, const Person*> people_by_token_;
  store::KeyRecord ec_, rsa_;
};

// Password logins beyond the bound get 503 + Retry-After before any password is hashed or any
// code spent, and nothing is recorded; one that frees its slot lets the next in.
TEST_F(CscApiTest, PasswordLoginsBeyondTheirBoundAreRefusedUnchecked) {
  auto limit = std::make_shared<ConcurrencyLimit>(1);
  Router bounded_router;
  ASSERT_TRUE(RegisterCscRoutes(bounded_router,
                                {accounts_, signing_, key_service_, clock_, "signet-test", limit})
                  .ok());
  std::swap(router_, bounded_router);
  ASSERT_TRUE(limit->TryAcquire());  // a login in progress
  const size_t before = audit_.events().size();
  const std::string code = Code(alice_);
  Response busy = LoginResponse(alice_, alice_.password, code);
  EXPECT_EQ(busy.status, 503) << busy.body;
  EXPECT_NE(busy.body.find("too many password logins"), std::string::npos) << busy.body;
  bool retry_after = false;
  for (const auto& [name, value] : busy.headers) retry_after |= name == "Retry-After";
  EXPECT_TRUE(retry_after);
  EXPECT_EQ(audit_.events().size(), before);
  EXPECT_EQ(limit->in_flight(), 1u);
  limit->Release();
  // The same code still works: the refused request did not spend it.
  Response ok = LoginResponse(alice_, alice_.password, code);
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(limit->in_flight(), 0u);  // given back after the login
  Response wrong = LoginResponse(bob_, "not the password", Code(bob_));
  EXPECT_NE(wrong.status, 503);
  EXPECT_EQ(limit->in_flight(), 0u);  // also after a refused one
}

// The bound on open SADs is checked before a person's factors: the one-time code of a refused
// request is not spent, so a client's retry is no failed login.
TEST_F(CscApiTest, OpenSadBoundIsCheckedBeforeAPersonsCodeIsSpent) {
  service::SigningOptions options;
  options.max_open_activations_per_account = 1;
  service::SigningService bounded(key_store_, store_, clock_, audit_, options);
  Router bounded_router;
  ASSERT_TRUE(
      RegisterCscRoutes(bounded_router, {accounts_, bounded, key_service_, clock_, "signet-test"})
          .ok());
  std::swap(router_, bounded_router);
  const std::string token = Login(alice_);
  const std::string first_hash = B64Hash("first");
  const std::string sad = AuthorizeOk(token, ec_.id, {first_hash});
  const json body = {{"credentialID", ec_.id},
                     {"numSignatures", 1},
                     {"hashes", {B64Hash("second")}},
                     {"hashAlgorithmOID", kSha256Oid},
                     {"authData", json::array({{{"id", "PIN"}, {"value", alice_.password}},
                                               {{"id", "OTP"}, {"value", Code(alice_)}}})}};
  Response refused = CallAs(token, "credentials/authorize", body);
  ExpectError(refused, 429, "too_many_requests");
  EXPECT_NE(refused.body.find("too many open authorizations"), std::string::npos) << refused.body;
  for (const auto& [name, value] : refused.headers) EXPECT_NE(name, "Retry-After");  // no window
  EXPECT_EQ(audit_.events().back().action, service::AuditAction::kAuthorizeRefused);
  // Recorded as Authorize records its refusals: under the key, with the hashes asked for.
  ASSERT_TRUE(audit_.events().back().signature.has_value());
  EXPECT_EQ(audit_.events().back().signature->key_id, ec_.id);
  EXPECT_EQ(audit_.events().back().signature->hashes.size(), 1u);
  EXPECT_EQ(audit_.events().back().details.at("stage"), "precheck");
  // Used up, the first SAD no longer counts, and the same code (not spent) authorizes.
  ASSERT_EQ(CallAs(token, "signatures/signHash",
                   {{"credentialID", ec_.id},
                    {"SAD", sad},
                    {"hashes", {first_hash}},
                    {"signAlgo", "1.2.840.10045.4.3.2"}})
                .status,
            200);
  Response retried = CallAs(token, "credentials/authorize", body);
  EXPECT_EQ(retried.status, 200) << retried.body;
  std::swap(router_, bounded_router);
}

// Every check Authorize would refuse runs before a person's factors: the corrected request may
// use the same one-time code, which a refused request did not spend.
TEST_F(CscApiTest, ARefusedAuthorizeDoesNotSpendThePersonsCode) {
  const std::string token = Login(alice_);
  const std::string code = Code(alice_);
  json body = {{"credentialID", ec_.id},
               {"numSignatures", 2},
               {"hashes", {B64Hash("only one")}},
               {"hashAlgorithmOID", kSha256Oid},
               {"authData", json::array({{{"id", "PIN"}, {"value", alice_.password}},
                                         {{"id", "OTP"}, {"value", code}}})}};
  Response miscounted = CallAs(token, "credentials/authorize", body);
  ExpectError(miscounted, 400, "invalid_request");
  EXPECT_NE(miscounted.body.find("numSignatures"), std::string::npos) << miscounted.body;
  body["numSignatures"] = 1;
  body["hashes"] = {B64Hash("only one"), B64Hash("only one")};
  ExpectError(CallAs(token, "credentials/authorize", body), 400, "invalid_request");
  body["numSignatures"] = 1;
  body["hashes"] = {B64Hash("only one")};
  Response fixed = CallAs(token, "credentials/authorize", body);
  EXPECT_EQ(fixed.status, 200) << fixed.body;
  EXPECT_EQ(audit_.events().back().action, service::AuditAction::kAuthorize);
}

TEST_F(CscApiTest, InfoDescribesTheService) {
  Response r = Call("info", "", {}, "");
  ASSERT_EQ(r.status, 200) << r.body;
  json info = json::parse(r.body);
  EXPECT_EQ(info["specs"], "2.0.0.2");
  EXPECT_EQ(info["name"], "signet-test");
  EXPECT_EQ(info["authType"], json({"basic", "TLS"}));
  auto algos = info["signAlgorithms"]["algos"];
  EXPECT_NE(std::find(algos.begin(), algos.end(), "1.2.840.113549.1.1.10"), algos.end());
  EXPECT_NE(std::find(algos.begin(), algos.end(), "1.2.840.10045.4.3.2"), algos.end());
  // Every signAlgo signHash takes, ecPublicKey too (credentials/info lists it for EC keys).
  EXPECT_NE(std::find(algos.begin(), algos.end(), "1.2.840.10045.2.1"), algos.end());
}

TEST_F(CscApiTest, LoginReturnsAToken) {
  Response r = LoginResponse(alice_, alice_.password, Code(alice_));
  ASSERT_EQ(r.status, 200) << r.body;
  json body = json::parse(r.body);
  EXPECT_EQ(body["access_token"].get<std::string>().size(), 43u);
  // Judged by the services' clock (a FakeClock here), so exactly the token lifetime.
  EXPECT_EQ(body["expires_in"].get<int64_t>(), 15 * 60);
}

TEST_F(CscApiTest, LoginWithWrongPasswordIsRefused) {
  ExpectError(LoginResponse(alice_, "wrong password!", Code(alice_)), 401,
              "invalid_authentication_data");
}

TEST_F(CscApiTest, LoginWithWrongOtpIsRefused) {
  std::string code = Code(alice_);
  code[0] = code[0] == '0' ? '1' : '0';
  ExpectError(LoginResponse(alice_, alice_.password, code), 401, "invalid_authentication_data");
}

TEST_F(CscApiTest, LoginWithoutOtpIsABadRequest) {
  std::string basic = Base64Encode(AsBytes(alice_.name + ":" + alice_.password));
  ExpectError(Call("auth/login", "{}", {{"authorization", "Basic " + basic}}), 400,
              "invalid_request");
}

// Every authentication attempt is recorded, also those refused before a credential is checked.
TEST_F(CscApiTest, LoginRefusalsBeforeAnyCredentialAreRecorded) {
  struct Case {
    std::vector<std::pair<std::string, std::string>> headers;
    int status;
    std::string name;   // the account name the event names, if any
    std::string error;  // a phrase of details["error"]
  };
  const std::string basic = Base64Encode(AsBytes(alice_.name + ":" + alice_.password));
  const std::vector<Case> cases = {
      {{{"authorization", "Basic " + basic}}, 400, "alice", "'otp'"},
      // A name that is no account's is kept as a digest only (AccountService::LoginAttempt).
      {{{"authorization", "Basic " + Base64Encode(AsBytes("hunter2:x"))}}, 400, "", "'otp'"},
      {{{"authorization", "Basic !!!"}}, 400, "", "base64"},
      {{{"authorization", "Basic " + Base64Encode(AsBytes("no colon"))}}, 400, "", "':'"},
      {{{"authorization", "Bearer something"}}, 401, "", "HTTP Basic"},
      {{}, 401, "", "TLS client certificate"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.error);
    const size_t before = account_events_.size();
    Response r = Call("auth/login", "{}", c.headers);
    EXPECT_EQ(r.status, c.status) << r.body;
    ASSERT_EQ(account_events_.size(), before + 1) << "the attempt was not recorded";
    const service::AccountEvent& e = account_events_.back();
    EXPECT_EQ(e.action, service::AccountAction::kLoginFailure);
    EXPECT_EQ(e.reason, service::AccountReason::kInvalidArgument);
    EXPECT_EQ(e.actor_name, c.name);
    EXPECT_EQ(e.request_id, std::string(32, 'f'));
    EXPECT_NE(e.details.at("error").find(c.error), std::string::npos) << e.details.at("error");
  }
  // None of them counts towards alice's lockout.
  service::Principal alice;
  alice.account_id = alice_.id;
  alice.name = alice_.name;
  auto info = accounts_.GetSelf(alice);
  ASSERT_TRUE(info.ok()) << info.error().message();
  EXPECT_EQ(info->failed_attempts, 0);
}

TEST_F(CscApiTest, AnOtpIsAcceptedOnce) {
  std::string code = Code(alice_);
  ASSERT_EQ(LoginResponse(alice_, alice_.password, code).status, 200);
  ExpectError(LoginResponse(alice_, alice_.password, code), 401, "invalid_authentication_data");
}

TEST_F(CscApiTest, LoginWithClientCertificate) {
  ASSERT_TRUE(accounts_
                  .CreateService(service::SystemPrincipal(), "ci", store::RoleSet{Role::kSigner},
                                 kFingerprint)
                  .ok());
  client_cert_ = kFingerprint;
  Response r = Call("auth/login", "");
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_FALSE(account_events_.empty());
  EXPECT_EQ(account_events_.back().action, service::AccountAction::kLoginSuccess);
  EXPECT_EQ(account_events_.back().auth_method, "mtls");
  EXPECT_EQ(account_events_.back().request_id, std::string(32, 'f'));
  EXPECT_EQ(account_events_.back().client_address, "192.0.2.9:4444");
  client_cert_ = std::string(64, 'd');
  ExpectError(Call("auth/login", ""), 401, "invalid_authentication_data");
}

// RFC 6750 §3: a 401 says which scheme the route wants.
std::string WwwAuthenticate(const Response& r) {
  for (const auto& [name, value] : r.headers) {
    if (name == "WWW-Authenticate") return value;
  }
  return "";
}

TEST_F(CscApiTest, NoBearerTokenIsUnauthorized) {
  Response none = Call("credentials/list", "{}");
  ExpectError(none, 401, "invalid_token");
  EXPECT_EQ(WwwAuthenticate(none), "Bearer realm=\"signet\"");
  Response bad = Call("credentials/list", "{}", {{"authorization", "Bearer nonsense"}});
  ExpectError(bad, 401, "invalid_token");
  EXPECT_EQ(WwwAuthenticate(bad), "Bearer realm=\"signet\"");
  Response login = LoginResponse(alice_, "wrong password", Code(alice_));
  ExpectError(login, 401, "invalid_authentication_data");
  EXPECT_EQ(WwwAuthenticate(login), "Basic realm=\"signet\"");
}

// An empty 'token' names nothing: a 204 would claim a revocation that did not happen.
TEST_F(CscApiTest, RevokingAnEmptyTokenIsABadRequest) {
  std::string token = Login(alice_);
  const size_t before = account_events_.size();
  ExpectError(CallAs(token, "auth/revoke", {{"token", ""}}), 400, "invalid_request");
  EXPECT_EQ(account_events_.size(), before);
  EXPECT_EQ(CallAs(token, "credentials/list", json::object()).status, 200);  // still live
}

// Logins, revocations and rejected tokens name the request and the peer in their events.
TEST_F(CscApiTest, AccountEventsCarryTheRequestAndAddress) {
  const size_t before = account_events_.size();
  std::string token = Login(alice_);
  EXPECT_EQ(LoginResponse(alice_, "wrong password", Code(alice_)).status, 401);
  // Revoking a token that is not valid: a rejected token, answered 204 (RFC 7009).
  EXPECT_EQ(CallAs(token, "auth/revoke", {{"token", std::string(43, 'B')}}).status, 204);
  EXPECT_EQ(CallAs(token, "auth/revoke", json::object()).status, 204);
  std::vector<service::AccountEvent> events = account_events_;
  ASSERT_EQ(events.size() - before, 4u);
  const std::vector<service::AccountAction> expected = {
      service::AccountAction::kLoginSuccess, service::AccountAction::kLoginFailure,
      service::AccountAction::kTokenRejected, service::AccountAction::kTokenRevoke};
  for (size_t i = 0; i < expected.size(); ++i) {
    const service::AccountEvent& e = events[before + i];
    EXPECT_EQ(e.action, expected[i]) << i;
    EXPECT_EQ(e.request_id, std::string(32, 'f')) << i;
    EXPECT_EQ(e.client_address, "192.0.2.9:4444") << i;
  }
}

// Naming another account's live token at auth/revoke changes nothing and is answered like an
// unknown token (204), so revoke is no test of whether a token found elsewhere is live; the log
// says who tried. A service account's bound token is not used by being named.
TEST_F(CscApiTest, RevokingAnotherAccountsTokenChangesNothingAndSaysNothing) {
  auto ci = accounts_.CreateService(service::SystemPrincipal(), "ci",
                                    store::RoleSet{Role::kSigner}, kFingerprint);
  ASSERT_TRUE(ci.ok()) << ci.error().message();
  client_cert_ = kFingerprint;
  Response login = Call("auth/login", "");
  ASSERT_EQ(login.status, 200) << login.body;
  const std::string ci_token = json::parse(login.body).value("access_token", "");
  client_cert_.reset();
  std::string alice_token = Login(alice_);
  const size_t before = account_events_.size();
  Response r = CallAs(alice_token, "auth/revoke", {{"token", ci_token}});
  EXPECT_EQ(r.status, 204) << r.body;
  EXPECT_EQ(r.status, CallAs(alice_token, "auth/revoke", {{"token", std::string(43, 'B')}}).status);
  ASSERT_EQ(account_events_.size(), before + 2);
  const service::AccountEvent& e = account_events_[before];
  EXPECT_EQ(e.action, service::AccountAction::kTokenRejected);
  EXPECT_EQ(e.reason, service::AccountReason::kPermissionDenied);
  EXPECT_EQ(e.actor_id, alice_.id);
  EXPECT_EQ(e.object, ci->id);
  client_cert_ = kFingerprint;
  EXPECT_EQ(CallAs(ci_token, "credentials/list", json::object()).status, 200);  // still live
  client_cert_.reset();
  EXPECT_EQ(CallAs(alice_token, "credentials/list", json::object()).status, 200);
}

TEST_F(CscApiTest, RevokedTokenStopsWorking) {
  std::string token = Login(alice_);
  Response r = CallAs(token, "auth/revoke", json::object());
  EXPECT_EQ(r.status, 204) << r.body;
  ExpectError(CallAs(token, "credentials/list", json::object()), 401, "invalid_token");
}

// A key twice in one object has two readings (the first or the last value): refused, at any
// depth; the same key in different objects is fine.
TEST_F(CscApiTest, AKeyTwiceInOneObjectIsABadRequest) {
  std::string token = Login(alice_);
  const std::vector<std::pair<std::string, std::string>> auth = {
      {"authorization", "Bearer " + token}};
  Response twice = Call("credentials/list", R"({"maxResults":1,"maxResults":100})", auth);
  ExpectError(twice, 400, "invalid_request");
  EXPECT_NE(twice.body.find("'maxResults' twice"), std::string::npos) << twice.body;
  ExpectError(Call("credentials/list", R"({"clientData":{"a":1,"b":{"c":2,"c":3}}})", auth), 400,
              "invalid_request");
  EXPECT_EQ(Call("credentials/list", R"({"clientData":{"a":{"x":1},"b":{"x":2}}})", auth).status,
            200);
}

TEST_F(CscApiTest, MalformedJsonIsABadRequest) {
  std::string token = Login(alice_);
  ExpectError(
      Call("credentials/list", "{\"credentialInfo\":", {{"authorization", "Bearer " + token}}), 400,
      "invalid_request");
  ExpectError(Call("credentials/list", "[1,2]", {{"authorization", "Bearer " + token}}), 400,
              "invalid_request");
  // Nested deeper than any request needs: refused before anything copies it (a copy recurses
  // once per level). 64 levels are still fine.
  const std::string deep = "{\"hashes\":" + std::string(100000, '[');
  Response r = Call("credentials/list", deep, {{"authorization", "Bearer " + token}});
  ExpectError(r, 400, "invalid_request");
  EXPECT_NE(r.body.find("deeper than 64 levels"), std::string::npos) << r.body;
  const std::string nested_64 = "{\"x\":" + std::string(63, '[') + std::string(63, ']') + "}";
  EXPECT_EQ(Call("credentials/list", nested_64, {{"authorization", "Bearer " + token}}).status,
            200);
}

TEST_F(CscApiTest, WrongContentTypeIsRefused) {
  std::string token = Login(alice_);
  ExpectError(Call("credentials/list", "{}", {{"authorization", "Bearer " + token}}, "text/plain"),
              415, "invalid_request");
}

TEST_F(CscApiTest, FieldOfTheWrongTypeIsNamed) {
  std::string token = Login(alice_);
  Response r = CallAs(token, "credentials/authorize",
                      {{"credentialID", ec_.id},
                       {"numSignatures", "one"},
                       {"hashes", {B64Hash("a")}},
                       {"hashAlgorithmOID", kSha256Oid}});
  ExpectError(r, 400, "invalid_request");
  EXPECT_NE(r.body.find("numSignatures"), std::string::npos);
}

// A body the service never saw is still recorded: who tried, on which credential, and why it was
// refused (issue 3 "Events": every authorization and signature attempt).
TEST_F(CscApiTest, MalformedAuthorizeAndSignHashBodiesAreRecordedAsRefusals) {
  std::string token = Login(alice_);
  const std::string sad = AuthorizeOk(token, ec_.id, {B64Hash("x")});
  struct Case {
    std::string route;
    json body;
    std::string action;
    std::string object;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"credentials/authorize",
       {{"credentialID", ec_.id},
        {"numSignatures", "one"},
        {"hashes", {B64Hash("a")}},
        {"hashAlgorithmOID", kSha256Oid}},
       "authorize_refused",
       ec_.id,
       "numSignatures"},
      {"credentials/authorize", {{"numSignatures", 1}}, "authorize_refused", "", "credentialID"},
      {"credentials/extendTransaction",
       {{"credentialID", ec_.id}, {"SAD", sad}, {"hashAlgorithmOID", "1.2.3"}, {"hashes", {}}},
       "authorize_refused",
       ec_.id,
       "1.2.3"},
      {"signatures/signHash",
       {{"credentialID", ec_.id},
        {"SAD", sad},
        {"hashes", {"not base64!"}},
        {"signAlgo", "1.2.840.10045.4.3.2"}},
       "sign_refused",
       ec_.id,
       "base64"},
      {"signatures/signHash",
       {{"credentialID", ec_.id},
        {"SAD", sad},
        {"operationMode", "A"},
        {"hashes", {B64Hash("x")}},
        {"signAlgo", "1.2.840.10045.4.3.2"}},
       "sign_refused",
       ec_.id,
       "operationMode"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.route + " " + c.body.dump());
    const size_t before = audit_.events().size();
    ExpectError(CallAs(token, c.route, c.body), 400, "invalid_request");
    std::vector<service::AuditEvent> events = audit_.events();
    ASSERT_EQ(events.size(), before + 1);
    service::AuditEvent e = events.back();
    EXPECT_EQ(service::AuditActionName(e.action), c.action);
    EXPECT_EQ(e.actor.account_id, alice_.id);
    EXPECT_EQ(e.object, c.object);
    EXPECT_EQ(e.request_id, std::string(32, 'f'));
    EXPECT_NE(e.outcome.find(c.reason), std::string::npos) << e.outcome;
    EXPECT_EQ(e.details["stage"], "request");
  }
  // The SAD was not touched: its hash still signs.
  Response r = CallAs(token, "signatures/signHash",
                      {{"credentialID", ec_.id},
                       {"SAD", sad},
                       {"hashes", {B64Hash("x")}},
                       {"signAlgo", "1.2.840.10045.4.3.2"}});
  EXPECT_EQ(r.status, 200) << r.body;
}

TEST_F(CscApiTest, ListShowsOnlyGrantedCredentials) {
  std::string token = Login(alice_);
  Response r = CallAs(token, "credentials/list", {{"credentialInfo", true}});
  ASSERT_EQ(r.status, 200) << r.body;
  json body = json::parse(r.body);
  std::vector<std::string> ids = body["credentialIDs"];
  std::vector<std::string> want = {ec_.id, rsa_.id};
  EXPECT_EQ(ids, want);
  ASSERT_EQ(body["credentialInfos"].size(), 2u);
  EXPECT_EQ(body["credentialInfos"][0]["key"]["curve"], "1.2.840.10045.3.1.7");
}

// onlyValid: only credentials that can make a valid signature now: enabled, with a certificate
// whose validity period holds.
TEST_F(CscApiTest, ListOnlyValidNeedsAnEnabledKeyWithACurrentCertificate) {
  service::Actor admin;
  admin.account_id = "a_admin";
  admin.roles = store::RoleSet{Role::kAdmin};
  auto ca = pki::testing::TestCodeSigningCa::Create("csc test CA");
  ASSERT_TRUE(ca.ok()) << ca.error().message();
  auto csr = key_service_.CreateCsr(admin, "ec", "/CN=ec");
  ASSERT_TRUE(csr.ok()) << csr.error().message();
  auto chain = (*ca)->Issue(*csr);
  ASSERT_TRUE(chain.ok()) << chain.error().message();
  ASSERT_TRUE(key_service_.ImportCertificateChain(admin, "ec", *chain).ok());

  std::string token = Login(alice_);
  auto listed = [&]() -> std::vector<std::string> {
    Response r = CallAs(token, "credentials/list", {{"onlyValid", true}});
    EXPECT_EQ(r.status, 200) << r.body;
    json body = json::parse(r.body);
    EXPECT_EQ(body["onlyValid"], true);
    return body["credentialIDs"];
  };
  // rsa has no certificate; ec's is valid now.
  EXPECT_EQ(listed(), std::vector<std::string>{ec_.id});
  std::vector<std::string> all =
      json::parse(CallAs(token, "credentials/list", json::object()).body)["credentialIDs"];
  EXPECT_EQ(all, (std::vector<std::string>{ec_.id, rsa_.id}));
  // Disabled: not usable.
  ASSERT_TRUE(key_service_.DisableKey(admin, "ec").ok());
  EXPECT_TRUE(listed().empty());
  ASSERT_TRUE(key_service_.EnableKey(admin, "ec").ok());
  EXPECT_EQ(listed(), std::vector<std::string>{ec_.id});
  // Not yet valid (the test CA's certificates start an hour before they are issued).
  clock_.Advance(-3h);
  EXPECT_TRUE(listed().empty());
  clock_.Advance(3h);
  EXPECT_EQ(listed(), std::vector<std::string>{ec_.id});
  // The test CA's certificates hold for 30 days; after that the key is not listed.
  clock_.Advance(31 * 24h);
  token = Login(alice_);
  EXPECT_TRUE(listed().empty());
}

// key.algo lists only what the key's policy lets signHash accept.
TEST_F(CscApiTest, CredentialInfoAlgorithmsFollowThePolicy) {
  std::string token = Login(alice_);
  auto algos = [&](const std::string& id) -> std::vector<std::string> {
    Response r = CallAs(token, "credentials/info", {{"credentialID", id}});
    EXPECT_EQ(r.status, 200) << r.body;
    return json::parse(r.body)["key"]["algo"];
  };
  EXPECT_EQ(algos("rsa"), (std::vector<std::string>{"1.2.840.113549.1.1.1", "1.2.840.113549.1.1.11",
                                                    "1.2.840.113549.1.1.12", "1.2.840.113549.1.1.13",
                                                    "1.2.840.113549.1.1.10"}));
  EXPECT_EQ(algos("ec"), (std::vector<std::string>{"1.2.840.10045.2.1", "1.2.840.10045.4.3.2",
                                                   "1.2.840.10045.4.3.3", "1.2.840.10045.4.3.4"}));
  service::Caller admin;
  admin.actor.account_id = "a_admin";
  admin.actor.roles = store::RoleSet{Role::kAdmin};
  service::KeyPolicy pss = signing_.DefaultPolicy(KeyAlgorithm::kRsa3072);
  pss.allowed_sign_schemes = {SignatureScheme::kRsaPss};
  pss.allowed_hash_algorithms = {HashAlgorithm::kSha384};
  ASSERT_TRUE(signing_.SetPolicy(admin, "rsa", pss).ok());
  EXPECT_EQ(algos("rsa"), std::vector<std::string>{"1.2.840.113549.1.1.10"});
  service::KeyPolicy ec = signing_.DefaultPolicy(KeyAlgorithm::kEcP256);
  ec.allowed_hash_algorithms = {HashAlgorithm::kSha256};
  ASSERT_TRUE(signing_.SetPolicy(admin, "ec", ec).ok());
  EXPECT_EQ(algos("ec"),
            (std::vector<std::string>{"1.2.840.10045.2.1", "1.2.840.10045.4.3.2"}));
}

TEST_F(CscApiTest, CredentialInfoDescribesTheKey) {
  std::string token = Login(alice_);
  Response r = CallAs(token, "credentials/info", {{"credentialID", "rsa"}, {"authInfo", true}});
  ASSERT_EQ(r.status, 200) << r.body;
  json info = json::parse(r.body);
  EXPECT_EQ(info["key"]["status"], "enabled");
  EXPECT_EQ(info["key"]["len"], 3072);
  EXPECT_EQ(info["SCAL"], "2");
  EXPECT_EQ(info["auth"]["mode"], "explicit");
  EXPECT_EQ(info["auth"]["expression"], "PIN AND OTP");
  EXPECT_EQ(info["multisign"], 1000);
  EXPECT_FALSE(info.contains("cert"));  // no chain imported
  ExpectError(CallAs(token, "credentials/info", {{"credentialID", "other"}}), 403, "access_denied");
}

TEST_F(CscApiTest, AuthorizeAndSignWithEcdsa) {
  std::string token = Login(alice_);
  std::vector<std::string> hashes = {B64Hash("one"), B64Hash("two")};
  std::string sad = AuthorizeOk(token, ec_.id, hashes);
  Response r = CallAs(token, "signatures/signHash",
                      {{"credentialID", ec_.id},
                       {"SAD", sad},
                       {"hashes", hashes},
                       {"hashAlgorithmOID", kSha256Oid},
                       {"signAlgo", "1.2.840.10045.4.3.2"}});
  ASSERT_EQ(r.status, 200) << r.body;
  std::vector<std::string> sigs = json::parse(r.body)["signatures"];
  ASSERT_EQ(sigs.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(Verify(ec_, SignatureScheme::kEcdsa, HashAlgorithm::kSha256,
                       Base64Decode(hashes[i]).value(), Base64Decode(sigs[i]).value()));
  }
}

// credentials/info lists ecPublicKey among an EC key's algorithms, so signHash takes it, with the
// hash named by hashAlgorithmOID (and refuses it without one).
TEST_F(CscApiTest, SignWithEcPublicKeyAndAHashOid) {
  std::string token = Login(alice_);
  std::vector<std::string> hashes = {B64Hash("ec-public-key")};
  std::string sad = AuthorizeOk(token, ec_.id, hashes);
  json body = {{"credentialID", ec_.id},
               {"SAD", sad},
               {"hashes", hashes},
               {"signAlgo", "1.2.840.10045.2.1"}};
  ExpectError(CallAs(token, "signatures/signHash", body), 400, "invalid_request");
  body["hashAlgorithmOID"] = kSha256Oid;
  Response r = CallAs(token, "signatures/signHash", body);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(Verify(ec_, SignatureScheme::kEcdsa, HashAlgorithm::kSha256,
                     Base64Decode(hashes[0]).value(),
                     Base64Decode(json::parse(r.body)["signatures"][0].get<std::string>()).value()));
}

TEST_F(CscApiTest, SignWithRsaPkcs1AndPss) {
  std::string token = Login(alice_);
  std::vector<std::string> hashes = {B64Hash("a"), B64Hash("b"), B64Hash("c")};
  std::string sad = AuthorizeOk(token, rsa_.id, hashes);
  auto sign = [&](const std::string& hash, json extra) {
    json body = {{"credentialID", rsa_.id}, {"SAD", sad}, {"hashes", {hash}}};
    body.update(extra);
    return CallAs(token, "signatures/signHash", body);
  };
  // rsaEncryption + hashAlgorithmOID: PKCS#1 v1.5.
  Response r1 =
      sign(hashes[0], {{"signAlgo", "1.2.840.113549.1.1.1"}, {"hashAlgorithmOID", kSha256Oid}});
  ASSERT_EQ(r1.status, 200) << r1.body;
  EXPECT_TRUE(Verify(
      rsa_, SignatureScheme::kRsaPkcs1v15, HashAlgorithm::kSha256, Base64Decode(hashes[0]).value(),
      Base64Decode(json::parse(r1.body)["signatures"][0].get<std::string>()).value()));
  // sha256WithRSAEncryption.
  Response r2 = sign(hashes[1], {{"signAlgo", "1.2.840.113549.1.1.11"}});
  ASSERT_EQ(r2.status, 200) << r2.body;
  EXPECT_TRUE(Verify(
      rsa_, SignatureScheme::kRsaPkcs1v15, HashAlgorithm::kSha256, Base64Decode(hashes[1]).value(),
      Base64Decode(json::parse(r2.body)["signatures"][0].get<std::string>()).value()));
  // RSASSA-PSS, SHA-256, MGF1-SHA-256, salt 32 (DER).
  Bytes params = HexDecode(
                     "3034"
                     "a00f300d06096086480165030402010500"
                     "a11c301a06092a864886f70d010108300d06096086480165030402010500"
                     "a203020120")
                     .value();
  // Salt 20 is refused.
  Bytes bad_salt = params;
  bad_salt.back() = 0x14;
  ExpectError(sign(hashes[2], {{"signAlgo", "1.2.840.113549.1.1.10"},
                               {"signAlgoParams", Base64Encode(bad_salt)}}),
              400, "invalid_request");
  // So are hash identifiers with parameters other than NULL (an empty OCTET STRING instead), in
  // the PSS hash (offset 17) or in MGF1's (offset 47).
  for (size_t at : {size_t{17}, size_t{47}}) {
    Bytes odd_parameter = params;
    ASSERT_EQ(odd_parameter[at], 0x05);
    odd_parameter[at] = 0x04;
    ExpectError(sign(hashes[2], {{"signAlgo", "1.2.840.113549.1.1.10"},
                                 {"signAlgoParams", Base64Encode(odd_parameter)}}),
                400, "invalid_request");
  }
  // BER is not DER: the same parameters with the outer length in the long form are refused.
  Bytes ber = HexDecode("308134").value();
  ber.insert(ber.end(), params.begin() + 2, params.end());
  Response not_der = sign(
      hashes[2], {{"signAlgo", "1.2.840.113549.1.1.10"}, {"signAlgoParams", Base64Encode(ber)}});
  ExpectError(not_der, 400, "invalid_request");
  EXPECT_NE(not_der.body.find("not in DER"), std::string::npos) << not_der.body;
  Response r3 = sign(hashes[2], {{"signAlgo", "1.2.840.113549.1.1.10"},
                                 {"signAlgoParams", Base64Encode(params)},
                                 {"hashAlgorithmOID", kSha256Oid}});
  ASSERT_EQ(r3.status, 200) << r3.body;
  EXPECT_TRUE(Verify(
      rsa_, SignatureScheme::kRsaPss, HashAlgorithm::kSha256, Base64Decode(hashes[2]).value(),
      Base64Decode(json::parse(r3.body)["signatures"][0].get<std::string>()).value()));
}

TEST_F(CscApiTest, HashNotInTheSadIsRefused) {
  std::string token = Login(alice_);
  std::string sad = AuthorizeOk(token, ec_.id, {B64Hash("authorized")});
  ExpectError(CallAs(token, "signatures/signHash",
                     {{"credentialID", ec_.id},
                      {"SAD", sad},
                      {"hashes", {B64Hash("something else")}},
                      {"signAlgo", "1.2.840.10045.4.3.2"}}),
              403, "invalid_hash");
  // A hash of another algorithm than the SAD's is not one it lists either.
  const std::string sha384 =
      Base64Encode(pki::ComputeDigest(HashAlgorithm::kSha384, AsBytes("authorized")).value());
  ExpectError(CallAs(token, "signatures/signHash",
                     {{"credentialID", ec_.id},
                      {"SAD", sad},
                      {"hashes", {sha384}},
                      {"signAlgo", "1.2.840.10045.4.3.3"}}),
              403, "invalid_hash");
}

TEST_F(CscApiTest, AHashIsSignedOnce) {
  std::string token = Login(alice_);
  std::string hash = B64Hash("once");
  std::string sad = AuthorizeOk(token, ec_.id, {hash, B64Hash("other")});
  json body = {{"credentialID", ec_.id},
               {"SAD", sad},
               {"hashes", {hash}},
               {"signAlgo", "1.2.840.10045.4.3.2"}};
  ASSERT_EQ(CallAs(token, "signatures/signHash", body).status, 200);
  ExpectError(CallAs(token, "signatures/signHash", body), 403, "invalid_hash");
}

// ---- server faults: a generic answer to the client, the whole message to the operational log ----

class CapturedLog {
 public:
  CapturedLog()
      : previous_(SetLogSink([this](std::string_view line) {
          std::lock_guard lock(mu_);
          text_ += line;
        })) {}
  ~CapturedLog() { SetLogSink(std::move(previous_)); }
  std::string text() {
    std::lock_guard lock(mu_);
    return text_;
  }

 private:
  std::mutex mu_;
  std::string text_;
  LogSink previous_;
};

TEST_F(CscApiTest, AnHsmFailureAtSigningHidesItsMessageAndSaysToAuthorizeAgain) {
  std::string token = Login(alice_);
  std::string hash = B64Hash("hsm down");
  std::string sad = AuthorizeOk(token, ec_.id, {hash, B64Hash("another")});
  json body = {{"credentialID", ec_.id},
               {"SAD", sad},
               {"hashes", {hash}},
               {"signAlgo", "1.2.840.10045.4.3.2"}};
  CapturedLog log;
  key_store_.FailNextSign(
      Unavailable("token 'prod' in PKCS#11 module /opt/vendor/libsecrethsm.so is unavailable"));
  Response r = CallAs(token, "signatures/signHash", body);
  ExpectError(r, 503, "temporarily_unavailable");
  EXPECT_EQ(r.body.find("libsecrethsm"), std::string::npos) << r.body;
  const std::string description = json::parse(r.body).value("error_description", "");
  EXPECT_NE(description.find("request id " + std::string(32, 'f')), std::string::npos)
      << description;
  EXPECT_NE(description.find("authorize again"), std::string::npos) << description;
  // The operator's line names the request and what the HSM said.
  const std::string logged = log.text();
  EXPECT_NE(logged.find("request " + std::string(32, 'f')), std::string::npos) << logged;
  EXPECT_NE(logged.find("/opt/vendor/libsecrethsm.so"), std::string::npos) << logged;
  // And the advice is true: the hash cannot be signed again with that SAD.
  ExpectError(CallAs(token, "signatures/signHash", body), 403, "invalid_hash");
}

TEST_F(CscApiTest, AFullDiskIsUnavailableNotTooManyRequests) {
  CapturedLog log;
  Response r =
      SignHashWithFailure(ResourceExhausted("database /var/lib/signet/signet.db cannot grow"));
  ExpectError(r, 503, "temporarily_unavailable");
  EXPECT_EQ(r.body.find("/var/lib"), std::string::npos) << r.body;
  EXPECT_NE(log.text().find("/var/lib/signet/signet.db"), std::string::npos);
}

TEST_F(CscApiTest, AnInternalErrorIsAServerErrorWithTheRequestId) {
  CapturedLog log;
  Response r =
      SignHashWithFailure(NotFound("object 0x1234 in slot 7 of /opt/vendor/libsecrethsm.so"));
  ExpectError(r, 500, "server_error");
  EXPECT_EQ(r.body.find("libsecrethsm"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("request id " + std::string(32, 'f')), std::string::npos) << r.body;
  EXPECT_NE(log.text().find("object 0x1234"), std::string::npos) << log.text();
}

TEST_F(CscApiTest, ARateLimitIsTooManyRequestsAndSaysWhichLimit) {
  service::Caller admin;
  admin.actor.account_id = "a_admin";
  admin.actor.roles = store::RoleSet{Role::kAdmin};
  auto policy = signing_.GetPolicy(admin, "ec");
  ASSERT_TRUE(policy.ok()) << policy.error().message();
  policy->rate_per_minute_key = 1;
  ASSERT_TRUE(signing_.SetPolicy(admin, "ec", *policy).ok());
  std::string token = Login(alice_);
  std::vector<std::string> hashes = {B64Hash("first"), B64Hash("second")};
  std::string sad = AuthorizeOk(token, ec_.id, hashes);
  auto sign = [&](const std::string& hash) {
    return CallAs(token, "signatures/signHash",
                  {{"credentialID", ec_.id},
                   {"SAD", sad},
                   {"hashes", {hash}},
                   {"signAlgo", "1.2.840.10045.4.3.2"}});
  };
  ASSERT_EQ(sign(hashes[0]).status, 200);
  Response r = sign(hashes[1]);
  ExpectError(r, 429, "too_many_requests");
  EXPECT_NE(r.body.find("rate limit of 1 signatures per minute"), std::string::npos) << r.body;
  // The window opens at the next whole minute of the service's clock, and the hash was not spent.
  const int64_t now = ToUnixSeconds(clock_.Now());
  std::string after;
  for (const auto& [name, value] : r.headers) {
    if (name == "Retry-After") after = value;
  }
  EXPECT_EQ(after, std::to_string(60 - now % 60)) << "at " << now;
  clock_.Advance(std::chrono::seconds(std::stoll(after.empty() ? "0" : after)));
  EXPECT_EQ(sign(hashes[1]).status, 200);
}

// A person authenticates again for every activation (CSBR 6.2.7.3): the bearer token alone does
// not get a SAD.
// CSC's 500-character limit on 'description' counts characters, not bytes.
TEST_F(CscApiTest, TheDescriptionLimitCountsCharacters) {
  std::string token = Login(alice_);
  std::string euros;
  for (int i = 0; i < 500; ++i) euros += "\u20ac";  // 1 500 bytes
  json body = {
      {"credentialID", ec_.id},         {"numSignatures", 1},   {"hashes", {B64Hash("described")}},
      {"hashAlgorithmOID", kSha256Oid}, {"description", euros}, {"authData", AuthData(alice_)}};
  Response r = CallAs(token, "credentials/authorize", body);
  EXPECT_EQ(r.status, 200) << r.body;
  body["description"] = euros + "x";
  body["hashes"] = {B64Hash("described too")};
  Response longer = CallAs(token, "credentials/authorize", body);
  ExpectError(longer, 400, "invalid_request");
  EXPECT_NE(longer.body.find("longer than 500 characters"), std::string::npos) << longer.body;
}

// A refusal repeats at most a short, escaped part of what the client sent.
TEST_F(CscApiTest, RefusalsEchoLittleOfTheClientsValues) {
  std::string token = Login(alice_);
  const std::string huge = "\x1b[2J" + std::string(100000, 'k');
  for (const json& body :
       {json{{"credentialID", huge},
             {"SAD", "x"},
             {"hashes", {B64Hash("e")}},
             {"signAlgo", "1.2.840.10045.4.3.2"}},
        json{
            {"credentialID", ec_.id}, {"SAD", "x"}, {"hashes", {B64Hash("e")}}, {"signAlgo", huge}},
        json{{"credentialID", ec_.id},
             {"SAD", "x"},
             {"hashes", {B64Hash("e")}},
             {"signAlgo", "1.2.840.113549.1.1.1"},
             {"hashAlgorithmOID", huge}}}) {
    Response r = CallAs(token, "signatures/signHash", body);
    EXPECT_GE(r.status, 400);
    EXPECT_LT(r.body.size(), 1000u) << r.body.substr(0, 300);
    EXPECT_EQ(r.body.find('\x1b'), std::string::npos);
  }
}

TEST_F(CscApiTest, AuthorizeNeedsThePinAndAFreshOtp) {
  std::string token = Login(alice_);
  json body = {{"credentialID", ec_.id},
               {"numSignatures", 1},
               {"hashes", {B64Hash("x")}},
               {"hashAlgorithmOID", kSha256Oid}};
  // No authData.
  Response missing = CallAs(token, "credentials/authorize", body);
  ExpectError(missing, 400, "invalid_request");
  EXPECT_NE(missing.body.find("authData"), std::string::npos) << missing.body;

  // A wrong PIN: refused, and counted as a failed authentication.
  body["authData"] = AuthData(alice_, "not alice's password");
  ExpectError(CallAs(token, "credentials/authorize", body), 400, "invalid_request");
  ASSERT_FALSE(account_events_.empty());
  EXPECT_EQ(account_events_.back().action, service::AccountAction::kLoginFailure);
  EXPECT_EQ(account_events_.back().details.at("purpose"), "activation");
  EXPECT_EQ(account_events_.back().request_id, std::string(32, 'f'));
  ASSERT_TRUE(audit_.events().back().signature.has_value());
  EXPECT_EQ(audit_.events().back().action, service::AuditAction::kAuthorizeRefused);
  EXPECT_EQ(audit_.events().back().signature->key_id, ec_.id);
  EXPECT_EQ(audit_.events().back().details.at("stage"), "activation");

  // The right factors: a SAD, and a login_success for the activation.
  json good = AuthData(alice_);
  body["authData"] = good;
  Response ok = CallAs(token, "credentials/authorize", body);
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(account_events_.back().action, service::AccountAction::kLoginSuccess);
  EXPECT_EQ(account_events_.back().details.at("purpose"), "activation");

  // The same code again (an attacker replaying the request with another hash): refused.
  body["hashes"] = {B64Hash("y")};
  ExpectError(CallAs(token, "credentials/authorize", body), 400, "invalid_request");
  EXPECT_EQ(account_events_.back().reason, service::AccountReason::kTotpReplayed);

  // Items that are not {id, value} strings, or unknown ids.
  body["authData"] = json::array({{{"id", "PIN"}, {"value", 1234}}});
  ExpectError(CallAs(token, "credentials/authorize", body), 400, "invalid_request");
  body["authData"] = json::array({{{"id", "PUK"}, {"value", "1"}}});
  ExpectError(CallAs(token, "credentials/authorize", body), 400, "invalid_request");
}

// A service account's activation rests on its mTLS login (server-to-server): no authData.
TEST_F(CscApiTest, ServiceAccountAuthorizesWithoutAuthData) {
  auto ci = accounts_.CreateService(service::SystemPrincipal(), "ci",
                                    store::RoleSet{Role::kSigner}, kFingerprint);
  ASSERT_TRUE(ci.ok()) << ci.error().message();
  service::Caller admin;
  admin.actor.account_id = "a_admin";
  admin.actor.roles = store::RoleSet{Role::kAdmin};
  ASSERT_TRUE(signing_.Grant(admin, "ec", ci->id).ok());
  client_cert_ = kFingerprint;
  Response login = Call("auth/login", "");
  ASSERT_EQ(login.status, 200) << login.body;
  const std::string token = json::parse(login.body).value("access_token", "");
  std::string sad = AuthorizeOk(token, ec_.id, {B64Hash("built by ci")});
  EXPECT_FALSE(sad.empty());
  // The token works only on a connection that presents the account's certificate.
  json sign = {{"credentialID", ec_.id},
               {"SAD", sad},
               {"hashes", {B64Hash("built by ci")}},
               {"signAlgo", "1.2.840.10045.4.3.2"}};
  for (std::optional<std::string> cert : {std::optional<std::string>(),
                                          std::optional<std::string>(std::string(64, 'd'))}) {
    client_cert_ = cert;
    ExpectError(CallAs(token, "signatures/signHash", sign), 401, "invalid_token");
  }
  client_cert_ = kFingerprint;
  EXPECT_EQ(CallAs(token, "signatures/signHash", sign).status, 200);
}

// A signer whose one-time password is still due is refused at authorize and signHash, and the
// refusals are in the log like any other (authorize_refused, sign_refused).
TEST_F(CscApiTest, ADueOneTimePasswordIsRefusedAndRecordedAtSigning) {
  auto created =
      accounts_.CreatePerson(service::SystemPrincipal(), "fresh", store::RoleSet{Role::kSigner});
  ASSERT_TRUE(created.ok());
  Person fresh{created->account.id, "fresh", std::string(created->one_time_password.text_view()),
               Base32Decode(created->totp.secret_base32.text_view())};
  service::Caller admin;
  admin.actor.account_id = "a_admin";
  admin.actor.roles = store::RoleSet{Role::kAdmin};
  ASSERT_TRUE(signing_.Grant(admin, "ec", fresh.id).ok());
  std::string token = Login(fresh);
  const size_t before = audit_.events().size();
  ExpectError(CallAs(token, "credentials/authorize",
                     {{"credentialID", ec_.id},
                      {"numSignatures", 1},
                      {"hashes", {B64Hash("x")}},
                      {"hashAlgorithmOID", kSha256Oid},
                      {"authData", AuthData(fresh)}}),
              403, "access_denied");
  ExpectError(CallAs(token, "signatures/signHash",
                     {{"credentialID", ec_.id},
                      {"SAD", "bm90IGEgU0FE"},
                      {"hashes", {B64Hash("x")}},
                      {"signAlgo", "1.2.840.10045.4.3.2"}}),
              403, "access_denied");
  std::vector<service::AuditEvent> events = audit_.events();
  ASSERT_EQ(events.size(), before + 2);
  EXPECT_EQ(events[before].action, service::AuditAction::kAuthorizeRefused);
  EXPECT_EQ(events[before + 1].action, service::AuditAction::kSignRefused);
  for (size_t i = before; i < events.size(); ++i) {
    EXPECT_EQ(events[i].actor.account_id, fresh.id);
    EXPECT_NE(events[i].outcome.find("must change its one-time password"), std::string::npos)
        << events[i].outcome;
  }
}

TEST_F(CscApiTest, AnotherAccountsSadIsRefused) {
  std::string alice_token = Login(alice_);
  std::string bob_token = Login(bob_);
  std::string hash = B64Hash("alice's");
  std::string sad = AuthorizeOk(alice_token, ec_.id, {hash});
  ExpectError(CallAs(bob_token, "signatures/signHash",
                     {{"credentialID", ec_.id},
                      {"SAD", sad},
                      {"hashes", {hash}},
                      {"signAlgo", "1.2.840.10045.4.3.2"}}),
              400, "invalid_request");
}

TEST_F(CscApiTest, HashOfTheWrongLengthIsABadRequest) {
  std::string token = Login(alice_);
  ExpectError(CallAs(token, "credentials/authorize",
                     {{"credentialID", ec_.id},
                      {"numSignatures", 1},
                      {"hashes", {Base64Encode(AsBytes("short"))}},
                      {"hashAlgorithmOID", kSha256Oid}}),
              400, "invalid_request");
  std::string sad = AuthorizeOk(token, ec_.id, {B64Hash("x")});
  ExpectError(CallAs(token, "signatures/signHash",
                     {{"credentialID", ec_.id},
                      {"SAD", sad},
                      {"hashes", {B64Hash("x", HashAlgorithm::kSha384)}},
                      {"signAlgo", "1.2.840.10045.4.3.2"}}),
              400, "invalid_request");
}

// CSC v2's signHash table: an expired SAD is 400 invalid_request "SAD expired". Not a 401: the
// access token is still good, and the client should authorize again, not log in again.
TEST_F(CscApiTest, ExpiredSadIsABadRequestThatSaysSo) {
  std::string token = Login(alice_);
  std::string hash = B64Hash("late");
  std::string sad = AuthorizeOk(token, ec_.id, {hash});
  clock_.Advance(301s);  // past the default SAD lifetime, within the bearer token's
  Response r = CallAs(token, "signatures/signHash",
                      {{"credentialID", ec_.id},
                       {"SAD", sad},
                       {"hashes", {hash}},
                       {"signAlgo", "1.2.840.10045.4.3.2"}});
  ExpectError(r, 400, "invalid_request");
  EXPECT_EQ(json::parse(r.body).value("error_description", "").rfind("SAD expired", 0), 0u)
      << r.body;
  EXPECT_EQ(CallAs(token, "credentials/list", json::object()).status, 200);
}

TEST_F(CscApiTest, ExtendTransactionReplacesTheSad) {
  std::string token = Login(alice_);
  std::string old_sad = AuthorizeOk(token, ec_.id, {B64Hash("first")});
  std::string next = B64Hash("second");
  Response r = CallAs(token, "credentials/extendTransaction",
                      {{"credentialID", ec_.id},
                       {"SAD", old_sad},
                       {"hashes", {next}},
                       {"hashAlgorithmOID", kSha256Oid},
                       {"authData", AuthData(alice_)}});
  ASSERT_EQ(r.status, 200) << r.body;
  std::string new_sad = json::parse(r.body)["SAD"];
  EXPECT_NE(new_sad, old_sad);
  json sign = {{"credentialID", ec_.id},
               {"SAD", new_sad},
               {"hashes", {next}},
               {"signAlgo", "1.2.840.10045.4.3.2"}};
  EXPECT_EQ(CallAs(token, "signatures/signHash", sign).status, 200);
  sign["SAD"] = old_sad;
  ExpectError(CallAs(token, "signatures/signHash", sign), 400, "invalid_request");
}

// Binding new hashes is a new activation: a person's extendTransaction needs the password and a
// fresh one-time code like authorize (a stolen bearer token and SAD bind nothing alone); a
// service account's rests on its mTLS login.
TEST_F(CscApiTest, APersonsExtendTransactionNeedsThePinAndAFreshOtp) {
  std::string token = Login(alice_);
  std::string sad = AuthorizeOk(token, ec_.id, {B64Hash("first")});
  json extend = {{"credentialID", ec_.id},
                 {"SAD", sad},
                 {"hashes", {B64Hash("chosen by malware")}},
                 {"hashAlgorithmOID", kSha256Oid}};
  Response missing = CallAs(token, "credentials/extendTransaction", extend);
  ExpectError(missing, 400, "invalid_request");
  EXPECT_NE(missing.body.find("authData"), std::string::npos) << missing.body;
  EXPECT_EQ(audit_.events().back().action, service::AuditAction::kAuthorizeRefused);

  extend["authData"] = AuthData(alice_, "not alice's password");
  ExpectError(CallAs(token, "credentials/extendTransaction", extend), 400, "invalid_request");
  EXPECT_EQ(account_events_.back().action, service::AccountAction::kLoginFailure);
  EXPECT_EQ(account_events_.back().details.at("purpose"), "activation");

  extend["authData"] = AuthData(alice_);
  Response extended = CallAs(token, "credentials/extendTransaction", extend);
  ASSERT_EQ(extended.status, 200) << extended.body;
  // The same code again, on the SAD just issued: a replay.
  extend["SAD"] = json::parse(extended.body)["SAD"];
  extend["hashes"] = {B64Hash("another")};
  ExpectError(CallAs(token, "credentials/extendTransaction", extend), 400, "invalid_request");
  EXPECT_EQ(account_events_.back().reason, service::AccountReason::kTotpReplayed);

  // A SAD that is not valid (here the one just replaced) is refused before the factors: the
  // code is not spent, and the corrected request may use it.
  json fresh = AuthData(alice_);
  const size_t account_events_before = account_events_.size();
  extend["authData"] = fresh;
  extend["SAD"] = sad;
  Response stale = CallAs(token, "credentials/extendTransaction", extend);
  ExpectError(stale, 400, "invalid_request");
  EXPECT_EQ(account_events_.size(), account_events_before) << "the factors were checked";
  EXPECT_EQ(audit_.events().back().details.at("stage"), "precheck");
  extend["SAD"] = json::parse(extended.body)["SAD"];
  Response corrected = CallAs(token, "credentials/extendTransaction", extend);
  EXPECT_EQ(corrected.status, 200) << corrected.body;
}

// extendTransaction refuses a SAD that is not valid for the request as signHash does: another
// account's or another credential's SAD is 400 invalid_request, and nothing is replaced.
TEST_F(CscApiTest, ExtendTransactionRefusesAnotherAccountsOrCredentialsSad) {
  std::string alice_token = Login(alice_);
  std::string bob_token = Login(bob_);
  const std::string first = B64Hash("first");
  std::string sad = AuthorizeOk(alice_token, ec_.id, {first});
  json extend = {{"credentialID", ec_.id},
                 {"SAD", sad},
                 {"hashes", {B64Hash("bob's")}},
                 {"hashAlgorithmOID", kSha256Oid},
                 {"authData", AuthData(bob_)}};
  Response r = CallAs(bob_token, "credentials/extendTransaction", extend);
  ExpectError(r, 400, "invalid_request");
  EXPECT_EQ(r.body.find("another account"), std::string::npos) << r.body;  // see signing.cc
  EXPECT_NE(r.body.find("the SAD is not valid"), std::string::npos) << r.body;
  extend["credentialID"] = rsa_.id;
  extend["authData"] = AuthData(alice_);
  r = CallAs(alice_token, "credentials/extendTransaction", extend);
  ExpectError(r, 400, "invalid_request");
  EXPECT_NE(r.body.find("another credential"), std::string::npos) << r.body;
  EXPECT_EQ(CallAs(alice_token, "signatures/signHash",
                   {{"credentialID", ec_.id},
                    {"SAD", sad},
                    {"hashes", {first}},
                    {"signAlgo", "1.2.840.10045.4.3.2"}})
                .status,
            200);
}

}  // namespace
}  // namespace signet::server::csc
