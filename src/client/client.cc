// HttpsClient (client.h). Boost.Beast over Asio with OpenSSL; every network operation is
// asynchronous underneath, driven on a private io_context with a deadline on the TCP stream, so a
// silent server costs at most `timeout` per step and never hangs a CLI or a test.
#include "client/client.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <charconv>
#include <exception>
#include <thread>

#include "common/bytes.h"
#include "common/fs.h"
#include "common/text.h"

namespace signet::client {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

// Limits on what a server may send back: generous for certificate chains and signature batches,
// small enough that a hostile server cannot exhaust memory.
constexpr size_t kMaxResponseBody = 64 * 1024 * 1024;
constexpr uint32_t kMaxResponseHeader = 64 * 1024;
constexpr size_t kMaxCaFile = 4 * 1024 * 1024;

struct ParsedUrl {
  std::string host;  // without brackets
  uint16_t port = 443;
  bool is_ip = false;
};

Result<ParsedUrl> ParseServerUrl(std::string_view url) {
  const std::string_view original = url;
  auto bad = [&](std::string_view why) {
    return InvalidArgument("server URL '" + std::string(original) + "' " + std::string(why) +
                           "; expected https://HOST[:PORT]");
  };
  constexpr std::string_view kScheme = "https://";
  if (url.size() < kScheme.size() || AsciiLower(url.substr(0, kScheme.size())) != kScheme) {
    return bad("does not start with https://");
  }
  url.remove_prefix(kScheme.size());
  if (!url.empty() && url.back() == '/') url.remove_suffix(1);
  if (url.find_first_of("/?#@") != std::string_view::npos) return bad("has a path or user part");
  ParsedUrl out;
  std::string_view port_text;
  bool has_port = false;
  if (!url.empty() && url.front() == '[') {
    size_t close = url.find(']');
    if (close == std::string_view::npos) return bad("has an unclosed '['");
    out.host = std::string(url.substr(1, close - 1));
    std::string_view rest = url.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return bad("has text after ']'");
      has_port = true;
      port_text = rest.substr(1);
    }
  } else {
    size_t colon = url.find(':');
    if (colon != std::string_view::npos) {
      has_port = true;
      port_text = url.substr(colon + 1);
      url = url.substr(0, colon);
    }
    out.host = std::string(url);
  }
  if (out.host.empty()) return bad("has no host");
  for (char c : out.host) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':' ||
          c == '_')) {
      return bad("has a character not allowed in a host name");
    }
  }
  if (has_port && port_text.empty()) return bad("has an empty port");
  if (!port_text.empty()) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || value == 0 ||
        value > 65535) {
      return bad("has a bad port");
    }
    out.port = static_cast<uint16_t>(value);
  }
  boost::system::error_code ec;
  asio::ip::make_address(out.host, ec);
  out.is_ip = !ec;
  if (!out.is_ip && out.host.find(':') != std::string::npos) return bad("has a bad IPv6 address");
  return out;
}

std::string OpenSslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

Error ErrorFromCode(int status, std::string message) {
  switch (status) {
    case 400:
    case 413:
    case 415:
      return InvalidArgument(std::move(message));
    case 401:
      return Unauthenticated(std::move(message));
    case 403:
      return PermissionDenied(std::move(message));
    case 404:
      return NotFound(std::move(message));
    case 409:
      return AlreadyExists(std::move(message));
    case 429:
      return ResourceExhausted(std::move(message));
    case 503:
      return Unavailable(std::move(message));
    default:
      return InternalError(std::move(message));
  }
}

}  // namespace

std::optional<std::string_view> HttpResponse::Header(std::string_view name) const {
  const std::string lower = AsciiLower(name);
  for (const auto& [n, v] : headers) {
    if (n == lower) return std::string_view(v);
  }
  return std::nullopt;
}

struct HttpsClient::Impl {
  ClientOptions options;
  ParsedUrl url;
  std::string host_header;
  asio::io_context ioc;
  ssl::context tls{ssl::context::tls_client};
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> stream;
  beast::flat_buffer buffer;

  // Runs the io_context until the started operation has completed.
  void RunToCompletion() {
    ioc.restart();
    ioc.run();
  }

  void Disconnect() {
    if (!stream) return;
    boost::system::error_code ignored;
    beast::get_lowest_layer(*stream).socket().shutdown(tcp::socket::shutdown_both, ignored);
    beast::get_lowest_layer(*stream).close();
    stream.reset();
    WipeReadBuffer();
    buffer.clear();
  }

