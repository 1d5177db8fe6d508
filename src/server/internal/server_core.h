// ServerCore: what Server (server.h) delegates to. It owns the io_context, the acceptor, the TLS
// context, the worker pool and the registry of live connections (Session, defined in
// server_core.cc). Private to server/.
//
// Threads and locks:
//  - Acceptor, grace timer and signal set are only touched on `control_` (a strand).
//  - Each Session is only touched on its own strand, except its destructor.
//  - mu_ guards the connection registry and the counters that admission and shutdown read.
//  - Lock order: mu_ is never held while calling into a Session, Metrics or a handler.
#pragma once

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "server/metrics.h"
#include "server/server.h"
#include "server/worker_pool.h"

namespace signet::server::internal {

class Session;

// Whether a served connection waits for the first byte of a request (after its handshake or a
// kept-alive response), shared by the Session and the registry so that OnAccept can reclaim an
// idle connection at the cap without calling into the Session under mu_. Exactly one of the
// Session (a byte arrived: kIdle -> kBusy) and OnAccept (kIdle -> kEvicted) wins the change.
struct IdleState {
  enum : int { kBusy, kIdle, kEvicted };
  std::atomic<int> phase{kBusy};
  std::atomic<int64_t> idle_since_ns{0};  // steady_clock, when phase last became kIdle
};

// A connection idle for less than this (after its handshake or its last response) is not
// evicted at the cap: its client may be sending its next request at this moment, which would be
// lost with the connection, where a newcomer refused with 503 and Retry-After simply retries.
inline constexpr std::chrono::milliseconds kMinIdleBeforeEviction{2000};
// At most this many connections beyond max_connections are kept open just to be told 503.
inline constexpr size_t kMaxRejectingConnections = 64;
// Descriptors kept for everything but connections (database, HSM, log files, sockets, epoll).
inline constexpr size_t kDescriptorReserve = 256;
// Below this many connections a server is not worth starting.
inline constexpr size_t kMinConnections = 16;

// Raises the soft RLIMIT_NOFILE (up to the hard one) so that max_connections connections, the
// refused ones and kDescriptorReserve fit, and returns the connection cap that fits: when the hard
// limit is too low, max_connections lowered to it, with a warning in the operational log.
// FailedPrecondition if not even kMinConnections fit. Called by ServerCore::Start.
Result<size_t> FitConnectionsToDescriptors(size_t max_connections);

class ServerCore {
 public:
  ServerCore(ServerOptions options, Router router, Metrics& metrics,
             std::unique_ptr<boost::asio::ssl::context> tls);
  ~ServerCore();
  // Threads and sessions point at this object.
  ServerCore(const ServerCore&) = delete;
  ServerCore& operator=(const ServerCore&) = delete;

  Result<uint16_t> Start();
  void Stop();
  void Wait();
  uint16_t port() const { return port_.load(); }

  // For Session.
  const ServerOptions& options() const { return options_; }
  const Router& router() const { return router_; }
  Metrics& metrics() { return metrics_; }
  WorkerPool& pool() { return *pool_; }
  boost::asio::ssl::context& tls() { return *tls_; }
  // Why a connection is only ever answered 503 (kServe: it is served).
  enum class Admission { kServe, kTooManyConnections, kTooManyFromAddress };
  // Called by ~Session.
  void OnSessionClosed(uint64_t id);

 private:
  void DoAccept();
  void OnAccept(boost::system::error_code ec, boost::asio::ip::tcp::socket socket);
  void BeginStopOnControl();
  void ForceCloseAll();
  void CheckDrainedOnControl();
  void RunIoThread();
  std::vector<std::weak_ptr<Session>> SnapshotSessions();
  void UncountAddressLocked(const std::string& address_key);  // mu_ held
  // At the connection cap: takes the slot of the served connection idle the longest, if it has
  // been idle for at least kMinIdleBeforeEviction (or a quarter of idle_timeout if less), which
  // then closes (counted as refused until it has). Returns whether a slot was freed; the evicted
  // Session, if still alive, goes to `evicted`, to be told after mu_ is released (releasing it
  // may run ~Session, which takes mu_).
  bool EvictIdleLocked(std::shared_ptr<Session>* evicted);  // mu_ held

  // Constant after construction.
  const ServerOptions options_;
  // options_.max_connections, or less if the open-file limit holds fewer; set in Start, before
  // the first accept.
  size_t max_connections_ = 0;
  const Router router_;
  Metrics& metrics_;

  struct Registered {
    std::weak_ptr<Session> session;
    std::string address_key;  // AddressKey of the peer; counted in per_address_ if served
    Admission counted_as;     // kServe: in active_ and per_address_; else in rejecting_
    std::shared_ptr<IdleState> idle;
  };

  mutable std::mutex mu_;
  std::map<uint64_t, Registered> sessions_;  // guarded by mu_
  // Served (not rejecting) sessions per AddressKey; guarded by mu_. No zero entries.
  std::map<std::string, size_t> per_address_;
  uint64_t next_session_id_ = 1;                         // guarded by mu_
  size_t active_ = 0;                                    // guarded by mu_; counted sessions
  size_t rejecting_ = 0;                                 // guarded by mu_; 503-only sessions
  bool started_ = false;                                 // guarded by mu_
  bool stopping_ = false;                                // guarded by mu_
  bool io_finished_ = false;                             // guarded by mu_; io_context is done

  std::atomic<uint16_t> port_{0};

  // Declared after the registry so that handlers still queued in the io_context (which may own
  // the last reference to a Session) are destroyed while the registry is alive.
  boost::asio::io_context io_;
  std::unique_ptr<boost::asio::ssl::context> tls_;
  boost::asio::strand<boost::asio::io_context::executor_type> control_;
  boost::asio::ip::tcp::acceptor acceptor_;       // on control_
  boost::asio::steady_timer accept_retry_timer_;  // on control_
  boost::asio::steady_timer grace_timer_;         // on control_
  boost::asio::signal_set signals_;               // on control_
  // Keeps io_.run() from returning between Start and the end of the stop sequence.
  std::unique_ptr<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;

  std::unique_ptr<WorkerPool> pool_;  // created by Start
  std::mutex join_mu_;                // serialises Wait
  std::vector<std::thread> threads_;  // guarded by join_mu_ (written by Start before any Wait)
};

}  // namespace signet::server::internal
