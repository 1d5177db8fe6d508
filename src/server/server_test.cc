// End-to-end tests of the HTTPS transport (server.h): a real Server on 127.0.0.1, port 0, spoken to
// by an OpenSSL client written here (to send exactly the bytes a test needs), by `openssl
// s_client` (TLS policy) and by curl (interop). The server certificate comes from
// pki::CreateLocalhostTlsIdentity; client CAs and certificates for mTLS are made with the openssl
// command.

#include "server/server.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "common/fs.h"
#include "common/log.h"
#include "pki/pki.h"
#include "server/internal/server_core.h"

namespace signet::server {
namespace {

// The test's own client writes with SSL_write on a plain socket, so a request the server answers
// and closes before the client has sent all of it (a body over the limit) raises SIGPIPE in the
// client, which would end this whole test process. The server itself never gets it (Asio sends
// with MSG_NOSIGNAL). Ignored here, the client sees EPIPE instead.
const bool kSigpipeIgnored = [] { return std::signal(SIGPIPE, SIG_IGN) != SIG_ERR; }();

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using namespace std::chrono_literals;

// --- Test environment: certificates and keys, made once per process -----------------------------

std::pair<int, std::string> RunCommand(const std::string& command) {
  std::string output;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return {-1, ""};
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, pipe)) output.append(buf, n);
  int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

struct Pki {
  std::string dir;
  std::string server_cert, server_key;
  std::string client_ca, client_cert, client_key, client_sha256;
  std::string other_cert, other_key;
};

// A CA and a client certificate issued by it, through the openssl command.
void MakeClientPki(const std::string& dir, const std::string& name, std::string* ca,
                   std::string* cert, std::string* key) {
  std::string p = dir + "/" + name;
  std::ofstream(p + "-ca.ext") << "basicConstraints=critical,CA:TRUE\n"
                                  "keyUsage=critical,keyCertSign\n";
  std::ofstream(p + "-client.ext") << "extendedKeyUsage=clientAuth\n";
  std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes ";
  auto [s1, o1] =
      RunCommand("openssl req -x509" + ec + "-keyout " + p + "-ca.key -out " + p +
                 "-ca.pem -days 2 -subj '/CN=" + name + " test CA' -addext " +
                 "basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign");
  ASSERT_EQ(s1, 0) << o1;
  auto [s2, o2] = RunCommand("openssl req -new" + ec + "-keyout " + p + "-client.key -out " + p +
                             "-client.csr -subj '/CN=" + name + " machine'");
  ASSERT_EQ(s2, 0) << o2;
  auto [s3, o3] = RunCommand("openssl x509 -req -in " + p + "-client.csr -CA " + p +
                             "-ca.pem -CAkey " + p + "-ca.key -CAcreateserial -days 2 -out " + p +
                             "-client.pem -extfile " + p + "-client.ext");
  ASSERT_EQ(s3, 0) << o3;
  *ca = p + "-ca.pem";
  *cert = p + "-client.pem";
  *key = p + "-client.key";
}

const Pki& TestPki() {
  static Pki* pki = [] {
    auto* p = new Pki;
    p->dir = (std::filesystem::temp_directory_path() /
              ("signet-server-test-" + std::to_string(::getpid())))
                 .string();
    std::filesystem::create_directories(p->dir);
    auto identity = pki::CreateLocalhostTlsIdentity(std::chrono::system_clock::now());
    if (!identity.ok()) std::abort();
    p->server_cert = p->dir + "/server.pem";
    p->server_key = p->dir + "/server.key";
    if (!fs::WriteFileAtomic(p->server_cert, AsBytes(identity->certificate_pem), 0644).ok() ||
        !fs::WriteFileAtomic(p->server_key, identity->private_key_pem.view(), 0600).ok()) {
      std::abort();
    }
    std::string unused_ca;
    MakeClientPki(p->dir, "good", &p->client_ca, &p->client_cert, &p->client_key);
    MakeClientPki(p->dir, "other", &unused_ca, &p->other_cert, &p->other_key);
    auto [status, out] =
        RunCommand("openssl x509 -noout -fingerprint -sha256 -in " + p->client_cert);
    if (status != 0) std::abort();
    std::string hex;
    for (char c : out.substr(out.find('=') + 1)) {
      if (std::isxdigit(static_cast<unsigned char>(c))) {
        hex += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      }
    }
    p->client_sha256 = hex;
    return p;
  }();
  return *pki;
}

class CleanupEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(TestPki().dir, ec);
  }
};
const auto* const kCleanup = ::testing::AddGlobalTestEnvironment(new CleanupEnvironment);

// --- A blocking TLS client --------------------------------------------------------------------

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

struct ClientOptions {
  std::string cert_file;
  std::string key_file;
  uint32_t source_address = INADDR_LOOPBACK;  // the local address to connect from (127.0.0.0/8)
};

