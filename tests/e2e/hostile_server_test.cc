// The real `signet` CLI against a server that answers badly on purpose: a real HTTPS server
// (server::Server on 127.0.0.1, port 0, a fresh localhost certificate) whose routes return canned
// answers a compromised or broken server could send. For each, the CLI must end with a clear
// error and an exit code (never a signal, never a hang), and nothing the server says may reach
// the terminal as a control sequence.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "audit/note.h"
#include "common/clock.h"
#include "common/encoding.h"
#include "common/fs.h"
#include "pki/pki.h"
#include "server/metrics.h"
#include "server/server.h"

namespace signet {
namespace {

using json = nlohmann::json;

struct CliRun {
  bool exited = false;  // false: killed by a signal (a crash, or the time-out)
  int code = -1;
  std::string out;
  std::string err;
  double seconds = 0;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// One canonical log entry, as the service writes them (sorted keys, no spaces).
std::string Entry(int64_t index, const std::string& action = "login_success") {
  return json{{"action", action}, {"index", index}, {"outcome", "success"}}.dump();
}

json EntryItem(int64_t index, const std::string& bytes) {
  return json{
      {"index", index}, {"entry", json::parse(bytes)}, {"entry_b64", Base64Encode(AsBytes(bytes))}};
}

class HostileServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/signet-hostile-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto identity = pki::CreateLocalhostTlsIdentity(SystemClock().Now());
    ASSERT_TRUE(identity.ok()) << identity.error().message();
    cert_ = dir_ + "/server.crt";
    const std::string key = dir_ + "/server.key";
    ASSERT_TRUE(fs::WriteFileAtomic(cert_, AsBytes(identity->certificate_pem), 0644).ok());
    ASSERT_TRUE(fs::WriteFileAtomic(key, identity->private_key_pem.view(), 0600).ok());
    ASSERT_TRUE(fs::WriteFileAtomic(dir_ + "/password", AsBytes("not a real one"), 0600).ok());

    // What an honest server says to a login; tests replace what they need.
    Set("POST", "/csc/v2/info", 200, json{{"name", "hostile"}}.dump());
    Set("POST", "/csc/v2/auth/login", 200,
        json{{"access_token", "t0k3n"}, {"expires_in", 600}}.dump());
    Set("POST", "/csc/v2/auth/revoke", 204, "");
    Set("POST", "/api/v1/auth/whoami", 200,
        json{{"account", {{"name", "mallory"}, {"roles", {"admin", "auditor"}}}}}.dump());

    server::Router router;
    for (const char* method : {"GET", "POST"}) {
      ASSERT_TRUE(router
                      .Add(method, "/*",
                           [this, method](const server::Request& r) {
                             std::lock_guard lock(mu_);
                             std::string asked = std::string(method) + " " + r.path;
                             if (auto after = r.QueryParam("after"))
                               asked += " after=" + std::string(*after);
                             asked_.push_back(std::move(asked));
                             bodies_[std::string(method) + " " + r.path] = r.body;
                             auto it = answers_.find(std::string(method) + " " + r.path);
                             if (it == answers_.end()) {
                               return server::JsonErrorResponse(404, "not_found", "no such route");
                             }
                             return it->second;
                           })
                      .ok());
    }
    server::ServerOptions options;
    options.bind_address = "127.0.0.1";
    options.port = 0;
    options.tls.certificate_chain_file = cert_;
    options.tls.private_key_file = key;
    auto created = server::Server::Create(std::move(options), std::move(router), metrics_);
    ASSERT_TRUE(created.ok()) << created.error().message();
    server_ = std::move(*created);
    auto port = server_->Start();
    ASSERT_TRUE(port.ok()) << port.error().message();
    url_ = "https://127.0.0.1:" + std::to_string(*port);
    // The CLI keeps its session under $HOME (XDG_CONFIG_HOME unset).
    setenv("HOME", dir_.c_str(), 1);
    unsetenv("XDG_CONFIG_HOME");
    for (const char* v : {"SIGNET_SERVER", "SIGNET_PASSWORD_FILE", "SIGNET_OTP"}) unsetenv(v);
  }

  void TearDown() override {
    if (server_) {
      server_->Stop();
      server_->Wait();
    }
    std::filesystem::remove_all(dir_);
  }

