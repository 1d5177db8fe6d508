// Crash test of the audit invariant (issue 4, "Must show"): under concurrent signing load the real
// `signet serve` process is killed with SIGKILL; after a restart every signature any client
// received is recorded in the log, and `signet audit verify` passes.
//
// The data folder is made by `signet init`; the signing key by `signet key create` (local CLI).
// The signer is a service account bound to a client certificate from a pki::testing CA (the
// server runs with optional mTLS); the account, its grant and a bearer token are written straight
// into the database before the server starts. Clients are client::HttpsClient presenting that
// certificate, four threads, each authorizing and signing fresh hashes until the connection dies.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "client/client.h"
#include "common/encoding.h"
#include "common/fs.h"
#include "common/random.h"
#include "pki/pki.h"
#include "pki/testing/test_ca.h"
#include "store/sqlite/sqlite_store.h"

#ifndef SIGNET_BINARY
#error "SIGNET_BINARY must name the signet executable"
#endif

namespace signet {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

extern "C" char** environ;

constexpr char kSha256Oid[] = "2.16.840.1.101.3.4.2.1";
constexpr char kEcdsaSha256Oid[] = "1.2.840.10045.4.3.2";

// Runs `args` to completion; returns the exit status (or -1) and appends its output to `out`.
int RunCommand(const std::vector<std::string>& args, std::string* out = nullptr) {
  std::string cmd;
  for (const std::string& a : args) cmd += "'" + a + "' ";
  cmd += "2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  size_t n;
  std::string text;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
  int status = ::pclose(p);
  if (out != nullptr) *out += text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A `signet serve` child process whose stdout and stderr go to a file.
class Server {
 public:
  // Starts the server on a free port and waits until it says where it listens.
  bool Start(const std::string& data_dir, const std::string& log_file) {
    log_file_ = log_file;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0600);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    std::vector<std::string> args = {SIGNET_BINARY, "serve",    "--data-dir",
                                     data_dir,      "--listen", "127.0.0.1:0"};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int rc = ::posix_spawn(&pid_, SIGNET_BINARY, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) return false;
    const std::string marker = "signet: listening on https://127.0.0.1:";
    for (int i = 0; i < 600; ++i) {  // up to 60 s
      std::ifstream in(log_file);
      std::string line;
      while (std::getline(in, line)) {
        if (line.rfind(marker, 0) == 0) {
          port_ = std::stoi(line.substr(marker.size()));
          return true;
        }
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(100ms);
    }
    return false;
  }

  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  // SIGTERM and wait (up to 30 s); returns the exit status, or -1.
  int Stop() {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 300; ++i) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(100ms);
    }
    Kill();
    return -1;
  }