class TlsClient {
 public:
  TlsClient() = default;
  ~TlsClient() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
    if (fd_ >= 0) ::close(fd_);
  }
  TlsClient(const TlsClient&) = delete;  // owns a socket and SSL objects
  TlsClient& operator=(const TlsClient&) = delete;

  // TCP connect and TLS handshake; false if either fails.
  bool Connect(uint16_t port, const ClientOptions& options = {}) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (SSL_CTX_load_verify_locations(ctx_, TestPki().server_cert.c_str(), nullptr) != 1) {
      return false;
    }
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    if (!options.cert_file.empty() &&
        (SSL_CTX_use_certificate_file(ctx_, options.cert_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
         SSL_CTX_use_PrivateKey_file(ctx_, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1)) {
      return false;
    }
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (options.source_address != INADDR_LOOPBACK) {
      sockaddr_in local{};
      local.sin_family = AF_INET;
      local.sin_addr.s_addr = htonl(options.source_address);
      if (::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) return false;
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return false;
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    static char kHost[] = "localhost";
    SSL_ctrl(ssl_, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, kHost);
    SSL_set1_host(ssl_, "localhost");
    bool ok = SSL_connect(ssl_) == 1;
    ERR_clear_error();
    return ok;
  }

  bool Send(std::string_view data) {
    while (!data.empty()) {
      int n = SSL_write(ssl_, data.data(), static_cast<int>(data.size()));
      if (n <= 0) {
        ERR_clear_error();
        return false;
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Reads one response (all responses carry Content-Length); nullopt on close or error.
  std::optional<HttpResponse> Read() {
    size_t header_end;
    while ((header_end = pending_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return std::nullopt;
    }
    HttpResponse response;
    std::string head = pending_.substr(0, header_end);
    pending_.erase(0, header_end + 4);
    size_t line_end = head.find("\r\n");
    std::string status_line = head.substr(0, line_end);
    if (status_line.size() < 12) return std::nullopt;
    response.status = std::stoi(status_line.substr(9, 3));
    size_t pos = line_end;
    while (pos != std::string::npos && pos < head.size()) {
      size_t start = pos + 2;
      size_t end = head.find("\r\n", start);
      std::string line = head.substr(start, end == std::string::npos ? end : end - start);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        std::string value = line.substr(colon + 1);
        value.erase(0, value.find_first_not_of(' '));
        response.headers[name] = value;
      }
      pos = end;
    }
    size_t length = std::stoul(
        response.Header("content-length").empty() ? "0" : response.Header("content-length"));
    while (pending_.size() < length) {
      if (!Fill()) return std::nullopt;
    }
    response.body = pending_.substr(0, length);
    pending_.erase(0, length);
    return response;
  }

  std::optional<HttpResponse> Request(std::string_view raw) {
    if (!Send(raw)) return std::nullopt;
    return Read();
  }

  // True if the server closes the connection (EOF or error) before `limit`, with no data.
  bool ClosedWithoutData(std::chrono::milliseconds limit) {
    timeval tv{static_cast<time_t>(limit.count() / 1000),
               static_cast<suseconds_t>((limit.count() % 1000) * 1000)};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char c;
    int n = SSL_read(ssl_, &c, 1);
    int err = SSL_get_error(ssl_, n);
    ERR_clear_error();
    if (n > 0) return false;
    return err == SSL_ERROR_ZERO_RETURN ||
           (err == SSL_ERROR_SYSCALL && errno != EAGAIN && errno != EWOULDBLOCK) ||
           err == SSL_ERROR_SSL;
  }

 private:
  bool Fill() {
    char buf[16384];
    int n = SSL_read(ssl_, buf, sizeof buf);
    if (n <= 0) {
      ERR_clear_error();
      return false;
    }
    pending_.append(buf, static_cast<size_t>(n));
    return true;
  }

  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
  std::string pending_;
};

std::string Get(std::string_view path, std::string_view extra_headers = "") {
  return "GET " + std::string(path) + " HTTP/1.1\r\nHost: localhost\r\n" +
         std::string(extra_headers) + "\r\n";
}

std::string Post(std::string_view path, std::string_view body) {
  return "POST " + std::string(path) +
         " HTTP/1.1\r\nHost: localhost\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nContent-Type: application/json\r\n\r\n" + std::string(body);
}

// Waits (bounded) for `condition`.
bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds limit = 5s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// Lets a handler block until the test releases it.
class Gate {
 public:
  void Enter() {
    ++entered_;
    released_.wait(false);
  }
  void Release() {
    released_ = true;
    released_.notify_all();
  }
  int entered() const { return entered_.load(); }

 private:
  std::atomic<int> entered_{0};
  std::atomic<bool> released_{false};
};

Response Text(std::string body) {
  Response r;
  r.content_type = "text/plain";
  r.body = std::move(body);
  return r;
}

// --- Fixture ------------------------------------------------------------------------------------

class ServerTest : public ::testing::Test {
 protected:
  ServerOptions Options() {
    ServerOptions options;
    options.bind_address = "127.0.0.1";
    options.port = 0;
    options.tls.certificate_chain_file = TestPki().server_cert;
    options.tls.private_key_file = TestPki().server_key;
    options.idle_timeout = 5s;
    options.request_timeout = 5s;
    options.shutdown_grace = 3s;
    return options;
  }

  // A router with GET /hello, POST /echo and whatever `extra` adds.
  Router DefaultRouter() {
    Router router;
    EXPECT_TRUE(router
                    .Add("GET", "/hello",
                         [this](const Request&) {
                           ++calls_;
                           return Text("hello");
                         })
                    .ok());
    EXPECT_TRUE(router
                    .Add("POST", "/echo",
                         [this](const Request& request) {
                           ++calls_;
                           last_request_ = request;
                           return Text(request.body);
                         })
                    .ok());
    return router;
  }

  void StartServer(ServerOptions options, Router router) {
    auto server = Server::Create(std::move(options), std::move(router), metrics_);
    ASSERT_TRUE(server.ok()) << server.error().message();
    server_ = std::move(server).value();
    auto port = server_->Start();
    ASSERT_TRUE(port.ok()) << port.error().message();
    port_ = *port;
    ASSERT_NE(port_, 0);
  }

  void StartDefault() { StartServer(Options(), DefaultRouter()); }

  std::string SClient(const std::string& args) {
    auto [status, out] =
        RunCommand("openssl s_client -brief -connect 127.0.0.1:" + std::to_string(port_) +
                   " -servername localhost " + args + " </dev/null");
    return "exit=" + std::to_string(status) + "\n" + out;
  }

  Metrics metrics_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
  std::atomic<int> calls_{0};
  Request last_request_;
};

// --- TLS policy ---------------------------------------------------------------------------------

TEST_F(ServerTest, Tls12HandshakeSucceeds) {
  StartDefault();
  std::string out = SClient("-tls1_2 -CAfile " + TestPki().server_cert);
  EXPECT_THAT(out, HasSubstr("exit=0")) << out;
  EXPECT_THAT(out, HasSubstr("Protocol version: TLSv1.2")) << out;
  EXPECT_THAT(out, HasSubstr("Verification: OK")) << out;
}

TEST_F(ServerTest, Tls13HandshakeSucceeds) {
  StartDefault();
  std::string out = SClient("-tls1_3 -CAfile " + TestPki().server_cert);
  EXPECT_THAT(out, HasSubstr("exit=0")) << out;
  EXPECT_THAT(out, HasSubstr("Protocol version: TLSv1.3")) << out;
}

TEST_F(ServerTest, Tls11IsRefusedByTheServer) {
  StartDefault();
  // SECLEVEL=0 lets this client offer TLS 1.1, so the refusal can only come from the server.
  std::string out = SClient("-tls1_1 -cipher DEFAULT@SECLEVEL=0");
  EXPECT_THAT(out, ::testing::Not(HasSubstr("exit=0"))) << out;
  EXPECT_THAT(out, HasSubstr("alert protocol version")) << out;
}

TEST_F(ServerTest, NonAeadTls12SuitesAreRefused) {
  StartDefault();
  for (const char* suite :
       {"ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384"}) {
    std::string out = SClient(std::string("-tls1_2 -cipher ") + suite);
    EXPECT_THAT(out, ::testing::Not(HasSubstr("exit=0"))) << suite << "\n" << out;
    EXPECT_THAT(out, HasSubstr("handshake failure")) << suite << "\n" << out;
  }
  // The same command with an AEAD suite works, so the refusals above are about the suite.
  std::string ok = SClient("-tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256");
  EXPECT_THAT(ok, HasSubstr("exit=0")) << ok;
  EXPECT_THAT(ok, HasSubstr("Ciphersuite: ECDHE-ECDSA-AES128-GCM-SHA256")) << ok;
}

TEST_F(ServerTest, CurlTrustsTheLocalhostCertificate) {
  StartDefault();
  auto [status, out] = RunCommand("curl -sS --max-time 5 --cacert " + TestPki().server_cert +
                                  " https://localhost:" + std::to_string(port_) + "/hello");
  EXPECT_EQ(status, 0) << out;
  EXPECT_EQ(out, "hello");
}

TEST_F(ServerTest, RefusesWorldReadableKeyFile) {
  std::string key = TestPki().dir + "/loose.key";
  std::filesystem::copy_file(TestPki().server_key, key,
                             std::filesystem::copy_options::overwrite_existing);
  ::chmod(key.c_str(), 0644);
  ServerOptions options = Options();
  options.tls.private_key_file = key;
  auto server = Server::Create(options, Router(), metrics_);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_THAT(server.error().message(), HasSubstr("chmod 600"));
}

TEST_F(ServerTest, RefusesKeyNotMatchingCertificate) {
  ServerOptions options = Options();
  options.tls.private_key_file = TestPki().client_key;  // 0600 from openssl, other key
  ::chmod(options.tls.private_key_file.c_str(), 0600);
  auto server = Server::Create(options, Router(), metrics_);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.error().code(), ErrorCode::kInvalidArgument);
}

// --- mTLS ---------------------------------------------------------------------------------------

class MtlsTest : public ServerTest {
 protected:
  void StartMtls(ClientAuth mode) {
    ServerOptions options = Options();
    options.tls.client_ca_file = TestPki().client_ca;
    options.tls.client_auth = mode;
    Router router;
    ASSERT_TRUE(router
                    .Add("GET", "/whoami",
                         [](const Request& request) {
                           return Text(request.client_cert_sha256.value_or("none"));
                         })
                    .ok());
    StartServer(options, std::move(router));
  }
};

TEST_F(MtlsTest, RequiredRefusesClientWithoutCertificate) {
  StartMtls(ClientAuth::kRequired);
  TlsClient client;
  // With TLS 1.3 the client may finish its handshake before the server's alert arrives.
  if (client.Connect(port_)) {
    EXPECT_FALSE(client.Request(Get("/whoami")).has_value());
  }
}

TEST_F(MtlsTest, HandlerSeesFingerprintOfCertificateFromConfiguredCa) {
  StartMtls(ClientAuth::kRequired);
  TlsClient client;
  ASSERT_TRUE(client.Connect(port_, {TestPki().client_cert, TestPki().client_key}));
  auto response = client.Request(Get("/whoami"));
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, TestPki().client_sha256);
  EXPECT_EQ(response->body.size(), 64u);
}

TEST_F(MtlsTest, RefusesCertificateFromAnotherCa) {
  StartMtls(ClientAuth::kRequired);
  TlsClient client;
  if (client.Connect(port_, {TestPki().other_cert, TestPki().other_key})) {
    EXPECT_FALSE(client.Request(Get("/whoami")).has_value());
  }
  StartMtls(ClientAuth::kOptional);  // optional mode also refuses a bad certificate
  TlsClient optional_client;
  if (optional_client.Connect(port_, {TestPki().other_cert, TestPki().other_key})) {
    EXPECT_FALSE(optional_client.Request(Get("/whoami")).has_value());
  }
}

TEST_F(MtlsTest, OptionalServesClientWithoutCertificateWithoutFingerprint) {
  StartMtls(ClientAuth::kOptional);
  TlsClient client;
  ASSERT_TRUE(client.Connect(port_));
  auto response = client.Request(Get("/whoami"));
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->body, "none");
}

TEST_F(MtlsTest, RefusesClientCaWithoutMode) {
  ServerOptions options = Options();
  options.tls.client_ca_file = TestPki().client_ca;
  auto server = Server::Create(options, Router(), metrics_);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.error().code(), ErrorCode::kInvalidArgument);
}

