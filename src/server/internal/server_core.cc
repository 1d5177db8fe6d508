// ServerCore and Session (internal/server_core.h): accepting, TLS, HTTP/1.1 reading with limits,
// dispatch to handlers (inline or on the WorkerPool), writing, keep-alive and shutdown.
//
// A Session is one TLS connection. Its life, all on its strand:
//   handshake -> [idle: wait for the first byte] -> read header -> read body -> handle -> write
//   -> (keep-alive) idle ... -> TLS close_notify -> close.
// Timeouts are armed on the tcp_stream (Beast closes the socket when one expires): the handshake
// gets handshake_timeout (or request_timeout if shorter), each request read request_timeout,
// waiting for a next request idle_timeout, the
// handler itself is not bounded (a blocking HSM call cannot be interrupted), and writing the
// response gets request_timeout again.
//
// Limits are enforced by the Beast parser before the handler sees anything: header_limit (431)
// and body_limit (413, checked against Content-Length as soon as the header is read, and against
// the bytes received for chunked bodies). The header-field count is checked after the header.
// Any transport error answer closes the connection, since the rest of the stream cannot be
// trusted to be aligned on a request boundary.

#include "server/internal/server_core.h"

#include <sys/resource.h>

#include <algorithm>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <utility>

#include "common/encoding.h"
#include "common/log.h"
#include "common/random.h"
#include "common/text.h"
#include "server/internal/http_util.h"
#include "server/internal/tls_context.h"

namespace signet::server::internal {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using boost::system::error_code;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr std::string_view kRequestsTotal = "signet_http_requests_total";
constexpr std::string_view kRequestDuration = "signet_http_request_duration_seconds";
constexpr std::string_view kConnectionsActive = "signet_http_connections_active";
constexpr std::string_view kRejectedTotal = "signet_http_rejected_total";
constexpr std::string_view kIdleEvictions = "signet_http_idle_evictions_total";
constexpr std::string_view kUnmatched = "unmatched";
// Longest wait for the peer's close_notify before the socket is simply closed.
constexpr std::chrono::milliseconds kTlsShutdownTimeout{1000};

std::string MethodLabel(std::string_view method) {
  for (std::string_view known : {"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"}) {
    if (method == known) return std::string(known);
  }
  return "OTHER";
}

std::string NewRequestId() {
  uint8_t raw[16];
  if (!RandomBytes(raw).ok()) {
    // getrandom(2) practically never fails; a unique-enough id still beats no answer.
    static std::atomic<uint64_t> counter{0};
    return "fallback-" + std::to_string(counter.fetch_add(1));
  }
  return HexEncode(ByteView(raw, sizeof raw));
}

std::string FormatEndpoint(const tcp::endpoint& endpoint) {
  std::string address = endpoint.address().to_string();
  if (endpoint.address().is_v6()) address = "[" + address + "]";
  return address + ":" + std::to_string(endpoint.port());
}

// What max_connections_per_address counts by: the IPv4 address (also when it arrives IPv4-mapped
// on an IPv6 socket), or the IPv6 /64. Raw bytes with a family tag; "" if the peer is unknown.
std::string AddressKey(const tcp::socket& socket) {
  error_code ec;
  tcp::endpoint endpoint = socket.remote_endpoint(ec);
  if (ec) return std::string();
  net::ip::address address = endpoint.address();
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    address = net::ip::make_address_v4(net::ip::v4_mapped, address.to_v6());
  }
  if (address.is_v4()) {
    auto bytes = address.to_v4().to_bytes();
    return "4" + std::string(bytes.begin(), bytes.end());
  }
  auto bytes = address.to_v6().to_bytes();
  return "6" + std::string(bytes.begin(), bytes.begin() + 8);
}

uint32_t ClampU32(size_t n) { return n > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(n); }

