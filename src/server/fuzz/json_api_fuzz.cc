// libFuzzer target for the JSON APIs of `signet serve`: the CSC API v2 handlers (csc/csc_api.h)
// and the management API (api/api.h). Request bodies straight from clients go past authentication
// into the real AccountService, SigningService and KeyService (in-memory store, FakeKeyStore,
// Argon2id at a test cost, liboath). Each input gets a fresh service, so a crash reproduces from
// its input alone.
//
// Input: byte 0 picks the route (kRoutes), byte 1 the caller (its low six bits modulo 8: nobody,
// the signer alice's bearer token, the service account's token on a connection with its client
// certificate, that certificate alone, an unknown bearer token, HTTP Basic for alice, the admin
// root's token, or 7: the body's first line is the raw Authorization header; bit 0x40 adds
// "Content-Type: application/json", else bit 0x80 "text/plain"), the rest is the body. In the
// body (and a raw header) the harness replaces
//   @SAD@  with a SAD just issued to alice (when she calls) or the service account for @H1@ and
//          @H2@ on the credential "ec", so signHash and extendTransaction get past the SAD look-up;
//   @H1@ @H2@  with base64 SHA-256 digests;  @OTP@  with alice's current TOTP code;
//   @PIN@  with alice's password;  @ALICE@  with her bearer token;  @BASIC@  with base64 of
//          "alice:<password>".
//
// Checked for every input: the answer is 200, 4xx or auth/revoke's empty 204 (the fakes never
// fail, so a 5xx, which is also what an escaped exception becomes, is a bug in the handlers); its
// body is a JSON object; an error body carries one of its API's error codes and a non-empty
// description; a signHash answer carries one signature per hash asked for.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/encoding.h"
#include "pki/pki.h"
#include "server/api/api.h"
#include "server/csc/csc_api.h"
#include "service/adapters/argon2_password_hasher.h"
#include "service/adapters/oath_totp.h"
#include "service/testing/fakes.h"