// --- Routing and headers
// --------------------------------------------------------------------------

TEST_F(ServerTest, HandlerSeesRequestAndResponseCarriesSecurityHeaders) {
  StartDefault();
  TlsClient client;
  ASSERT_TRUE(client.Connect(port_));
  auto response = client.Request(Post("/echo?a=1&b=x%20y", "{\"k\":1}"));
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "{\"k\":1}");
  EXPECT_EQ(last_request_.method, "POST");
  EXPECT_EQ(last_request_.path, "/echo");
  EXPECT_EQ(last_request_.route, "/echo");
  EXPECT_EQ(last_request_.QueryParam("b"), "x y");
  EXPECT_EQ(last_request_.Header("Content-Type"), "application/json");
  EXPECT_THAT(last_request_.client_address, MatchesRegex("127\\.0\\.0\\.1:[0-9]+"));
  EXPECT_FALSE(last_request_.client_cert_sha256.has_value());
  EXPECT_EQ(response->Header("x-request-id"), last_request_.request_id);
  EXPECT_THAT(response->Header("x-request-id"), MatchesRegex("[0-9a-f]{32}"));
  EXPECT_EQ(response->Header("cache-control"), "no-store");
  EXPECT_THAT(response->Header("strict-transport-security"), HasSubstr("max-age="));
  EXPECT_EQ(response->Header("x-content-type-options"), "nosniff");
  EXPECT_EQ(response->Header("content-type"), "text/plain");
}

TEST_F(ServerTest, KeepsConnectionAliveWithNewRequestIds) {
  StartDefault();
  TlsClient client;
  ASSERT_TRUE(client.Connect(port_));
  auto first = client.Request(Get("/hello"));
  auto second = client.Request(Get("/hello"));
  ASSERT_TRUE(first.has_value() && second.has_value());
  EXPECT_EQ(second->status, 200);
  EXPECT_NE(first->Header("x-request-id"), second->Header("x-request-id"));
  EXPECT_EQ(calls_, 2);
}

TEST_F(ServerTest, UnknownPathIs404Json) {
  StartDefault();
  TlsClient client;
  ASSERT_TRUE(client.Connect(port_));
  auto response = client.Request(Get("/nope"));
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 404);
  EXPECT_EQ(response->Header("content-type"), "application/json");
  EXPECT_THAT(response->body, HasSubstr("\"error\":\"not_found\""));
  EXPECT_THAT(response->Header("x-request-id"), MatchesRegex("[0-9a-f]{32}"));
}

TEST_F(ServerTest, WrongMethodIs405WithAllow) {
  StartDefault();
  TlsClient client;
  ASSERT_TRUE(client.Connect(port_));
  auto response = client.Request(Post("/hello", ""));
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 405);
  EXPECT_EQ(response->Header("allow"), "GET");
  EXPECT_EQ(calls_, 0);
}

TEST_F(ServerTest, ThrowingHandlerAndHeaderInjectionBecome500) {
  Router router;
  ASSERT_TRUE(
      router
          .Add("GET", "/throw", [](const Request&) -> Response { throw std::runtime_error("bug"); })
          .ok());
  ASSERT_TRUE(router
                  .Add("GET", "/inject",
                       [](const Request&) {
                         Response r = Text("x");
                         r.headers.emplace_back("X-Evil", "a\r\nSet-Cookie: b");
                         return r;
                       })
                  .ok());
  StartServer(Options(), std::move(router));
  TlsClient client;
  ASSERT_TRUE(client.Connect(port_));
  auto thrown = client.Request(Get("/throw"));
  ASSERT_TRUE(thrown.has_value());
  EXPECT_EQ(thrown->status, 500);
  auto injected = client.Request(Get("/inject"));
  ASSERT_TRUE(injected.has_value());
  EXPECT_EQ(injected->status, 500);
  EXPECT_EQ(injected->Header("set-cookie"), "");
}