bool IsServerManagedHeader(std::string_view lower_name) {
  for (std::string_view name : {"content-length", "connection", "date", "server",
                                "transfer-encoding", "x-request-id", "content-type"}) {
    if (lower_name == name) return true;
  }
  return false;
}

}  // namespace

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(ServerCore& core, tcp::socket socket, uint64_t id, ServerCore::Admission admission,
          std::shared_ptr<IdleState> idle)
      : core_(core),
        id_(id),
        admission_(admission),
        idle_(std::move(idle)),
        rejecting_(admission != ServerCore::Admission::kServe),
        client_address_(FormatEndpointOf(socket)),
        stream_(std::move(socket), core.tls()),
        buffer_(core.options().max_header_bytes + 64 * 1024) {}

  ~Session() { core_.OnSessionClosed(id_); }

  // Bound to one socket and one place in the registry.
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  uint64_t id() const { return id_; }

  void Start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->DoHandshake(); });
  }

  // Shutdown has begun: close now if nothing is in progress, else after the current response.
  void NotifyStop() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      self->stop_requested_ = true;
      if (self->state_ == State::kIdle || self->state_ == State::kHandshake) {
        self->Lowest().cancel();
      }
    });
  }

  // The core took this connection's slot while it was idle (IdleState::kEvicted): stop waiting.
  void NotifyEvicted() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      if (self->state_ == State::kIdle) self->Lowest().cancel();
    });
  }

  // The grace period is over: close whatever is happening.
  void ForceClose() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      self->stop_requested_ = true;
      self->Close();
    });
  }

 private:
  enum class State { kHandshake, kIdle, kReading, kHandling, kWriting, kClosing, kClosed };

  static std::string FormatEndpointOf(const tcp::socket& socket) {
    error_code ec;
    tcp::endpoint endpoint = socket.remote_endpoint(ec);
    return ec ? std::string("unknown") : FormatEndpoint(endpoint);
  }

  beast::tcp_stream& Lowest() { return beast::get_lowest_layer(stream_); }

  void DoHandshake() {
    state_ = State::kHandshake;
    Lowest().expires_after(
        std::min(core_.options().handshake_timeout, core_.options().request_timeout));
    stream_.async_handshake(ssl::stream_base::server,
                            [self = shared_from_this()](error_code ec) { self->OnHandshake(ec); });
  }

  void OnHandshake(error_code ec) {
    if (ec) {
      core_.metrics().Increment("signet_tls_handshake_failures_total");
      return Close();
    }
    client_cert_sha256_ = VerifiedPeerCertificateSha256(stream_.native_handle());
    WaitForRequest();
  }

  // Waits up to idle_timeout for the first byte of the next request.
  void WaitForRequest() {
    if (stop_requested_) return ShutdownTls();
    state_ = State::kIdle;
    if (buffer_.size() > 0) return ReadHeader();  // a pipelined request is already here
    Lowest().expires_after(core_.options().idle_timeout);
    // Evictable from here until a byte arrives (served connections only; a refused one holds no
    // slot to give).
    if (!rejecting_) {
      idle_->idle_since_ns.store(SteadyClock::now().time_since_epoch().count());
      idle_->phase.store(IdleState::kIdle);
    }
    stream_.async_read_some(buffer_.prepare(4096),
                            [self = shared_from_this()](error_code ec, size_t n) {
                              self->buffer_.commit(n);
                              int idle = IdleState::kIdle;
                              if (!self->rejecting_ &&
                                  !self->idle_->phase.compare_exchange_strong(idle,
                                                                              IdleState::kBusy) &&
                                  idle == IdleState::kEvicted) {
                                // Its slot went to a newer connection; a request that arrived
                                // meanwhile is not read (as when an idle timeout closes).
                                return self->Close();
                              }
                              if (ec || n == 0) return self->Close();
                              self->ReadHeader();
                            });
  }

  void ReadHeader() {
    state_ = State::kReading;
    request_start_ = SteadyClock::now();
    parser_.emplace();
    header_fields_.reset();
    parser_->header_limit(ClampU32(core_.options().max_header_bytes));
    parser_->body_limit(core_.options().max_body_bytes);
    Lowest().expires_after(core_.options().request_timeout);
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(error_code ec) {
    if (ec) return OnReadError(ec);
    if (admission_ == ServerCore::Admission::kTooManyFromAddress) {
      core_.metrics().Increment(kRejectedTotal, {{"reason", "connections_per_address"}});
      return SendTransportError(503, "temporarily_unavailable",
                                "this client address has too many open connections to the server "
                                "(at most " +
                                    std::to_string(core_.options().max_connections_per_address) +
                                    "); close some or retry later",
                                /*retry_after=*/true);
    }
    if (rejecting_) {
      core_.metrics().Increment(kRejectedTotal, {{"reason", "connections"}});
      return SendTransportError(503, "temporarily_unavailable",
                                "the server has too many open connections; retry later",
                                /*retry_after=*/true);
    }
    size_t fields = 0;
    for (auto it = parser_->get().begin(); it != parser_->get().end(); ++it) ++fields;
    if (fields > core_.options().max_header_count) {
      return SendTransportError(431, "invalid_request",
                                "the request has more than " +
                                    std::to_string(core_.options().max_header_count) +
                                    " header fields",
                                false);
    }
    if (std::optional<std::string> wrong = FramingProblem(parser_->get())) {
      return SendTransportError(400, "invalid_request", *wrong, false);
    }
    header_fields_ = fields;
    if (parser_->is_done()) return OnRequest();
    // RFC 9110 §10.1.1: a client that sent "Expect: 100-continue" waits for the interim answer
    // before its body (curl does so for larger bodies, for a second), so it gets one once the
    // header is accepted. The request's deadline keeps running.
    if (parser_->get().version() >= 11 &&
        AsciiLower(std::string_view(parser_->get()[http::field::expect])) == "100-continue") {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      return net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                              [self = shared_from_this()](error_code write_ec, size_t) {
                                if (write_ec) return self->Close();
                                self->ReadBody();
                              });
    }
    ReadBody();
  }

  void ReadBody() {
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](error_code read_ec, size_t) {
                       if (read_ec) return self->OnReadError(read_ec);
                       self->OnRequest();
                     });
  }

  void OnReadError(error_code ec) {
    if (ec == http::error::buffer_overflow && header_fields_) {
      // Past the header: a chunk's size line or the trailer outgrew the read buffer.
      return SendTransportError(400, "invalid_request",
                                "a chunk header or the trailer of the request body is too long",
                                false);
    }
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      return SendTransportError(431, "invalid_request",
                                "the request header is larger than " +
                                    std::to_string(core_.options().max_header_bytes) + " bytes",
                                false);
    }
    if (ec == http::error::body_limit) {
      return SendTransportError(413, "invalid_request",
                                "the request body is larger than " +
                                    std::to_string(core_.options().max_body_bytes) + " bytes",
                                false);
    }
    if (ec.category() == http::make_error_code(http::error::bad_method).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message && !rejecting_) {
      return SendTransportError(400, "invalid_request", "malformed HTTP request", false);
    }
    Close();  // end of stream, timeout, TLS failure, cancellation
  }

  void OnRequest() {
    Lowest().expires_never();  // the handler is not bounded by the read timeout
    state_ = State::kHandling;
    auto& message = parser_->get();
    keep_alive_ = message.keep_alive();

    auto request = std::make_shared<Request>();
    request->method = std::string(message.method_string());
    request->target = std::string(message.target());
    request->request_id = NewRequestId();
    request->client_address = client_address_;
    request->client_cert_sha256 = client_cert_sha256_;
    // Beast adds the fields of a chunked body's trailer to the header's. signet uses no trailer
    // field, and a trailer must not stand in for a header (RFC 9110 §6.5.2: Authorization or
    // Content-Type sent after the body, past any proxy's header checks and the header limits).
    size_t fields = 0;
    for (auto it = message.begin(); it != message.end(); ++it) ++fields;
    if (header_fields_ && fields != *header_fields_) {
      return SendTransportError(400, "invalid_request",
                                "trailer fields after a chunked body are not accepted", false);
    }
    request->headers.reserve(core_.options().max_header_count);
    for (const auto& field : message) {
      request->headers.emplace_back(AsciiLower(field.name_string()), std::string(field.value()));
    }
    request->body = std::move(message.body());
    parser_.reset();
    method_label_ = MethodLabel(request->method);
    route_label_ = std::string(kUnmatched);
    request_id_ = request->request_id;

    auto target = ParseTarget(request->target);
    if (!target.ok()) {
      return SendResponse(JsonErrorResponse(400, "invalid_request", target.error().message()));
    }
    request->path = std::move(target->path);
    request->query = std::move(target->query);

    Router::Match match = core_.router().Find(request->method, request->path);
    if (match.route == nullptr) {
      if (match.allowed.empty()) {
        return SendResponse(JsonErrorResponse(404, "not_found", "no such endpoint"));
      }
      std::string allow;
      for (const std::string& m : match.allowed) allow += (allow.empty() ? "" : ", ") + m;
      Response response =
          JsonErrorResponse(405, "method_not_allowed", "use " + allow + " for this endpoint");
      response.headers.emplace_back("Allow", allow);
      return SendResponse(std::move(response));
    }
    const Router::Route* route = match.route;
    route_label_ = route->pattern;
    request->route = route->pattern;

    // The route's own admission bound, if it has one: its slot is held until the handler returns
    // (or the job is dropped unrun), so requests refused here never reach the worker queue.
    std::shared_ptr<LimitSlot> slot;
    if (const std::shared_ptr<ConcurrencyLimit>& limit = route->options.limit) {
      slot = std::make_shared<LimitSlot>();  // before the slot is taken: nothing can throw after
      if (!limit->TryAcquire()) {
        return SendResponse(Refused(
            "route_limit", "too many requests to this resource are in progress; retry later"));
      }
      slot->limit = limit;
    }

    if (!route->options.blocking) {
      Response response = CallHandler(*route, *request);
      slot.reset();
      return SendResponse(std::move(response));
    }

    auto job = [self = shared_from_this(), route, request, slot]() mutable {
      Response response = CallHandler(*route, *request);
      slot.reset();
      net::post(self->stream_.get_executor(), [self, response = std::move(response)]() mutable {
        self->SendResponse(std::move(response));
      });
    };
    if (!core_.pool().TrySubmit(std::move(job))) {
      return SendResponse(Refused("workers", "the server is busy; retry later"));
    }
  }

  // 503 + Retry-After for a request refused before any handler ran, counted by `reason`.
  Response Refused(std::string_view reason, std::string_view description) {
    core_.metrics().Increment(kRejectedTotal, {{"reason", std::string(reason)}});
    Response response = JsonErrorResponse(503, "temporarily_unavailable", description);
    response.headers.emplace_back("Retry-After",
                                  std::to_string(core_.options().retry_after.count()));
    return response;
  }

  // A taken ConcurrencyLimit slot, given back when the last holder lets go.
  struct LimitSlot {
    LimitSlot() = default;
    LimitSlot(const LimitSlot&) = delete;
    LimitSlot& operator=(const LimitSlot&) = delete;
    ~LimitSlot() {
      if (limit) limit->Release();
    }
    std::shared_ptr<ConcurrencyLimit> limit;  // set once its slot is taken
  };

  static Response CallHandler(const Router::Route& route, const Request& request) {
    std::string what = "an exception that is not a std::exception";
    try {
      return route.handler(request);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    LogLine(
        LogLevel::kError, "server",
        "request " + request.request_id + ": the handler of " + route.pattern + " threw " + what);
    return JsonErrorResponse(500, "server_error",
                             "internal error; request id " + request.request_id);
  }

  // Answers a request that could not be read or admitted, then closes the connection.
  void SendTransportError(int status, std::string_view error, const std::string& description,
                          bool retry_after) {
    Lowest().expires_never();
    parser_.reset();
    close_after_response_ = true;
    request_id_ = NewRequestId();
    method_label_ = "OTHER";
    route_label_ = std::string(kUnmatched);
    Response response = JsonErrorResponse(status, error, description);
    if (retry_after) {
      response.headers.emplace_back("Retry-After",
                                    std::to_string(core_.options().retry_after.count()));
    }
    SendResponse(std::move(response));
  }

  void SendResponse(Response response) {
    if (state_ == State::kClosed) return;  // closed while the handler ran
    // 204 and 304 have no body, nor a Content-Length or Content-Type (RFC 9110 §8.3, §8.6).
    const bool bodiless = response.status == 204 || response.status == 304;
    bool valid = response.status >= 200 && response.status <= 599 &&
                 !HasLineBreakOrNul(response.content_type) && !(bodiless && !response.body.empty());
    for (const auto& [name, value] : response.headers) {
      valid = valid && IsHttpToken(name) && !HasLineBreakOrNul(value);
    }
    if (!valid) {
      LogLine(LogLevel::kError, "server",
              "request " + request_id_ +
                  ": the handler answered a status or header that HTTP "
                  "cannot carry; sent 500 instead");
      response =
          JsonErrorResponse(500, "server_error", "internal error; request id " + request_id_);
    }

    double seconds = std::chrono::duration<double>(SteadyClock::now() - request_start_).count();
    core_.metrics().Increment(kRequestsTotal, {{"method", method_label_},
                                               {"path", route_label_},
                                               {"status", std::to_string(response.status)}});
    core_.metrics().Observe(kRequestDuration, {{"method", method_label_}, {"path", route_label_}},
                            seconds);

    bool keep_alive = keep_alive_ && !close_after_response_ && !stop_requested_;
    response_.emplace();
    auto& res = *response_;
    res.version(11);
    res.result(static_cast<unsigned>(response.status));
    res.set(http::field::server, "signet");
    if (!bodiless) res.set(http::field::content_type, response.content_type);
    res.set("X-Request-Id", request_id_);
    bool has_cache_control = false;
    for (const auto& [name, value] : response.headers) {
      std::string lower = AsciiLower(name);
      if (IsServerManagedHeader(lower)) continue;
      has_cache_control = has_cache_control || lower == "cache-control";
      res.insert(name, value);
    }
    if (!has_cache_control) res.set(http::field::cache_control, "no-store");
    res.set(http::field::strict_transport_security, "max-age=31536000");
    res.set("X-Content-Type-Options", "nosniff");
    res.set("X-Frame-Options", "DENY");
    res.set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'");
    res.set("Referrer-Policy", "no-referrer");
    res.body() = std::move(response.body);
    res.keep_alive(keep_alive);
    if (!bodiless) res.prepare_payload();  // it would add "Content-Length: 0" to a 204

    state_ = State::kWriting;
    Lowest().expires_after(core_.options().request_timeout);
    http::async_write(stream_, res, [self = shared_from_this(), keep_alive](error_code ec, size_t) {
      self->response_.reset();
      if (ec) return self->Close();
      if (!keep_alive) return self->ShutdownTls();
      self->WaitForRequest();
    });
  }

  // Sends close_notify and waits briefly for the peer's, then closes.
  void ShutdownTls() {
    if (state_ == State::kClosing || state_ == State::kClosed) return;
    state_ = State::kClosing;
    Lowest().expires_after(
        std::min<std::chrono::milliseconds>(kTlsShutdownTimeout, core_.options().request_timeout));
    stream_.async_shutdown([self = shared_from_this()](error_code) { self->Close(); });
  }

  void Close() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    error_code ec;
    Lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
    Lowest().close();
  }

  ServerCore& core_;
  const uint64_t id_;
  const ServerCore::Admission admission_;
  const std::shared_ptr<IdleState> idle_;  // shared with the registry
  const bool rejecting_;  // over a connection limit: only ever answers 503
  const std::string client_address_;

  // Everything below is touched only on the stream's strand.
  beast::ssl_stream<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::string_body>> response_;
  std::optional<std::string> client_cert_sha256_;
  State state_ = State::kHandshake;
  bool keep_alive_ = false;
  // The number of header fields, once the header is read (trailer fields would add to them).
  std::optional<size_t> header_fields_;
  bool close_after_response_ = false;
  bool stop_requested_ = false;
  SteadyClock::time_point request_start_ = SteadyClock::now();
  std::string method_label_ = "OTHER";
  std::string route_label_{kUnmatched};
  std::string request_id_;
};

