// server: the HTTPS transport of `signet serve` (DESIGN.md §2, §3 "HTTP"). It owns TLS, HTTP/1.1
// parsing and limits, routing, back-pressure and shutdown; the use cases (service/) and their JSON
// codecs plug in as handlers. Boost.Beast/Asio and OpenSSL's TLS API are used only inside
// src/server/; nothing here exposes them.
//
// The pieces:
//  - ServerOptions: every limit and timeout, each with a safe default.
//  - Request / Response: what a handler sees and returns (plain values, no Beast types).
//  - Router: (method, path) -> handler, built before the server starts and immutable afterwards.
//  - Server: binds, accepts TLS connections, runs handlers, shuts down cleanly.
//  - HttpStatusFor: the one mapping from signet ErrorCode to an HTTP status.
//  - AddHealthzRoute / AddMetricsRoute: the built-in endpoints.
//
// Threads: the server runs `io_threads` I/O threads (Asio io_context) and a WorkerPool of
// `worker_threads`. Each connection is served by one I/O thread at a time (an Asio strand), so a
// connection's requests are handled one after another (no pipelining in parallel). A handler runs
// on an I/O thread unless its route is marked `blocking`, in which case it runs on a worker; a
// handler must be thread-safe with respect to itself (it runs for many connections at once) and
// must not block unless marked `blocking`. Handlers never see Boost or OpenSSL types and must not
// throw; an exception that escapes anyway becomes a 500.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "server/metrics.h"

namespace signet::server {

// --- Options ------------------------------------------------------------------------------------

// How a TLS client certificate is asked for (mutual TLS, for machines).
enum class ClientAuth {
  kNone,      // no certificate is requested
  kOptional,  // requested; a presented certificate must verify against the client CA file, and
              // a client without one is served with no fingerprint
  kRequired,  // the handshake fails unless the client presents a certificate that verifies
};

struct TlsOptions {
  // PEM certificate chain, server certificate first, then its intermediates.
  std::string certificate_chain_file;
  // PEM private key of the server certificate (PKCS#8 or traditional, unencrypted). Refused
  // unless the file is owner-only (no group/other permission bits), the way ssh refuses a loose
  // private key.
  std::string private_key_file;
  // PEM file with the CA certificates that issue client certificates; required when client_auth
  // is not kNone and must be empty when it is.
  std::string client_ca_file;
  ClientAuth client_auth = ClientAuth::kNone;
};

// The TLS policy is fixed, not configurable: TLS 1.2 and 1.3 only; TLS 1.2 with ECDHE and an AEAD
// (AES-GCM or ChaCha20-Poly1305) only; TLS 1.3 with its (AEAD) default suites; no compression, no
// renegotiation; groups X25519, P-256, P-384. Client certificates chains up to 4 deep.
struct ServerOptions {
  std::string bind_address = "127.0.0.1";  // an IPv4 or IPv6 literal
  uint16_t port = 8443;                    // 0: any free port (Start returns it)
  TlsOptions tls;

  size_t io_threads = 2;
  size_t worker_threads = 4;          // threads for `blocking` routes
  size_t worker_queue_capacity = 64;  // jobs that may wait for a worker; beyond: 503

  size_t max_body_bytes = 1024 * 1024;  // larger declared or received bodies: 413
  size_t max_header_bytes = 16 * 1024;  // request line + header fields; larger: 431
  size_t max_header_count = 100;        // header fields; more: 431
  size_t max_connections = 1024;        // open connections; beyond: 503 + Retry-After, close
  // Open connections from one client address (an IPv4 address, or an IPv6 /64, since one host
  // holds a whole /64); beyond: 503 + Retry-After, close. Keeps one client from taking every
  // connection (and the request bodies they may buffer). Behind a TCP load balancer that does
  // not pass the client's address, every client shares one address: raise it to max_connections.
  size_t max_connections_per_address = 128;

  // For the TLS handshake of a new connection, which no honest client takes long over (capped by
  // request_timeout when that is shorter): a connection that never sends its ClientHello holds a
  // connection slot before anything about it is known.
  std::chrono::milliseconds handshake_timeout{std::chrono::seconds(10)};
  // Waiting for the first byte of a request (after the handshake or the previous response).
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(60)};
  // From the first byte of a request until it is fully read; also
  // the limit for writing a response. A client that stalls is disconnected without an answer.
  std::chrono::milliseconds request_timeout{std::chrono::seconds(30)};
  // How long Stop() lets in-flight requests finish before closing their connections.
  std::chrono::milliseconds shutdown_grace{std::chrono::seconds(10)};
  // The Retry-After value (seconds) of 503 answers given for overload.
  std::chrono::seconds retry_after{1};

