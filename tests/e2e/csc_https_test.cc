// End to end over real HTTPS with real SoftHSM2 (issue 3, "Must show"): a cli::ServiceStack built
// in-process on a throwaway SoftHSM2 token (Pkcs11KeyStore + Pkcs11SecretSealer), an SqliteStore
// in a temporary folder, the Merkle audit log and a FakeClock, serving HTTPS on 127.0.0.1 port 0
// with a fresh localhost certificate; the client side is client::HttpsClient verifying that
// certificate. Keys are made by KeyService (RSA-3072, P-256, P-384), certified by a test CA built
// here with OpenSSL, and granted; people log in with HTTP Basic + TOTP codes computed by OathTotp
// at the fake time. Every signature is verified by OpenSSL against the public key of the
// certificate credentials/info returns, and a tampered hash must not verify.
//
// The environment (token, keys, accounts, their bearer tokens) is built once for the suite:
// RSA key generation and Argon2id logins are what cost time. Tests that change state use their own
// account or key, so the order of the tests does not matter.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <latch>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cli/service_stack.h"
#include "client/client.h"
#include "common/encoding.h"
#include "common/fs.h"
#include "hsm/pkcs11/pkcs11_key_store.h"
#include "hsm/pkcs11/pkcs11_secret_sealer.h"
#include "hsm/pkcs11/testing/signature_check.h"
#include "hsm/pkcs11/testing/softhsm_sandbox.h"
#include "pki/pki.h"
#include "pki/testing/test_ca.h"
#include "service/adapters/oath_totp.h"
#include "service/audit_sink.h"
#include "service/testing/fakes.h"
#include "store/sqlite/sqlite_store.h"

namespace signet {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// ---- OpenSSL handles (tests only) ----

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, Deleter<SSL_CTX, SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, Deleter<SSL, SSL_free>>;

// ---- constants ----

constexpr std::string_view kSha256Oid = "2.16.840.1.101.3.4.2.1";
constexpr std::string_view kSha384Oid = "2.16.840.1.101.3.4.2.2";
constexpr std::string_view kSha512Oid = "2.16.840.1.101.3.4.2.3";
constexpr std::string_view kRsaPssOid = "1.2.840.113549.1.1.10";
constexpr std::string_view kSha256WithRsaOid = "1.2.840.113549.1.1.11";
constexpr std::string_view kSha384WithRsaOid = "1.2.840.113549.1.1.12";
constexpr std::string_view kSha512WithRsaOid = "1.2.840.113549.1.1.13";
constexpr std::string_view kEcdsaSha256Oid = "1.2.840.10045.4.3.2";
constexpr std::string_view kEcdsaSha384Oid = "1.2.840.10045.4.3.3";
constexpr std::string_view kEcdsaSha512Oid = "1.2.840.10045.4.3.4";

constexpr size_t kMaxBodyBytes = 64 * 1024;
constexpr std::chrono::seconds kSadLifetime{300};

std::string_view HashOid(HashAlgorithm h) {
  switch (h) {
    case HashAlgorithm::kSha256:
      return kSha256Oid;
    case HashAlgorithm::kSha384:
      return kSha384Oid;
    case HashAlgorithm::kSha512:
      return kSha512Oid;
  }
  return "";
}

// DER RSASSA-PSS-params (RFC 8017 A.2.3): hashAlgorithm `h`, MGF1 with `h`, saltLength = digest
// length, trailerField default. Written out byte by byte so the test does not share the server's
// parser: SEQUENCE { [0] AlgorithmIdentifier(h, NULL), [1] AlgorithmIdentifier(mgf1,
// AlgorithmIdentifier(h, NULL)), [2] INTEGER salt }.
Bytes PssParams(HashAlgorithm h) {
  const uint8_t oid_last = h == HashAlgorithm::kSha256 ? 1 : h == HashAlgorithm::kSha384 ? 2 : 3;
  const auto salt = static_cast<uint8_t>(DigestSize(h));
  const Bytes hash_alg = {0x30, 0x0d, 0x06, 0x09, 0x60,     0x86, 0x48, 0x01,
                          0x65, 0x03, 0x04, 0x02, oid_last, 0x05, 0x00};
  Bytes out = {0x30, 0x34, 0xa0, 0x0f};
  out.insert(out.end(), hash_alg.begin(), hash_alg.end());
  const Bytes mgf1 = {0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86,
                      0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08};
  out.insert(out.end(), mgf1.begin(), mgf1.end());
  out.insert(out.end(), hash_alg.begin(), hash_alg.end());
  const Bytes salt_field = {0xa2, 0x03, 0x02, 0x01, salt};
  out.insert(out.end(), salt_field.begin(), salt_field.end());
  return out;
}

// ---- raw TLS, for what HttpsClient rightly cannot do ----

// One TLS connection made with plain OpenSSL to 127.0.0.1:`port`, verifying the server certificate
// against `ca_file` and the address 127.0.0.1.
class RawTls {
 public:
  RawTls() = default;
  ~RawTls() {
    ssl_.reset();
    if (fd_ >= 0) ::close(fd_);
  }
  // Owns a socket.
  RawTls(const RawTls&) = delete;
  RawTls& operator=(const RawTls&) = delete;

  // Connects and handshakes allowing TLS 1.0 .. `max_version` at security level 0, so that the
  // client itself is willing to offer old versions and ciphers: a refusal can then only come from
  // the server. False on failure, with the OpenSSL error in error().
  bool Connect(uint16_t port, int max_version, const std::string& ca_file) {
    ctx_.reset(SSL_CTX_new(TLS_client_method()));
    if (!ctx_) return false;
    SSL_CTX_set_security_level(ctx_.get(), 0);
    if (SSL_CTX_set_min_proto_version(ctx_.get(), TLS1_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx_.get(), max_version) != 1 ||
        SSL_CTX_set_cipher_list(ctx_.get(), "DEFAULT@SECLEVEL=0") != 1 ||
        SSL_CTX_load_verify_locations(ctx_.get(), ca_file.c_str(), nullptr) != 1) {
      return false;
    }
    SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_PEER, nullptr);
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) return false;
    timeval timeout{10, 0};  // a hung server fails the test instead of blocking it
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) return false;
    ssl_.reset(SSL_new(ctx_.get()));
    if (!ssl_ || SSL_set_fd(ssl_.get(), fd_) != 1 ||
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_.get()), "127.0.0.1") != 1) {
      return false;
    }
    ERR_clear_error();
    if (SSL_connect(ssl_.get()) != 1) {
      error_ = ERR_peek_last_error();
      return false;
    }
    return true;
  }

  int version() const { return ssl_ ? SSL_version(ssl_.get()) : 0; }
  unsigned long error() const { return error_; }

  // Writes `request` as is and reads until the server closes the connection.
  std::string Exchange(std::string_view request) {
    if (SSL_write(ssl_.get(), request.data(), static_cast<int>(request.size())) <= 0) return "";
    std::string response;
    char buf[4096];
    int n = 0;
    while ((n = SSL_read(ssl_.get(), buf, sizeof buf)) > 0) {
      response.append(buf, static_cast<size_t>(n));
    }
    return response;
  }

 private:
  SslCtxPtr ctx_;
  int fd_ = -1;
  SslPtr ssl_;
  unsigned long error_ = 0;
};