// --- Limits
// ---------------------------------------------------------------------------------------

TEST_F(ServerTest, BodyOverLimitIs413AndNeverReachesHandler) {
  ServerOptions options = Options();
  options.max_body_bytes = 1024;
  StartServer(options, DefaultRouter());
  TlsClient declared;
  ASSERT_TRUE(declared.Connect(port_));
  // Content-Length alone is enough to refuse; the body is never sent.
  auto response =
      declared.Request("POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1025\r\n\r\n");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 413);
  EXPECT_EQ(response->Header("connection"), "close");

  TlsClient chunked;  // no Content-Length: counted as it arrives
  ASSERT_TRUE(chunked.Connect(port_));
  std::string chunk(800, 'a');
  auto chunked_response = chunked.Request(
      "POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n320\r\n" +
      chunk + "\r\n320\r\n" + chunk + "\r\n0\r\n\r\n");
  ASSERT_TRUE(chunked_response.has_value());
  EXPECT_EQ(chunked_response->status, 413);
  EXPECT_EQ(calls_, 0);

  TlsClient fits;
  ASSERT_TRUE(fits.Connect(port_));
  auto ok = fits.Request(Post("/echo", std::string(1024, 'b')));
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->status, 200);
}

// A chunked body's trailer may not add fields to the header (Beast merges them): a trailer
// "Authorization" must not authenticate a request whose header had none. A chunked body without
// a trailer is fine.
TEST_F(ServerTest, TrailerFieldsAreRefused) {
  StartDefault();
  TlsClient plain;
  ASSERT_TRUE(plain.Connect(port_));
  auto ok = plain.Request(
      "POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n0\r\n\r\n");
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(calls_, 1);

  TlsClient trailer;
  ASSERT_TRUE(trailer.Connect(port_));
  auto refused = trailer.Request(
      "POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
      "Trailer: Authorization\r\n\r\n3\r\nabc\r\n0\r\nAuthorization: Bearer x\r\n\r\n");
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->status, 400);
  EXPECT_THAT(refused->body, HasSubstr("trailer fields"));
  EXPECT_EQ(calls_, 1);  // the handler never saw it
}

// A request two readers could frame or read differently is refused with 400 and the connection
// closed, before any handler runs (RFC 9112 §6.1, §6.3, §3.2): a Transfer-Encoding other than
// exactly "chunked" (Beast would read the body as empty and the bytes after the header as the
// next request), chunked in HTTP/1.0, no Host or two in HTTP/1.1, a second Authorization or
// Content-Type.
TEST_F(ServerTest, AmbiguousFramingAndRepeatedHeadersAreRefused) {
  StartDefault();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n\r\n"
       "GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n",
       "must be exactly"},
      {"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
       "2\r\n{}\r\n0\r\n\r\n",
       "must be exactly"},
      {"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n"
       "Content-Length: 2\r\n\r\n{}",
       "must be exactly"},
      // Beast itself refuses a second chunked.
      {"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
       "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
       "malformed HTTP request"},
      {"POST /echo HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
       "2\r\n{}\r\n0\r\n\r\n",
       "HTTP/1.0"},
      {"GET /hello HTTP/1.1\r\n\r\n", "needs a Host"},
      {"GET /hello HTTP/1.1\r\nHost: localhost\r\nHost: example.com\r\n\r\n", "more than one Host"},
      {"GET /hello HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic eDp5\r\n"
       "Authorization: Bearer x\r\n\r\n",
       "more than one Authorization"},
      {"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n"
       "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
       "more than one Content-Type"},
  };
  for (const auto& [raw, says] : cases) {
    SCOPED_TRACE(raw);
    TlsClient client;
    ASSERT_TRUE(client.Connect(port_));
    auto response = client.Request(raw);
    ASSERT_TRUE(response.has_value());
    EXPECT_EQ(response->status, 400);
    EXPECT_THAT(response->body, HasSubstr(says));
    EXPECT_EQ(response->Header("connection"), "close");
  }
  EXPECT_EQ(calls_, 0);

  // What stays accepted: chunked in any letter case, HTTP/1.0 without Host.
  TlsClient upper;
  ASSERT_TRUE(upper.Connect(port_));
  auto ok = upper.Request(
      "POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: Chunked\r\n\r\n"
      "2\r\n{}\r\n0\r\n\r\n");
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->status, 200);
  TlsClient old;
  ASSERT_TRUE(old.Connect(port_));
  auto http10 = old.Request("GET /hello HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(http10.has_value());
  EXPECT_EQ(http10->status, 200);
}

// "Expect: 100-continue": the server answers 100 once it accepted the header, and the client
// then sends the body (RFC 9110 §10.1.1); without it curl waits a second per request.
TEST_F(ServerTest, ExpectContinueGetsAnInterim100BeforeTheBody) {
  StartDefault();
  TlsClient client;
  ASSERT_TRUE(client.Connect(port_));
  ASSERT_TRUE(
      client.Send("POST /echo HTTP/1.1\r\nHost: localhost\r\nExpect: 100-Continue\r\n"
                  "Content-Length: 7\r\n\r\n"));
  auto interim = client.Read();
  ASSERT_TRUE(interim.has_value());
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(client.Send("payload"));
  auto response = client.Read();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "payload");
  // The connection goes on as usual.
  auto again = client.Request(Get("/hello"));
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->status, 200);
}

// A 204 carries neither a body nor Content-Length/Content-Type (RFC 9110 §8.6); a handler that
// gives one a body gets a 500 instead of a connection that silently dies.
TEST_F(ServerTest, NoContentHasNoContentLength) {
  Router router;
  ASSERT_TRUE(router
                  .Add("GET", "/empty",
                       [](const Request&) {
                         Response r;
                         r.status = 204;
                         r.body.clear();
                         return r;
                       })
                  .ok());
  ASSERT_TRUE(router
                  .Add("GET", "/bad",
                       [](const Request&) {
                         Response r;
                         r.status = 204;
                         r.body = "oops";
                         return r;
                       })
                  .ok());
  StartServer(Options(), std::move(router));
  TlsClient client;
  ASSERT_TRUE(client.Connect(port_));
  auto empty = client.Request(Get("/empty"));
  ASSERT_TRUE(empty.has_value());
  EXPECT_EQ(empty->status, 204);
  EXPECT_EQ(empty->headers.count("content-length"), 0u);
  EXPECT_EQ(empty->headers.count("content-type"), 0u);
  auto after = client.Request(Get("/bad"));  // the connection stays usable
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->status, 500);
}