  Status Connect() {
    Disconnect();
    const std::string where = options.server_url;
    boost::system::error_code ec;
    tcp::resolver resolver(ioc);
    auto endpoints = resolver.resolve(url.host, std::to_string(url.port), ec);
    if (ec) return Unavailable("cannot resolve " + url.host + ": " + ec.message());

    auto s = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(ioc, tls);
    SSL* handle = s->native_handle();
    if (url.is_ip) {
      X509_VERIFY_PARAM* param = SSL_get0_param(handle);
      if (X509_VERIFY_PARAM_set1_ip_asc(param, url.host.c_str()) != 1) {
        return InternalError("cannot set the expected server IP address: " + OpenSslErrors());
      }
    } else {
      // SNI and RFC 6125 host name check (no partial wildcards).
      SSL_set_hostflags(handle, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      if (SSL_set1_host(handle, url.host.c_str()) != 1 ||
          SSL_ctrl(handle, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                   const_cast<char*>(url.host.c_str())) != 1) {
        return InternalError("cannot set the expected server name: " + OpenSslErrors());
      }
    }

    auto& lowest = beast::get_lowest_layer(*s);
    lowest.expires_after(options.timeout);
    lowest.async_connect(endpoints,
                         [&ec](const boost::system::error_code& e, const auto&) { ec = e; });
    RunToCompletion();
    if (ec) return Unavailable("cannot connect to " + where + ": " + ec.message());
    // A request goes out as several TLS records (headers, then a body of any size). With Nagle's
    // algorithm on, a record that follows an unacknowledged one waits for the server's delayed
    // ACK, ~40 ms on Linux, for every large request; the client never has more to add, so it
    // sends at once.
    boost::system::error_code nodelay_error;
    lowest.socket().set_option(tcp::no_delay(true), nodelay_error);

    lowest.expires_after(options.timeout);
    s->async_handshake(ssl::stream_base::client,
                       [&ec](const boost::system::error_code& e) { ec = e; });
    RunToCompletion();
    if (ec) {
      std::string why = ec.message();
      long verify = SSL_get_verify_result(handle);
      if (verify != X509_V_OK) {
        why = std::string("the server certificate did not verify (") +
              X509_verify_cert_error_string(verify) + ")";
        if (options.ca_file.empty() && options.ca_pem.empty()) {
          why += "; pass the server's CA certificate with --ca-file";
        }
      }
      return Unavailable("TLS handshake with " + where + " failed: " + why);
    }
    stream = std::move(s);
    return OkStatus();
  }

  // The request's copy of the body and header values (a Basic password, a bearer token, a new
  // password) is wiped once sent. Beast keeps each field's value in memory the fields object
  // owns, so writing through the view is writing to our own buffer.
  static void WipeRequest(http::request<http::string_body>& req) {
    SecureWipe(req.body().data(), req.body().size());
    for (auto& field : req) {
      const std::string_view value = field.value();
      SecureWipe(const_cast<char*>(value.data()), value.size());
    }
  }

  // The read buffer keeps the raw bytes of past answers in its storage after they are consumed;
  // they are zeroed before the next exchange and when the connection goes.
  void WipeReadBuffer() {
    buffer.consume(buffer.size());
    if (buffer.capacity() == 0) return;
    auto storage = buffer.prepare(buffer.capacity());
    SecureWipe(storage.data(), storage.size());
  }

  // One exchange on the current connection. `*nothing_received` tells the caller whether the
  // failure happened before any byte of an answer arrived (then a reused connection that the
  // server had closed can be retried on a fresh one).
  Result<HttpResponse> Exchange(const HttpRequest& request, bool* nothing_received) {
    *nothing_received = true;
    http::request<http::string_body> req;
    req.method_string(request.method);
    req.target(request.target);
    req.version(11);
    req.set(http::field::host, host_header);
    req.set(http::field::user_agent, "signet-client");
    req.set(http::field::accept, "application/json");
    for (const auto& [name, value] : request.headers) req.insert(name, value);
    if (!request.body.empty() || request.method == "POST") {
      if (!request.content_type.empty()) req.set(http::field::content_type, request.content_type);
      req.body() = request.body;
    }
    req.keep_alive(true);
    req.prepare_payload();

    boost::system::error_code ec;
    auto& lowest = beast::get_lowest_layer(*stream);
    lowest.expires_after(options.timeout);
    http::async_write(*stream, req, [&ec](const boost::system::error_code& e, size_t) { ec = e; });
    RunToCompletion();
    const boost::system::error_code write_error = ec;
    WipeRequest(req);

    // Read the answer even when the write failed: a server may refuse a request early (413 for a
    // declared body over its limit) and close without reading the rest; its answer is the error.
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxResponseBody);
    parser.header_limit(kMaxResponseHeader);
    lowest.expires_after(options.timeout);
    size_t received = 0;
    http::async_read(*stream, buffer, parser,
                     [&ec, &received](const boost::system::error_code& e, size_t n) {
                       ec = e;
                       received = n;
                     });
    RunToCompletion();
    if (ec && !parser.is_done()) {
      // A closed idle connection reads as EOF or a reset at once; a timeout may be a server still
      // working on the request, which must not be sent again.
      *nothing_received = received == 0 && !parser.got_some() && ec != boost::beast::error::timeout;
      if (write_error) {
        return Unavailable("sending to " + options.server_url + " failed: " + write_error.message());
      }
      return Unavailable("reading the answer from " + options.server_url +
                         " failed: " + ec.message());
    }
    *nothing_received = false;
    WipeReadBuffer();  // the answer's raw bytes; its parsed copy follows
    auto res = parser.release();
    HttpResponse out;
    out.status = static_cast<int>(res.result_int());
    out.body = std::move(res.body());
    for (const auto& field : res) {
      out.headers.emplace_back(AsciiLower(field.name_string()), std::string(field.value()));
    }
    if (write_error || !res.keep_alive()) Disconnect();
    return out;
  }