// An HTTP/1.1 response read off the wire: status code and body.
client::HttpResponse ParseRawResponse(const std::string& text) {
  client::HttpResponse r;
  if (text.rfind("HTTP/1.1 ", 0) == 0 && text.size() >= 12) r.status = std::stoi(text.substr(9, 3));
  const size_t body = text.find("\r\n\r\n");
  if (body != std::string::npos) r.body = text.substr(body + 4);
  return r;
}

std::string SslError(unsigned long e) {
  const char* reason = ERR_reason_error_string(e);
  return reason != nullptr ? reason : "no OpenSSL error";
}

// ---- the environment ----

struct Person {
  std::string id;
  std::string name;
  std::string password;
  SecretBytes seed;
  std::string token;  // a bearer token from an HTTPS login in SetUpTestSuite
};

struct Key {
  store::KeyRecord record;
  KeyAlgorithm algorithm;
};

class Env {
 public:
  // Builds everything; on failure returns the reason (and the test suite fails).
  std::string Init();
  ~Env() {
    stack.reset();  // stop serving before the ports go away
    sealer.reset();
    hsm_store.reset();
    db.reset();
    std::error_code ec;
    if (!dir.empty()) std::filesystem::remove_all(dir, ec);
  }

  // A new TOTP code for `p`: the fake clock moves to the next 30 s step first, so every call
  // gives a code whose step was never used.
  std::string NextCode(const Person& p) {
    clock.Advance(30s);
    auto code = totp.Generate(p.seed, clock.Now());
    return code.ok() ? std::string(code->text_view()) : "";
  }

  std::unique_ptr<client::HttpsClient> NewClient() const {
    client::ClientOptions o;
    o.server_url = "https://127.0.0.1:" + std::to_string(port);
    o.ca_file = tls_certificate_file;
    o.timeout = 60s;
    auto c = client::HttpsClient::Create(std::move(o));
    return c.ok() ? std::move(*c) : nullptr;
  }

  std::string dir;
  std::string tls_certificate_file;
  FakeClock clock{FromUnixSeconds(ToUnixSeconds(std::chrono::system_clock::now()))};
  service::OathTotp totp;
  std::unique_ptr<pki::testing::TestCodeSigningCa> ca;
  std::unique_ptr<hsm::Pkcs11KeyStore> hsm_store;
  std::unique_ptr<hsm::Pkcs11SecretSealer> sealer;
  std::unique_ptr<store::SqliteStore> db;
  std::unique_ptr<cli::ServiceStack> stack;
  uint16_t port = 0;
  std::map<std::string, Person> people;
  std::map<std::string, Key> keys;
  service::Actor admin_actor;
  service::Principal admin_principal;
};

Env* env = nullptr;

// ---- HTTP helpers ----

client::HttpResponse Send(client::HttpsClient& c, client::HttpRequest request) {
  auto r = c.Send(request);
  if (!r.ok()) {
    ADD_FAILURE() << request.target << ": " << r.error().message();
    return {};
  }
  return std::move(*r);
}

client::HttpResponse Post(client::HttpsClient& c, std::string_view target, const json& body,
                          std::string_view bearer = {}) {
  client::HttpRequest r;
  r.target = std::string(target);
  r.body = body.dump();
  if (!bearer.empty()) r.headers.emplace_back("Authorization", "Bearer " + std::string(bearer));
  return Send(c, std::move(r));
}

client::HttpResponse Login(client::HttpsClient& c, std::string_view name, std::string_view password,
                           std::string_view otp) {
  client::HttpRequest r;
  r.target = "/csc/v2/auth/login";
  r.body = json{{"otp", otp}}.dump();
  const std::string pair = std::string(name) + ":" + std::string(password);
  r.headers.emplace_back("Authorization", "Basic " + Base64Encode(AsBytes(pair)));
  return Send(c, std::move(r));
}

json Body(const client::HttpResponse& r) {
  json j = json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  return j.is_discarded() ? json::object() : j;
}

// The exact status and CSC error (and, if given, a phrase of the description).
#define EXPECT_CSC_ERROR(response, http_status, csc_error, ...)                     \
  do {                                                                              \
    const client::HttpResponse& r_ = (response);                                    \
    EXPECT_EQ(r_.status, http_status) << r_.body;                                   \
    const json b_ = Body(r_);                                                       \
    EXPECT_EQ(b_.value("error", ""), csc_error) << r_.body;                         \
    for (const std::string& phrase_ : std::vector<std::string>{__VA_ARGS__}) {      \
      EXPECT_NE(b_.value("error_description", "").find(phrase_), std::string::npos) \
          << "'" << phrase_ << "' not in " << r_.body;                              \
    }                                                                               \
  } while (false)

// A fresh digest nobody has authorized before.
Bytes NewHash(HashAlgorithm h = HashAlgorithm::kSha256) {
  static std::atomic<int> counter{0};
  const std::string doc = "document " + std::to_string(++counter) + " to be signed";
  return *pki::ComputeDigest(h, AsBytes(doc));
}

json B64List(const std::vector<Bytes>& hashes) {
  json list = json::array();
  for (const Bytes& h : hashes) list.push_back(Base64Encode(h));
  return list;
}

// The authData of one activation by `who` (CSC "PIN AND OTP"): the password and a fresh code.
json AuthData(const Person& who) {
  return json::array({{{"id", "PIN"}, {"value", who.password}},
                      {{"id", "OTP"}, {"value", env->NextCode(who)}}});
}

client::HttpResponse Authorize(client::HttpsClient& c, const Person& who, const Key& key,
                               const std::vector<Bytes>& hashes,
                               HashAlgorithm h = HashAlgorithm::kSha256) {
  return Post(c, "/csc/v2/credentials/authorize",
              {{"credentialID", key.record.id},
               {"numSignatures", hashes.size()},
               {"hashes", B64List(hashes)},
               {"hashAlgorithmOID", HashOid(h)},
               {"authData", AuthData(who)}},
              who.token);
}

// The SAD of a successful authorize (empty, with a test failure, otherwise).
std::string Sad(const client::HttpResponse& r) {
  EXPECT_EQ(r.status, 200) << r.body;
  return Body(r).value("SAD", "");
}

std::string SignAlgoOid(SignatureScheme scheme, HashAlgorithm h) {
  switch (scheme) {
    case SignatureScheme::kRsaPkcs1v15:
      return std::string(h == HashAlgorithm::kSha256   ? kSha256WithRsaOid
                         : h == HashAlgorithm::kSha384 ? kSha384WithRsaOid
                                                       : kSha512WithRsaOid);
    case SignatureScheme::kRsaPss:
      return std::string(kRsaPssOid);
    case SignatureScheme::kEcdsa:
      return std::string(h == HashAlgorithm::kSha256   ? kEcdsaSha256Oid
                         : h == HashAlgorithm::kSha384 ? kEcdsaSha384Oid
                                                       : kEcdsaSha512Oid);
    case SignatureScheme::kEd25519:
      break;
  }
  return "";
}