TEST_F(ServerTest, HeaderTooLargeIs431) {
  StartDefault();
  TlsClient client;
  ASSERT_TRUE(client.Connect(port_));
  auto response = client.Request(Get("/hello", "X-Big: " + std::string(20 * 1024, 'x') + "\r\n"));
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 431);
  EXPECT_EQ(calls_, 0);
}

TEST_F(ServerTest, TooManyHeaderFieldsIs431) {
  ServerOptions options = Options();
  options.max_header_count = 10;
  StartServer(options, DefaultRouter());
  std::string fields;
  for (int i = 0; i < 11; ++i) fields += "X-F" + std::to_string(i) + ": 1\r\n";
  TlsClient client;
  ASSERT_TRUE(client.Connect(port_));
  auto response = client.Request(Get("/hello", fields));
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 431);
  EXPECT_EQ(calls_, 0);
}

TEST_F(ServerTest, MalformedRequestIs400) {
  StartDefault();
  TlsClient client;
  ASSERT_TRUE(client.Connect(port_));
  auto response = client.Request("GET /hello HTTP/1.1\r\nBad Header\r\n\r\n");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 400);
  TlsClient client2;
  ASSERT_TRUE(client2.Connect(port_));
  auto bad_query = client2.Request(Get("/hello?x=%zz"));
  ASSERT_TRUE(bad_query.has_value());
  EXPECT_EQ(bad_query->status, 400);
  EXPECT_EQ(calls_, 0);
}

// The open-file limit must hold every connection the server admits: a soft limit below that is
// raised at start (up to the hard one); a hard limit below it lowers the connection cap to what
// fits rather than refusing to start on the defaults.
TEST_F(ServerTest, OpenFileLimitIsRaisedToFitTheConnectionsOrTheCapLowered) {
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  if (saved.rlim_max == RLIM_INFINITY || saved.rlim_max < 2000) {
    GTEST_SKIP() << "needs a finite hard open-file limit of at least 2000";
  }
  struct Restore {
    rlimit limit;
    ~Restore() { setrlimit(RLIMIT_NOFILE, &limit); }
  } restore{saved};
  rlimit low = saved;
  low.rlim_cur = 300;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  ServerOptions options = Options();
  options.max_connections = 1024;
  StartServer(options, DefaultRouter());
  rlimit now{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &now), 0);
  EXPECT_GE(now.rlim_cur, 1024u + 64u);
  EXPECT_EQ(now.rlim_max, saved.rlim_max);
  server_->Stop();
  server_->Wait();
  server_.reset();

  // More than the hard limit holds: the cap is what fits, and the server serves.
  auto fits = internal::FitConnectionsToDescriptors(static_cast<size_t>(saved.rlim_max));
  ASSERT_TRUE(fits.ok()) << fits.error().message();
  EXPECT_EQ(*fits, static_cast<size_t>(saved.rlim_max) - internal::kMaxRejectingConnections -
                       internal::kDescriptorReserve);
  ServerOptions too_many = Options();
  too_many.max_connections = static_cast<size_t>(saved.rlim_max);
  StartServer(too_many, DefaultRouter());
  TlsClient client;
  ASSERT_TRUE(client.Connect(port_));
  auto response = client.Request(Get("/hello"));
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
}

TEST_F(ServerTest, ConnectionsBeyondLimitGet503WithRetryAfter) {
  ServerOptions options = Options();
  options.max_connections = 2;
  options.retry_after = 7s;
  StartServer(options, DefaultRouter());
  // Both connections are busy (each in the middle of sending a request), so neither is idle and
  // can give its slot up.
  const std::string request = Get("/hello");
  const std::string head = request.substr(0, request.size() - 2);
  TlsClient a, b, c;
  ASSERT_TRUE(a.Connect(port_));
  ASSERT_TRUE(a.Send(head));
  ASSERT_TRUE(b.Connect(port_));
  ASSERT_TRUE(b.Send(head));
  std::this_thread::sleep_for(100ms);  // the server has read both heads' first bytes
  ASSERT_TRUE(c.Connect(port_));
  auto rejected = c.Request(request);
  ASSERT_TRUE(rejected.has_value());
  EXPECT_EQ(rejected->status, 503);
  EXPECT_EQ(rejected->Header("retry-after"), "7");
  EXPECT_EQ(rejected->Header("connection"), "close");
  EXPECT_TRUE(c.ClosedWithoutData(2s));
  auto served = a.Request("\r\n");
  ASSERT_TRUE(served.has_value());
  EXPECT_EQ(served->status, 200);
  EXPECT_EQ(calls_, 1);
  EXPECT_EQ(metrics_.Value("signet_http_rejected_total", {{"reason", "connections"}}), 1);
  EXPECT_EQ(metrics_.Value("signet_http_idle_evictions_total", {}), 0);
}

// At the cap, a new connection is served in the place of the connection that has been idle the
// longest (kept alive after its response), which the server closes; the others keep working.
TEST_F(ServerTest, AtTheConnectionCapTheLongestIdleConnectionGivesWay) {
  ServerOptions options = Options();
  options.max_connections = 2;
  options.idle_timeout = 2s;  // connections idle for 500 ms (a quarter) may be evicted
  StartServer(options, DefaultRouter());
  TlsClient a, b, c, d, early;
  ASSERT_TRUE(a.Connect(port_));
  ASSERT_TRUE(b.Connect(port_));
  auto first = a.Request(Get("/hello"));
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->status, 200);
  std::this_thread::sleep_for(20ms);
  auto second = b.Request(Get("/hello"));  // b is now idle, but for less time than a
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->status, 200);
  // Idle too briefly to give way: its client may be sending its next request right now.
  ASSERT_TRUE(early.Connect(port_));
  auto refused = early.Request(Get("/hello"));
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->status, 503);
  std::this_thread::sleep_for(600ms);

  ASSERT_TRUE(c.Connect(port_));
  auto admitted = c.Request(Get("/hello"));
  ASSERT_TRUE(admitted.has_value());
  EXPECT_EQ(admitted->status, 200);
  EXPECT_TRUE(a.ClosedWithoutData(2s)) << "the longest idle connection was not closed";
  auto again = b.Request(Get("/hello"));
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->status, 200);
  EXPECT_EQ(metrics_.Value("signet_http_idle_evictions_total", {}), 1);
  EXPECT_EQ(metrics_.Value("signet_http_rejected_total", {{"reason", "connections"}}), 1);

  // b and c have each answered last; b is mid-request, so c (idle) gives way to d.
  const std::string request = Get("/hello");
  ASSERT_TRUE(b.Send(request.substr(0, 10)));
  std::this_thread::sleep_for(600ms);
  ASSERT_TRUE(d.Connect(port_));
  auto fourth = d.Request(request);
  ASSERT_TRUE(fourth.has_value());
  EXPECT_EQ(fourth->status, 200);
  EXPECT_TRUE(c.ClosedWithoutData(2s));
  auto finished = b.Request(request.substr(10));
  ASSERT_TRUE(finished.has_value());
  EXPECT_EQ(finished->status, 200);
  EXPECT_EQ(metrics_.Value("signet_http_idle_evictions_total", {}), 2);
  EXPECT_EQ(metrics_.Value("signet_http_connections_active", {}), 2);
}