  // An idle kept-alive connection should have nothing to read: the answer to the last request
  // was read in full. Anything readable (the server's close_notify or FIN, a reset, stray bytes)
  // means it is no longer usable.
  bool IdleConnectionLooksClosed() {
    if (buffer.size() != 0) return true;
    pollfd p{};
    p.fd = beast::get_lowest_layer(*stream).socket().native_handle();
    p.events = POLLIN;
    const int n = ::poll(&p, 1, 0);
    return n != 0;  // readable, hung up, in error, or poll itself failed
  }

  static bool Idempotent(const HttpRequest& request) {
    return request.idempotent || request.method == "GET" || request.method == "HEAD";
  }

  Result<HttpResponse> SendOnce(const HttpRequest& request) {
    if (stream != nullptr && IdleConnectionLooksClosed()) Disconnect();
    const bool reused = stream != nullptr;
    if (!reused) SIGNET_TRY(Connect());
    bool nothing_received = true;
    auto result = Exchange(request, &nothing_received);
    if (result.ok()) return result;
    Disconnect();
    if (!reused || !nothing_received) return result;
    if (!Idempotent(request)) {
      // The server may have read the request, carried it out and then gone away (stopped after
      // its grace period, killed) before answering; sending it again could do it twice (a key
      // destroyed, hashes consumed, a one-time code spent). The idle connection was checked just
      // before the request was written, so a server that had simply closed it is rare here.
      return result.error().WithContext(
          "the connection closed before any answer; the request may have been carried out, so "
          "it was not sent again");
    }
    // Closed before any answer, and sending it twice is harmless: once more on a fresh
    // connection.
    SIGNET_TRY(Connect());
    result = Exchange(request, &nothing_received);
    if (!result.ok()) Disconnect();
    return result;
  }
};

HttpsClient::HttpsClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpsClient::~HttpsClient() {
  if (impl_) impl_->Disconnect();
}