client::HttpResponse SignHash(client::HttpsClient& c, const Person& who, const Key& key,
                              std::string_view sad, const std::vector<Bytes>& hashes,
                              SignatureScheme scheme = SignatureScheme::kEcdsa,
                              HashAlgorithm h = HashAlgorithm::kSha256) {
  json body = {{"credentialID", key.record.id},
               {"SAD", sad},
               {"hashes", B64List(hashes)},
               {"signAlgo", SignAlgoOid(scheme, h)}};
  if (scheme == SignatureScheme::kRsaPss) {
    body["signAlgoParams"] = Base64Encode(PssParams(h));
  } else {
    body["hashAlgorithmOID"] = HashOid(h);
  }
  return Post(c, "/csc/v2/signatures/signHash", body, who.token);
}

std::vector<Bytes> Signatures(const client::HttpResponse& r) {
  std::vector<Bytes> out;
  const json b = Body(r);
  if (!b.contains("signatures") || !b["signatures"].is_array()) return out;
  for (const json& s : b["signatures"]) {
    auto decoded = Base64Decode(s.get<std::string>());
    out.push_back(decoded.ok() ? std::move(*decoded) : Bytes{});
  }
  return out;
}

// ---- the fixture ----

std::string Env::Init() {
  char tmpl[] = "/tmp/signet-e2e-csc-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return "mkdtemp failed";
  dir = tmpl;

  // The HSM: a fresh SoftHSM2 token, with the key store and the sealer of signet serve.
  hsm::testing::SoftHsmSandbox& sandbox = hsm::testing::SharedSoftHsmSandbox();
  // A label of its own each time, so --gtest_repeat builds a fresh token too.
  static int generation = 0;
  auto token = sandbox.CreateToken("signet-e2e-csc-" + std::to_string(++generation));
  if (!token.ok()) return "token: " + token.error().message();
  auto opened = hsm::Pkcs11KeyStore::Open(std::move(*token));
  if (!opened.ok()) return "key store: " + opened.error().message();
  hsm_store = std::move(*opened);
  auto sealed = hsm::Pkcs11SecretSealer::Open(*hsm_store);
  if (!sealed.ok()) return "sealer: " + sealed.error().message();
  sealer = std::move(*sealed);
  auto described = hsm_store->DescribeToken();
  if (!described.ok()) return "describe token: " + described.error().message();

  auto store = store::SqliteStore::Open(dir + "/signet.db");
  if (!store.ok()) return "store: " + store.error().message();
  db = std::move(*store);

  // The localhost TLS identity; the client trusts the self-signed certificate itself.
  auto tls = pki::CreateLocalhostTlsIdentity(clock.Now());
  if (!tls.ok()) return "tls: " + tls.error().message();
  tls_certificate_file = dir + "/tls.crt";
  const std::string key_file = dir + "/tls.key";
  if (!fs::WriteFileAtomic(tls_certificate_file, AsBytes(tls->certificate_pem), 0644).ok() ||
      !fs::WriteFileAtomic(key_file, tls->private_key_pem.view(), 0600).ok()) {
    return "cannot write the TLS files";
  }

  cli::ServiceStackOptions options;
  options.server.bind_address = "127.0.0.1";
  options.server.port = 0;
  options.server.tls.certificate_chain_file = tls_certificate_file;
  options.server.tls.private_key_file = key_file;
  options.server.max_body_bytes = kMaxBodyBytes;
  options.server.io_threads = 2;
  options.server.worker_threads = 4;
  // Argon2id stays real, at a cost that keeps the logins of this suite to a few seconds.
  options.argon2 = {.iterations = 1, .memory_kib = 8 * 1024, .parallelism = 1};
  // The fake clock jumps by 30 s per login and 5 min for the expiry test; tokens and locks must
  // outlast the whole suite.
  options.accounts.token_lifetime = 24h;
  options.accounts.lockout_duration = 24h;
  options.signing.sad_lifetime = kSadLifetime;
  options.housekeeping.enabled = false;  // the clock is fake; expiry is checked by the service
  options.log.origin = "signet.test/e2e";
  options.log.checkpoint_interval = 100ms;
  // The fake clock jumps by minutes; a monitor on it would call every check stale.
  options.log.verify_interval = 24h * 365;
  auto stack_or = cli::ServiceStack::Create(
      cli::ServicePorts{*hsm_store, *sealer, *db, clock,
                        service::TokenIdentity{described->label, described->serial}},
      std::move(options));
  if (!stack_or.ok()) return "stack: " + stack_or.error().message();
  stack = std::move(*stack_or);
  auto bound = stack->Start();
  if (!bound.ok()) return "start: " + bound.error().message();
  port = *bound;

  // People: created by the system principal, one-time password replaced in-process (as the
  // remote CLI would do over /api/v1/auth/password), then logged in over HTTPS.
  const std::vector<std::pair<std::string, store::RoleSet>> roster = {
      {"admin", {store::Role::kAdmin}},   {"alice", {store::Role::kSigner}},
      {"bob", {store::Role::kSigner}},    {"carol", {store::Role::kSigner}},
      {"dave", {store::Role::kSigner}},   {"erin", {store::Role::kSigner}},
      {"audrey", {store::Role::kAuditor}}};
  service::AccountService& accounts = stack->accounts();
  auto c = NewClient();
  if (!c) return "client";
  for (const auto& [name, roles] : roster) {
    auto created = accounts.CreatePerson(service::SystemPrincipal(), name, roles);
    if (!created.ok()) return "create " + name + ": " + created.error().message();
    Person p{created->account.id, name, name + " uses a long passphrase",
             testing::Base32Decode(created->totp.secret_base32.text_view()), ""};
    auto first = accounts.LoginWithPassword(name, created->one_time_password, NextCode(p), {});
    if (!first.ok()) return "first login " + name + ": " + first.error().message();
    Status changed = accounts.ChangePassword(first->principal, created->one_time_password,
                                             SecretBytes(std::string_view(p.password)));
    if (!changed.ok()) return "password " + name + ": " + changed.error().message();
    client::HttpResponse login = Login(*c, name, p.password, NextCode(p));
    if (login.status != 200) return "HTTPS login " + name + ": " + login.body;
    p.token = Body(login).value("access_token", "");
    if (name == "admin") {
      admin_principal = first->principal;
      admin_principal.must_change_password = false;
      admin_actor.account_id = p.id;
      admin_actor.account_name = name;
      admin_actor.roles = roles;
      admin_actor.auth_method = service::AuthMethod::kPasswordTotp;
    }
    people.emplace(name, std::move(p));
  }

  // Keys: generated in the HSM, certified by the test CA, granted.
  auto made_ca = pki::testing::TestCodeSigningCa::Create("signet e2e test CA");
  if (!made_ca.ok()) return "test CA: " + made_ca.error().message();
  ca = std::move(*made_ca);
  const std::vector<std::pair<std::string, KeyAlgorithm>> key_specs = {
      {"e2e-rsa", KeyAlgorithm::kRsa3072},
      {"e2e-p256", KeyAlgorithm::kEcP256},
      {"e2e-p384", KeyAlgorithm::kEcP384},
      {"e2e-disabled", KeyAlgorithm::kEcP256}};
  for (const auto& [name, alg] : key_specs) {
    auto key = stack->keys().CreateKey(admin_actor, name, alg, people["admin"].id);
    if (!key.ok()) return "key " + name + ": " + key.error().message();
    auto csr = stack->keys().CreateCsr(admin_actor, name, "/CN=signet e2e " + name + "/C=XX");
    if (!csr.ok()) return "csr " + name + ": " + csr.error().message();
    auto chain = ca->Issue(*csr);
    if (!chain.ok())
      return "the test CA could not certify " + name + ": " + chain.error().message();
    auto imported = stack->keys().ImportCertificateChain(admin_actor, name, *chain);
    if (!imported.ok()) return "chain " + name + ": " + imported.error().message();
    keys.emplace(name, Key{*imported, alg});
  }
  service::Caller admin;
  admin.actor = admin_actor;
  const std::vector<std::pair<std::string, std::string>> grants =
      {
          {"e2e-rsa", "alice"},  {"e2e-p256", "alice"},     {"e2e-p384", "alice"},
          {"e2e-p256", "bob"},   {"e2e-disabled", "alice"}, {"e2e-p256", "dave"},
          {"e2e-p256", "audrey"}};  // the auditor has a grant: its refusal must come from the role
  for (const auto& [key, who] : grants) {
    Status granted = stack->signing().Grant(admin, key, people[who].id);
    if (!granted.ok()) return "grant " + key + " to " + who + ": " + granted.error().message();
  }
  return "";
}

class CscHttpsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    env = new Env;
    const std::string failure = env->Init();
    if (!failure.empty()) {
      setup_failure_ = new std::string(failure);
    }
  }
  static void TearDownTestSuite() {
    delete env;
    env = nullptr;
    delete setup_failure_;
    setup_failure_ = nullptr;
  }
  void SetUp() override {
    ASSERT_EQ(setup_failure_, nullptr) << "environment: " << *setup_failure_;
    client_ = env->NewClient();
    ASSERT_NE(client_, nullptr);
  }

  Person& P(const std::string& name) { return env->people.at(name); }
  Key& K(const std::string& name) { return env->keys.at(name); }

  // The full flow for one key: list, info (with the certificate), authorize, signHash; every
  // signature must verify with the certificate's key, and fail to verify for a tampered hash.
  void SignAndVerify(const std::string& key_name, SignatureScheme scheme, HashAlgorithm h,
                     size_t count) {
    SCOPED_TRACE(key_name + " " + std::string(SignatureSchemeName(scheme)) + " " +
                 std::string(HashAlgorithmName(h)));
    const Person& alice = P("alice");
    const Key& key = K(key_name);

    client::HttpResponse list =
        Post(*client_, "/csc/v2/credentials/list", json::object(), alice.token);
    ASSERT_EQ(list.status, 200) << list.body;
    const json ids = Body(list).value("credentialIDs", json::array());
    EXPECT_NE(std::find(ids.begin(), ids.end(), json(key.record.id)), ids.end()) << list.body;

    client::HttpResponse info =
        Post(*client_, "/csc/v2/credentials/info",
             {{"credentialID", key.record.id}, {"certificates", "chain"}, {"authInfo", true}},
             alice.token);
    ASSERT_EQ(info.status, 200) << info.body;
    json i = Body(info);
    EXPECT_EQ(i["SCAL"], "2");
    EXPECT_EQ(i["auth"]["expression"], "PIN AND OTP");
    EXPECT_EQ(i["key"]["status"], "enabled");
    ASSERT_TRUE(i.contains("cert") && i["cert"]["certificates"].size() == 2) << info.body;
    auto leaf = Base64Decode(i["cert"]["certificates"][0].get<std::string>());
    ASSERT_TRUE(leaf.ok());
    ASSERT_TRUE(env->ca->Issued(*leaf)) << "credentials/info returned a certificate the CA did not "
                                           "issue";
    auto spki_result = pki::testing::SubjectPublicKeyInfoOf(*leaf);
    ASSERT_TRUE(spki_result.ok()) << spki_result.error().message();
    const Bytes spki = std::move(*spki_result);

    std::vector<Bytes> hashes;
    for (size_t n = 0; n < count; ++n) hashes.push_back(NewHash(h));
    const std::string sad = Sad(Authorize(*client_, alice, key, hashes, h));
    ASSERT_FALSE(sad.empty());
    client::HttpResponse signed_ = SignHash(*client_, alice, key, sad, hashes, scheme, h);
    ASSERT_EQ(signed_.status, 200) << signed_.body;
    const std::vector<Bytes> sigs = Signatures(signed_);
    ASSERT_EQ(sigs.size(), hashes.size());
    for (size_t n = 0; n < hashes.size(); ++n) {
      auto good = hsm::testing::VerifySignature(spki, scheme, h, hashes[n], sigs[n]);
      ASSERT_TRUE(good.ok()) << good.error().message();
      EXPECT_TRUE(*good) << "signature " << n << " does not verify";
      Bytes tampered = hashes[n];
      tampered[0] ^= 0x01;
      auto bad = hsm::testing::VerifySignature(spki, scheme, h, tampered, sigs[n]);
      ASSERT_TRUE(bad.ok());
      EXPECT_FALSE(*bad) << "signature " << n << " verifies for a tampered hash";
    }
  }

  static std::string* setup_failure_;
  std::unique_ptr<client::HttpsClient> client_;
};

std::string* CscHttpsTest::setup_failure_ = nullptr;

// ---- signatures that must verify ----

TEST_F(CscHttpsTest, SignsWithRsa3072Pkcs1v15) {
  SignAndVerify("e2e-rsa", SignatureScheme::kRsaPkcs1v15, HashAlgorithm::kSha256, 2);
  SignAndVerify("e2e-rsa", SignatureScheme::kRsaPkcs1v15, HashAlgorithm::kSha512, 1);
}

TEST_F(CscHttpsTest, SignsWithRsa3072PssGivenSignAlgoParams) {
  SignAndVerify("e2e-rsa", SignatureScheme::kRsaPss, HashAlgorithm::kSha256, 2);
  SignAndVerify("e2e-rsa", SignatureScheme::kRsaPss, HashAlgorithm::kSha384, 1);
}

TEST_F(CscHttpsTest, SignsWithEcdsaP256) {
  SignAndVerify("e2e-p256", SignatureScheme::kEcdsa, HashAlgorithm::kSha256, 3);
}

TEST_F(CscHttpsTest, SignsWithEcdsaP384) {
  SignAndVerify("e2e-p384", SignatureScheme::kEcdsa, HashAlgorithm::kSha384, 2);
  SignAndVerify("e2e-p384", SignatureScheme::kEcdsa, HashAlgorithm::kSha512, 1);
}