TEST_F(ServerTest, ConnectionsBeyondPerAddressLimitGet503OthersAreServed) {
  ServerOptions options = Options();
  options.max_connections_per_address = 2;
  StartServer(options, DefaultRouter());
  auto active = [this] { return metrics_.Value("signet_http_connections_active", {}); };
  auto a = std::make_unique<TlsClient>();
  TlsClient b, c, other;
  ASSERT_TRUE(a->Connect(port_));
  ASSERT_TRUE(b.Connect(port_));
  ASSERT_TRUE(c.Connect(port_));
  auto rejected = c.Request(Get("/hello"));
  ASSERT_TRUE(rejected.has_value());
  EXPECT_EQ(rejected->status, 503);
  EXPECT_EQ(rejected->Header("retry-after"), "1");
  EXPECT_EQ(rejected->Header("connection"), "close");
  EXPECT_NE(rejected->body.find("this client address has too many open connections"),
            std::string::npos)
      << rejected->body;
  EXPECT_TRUE(c.ClosedWithoutData(2s));
  EXPECT_EQ(metrics_.Value("signet_http_rejected_total", {{"reason", "connections_per_address"}}),
            1);

  // Another address (127.0.0.2 is loopback too) has its own count.
  ClientOptions from_other;
  from_other.source_address = INADDR_LOOPBACK + 1;
  ASSERT_TRUE(other.Connect(port_, from_other));
  auto served = other.Request(Get("/hello"));
  ASSERT_TRUE(served.has_value());
  EXPECT_EQ(served->status, 200);

  // A closed connection gives its place back.
  a.reset();
  ASSERT_TRUE(WaitFor([&] { return active() == 2; })) << active();  // b and other
  TlsClient d;
  ASSERT_TRUE(d.Connect(port_));
  auto again = d.Request(Get("/hello"));
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->status, 200);
  EXPECT_EQ(metrics_.Value("signet_http_rejected_total", {{"reason", "connections"}}), 0);
}

TEST_F(ServerTest, FullWorkerPoolGives503WithRetryAfter) {
  ServerOptions options = Options();
  options.worker_threads = 1;
  options.worker_queue_capacity = 0;
  Gate gate;
  Router router;
  ASSERT_TRUE(router
                  .Add(
                      "POST", "/sign",
                      [&gate](const Request&) {
                        gate.Enter();
                        return Text("signed");
                      },
                      RouteOptions{.blocking = true})
                  .ok());
  StartServer(options, std::move(router));
  TlsClient busy, refused;
  ASSERT_TRUE(busy.Connect(port_));
  ASSERT_TRUE(busy.Send(Post("/sign", "")));
  ASSERT_TRUE(WaitFor([&] { return gate.entered() == 1; }));
  ASSERT_TRUE(refused.Connect(port_));
  auto start = std::chrono::steady_clock::now();
  auto response = refused.Request(Post("/sign", ""));
  ASSERT_TRUE(response.has_value());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);  // answered at once, not queued
  EXPECT_EQ(response->status, 503);
  EXPECT_EQ(response->Header("retry-after"), "1");
  gate.Release();
  auto done = busy.Read();
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(done->status, 200);
  EXPECT_EQ(done->body, "signed");
  EXPECT_EQ(gate.entered(), 1);
}

// A limited group of routes (the public log reads) cannot take the workers the other routes need:
// beyond its limit it is refused at once, while an unlimited route still runs.
TEST_F(ServerTest, RouteLimitRefusesBeyondItsSlotsAndLeavesWorkersToOtherRoutes) {
  ServerOptions options = Options();
  options.worker_threads = 3;
  options.worker_queue_capacity = 8;
  Gate gate;
  Router router;
  auto limit = std::make_shared<ConcurrencyLimit>(1);
  for (const char* path : {"/log/a", "/log/b"}) {
    ASSERT_TRUE(router
                    .Add(
                        "GET", path,
                        [&gate](const Request&) {
                          gate.Enter();
                          return Text("tile");
                        },
                        RouteOptions{.blocking = true, .limit = limit})
                    .ok());
  }
  ASSERT_TRUE(router
                  .Add(
                      "POST", "/sign", [](const Request&) { return Text("signed"); },
                      RouteOptions{.blocking = true})
                  .ok());
  EXPECT_FALSE(router
                   .Add(
                       "GET", "/never", [](const Request&) { return Text("x"); },
                       RouteOptions{.limit = std::make_shared<ConcurrencyLimit>(0)})
                   .ok());
  StartServer(options, std::move(router));
  TlsClient busy, refused, signer;
  ASSERT_TRUE(busy.Connect(port_));
  ASSERT_TRUE(busy.Send(Get("/log/a")));
  ASSERT_TRUE(WaitFor([&] { return gate.entered() == 1; }));
  EXPECT_EQ(limit->in_flight(), 1u);
  ASSERT_TRUE(refused.Connect(port_));
  auto response = refused.Request(Get("/log/b"));  // the same group: refused, not queued
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 503);
  EXPECT_EQ(response->Header("retry-after"), "1");
  EXPECT_EQ(metrics_.Value("signet_http_rejected_total", {{"reason", "route_limit"}}), 1);
  ASSERT_TRUE(signer.Connect(port_));
  auto signed_answer = signer.Request(Post("/sign", ""));
  ASSERT_TRUE(signed_answer.has_value());
  EXPECT_EQ(signed_answer->status, 200);
  gate.Release();
  auto done = busy.Read();
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(done->status, 200);
  // The slot is given back once the handler returned.
  ASSERT_TRUE(WaitFor([&] { return limit->in_flight() == 0; }));
  auto again = refused.Request(Get("/log/b"));
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->status, 200);
  EXPECT_EQ(limit->in_flight(), 0u);
}

TEST_F(ServerTest, StalledClientIsClosedAfterRequestTimeout) {
  ServerOptions options = Options();
  options.request_timeout = 400ms;
  StartServer(options, DefaultRouter());
  TlsClient client;
  ASSERT_TRUE(client.Connect(port_));
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(client.Send("GET /hello HTTP/1.1\r\nHost: loc"));
  EXPECT_TRUE(client.ClosedWithoutData(3s));
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, 300ms);
  EXPECT_LT(elapsed, 2500ms);
  EXPECT_EQ(calls_, 0);
}

// A connection that never starts its TLS handshake is closed after handshake_timeout, not held
// for the (longer) request timeout.
TEST_F(ServerTest, SilentConnectionIsClosedAfterHandshakeTimeout) {
  ServerOptions options = Options();
  options.handshake_timeout = 300ms;
  options.request_timeout = 20s;
  StartServer(options, DefaultRouter());
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port_);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const auto start = std::chrono::steady_clock::now();
  char byte = 0;
  const ssize_t n = recv(fd, &byte, 1, 0);  // 0: the server closed it
  const auto elapsed = std::chrono::steady_clock::now() - start;
  close(fd);
  EXPECT_EQ(n, 0);
  EXPECT_GE(elapsed, 200ms);
  EXPECT_LT(elapsed, 3s);
}