Result<std::unique_ptr<HttpsClient>> HttpsClient::Create(ClientOptions options) {
  auto impl = std::make_unique<Impl>();
  SIGNET_ASSIGN_OR_RETURN(impl->url, ParseServerUrl(options.server_url));
  if (options.timeout <= std::chrono::milliseconds::zero()) {
    return InvalidArgument("the client timeout must be positive");
  }
  if (options.max_retries < 0) return InvalidArgument("max_retries must not be negative");
  if (options.client_certificate_file.empty() != options.client_private_key_file.empty()) {
    return InvalidArgument("a client certificate needs its private key and vice versa");
  }
  const bool default_port = impl->url.port == 443;
  std::string host =
      impl->url.host.find(':') != std::string::npos ? "[" + impl->url.host + "]" : impl->url.host;
  impl->host_header = default_port ? host : host + ":" + std::to_string(impl->url.port);

  SSL_CTX* ctx = impl->tls.native_handle();
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
    return InternalError("cannot require TLS 1.2: " + OpenSslErrors());
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  boost::system::error_code ec;
  if (!options.ca_pem.empty()) {
    if (options.ca_pem.size() > kMaxCaFile) {
      return InvalidArgument("the CA certificates are larger than " + std::to_string(kMaxCaFile) +
                             " bytes");
    }
    impl->tls.add_certificate_authority(asio::buffer(options.ca_pem), ec);
    if (ec) {
      const std::string what = options.ca_file.empty() ? std::string("the CA certificates")
                                                       : "CA file " + options.ca_file;
      return InvalidArgument(what + " hold no usable PEM certificate: " + ec.message());
    }
  } else if (options.ca_file.empty()) {
    impl->tls.set_default_verify_paths(ec);
    if (ec) return Unavailable("cannot load the system trust store: " + ec.message());
  } else {
    SIGNET_ASSIGN_OR_RETURN(Bytes pem, fs::ReadFile(options.ca_file, kMaxCaFile));
    impl->tls.add_certificate_authority(asio::buffer(pem.data(), pem.size()), ec);
    if (ec) {
      return InvalidArgument("CA file " + options.ca_file +
                             " holds no usable PEM certificate: " + ec.message());
    }
  }
  if (!options.ca_pem.empty() || !options.ca_file.empty()) {
    // CA certificates the user named are trusted as they are, an intermediate (the CA that issued
    // the server's certificate, as --ca-file's help says) as much as a root: without this flag
    // OpenSSL would insist on reaching a self-signed root that nobody asked it to trust.
    X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx), X509_V_FLAG_PARTIAL_CHAIN);
  }
  if (!options.client_certificate_file.empty()) {
    SIGNET_ASSIGN_OR_RETURN(Bytes chain, fs::ReadFile(options.client_certificate_file, kMaxCaFile));
    impl->tls.use_certificate_chain(asio::buffer(chain.data(), chain.size()), ec);
    if (ec) {
      return InvalidArgument("client certificate " + options.client_certificate_file +
                             " is not a usable PEM certificate chain: " + ec.message());
    }
    SIGNET_ASSIGN_OR_RETURN(SecretBytes key, fs::ReadSecretFile(options.client_private_key_file));
    // An encrypted key would make OpenSSL ask for its passphrase on the terminal itself (or read
    // it from standard input), outside signet's prompts: a callback that gives none refuses it.
    SSL_CTX_set_default_passwd_cb(ctx, [](char*, int, int, void*) -> int { return 0; });
    const bool encrypted = key.text_view().find("ENCRYPTED") != std::string_view::npos;
    impl->tls.use_private_key(asio::buffer(key.data(), key.size()), ssl::context::pem, ec);
    if (ec && encrypted) {
      return InvalidArgument("client key " + options.client_private_key_file +
                             " is encrypted; signet needs it unencrypted, in an owner-only (0600) "
                             "file (openssl pkey -in KEY -out PLAIN)");
    }
    if (ec) {
      return InvalidArgument(
          "client key " + options.client_private_key_file +
          " is not a usable PEM private key for the certificate: " + ec.message());
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
      return InvalidArgument("client key " + options.client_private_key_file +
                             " does not match the client certificate");
    }
  }
  impl->options = std::move(options);
  return std::unique_ptr<HttpsClient>(new HttpsClient(std::move(impl)));
}

Result<HttpResponse> HttpsClient::Send(const HttpRequest& request) {
  if (request.target.empty() || request.target.front() != '/') {
    return InvalidArgument("request target must start with '/'");
  }
  try {
    for (int attempt = 0;; ++attempt) {
      SIGNET_ASSIGN_OR_RETURN(HttpResponse response, impl_->SendOnce(request));
      // Only an answer with Retry-After is retried: signet's server sends it only when the request
      // took no effect (refused before any handler ran: connections, workers, a route's limit; or
      // a signHash over a per-minute rate limit). A 503 or 429 without it may come after the
      // request took effect (a one-time code spent, hashes consumed, a key marked destroyed), and
      // sending it again would not be the same request.
      if ((response.status != 429 && response.status != 503) ||
          !response.Header("retry-after").has_value() || attempt >= impl_->options.max_retries) {
        return response;
      }
      // Retry-After in seconds (RFC 9110 §10.2.3; the HTTP-date form is not used by signet);
      // unreadable: one second. A wait longer than max_retry_wait is not waited for: the server
      // said the request cannot pass sooner, so the answer goes to the caller at once.
      std::chrono::milliseconds wait{1000};
      if (auto after = response.Header("retry-after")) {  // always, see above
        unsigned seconds = 0;
        auto [end, ec] = std::from_chars(after->data(), after->data() + after->size(), seconds);
        if (ec == std::errc() && end == after->data() + after->size()) {
          wait = std::chrono::seconds(seconds);
        }
      }
      if (wait > impl_->options.max_retry_wait) return response;
      std::this_thread::sleep_for(wait);
    }
  } catch (const std::exception& e) {
    impl_->Disconnect();
    return InternalError(std::string("HTTPS client failure: ") + e.what());
  }
}