  void Set(const std::string& method, const std::string& path, int status, std::string body) {
    std::lock_guard lock(mu_);
    answers_[method + " " + path] =
        server::Response{status, "application/json", std::move(body), {}};
  }

  // Runs the signet binary with `args`, stdout and stderr to files, under a 30 s time-out.
  CliRun Signet(const std::string& args) {
    const std::string out = dir_ + "/out";
    const std::string err = dir_ + "/err";
    const auto start = std::chrono::steady_clock::now();
    const std::string command = "timeout -s KILL 30 " + std::string(SIGNET_BINARY) + " " + args +
                                " >" + out + " 2>" + err + " </dev/null";
    const int status = std::system(command.c_str());
    CliRun r;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    // timeout(1) reports a killed child as 128 + signal; the shell does the same for a crash.
    r.exited = WIFEXITED(status) && WEXITSTATUS(status) < 128;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = ReadAll(out);
    r.err = ReadAll(err);
    return r;
  }

  // GET /log/checkpoint answers a checkpoint of origin signet.example/hostile claiming `size`,
  // with a signature line nobody's key made.
  void ServeUnsignedCheckpoint(const std::string& size) {
    const std::string note = "signet.example/hostile\n" + size +
                             "\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n"
                             "\xe2\x80\x94 signet.example/hostile AAAA\n";
    std::lock_guard lock(mu_);
    answers_["GET /log/checkpoint"] = server::Response{200, "text/plain", note, {}};
  }

  CliRun Login() {
    return Signet("login --server " + url_ + " --ca-file " + cert_ +
                  " --user mallory --password-file " + dir_ + "/password --otp 123456");
  }

  std::string dir_, cert_, url_;
  server::Metrics metrics_;
  std::unique_ptr<server::Server> server_;
  std::mutex mu_;
  std::map<std::string, server::Response> answers_;
  std::vector<std::string> asked_;  // "METHOD /path" of every request, in order; guarded by mu_
  std::map<std::string, std::string> bodies_;  // the last body per "METHOD /path"; guarded by mu_
};

// Exit status and output of a refusal: an error exit, a message naming the problem, within time.
void ExpectRefused(const CliRun& r, int code, const std::string& phrase) {
  EXPECT_TRUE(r.exited) << "killed by a signal or the time-out after " << r.seconds
                        << " s; stderr: " << r.err;
  EXPECT_EQ(r.code, code) << r.err;
  EXPECT_NE(r.err.find(phrase), std::string::npos) << "'" << phrase << "' not in: " << r.err;
}

TEST_F(HostileServerTest, AHonestAnswerLogsIn) {
  const CliRun r = Login();
  ASSERT_TRUE(r.exited);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("as 'mallory'"), std::string::npos) << r.out;
}

TEST_F(HostileServerTest, ATokenLifetimeOutOfRangeIsRefusedAndNoSessionIsSaved) {
  for (const char* expires : {"9223372036854775807", "18446744073709551615", "-5", "0"}) {
    Set("POST", "/csc/v2/auth/login", 200,
        std::string(R"({"access_token":"t0k3n","expires_in":)") + expires + "}");
    {
      std::lock_guard lock(mu_);
      asked_.clear();
    }
    const CliRun r = Login();
    ExpectRefused(r, 1, "expires_in");
    EXPECT_FALSE(std::filesystem::exists(dir_ + "/.config/signet/session.json")) << expires;
    // The token the server issued is not left valid: the refused login revokes it.
    std::lock_guard lock(mu_);
    EXPECT_NE(std::find(asked_.begin(), asked_.end(), "POST /csc/v2/auth/revoke"), asked_.end())
        << expires;
  }
}

TEST_F(HostileServerTest, DeeplyNestedAnswersAreErrorsNotCrashes) {
  ASSERT_EQ(Login().code, 0);
  const std::string deep =
      "{\"policy\":" + std::string(300000, '[') + std::string(300000, ']') + "}";
  Set("POST", "/api/v1/keys/policy", 200, deep);
  ExpectRefused(Signet("key policy release"), 1, "deeper than 64 levels");
  ExpectRefused(Signet("--json key policy release"), 1, "deeper than 64 levels");
  Set("POST", "/api/v1/accounts/list", 200, "{\"accounts\":" + std::string(300000, '[') + "}");
  ExpectRefused(Signet("account list"), 1, "deeper than 64 levels");
}