// ---- refused logins ----

TEST_F(CscHttpsTest, RefusesAWrongPassword) {
  const Person& dave = P("dave");
  const std::string code = env->NextCode(dave);
  EXPECT_CSC_ERROR(Login(*client_, "dave", "not dave's passphrase", code), 401,
                   "invalid_authentication_data");
  // The same code with the right password works: the refusal was the password's.
  EXPECT_EQ(Login(*client_, "dave", dave.password, code).status, 200);
}

TEST_F(CscHttpsTest, RefusesAWrongTotpCode) {
  const Person& dave = P("dave");
  const std::string code = env->NextCode(dave);
  std::string wrong = code;
  wrong.back() = wrong.back() == '9' ? '0' : static_cast<char>(wrong.back() + 1);
  EXPECT_CSC_ERROR(Login(*client_, "dave", dave.password, wrong), 401,
                   "invalid_authentication_data");
  EXPECT_EQ(Login(*client_, "dave", dave.password, code).status, 200);
}

TEST_F(CscHttpsTest, RefusesATotpCodeUsedTwice) {
  const Person& dave = P("dave");
  const std::string code = env->NextCode(dave);
  EXPECT_EQ(Login(*client_, "dave", dave.password, code).status, 200);
  EXPECT_CSC_ERROR(Login(*client_, "dave", dave.password, code), 401,
                   "invalid_authentication_data");
}

TEST_F(CscHttpsTest, LocksAnAccountAfterFiveFailuresUntilAnAdminUnlocksIt) {
  const Person& erin = P("erin");
  for (int i = 0; i < 5; ++i) {
    EXPECT_CSC_ERROR(Login(*client_, "erin", "guess " + std::to_string(i), env->NextCode(erin)),
                     401, "invalid_authentication_data");
  }
  // Locked: even the right password and a fresh code are refused, and only now is the lock named.
  EXPECT_CSC_ERROR(Login(*client_, "erin", erin.password, env->NextCode(erin)), 403,
                   "access_denied", "locked");
  client::HttpResponse unlocked =
      Post(*client_, "/api/v1/accounts/unlock", {{"name", "erin"}}, P("admin").token);
  ASSERT_EQ(unlocked.status, 200) << unlocked.body;
  EXPECT_EQ(Login(*client_, "erin", erin.password, env->NextCode(erin)).status, 200);
}

// ---- refused activations and signatures ----

// Every activation needs the PIN and a fresh OTP again; the bearer token alone gets no SAD, and a
// code that was already used (here: replayed with the same request) is refused.
TEST_F(CscHttpsTest, RefusesAnActivationWithoutFreshFactors) {
  const Person& alice = P("alice");
  const Key& key = K("e2e-p256");
  json body = {{"credentialID", key.record.id},
               {"numSignatures", 1},
               {"hashes", B64List({NewHash()})},
               {"hashAlgorithmOID", kSha256Oid}};
  EXPECT_CSC_ERROR(Post(*client_, "/csc/v2/credentials/authorize", body, alice.token), 400,
                   "invalid_request", "authData");
  body["authData"] = AuthData(alice);
  EXPECT_EQ(Post(*client_, "/csc/v2/credentials/authorize", body, alice.token).status, 200);
  body["hashes"] = B64List({NewHash()});
  EXPECT_CSC_ERROR(Post(*client_, "/csc/v2/credentials/authorize", body, alice.token), 400,
                   "invalid_request", "one-time code");
  body["authData"] = json::array({{{"id", "PIN"}, {"value", "not alice's password"}},
                                  {{"id", "OTP"}, {"value", env->NextCode(alice)}}});
  EXPECT_CSC_ERROR(Post(*client_, "/csc/v2/credentials/authorize", body, alice.token), 400,
                   "invalid_request", "PIN");
}

TEST_F(CscHttpsTest, RefusesASadForAnotherCredential) {
  const Person& alice = P("alice");
  const Bytes h = NewHash();
  const std::string sad = Sad(Authorize(*client_, alice, K("e2e-p256"), {h}));
  EXPECT_CSC_ERROR(SignHash(*client_, alice, K("e2e-p384"), sad, {h}), 400,
                   "invalid_request", "another credential");
  EXPECT_EQ(SignHash(*client_, alice, K("e2e-p256"), sad, {h}).status, 200);
}

// Bob holding Alice's SAD is answered exactly as for a SAD that never existed, so the answer does
// not tell him the SAD is real; the log records what it was.
TEST_F(CscHttpsTest, RefusesAnotherAccountsSad) {
  const Bytes h = NewHash();
  const std::string sad = Sad(Authorize(*client_, P("alice"), K("e2e-p256"), {h}));
  const client::HttpResponse stolen = SignHash(*client_, P("bob"), K("e2e-p256"), sad, {h});
  EXPECT_CSC_ERROR(stolen, 400, "invalid_request", "the SAD is not valid");
  EXPECT_EQ(stolen.body.find("another account"), std::string::npos) << stolen.body;
  const std::string made_up = Base64Encode(Bytes(32, 0x5a));
  const client::HttpResponse unknown = SignHash(*client_, P("bob"), K("e2e-p256"), made_up, {h});
  EXPECT_EQ(unknown.status, stolen.status);
  EXPECT_EQ(Body(unknown).value("error", ""), Body(stolen).value("error", "")) << unknown.body;
  EXPECT_EQ(Body(unknown).value("error_description", ""),
            Body(stolen).value("error_description", ""))
      << unknown.body;

  auto rows = env->db->ReadLogEntries(0, 1000000);
  ASSERT_TRUE(rows.ok()) << rows.error().message();
  bool recorded = false;
  for (const store::LogEntryRow& row : *rows) {
    if (row.action != "sign_refused") continue;
    json e = json::parse(row.data);
    if (e["actor"]["account_name"] == "bob" &&
        e["outcome"].get<std::string>().find("another account") != std::string::npos) {
      recorded = true;
    }
  }
  EXPECT_TRUE(recorded) << "the log does not say the SAD was another account's";
  EXPECT_EQ(SignHash(*client_, P("alice"), K("e2e-p256"), sad, {h}).status, 200);
}

TEST_F(CscHttpsTest, RefusesAHashNotInTheSad) {
  const Person& alice = P("alice");
  const Bytes h = NewHash();
  const std::string sad = Sad(Authorize(*client_, alice, K("e2e-p256"), {h}));
  EXPECT_CSC_ERROR(SignHash(*client_, alice, K("e2e-p256"), sad, {NewHash()}), 403, "invalid_hash",
                   "Hash is not authorized by the SAD");
  EXPECT_EQ(SignHash(*client_, alice, K("e2e-p256"), sad, {h}).status, 200);
}