TEST_F(ServerTest, IdleConnectionIsClosedAfterIdleTimeout) {
  ServerOptions options = Options();
  options.idle_timeout = 300ms;
  StartServer(options, DefaultRouter());
  TlsClient client;
  ASSERT_TRUE(client.Connect(port_));
  ASSERT_TRUE(client.Request(Get("/hello")).has_value());
  EXPECT_TRUE(client.ClosedWithoutData(3s));
}

// --- Shutdown
// -------------------------------------------------------------------------------------

TEST_F(ServerTest, StopDrainsInFlightRequestThenExits) {
  Gate gate;
  Router router;
  ASSERT_TRUE(router
                  .Add(
                      "GET", "/slow",
                      [&gate](const Request&) {
                        gate.Enter();
                        return Text("finished");
                      },
                      RouteOptions{.blocking = true})
                  .ok());
  StartServer(Options(), std::move(router));
  TlsClient in_flight, idle;
  ASSERT_TRUE(idle.Connect(port_));
  ASSERT_TRUE(in_flight.Connect(port_));
  ASSERT_TRUE(in_flight.Send(Get("/slow")));
  ASSERT_TRUE(WaitFor([&] { return gate.entered() == 1; }));

  server_->Stop();
  EXPECT_TRUE(idle.ClosedWithoutData(2s));  // idle connections close at once
  TlsClient late;
  EXPECT_FALSE(late.Connect(port_));  // no longer accepting

  auto waited = std::async(std::launch::async, [this] { server_->Wait(); });
  EXPECT_EQ(waited.wait_for(200ms), std::future_status::timeout);  // still draining
  gate.Release();
  auto response = in_flight.Read();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "finished");
  EXPECT_EQ(response->Header("connection"), "close");
  EXPECT_EQ(waited.wait_for(3s), std::future_status::ready);
}

TEST_F(ServerTest, StopClosesConnectionsLeftAfterGracePeriod) {
  ServerOptions options = Options();
  options.shutdown_grace = 200ms;
  options.request_timeout = 10s;
  StartServer(options, DefaultRouter());
  TlsClient stalled;
  ASSERT_TRUE(stalled.Connect(port_));
  ASSERT_TRUE(stalled.Send("GET /hello HTTP/1.1\r\n"));  // mid-request: not idle
  std::this_thread::sleep_for(50ms);
  auto start = std::chrono::steady_clock::now();
  server_->Stop();
  server_->Wait();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_TRUE(stalled.ClosedWithoutData(1s));
}

TEST_F(ServerTest, SigtermStopsServerWhenSignalsAreHandled) {
  ServerOptions options = Options();
  options.handle_signals = true;
  StartServer(options, DefaultRouter());
  ::kill(::getpid(), SIGTERM);
  auto waited = std::async(std::launch::async, [this] { server_->Wait(); });
  EXPECT_EQ(waited.wait_for(5s), std::future_status::ready);
}

// A request that never ends (a stuck HSM call) keeps the drain after SIGTERM going; a second
// SIGTERM must then end the process, not be swallowed, so the operator has more than SIGKILL.
// Forked: the second signal's default action ends the process that receives it.
TEST_F(ServerTest, ASecondSigtermEndsTheProcessWhileARequestHangs) {
  ServerOptions options = Options();  // before the fork: both sides must share TestPki()'s files
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  const pid_t child = ::fork();
  ASSERT_NE(child, -1);
  if (child == 0) {
    ::close(pipe_fds[0]);
    options.handle_signals = true;
    options.shutdown_grace = 60s;
    Router router;
    static std::atomic<bool> never{false};
    if (!router
             .Add("GET", "/hang",
                  [](const Request&) {
                    while (!never.load()) std::this_thread::sleep_for(100ms);
                    return Text("");
                  })
             .ok()) {
      ::_exit(3);
    }
    auto server = Server::Create(std::move(options), std::move(router), metrics_);
    if (!server.ok()) ::_exit(4);
    auto port = (*server)->Start();
    if (!port.ok()) ::_exit(5);
    const uint16_t bound = *port;
    if (::write(pipe_fds[1], &bound, sizeof bound) != sizeof bound) ::_exit(6);
    (*server)->Wait();
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  struct Reaper {  // a failed assertion must not leave the child serving
    pid_t pid;
    ~Reaper() {
      if (::waitpid(pid, nullptr, WNOHANG) == 0) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
      }
    }
  } reaper{child};
  uint16_t port = 0;
  ASSERT_EQ(::read(pipe_fds[0], &port, sizeof port), static_cast<ssize_t>(sizeof port));
  ::close(pipe_fds[0]);
  TlsClient client;
  ASSERT_TRUE(client.Connect(port));
  ASSERT_TRUE(client.Send(Get("/hang")));
  std::this_thread::sleep_for(300ms);
  ::kill(child, SIGTERM);
  std::this_thread::sleep_for(300ms);
  int status = 0;
  EXPECT_EQ(::waitpid(child, &status, WNOHANG), 0) << "the first SIGTERM waits for the request";
  ::kill(child, SIGTERM);
  pid_t done = 0;
  for (int i = 0; i < 50 && done == 0; ++i) {
    std::this_thread::sleep_for(100ms);
    done = ::waitpid(child, &status, WNOHANG);
  }
  if (done == 0) {
    ::kill(child, SIGKILL);
    ::waitpid(child, &status, 0);
  }
  EXPECT_EQ(done, child) << "a second SIGTERM did not end the process";
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) << status;
}

// --- Built-in endpoints --------------------------------------------------------------------------

TEST_F(ServerTest, MetricsShowRequestCounters) {
  Router router = DefaultRouter();
  ASSERT_TRUE(AddMetricsRoute(router, metrics_).ok());
  StartServer(Options(), std::move(router));
  TlsClient client;
  ASSERT_TRUE(client.Connect(port_));
  ASSERT_TRUE(client.Request(Get("/hello")).has_value());
  ASSERT_TRUE(client.Request(Get("/hello")).has_value());
  ASSERT_TRUE(client.Request(Get("/nope/123")).has_value());
  auto response = client.Request(Get("/metrics"));
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
  EXPECT_THAT(response->Header("content-type"), HasSubstr("version=0.0.4"));
  EXPECT_THAT(
      response->body,
      HasSubstr("signet_http_requests_total{method=\"GET\",path=\"/hello\",status=\"200\"} 2\n"));
  EXPECT_THAT(
      response->body,
      HasSubstr(
          "signet_http_requests_total{method=\"GET\",path=\"unmatched\",status=\"404\"} 1\n"));
  EXPECT_THAT(response->body, HasSubstr("# TYPE signet_http_request_duration_seconds histogram"));
  EXPECT_THAT(
      response->body,
      HasSubstr("signet_http_request_duration_seconds_count{method=\"GET\",path=\"/hello\"} 2\n"));
  EXPECT_THAT(response->body, HasSubstr("signet_http_connections_active 1\n"));
  EXPECT_THAT(response->body, ::testing::Not(HasSubstr("/nope/123")));
}