void HttpsClient::Close() { impl_->Disconnect(); }

const ClientOptions& HttpsClient::options() const { return impl_->options; }

Error ErrorFromResponse(const HttpResponse& response) {
  std::string description;
  std::string name;
  // An error body is a small object; anything else (not JSON, or outside ParseJsonAnswer's
  // bounds) is ignored, and the status speaks alone.
  Result<nlohmann::json> parsed = ParseJsonAnswer(response.body, "a request");
  const nlohmann::json body = parsed.ok() ? std::move(parsed).value() : nlohmann::json();
  if (body.is_object()) {
    auto d = body.find("error_description");
    if (d != body.end() && d->is_string()) description = d->get<std::string>();
    auto e = body.find("error");
    if (e != body.end() && e->is_string()) name = e->get<std::string>();
  }
  auto cap = [](std::string& text) {
    if (text.size() <= kMaxErrorDescription) return;
    text.resize(Utf8CutPoint(text, kMaxErrorDescription));
    text += "...";
  };
  cap(description);
  cap(name);
  std::string message;
  if (!description.empty()) {
    message = description + (name.empty() ? "" : " (" + name + ")");
  } else if (!name.empty()) {
    message = name;
  } else {
    message = "the server answered HTTP " + std::to_string(response.status);
  }
  // A well-formed request that does not fit the current state is 400 like a malformed one; the
  // management API names it, so callers can tell the two apart (CLI exit codes 6 and 2).
  if (response.status == 400 && name == "failed_precondition") {
    return FailedPrecondition(std::move(message));
  }
  return ErrorFromCode(response.status, std::move(message));
}

Result<nlohmann::json> CallJson(HttpsClient& client, std::string_view target,
                                const nlohmann::json& body, std::string_view bearer) {
  HttpRequest request;
  request.target = std::string(target);
  try {
    request.body = body.dump();
  } catch (const nlohmann::json::type_error&) {
    // The exception's text quotes the offending byte; the request may hold secrets.
    return InvalidArgument(
        "the request holds text that is not valid UTF-8 (a file or an argument in another "
        "encoding?); signet's API carries text as UTF-8 JSON strings");
  }
  if (!bearer.empty()) {
    // Built in place and moved in: no intermediate copy of the token is freed unwiped.
    std::string header;
    header.reserve(7 + bearer.size());
    header.append("Bearer ").append(bearer);
    request.headers.emplace_back("Authorization", std::move(header));
  }
  auto response = client.Send(request);
  // The request carried a bearer token; wipe our copy of the header.
  for (auto& [name, value] : request.headers) SecureWipe(value.data(), value.size());
  if (!response.ok()) return std::move(response).error();
  if (response->status < 200 || response->status > 299) return ErrorFromResponse(*response);
  if (response->body.empty()) return nlohmann::json::object();
  auto parsed = ParseJsonAnswer(response->body, target);
  // Answers may hold secrets (a new account's one-time password and TOTP seed); the parsed
  // copy is the caller's to wipe, the raw one is wiped here.
  SecureWipe(response->body.data(), response->body.size());
  return parsed;
}

Result<nlohmann::json> ParseJsonAnswer(std::string_view body, std::string_view what,
                                       size_t max_bytes) {
  const std::string answer = "the server's answer to " + std::string(what);
  if (body.size() > max_bytes) {
    return InternalError(answer + " is " + std::to_string(body.size()) + " bytes; at most " +
                         std::to_string(max_bytes) + " are accepted");
  }
  if (JsonNestsDeeperThan(body)) {
    return InternalError(answer + " nests objects and arrays deeper than " +
                         std::to_string(kMaxJsonDepth) + " levels");
  }
  auto parsed = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return InternalError(answer + " is not JSON");
  return parsed;
}

}  // namespace signet::client