TEST_F(HostileServerTest, APolicyThatIsNotAnObjectIsRefused) {
  ASSERT_EQ(Login().code, 0);
  for (const char* policy : {"[]", "\"x\"", "null", "7"}) {
    Set("POST", "/api/v1/keys/policy", 200, std::string("{\"policy\":") + policy + "}");
    ExpectRefused(Signet("key policy release"), 1, "'policy' is not an object");
    // A change sends only its fields and shows the policy the server answers with.
    Set("POST", "/api/v1/keys/set-policy", 200, std::string("{\"policy\":") + policy + "}");
    ExpectRefused(Signet("key policy release --set --rate-key 5"), 1, "'policy' is not an object");
  }
}

// `key policy --set` sends the fields given and nothing else, without reading the policy first:
// the server merges them with the policy in force when the change commits, so a field another
// admin changed meanwhile is not put back from a stale copy.
TEST_F(HostileServerTest, APolicyChangeSendsOnlyTheFieldsGiven) {
  ASSERT_EQ(Login().code, 0);
  const json policy = {{"sign_schemes", {"ecdsa"}},
                       {"hash_algorithms", {"sha256"}},
                       {"max_signatures_per_authorization", 10},
                       {"rate_per_minute_key", 5},
                       {"rate_per_minute_account", 0}};
  Set("POST", "/api/v1/keys/set-policy", 200, json{{"policy", policy}}.dump());
  {
    std::lock_guard lock(mu_);
    asked_.clear();
  }
  CliRun run = Signet("key policy release --set --rate-key 5");
  ASSERT_EQ(run.code, 0) << run.err;
  std::lock_guard lock(mu_);
  EXPECT_EQ(asked_, std::vector<std::string>{"POST /api/v1/keys/set-policy"});
  EXPECT_EQ(json::parse(bodies_["POST /api/v1/keys/set-policy"]),
            (json{{"name", "release"}, {"policy", {{"rate_per_minute_key", 5}}}}));
}

TEST_F(HostileServerTest, ServerTextCannotDriveTheTerminal) {
  ASSERT_EQ(Login().code, 0);
  const std::string evil =
      "\x1b]0;PWNED\x07\x1b[2K\rfake prompt \xc2\x9b"
      "31m";
  Set("POST", "/api/v1/accounts/list", 400,
      json{{"error", "invalid_request"}, {"error_description", evil}}.dump());
  CliRun r = Signet("account list");
  ExpectRefused(r, 2, "\\x1b]0;PWNED\\x07\\x1b[2K\\x0dfake prompt \\u009b31m");
  EXPECT_EQ(r.err.find('\x1b'), std::string::npos);

  Set("POST", "/api/v1/accounts/list", 200,
      json{{"accounts", {{{"name", evil}, {"kind", "person"}, {"roles", {evil}}}}}}.dump());
  for (const char* args : {"account list", "--json account list"}) {
    r = Signet(args);
    ASSERT_TRUE(r.exited);
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << args;
    EXPECT_EQ(r.out.find('\r'), std::string::npos) << args;
    EXPECT_EQ(r.out.find("\xc2\x9b"), std::string::npos) << args;
    EXPECT_NE(r.out.find("PWNED"), std::string::npos) << args << ": the text is shown, escaped";
  }

  // A secret to be shown once that is not printable is refused, not shown.
  Set("POST", "/api/v1/accounts/reset-totp", 200,
      json{{"totp_secret", "JBSWY3DP\x1b[2J"}, {"totp_uri", "otpauth://totp/x"}}.dump());
  r = Signet("account reset-totp alice");
  ExpectRefused(r, 1, "'totp_secret' holds a character that is not printable ASCII");
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos);
}

