// The management API handlers driven through the Router (no network): real AccountService
// (Argon2id, liboath, in-memory store, fake sealer), real KeyService and SigningService on the
// FakeKeyStore, and an audit sink that keeps what it is given.
#include "server/api/api.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "common/encoding.h"
#include "common/log.h"
#include "service/adapters/argon2_password_hasher.h"
#include "service/adapters/oath_totp.h"
#include "service/key_json.h"
#include "service/testing/fakes.h"

namespace signet::server::api {
namespace {

using ::testing::HasSubstr;

using json = nlohmann::json;
using namespace std::chrono_literals;
using service::AccountAction;
using service::AuditAction;
using store::Role;

constexpr service::Argon2Parameters kFastArgon2{
    .iterations = 1, .memory_kib = 256, .parallelism = 1};
const std::string kFingerprint(64, 'e');

class RecordingAuditSink final : public service::AuditSink {
 public:
  Status Record(const service::AuditEvent& event) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (fail_) return Unavailable("the audit log is down");
    events_.push_back(event);
    return OkStatus();
  }
  Status RecordChange(const service::AuditEvent& event,
                      const service::AuditedChange& change) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (fail_) return Unavailable("the audit log is down");
    SIGNET_ASSIGN_OR_RETURN(service::AuditEvent recorded,
                            signet::testing::MakeChange(event, change));
    events_.push_back(std::move(recorded));
    return OkStatus();
  }
  // Not atomic here (no transaction to run the check in), but a sink told to fail fails before
  // the check, so that what the check writes (an activation) is not made, as with RecordChange.
  Status RecordIf(const service::AuditEvent& event, const service::AuditCheck& check) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (fail_) return Unavailable("the audit log is down");
    }
    SIGNET_TRY(check());
    return Record(event);
  }
  std::vector<service::AuditEvent> events() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }
  void set_fail(bool fail) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_ = fail;
  }

 private:
  std::mutex mu_;
  std::vector<service::AuditEvent> events_;  // guarded by mu_
  bool fail_ = false;                        // guarded by mu_
};

// A one-certificate "chain" for a key: a leaf with the key's public key, signed by a throwaway
// EC key. ParseChainForKey accepts a lone leaf (it checks links only between certificates given).
std::string LeafCertificatePem(const std::string& spki_base64) {
  Bytes spki = Base64Decode(spki_base64).value();
  const unsigned char* p = spki.data();
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> subject_key(
      d2i_PUBKEY(nullptr, &p, static_cast<long>(spki.size())), EVP_PKEY_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> issuer_key(
      EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), EVP_PKEY_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), X509_free);
  if (!subject_key || !issuer_key || !cert) return "";
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 4242);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_NAME* subject = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("API Test Signer"), -1, -1, 0);
  X509_NAME* issuer = X509_get_issuer_name(cert.get());
  X509_NAME_add_entry_by_txt(issuer, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("API Test CA"), -1, -1, 0);
  X509_set_pubkey(cert.get(), subject_key.get());
  // KeyService takes only code-signing leaves (CheckCodeSigningLeaf).
  std::unique_ptr<X509_EXTENSION, decltype(&X509_EXTENSION_free)> eku(
      X509V3_EXT_conf_nid(nullptr, nullptr, NID_ext_key_usage, "codeSigning"), X509_EXTENSION_free);
  if (!eku || X509_add_ext(cert.get(), eku.get(), -1) != 1) return "";
  std::unique_ptr<X509_EXTENSION, decltype(&X509_EXTENSION_free)> ku(
      X509V3_EXT_conf_nid(nullptr, nullptr, NID_key_usage, "critical,digitalSignature"),
      X509_EXTENSION_free);
  if (!ku || X509_add_ext(cert.get(), ku.get(), -1) != 1) return "";
  if (X509_sign(cert.get(), issuer_key.get(), EVP_sha256()) <= 0) return "";
  const int size = i2d_X509(cert.get(), nullptr);
  if (size <= 0) return "";
  Bytes der(static_cast<size_t>(size));
  unsigned char* out = der.data();
  if (i2d_X509(cert.get(), &out) != size) return "";
  const std::string b64 = Base64Encode(der);
  std::string pem = "-----BEGIN CERTIFICATE-----\n";
  for (size_t i = 0; i < b64.size(); i += 64) pem += b64.substr(i, 64) + "\n";
  return pem + "-----END CERTIFICATE-----\n";
}

struct Person {
  std::string id;
  std::string name;
  std::string password;
  SecretBytes seed;
  std::string token;
};

class ApiTest : public ::testing::Test {
 protected:
  ApiTest()
      : clock_(FromUnixSeconds(ToUnixSeconds(std::chrono::system_clock::now()))),
        accounts_(
            store_, sealer_, hasher_, totp_, clock_, {},
            [this](const service::AccountEvent& e, const service::AuditedChange& change) -> Status {
              std::lock_guard<std::mutex> lock(mu_);
              SIGNET_ASSIGN_OR_RETURN(service::AccountEvent recorded,
                                      signet::testing::MakeChange(e, change));
              account_events_.push_back(std::move(recorded));
              return OkStatus();
            }),
        keys_(key_store_, store_, clock_, audit_, service::TokenIdentity{"fake", "0001"}),
        signing_(key_store_, store_, clock_, audit_) {}

  void SetUp() override {
    ASSERT_TRUE(RegisterApiRoutes(router_, {accounts_, signing_, keys_}).ok());
    admin_ = MakePerson("root", {Role::kAdmin});
    auditor_ = MakePerson("audrey", {Role::kAuditor});
    alice_ = MakePerson("alice", {Role::kSigner});
    auto ec = keys_.CreateKey(service::Actor{}, "ec", KeyAlgorithm::kEcP256, "root");
    ASSERT_TRUE(ec.ok()) << ec.error().message();
    ec_ = *ec;
  }

  // A person with a token; unless `change_password` is false, the one-time password has been
  // replaced first. The clock moves on after each login so the next code is fresh.
  Person MakePerson(const std::string& name, store::RoleSet roles, bool change_password = true) {
    auto created = accounts_.CreatePerson(service::SystemPrincipal(), name, roles);
    EXPECT_TRUE(created.ok()) << created.error().message();
    if (!created.ok()) return {};
    Person p{created->account.id, name, std::string(created->one_time_password.text_view()),
             signet::testing::Base32Decode(created->totp.secret_base32.text_view()), ""};
    if (change_password) {
      auto first = Login(p);
      EXPECT_TRUE(first.ok());
      const std::string next = name + " has a long password";
      EXPECT_TRUE(accounts_
                      .ChangePassword(first->principal, SecretBytes(std::string_view(p.password)),
                                      SecretBytes(std::string_view(next)))
                      .ok());
      p.password = next;
    }
    auto token = Login(p);
    EXPECT_TRUE(token.ok());
    if (token.ok()) p.token = std::string(token->token.text_view());
    return p;
  }