// --- ServerCore -----------------------------------------------------------------------------

ServerCore::ServerCore(ServerOptions options, Router router, Metrics& metrics,
                       std::unique_ptr<ssl::context> tls)
    : options_(std::move(options)),
      router_(std::move(router)),
      metrics_(metrics),
      tls_(std::move(tls)),
      control_(net::make_strand(io_)),
      acceptor_(control_),
      accept_retry_timer_(control_),
      grace_timer_(control_),
      signals_(control_) {
  metrics_.DeclareCounter(kRequestsTotal, "HTTP requests answered, by method, route and status.");
  metrics_.DeclareHistogram(kRequestDuration,
                            "Time from reading an HTTP request to its response being ready.",
                            DefaultLatencyBuckets());
  metrics_.DeclareGauge(kConnectionsActive, "Open HTTPS connections.");
  metrics_.DeclareCounter(
      kRejectedTotal,
      "Requests answered 503 for overload, by reason (connections, connections_per_address, "
      "workers, route_limit).");
  metrics_.DeclareCounter("signet_tls_handshake_failures_total", "Failed TLS handshakes.");
  metrics_.DeclareCounter(kIdleEvictions,
                          "Idle kept-alive connections closed at max_connections to admit a new "
                          "one.");
}

ServerCore::~ServerCore() {
  Stop();
  Wait();
}