// The key commands print a server's key records: names and other fields escaped, in text and
// JSON, and PEM that is not PEM refused.
TEST_F(HostileServerTest, KeyRecordsCannotDriveTheTerminal) {
  ASSERT_EQ(Login().code, 0);
  const std::string evil =
      "\x1b]52;c;cGF5bG9hZA==\x07\xc2\x9b"
      "2Jrelease";
  json key = {{"id", "k_0123456789abcdef"},
              {"name", evil},
              {"algorithm", "ec-p256"},
              {"state", "active"},
              {"owner", evil},
              {"token_label", evil},
              {"token_serial", "1"},
              {"hsm_key_id", "01"},
              {"public_key_pem",
               "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC "
               "KEY-----\n"},
              {"has_certificate", false},
              {"certificate_chain_pem", ""},
              {"created_at", "2026-11-22T13:23:21Z"},
              {"updated_at", "2026-11-22T13:23:21Z"}};
  Set("POST", "/api/v1/keys/disable", 200, json{{"key", key}}.dump());
  for (const char* args : {"key disable x", "--json key disable x"}) {
    CliRun r = Signet(args);
    ASSERT_TRUE(r.exited);
    EXPECT_EQ(r.code, 0) << args << ": " << r.err;
    EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << args;
    EXPECT_EQ(r.out.find("\xc2\x9b"), std::string::npos) << args;
    EXPECT_NE(r.out.find("release"), std::string::npos) << args << ": the name is shown, escaped";
  }
  key["public_key_pem"] =
      "-----BEGIN PUBLIC KEY-----\n\x1b]0;PWNED\x07\n-----END PUBLIC KEY-----\n";
  Set("POST", "/api/v1/keys/disable", 200, json{{"key", key}}.dump());
  ExpectRefused(Signet("key disable x"), 1, "'public_key_pem' does not hold base64");
  key["public_key_pem"] =
      "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC "
      "KEY-----\n";
  key["certificate_chain_pem"] = "-----BEGIN CERTIFICATE-----\n\x1b[2J\n";
  Set("POST", "/api/v1/keys/disable", 200, json{{"key", key}}.dump());
  ExpectRefused(Signet("key disable x"), 1, "'certificate_chain_pem' holds a character");
}

TEST_F(HostileServerTest, TailStopsOnPagesThatDoNotAdvance) {
  ASSERT_EQ(Login().code, 0);
  const std::string tail = "audit tail --server " + url_ + " --from 0 --no-follow";
  // A full page whose indexes stand still, go back, start before --from or overflow.
  for (int64_t stuck : {int64_t{0}, int64_t{-1}}) {
    json page = {{"entries", json::array()}};
    for (int i = 0; i < 256; ++i) page["entries"].push_back(EntryItem(stuck, Entry(0)));
    Set("GET", "/api/v1/log/entries", 200, page.dump());
    ExpectRefused(Signet(tail), 1, "a page's indexes must rise");
  }
  Set("GET", "/api/v1/log/entries", 200,
      R"({"entries":[{"index":9223372036854775808,"entry":{}}]})");
  ExpectRefused(Signet(tail), 1, "a page's indexes must rise");
  // More entries than asked for.
  json page = {{"entries", json::array()}};
  for (int i = 0; i < 300; ++i) page["entries"].push_back(EntryItem(i, Entry(i)));
  Set("GET", "/api/v1/log/entries", 200, page.dump());
  ExpectRefused(Signet(tail), 1, "300 entries in a page of at most 256");
  // An unfiltered page lists every entry it examined: an empty page cannot say to go on (tail
  // would ask for the same page forever, or skip), and next_after is the last entry listed.
  Set("GET", "/api/v1/log/entries", 200, R"({"entries":[],"next_after":-1})");
  ExpectRefused(Signet(tail), 1, "\"next_after\" -1 after entry -1: it must rise past the page");
  Set("GET", "/api/v1/log/entries", 200, R"({"entries":[],"next_after":5})");
  ExpectRefused(Signet(tail), 1,
                "\"next_after\" 5 after entry -1: the entries between are missing");
  // Entries left out of a page, or between pages.
  page = {{"entries", {EntryItem(0, Entry(0)), EntryItem(2, Entry(2))}}};
  Set("GET", "/api/v1/log/entries", 200, page.dump());
  ExpectRefused(Signet(tail), 1, "entry index 2 after entry 0: the entries between are missing");
  page = {{"entries", {EntryItem(0, Entry(0))}}, {"next_after", 3}};
  Set("GET", "/api/v1/log/entries", 200, page.dump());
  ExpectRefused(Signet(tail), 1, "\"next_after\" 3 after entry 0: the entries between are missing");
  page = {{"entries", {EntryItem(0, Entry(0)), EntryItem(1, Entry(1))}}, {"next_after", 0}};
  Set("GET", "/api/v1/log/entries", 200, page.dump());
  ExpectRefused(Signet(tail), 1, "\"next_after\" 0 after entry 1");
  Set("GET", "/api/v1/log/entries", 200, R"({"entries":[],"next_after":"7"})");
  ExpectRefused(Signet(tail), 1, "must rise past the page");
}