  Result<service::BearerToken> Login(const Person& p) {
    auto code = totp_.Generate(p.seed, clock_.Now());
    auto token = accounts_.LoginWithPassword(p.name, SecretBytes(std::string_view(p.password)),
                                             code->text_view(), {"192.0.2.1:1"});
    clock_.Advance(30s);
    return token;
  }

  Response Call(std::string_view route, std::string body,
                std::vector<std::pair<std::string, std::string>> headers = {},
                std::string content_type = "application/json") {
    Request r;
    r.method = "POST";
    r.path = "/api/v1/" + std::string(route);
    r.target = r.path;
    r.body = std::move(body);
    if (!content_type.empty()) r.headers.emplace_back("content-type", content_type);
    for (auto& h : headers) r.headers.push_back(std::move(h));
    r.client_address = "192.0.2.9:4444";
    r.request_id = std::string(32, 'a');
    Router::Match m = router_.Find("POST", r.path);
    EXPECT_NE(m.route, nullptr) << r.path;
    if (m.route == nullptr) return {};
    r.route = m.route->pattern;
    return m.route->handler(r);
  }

  Response CallAs(const Person& who, std::string_view route, const json& body = json::object()) {
    return Call(route, body.dump(), {{"authorization", "Bearer " + who.token}});
  }

  // The answer of a call that must succeed.
  json Ok(const Person& who, std::string_view route, const json& body = json::object()) {
    Response r = CallAs(who, route, body);
    EXPECT_EQ(r.status, 200) << route << ": " << r.body;
    json parsed = json::parse(r.body, nullptr, false);
    EXPECT_TRUE(parsed.is_object()) << r.body;
    return parsed;
  }

  static void ExpectError(const Response& r, int status, std::string_view error) {
    EXPECT_EQ(r.status, status) << r.body;
    json body = json::parse(r.body, nullptr, false);
    ASSERT_TRUE(body.is_object()) << r.body;
    EXPECT_EQ(body.value("error", ""), error) << r.body;
    EXPECT_FALSE(body.value("error_description", "").empty());
  }

  std::vector<service::AccountEvent> AccountEvents() {
    std::lock_guard<std::mutex> lock(mu_);
    return account_events_;
  }

  // Everything an admin route could change, for "nothing changed" checks.
  std::string Snapshot() {
    json s;
    const std::vector<service::AccountInfo> accounts =
        accounts_.List(service::SystemPrincipal()).value();
    for (const auto& a : accounts) {
      s["accounts"].push_back({a.name, store::AccountStateName(a.state), a.roles.ToString(),
                               a.failed_attempts, a.must_change_password});
    }
    const std::vector<store::KeyRecord> keys = store_.ListKeys().value();
    for (const auto& k : keys) {
      s["keys"].push_back({k.name, store::KeyStateName(k.state), k.certificate_chain_pem});
      s["grants"].push_back(store_.ListGrants(k.id).value());
      auto policy = store_.GetKeyPolicy(k.id).value();
      s["policies"].push_back(policy ? policy->allowed_hash_algos.size() : 0u);
    }
    s["key_count"] = key_store_.KeyCount();
    return s.dump();
  }

  static json EcPolicy() {
    return {{"sign_schemes", {"ecdsa"}},
            {"hash_algorithms", {"sha384", "sha256"}},
            {"max_signatures_per_authorization", 10},
            {"rate_per_minute_key", 60},
            {"rate_per_minute_account", 0}};
  }

  std::mutex mu_;
  std::vector<service::AccountEvent> account_events_;  // guarded by mu_
  FakeClock clock_;
  signet::testing::MemoryStore store_;
  signet::testing::FakeSecretSealer sealer_;
  service::Argon2PasswordHasher hasher_{kFastArgon2};
  service::OathTotp totp_;
  signet::testing::FakeKeyStore key_store_;
  RecordingAuditSink audit_;
  service::AccountService accounts_;
  service::KeyService keys_;
  service::SigningService signing_;
  Router router_;
  Person admin_, auditor_, alice_;
  store::KeyRecord ec_;
};

// ---- the transport conventions ----

TEST_F(ApiTest, EveryRouteIsRegisteredAsBlockingPost) {
  for (const char* route : {"auth/whoami",         "auth/password",
                            "accounts/list",       "accounts/show",
                            "accounts/create",     "accounts/disable",
                            "accounts/enable",     "accounts/unlock",
                            "accounts/reset-totp", "accounts/reset-password",
                            "accounts/roles",      "keys/list",
                            "keys/show",           "keys/create",
                            "keys/disable",        "keys/enable",
                            "keys/destroy",        "keys/csr",
                            "keys/import-chain",   "keys/grants",
                            "keys/grant",          "keys/revoke",
                            "keys/policy",         "keys/set-policy",
                            "keys/unrecorded",     "keys/destroy-unrecorded"}) {
    Router::Match m = router_.Find("POST", "/api/v1/" + std::string(route));
    ASSERT_NE(m.route, nullptr) << route;
    EXPECT_TRUE(m.route->options.blocking) << route;
  }
}

TEST_F(ApiTest, MissingBearerTokenIsInvalidToken) {
  Response r = Call("keys/list", "{}");
  ExpectError(r, 401, "invalid_token");
  bool challenged = std::any_of(r.headers.begin(), r.headers.end(),
                                [](const auto& h) { return h.first == "WWW-Authenticate"; });
  EXPECT_TRUE(challenged);
  ExpectError(Call("keys/list", "{}", {{"authorization", "Bearer not-a-token"}}), 401,
              "invalid_token");
}

TEST_F(ApiTest, RevokedTokenIsInvalidToken) {
  ASSERT_TRUE(accounts_.RevokeToken(auditor_.token).ok());
  ExpectError(CallAs(auditor_, "keys/list"), 401, "invalid_token");
}

TEST_F(ApiTest, UnknownFieldIsInvalidRequest) {
  Response r = CallAs(auditor_, "keys/show", {{"name", "ec"}, {"nmae", "ec"}});
  ExpectError(r, 400, "invalid_request");
  EXPECT_NE(r.body.find("nmae"), std::string::npos);
  ExpectError(CallAs(auditor_, "keys/list", {{"verbose", true}}), 400, "invalid_request");
}