namespace signet::server {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// Indexes 0-7 are CSC's (the seeds rely on the order), then the management API's.
constexpr std::string_view kRoutes[] = {
    "/csc/v2/info",
    "/csc/v2/auth/login",
    "/csc/v2/auth/revoke",
    "/csc/v2/credentials/list",
    "/csc/v2/credentials/info",
    "/csc/v2/credentials/authorize",
    "/csc/v2/credentials/extendTransaction",
    "/csc/v2/signatures/signHash",
    "/api/v1/auth/whoami",
    "/api/v1/auth/password",
    "/api/v1/accounts/list",
    "/api/v1/accounts/show",
    "/api/v1/accounts/create",
    "/api/v1/accounts/disable",
    "/api/v1/accounts/enable",
    "/api/v1/accounts/unlock",
    "/api/v1/accounts/reset-totp",
    "/api/v1/accounts/roles",
    "/api/v1/keys/list",
    "/api/v1/keys/show",
    "/api/v1/keys/create",
    "/api/v1/keys/disable",
    "/api/v1/keys/enable",
    "/api/v1/keys/destroy",
    "/api/v1/keys/csr",
    "/api/v1/keys/import-chain",
    "/api/v1/keys/grants",
    "/api/v1/keys/grant",
    "/api/v1/keys/revoke",
    "/api/v1/keys/policy",
    "/api/v1/keys/set-policy",
    "/api/v1/keys/unrecorded",
    "/api/v1/keys/destroy-unrecorded",
    "/api/v1/accounts/reset-password",
};
const std::string kFingerprint(64, 'c');

class DiscardingAuditSink final : public service::AuditSink {
 public:
  Status Record(const service::AuditEvent&) override { return OkStatus(); }
  Status RecordChange(const service::AuditEvent& event,
                      const service::AuditedChange& change) override {
    SIGNET_TRY(signet::testing::MakeChange(event, change));
    return OkStatus();
  }
  // Not atomic here (no transaction to run the check in); the check's effect is what is tested.
  Status RecordIf(const service::AuditEvent& event, const service::AuditCheck& check) override {
    SIGNET_TRY(check());
    return Record(event);
  }
};

[[noreturn]] void Fail(std::string_view why, std::string_view route, const Response& r) {
  std::fprintf(stderr, "json api fuzz: %.*s\nroute %.*s, status %d, body %s\n",
               static_cast<int>(why.size()), why.data(), static_cast<int>(route.size()),
               route.data(), r.status, r.body.c_str());
  std::abort();
}

void Check(bool ok, std::string_view why, std::string_view route, const Response& r) {
  if (!ok) Fail(why, route, r);
}

void ReplaceAll(std::string& text, std::string_view from, std::string_view to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
}

// One signet service as `signet serve` composes it, minus the network and the HSM.
class Service {
 public:
  Service()
      : clock_(FromUnixSeconds(1'790'000'000)),
        accounts_(store_, sealer_, hasher_, totp_, clock_),
        keys_(key_store_, store_, clock_, audit_, service::TokenIdentity{"fake", "0001"}),
        signing_(key_store_, store_, clock_, audit_) {}

  // False if the fixture itself could not be built.
  bool SetUp() {
    if (!csc::RegisterCscRoutes(router_, {accounts_, signing_, keys_, clock_, "signet-fuzz"})
             .ok() ||
        !api::RegisterApiRoutes(router_, {accounts_, signing_, keys_}).ok()) {
      return false;
    }
    if (!keys_.CreateKey(service::Actor{}, "ec", KeyAlgorithm::kEcP256, "a_admin").ok()) {
      return false;
    }
    auto alice = MakePerson("alice", store::Role::kSigner, alice_seed_, alice_token_);
    auto root = MakePerson("root", store::Role::kAdmin, root_seed_, root_token_);
    if (!alice || !root) return false;
    auto ci = accounts_.CreateService(service::SystemPrincipal(), "ci",
                                      store::RoleSet{store::Role::kSigner}, kFingerprint);
    if (!ci.ok()) return false;
    service::Caller admin;
    admin.actor.account_id = *root;
    admin.actor.roles = store::RoleSet{store::Role::kAdmin};
    if (!signing_.Grant(admin, "ec", *alice).ok()) return false;
    if (!signing_.Grant(admin, "ec", ci->id).ok()) return false;
    auto ci_login = accounts_.LoginWithClientCertificate(kFingerprint, {});
    if (!ci_login.ok()) return false;
    ci_token_ = std::string(ci_login->token.text_view());
    return true;
  }

  // Calls `path` as `caller` with `body`, its placeholders filled in (the filled-in body is left
  // in `body`, for the checks to see what was really sent).
  Response Call(std::string_view path, std::string& body, uint8_t caller) {
    Request r;
    r.method = "POST";
    r.path = r.target = std::string(path);
    r.client_address = "192.0.2.9:4444";
    r.request_id = std::string(32, 'f');
    const int who = (caller & 0x3f) % 8;
    if (who == 2 || who == 3) r.client_cert_sha256 = kFingerprint;
    if (caller & 0x40) {
      r.headers.emplace_back("content-type", "application/json");
    } else if (caller & 0x80) {
      r.headers.emplace_back("content-type", "text/plain");
    }
    switch (who) {
      case 1:
        r.headers.emplace_back("authorization", "Bearer " + alice_token_);
        break;
      case 2:
        r.headers.emplace_back("authorization", "Bearer " + ci_token_);
        break;
      case 4:
        r.headers.emplace_back("authorization", "Bearer " + std::string(43, 'A'));
        break;
      case 5:
        r.headers.emplace_back("authorization",
                               "Basic " + Base64Encode(AsBytes("alice:" + std::string(kPassword))));
        break;
      case 6:
        r.headers.emplace_back("authorization", "Bearer " + root_token_);
        break;
      case 7: {
        const size_t end = body.find('\n');
        std::string header = body.substr(0, end);
        body.erase(0, end == std::string::npos ? body.size() : end + 1);
        Fill(header, false);
        r.headers.emplace_back("authorization", std::move(header));
        break;
      }
      default:
        break;  // 0: nobody; 3: the service account's certificate, no header (login)
    }
    Fill(body, who == 1);
    r.body = body;
    Router::Match m = router_.Find("POST", r.path);
    if (m.route == nullptr) std::abort();
    r.route = m.route->pattern;
    return m.route->handler(r);
  }

 private:
  // Every person's password (alice's and root's): what @PIN@ stands for.
  static constexpr std::string_view kPassword = "a long password for the fuzzer";

  // Replaces the placeholders in `text`; a @SAD@ is alice's if `for_alice`.
  void Fill(std::string& text, bool for_alice) {
    if (text.find("@SAD@") != std::string::npos) ReplaceAll(text, "@SAD@", Sad(for_alice));
    ReplaceAll(text, "@H1@", Hash("one"));
    ReplaceAll(text, "@H2@", Hash("two"));
    if (text.find("@OTP@") != std::string::npos) ReplaceAll(text, "@OTP@", Code(alice_seed_));
    ReplaceAll(text, "@PIN@", kPassword);
    ReplaceAll(text, "@ALICE@", alice_token_);
    ReplaceAll(text, "@BASIC@", Base64Encode(AsBytes("alice:" + std::string(kPassword))));
  }

  std::string Code(const SecretBytes& seed) {
    return std::string(totp_.Generate(seed, clock_.Now())->text_view());
  }

  static std::string Hash(std::string_view text) {
    return Base64Encode(pki::ComputeDigest(HashAlgorithm::kSha256, AsBytes(text)).value());
  }

  // A person with `role` who has replaced the one-time password and logged in; the account id,
  // or nullopt. Each login moves the clock to the next TOTP step, so every code is fresh.
  std::optional<std::string> MakePerson(std::string_view name, store::Role role, SecretBytes& seed,
                                        std::string& token) {
    auto created = accounts_.CreatePerson(service::SystemPrincipal(), name, store::RoleSet{role});
    if (!created.ok()) return std::nullopt;
    seed = signet::testing::Base32Decode(created->totp.secret_base32.text_view());
    auto first = accounts_.LoginWithPassword(name, created->one_time_password, Code(seed), {});
    if (!first.ok()) return std::nullopt;
    clock_.Advance(30s);
    const SecretBytes password{std::string_view(kPassword)};
    if (!accounts_.ChangePassword(first->principal, created->one_time_password, password).ok()) {
      return std::nullopt;
    }
    auto login = accounts_.LoginWithPassword(name, password, Code(seed), {});
    if (!login.ok()) return std::nullopt;
    clock_.Advance(30s);
    token = std::string(login->token.text_view());
    return created->account.id;
  }

  // A SAD for @H1@ and @H2@ on "ec", issued to alice (with both factors) or to the service
  // account; the clock then moves on a step so that the body's @OTP@ is a fresh code.
  std::string Sad(bool for_alice) {
    json body = {{"credentialID", "ec"},
                 {"numSignatures", 2},
                 {"hashes", {Hash("one"), Hash("two")}},
                 {"hashAlgorithmOID", "2.16.840.1.101.3.4.2.1"}};
    Request r;
    r.method = "POST";
    r.path = r.target = r.route = "/csc/v2/credentials/authorize";
    r.headers = {{"content-type", "application/json"},
                 {"authorization", "Bearer " + (for_alice ? alice_token_ : ci_token_)}};
    if (for_alice) {
      body["authData"] = json::array(
          {{{"id", "PIN"}, {"value", kPassword}}, {{"id", "OTP"}, {"value", Code(alice_seed_)}}});
    } else {
      r.client_cert_sha256 = kFingerprint;
    }
    r.body = body.dump();
    Response answer = router_.Find("POST", r.path).route->handler(r);
    clock_.Advance(30s);
    if (answer.status != 200) Fail("the harness could not get a SAD", r.path, answer);
    return json::parse(answer.body).value("SAD", "");
  }

  FakeClock clock_;
  signet::testing::MemoryStore store_;
  signet::testing::FakeSecretSealer sealer_;
  service::Argon2PasswordHasher hasher_{
      service::Argon2Parameters{.iterations = 1, .memory_kib = 256, .parallelism = 1}};
  service::OathTotp totp_;
  signet::testing::FakeKeyStore key_store_;
  DiscardingAuditSink audit_;
  service::AccountService accounts_;
  service::KeyService keys_;
  service::SigningService signing_;
  Router router_;
  SecretBytes alice_seed_;
  SecretBytes root_seed_;
  std::string alice_token_;
  std::string root_token_;
  std::string ci_token_;
};

const std::set<std::string, std::less<>> kCscErrors = {
    "invalid_request", "invalid_token", "invalid_authentication_data",
    "access_denied",   "invalid_hash",  "too_many_requests",
};
const std::set<std::string, std::less<>> kApiErrors = {
    "invalid_request", "failed_precondition", "not_found",         "already_exists",
    "access_denied",   "invalid_token",       "too_many_requests",
};

}  // namespace
}  // namespace signet::server

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace signet::server;
  if (size < 2) return 0;
  const std::string_view route = kRoutes[data[0] % std::size(kRoutes)];
  const bool csc = route.starts_with("/csc/");
  std::string body(reinterpret_cast<const char*>(data + 2), size - 2);