  std::string Output() const {
    std::ifstream in(log_file_);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  ~Server() { Kill(); }
  int port() const { return port_; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string log_file_;
};

class AuditCrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("signet-audit-crash-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    data_ = (dir_ / "data").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
  std::string data_;
};

TEST_F(AuditCrashTest, EverySignatureAClientReceivedIsInTheLogAfterKill9) {
  std::string out;
  ASSERT_EQ(RunCommand({SIGNET_BINARY, "init", "--data-dir", data_}, &out), 0) << out;
  ASSERT_EQ(RunCommand({SIGNET_BINARY, "key", "create", "--data-dir", data_, "--name", "crash",
                        "--alg", "ec-p256"},
                       &out),
            0)
      << out;

  // mTLS: a client CA the server trusts, and the signer's certificate.
  const std::string cert = (dir_ / "signer").string();
  auto ca = pki::testing::TestCodeSigningCa::Create("crash test client CA");
  ASSERT_TRUE(ca.ok()) << ca.error().message();
  auto signer = (*ca)->IssueTlsClient("crash-signer");
  ASSERT_TRUE(signer.ok()) << signer.error().message();
  ASSERT_TRUE(
      fs::WriteFileAtomic(data_ + "/client-ca.pem", AsBytes((*ca)->certificate_pem()), 0644).ok());
  ASSERT_TRUE(signer->WriteFiles(cert).ok());
  {
    // The server asks for client certificates from that CA (mTLS optional).
    std::string text;
    {
      std::ifstream toml(data_ + "/signet.toml");
      text.assign(std::istreambuf_iterator<char>(toml), {});
    }
    const std::string from = "\nclient_auth = \"none\"\n";
    const size_t at = text.find(from);
    ASSERT_NE(at, std::string::npos) << text;
    text.replace(at, from.size(),
                 "\nclient_auth = \"optional\"\nclient_ca = \"client-ca.pem\"\n");
    std::ofstream toml(data_ + "/signet.toml", std::ios::trunc);
    toml << text;
    ASSERT_TRUE(toml.good()) << "cannot rewrite signet.toml";
  }
  std::string fingerprint;
  {
    auto digest = pki::ComputeDigest(HashAlgorithm::kSha256, signer->certificate_der);
    ASSERT_TRUE(digest.ok()) << digest.error().message();
    fingerprint = HexEncode(*digest);
  }

  // The signer: account, grant, bearer token, straight into the database.
  Bytes raw(32);
  ASSERT_TRUE(RandomBytes(raw).ok());
  const std::string token = Base64UrlEncode(raw);
  std::string key_id;
  {
    auto db = store::SqliteStore::OpenExisting(data_ + "/signet.db");
    ASSERT_TRUE(db.ok()) << db.error().message();
    auto key = (*db)->GetKeyByName("crash");
    ASSERT_TRUE(key.ok()) << key.error().message();
    key_id = key->id;
    const TimePoint now = FromUnixSeconds(ToUnixSeconds(std::chrono::system_clock::now()));
    store::AccountRecord account;
    account.id = "a_crashtest000001";
    account.name = "crash-signer";
    account.kind = store::AccountKind::kService;
    account.roles = store::RoleSet{store::Role::kSigner, store::Role::kAuditor};
    account.mtls_fingerprint = fingerprint;
    account.created_at = account.updated_at = now;
    ASSERT_TRUE((*db)->InsertAccount(account).ok());
    ASSERT_TRUE((*db)->InsertGrant(key_id, account.id, now).ok());
    store::BearerTokenRecord record;
    record.token_hash = *pki::ComputeDigest(HashAlgorithm::kSha256, AsBytes(token));
    record.account_id = account.id;
    record.created_at = now;
    record.expires_at = now + 24h;
    ASSERT_TRUE((*db)->InsertBearerToken(record).ok());
  }

  Server server;
  ASSERT_TRUE(server.Start(data_, (dir_ / "serve1.log").string())) << server.Output();

  // Four clients sign fresh hashes until the server dies under them.
  std::mutex mu;
  std::vector<std::string> received;  // hex of every hash whose signature a client got
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  auto client_loop = [&] {
    client::ClientOptions options;
    options.server_url = "https://127.0.0.1:" + std::to_string(server.port());
    options.ca_file = data_ + "/tls-server.crt";
    options.client_certificate_file = cert + ".crt";
    options.client_private_key_file = cert + ".key";
    options.timeout = 10s;
    options.max_retries = 0;
    auto c = client::HttpsClient::Create(options);
    if (!c.ok()) {
      ++errors;
      return;
    }
    auto post = [&](const std::string& target, const json& body) -> std::optional<json> {
      client::HttpRequest r;
      r.target = target;
      r.body = body.dump();
      r.headers.emplace_back("Authorization", "Bearer " + token);
      auto response = (*c)->Send(std::move(r));
      if (!response.ok() || response->status != 200) return std::nullopt;
      json j = json::parse(response->body, nullptr, false);
      if (j.is_discarded()) return std::nullopt;
      return j;
    };
    while (!stop.load()) {
      Bytes hash(32);
      if (!RandomBytes(hash).ok()) return;
      const std::string b64 = Base64Encode(hash);
      auto auth = post("/csc/v2/credentials/authorize", {{"credentialID", key_id},
                                                         {"numSignatures", 1},
                                                         {"hashes", json::array({b64})},
                                                         {"hashAlgorithmOID", kSha256Oid}});
      if (!auth.has_value() || !auth->contains("SAD")) return;
      auto sig = post("/csc/v2/signatures/signHash", {{"credentialID", key_id},
                                                      {"SAD", (*auth)["SAD"]},
                                                      {"hashes", json::array({b64})},
                                                      {"hashAlgorithmOID", kSha256Oid},
                                                      {"signAlgo", kEcdsaSha256Oid}});
      if (!sig.has_value()) return;
      if (sig->value("signatures", json::array()).size() == 1) {
        std::lock_guard<std::mutex> lock(mu);
        received.push_back(HexEncode(hash));
      }
    }
  };
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) clients.emplace_back(client_loop);
  // Kill while the clients are busy: after at least 40 signatures, or 20 s at most.
  for (int i = 0; i < 200; ++i) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (received.size() >= 40) break;
    }
    std::this_thread::sleep_for(100ms);
  }
  server.Kill();
  stop = true;
  for (auto& t : clients) t.join();
  EXPECT_EQ(errors.load(), 0);
  ASSERT_GE(received.size(), 40u) << server.Output();

  // Restart with one setting changed (config_change), integrate what the dead one left, stop
  // cleanly.
  {
    std::ofstream conf(data_ + "/signet.toml", std::ios::app);
    conf << "\n[log]\ncheckpoint_interval_ms = 200\n";
  }
  Server again;
  ASSERT_TRUE(again.Start(data_, (dir_ / "serve2.log").string())) << again.Output();
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(again.Stop(), 0) << again.Output();

  // Every hash any client got a signature for is in a `sign` entry of the log.
  std::set<std::string> logged;
  std::map<std::string, int> actions;
  {
    auto db = store::SqliteStore::OpenExisting(data_ + "/signet.db");
    ASSERT_TRUE(db.ok()) << db.error().message();
    for (int64_t from = 0;;) {
      auto page = (*db)->ReadLogEntries(from, 5000);
      ASSERT_TRUE(page.ok()) << page.error().message();
      if (page->empty()) break;
      for (const store::LogEntryRow& row : *page) {
        EXPECT_EQ(row.index, from++);
        ++actions[row.action];
        if (row.action == "config_change") {
          json e = json::parse(row.data);
          EXPECT_EQ(e["details"]["log.checkpoint_interval_ms"], "500 -> 200") << row.data;
        }
        if (row.action != "sign") continue;
        json e = json::parse(row.data);
        for (const json& h : e["signature"]["hashes"]) logged.insert(h.get<std::string>());
      }
    }
  }
  // What `signet serve` itself records: two starts, the change between them, the clean stop, and
  // the checkpoints.
  EXPECT_EQ(actions["config_startup"], 2);
  EXPECT_EQ(actions["config_change"], 1);
  EXPECT_EQ(actions["service_start"], 2);
  EXPECT_EQ(actions["service_stop"], 1);  // the killed one could not
  EXPECT_GE(actions["log_checkpoint"], 2);
  EXPECT_GE(actions["key_create"], 1);  // by the local CLI, into the same log
  size_t missing = 0;
  for (const std::string& h : received) missing += logged.count(h) == 0 ? 1 : 0;
  EXPECT_EQ(missing, 0u) << "of " << received.size() << " signatures received";

  // And the whole log verifies, checkpoints included.
  std::string verify;
  EXPECT_EQ(RunCommand({SIGNET_BINARY, "audit", "verify", "--data-dir", data_}, &verify), 0)
      << verify;
  std::printf("crash test: %zu signatures received before SIGKILL, all %zu in the log\n",
              received.size(), received.size() - missing);
}

}  // namespace
}  // namespace signet