// Makes sure this process may open a descriptor for every connection the server admits, plus the
// ones it keeps open to refuse, plus kDescriptorReserve for everything else (the database and its
// WAL, the HSM's files, the log, the listening socket, epoll), by raising the soft RLIMIT_NOFILE
// up to the hard one. Without this, a soft limit of 1024 (the usual default) runs out before the
// default 1024 connections: accept fails with EMFILE, clients wait unanswered in the backlog, and
// so does every file the service opens meanwhile (a checkpoint, a database spill).
Result<size_t> FitConnectionsToDescriptors(size_t max_connections) {
  const rlim_t overhead = kMaxRejectingConnections + kDescriptorReserve;
  const rlim_t need = static_cast<rlim_t>(max_connections) + overhead;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return Unavailable(std::string("cannot read the open-file limit: ") + std::strerror(errno));
  }
  if (limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur >= need) return max_connections;
  size_t fits = max_connections;
  rlim_t target = need;
  if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < need) {
    // A container or a shell's "ulimit -n 1024" often sets the hard limit too: the cap is lowered
    // to what fits (with a warning) rather than the service refusing to start on its defaults.
    fits = limit.rlim_max > overhead ? static_cast<size_t>(limit.rlim_max - overhead) : 0;
    if (fits < kMinConnections) {
      return FailedPrecondition(
          "this process may open at most " + std::to_string(limit.rlim_max) +
          " files (hard RLIMIT_NOFILE, 'ulimit -Hn'), too few for a server: it needs " +
          std::to_string(overhead + kMinConnections) +
          " or more; raise the limit (LimitNOFILE= in a systemd unit, --ulimit nofile= for "
          "docker)");
    }
    target = limit.rlim_max;
  }
  if (target > limit.rlim_cur) {
    rlimit raised = limit;
    raised.rlim_cur = target;
    if (setrlimit(RLIMIT_NOFILE, &raised) != 0) {
      return Unavailable("cannot raise the open-file limit from " + std::to_string(limit.rlim_cur) +
                         " to " + std::to_string(target) + ": " + std::strerror(errno));
    }
  }
  if (fits < max_connections) {
    LogLine(LogLevel::kWarning, "server",
            "max_connections lowered from " + std::to_string(max_connections) + " to " +
                std::to_string(fits) + ": this process may open at most " +
                std::to_string(limit.rlim_max) +
                " files (hard RLIMIT_NOFILE); raise it (LimitNOFILE=, docker --ulimit nofile=) or "
                "set [limits] max_connections to at most " +
                std::to_string(fits));
  }
  return fits;
}