TEST_F(ApiTest, MalformedJsonIsInvalidRequest) {
  const std::vector<std::pair<std::string, std::string>> auth = {
      {"authorization", "Bearer " + auditor_.token}};
  ExpectError(Call("keys/show", "{\"name\":", auth), 400, "invalid_request");
  ExpectError(Call("keys/show", "[\"ec\"]", auth), 400, "invalid_request");
}

TEST_F(ApiTest, WrongContentTypeIsUnsupportedMediaType) {
  ExpectError(
      Call("keys/list", "{}", {{"authorization", "Bearer " + auditor_.token}}, "text/plain"), 415,
      "invalid_request");
}

TEST_F(ApiTest, EmptyBodyCountsAsEmptyObject) {
  Response r = Call("keys/list", "", {{"authorization", "Bearer " + auditor_.token}}, "");
  EXPECT_EQ(r.status, 200) << r.body;
}

TEST_F(ApiTest, FieldOfTheWrongTypeIsInvalidRequest) {
  Response r = CallAs(auditor_, "keys/show", {{"name", 7}});
  ExpectError(r, 400, "invalid_request");
  EXPECT_NE(r.body.find("'name'"), std::string::npos);
}

TEST_F(ApiTest, BadNameIsInvalidRequest) {
  ExpectError(CallAs(auditor_, "keys/show", {{"name", "no spaces please"}}), 400,
              "invalid_request");
  ExpectError(CallAs(auditor_, "accounts/show", {{"name", "-dash-first"}}), 400, "invalid_request");
}