TEST_F(CscHttpsTest, RefusesAHashUsedTwice) {
  const Person& alice = P("alice");
  const std::vector<Bytes> hashes = {NewHash(), NewHash()};
  const std::string sad = Sad(Authorize(*client_, alice, K("e2e-p256"), hashes));
  EXPECT_EQ(SignHash(*client_, alice, K("e2e-p256"), sad, {hashes[0]}).status, 200);
  EXPECT_CSC_ERROR(SignHash(*client_, alice, K("e2e-p256"), sad, {hashes[0]}), 403, "invalid_hash",
                   "already used");
}

TEST_F(CscHttpsTest, RefusesAnExpiredSad) {
  const Person& alice = P("alice");
  const std::vector<Bytes> hashes = {NewHash(), NewHash()};
  const std::string sad = Sad(Authorize(*client_, alice, K("e2e-p256"), hashes));
  EXPECT_EQ(SignHash(*client_, alice, K("e2e-p256"), sad, {hashes[0]}).status, 200);
  env->clock.Advance(kSadLifetime + 1s);
  EXPECT_CSC_ERROR(SignHash(*client_, alice, K("e2e-p256"), sad, {hashes[1]}), 400,
                   "invalid_request", "SAD expired");
}

TEST_F(CscHttpsTest, RefusesMoreSignaturesThanAuthorized) {
  const Person& alice = P("alice");
  const std::vector<Bytes> hashes = {NewHash(), NewHash()};
  const std::string sad = Sad(Authorize(*client_, alice, K("e2e-p256"), hashes));
  EXPECT_CSC_ERROR(SignHash(*client_, alice, K("e2e-p256"), sad, {hashes[0], hashes[1], NewHash()}),
                   403, "access_denied", "more signatures than authorized");
  EXPECT_EQ(SignHash(*client_, alice, K("e2e-p256"), sad, hashes).status, 200);
}

TEST_F(CscHttpsTest, RefusesADisabledKey) {
  const Person& alice = P("alice");
  const Bytes h = NewHash();
  const std::string sad = Sad(Authorize(*client_, alice, K("e2e-disabled"), {h}));
  ASSERT_TRUE(env->stack->keys().DisableKey(env->admin_actor, "e2e-disabled").ok());
  EXPECT_CSC_ERROR(SignHash(*client_, alice, K("e2e-disabled"), sad, {h}), 400, "invalid_request",
                   "disabled");
  EXPECT_CSC_ERROR(Authorize(*client_, alice, K("e2e-disabled"), {NewHash()}), 400,
                   "invalid_request", "disabled");
}

TEST_F(CscHttpsTest, RefusesASignerWithoutAGrant) {
  const Person& carol = P("carol");
  client::HttpResponse list =
      Post(*client_, "/csc/v2/credentials/list", json::object(), carol.token);
  ASSERT_EQ(list.status, 200) << list.body;
  EXPECT_TRUE(Body(list)["credentialIDs"].empty()) << list.body;
  EXPECT_CSC_ERROR(Authorize(*client_, carol, K("e2e-p256"), {NewHash()}), 403, "access_denied",
                   "no grant");
}

TEST_F(CscHttpsTest, RefusesAnAuditorSigning) {
  // audrey holds a grant on e2e-p256 but only the auditor role.
  EXPECT_CSC_ERROR(Authorize(*client_, P("audrey"), K("e2e-p256"), {NewHash()}), 403,
                   "access_denied", "signer role");
  const Bytes h = NewHash();
  const std::string sad = Sad(Authorize(*client_, P("alice"), K("e2e-p256"), {h}));
  EXPECT_CSC_ERROR(SignHash(*client_, P("audrey"), K("e2e-p256"), sad, {h}), 403, "access_denied",
                   "signer role");
}

TEST_F(CscHttpsTest, RefusesANonAdminChangingPolicy) {
  const json policy = {{"sign_schemes", {"ecdsa"}},
                       {"hash_algorithms", {"sha256", "sha384", "sha512"}},
                       {"max_signatures_per_authorization", 1},
                       {"rate_per_minute_key", 0},
                       {"rate_per_minute_account", 0}};
  const json body = {{"name", "e2e-p384"}, {"policy", policy}};
  EXPECT_CSC_ERROR(Post(*client_, "/api/v1/keys/set-policy", body, P("alice").token), 403,
                   "access_denied");
  client::HttpResponse read =
      Post(*client_, "/api/v1/keys/policy", {{"name", "e2e-p384"}}, P("admin").token);
  ASSERT_EQ(read.status, 200) << read.body;
  EXPECT_NE(Body(read)["policy"]["max_signatures_per_authorization"], 1) << read.body;
  // The same change by an admin goes through (then the default is put back).
  client::HttpResponse by_admin = Post(*client_, "/api/v1/keys/set-policy", body, P("admin").token);
  ASSERT_EQ(by_admin.status, 200) << by_admin.body;
  json restore = body;
  restore["policy"] = Body(read)["policy"];
  EXPECT_EQ(Post(*client_, "/api/v1/keys/set-policy", restore, P("admin").token).status, 200);
}

// ---- refused requests ----

TEST_F(CscHttpsTest, RefusesMalformedJson) {
  client::HttpRequest r;
  r.target = "/csc/v2/credentials/list";
  r.body = "{\"credentialInfo\": tru";
  r.headers.emplace_back("Authorization", "Bearer " + P("alice").token);
  EXPECT_CSC_ERROR(Send(*client_, r), 400, "invalid_request", "not valid JSON");
}

TEST_F(CscHttpsTest, RefusesABodyOverTheLimit) {
  // Over a raw connection: the server answers 413 as soon as it reads a Content-Length over the
  // limit and then closes, so a client still busy sending the body may get EPIPE instead of the
  // answer (HttpsClient does not read after a failed write). Sending only the header makes the
  // answer deterministic; what is refused is the declared size.
  RawTls tls;
  ASSERT_TRUE(tls.Connect(env->port, TLS1_3_VERSION, env->tls_certificate_file))
      << SslError(tls.error());
  const std::string head =
      "POST /csc/v2/signatures/signHash HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Content-Type: application/json\r\nAuthorization: Bearer " +
      P("alice").token + "\r\nContent-Length: " + std::to_string(kMaxBodyBytes + 1) + "\r\n\r\n";
  EXPECT_CSC_ERROR(ParseRawResponse(tls.Exchange(head)), 413, "invalid_request",
                   std::to_string(kMaxBodyBytes));
  // A body of exactly the limit, sent by the client, reaches the handler (which wants fields).
  client::HttpRequest r;
  r.target = "/csc/v2/signatures/signHash";
  r.body = json{{"padding", ""}}.dump();
  r.body = json{{"padding", std::string(kMaxBodyBytes - r.body.size(), 'x')}}.dump();
  ASSERT_EQ(r.body.size(), kMaxBodyBytes);
  r.headers.emplace_back("Authorization", "Bearer " + P("alice").token);
  EXPECT_CSC_ERROR(Send(*client_, r), 400, "invalid_request", "credentialID");
}

TEST_F(CscHttpsTest, RefusesAWrongContentType) {
  client::HttpRequest r;
  r.target = "/csc/v2/credentials/list";
  r.body = "{}";
  r.content_type = "text/plain";
  r.headers.emplace_back("Authorization", "Bearer " + P("alice").token);
  EXPECT_CSC_ERROR(Send(*client_, r), 415, "invalid_request", "application/json");
}