Result<uint16_t> ServerCore::Start() {
  {
    std::lock_guard lock(mu_);
    if (started_ || stopping_) return FailedPrecondition("the server was already started");
    started_ = true;
  }
  SIGNET_ASSIGN_OR_RETURN(max_connections_, FitConnectionsToDescriptors(options_.max_connections));
  error_code ec;
  net::ip::address address = net::ip::make_address(options_.bind_address, ec);
  if (ec)
    return InvalidArgument("bind address '" + options_.bind_address + "' is not an IP address");
  tcp::endpoint endpoint(address, options_.port);
  std::string where = FormatEndpoint(endpoint);
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return Unavailable("cannot listen on " + where + ": " + ec.message());
  port_ = acceptor_.local_endpoint(ec).port();
  if (ec) return Unavailable("cannot read the bound port: " + ec.message());

  try {
    pool_ = std::make_unique<WorkerPool>(options_.worker_threads, options_.worker_queue_capacity);
  } catch (const std::exception& e) {
    return Unavailable(std::string("cannot start worker threads: ") + e.what());
  }
  work_ = std::make_unique<net::executor_work_guard<net::io_context::executor_type>>(
      io_.get_executor());
  if (options_.handle_signals) {
    signals_.add(SIGTERM, ec);
    if (!ec) signals_.add(SIGINT, ec);
    if (ec) return Unavailable("cannot handle SIGTERM/SIGINT: " + ec.message());
    signals_.async_wait([this](error_code wait_ec, int) {
      if (!wait_ec) Stop();
    });
  }
  net::dispatch(control_, [this] { DoAccept(); });

  std::lock_guard join_lock(join_mu_);
  try {
    for (size_t i = 0; i < std::max<size_t>(options_.io_threads, 1); ++i) {
      threads_.emplace_back([this] { RunIoThread(); });
    }
  } catch (const std::exception& e) {
    // Threads already started keep serving; Stop/Wait end them.
    if (threads_.empty()) {
      return Unavailable(std::string("cannot start I/O threads: ") + e.what());
    }
  }
  return port_.load();
}