  // Call Stop() on SIGTERM or SIGINT (for `signet serve`; tests leave it off).
  bool handle_signals = false;
};

// --- Requests and responses ---------------------------------------------------------------------

struct Request {
  std::string method;  // as sent, e.g. "GET"
  std::string target;  // the raw origin-form request-target, e.g. "/a/b?x=1"
  std::string path;    // target up to '?', not percent-decoded (routes match it exactly)
  std::string route;   // the route pattern that matched, e.g. "/csc/v2/info"
  // Query parameters in order, percent-decoded ('+' as space); repeated names kept.
  std::vector<std::pair<std::string, std::string>> query;
  // Header fields in order, names lower-cased, values as sent; repeated names kept.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string client_address;  // "127.0.0.1:54321" / "[::1]:54321"
  // Lower-case hex SHA-256 of the DER of the verified TLS client certificate (mTLS); absent when
  // no client certificate was presented.
  std::optional<std::string> client_cert_sha256;
  std::string request_id;  // 32 lower-case hex characters, random, also sent as X-Request-Id

  // The first value of header `name` (any case), or nullopt.
  std::optional<std::string_view> Header(std::string_view name) const;
  // The first value of query parameter `name` (exact case), or nullopt.
  std::optional<std::string_view> QueryParam(std::string_view name) const;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  // Extra header fields. A handler may override Cache-Control; Content-Length, Connection,
  // Date, Server, Transfer-Encoding and X-Request-Id are set by the server and ignored here. A
  // name or value holding CR, LF or NUL turns the response into a 500 (header injection).
  std::vector<std::pair<std::string, std::string>> headers;
};

// HTTP status for a signet error code; the one place this mapping lives (STYLE.md "Errors"):
//   kInvalidArgument 400, kNotFound 404, kAlreadyExists 409, kPermissionDenied 403,
//   kUnauthenticated 401, kFailedPrecondition 400 (the request does not fit the current state,
//   e.g. a disabled key; CSC API v2 reports such cases as 400 invalid_request, and 412 is meant
//   for HTTP conditional headers), kResourceExhausted 429, kUnavailable 503, kDataLoss 500,
//   kInternal 500.
int HttpStatusFor(ErrorCode code);

// The minimal JSON error body of transport errors, shaped like CSC's:
// {"error":"<error>","error_description":"<description>"}. Strings are JSON-escaped.
Response JsonErrorResponse(int status, std::string_view error, std::string_view description);

// --- Routing ------------------------------------------------------------------------------------

using Handler = std::function<Response(const Request&)>;

// A bound on how many requests of some routes are admitted at once (queued for or running on the
// WorkerPool, or in the handler), so that routes anyone may call (the public log tiles) cannot take
// every worker from the signing routes. Routes given the same limit share it. Thread-safe.
class ConcurrencyLimit {
 public:
  explicit ConcurrencyLimit(size_t max_in_flight) : max_(max_in_flight) {}
  ConcurrencyLimit(const ConcurrencyLimit&) = delete;
  ConcurrencyLimit& operator=(const ConcurrencyLimit&) = delete;

  // Takes a slot if fewer than max_in_flight are taken; false otherwise.
  bool TryAcquire();
  void Release();
  size_t in_flight() const { return in_flight_.load(); }
  size_t max_in_flight() const { return max_; }

 private:
  const size_t max_;
  std::atomic<size_t> in_flight_{0};
};

struct RouteOptions {
  // Run the handler on the WorkerPool (it may block: HSM, database). When the pool is full the
  // client gets 503 + Retry-After at once and the handler is not called.
  bool blocking = false;
  // When set, a request is admitted only while the limit has a free slot, held until its handler
  // returns; otherwise the client gets 503 + Retry-After at once and the handler is not called.
  std::shared_ptr<ConcurrencyLimit> limit = nullptr;
};

