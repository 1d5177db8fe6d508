// client: the HTTPS client of signet's APIs (DESIGN.md §2 "client/"), used by the remote CLI, the
// end-to-end tests and the benchmarks. Boost.Beast/Asio and OpenSSL's TLS API are used only inside
// src/client/; nothing here exposes them.
//
// HttpsClient holds one keep-alive TLS connection to one server and reconnects when the server
// has closed it. TLS 1.2 or 1.3 only; the server certificate must chain to the configured CA file
// (or the system trust store) and name the URL's host (DNS name or IP address). Optional client
// certificate for mTLS. Answers 429 and 503 that carry Retry-After are retried after it
// (bounded): signet's server sends it only when it refused the request before any handler ran
// (overload). Others are returned as they are: they may come after the request took effect. A
// request is sent again on a fresh connection only when a reused one was closed before any answer
// (EOF or reset), never after a time-out.
//
// Threads: one HttpsClient per thread; it is not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace signet::client {

struct ClientOptions {
  // "https://host[:port]" without a path; host is a DNS name, an IPv4 literal or "[IPv6]".
  std::string server_url;
  // PEM file of the CA certificate(s) that issue the server's certificate (for the embedded
  // default: the server's own self-signed certificate). Empty: the system trust store.
  std::string ca_file;
  // The same certificates as PEM text, already read (the remote CLI pins them at login). When not
  // empty they are used and ca_file is not read; it only names them in messages.
  std::string ca_pem;
  // mTLS client identity (both or neither); the key file must be owner-only.
  std::string client_certificate_file;
  std::string client_private_key_file;
  // Limit for connecting + handshake, and for each request/response exchange.
  std::chrono::milliseconds timeout{std::chrono::seconds(30)};
  // Extra attempts after a 429/503 answer with Retry-After, each after that many seconds; an
  // answer asking for a longer wait than max_retry_wait is returned without waiting.
  int max_retries = 2;
  std::chrono::milliseconds max_retry_wait{std::chrono::seconds(5)};
};

struct HttpRequest {
  std::string method = "POST";
  std::string target;  // origin-form, e.g. "/csc/v2/info"
  std::string body;
  std::string content_type = "application/json";             // sent when the body is not empty
  std::vector<std::pair<std::string, std::string>> headers;  // extra fields, e.g. Authorization
  // Safe to send twice (a read). Only such a request (and GET or HEAD) is sent again when a reused
  // connection closes after it was written but before any answer arrived: the server may have
  // carried out the request and died, or been stopped, before answering.
  bool idempotent = false;
};

struct HttpResponse {
  int status = 0;
  std::string body;
  // Header fields in order, names lower-cased.
  std::vector<std::pair<std::string, std::string>> headers;

  std::optional<std::string_view> Header(std::string_view name) const;
};

class HttpsClient {
 public:
  // Checks the options and loads the CA/client files; does not connect. InvalidArgument for a bad
  // URL or unusable PEM, NotFound for a missing file, PermissionDenied for a client key readable by
  // others.
  static Result<std::unique_ptr<HttpsClient>> Create(ClientOptions options);
  ~HttpsClient();
  HttpsClient(const HttpsClient&) = delete;
  HttpsClient& operator=(const HttpsClient&) = delete;

  // Sends one request and reads the answer (any HTTP status is a success here). Unavailable when
  // the server cannot be reached, the TLS handshake fails (the message says why, e.g. the
  // certificate did not verify) or the connection breaks; DeadlineExceeded does not exist in
  // signet, so a time-out is Unavailable too. A kept-alive connection the server has closed
  // meanwhile is noticed before the request is written, and a fresh one is used instead; a
  // connection that closes after the request was written is not retried unless the request is
  // idempotent (the message then says it may have been carried out).
  Result<HttpResponse> Send(const HttpRequest& request);

  // Closes the connection (the next Send reconnects).
  void Close();

  const ClientOptions& options() const;

 private:
  struct Impl;
  explicit HttpsClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// JSON calls against the CSC API (/csc/v2/...) and the management API (/api/v1/...): POST `body`
// with `Authorization: Bearer <bearer>` when `bearer` is not empty. A 2xx answer returns its JSON
// body ({} for an empty body). Any other status becomes an Error whose code follows the HTTP
// status (400 InvalidArgument, 401 Unauthenticated, 403 PermissionDenied, 404 NotFound,
// 409 AlreadyExists, 413 InvalidArgument, 429 ResourceExhausted, 503 Unavailable, other
// Internal) and whose message is the server's error_description followed by the error name, e.g.
// "the account is locked until ... (invalid_authentication_data)". A 2xx body that is not JSON is
// Internal. A `body` holding a string that is not valid UTF-8 is InvalidArgument, and nothing is
// sent.
Result<nlohmann::json> CallJson(HttpsClient& client, std::string_view target,
                                const nlohmann::json& body, std::string_view bearer = {});

// The signet Error for a non-2xx answer, as CallJson builds it. The server's description is
// taken as it is (up to kMaxErrorDescription bytes); whoever shows it on a terminal makes it safe
// there (TerminalSafe in common/text.h).
Error ErrorFromResponse(const HttpResponse& response);
inline constexpr size_t kMaxErrorDescription = 2000;

// The most a JSON answer of the CSC or management API may hold. A document costs its parser tens
// of times its size in memory, so the HTTP client's own cap (64 MiB, for tiles and bundles) is too
// high for JSON; nothing those APIs answer comes near this.
inline constexpr size_t kMaxJsonAnswer = 8 * 1024 * 1024;

// Parses the JSON body of a server's answer to `what` (a target, for messages), which the caller
// treats as untrusted: Internal if it is over `max_bytes`, nests deeper than kMaxJsonDepth
// (common/text.h) or is not JSON. CallJson uses it; so do callers that send their own requests.
Result<nlohmann::json> ParseJsonAnswer(std::string_view body, std::string_view what,
                                       size_t max_bytes = kMaxJsonAnswer);

}  // namespace signet::client