void ServerCore::RunIoThread() {
  for (;;) {
    try {
      io_.run();
      return;
    } catch (const std::exception& e) {
      // Handlers are written not to throw; one that does (bad_alloc) must not end the thread.
      LogLine(LogLevel::kError, "server", std::string("an I/O thread caught: ") + e.what());
    } catch (...) {
      LogLine(LogLevel::kError, "server", "an I/O thread caught an exception of unknown type");
    }
  }
}

void ServerCore::DoAccept() {
  acceptor_.async_accept(net::make_strand(io_),
                         net::bind_executor(control_, [this](error_code ec, tcp::socket socket) {
                           OnAccept(ec, std::move(socket));
                         }));
}

void ServerCore::OnAccept(error_code ec, tcp::socket socket) {
  if (!acceptor_.is_open()) return;
  if (ec) {
    // Typically EMFILE/ENFILE: pause instead of spinning on the error.
    accept_retry_timer_.expires_after(std::chrono::milliseconds(50));
    accept_retry_timer_.async_wait([this](error_code wait_ec) {
      if (!wait_ec && acceptor_.is_open()) DoAccept();
    });
    return;
  }
  // The next accept is armed before this connection is set up: setting it up can throw (a TLS
  // stream that cannot be made, memory), and a throw past a DoAccept at the end would leave the
  // process running but accepting nothing, for good.
  DoAccept();
  error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);

  std::shared_ptr<Session> session;
  std::shared_ptr<Session> unregistered;  // made but not registered: dropped below, unlocked
  bool failed = false;
  Admission admission = Admission::kServe;
  std::string address_key = AddressKey(socket);
  std::shared_ptr<Session> evicted;  // told, and released, after mu_
  bool evicted_slot = false;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;  // socket closes as it goes out of scope
    if (auto it = per_address_.find(address_key);
        it != per_address_.end() && it->second >= options_.max_connections_per_address) {
      admission = Admission::kTooManyFromAddress;
    } else if (active_ >= max_connections_) {
      // Like a kept-alive connection's idle timeout, sooner: a connection waiting for nothing
      // gives its slot to one that has a request, rather than that one being refused.
      evicted_slot = EvictIdleLocked(&evicted);
      if (!evicted_slot) admission = Admission::kTooManyConnections;
    }
    const bool rejecting = admission != Admission::kServe;
    if (rejecting && rejecting_ >= kMaxRejectingConnections) {
      socket.close(ignored);
    } else {
      uint64_t id = next_session_id_++;
      try {
        // A constructor that throws closes the socket and never runs ~Session.
        auto idle = std::make_shared<IdleState>();
        session = std::make_shared<Session>(*this, std::move(socket), id, admission, idle);
        // Counted from here: ~Session uncounts it (OnSessionClosed, which takes mu_). The map
        // insertions come first: if one throws, nothing is counted yet and the catch below lets
        // ~Session run unlocked, whose OnSessionClosed then finds no registration.
        Registered registered{session, address_key, admission, std::move(idle)};
        if (!rejecting) ++per_address_[address_key];
        try {
          sessions_.emplace(id, std::move(registered));
        } catch (...) {
          if (!rejecting) UncountAddressLocked(address_key);
          throw;
        }
        if (rejecting) {
          ++rejecting_;
        } else {
          ++active_;
        }
      } catch (...) {
        unregistered = std::move(session);
        failed = true;
      }
    }
  }
  if (admission == Admission::kServe && evicted_slot) metrics_.Increment(kIdleEvictions);
  if (evicted != nullptr) {
    evicted->NotifyEvicted();
    evicted.reset();
  }
  if (unregistered != nullptr) {
    metrics_.AddGauge(kConnectionsActive, {}, 1);  // ~Session takes it off again
    unregistered.reset();
  }
  if (session == nullptr) {
    metrics_.Increment(kRejectedTotal, {{"reason", failed ? "error"
                                                   : admission == Admission::kTooManyFromAddress
                                                       ? "connections_per_address"
                                                       : "connections"}});
  } else {
    metrics_.AddGauge(kConnectionsActive, {}, 1);
    session->Start();
  }
}