  auto service = std::make_unique<Service>();
  if (!service->SetUp()) {
    std::fprintf(stderr, "json api fuzz: the fixture could not be built\n");
    std::abort();
  }
  Response r = service->Call(route, body, data[1]);
  // What was asked, as sent: a placeholder outside a string (an @OTP@ made a number) can turn
  // text that is not JSON into JSON.
  json request = json::parse(body, nullptr, false);
  // SIGNET_FUZZ_VERBOSE=1: what each input got, to see which paths a seed reaches.
  static const bool verbose = std::getenv("SIGNET_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "  %s -> %d %s\n", route.data(), r.status, r.body.c_str());

  Check(r.status == 200 || r.status == 204 || (r.status >= 400 && r.status < 500),
        "a status that is not 200, 204 or 4xx", route, r);
  if (r.status == 204) {  // auth/revoke
    Check(route == "/csc/v2/auth/revoke" && r.body.empty(), "an unexpected 204", route, r);
    return 0;
  }
  Check(r.content_type == "application/json", "a content type that is not JSON", route, r);
  json answer = json::parse(r.body, nullptr, false);
  Check(answer.is_object(), "a body that is not a JSON object", route, r);
  if (r.status != 200) {
    const json& error = answer["error"];
    Check(error.is_string() && (csc ? kCscErrors : kApiErrors).count(error.get<std::string>()) == 1,
          "an error code that is not one of its API's", route, r);
    const json& description = answer["error_description"];
    Check(description.is_string() && !description.get<std::string>().empty(),
          "an error without a description", route, r);
  } else if (route == "/csc/v2/signatures/signHash") {
    Check(request.is_object() && request["hashes"].is_array() && answer["signatures"].is_array() &&
              answer["signatures"].size() == request["hashes"].size(),
          "a signHash answer without one signature per hash", route, r);
  }
  return 0;
}
