// HttpsClient against the real signet HTTPS server (server::Server) on 127.0.0.1, port 0, with a
// fresh localhost certificate; certificates for the failure cases are made with the openssl
// command, the mTLS client's by pki::testing's CA.
#include "client/client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <thread>

#include "common/clock.h"
#include "common/fs.h"
#include "pki/pki.h"
#include "pki/testing/test_ca.h"
#include "server/server.h"

namespace signet::client {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;
using namespace std::chrono_literals;

int RunQuiet(const std::string& command) {
  int status = std::system((command + " >/dev/null 2>&1").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/signet-client-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto identity = pki::CreateLocalhostTlsIdentity(SystemClock().Now());
    ASSERT_TRUE(identity.ok()) << identity.error().message();
    cert_ = dir_ + "/server.crt";
    key_ = dir_ + "/server.key";
    ASSERT_TRUE(fs::WriteFileAtomic(cert_, AsBytes(identity->certificate_pem), 0644).ok());
    ASSERT_TRUE(fs::WriteFileAtomic(key_, identity->private_key_pem.view(), 0600).ok());
  }
  void TearDown() override {
    if (server_) {
      server_->Stop();
      server_->Wait();
    }
    std::filesystem::remove_all(dir_);
  }

  // Starts a server with /echo (body, client address, authorization, client certificate),
  // /flaky (503 with Retry-After: 0 for the first `flaky_failures_` calls) and /denied (403).
  void StartServer(server::ServerOptions options = {}) {
    server::Router router;
    ASSERT_TRUE(
        router
            .Add("POST", "/echo",
                 [](const server::Request& r) {
                   json j{{"body", r.body},
                          {"client", r.client_address},
                          {"content_type", std::string(r.Header("content-type").value_or(""))},
                          {"authorization", std::string(r.Header("authorization").value_or(""))},
                          {"client_cert", r.client_cert_sha256.value_or("")}};
                   return server::Response{200, "application/json", j.dump(), {}};
                 })
            .ok());
    ASSERT_TRUE(router
                    .Add("POST", "/flaky",
                         [this](const server::Request&) {
                           if (flaky_calls_.fetch_add(1) < flaky_failures_) {
                             return server::Response{503,
                                                     "application/json",
                                                     R"({"error":"temporarily_unavailable"})",
                                                     {{"Retry-After", "0"}}};
                           }
                           return server::Response{200, "application/json", "{\"ok\":true}", {}};
                         })
                    .ok());
    ASSERT_TRUE(router
                    .Add(
                        "POST", "/slow",
                        [this](const server::Request&) {
                          ++slow_calls_;
                          std::this_thread::sleep_for(std::chrono::milliseconds(1500));
                          return server::Response{200, "application/json", "{}", {}};
                        },
                        server::RouteOptions{.blocking = true})
                    .ok());
    ASSERT_TRUE(router
                    .Add("POST", "/fault",
                         [this](const server::Request&) {
                           ++fault_calls_;
                           return server::JsonErrorResponse(503, "temporarily_unavailable",
                                                            "internal fault; request id x");
                         })
                    .ok());
    ASSERT_TRUE(router
                    .Add("POST", "/denied",
                         [](const server::Request&) {
                           return server::JsonErrorResponse(403, "access_denied",
                                                            "account 'bob' lacks the admin role");
                         })
                    .ok());
    ASSERT_TRUE(router
                    .Add("POST", "/notjson",
                         [](const server::Request&) {
                           return server::Response{200, "text/plain", "hello", {}};
                         })
                    .ok());
    // Answers a hostile or broken server could give: /canned/<name> answers canned_[name].
    ASSERT_TRUE(router
                    .Add("POST", "/canned/*",
                         [this](const server::Request& r) {
                           ++canned_calls_;
                           const std::string name = r.path.substr(std::string("/canned/").size());
                           auto it = canned_.find(name);
                           return it != canned_.end() ? it->second
                                                      : server::Response{404, "text/plain", "", {}};
                         })
                    .ok());
    options.bind_address = "127.0.0.1";
    options.port = 0;
    options.tls.certificate_chain_file = cert_;
    options.tls.private_key_file = key_;
    auto created = server::Server::Create(std::move(options), std::move(router), metrics_);
    ASSERT_TRUE(created.ok()) << created.error().message();
    server_ = std::move(*created);
    auto port = server_->Start();
    ASSERT_TRUE(port.ok()) << port.error().message();
    url_ = "https://127.0.0.1:" + std::to_string(*port);
  }

  std::unique_ptr<HttpsClient> Client(ClientOptions options = {}) {
    if (options.server_url.empty()) options.server_url = url_;
    if (options.ca_file.empty()) options.ca_file = cert_;
    auto c = HttpsClient::Create(std::move(options));
    EXPECT_TRUE(c.ok()) << c.error().message();
    return c.ok() ? std::move(*c) : nullptr;
  }

  std::string dir_, cert_, key_, url_;
  server::Metrics metrics_;
  std::unique_ptr<server::Server> server_;
  std::atomic<int> flaky_calls_{0};
  std::atomic<int> fault_calls_{0};
  std::atomic<int> slow_calls_{0};
  std::atomic<int> canned_calls_{0};
  int flaky_failures_ = 0;
  std::map<std::string, server::Response> canned_;  // set before StartServer
};

TEST_F(ClientTest, CallJsonSendsBodyAndBearerAndReusesTheConnection) {
  StartServer();
  auto client = Client();
  ASSERT_NE(client, nullptr);
  auto first = CallJson(*client, "/echo", json{{"a", 1}}, "tok123");
  ASSERT_TRUE(first.ok()) << first.error().message();
  EXPECT_EQ((*first)["body"], R"({"a":1})");
  EXPECT_EQ((*first)["authorization"], "Bearer tok123");
  EXPECT_EQ((*first)["content_type"], "application/json");
  EXPECT_EQ((*first)["client_cert"], "");
  auto second = CallJson(*client, "/echo", json::object());
  ASSERT_TRUE(second.ok()) << second.error().message();
  EXPECT_EQ((*second)["authorization"], "");
  // Same client address and port: one keep-alive connection.
  EXPECT_EQ((*first)["client"], (*second)["client"]);
}

// The socket of this process whose local IPv4 port is `port`, or -1.
int FindLocalTcpSocket(int port) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    const int fd = std::atoi(entry.path().filename().c_str());
    sockaddr_in address{};
    socklen_t length = sizeof(address);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0 &&
        address.sin_family == AF_INET && ntohs(address.sin_port) == port) {
      return fd;
    }
  }
  return -1;
}