void ServerCore::UncountAddressLocked(const std::string& address_key) {
  auto it = per_address_.find(address_key);
  if (it != per_address_.end() && --it->second == 0) per_address_.erase(it);
}

bool ServerCore::EvictIdleLocked(std::shared_ptr<Session>* evicted) {
  // Evicted connections still hold a descriptor until they have closed: counted with the refused
  // ones, within the same reserve.
  if (rejecting_ >= kMaxRejectingConnections) return false;
  const auto min_idle = std::chrono::duration_cast<SteadyClock::duration>(
      std::min<std::chrono::milliseconds>(kMinIdleBeforeEviction, options_.idle_timeout / 4));
  const int64_t idle_before = (SteadyClock::now() - min_idle).time_since_epoch().count();
  // The one idle the longest is the least likely to be about to send a request. A linear scan,
  // only at the cap.
  Registered* oldest = nullptr;
  int64_t oldest_since = 0;
  for (auto& [id, registered] : sessions_) {
    if (registered.counted_as != Admission::kServe) continue;
    if (registered.idle->phase.load() != IdleState::kIdle) continue;
    const int64_t since = registered.idle->idle_since_ns.load();
    if (since > idle_before) continue;  // idle too briefly
    if (oldest == nullptr || since < oldest_since) {
      oldest = &registered;
      oldest_since = since;
    }
  }
  if (oldest == nullptr) return false;
  int idle = IdleState::kIdle;
  if (!oldest->idle->phase.compare_exchange_strong(idle, IdleState::kEvicted)) {
    return false;  // a request arrived just now; it stays, the new one is refused
  }
  // From here the evicted Session closes without reading another request, whatever else
  // happens: its slot is free now.
  UncountAddressLocked(oldest->address_key);
  --active_;
  ++rejecting_;
  oldest->counted_as = Admission::kTooManyConnections;
  *evicted = oldest->session.lock();  // null if it is being destroyed already: nothing to tell
  return true;
}