TEST_F(ServerTest, HealthzReports503WhenACheckFails) {
  Router router;
  std::atomic<bool> database_up{true};
  ASSERT_TRUE(AddHealthzRoute(router, {{"hsm", [] { return OkStatus(); }},
                                       {"database",
                                        [&database_up]() -> Status {
                                          if (database_up) return OkStatus();
                                          return Unavailable("db at /secret/path is down");
                                        }}})
                  .ok());
  StartServer(Options(), std::move(router));
  TlsClient client;
  ASSERT_TRUE(client.Connect(port_));
  auto healthy = client.Request(Get("/healthz"));
  ASSERT_TRUE(healthy.has_value());
  EXPECT_EQ(healthy->status, 200);
  EXPECT_EQ(healthy->body, R"({"status":"ok","checks":{"hsm":"ok","database":"ok"}})");
  database_up = false;
  auto sick = client.Request(Get("/healthz"));
  ASSERT_TRUE(sick.has_value());
  EXPECT_EQ(sick->status, 503);
  EXPECT_EQ(sick->body,
            R"({"status":"unavailable","checks":{"hsm":"ok","database":"unavailable"}})");
}

// A "database" health check that counts its runs and, while `hold` is set, blocks in the run
// (after setting `held`) until it is cleared.
struct HeldCheck {
  std::atomic<int> runs{0};
  std::mutex mu;
  std::condition_variable cv;
  bool hold = false;  // guarded by mu
  bool held = false;  // guarded by mu
  HealthCheck Check() {
    return {"database", [this]() -> Status {
              ++runs;
              std::unique_lock lock(mu);
              held = true;
              cv.notify_all();
              cv.wait(lock, [this] { return !hold; });
              return OkStatus();
            }};
  }
};

// Before there is any answer, probes that arrive while the first run is held wait for its answer
// instead of starting runs of their own.
TEST_F(ServerTest, HealthzProbesBeforeTheFirstAnswerShareTheFirstRun) {
  Router router;
  HeldCheck check;
  check.hold = true;
  ASSERT_TRUE(AddHealthzRoute(router, {check.Check()}).ok());
  StartServer(Options(), std::move(router));
  std::vector<std::thread> probes;
  std::atomic<int> answered{0};
  auto probe = [&] {
    TlsClient client;
    if (!client.Connect(port_)) return;
    auto answer = client.Request(Get("/healthz"));
    if (answer.has_value() && answer->status == 200) ++answered;
  };
  probes.emplace_back(probe);
  {
    std::unique_lock lock(check.mu);
    EXPECT_TRUE(check.cv.wait_for(lock, std::chrono::seconds(10), [&] { return check.held; }));
  }
  for (int i = 0; i < 2; ++i) probes.emplace_back(probe);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // let them arrive and wait
  // Started separately, each would be held in a run of its own by now.
  EXPECT_EQ(check.runs.load(), 1);
  {
    std::lock_guard lock(check.mu);
    check.hold = false;
  }
  check.cv.notify_all();
  for (std::thread& t : probes) t.join();
  EXPECT_EQ(answered.load(), 3);
}

// Probes that arrive while the checks run do not start more runs (each would hold a worker): they
// get the previous answer at once.
TEST_F(ServerTest, HealthzRunsItsChecksOnceAtATime) {
  Router router;
  HeldCheck check;
  ASSERT_TRUE(AddHealthzRoute(router, {check.Check()}).ok());
  StartServer(Options(), std::move(router));
  TlsClient first;
  ASSERT_TRUE(first.Connect(port_));
  ASSERT_EQ(first.Request(Get("/healthz"))->status, 200);  // an answer to share
  ASSERT_EQ(check.runs.load(), 1);
  {
    std::lock_guard lock(check.mu);
    check.hold = true;
    check.held = false;
  }
  std::thread slow([&] {
    auto answer = first.Request(Get("/healthz"));
    EXPECT_TRUE(answer.has_value() && answer->status == 200);
  });
  {
    std::unique_lock lock(check.mu);
    EXPECT_TRUE(check.cv.wait_for(lock, std::chrono::seconds(10), [&] { return check.held; }));
  }
  // No ASSERT until the held run is released: `slow` must be joined.
  for (int i = 0; i < 3; ++i) {
    TlsClient other;
    if (!other.Connect(port_)) {
      ADD_FAILURE() << "connect";
      continue;
    }
    auto shared = other.Request(Get("/healthz"));
    if (!shared.has_value()) {
      ADD_FAILURE() << "no answer";
      continue;
    }
    EXPECT_EQ(shared->status, 200);
    EXPECT_EQ(shared->body, R"({"status":"ok","checks":{"database":"ok"}})");
  }
  EXPECT_EQ(check.runs.load(), 2);  // the held run only
  {
    std::lock_guard lock(check.mu);
    check.hold = false;
  }
  check.cv.notify_all();
  slow.join();
  ASSERT_EQ(first.Request(Get("/healthz"))->status, 200);
  EXPECT_EQ(check.runs.load(), 3);  // one after another, each probe runs the checks
}

TEST_F(ServerTest, HealthzLogsAFailingCheckOnceAndItsRecovery) {
  std::mutex mu;
  std::vector<std::string> lines;
  LogSink previous = SetLogSink([&](std::string_view line) {
    std::lock_guard lock(mu);
    lines.emplace_back(line);
  });
  Router router;
  std::atomic<bool> database_up{false};
  ASSERT_TRUE(AddHealthzRoute(router, {{"database",
                                        [&database_up]() -> Status {
                                          if (database_up) return OkStatus();
                                          return Unavailable("db at /secret/path is down");
                                        }}})
                  .ok());
  StartServer(Options(), std::move(router));
  TlsClient client;
  ASSERT_TRUE(client.Connect(port_));
  for (int i = 0; i < 3; ++i) {
    auto sick = client.Request(Get("/healthz"));
    ASSERT_TRUE(sick.has_value());
    EXPECT_EQ(sick->status, 503);
    EXPECT_EQ(sick->body.find("/secret/path"), std::string::npos);
  }
  database_up = true;
  ASSERT_TRUE(client.Request(Get("/healthz")).has_value());
  ASSERT_TRUE(client.Request(Get("/healthz")).has_value());
  SetLogSink(std::move(previous));
  std::lock_guard lock(mu);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_THAT(lines[0], HasSubstr("signet error: healthz: check 'database' fails: unavailable: "
                                  "db at /secret/path is down\n"));
  EXPECT_THAT(lines[1], HasSubstr("signet warning: healthz: check 'database' passes again\n"));
}

}  // namespace
}  // namespace signet::server