TEST_F(CscHttpsTest, RefusesATls11Client) {
  RawTls old;
  EXPECT_FALSE(old.Connect(env->port, TLS1_1_VERSION, env->tls_certificate_file));
  EXPECT_EQ(ERR_GET_REASON(old.error()), SSL_R_TLSV1_ALERT_PROTOCOL_VERSION)
      << SslError(old.error());
  // The same client allowed TLS 1.2 gets through, so the refusal above was the version's.
  RawTls current;
  EXPECT_TRUE(current.Connect(env->port, TLS1_2_VERSION, env->tls_certificate_file))
      << SslError(current.error());
  EXPECT_EQ(current.version(), TLS1_2_VERSION);
}

// ---- concurrency ----

TEST_F(CscHttpsTest, ConcurrentSignHashWithTheSameSadAndHashSignsOnce) {
  constexpr int kRounds = 25;
  const Person& alice = P("alice");
  const Key& key = K("e2e-p256");
  std::unique_ptr<client::HttpsClient> racers[2] = {env->NewClient(), env->NewClient()};
  for (auto& c : racers) {
    ASSERT_NE(c, nullptr);
    // Connect and handshake before the race, so the two requests leave together.
    ASSERT_EQ(Post(*c, "/csc/v2/info", json::object()).status, 200);
  }
  const Bytes spki = *Base64Decode(key.record.public_key_spki);
  for (int round = 0; round < kRounds; ++round) {
    const Bytes h = NewHash();
    const std::string sad = Sad(Authorize(*client_, alice, key, {h}));
    ASSERT_FALSE(sad.empty());
    client::HttpResponse results[2];
    std::latch start(2);
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t) {
      threads.emplace_back([&, t] {
        start.arrive_and_wait();
        results[t] = SignHash(*racers[t], alice, key, sad, {h});
      });
    }
    for (auto& t : threads) t.join();
    const int winners = (results[0].status == 200) + (results[1].status == 200);
    ASSERT_EQ(winners, 1) << "round " << round << ": " << results[0].body << " / "
                          << results[1].body;
    const client::HttpResponse& won = results[0].status == 200 ? results[0] : results[1];
    const client::HttpResponse& lost = results[0].status == 200 ? results[1] : results[0];
    // The loser finds the SAD spent (its one signature is taken: access_denied) or the hash
    // used (invalid_hash).
    ASSERT_EQ(lost.status, 403) << lost.body;
    const std::string error = Body(lost).value("error", "");
    const std::string why = Body(lost).value("error_description", "");
    EXPECT_TRUE((error == "access_denied" &&
                 why.find("more signatures than authorized") != std::string::npos) ||
                (error == "invalid_hash" && why.find("already used") != std::string::npos))
        << lost.body;
    const std::vector<Bytes> sigs = Signatures(won);
    ASSERT_EQ(sigs.size(), 1u);
    auto verified = hsm::testing::VerifySignature(spki, SignatureScheme::kEcdsa,
                                                  HashAlgorithm::kSha256, h, sigs[0]);
    EXPECT_TRUE(verified.ok() && *verified) << "round " << round;
  }
}

// ---- what the operator sees ----

TEST_F(CscHttpsTest, AuditTrailHoldsTheSignEvents) {
  const Person& alice = P("alice");
  const Bytes h = NewHash();
  const std::string sad = Sad(Authorize(*client_, alice, K("e2e-p256"), {h}));
  ASSERT_EQ(SignHash(*client_, alice, K("e2e-p256"), sad, {h}).status, 200);
  ASSERT_EQ(SignHash(*client_, alice, K("e2e-p256"), sad, {h}).status, 403);

  auto rows = env->db->ReadLogEntries(0, 1000000);
  ASSERT_TRUE(rows.ok()) << rows.error().message();
  int signed_events = 0;
  int refused_events = 0;
  for (const store::LogEntryRow& row : *rows) {
    if (row.action != "sign" && row.action != "sign_refused") continue;
    json e = json::parse(row.data);
    EXPECT_EQ(e["index"], row.index);
    const json hashes = e["signature"]["hashes"];
    if (std::find(hashes.begin(), hashes.end(), json(HexEncode(h))) == hashes.end()) continue;
    EXPECT_EQ(e["actor"]["account_name"], "alice");
    EXPECT_EQ(e["actor"]["auth_method"], "password+totp");
    EXPECT_EQ(e["signature"]["key_name"], "e2e-p256");
    EXPECT_EQ(e["signature"]["algorithm"], "ecdsa");
    EXPECT_EQ(e["request_id"].get<std::string>().size(), 32u);
    EXPECT_EQ(e["actor"]["client_address"].get<std::string>().rfind("127.0.0.1:", 0), 0u);
    if (row.action == "sign") {
      ++signed_events;
      EXPECT_EQ(e["outcome"], "success");
    } else {
      ++refused_events;
      EXPECT_NE(e["outcome"].get<std::string>().find("more signatures than authorized"),
                std::string::npos);
    }
  }
  EXPECT_EQ(signed_events, 1);
  EXPECT_EQ(refused_events, 1);
}