// Routes are exact: method and path must equal the registered ones ("/a" and "/a/" differ). A
// pattern ending in "/*" matches every path that starts with the part before '*' (e.g.
// "/log/tile/*"); exact routes win over prefix routes and longer prefixes over shorter ones.
// Unknown path: 404; known path, other method: 405 with Allow. Build the router on one thread
// before Server::Create; it is read-only afterwards.
class Router {
 public:
  struct Route {
    std::string method;
    std::string pattern;
    Handler handler;
    RouteOptions options;
  };
  struct Match {
    const Route* route = nullptr;      // set when method and path match
    std::vector<std::string> allowed;  // methods registered for the path, when route is null
  };

  // Adds a route; InvalidArgument if (method, pattern) is already registered, the method is not
  // an HTTP token, the pattern does not start with '/', or `handler` is empty.
  Status Add(std::string method, std::string pattern, Handler handler, RouteOptions options = {});

  Match Find(std::string_view method, std::string_view path) const;

 private:
  std::vector<Route> routes_;
};

// --- Built-in endpoints -------------------------------------------------------------------------

struct HealthCheck {
  std::string name;               // e.g. "database", "hsm"
  std::function<Status()> check;  // must be thread-safe; may block (the route is blocking)
};

// GET /healthz: runs every check in order. All ok: 200 {"status":"ok","checks":{"name":"ok",...}};
// otherwise 503 {"status":"unavailable","checks":{"name":"<error code name>",...}}. Error
// messages are not shown (they may name paths); the code names which check failed. The message
// goes to the operational log (common/log.h) when a check starts failing or fails differently,
// and a line says when it passes again; a check that keeps failing the same way is logged once.
// The checks run once at a time: a probe arriving while they run gets the previous answer at
// once (so a flood of unauthenticated probes cannot occupy the workers); probes one after
// another each run them.
Status AddHealthzRoute(Router& router, std::vector<HealthCheck> checks);

// Decides whether a request may read /metrics: nullopt to allow it, else the answer to give.
using MetricsAccess = std::function<std::optional<Response>(const Request&)>;

// GET /metrics: `metrics.RenderPrometheus()` as text/plain; version=0.0.4. With `access`, the
// route runs on a worker (the check may reach the database) and answers only requests it allows;
// without, anyone may read. `metrics` must outlive
// the server.
Status AddMetricsRoute(Router& router, const Metrics& metrics, MetricsAccess access = nullptr);

// --- The server ---------------------------------------------------------------------------------

namespace internal {
class ServerCore;
}

// Records into `metrics`:
//   signet_http_requests_total{method,path,status}    counter; path = route pattern, or
//                                                       "unmatched"; method outside the common
//                                                       set = "OTHER"
//   signet_http_request_duration_seconds{method,path} histogram, request read to response ready
//   signet_http_connections_active                    gauge
//   signet_http_rejected_total{reason}                counter; reason = "connections", "workers",
//                                                       "route_limit" (a route's ConcurrencyLimit),
//                                                       "error" (a connection that could not be
//                                                       set up, e.g. no memory for its TLS state)
class Server {
 public:
  // Checks `options`, loads the certificate, key and client CAs and builds the TLS context; does
  // not bind. Fails with InvalidArgument (bad option, unreadable or bad PEM, key not matching the
  // certificate), PermissionDenied (key file readable by group or others), NotFound (missing
  // file). `metrics` must outlive the server.
  static Result<std::unique_ptr<Server>> Create(ServerOptions options, Router router,
                                                Metrics& metrics);
  // Stops (if started) and waits.
  ~Server();
  // Owns threads that point at it.
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens, starts the I/O threads and workers, and returns the bound port (the real
  // one when options.port is 0). Unavailable if the address cannot be bound; FailedPrecondition if
  // called twice. Call from one thread.
  Result<uint16_t> Start();

  // Begins a clean shutdown and returns at once: stops accepting, closes idle connections, lets
  // in-flight requests finish (their connections then close) and, after shutdown_grace, closes
  // whatever is left. Idempotent; thread-safe; may be called from a handler.
  void Stop();

  // Blocks until the server has stopped (after Stop, or a handled signal): every connection is
  // closed, every handler has returned and every thread has been joined. Returns at once if never
  // started. Must not be called from a handler.
  void Wait();

  // The bound port after a successful Start, else 0.
  uint16_t port() const;

 private:
  explicit Server(std::unique_ptr<internal::ServerCore> core);
  std::unique_ptr<internal::ServerCore> core_;
};

}  // namespace signet::server