TEST_F(HostileServerTest, TailPrintsOnlyCanonicalEntriesAtTheirIndex) {
  ASSERT_EQ(Login().code, 0);
  const std::string tail = "audit tail --server " + url_ + " --from 0 --no-follow";
  json page = {{"entries", {EntryItem(0, Entry(0)), EntryItem(1, Entry(1, "logout"))}}};
  Set("GET", "/api/v1/log/entries", 200, page.dump());
  CliRun r = Signet(tail);
  ASSERT_TRUE(r.exited);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, Entry(0) + "\n" + Entry(1, "logout") + "\n");

  // A forged second line, a terminal escape in the bytes, an entry that names another index.
  const std::string forged = Entry(0) + "\n" + Entry(1);
  const std::string escape = "{\"action\":\"x\x1b[2J\",\"index\":0}";
  for (const std::string& bytes : {forged, escape}) {
    json item = {
        {"index", 0}, {"entry", json::object()}, {"entry_b64", Base64Encode(AsBytes(bytes))}};
    page = {{"entries", json::array({item})}};
    Set("GET", "/api/v1/log/entries", 200, page.dump());
    r = Signet(tail);
    ExpectRefused(r, 1, "entry 0 is not a log entry");
    EXPECT_EQ(r.out.find('\x1b'), std::string::npos);
  }
  page = {{"entries", {EntryItem(0, Entry(7))}}};
  Set("GET", "/api/v1/log/entries", 200, page.dump());
  ExpectRefused(Signet(tail), 1, "the entry listed at index 0 says it is entry 7");
}

// "From now on" starts after the log's size as the server gives it with a page, not after the
// latest checkpoint (which lags): entries appended while tail caught up would be skipped.
TEST_F(HostileServerTest, TailFromNowStartsAfterTheLogSizeTheServerGives) {
  ASSERT_EQ(Login().code, 0);
  Set("GET", "/api/v1/log/entries", 200, R"({"entries":[],"next_after":null,"log_size":42})");
  ServeUnsignedCheckpoint("7");
  CliRun r = Signet("audit tail --server " + url_ + " --no-follow");
  ASSERT_TRUE(r.exited);
  ASSERT_EQ(r.code, 0) << r.err;
  {
    std::lock_guard lock(mu_);
    EXPECT_NE(std::find(asked_.begin(), asked_.end(), "GET /api/v1/log/entries after=41"),
              asked_.end());
    EXPECT_EQ(std::find(asked_.begin(), asked_.end(), "GET /log/checkpoint"), asked_.end());
  }
  for (const char* bad : {R"(-1)", R"("42")", R"(1.5)", R"(18446744073709551615)"}) {
    Set("GET", "/api/v1/log/entries", 200,
        std::string(R"({"entries":[],"next_after":null,"log_size":)") + bad + "}");
    ExpectRefused(Signet("audit tail --server " + url_ + " --no-follow"), 1,
                  "\"log_size\" is not a size");
  }
}

TEST_F(HostileServerTest, ACheckpointClaimingMoreEntriesThanALogHoldsIsRefused) {
  ASSERT_EQ(Login().code, 0);
  // A server that gives no log_size with its pages: tail starts from the checkpoint's size, read
  // before any signature is checked.
  Set("GET", "/api/v1/log/entries", 200, R"({"entries":[],"next_after":null})");
  ServeUnsignedCheckpoint("9223372036854775808");
  ExpectRefused(Signet("audit tail --server " + url_ + " --no-follow"), 2,
                "more than a log can hold");
}