// A request larger than one TCP segment must not wait for the server's delayed ACK (~40 ms per
// request with Nagle's algorithm on): the client's own end of the connection is found among this
// process's sockets by the port the server saw, and must have TCP_NODELAY set.
TEST_F(ClientTest, SendsWithoutNagleDelay) {
  StartServer();
  auto client = Client();
  ASSERT_NE(client, nullptr);
  auto answer = CallJson(*client, "/echo", json{{"data", std::string(100000, 'x')}});
  ASSERT_TRUE(answer.ok()) << answer.error().message();
  const std::string seen = (*answer)["client"].get<std::string>();
  ASSERT_EQ(seen.rfind("127.0.0.1:", 0), 0U) << seen;
  const int fd = FindLocalTcpSocket(std::atoi(seen.c_str() + std::string("127.0.0.1:").size()));
  ASSERT_GE(fd, 0) << "no socket of this process has the client's port: " << seen;
  int nodelay = 0;
  socklen_t length = sizeof(nodelay);
  ASSERT_EQ(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &length), 0);
  EXPECT_NE(nodelay, 0);
}

TEST_F(ClientTest, ErrorAnswersBecomeSignetErrors) {
  StartServer();
  auto client = Client();
  ASSERT_NE(client, nullptr);
  auto denied = CallJson(*client, "/denied", json::object());
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(denied.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_EQ(denied.error().message(), "account 'bob' lacks the admin role (access_denied)");
  auto missing = CallJson(*client, "/nope", json::object());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  auto not_json = CallJson(*client, "/notjson", json::object());
  ASSERT_FALSE(not_json.ok());
  EXPECT_EQ(not_json.error().code(), ErrorCode::kInternal);
  EXPECT_THAT(not_json.error().message(), HasSubstr("not JSON"));
}

// A server's JSON is parsed only within bounds: nesting (a copy or dump of a deep document
// recurses once per level), size (a document costs tens of times its size to parse), and the
// length of an error's description; none of it crashes the client or comes back unbounded.
TEST_F(ClientTest, AnswersOutsideTheBoundsAreErrorsNotCrashes) {
  canned_["deep"] = {200,
                     "application/json",
                     "{\"policy\":" + std::string(200000, '[') + std::string(200000, ']') + "}",
                     {}};
  canned_["nested64"] = {200, "application/json", std::string(64, '[') + std::string(64, ']'), {}};
  std::string big = "{\"accounts\":[";
  while (big.size() <= kMaxJsonAnswer) big += "{},";
  big += "{}]}";
  canned_["big"] = {200, "application/json", big, {}};
  canned_["deep-error"] = {403, "application/json", std::string(100000, '['), {}};
  canned_["long-error"] = {
      400,
      "application/json",
      json{{"error", "invalid_request"}, {"error_description", std::string(1 << 20, 'x')}}.dump(),
      {}};
  StartServer();
  auto client = Client();
  ASSERT_NE(client, nullptr);

  auto deep = CallJson(*client, "/canned/deep", json::object());
  ASSERT_FALSE(deep.ok());
  EXPECT_EQ(deep.error().code(), ErrorCode::kInternal);
  EXPECT_THAT(deep.error().message(), HasSubstr("deeper than 64 levels"));
  auto nested = CallJson(*client, "/canned/nested64", json::object());
  ASSERT_TRUE(nested.ok()) << nested.error().message();

  auto huge = CallJson(*client, "/canned/big", json::object());
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.error().code(), ErrorCode::kInternal);
  EXPECT_THAT(huge.error().message(), HasSubstr("at most 8388608 are accepted"));

  auto deep_error = CallJson(*client, "/canned/deep-error", json::object());
  ASSERT_FALSE(deep_error.ok());
  EXPECT_EQ(deep_error.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_EQ(deep_error.error().message(), "the server answered HTTP 403");

  auto long_error = CallJson(*client, "/canned/long-error", json::object());
  ASSERT_FALSE(long_error.ok());
  EXPECT_EQ(long_error.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_LT(long_error.error().message().size(), kMaxErrorDescription + 40);
  EXPECT_THAT(long_error.error().message(), HasSubstr("... (invalid_request)"));
}

// A 503 without Retry-After is a fault that may have come after the request took effect (a
// one-time code spent): it is not sent again.
TEST_F(ClientTest, DoesNotRetryAnAnswerWithoutRetryAfter) {
  StartServer();
  ClientOptions options;
  options.max_retries = 2;
  auto client = Client(options);
  ASSERT_NE(client, nullptr);
  auto refused = CallJson(*client, "/fault", json::object());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(fault_calls_.load(), 1);
}

// A bare TLS server whose every connection answers its first request and then reads the next one
// and closes without answering (no close_notify): a server that carried out a request and died,
// or was stopped after its grace period, before it could answer.
class AnswerOnceThenDieServer {
 public:
  AnswerOnceThenDieServer(const std::string& cert, const std::string& key) {
    ctx_ = SSL_CTX_new(TLS_server_method());
    ok_ = SSL_CTX_use_certificate_chain_file(ctx_, cert.c_str()) == 1 &&
          SSL_CTX_use_PrivateKey_file(ctx_, key.c_str(), SSL_FILETYPE_PEM) == 1;
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    ok_ = ok_ && ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
          ::listen(fd_, 8) == 0 &&
          ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
    port_ = ntohs(addr.sin_port);
    if (ok_) thread_ = std::thread([this] { Run(); });
  }
  ~AnswerOnceThenDieServer() {
    ::shutdown(fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
    SSL_CTX_free(ctx_);
  }
  AnswerOnceThenDieServer(const AnswerOnceThenDieServer&) = delete;
  AnswerOnceThenDieServer& operator=(const AnswerOnceThenDieServer&) = delete;

  bool ok() const { return ok_; }
  uint16_t port() const { return port_; }
  int requests() const { return requests_.load(); }

 private:
  void Run() {
    for (;;) {
      int conn = ::accept(fd_, nullptr, nullptr);
      if (conn < 0) return;
      timeval tv{5, 0};
      ::setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      SSL* ssl = SSL_new(ctx_);
      SSL_set_fd(ssl, conn);
      if (SSL_accept(ssl) == 1 && ReadRequest(ssl)) {
        ++requests_;
        static constexpr std::string_view kAnswer =
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        if (SSL_write(ssl, kAnswer.data(), static_cast<int>(kAnswer.size())) > 0 &&
            ReadRequest(ssl)) {
          ++requests_;  // carried out; the answer never comes
        }
      }
      SSL_free(ssl);
      ::close(conn);
    }
  }
  // Reads one request with a Content-Length body; false if the connection ended first.
  static bool ReadRequest(SSL* ssl) {
    std::string data;
    char buf[4096];
    size_t header_end = std::string::npos;
    size_t need = 0;
    for (;;) {
      if (header_end == std::string::npos) {
        header_end = data.find("\r\n\r\n");
        if (header_end != std::string::npos) {
          size_t at = data.find("Content-Length: ");
          size_t body = at == std::string::npos ? 0 : std::stoul(data.substr(at + 16));
          need = header_end + 4 + body;
        }
      }
      if (header_end != std::string::npos && data.size() >= need) return true;
      int n = SSL_read(ssl, buf, sizeof buf);
      if (n <= 0) return false;
      data.append(buf, static_cast<size_t>(n));
    }
  }

  SSL_CTX* ctx_ = nullptr;
  int fd_ = -1;
  bool ok_ = false;
  uint16_t port_ = 0;
  std::atomic<int> requests_{0};
  std::thread thread_;
};

// The server read the second request on a reused connection and closed without answering: it
// may have carried it out, so the client does not send it again (a destroyed key, a spent code),
// unless the request says it is safe to.
TEST_F(ClientTest, DoesNotResendARequestTheServerMayHaveCarriedOut) {
  AnswerOnceThenDieServer dying(cert_, key_);
  ASSERT_TRUE(dying.ok());
  ClientOptions options;
  options.server_url = "https://localhost:" + std::to_string(dying.port());
  auto client = Client(options);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(CallJson(*client, "/api/v1/keys/show", json::object()).ok());
  auto lost = CallJson(*client, "/api/v1/keys/destroy", json::object());
  ASSERT_FALSE(lost.ok());
  EXPECT_EQ(lost.error().code(), ErrorCode::kUnavailable);
  EXPECT_THAT(lost.error().message(), HasSubstr("may have been carried out"));
  EXPECT_EQ(dying.requests(), 2);

  // A read may go again: on a fresh connection, where it is answered.
  ASSERT_TRUE(CallJson(*client, "/api/v1/keys/show", json::object()).ok());
  HttpRequest read;
  read.target = "/api/v1/keys/list";
  read.body = "{}";
  read.idempotent = true;
  auto again = client->Send(read);
  ASSERT_TRUE(again.ok()) << again.error().message();
  EXPECT_EQ(again->status, 200);
  EXPECT_EQ(dying.requests(), 5);  // show, destroy, show, list (lost), list (answered)
}

// A time-out on a reused connection may be a server still working on the request: it is not sent
// again on a fresh connection (only a connection closed before any answer is).
TEST_F(ClientTest, DoesNotResendARequestThatTimedOut) {
  StartServer();
  ClientOptions options;
  options.timeout = std::chrono::milliseconds(500);
  auto client = Client(options);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(CallJson(*client, "/echo", json::object()).ok());  // the connection is now reused
  auto timed_out = CallJson(*client, "/slow", json::object());
  ASSERT_FALSE(timed_out.ok());
  EXPECT_EQ(timed_out.error().code(), ErrorCode::kUnavailable);
  std::this_thread::sleep_for(std::chrono::milliseconds(2000));  // a resend would have arrived
  EXPECT_EQ(slow_calls_.load(), 1);
}

// An answer that asks for a longer wait than max_retry_wait (a per-minute rate limit says up to
// 60 s) goes to the caller at once: a retry after the capped wait would only be refused again.
TEST_F(ClientTest, DoesNotRetryBeforeTheTimeRetryAfterNames) {
  canned_["later"] = server::JsonErrorResponse(429, "too_many_requests", "rate limit of 1");
  canned_["later"].headers.emplace_back("Retry-After", "40");
  StartServer();
  ClientOptions options;
  options.max_retries = 2;
  options.max_retry_wait = std::chrono::milliseconds(100);
  auto client = Client(options);
  ASSERT_NE(client, nullptr);
  auto answer = CallJson(*client, "/canned/later", json::object());
  ASSERT_FALSE(answer.ok());
  EXPECT_EQ(answer.error().code(), ErrorCode::kResourceExhausted) << answer.error().message();
  EXPECT_EQ(canned_calls_.load(), 1);
}

TEST_F(ClientTest, RetriesOverloadAnswersUpToTheLimit) {
  flaky_failures_ = 2;
  StartServer();
  ClientOptions options;
  options.max_retries = 2;
  auto client = Client(options);
  ASSERT_NE(client, nullptr);
  auto ok = CallJson(*client, "/flaky", json::object());
  ASSERT_TRUE(ok.ok()) << ok.error().message();
  EXPECT_EQ(flaky_calls_.load(), 3);

  flaky_calls_ = 0;
  options.max_retries = 1;
  auto impatient = Client(options);
  ASSERT_NE(impatient, nullptr);
  auto refused = CallJson(*impatient, "/flaky", json::object());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(flaky_calls_.load(), 2);
}

TEST_F(ClientTest, ReconnectsWhenTheServerClosedAnIdleConnection) {
  server::ServerOptions options;
  options.idle_timeout = 200ms;
  StartServer(options);
  auto client = Client();
  ASSERT_NE(client, nullptr);
  auto first = CallJson(*client, "/echo", json::object());
  ASSERT_TRUE(first.ok()) << first.error().message();
  std::this_thread::sleep_for(600ms);
  auto second = CallJson(*client, "/echo", json::object());
  ASSERT_TRUE(second.ok()) << second.error().message();
  EXPECT_NE((*first)["client"], (*second)["client"]);
}

// Text that is not UTF-8 (a Latin-1 file given on the command line) cannot be a JSON string: a
// clear InvalidArgument, not an exception, and nothing is sent.
TEST_F(ClientTest, ABodyThatIsNotUtf8IsRefusedBeforeSending) {
  StartServer();
  auto client = Client();
  ASSERT_NE(client, nullptr);
  auto r = CallJson(*client, "/flaky", json{{"chain_pem", "caf\xe9 secret"}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(r.error().message(), HasSubstr("not valid UTF-8"));
  EXPECT_THAT(r.error().message(), ::testing::Not(HasSubstr("secret")));
  EXPECT_EQ(flaky_calls_.load(), 0);
}

TEST_F(ClientTest, ReturnsTheServersAnswerToABodyOverItsLimit) {
  server::ServerOptions options;
  options.max_body_bytes = 1024;
  StartServer(options);
  auto client = Client();
  ASSERT_NE(client, nullptr);
  // Warm the connection first, so the refusal also happens on a reused connection.
  ASSERT_TRUE(CallJson(*client, "/echo", json::object()).ok());
  HttpRequest big;
  big.target = "/echo";
  big.body = "{\"x\":\"" + std::string(8 * 1024 * 1024, 'a') + "\"}";
  auto r = client->Send(big);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->status, 413);
  // The client is usable again afterwards.
  EXPECT_TRUE(CallJson(*client, "/echo", json::object()).ok());
}

TEST_F(ClientTest, RefusesAServerItCannotVerify) {
  StartServer();
  // Another self-signed localhost certificate as the only trusted CA.
  auto other = pki::CreateLocalhostTlsIdentity(SystemClock().Now());
  ASSERT_TRUE(other.ok());
  const std::string other_cert = dir_ + "/other.crt";
  ASSERT_TRUE(fs::WriteFileAtomic(other_cert, AsBytes(other->certificate_pem), 0644).ok());
  ClientOptions options;
  options.ca_file = other_cert;
  auto client = Client(options);
  ASSERT_NE(client, nullptr);
  auto r = CallJson(*client, "/echo", json::object());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
  EXPECT_THAT(r.error().message(), HasSubstr("did not verify"));
}

TEST_F(ClientTest, RefusesACertificateForAnotherHost) {
  // Self-signed for other.example only, served on 127.0.0.1 and trusted as a CA: the chain
  // verifies but the name does not match.
  const std::string cert = dir_ + "/wrong.crt", key = dir_ + "/wrong.key";
  ASSERT_EQ(RunQuiet("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
                     "-subj /CN=other.example -addext subjectAltName=DNS:other.example -keyout " +
                     key + " -out " + cert),
            0);
  ASSERT_EQ(chmod(key.c_str(), 0600), 0);
  cert_ = cert;
  key_ = key;
  StartServer();
  auto client = Client();
  ASSERT_NE(client, nullptr);
  auto r = CallJson(*client, "/echo", json::object());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
  EXPECT_THAT(r.error().message(), HasSubstr("IP address mismatch"));
}

TEST_F(ClientTest, ChecksTheHostNameOfADnsUrl) {
  // The URL names a host ("localhost"), not an address: the certificate must carry that DNS name.
  StartServer();
  const std::string port = url_.substr(url_.rfind(':'));
  ClientOptions by_name;
  by_name.server_url = "https://localhost" + port;
  auto good = Client(by_name);
  ASSERT_NE(good, nullptr);
  auto answered = CallJson(*good, "/echo", json::object());
  EXPECT_TRUE(answered.ok()) << answered.error().message();

  // The same server under another name that also reaches it: the name does not match.
  const std::string cert = dir_ + "/wrong.crt", key = dir_ + "/wrong.key";
  ASSERT_EQ(
      RunQuiet("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
               "-subj /CN=other.example -addext subjectAltName=DNS:other.example,IP:127.0.0.1 "
               "-keyout " +
               key + " -out " + cert),
      0);
  ASSERT_EQ(chmod(key.c_str(), 0600), 0);
  server_->Stop();
  server_->Wait();
  server_.reset();
  cert_ = cert;
  key_ = key;
  StartServer();
  const std::string other_port = url_.substr(url_.rfind(':'));
  by_name.server_url = "https://localhost" + other_port;
  auto client = Client(by_name);
  ASSERT_NE(client, nullptr);
  auto r = CallJson(*client, "/echo", json::object());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
  EXPECT_THAT(r.error().message(), HasSubstr("hostname mismatch"));
  // By address the same certificate is fine (it names 127.0.0.1): only the name was wrong.
  auto by_ip = Client();
  ASSERT_NE(by_ip, nullptr);
  EXPECT_TRUE(CallJson(*by_ip, "/echo", json::object()).ok());
}

// The CA named with --ca-file may be the intermediate that issued the server's certificate: it is
// trusted as it is, without the root above it.
TEST_F(ClientTest, AnIntermediateCaGivenAsTheCaFileIsTrusted) {
  const std::string d = dir_ + "/";
  const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes ";
  ASSERT_EQ(RunQuiet("openssl req -x509 " + ec + "-days 1 -subj /CN=Root -keyout " + d +
                     "root.key -out " + d +
                     "root.pem -addext basicConstraints=critical,CA:TRUE "
                     "-addext keyUsage=critical,keyCertSign"),
            0);
  ASSERT_EQ(RunQuiet("openssl req " + ec + "-subj /CN=Issuing -keyout " + d + "int.key -out " + d +
                     "int.csr"),
            0);
  ASSERT_EQ(
      RunQuiet("printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n' > " +
               d + "int.ext && openssl x509 -req -in " + d + "int.csr -CA " + d +
               "root.pem -CAkey " + d + "root.key -CAcreateserial -days 1 -extfile " + d +
               "int.ext -out " + d + "int.pem"),
      0);
  ASSERT_EQ(RunQuiet("openssl req " + ec + "-subj /CN=localhost -keyout " + d + "leaf.key -out " +
                     d + "leaf.csr"),
            0);
  ASSERT_EQ(RunQuiet("printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > " + d +
                     "leaf.ext && openssl x509 -req -in " + d + "leaf.csr -CA " + d +
                     "int.pem -CAkey " + d + "int.key -CAcreateserial -days 1 -extfile " + d +
                     "leaf.ext -out " + d + "leaf.pem"),
            0);
  {
    auto leaf = fs::ReadFile(d + "leaf.pem", 1 << 16);
    auto intermediate = fs::ReadFile(d + "int.pem", 1 << 16);
    ASSERT_TRUE(leaf.ok() && intermediate.ok());
    Bytes chain = *leaf;
    chain.insert(chain.end(), intermediate->begin(), intermediate->end());
    ASSERT_TRUE(fs::WriteFileAtomic(d + "chain.pem", chain, 0644).ok());
  }
  ASSERT_EQ(chmod((d + "leaf.key").c_str(), 0600), 0);
  cert_ = d + "chain.pem";
  key_ = d + "leaf.key";
  StartServer();
  for (const std::string& ca : {d + "int.pem", d + "root.pem"}) {
    ClientOptions options;
    options.ca_file = ca;
    auto client = Client(options);
    ASSERT_NE(client, nullptr);
    auto r = CallJson(*client, "/echo", json::object());
    EXPECT_TRUE(r.ok()) << ca << ": " << r.error().message();
  }
  // A CA that issued neither (the fixture's own self-signed certificate) is still refused.
  ClientOptions other;
  other.ca_file = d + "server.crt";
  auto client = Client(other);
  ASSERT_NE(client, nullptr);
  EXPECT_FALSE(CallJson(*client, "/echo", json::object()).ok());
}

TEST_F(ClientTest, PinnedCaCertificatesAreUsedInsteadOfTheFile) {
  StartServer();
  auto pem = fs::ReadFile(cert_, 1 << 20);
  ASSERT_TRUE(pem.ok());
  // The file named is gone (or replaced): the pinned text decides, the file is not read.
  ClientOptions pinned;
  pinned.ca_file = dir_ + "/gone.crt";
  pinned.ca_pem.assign(pem->begin(), pem->end());
  auto client = Client(pinned);
  ASSERT_NE(client, nullptr);
  auto ok = CallJson(*client, "/echo", json::object());
  EXPECT_TRUE(ok.ok()) << ok.error().message();

  // Pinned text of another CA: refused even though ca_file names the right one.
  auto other = pki::CreateLocalhostTlsIdentity(SystemClock().Now());
  ASSERT_TRUE(other.ok());
  ClientOptions wrong;
  wrong.ca_file = cert_;
  wrong.ca_pem = other->certificate_pem;
  auto refused_client = Client(wrong);
  ASSERT_NE(refused_client, nullptr);
  auto refused = CallJson(*refused_client, "/echo", json::object());
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.error().message(), HasSubstr("did not verify"));
  // And no advice to pass --ca-file: one was given.
  EXPECT_THAT(refused.error().message(), ::testing::Not(HasSubstr("--ca-file")));

  ClientOptions garbage;
  garbage.server_url = url_;
  garbage.ca_pem = "not a certificate";
  auto bad = HttpsClient::Create(garbage);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(ClientTest, PresentsAClientCertificateForMutualTls) {
  const std::string ca = dir_ + "/ca", cl = dir_ + "/client";
  auto client_ca = pki::testing::TestCodeSigningCa::Create("test-client-ca");
  ASSERT_TRUE(client_ca.ok()) << client_ca.error().message();
  auto issued = (*client_ca)->IssueTlsClient("build-bot");
  ASSERT_TRUE(issued.ok()) << issued.error().message();
  ASSERT_TRUE(
      fs::WriteFileAtomic(ca + ".crt", AsBytes((*client_ca)->certificate_pem()), 0644).ok());
  ASSERT_TRUE(issued->WriteFiles(cl).ok());
  server::ServerOptions options;
  options.tls.client_ca_file = ca + ".crt";
  options.tls.client_auth = server::ClientAuth::kRequired;
  StartServer(options);

  ClientOptions with_cert;
  with_cert.client_certificate_file = cl + ".crt";
  with_cert.client_private_key_file = cl + ".key";
  auto client = Client(with_cert);
  ASSERT_NE(client, nullptr);
  auto r = CallJson(*client, "/echo", json::object());
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ((*r)["client_cert"].get<std::string>().size(), 64u);

  auto without = Client();
  ASSERT_NE(without, nullptr);
  EXPECT_FALSE(CallJson(*without, "/echo", json::object()).ok());

  // An encrypted client key is refused with a clear word, without OpenSSL asking for its
  // passphrase on the terminal or reading standard input.
  {
    auto plain = fs::ReadFile(cl + ".key", 1 << 16);
    ASSERT_TRUE(plain.ok());
    BIO* in = BIO_new_mem_buf(plain->data(), static_cast<int>(plain->size()));
    EVP_PKEY* pkey = PEM_read_bio_PrivateKey(in, nullptr, nullptr, nullptr);
    BIO_free(in);
    ASSERT_NE(pkey, nullptr);
    BIO* out = BIO_new(BIO_s_mem());
    char pass[] = "passphrase";
    ASSERT_EQ(
        PEM_write_bio_PKCS8PrivateKey(out, pkey, EVP_aes_256_cbc(), pass, 10, nullptr, nullptr), 1);
    EVP_PKEY_free(pkey);
    char* data = nullptr;
    const long n = BIO_get_mem_data(out, &data);
    ASSERT_TRUE(fs::WriteFileAtomic(
                    cl + "-enc.key",
                    ByteView(reinterpret_cast<const uint8_t*>(data), static_cast<size_t>(n)), 0600)
                    .ok());
    BIO_free(out);
    ClientOptions encrypted = with_cert;
    encrypted.server_url = url_;
    encrypted.ca_file = cert_;
    encrypted.client_private_key_file = cl + "-enc.key";
    auto refused = HttpsClient::Create(encrypted);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(refused.error().message().find("is encrypted"), std::string::npos)
        << refused.error().message();
  }

  // A loose client key is refused before any connection.
  ASSERT_EQ(chmod((cl + ".key").c_str(), 0644), 0);
  with_cert.server_url = url_;
  with_cert.ca_file = cert_;
  auto loose = HttpsClient::Create(with_cert);
  ASSERT_FALSE(loose.ok());
  EXPECT_EQ(loose.error().code(), ErrorCode::kPermissionDenied);
}

TEST_F(ClientTest, UnreachableAndSilentServersAreUnavailableWithinTheTimeout) {
  // A port nobody listens on.
  int s = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(s, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string url = "https://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  ClientOptions options;
  options.server_url = url;
  options.timeout = 300ms;
  auto refused = Client(options);
  ASSERT_NE(refused, nullptr);
  auto r = CallJson(*refused, "/echo", json::object());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
  EXPECT_THAT(r.error().message(), HasSubstr("cannot connect"));

  // Now listening but never answering the TLS handshake.
  ASSERT_EQ(listen(s, 4), 0);
  auto silent = Client(options);
  ASSERT_NE(silent, nullptr);
  const auto start = std::chrono::steady_clock::now();
  auto t = CallJson(*silent, "/echo", json::object());
  const auto took = std::chrono::steady_clock::now() - start;
  close(s);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code(), ErrorCode::kUnavailable);
  EXPECT_LT(took, 5s);
}

TEST(ClientOptionsTest, RejectsBadServerUrls) {
  for (const char* url : {"", "http://localhost", "https://", "https://host:0", "https://host:abc",
                          "https://host:", "https://host/path", "https://[::1", "https://[::1]x",
                          "https://user@host", "https://ho st", "https://host:70000"}) {
    ClientOptions options;
    options.server_url = url;
    auto c = HttpsClient::Create(options);
    ASSERT_FALSE(c.ok()) << url;
    EXPECT_EQ(c.error().code(), ErrorCode::kInvalidArgument) << url;
  }
  for (const char* url : {"https://localhost", "https://localhost:8443/", "https://127.0.0.1:1",
                          "https://[::1]:8443", "HTTPS://signet.example.com"}) {
    ClientOptions options;
    options.server_url = url;
    auto c = HttpsClient::Create(options);
    EXPECT_TRUE(c.ok()) << url << ": " << c.error().message();
  }
}

TEST(ClientOptionsTest, RejectsAMissingOrUnusableCaFile) {
  ClientOptions options;
  options.server_url = "https://localhost";
  options.ca_file = "/nonexistent/ca.pem";
  auto missing = HttpsClient::Create(options);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  options.ca_file = "/etc/hostname";
  auto garbage = HttpsClient::Create(options);
  ASSERT_FALSE(garbage.ok());
  EXPECT_EQ(garbage.error().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace signet::client
