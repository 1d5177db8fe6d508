// Server (server.h): checks options, builds the TLS context, and delegates to ServerCore.

#include "server/server.h"

#include "server/internal/server_core.h"
#include "server/internal/tls_context.h"

namespace signet::server {
namespace {

Status CheckOptions(const ServerOptions& options) {
  auto positive = [](std::chrono::milliseconds d) { return d.count() > 0; };
  if (options.io_threads == 0 || options.io_threads > 256) {
    return InvalidArgument("io_threads must be between 1 and 256");
  }
  if (options.worker_threads == 0 || options.worker_threads > 1024) {
    return InvalidArgument("worker_threads must be between 1 and 1024");
  }
  if (options.max_header_bytes < 256 || options.max_header_bytes > 1024 * 1024) {
    return InvalidArgument("max_header_bytes must be between 256 and 1 MiB");
  }
  if (options.max_header_count == 0) return InvalidArgument("max_header_count must be positive");
  if (options.max_body_bytes > size_t{1} << 30) {
    return InvalidArgument("max_body_bytes must be at most 1 GiB");
  }
  if (options.max_connections == 0) return InvalidArgument("max_connections must be positive");
  if (options.max_connections_per_address == 0) {
    return InvalidArgument("max_connections_per_address must be positive");
  }
  if (!positive(options.idle_timeout) || !positive(options.request_timeout) ||
      !positive(options.handshake_timeout)) {
    return InvalidArgument("idle_timeout, request_timeout and handshake_timeout must be positive");
  }
  if (options.shutdown_grace.count() < 0 || options.retry_after.count() < 0) {
    return InvalidArgument("shutdown_grace and retry_after must not be negative");
  }
  return OkStatus();
}

}  // namespace

Result<std::unique_ptr<Server>> Server::Create(ServerOptions options, Router router,
                                               Metrics& metrics) {
  SIGNET_TRY(CheckOptions(options));
  SIGNET_ASSIGN_OR_RETURN(auto tls, internal::BuildTlsContext(options.tls));
  auto core = std::make_unique<internal::ServerCore>(std::move(options), std::move(router), metrics,
                                                     std::move(tls));
  return std::unique_ptr<Server>(new Server(std::move(core)));
}

Server::Server(std::unique_ptr<internal::ServerCore> core) : core_(std::move(core)) {}

Server::~Server() = default;  // ~ServerCore stops and waits

Result<uint16_t> Server::Start() { return core_->Start(); }
void Server::Stop() { core_->Stop(); }
void Server::Wait() { core_->Wait(); }
uint16_t Server::port() const { return core_->port(); }

}  // namespace signet::server