// An unsigned checkpoint claiming 2^63 - 1 entries: verify fails at once, as a bad checkpoint,
// instead of downloading entries for hours on the strength of a size nobody signed.
TEST_F(HostileServerTest, VerifyReadsNoEntriesOnAnUnsignedCheckpointsWord) {
  ServeUnsignedCheckpoint("9223372036854775807");
  Result<audit::VerifierKey> key =
      audit::NewEd25519VerifierKey("signet.example/hostile", Bytes(32, 7));
  ASSERT_TRUE(key.ok()) << key.error().message();
  CliRun r = Signet("audit verify --server " + url_ + " --ca-file " + cert_ + " --key " +
                    audit::FormatVerifierKey(*key));
  EXPECT_TRUE(r.exited) << r.err;
  EXPECT_EQ(r.code, 8) << r.out << r.err;
  EXPECT_NE(r.out.find("does not verify"), std::string::npos) << r.out;
  EXPECT_LT(r.seconds, 20);
  std::lock_guard lock(mu_);
  for (const std::string& asked : asked_) {
    EXPECT_EQ(asked.find("entries"), std::string::npos) << asked;
  }
}

// The same for export: it downloads as many entries as the checkpoint says only once the
// checkpoint opens with the log's key, and writes nothing otherwise.
TEST_F(HostileServerTest, ExportReadsNoEntriesOnAnUnsignedCheckpointsWord) {
  ServeUnsignedCheckpoint("9223372036854775807");
  Result<audit::VerifierKey> key =
      audit::NewEd25519VerifierKey("signet.example/hostile", Bytes(32, 7));
  ASSERT_TRUE(key.ok()) << key.error().message();
  const std::string out = dir_ + "/export.jsonl";
  CliRun r = Signet("audit export --server " + url_ + " --ca-file " + cert_ + " --key " +
                    audit::FormatVerifierKey(*key) + " --out " + out);
  EXPECT_TRUE(r.exited) << r.err;
  EXPECT_NE(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.err.find("does not verify with --key"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(out));
  std::lock_guard lock(mu_);
  for (const std::string& asked : asked_) {
    EXPECT_EQ(asked.find("/log/tile"), std::string::npos) << asked;
  }
}

// A server that answers 404 for its checkpoint (a wrong prefix, or one hiding its log) has shown
// nothing: verify must not say "OK" about zero entries.
TEST_F(HostileServerTest, VerifyOfAServerWithoutACheckpointIsNotASuccess) {
  Result<audit::VerifierKey> key =
      audit::NewEd25519VerifierKey("signet.example/hostile", Bytes(32, 7));
  ASSERT_TRUE(key.ok()) << key.error().message();
  const std::string verify = "audit verify --server " + url_ + " --ca-file " + cert_ + " --key " +
                             audit::FormatVerifierKey(*key);
  for (const std::string& extra : {std::string(), std::string(" --require-signed")}) {
    CliRun r = Signet(verify + extra);
    ExpectRefused(r, 6, "the server has no checkpoint");
    EXPECT_EQ(r.out.find("verifies"), std::string::npos) << r.out;
  }
}

// The same for an export that holds no entries and no checkpoint: a warning, and an error under
// --require-signed.
TEST_F(HostileServerTest, VerifyOfAnEmptyExportSaysNothingWasVerified) {
  Result<audit::VerifierKey> key =
      audit::NewEd25519VerifierKey("signet.example/hostile", Bytes(32, 7));
  ASSERT_TRUE(key.ok()) << key.error().message();
  const std::string file = dir_ + "/empty.jsonl";
  ASSERT_TRUE(fs::WriteFileAtomic(file,
                                  AsBytes("{\"format\":\"signet-audit-export/1\",\"origin\":"
                                          "\"signet.example/hostile\",\"size\":0}\n"
                                          "{\"checkpoint\":null}\n"),
                                  0600)
                  .ok());
  const std::string verify =
      "audit verify --export " + file + " --key " + audit::FormatVerifierKey(*key);
  CliRun plain = Signet(verify);
  ASSERT_TRUE(plain.exited);
  EXPECT_EQ(plain.code, 0) << plain.err;
  EXPECT_NE(plain.err.find("holds no entries; nothing was verified"), std::string::npos)
      << plain.err;
  ExpectRefused(Signet(verify + " --require-signed"), 6, "holds no entries");
}

}  // namespace
}  // namespace signet