// Every action of the closed list (service/audit_sink.h) that the service itself produces is
// produced here, through the stack's services or over HTTPS, and lands in the Merkle log with its
// index. The four the `signet serve` command produces (config_startup, config_change,
// service_start, service_stop) are checked on the real binary by e2e_audit_crash_test.
TEST_F(CscHttpsTest, EveryServiceAuditActionIsInTheLog) {
  service::AccountService& accounts = env->stack->accounts();
  const service::Principal& admin = env->admin_principal;
  service::Caller admin_caller;
  admin_caller.actor = env->admin_actor;

  // Accounts: create, wrong passwords up to a lockout, unlock, change password, token revoke,
  // roles, TOTP reset, disable, enable.
  auto frank = accounts.CreatePerson(admin, "frank", store::RoleSet{store::Role::kSigner});
  ASSERT_TRUE(frank.ok()) << frank.error().message();
  Person f{frank->account.id, "frank", "frank has a long passphrase",
           testing::Base32Decode(frank->totp.secret_base32.text_view()), ""};
  for (int i = 0; i < 5; ++i) {
    auto bad = accounts.LoginWithPassword("frank", SecretBytes(std::string_view("wrong one!")),
                                          env->NextCode(f), {"192.0.2.9:1"});
    ASSERT_FALSE(bad.ok());
  }
  ASSERT_TRUE(accounts.Unlock(admin, "frank").ok());
  auto first = accounts.LoginWithPassword("frank", frank->one_time_password, env->NextCode(f),
                                          {"192.0.2.9:2"});
  ASSERT_TRUE(first.ok()) << first.error().message();
  ASSERT_TRUE(accounts
                  .ChangePassword(first->principal, frank->one_time_password,
                                  SecretBytes(std::string_view(f.password)))
                  .ok());
  ASSERT_TRUE(accounts.RevokeToken(first->token.text_view()).ok());
  ASSERT_TRUE(
      accounts.SetRoles(admin, "frank", store::RoleSet{store::Role::kSigner, store::Role::kAuditor})
          .ok());
  ASSERT_TRUE(accounts.ResetTotp(admin, "frank").ok());
  ASSERT_TRUE(accounts.Disable(admin, "frank").ok());
  ASSERT_TRUE(accounts.Enable(admin, "frank").ok());

  // Keys, grants, policy: a key made for this test and destroyed at its end.
  service::KeyService& keys = env->stack->keys();
  ASSERT_TRUE(keys.CreateKey(env->admin_actor, "e2e-doomed", KeyAlgorithm::kEcP256,
                             env->admin_actor.account_id)
                  .ok());
  auto csr = keys.CreateCsr(env->admin_actor, "e2e-doomed", "/CN=signet e2e doomed/C=XX");
  ASSERT_TRUE(csr.ok()) << csr.error().message();
  auto chain = env->ca->Issue(*csr);
  ASSERT_TRUE(chain.ok());
  ASSERT_TRUE(keys.ImportCertificateChain(env->admin_actor, "e2e-doomed", *chain).ok());
  ASSERT_TRUE(env->stack->signing().Grant(admin_caller, "e2e-doomed", f.id).ok());
  auto policy = env->stack->signing().GetPolicy(admin_caller, "e2e-doomed");
  ASSERT_TRUE(policy.ok()) << policy.error().message();
  ASSERT_TRUE(env->stack->signing().SetPolicy(admin_caller, "e2e-doomed", *policy).ok());
  ASSERT_TRUE(env->stack->signing().Revoke(admin_caller, "e2e-doomed", f.id).ok());
  ASSERT_TRUE(keys.DisableKey(env->admin_actor, "e2e-doomed").ok());
  ASSERT_TRUE(keys.EnableKey(env->admin_actor, "e2e-doomed").ok());
  ASSERT_TRUE(keys.DisableKey(env->admin_actor, "e2e-doomed").ok());
  ASSERT_TRUE(keys.DestroyKey(env->admin_actor, "e2e-doomed").ok());

  // Signing over HTTPS: authorize, sign, and a refusal of each.
  const Person& alice = P("alice");
  const Bytes h = NewHash();
  const std::string sad = Sad(Authorize(*client_, alice, K("e2e-p256"), {h}));
  ASSERT_EQ(SignHash(*client_, alice, K("e2e-p256"), sad, {h}).status, 200);
  ASSERT_NE(SignHash(*client_, alice, K("e2e-p256"), sad, {h}).status, 200);
  ASSERT_NE(Authorize(*client_, P("audrey"), K("e2e-p256"), {NewHash()}).status, 200);

  // The integrator checkpoints within its 100 ms interval.
  std::set<std::string> seen;
  for (int attempt = 0; attempt < 100; ++attempt) {
    seen.clear();
    auto rows = env->db->ReadLogEntries(0, 1000000);
    ASSERT_TRUE(rows.ok()) << rows.error().message();
    for (const store::LogEntryRow& row : *rows) {
      json e = json::parse(row.data);
      ASSERT_EQ(e["index"], row.index);
      ASSERT_EQ(e["action"], row.action);
      seen.insert(row.action);
    }
    if (seen.count("log_checkpoint") != 0 && seen.count("key_destroy") != 0) break;
    std::this_thread::sleep_for(100ms);
  }
  const std::set<std::string> by_serve = {"config_startup", "config_change", "service_start",
                                          "service_stop"};
  for (int i = 0; i <= static_cast<int>(service::AuditAction::kLogCheckpoint); ++i) {
    const std::string name(service::AuditActionName(static_cast<service::AuditAction>(i)));
    if (by_serve.count(name) != 0) continue;
    EXPECT_EQ(seen.count(name), 1u) << "no '" << name << "' entry in the log";
  }
}

TEST_F(CscHttpsTest, HealthzChecksTheStoreTheHsmAndTheLog) {
  client::HttpRequest r;
  r.method = "GET";
  r.target = "/healthz";
  client::HttpResponse h = Send(*client_, r);
  EXPECT_EQ(h.status, 200) << h.body;
  EXPECT_EQ(
      Body(h),
      json::parse(
          R"({"status":"ok","checks":{"database":"ok","hsm":"ok","log":"ok","log_integrator":"ok"}})"))
      << h.body;
}

// The Prometheus value of the series written exactly as `series`, or -1.
double Scrape(const std::string& text, const std::string& series) {
  size_t at = 0;
  while ((at = text.find(series + " ", at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') return std::stod(text.substr(at + series.size() + 1));
    at += series.size();
  }
  return -1;
}

TEST_F(CscHttpsTest, MetricsShowSignaturesByKeyHsmWorkAndFailedLogins) {
  EXPECT_CSC_ERROR(Login(*client_, "nobody", "whatever it is", "123456"), 401,
                   "invalid_authentication_data");
  SignAndVerify("e2e-p256", SignatureScheme::kEcdsa, HashAlgorithm::kSha256, 1);
  client::HttpRequest r;
  r.method = "GET";
  r.target = "/metrics";
  // Not public by default: key names and each key's signature counts are for auditors and admins.
  client::HttpResponse anonymous = Send(*client_, r);
  EXPECT_EQ(anonymous.status, 401);
  EXPECT_EQ(anonymous.body.find("signet_signatures_total"), std::string::npos);
  EXPECT_NE(anonymous.body.find("invalid_token"), std::string::npos) << anonymous.body;
  client::HttpRequest as_signer = r;
  as_signer.headers.emplace_back("Authorization", "Bearer " + P("alice").token);
  client::HttpResponse refused = Send(*client_, as_signer);
  EXPECT_EQ(refused.status, 403);
  EXPECT_NE(refused.body.find("lacks the auditor or admin role"), std::string::npos)
      << refused.body;
  r.headers.emplace_back("Authorization", "Bearer " + P("audrey").token);
  client::HttpResponse m = Send(*client_, r);
  ASSERT_EQ(m.status, 200) << m.body;
  EXPECT_GE(Scrape(m.body, "signet_signatures_total{key=\"e2e-p256\",outcome=\"success\"}"), 1)
      << m.body;
  EXPECT_GE(Scrape(m.body, "signet_login_failures_total"), 1) << m.body;
  EXPECT_GE(Scrape(m.body, "signet_logins_total{method=\"password+totp\",outcome=\"failure\"}"), 1);
  EXPECT_GE(Scrape(m.body, "signet_hsm_operations_total{operation=\"sign\"}"), 1);
  EXPECT_GE(Scrape(m.body, "signet_authorizations_total{outcome=\"success\"}"), 1);
  EXPECT_NE(m.body.find("# TYPE signet_hsm_errors_total counter"), std::string::npos);
  EXPECT_GE(Scrape(m.body,
                   "signet_http_requests_total{method=\"POST\",path=\"/csc/v2/signatures/"
                   "signHash\",status=\"200\"}"),
            1);
}

}  // namespace
}  // namespace signet
