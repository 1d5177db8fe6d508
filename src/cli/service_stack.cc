#include "cli/service_stack.h"

#include <utility>

#include "cli/account_audit.h"
#include "server/api/api.h"
#include "server/csc/csc_api.h"

namespace signet::cli {

ServiceStack::ServiceStack(ServicePorts ports, ServiceStackOptions options)
    : store_(ports.store),
      clock_(ports.clock),
      key_store_(ports.key_store, metrics_),
      sealer_(ports.sealer, metrics_),
      audit_(ports.audit, &ports.store, metrics_),
      hasher_(options.argon2),
      accounts_(store_, sealer_, hasher_, totp_, clock_, options.accounts,
                MakeAccountAuditSink(store_, audit_, std::move(options.after_account_event))),
      signing_(key_store_, store_, clock_, audit_, options.signing),
      keys_(key_store_, store_, clock_, audit_, std::move(ports.token)),
      housekeeper_(StoreHousekeepingTasks(store_), clock_, metrics_, options.housekeeping.interval),
      housekeeping_enabled_(options.housekeeping.enabled) {
  DeclareServiceMetrics(metrics_);
}

Result<std::unique_ptr<ServiceStack>> ServiceStack::Create(ServicePorts ports,
                                                           ServiceStackOptions options) {
  server::ServerOptions server_options = options.server;
  std::unique_ptr<ServiceStack> stack(new ServiceStack(std::move(ports), std::move(options)));
  SIGNET_TRY(stack->BuildServer(std::move(server_options)));
  return stack;
}

Status ServiceStack::BuildServer(server::ServerOptions options) {
  server::Router router;
  // Through the counting decorator, so a failing health check shows in signet_hsm_errors_total.
  SIGNET_TRY(server::AddHealthzRoute(router, {{"database", [this] { return store_.Ping(); }},
                                              {"hsm", [this]() -> Status {
                                                 auto token = key_store_.DescribeToken();
                                                 if (!token.ok()) return std::move(token).error();
                                                 return OkStatus();
                                               }}}));
  SIGNET_TRY(server::AddMetricsRoute(router, metrics_));
  SIGNET_TRY(server::csc::RegisterCscRoutes(
      router, server::csc::CscDependencies{accounts_, signing_, keys_, clock_}));
  SIGNET_TRY(server::api::RegisterApiRoutes(
      router, server::api::ApiDependencies{accounts_, signing_, keys_}));
  SIGNET_ASSIGN_OR_RETURN(server_,
                          server::Server::Create(std::move(options), std::move(router), metrics_));
  return OkStatus();
}

ServiceStack::~ServiceStack() {
  Stop();
  Wait();
}

Result<uint16_t> ServiceStack::Start() {
  SIGNET_ASSIGN_OR_RETURN(uint16_t bound, server_->Start());
  if (housekeeping_enabled_) {
    // Cannot fail here: Start succeeded once only, and so did the server's.
    Status started = housekeeper_.Start();
    if (!started.ok()) {
      server_->Stop();
      server_->Wait();
      return started.error();
    }
  }
  return bound;
}

void ServiceStack::Stop() {
  if (server_) server_->Stop();
  housekeeper_.RequestStop();
}

void ServiceStack::Wait() {
  if (server_) server_->Wait();
  housekeeper_.Stop();
}

uint16_t ServiceStack::port() const { return server_ ? server_->port() : 0; }

}  // namespace signet::cli