void ServerCore::OnSessionClosed(uint64_t id) {
  bool post_check = false;
  {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(id);
    if (it == sessions_.end()) {
      // Never registered (OnAccept failed part-way and counted nothing); gauge only.
    } else {
      if (it->second.counted_as == Admission::kServe) {
        UncountAddressLocked(it->second.address_key);
        --active_;
      } else {
        --rejecting_;
      }
      sessions_.erase(it);
    }
    post_check = stopping_ && sessions_.empty() && !io_finished_;
  }
  metrics_.AddGauge(kConnectionsActive, {}, -1);
  if (post_check) net::post(control_, [this] { CheckDrainedOnControl(); });
}

std::vector<std::weak_ptr<Session>> ServerCore::SnapshotSessions() {
  std::lock_guard lock(mu_);
  std::vector<std::weak_ptr<Session>> out;
  out.reserve(sessions_.size());
  for (const auto& [id, registered] : sessions_) out.push_back(registered.session);
  return out;
}

void ServerCore::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    if (!started_) return;
  }
  net::post(control_, [this] { BeginStopOnControl(); });
  for (const auto& weak : SnapshotSessions()) {
    if (auto session = weak.lock()) session->NotifyStop();
  }
}

void ServerCore::BeginStopOnControl() {
  error_code ignored;
  acceptor_.close(ignored);
  accept_retry_timer_.cancel();
  // Not only cancelled: cleared, which gives SIGTERM and SIGINT back their default action. If a
  // request hangs (a stuck HSM call) the drain can outlast the grace period; a second signal then
  // ends the process instead of being swallowed, so the operator is not left with only SIGKILL.
  signals_.cancel(ignored);
  signals_.clear(ignored);
  grace_timer_.expires_after(options_.shutdown_grace);
  grace_timer_.async_wait([this](error_code ec) {
    if (!ec) ForceCloseAll();
  });
  CheckDrainedOnControl();
}

void ServerCore::ForceCloseAll() {
  for (const auto& weak : SnapshotSessions()) {
    if (auto session = weak.lock()) session->ForceClose();
  }
}

void ServerCore::CheckDrainedOnControl() {
  {
    std::lock_guard lock(mu_);
    if (!sessions_.empty()) return;
  }
  grace_timer_.cancel();
  work_.reset();  // io_.run() returns in every thread once the last handlers have run
}

void ServerCore::Wait() {
  std::lock_guard join_lock(join_mu_);
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
  {
    std::lock_guard lock(mu_);
    io_finished_ = true;
  }
  if (pool_) pool_->Shutdown();
}

}  // namespace signet::server::internal