TEST_F(ApiTest, AuditFailureIsTemporarilyUnavailableAndChangesNothing) {
  const std::string before = Snapshot();
  std::string logged;
  LogSink previous = SetLogSink([&logged](std::string_view line) { logged += line; });
  audit_.set_fail(true);
  Response r = CallAs(admin_, "keys/disable", {{"name", "ec"}});
  audit_.set_fail(false);
  SetLogSink(std::move(previous));
  ExpectError(r, 503, "temporarily_unavailable");
  EXPECT_EQ(Snapshot(), before);
  // What failed is for the operator, with the request id the client is given to quote.
  EXPECT_EQ(r.body.find("the audit log is down"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("request id "), std::string::npos) << r.body;
  EXPECT_NE(logged.find("the audit log is down"), std::string::npos) << logged;
}

// ---- roles ----

TEST_F(ApiTest, SignerAndAuditorAreRefusedEveryAdminRouteAndNothingChanges) {
  Ok(admin_, "keys/grant", {{"name", "ec"}, {"account", "alice"}});
  const std::vector<std::pair<std::string, json>> calls = {
      {"accounts/create", {{"name", "newbie"}, {"kind", "person"}, {"roles", {"signer"}}}},
      {"accounts/disable", {{"name", "alice"}}},
      {"accounts/enable", {{"name", "alice"}}},
      {"accounts/unlock", {{"name", "alice"}}},
      {"accounts/reset-totp", {{"name", "alice"}}},
      {"accounts/reset-password", {{"name", "alice"}}},
      {"accounts/roles", {{"name", "alice"}, {"roles", {"admin"}}}},
      {"keys/create", {{"name", "k2"}, {"algorithm", "ec-p256"}}},
      {"keys/disable", {{"name", "ec"}}},
      {"keys/enable", {{"name", "ec"}}},
      {"keys/destroy", {{"name", "ec"}}},
      {"keys/csr", {{"name", "ec"}, {"subject", "/CN=Refused"}}},
      {"keys/import-chain",
       {{"name", "ec"}, {"chain_pem", LeafCertificatePem(ec_.public_key_spki)}}},
      {"keys/grant", {{"name", "ec"}, {"account", "audrey"}}},
      {"keys/revoke", {{"name", "ec"}, {"account", "alice"}}},
      {"keys/set-policy", {{"name", "ec"}, {"policy", EcPolicy()}}},
      {"keys/destroy-unrecorded", {{"hsm_key_id", "ff"}}},
  };
  const std::string before = Snapshot();
  const size_t audit_before = audit_.events().size();
  const size_t account_events_before = AccountEvents().size();
  for (const Person* who : {&alice_, &auditor_}) {
    for (const auto& [route, body] : calls) {
      ExpectError(CallAs(*who, route, body), 403, "access_denied");
    }
  }
  EXPECT_EQ(Snapshot(), before);
  // Every refusal was recorded: key, grant and policy changes through the AuditSink, account
  // changes by AccountService.
  std::vector<service::AuditEvent> audit = audit_.events();
  ASSERT_EQ(audit.size() - audit_before, 2u * 10u);
  for (size_t i = audit_before; i < audit.size(); ++i) {
    EXPECT_FALSE(audit[i].succeeded());
    EXPECT_NE(audit[i].outcome.find("lacks the admin role"), std::string::npos);
  }
  std::vector<service::AccountEvent> events = AccountEvents();
  ASSERT_EQ(events.size() - account_events_before, 2u * 7u);
  for (size_t i = account_events_before; i < events.size(); ++i) {
    EXPECT_EQ(events[i].reason, service::AccountReason::kPermissionDenied);
  }
}

// The role is checked before the body's field names, so a refused change is recorded whatever its
// body holds; an admin's body with an unknown field is refused and recorded too.
TEST_F(ApiTest, RefusedKeyChangesWithUnknownFieldsAreRecorded) {
  const std::string before = Snapshot();
  size_t recorded = audit_.events().size();
  ExpectError(CallAs(alice_, "keys/destroy", {{"name", "ec"}, {"typo", 1}}), 403, "access_denied");
  ASSERT_EQ(audit_.events().size(), recorded + 1);
  EXPECT_EQ(audit_.events().back().action, AuditAction::kKeyDestroy);
  EXPECT_EQ(audit_.events().back().object, "ec");
  EXPECT_NE(audit_.events().back().outcome.find("lacks the admin role"), std::string::npos);
  recorded = audit_.events().size();
  ExpectError(CallAs(admin_, "keys/destroy", {{"name", "ec"}, {"typo", 1}}), 400,
              "invalid_request");
  ASSERT_EQ(audit_.events().size(), recorded + 1);
  EXPECT_EQ(audit_.events().back().action, AuditAction::kKeyDestroy);
  EXPECT_EQ(audit_.events().back().actor.account_name, "root");
  EXPECT_NE(audit_.events().back().outcome.find("unknown field 'typo'"), std::string::npos)
      << audit_.events().back().outcome;
  EXPECT_FALSE(audit_.events().back().succeeded());
  EXPECT_EQ(Snapshot(), before);
}

// An account change refused for its body is recorded too: as the role refusal for a non-admin
// (the role comes first), as the body's fault for an admin.
TEST_F(ApiTest, RefusedAccountChangesWithBadBodiesAreRecorded) {
  const std::string before = Snapshot();
  size_t recorded = AccountEvents().size();
  ExpectError(CallAs(alice_, "accounts/disable", {{"name", "audrey"}, {"typo", 1}}), 403,
              "access_denied");
  ASSERT_EQ(AccountEvents().size(), recorded + 1);
  EXPECT_EQ(AccountEvents().back().action, service::AccountAction::kAccountDisable);
  EXPECT_EQ(AccountEvents().back().reason, service::AccountReason::kPermissionDenied);
  EXPECT_EQ(AccountEvents().back().object, "audrey");
  EXPECT_EQ(AccountEvents().back().actor_name, "alice");

  struct Case {
    std::string route;
    json body;
    service::AccountAction action;
    std::string why;
  };
  const std::vector<Case> cases = {
      {"accounts/disable",
       {{"name", "audrey"}, {"typo", 1}},
       service::AccountAction::kAccountDisable,
       "unknown field 'typo'"},
      {"accounts/create",
       {{"name", "robot"}, {"kind", "robot"}, {"roles", json::array()}},
       service::AccountAction::kAccountCreate,
       "'kind' must be person or service"},
      {"accounts/roles",
       {{"name", "audrey"}, {"roles", {"overlord"}}},
       service::AccountAction::kAccountRoles,
       "overlord"},
      {"accounts/unlock", {{"name", 7}}, service::AccountAction::kUnlock, "name"},
  };
  for (const Case& c : cases) {
    recorded = AccountEvents().size();
    ExpectError(CallAs(admin_, c.route, c.body), 400, "invalid_request");
    ASSERT_EQ(AccountEvents().size(), recorded + 1) << c.route;
    const service::AccountEvent e = AccountEvents().back();  // AccountEvents() is a copy
    EXPECT_EQ(e.action, c.action) << c.route;
    EXPECT_EQ(e.reason, service::AccountReason::kInvalidArgument) << c.route;
    EXPECT_EQ(e.actor_name, "root");
    EXPECT_NE(e.details.at("error").find(c.why), std::string::npos)
        << c.route << ": [" << e.details.at("error") << "]";
  }
  EXPECT_EQ(Snapshot(), before);
}

// A key change an admin sends with a bad value (an unknown account to grant, a policy or
// algorithm that does not parse) is recorded as refused, like the services' own refusals.
TEST_F(ApiTest, RefusedKeyChangesWithBadValuesAreRecorded) {
  const std::string before = Snapshot();
  struct Case {
    std::string route;
    json body;
    AuditAction action;
    int status;
  };
  json bad_policy = EcPolicy();
  bad_policy["max_signatures_per_authorization"] = -1;
  const std::vector<Case> cases = {
      {"keys/grant", {{"name", "ec"}, {"account", "nobody"}}, AuditAction::kGrant, 404},
      {"keys/revoke", {{"name", "ec"}, {"account", "nobody"}}, AuditAction::kRevokeGrant, 404},
      {"keys/set-policy",
       {{"name", "ec"}, {"policy", bad_policy}},
       AuditAction::kPolicyChange,
       400},
      {"keys/create", {{"name", "new"}, {"algorithm", "dsa-1024"}}, AuditAction::kKeyCreate, 400},
      {"keys/csr", {{"name", "ec"}, {"subject", 5}}, AuditAction::kKeyCsr, 400},
  };
  for (const Case& c : cases) {
    const size_t recorded = audit_.events().size();
    Response r = CallAs(admin_, c.route, c.body);
    EXPECT_EQ(r.status, c.status) << c.route << ": " << r.body;
    ASSERT_EQ(audit_.events().size(), recorded + 1) << c.route;
    EXPECT_EQ(audit_.events().back().action, c.action) << c.route;
    EXPECT_EQ(audit_.events().back().object, c.body["name"].get<std::string>());
    EXPECT_EQ(audit_.events().back().actor.account_name, "root");
    EXPECT_FALSE(audit_.events().back().succeeded()) << c.route;
  }
  EXPECT_EQ(Snapshot(), before);
}

TEST_F(ApiTest, RefusedKeyChangeIsRecordedWithActorAndKey) {
  ExpectError(CallAs(alice_, "keys/grant", {{"name", "ec"}, {"account", "alice"}}), 403,
              "access_denied");
  service::AuditEvent last = audit_.events().back();
  EXPECT_EQ(last.action, AuditAction::kGrant);
  EXPECT_EQ(last.object, "ec");
  EXPECT_EQ(last.actor.account_name, "alice");
  EXPECT_EQ(last.actor.client_address, "192.0.2.9:4444");
  EXPECT_EQ(last.request_id, std::string(32, 'a'));
  EXPECT_FALSE(last.succeeded());
  EXPECT_FALSE(store_.HasGrant(ec_.id, alice_.id).value());
  // With the key's id, which the log's per-key query (key=) goes by.
  EXPECT_EQ(last.details["key_id"], ec_.id);
  // Also an admin's refused change of an existing key, and none for a name that names no key.
  ExpectError(CallAs(admin_, "keys/enable", {{"name", "ec"}}), 400, "failed_precondition");
  EXPECT_EQ(audit_.events().back().details["key_id"], ec_.id);
  ExpectError(CallAs(alice_, "keys/destroy", {{"name", "no-such-key"}}), 403, "access_denied");
  EXPECT_FALSE(audit_.events().back().details.contains("key_id"));
}

// Key lifecycle events carry the request that caused them, like signatures do.
TEST_F(ApiTest, KeyChangesAreRecordedWithTheRequestId) {
  Ok(admin_, "keys/create", {{"name", "k2"}, {"algorithm", "ec-p256"}});
  service::AuditEvent created = audit_.events().back();
  EXPECT_EQ(created.action, AuditAction::kKeyCreate);
  EXPECT_EQ(created.object, "k2");
  EXPECT_EQ(created.request_id, std::string(32, 'a'));
  Ok(admin_, "keys/disable", {{"name", "k2"}});
  service::AuditEvent disabled = audit_.events().back();
  EXPECT_EQ(disabled.action, AuditAction::kKeyDisable);
  EXPECT_EQ(disabled.request_id, std::string(32, 'a'));
}

// So do account changes, refused ones, password changes and rejected tokens.
TEST_F(ApiTest, AccountChangesAreRecordedWithTheRequestAndAddress) {
  Person fresh = MakePerson("fresh", {Role::kAuditor}, /*change_password=*/false);
  const size_t before = AccountEvents().size();
  Ok(admin_, "accounts/disable", {{"name", "alice"}});
  Ok(admin_, "accounts/enable", {{"name", "alice"}});
  Ok(admin_, "accounts/roles", {{"name", "alice"}, {"roles", {"signer", "auditor"}}});
  ExpectError(CallAs(auditor_, "accounts/unlock", {{"name", "alice"}}), 403, "access_denied");
  Ok(fresh, "auth/password",
     {{"old_password", fresh.password}, {"new_password", "a brand new password"}});
  Person ghost;
  ghost.name = "ghost";
  ghost.token = std::string(43, 'A');
  ExpectError(CallAs(ghost, "auth/whoami"), 401, "invalid_token");
  std::vector<service::AccountEvent> events = AccountEvents();
  ASSERT_EQ(events.size() - before, 6u);
  for (size_t i = before; i < events.size(); ++i) {
    EXPECT_EQ(events[i].request_id, std::string(32, 'a'))
        << service::AccountActionName(events[i].action);
    EXPECT_EQ(events[i].client_address, "192.0.2.9:4444")
        << service::AccountActionName(events[i].action);
  }
  EXPECT_EQ(events.back().action, AccountAction::kTokenRejected);
}

TEST_F(ApiTest, SignerIsRefusedReadRoutes) {
  for (const auto& [route, body] :
       std::vector<std::pair<std::string, json>>{{"accounts/list", json::object()},
                                                 {"accounts/show", {{"name", "alice"}}},
                                                 {"keys/list", json::object()},
                                                 {"keys/show", {{"name", "ec"}}},
                                                 {"keys/grants", {{"name", "ec"}}},
                                                 {"keys/policy", {{"name", "ec"}}}}) {
    ExpectError(CallAs(alice_, route, body), 403, "access_denied");
    EXPECT_EQ(CallAs(auditor_, route, body).status, 200) << route;
  }
}

TEST_F(ApiTest, PasswordChangeDueRefusesEverythingButWhoamiAndPassword) {
  Person fresh = MakePerson("fresh", {Role::kAdmin}, /*change_password=*/false);
  const size_t audit_before = audit_.events().size();
  ExpectError(CallAs(fresh, "accounts/list"), 403, "access_denied");
  ExpectError(CallAs(fresh, "keys/list"), 403, "access_denied");
  ExpectError(CallAs(fresh, "keys/create", {{"name", "k2"}, {"algorithm", "ec-p256"}}), 403,
              "access_denied");
  ExpectError(CallAs(fresh, "accounts/disable", {{"name", "alice"}}), 403, "access_denied");
  EXPECT_FALSE(store_.GetKeyByName("k2").ok());
  // The refused changes were recorded.
  ASSERT_EQ(audit_.events().size(), audit_before + 1);
  EXPECT_EQ(audit_.events().back().action, AuditAction::kKeyCreate);
  EXPECT_EQ(AccountEvents().back().reason, service::AccountReason::kPermissionDenied);
  json me = Ok(fresh, "auth/whoami");
  EXPECT_EQ(me["account"]["must_change_password"], true);
}

// ---- auth/ ----

TEST_F(ApiTest, WhoamiReturnsTheCallersOwnAccount) {
  json me = Ok(alice_, "auth/whoami");
  EXPECT_EQ(me["account"]["name"], "alice");
  EXPECT_EQ(me["account"]["id"], alice_.id);
  EXPECT_EQ(me["account"]["roles"], json({"signer"}));
  EXPECT_EQ(me["account"]["kind"], "person");
}

TEST_F(ApiTest, PasswordChangeClearsMustChangePasswordAndReportsAccountChange) {
  Person fresh = MakePerson("fresh", {Role::kAuditor}, /*change_password=*/false);
  json answer = Ok(fresh, "auth/password",
                   {{"old_password", fresh.password}, {"new_password", "a brand new password"}});
  EXPECT_EQ(answer, json::object());
  // serve's bootstrap-file hook keys on exactly this event.
  service::AccountEvent last = AccountEvents().back();
  EXPECT_EQ(last.action, AccountAction::kAccountChange);
  EXPECT_TRUE(last.succeeded());
  EXPECT_EQ(last.object, "fresh");
  EXPECT_FALSE(store_.GetAccountByName("fresh")->must_change_password);
  // The same token now reaches the rest of the API.
  EXPECT_EQ(CallAs(fresh, "keys/list").status, 200);
}

TEST_F(ApiTest, PasswordChangeWithWrongCurrentPasswordIsAccessDenied) {
  ExpectError(CallAs(alice_, "auth/password",
                     {{"old_password", "not the password"}, {"new_password", "whatever else 1"}}),
              403, "access_denied");
  ExpectError(CallAs(alice_, "auth/password",
                     {{"old_password", alice_.password}, {"new_password", "short"}}),
              400, "invalid_request");
  // A body without its fields, or with others, is refused and recorded like any refused change
  // of the account (docs/api.md: every refused change is in the log).
  for (const json& body : {json{{"new_password", "a long enough one"}},
                           json{{"old_password", "x"}, {"new_password", "y"}, {"extra", 1}}}) {
    const size_t before = AccountEvents().size();
    ExpectError(CallAs(alice_, "auth/password", body), 400, "invalid_request");
    const std::vector<service::AccountEvent> events = AccountEvents();
    ASSERT_EQ(events.size(), before + 1) << body.dump();
    EXPECT_EQ(events.back().action, service::AccountAction::kAccountChange);
    EXPECT_EQ(events.back().object, "alice");
    EXPECT_NE(events.back().reason, service::AccountReason::kSuccess);
  }
}

// ---- accounts/ ----

TEST_F(ApiTest, AccountsListAndShow) {
  json list = Ok(auditor_, "accounts/list");
  std::set<std::string> names;
  for (const json& a : list["accounts"]) names.insert(a["name"]);
  EXPECT_EQ(names, (std::set<std::string>{"alice", "audrey", "root"}));
  json shown = Ok(auditor_, "accounts/show", {{"name", "alice"}})["account"];
  std::set<std::string> fields;
  for (auto it = shown.begin(); it != shown.end(); ++it) fields.insert(it.key());
  EXPECT_EQ(fields, (std::set<std::string>{"id", "name", "kind", "roles", "state", "totp_enrolled",
                                           "must_change_password", "failed_attempts", "created_at",
                                           "updated_at"}));
  EXPECT_EQ(shown["state"], "active");
  EXPECT_EQ(shown["totp_enrolled"], true);
}

TEST_F(ApiTest, UnknownAccountIsNotFound) {
  ExpectError(CallAs(auditor_, "accounts/show", {{"name", "nobody"}}), 404, "not_found");
  ExpectError(CallAs(admin_, "accounts/disable", {{"name", "nobody"}}), 404, "not_found");
}

TEST_F(ApiTest, CreatePersonReturnsOneTimePasswordAndTotpEnrolment) {
  json created = Ok(admin_, "accounts/create",
                    {{"name", "bob"}, {"kind", "person"}, {"roles", {"signer", "auditor"}}});
  EXPECT_EQ(created["account"]["name"], "bob");
  EXPECT_EQ(created["account"]["roles"], json({"signer", "auditor"}));
  EXPECT_EQ(created["account"]["must_change_password"], true);
  const std::string uri = created["totp_uri"];
  EXPECT_EQ(uri.rfind("otpauth://totp/", 0), 0u) << uri;
  // The one-time password and seed are the real ones: bob can log in with them.
  Person bob{"", "bob", created["one_time_password"],
             signet::testing::Base32Decode(created["totp_secret"].get<std::string>()), ""};
  auto token = Login(bob);
  ASSERT_TRUE(token.ok()) << token.error().message();
  EXPECT_TRUE(token->principal.must_change_password);
}

TEST_F(ApiTest, CreateServiceRequiresClientCertSha256) {
  ExpectError(CallAs(admin_, "accounts/create",
                     {{"name", "ci"}, {"kind", "service"}, {"roles", {"signer"}}}),
              400, "invalid_request");
  ExpectError(CallAs(admin_, "accounts/create",
                     {{"name", "p"},
                      {"kind", "person"},
                      {"roles", json::array()},
                      {"client_cert_sha256", kFingerprint}}),
              400, "invalid_request");
  EXPECT_FALSE(store_.GetAccountByName("ci").ok());
  json created = Ok(admin_, "accounts/create",
                    {{"name", "ci"},
                     {"kind", "service"},
                     {"roles", {"signer"}},
                     {"client_cert_sha256", kFingerprint}});
  EXPECT_EQ(created["account"]["kind"], "service");
  EXPECT_EQ(created["account"]["client_cert_sha256"], kFingerprint);
  EXPECT_FALSE(created.contains("one_time_password"));
}

TEST_F(ApiTest, CreateWithBadKindOrRoleIsInvalidRequest) {
  ExpectError(CallAs(admin_, "accounts/create",
                     {{"name", "x"}, {"kind", "robot"}, {"roles", json::array()}}),
              400, "invalid_request");
  ExpectError(
      CallAs(admin_, "accounts/create", {{"name", "x"}, {"kind", "person"}, {"roles", {"root"}}}),
      400, "invalid_request");
  ExpectError(CallAs(admin_, "accounts/create",
                     {{"name", "x"}, {"kind", "person"}, {"roles", {"signer", "signer"}}}),
              400, "invalid_request");
  ExpectError(CallAs(admin_, "accounts/create", {{"name", "x"}, {"kind", "person"}}), 400,
              "invalid_request");
}

TEST_F(ApiTest, DuplicateAccountNameIsAlreadyExists) {
  ExpectError(CallAs(admin_, "accounts/create",
                     {{"name", "alice"}, {"kind", "person"}, {"roles", json::array()}}),
              409, "already_exists");
}

TEST_F(ApiTest, DisableAndEnableAnAccount) {
  json disabled = Ok(admin_, "accounts/disable", {{"name", "alice"}});
  EXPECT_EQ(disabled["account"]["state"], "disabled");
  ExpectError(CallAs(alice_, "auth/whoami"), 401, "invalid_token");  // tokens revoked
  ExpectError(CallAs(admin_, "accounts/disable", {{"name", "alice"}}), 400, "failed_precondition");
  json enabled = Ok(admin_, "accounts/enable", {{"name", "alice"}});
  EXPECT_EQ(enabled["account"]["state"], "active");
}

TEST_F(ApiTest, UnlockLiftsALock) {
  for (int i = 0; i < 5; ++i) {
    auto code = totp_.Generate(alice_.seed, clock_.Now());
    EXPECT_FALSE(accounts_
                     .LoginWithPassword("alice", SecretBytes(std::string_view("wrong password")),
                                        code->text_view(), {"x"})
                     .ok());
  }
  json locked = Ok(admin_, "accounts/show", {{"name", "alice"}})["account"];
  ASSERT_TRUE(locked.contains("locked_until")) << locked.dump();
  EXPECT_FALSE(Login(alice_).ok());
  json unlocked = Ok(admin_, "accounts/unlock", {{"name", "alice"}})["account"];
  EXPECT_FALSE(unlocked.contains("locked_until"));
  EXPECT_EQ(unlocked["failed_attempts"], 0);
  EXPECT_TRUE(Login(alice_).ok());
}

TEST_F(ApiTest, ResetTotpReturnsANewEnrolment) {
  json reset = Ok(admin_, "accounts/reset-totp", {{"name", "alice"}});
  EXPECT_EQ(reset["account"]["name"], "alice");
  alice_.seed = signet::testing::Base32Decode(reset["totp_secret"].get<std::string>());
  EXPECT_EQ(reset["totp_uri"].get<std::string>().rfind("otpauth://totp/", 0), 0u);
  EXPECT_TRUE(Login(alice_).ok());
}

TEST_F(ApiTest, ResetPasswordReturnsANewOneTimePassword) {
  const std::string old_password = alice_.password;
  json reset = Ok(admin_, "accounts/reset-password", {{"name", "alice"}});
  EXPECT_EQ(reset["account"]["name"], "alice");
  EXPECT_TRUE(reset["account"]["must_change_password"].get<bool>());
  alice_.password = reset["one_time_password"].get<std::string>();
  EXPECT_NE(alice_.password, old_password);
  auto token = Login(alice_);
  ASSERT_TRUE(token.ok()) << token.error().message();
  EXPECT_TRUE(token->principal.must_change_password);
  ExpectError(CallAs(admin_, "accounts/reset-password", {{"name", "nobody"}}), 404, "not_found");
}

TEST_F(ApiTest, SetRolesReplacesTheRoles) {
  json changed =
      Ok(admin_, "accounts/roles", {{"name", "alice"}, {"roles", {"signer", "auditor"}}});
  EXPECT_EQ(changed["account"]["roles"], json({"signer", "auditor"}));
  EXPECT_TRUE(store_.GetAccountByName("alice")->roles.Has(Role::kAuditor));
}

// ---- keys/ ----

TEST_F(ApiTest, KeysListShowsTheCliFields) {
  json list = Ok(auditor_, "keys/list");
  ASSERT_EQ(list["keys"].size(), 1u);
  EXPECT_EQ(list["keys"][0], service::KeyToJson(ec_));
  std::set<std::string> fields;
  for (auto it = list["keys"][0].begin(); it != list["keys"][0].end(); ++it) {
    fields.insert(it.key());
  }
  EXPECT_EQ(fields, (std::set<std::string>{"id", "name", "algorithm", "state", "owner",
                                           "token_label", "token_serial", "hsm_key_id",
                                           "public_key_pem", "has_certificate",
                                           "certificate_chain_pem", "created_at", "updated_at"}));
}

TEST_F(ApiTest, KeysShowAddsHsmDetails) {
  json key = Ok(auditor_, "keys/show", {{"name", "ec"}})["key"];
  EXPECT_EQ(key["present_in_hsm"], true);
  EXPECT_EQ(key["public_key_matches_hsm"], true);
  EXPECT_EQ(key["protection"]["extractable"], false);
}

TEST_F(ApiTest, UnknownKeyIsNotFound) {
  ExpectError(CallAs(auditor_, "keys/show", {{"name", "nokey"}}), 404, "not_found");
  ExpectError(CallAs(admin_, "keys/disable", {{"name", "nokey"}}), 404, "not_found");
  ExpectError(CallAs(admin_, "keys/grant", {{"name", "nokey"}, {"account", "alice"}}), 404,
              "not_found");
}

TEST_F(ApiTest, CreateKeyAndDuplicateName) {
  json key = Ok(admin_, "keys/create", {{"name", "release"}, {"algorithm", "ec-p384"}})["key"];
  EXPECT_EQ(key["name"], "release");
  EXPECT_EQ(key["algorithm"], "ec-p384");
  EXPECT_EQ(key["state"], "active");
  EXPECT_EQ(key["owner"], "root");
  EXPECT_EQ(audit_.events().back().action, AuditAction::kKeyCreate);
  EXPECT_TRUE(audit_.events().back().succeeded());
  ExpectError(CallAs(admin_, "keys/create", {{"name", "release"}, {"algorithm", "ec-p256"}}), 409,
              "already_exists");
  ExpectError(CallAs(admin_, "keys/create", {{"name", "other"}, {"algorithm", "ed25519"}}), 400,
              "invalid_request");
  ExpectError(CallAs(admin_, "keys/create", {{"name", "other"}, {"algorithm", "dsa"}}), 400,
              "invalid_request");
}

TEST_F(ApiTest, DisableEnableAndDestroyAKey) {
  EXPECT_EQ(Ok(admin_, "keys/disable", {{"name", "ec"}})["key"]["state"], "disabled");
  EXPECT_EQ(Ok(admin_, "keys/enable", {{"name", "ec"}})["key"]["state"], "active");
  EXPECT_EQ(Ok(admin_, "keys/destroy", {{"name", "ec"}})["key"]["state"], "destroyed");
  EXPECT_EQ(key_store_.KeyCount(), 0u);
  // A destroyed key is a state conflict.
  ExpectError(CallAs(admin_, "keys/enable", {{"name", "ec"}}), 400, "failed_precondition");
}

TEST_F(ApiTest, ADestroyTheHsmDidNotFinishSaysToRepeatItWithoutTheHsmsMessage) {
  key_store_.FailNextDestroy(
      Unavailable("C_DestroyObject in /opt/vendor/libsecrethsm.so returned CKR_DEVICE_ERROR"));
  Response r = CallAs(admin_, "keys/destroy", {{"name", "ec"}});
  ExpectError(r, 503, "temporarily_unavailable");
  EXPECT_EQ(r.body.find("libsecrethsm"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("run the destroy command again"), std::string::npos) << r.body;
  EXPECT_EQ(key_store_.KeyCount(), 1u);
  EXPECT_EQ(Ok(admin_, "keys/show", {{"name", "ec"}})["key"]["present_in_hsm"], true);
  EXPECT_EQ(Ok(admin_, "keys/destroy", {{"name", "ec"}})["key"]["state"], "destroyed");
  EXPECT_EQ(key_store_.KeyCount(), 0u);
}

// What a crash between generation and record leaves on the token: listed for admins and auditors,
// destroyed by an admin only, and only that.
TEST_F(ApiTest, UnrecordedKeysAreListedAndOnlyTheyCanBeDestroyed) {
  auto orphan = key_store_.GenerateKey(KeyAlgorithm::kEcP384, "ec");
  ASSERT_TRUE(orphan.ok());
  const std::string hex = HexEncode(orphan->id.bytes);
  json listed = Ok(auditor_, "keys/unrecorded");
  ASSERT_EQ(listed["unrecorded_keys"].size(), 1u) << listed.dump();
  EXPECT_EQ(listed["unrecorded_keys"][0],
            json({{"hsm_key_id", hex}, {"label", "ec"}, {"algorithm", "ec-p384"}}));
  ExpectError(CallAs(alice_, "keys/unrecorded"), 403, "access_denied");

  ExpectError(CallAs(admin_, "keys/destroy-unrecorded", {{"hsm_key_id", ec_.hsm_key_id}}), 400,
              "failed_precondition");
  EXPECT_EQ(audit_.events().back().object, "hsm:" + ec_.hsm_key_id);
  ExpectError(CallAs(admin_, "keys/destroy-unrecorded", {{"hsm_key_id", "0a0b"}}), 404,
              "not_found");
  ExpectError(CallAs(admin_, "keys/destroy-unrecorded", {{"hsm_key_id", 12}}), 400,
              "invalid_request");
  ExpectError(CallAs(admin_, "keys/destroy-unrecorded", {{"hsm_key_id", "xyz"}}), 400,
              "invalid_request");
  EXPECT_EQ(key_store_.KeyCount(), 2u);

  json gone = Ok(admin_, "keys/destroy-unrecorded", {{"hsm_key_id", hex}});
  EXPECT_EQ(gone["destroyed"]["hsm_key_id"], hex);
  EXPECT_EQ(audit_.events().back().object, "hsm:" + hex);
  EXPECT_EQ(audit_.events().back().actor.account_name, "root");
  EXPECT_TRUE(audit_.events().back().succeeded());
  EXPECT_EQ(key_store_.KeyCount(), 1u);
  EXPECT_TRUE(Ok(auditor_, "keys/unrecorded")["unrecorded_keys"].empty());
  EXPECT_EQ(Ok(admin_, "keys/show", {{"name", "ec"}})["key"]["present_in_hsm"], true);
}

TEST_F(ApiTest, CsrIsSignedByTheKey) {
  json answer =
      Ok(admin_, "keys/csr", {{"name", "ec"}, {"subject", "/CN=API Test/O=Example/C=GB"}});
  const std::string pem = answer["csr_pem"];
  EXPECT_EQ(pem.rfind("-----BEGIN CERTIFICATE REQUEST-----", 0), 0u) << pem;
  ExpectError(CallAs(admin_, "keys/csr", {{"name", "ec"}, {"subject", "no slash"}}), 400,
              "invalid_request");
}

TEST_F(ApiTest, ImportChainStoresTheCertificate) {
  const std::string pem = LeafCertificatePem(ec_.public_key_spki);
  ASSERT_FALSE(pem.empty());
  json key = Ok(admin_, "keys/import-chain", {{"name", "ec"}, {"chain_pem", pem}})["key"];
  EXPECT_EQ(key["has_certificate"], true);
  EXPECT_NE(key["certificate_chain_pem"].get<std::string>().find("BEGIN CERTIFICATE"),
            std::string::npos);
  ExpectError(CallAs(admin_, "keys/import-chain", {{"name", "ec"}, {"chain_pem", "garbage"}}), 400,
              "invalid_request");
}

TEST_F(ApiTest, GrantThenGrantsListThenRevoke) {
  EXPECT_EQ(Ok(auditor_, "keys/grants", {{"name", "ec"}})["accounts"], json::array());
  EXPECT_EQ(Ok(admin_, "keys/grant", {{"name", "ec"}, {"account", "alice"}}), json::object());
  EXPECT_EQ(Ok(admin_, "keys/grant", {{"name", "ec"}, {"account", "audrey"}}), json::object());
  EXPECT_TRUE(store_.HasGrant(ec_.id, alice_.id).value());
  EXPECT_EQ(Ok(auditor_, "keys/grants", {{"name", "ec"}})["accounts"], json({"alice", "audrey"}));
  ExpectError(CallAs(admin_, "keys/grant", {{"name", "ec"}, {"account", "alice"}}), 409,
              "already_exists");
  EXPECT_EQ(Ok(admin_, "keys/revoke", {{"name", "ec"}, {"account", "alice"}}), json::object());
  EXPECT_EQ(Ok(auditor_, "keys/grants", {{"name", "ec"}})["accounts"], json({"audrey"}));
  ExpectError(CallAs(admin_, "keys/revoke", {{"name", "ec"}, {"account", "alice"}}), 404,
              "not_found");
}

TEST_F(ApiTest, GrantToUnknownAccountIsNotFound) {
  ExpectError(CallAs(admin_, "keys/grant", {{"name", "ec"}, {"account", "nobody"}}), 404,
              "not_found");
}

TEST_F(ApiTest, PolicyIsTheDefaultUntilSet) {
  json policy = Ok(auditor_, "keys/policy", {{"name", "ec"}})["policy"];
  EXPECT_EQ(policy["sign_schemes"], json({"ecdsa"}));
  EXPECT_EQ(policy["hash_algorithms"], json({"sha256", "sha384", "sha512"}));
  EXPECT_EQ(policy["max_signatures_per_authorization"], 1000);
}

TEST_F(ApiTest, SetPolicyRoundTrips) {
  json set = Ok(admin_, "keys/set-policy", {{"name", "ec"}, {"policy", EcPolicy()}})["policy"];
  EXPECT_EQ(set, EcPolicy());
  EXPECT_EQ(Ok(auditor_, "keys/policy", {{"name", "ec"}})["policy"], EcPolicy());
  EXPECT_EQ(audit_.events().back().action, AuditAction::kPolicyChange);
}

TEST_F(ApiTest, SetPolicyChangesOnlyTheFieldsGiven) {
  Ok(admin_, "keys/set-policy", {{"name", "ec"}, {"policy", EcPolicy()}});
  // Two admins' partial changes of different fields: each keeps what the other set.
  json rate = Ok(admin_, "keys/set-policy",
                 {{"name", "ec"}, {"policy", {{"rate_per_minute_key", 7}}}})["policy"];
  EXPECT_EQ(rate["max_signatures_per_authorization"], 10);
  json max = Ok(admin_, "keys/set-policy",
                {{"name", "ec"}, {"policy", {{"max_signatures_per_authorization", 5}}}})["policy"];
  json expected = EcPolicy();
  expected["rate_per_minute_key"] = 7;
  expected["max_signatures_per_authorization"] = 5;
  EXPECT_EQ(max, expected);
  EXPECT_EQ(Ok(auditor_, "keys/policy", {{"name", "ec"}})["policy"], expected);
  const service::AuditEvent last = audit_.events().back();
  EXPECT_EQ(last.action, AuditAction::kPolicyChange);
  EXPECT_EQ(last.details.at("change"), "max_per_authorization=5");
  EXPECT_THAT(last.details.at("old_policy"), HasSubstr("max_per_authorization=10;"));
  EXPECT_THAT(last.details.at("new_policy"), HasSubstr("max_per_authorization=5;"));
  EXPECT_THAT(last.details.at("new_policy"), HasSubstr("rate_per_minute_key=7;"));
}

TEST_F(ApiTest, SetPolicyNeedsAFieldAndOnlyKnownOnes) {
  ExpectError(CallAs(admin_, "keys/set-policy", {{"name", "ec"}, {"policy", json::object()}}), 400,
              "invalid_request");
  ExpectError(CallAs(admin_, "keys/set-policy",
                     {{"name", "ec"}, {"policy", {{"rate_per_minute_key", nullptr}}}}),
              400, "invalid_request");
  json extra = EcPolicy();
  extra["burst"] = 5;
  ExpectError(CallAs(admin_, "keys/set-policy", {{"name", "ec"}, {"policy", extra}}), 400,
              "invalid_request");
  ExpectError(CallAs(admin_, "keys/set-policy",
                     {{"name", "ec"}, {"policy", {{"sign_schemes", {"rsa-pss"}}}}}),
              400, "invalid_request");
  ExpectError(CallAs(admin_, "keys/set-policy",
                     {{"name", "ec"}, {"policy", {{"rate_per_minute_account", -1}}}}),
              400, "invalid_request");
  ExpectError(CallAs(admin_, "keys/set-policy",
                     {{"name", "ec"}, {"policy", {{"hash_algorithms", json::array()}}}}),
              400, "invalid_request");
  EXPECT_FALSE(store_.GetKeyPolicy(ec_.id).value().has_value());
}

}  // namespace
}  // namespace signet::server::api
