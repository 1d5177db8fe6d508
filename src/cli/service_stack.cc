#include "cli/service_stack.h"

#include <utility>

#include "cli/account_audit.h"
#include "common/log.h"
#include "server/api/api.h"
#include "server/csc/csc_api.h"
#include "server/log/log_routes.h"

namespace signet::cli {
namespace {

// Every event the services record goes through the sequencer into the log on ports.store (a
// decorate_audit hook only wraps that sink), committed durably before Record returns.
service::SigningOptions AuditCommitsToStore(service::SigningOptions options) {
  options.audit_commits_to_store = true;
  return options;
}

// Housekeeping also logs the counts of anonymous rejections whose minute has ended.
std::vector<HousekeepingTask> WithHeldRejections(std::vector<HousekeepingTask> tasks,
                                                 service::AccountService& accounts) {
  tasks.push_back(
      {"held_rejections", [&accounts](TimePoint now) { return accounts.LogHeldRejections(now); }});
  return tasks;
}

// ... and watches the wall clock for steps, which shift every time the service relies on.
std::vector<HousekeepingTask> WithClockSteps(std::vector<HousekeepingTask> tasks,
                                             service::AuditSink& audit, const Clock& clock) {
  tasks.push_back(ClockStepTask(audit, clock));
  return tasks;
}

}  // namespace

ServiceStack::ServiceStack(ServicePorts ports, ServiceStackOptions options)
    : store_(ports.store),
      clock_(ports.clock),
      key_store_(ports.key_store, metrics_),
      sealer_(ports.sealer, metrics_),
      sequencer_(ports.store),
      log_sink_([this](std::vector<store::LogEntryAppend> entries) -> Result<int64_t> {
        // An entry the log could not get a checkpoint over soon enough is refused, and with it
        // what it records (audit invariant).
        if (integrator_ != nullptr) SIGNET_TRY(integrator_->AdmitAppend());
        return sequencer_.Append(std::move(entries));
      }),
      audit_(options.decorate_audit ? options.decorate_audit(log_sink_) : log_sink_, &ports.store,
             metrics_),
      hasher_(options.argon2),
      accounts_(store_, sealer_, hasher_, totp_, clock_, options.accounts,
                MakeAccountAuditSink(store_, audit_, std::move(options.after_account_event))),
      signing_(key_store_, store_, clock_, audit_, AuditCommitsToStore(options.signing)),
      keys_(key_store_, store_, clock_, audit_, std::move(ports.token)),
      housekeeper_(WithClockSteps(WithHeldRejections(StoreHousekeepingTasks(store_), accounts_),
                                  audit_, clock_),
                   clock_, metrics_, options.housekeeping.interval),
      housekeeping_enabled_(options.housekeeping.enabled),
      log_background_(options.log.background),
      metrics_public_(options.metrics_public),
      checkpoint_interval_(options.log.checkpoint_interval),
      verify_interval_(options.log.verify_interval) {
  DeclareServiceMetrics(metrics_);
}

Result<std::unique_ptr<ServiceStack>> ServiceStack::Create(ServicePorts ports,
                                                           ServiceStackOptions options) {
  server::ServerOptions server_options = options.server;
  LogOptions log_options = options.log;
  std::unique_ptr<ServiceStack> stack(new ServiceStack(std::move(ports), std::move(options)));
  SIGNET_TRY(stack->BuildLog(log_options));
  SIGNET_TRY(stack->BuildServer(std::move(server_options), log_options));
  return stack;
}

Status ServiceStack::BuildLog(const LogOptions& options) {
  audit::IntegratorOptions integrator;
  integrator.origin = options.origin;
  integrator.interval = options.checkpoint_interval;
  if (!options.witness_file.empty()) {
    integrator.witness = audit::FileCheckpointWitness(options.witness_file);
  }
  const std::string origin = options.origin;
  integrator.render_checkpoint_entry = [origin](int64_t index,
                                                const store::LogCheckpointRow& checkpoint) {
    return service::RenderCheckpointEntry(index, checkpoint, origin);
  };
  SIGNET_ASSIGN_OR_RETURN(integrator_,
                          audit::Integrator::Create(store_, key_store_, clock_, integrator));
  // Wakes the integrator early when many entries wait (1024 by default) instead of at the tick.
  audit::Integrator* wake = integrator_.get();
  sequencer_.SetOnAppended([wake](int64_t new_size) { wake->Notify(new_size); });
  server::log::DeclareLogMetrics(metrics_);
  audit::LogMonitorOptions monitor;
  monitor.on_check = [this, was_failing = false](const audit::LogCheck& check) mutable {
    server::log::RecordLogMetrics(check, metrics_);
    server::log::LogCheckLine(check, was_failing);
  };
  // The key the integrator has just checked against the HSM (EnsureLogKey), as it checked it.
  monitor.pinned_key = integrator_->log_key();
  monitor_ = std::make_unique<audit::LogMonitor>(store_, clock_, std::move(monitor));
  return OkStatus();
}

Status ServiceStack::BuildServer(server::ServerOptions options, const LogOptions& log) {
  server::Router router;
  // Through the counting decorator, so a failing health check shows in signet_hsm_errors_total.
  std::vector<server::HealthCheck> checks = {{"database", [this] { return store_.Ping(); }},
                                             {"hsm", [this]() -> Status {
                                                auto token = key_store_.DescribeToken();
                                                if (!token.ok()) return std::move(token).error();
                                                return OkStatus();
                                              }}};
  // The monitor's verdict, when it runs (log.background).
  if (log_background_) {
    checks.push_back(server::log::LogHealthCheck(*monitor_));
    // The integrator's rounds: a stuck or refusing integrator would otherwise go unseen while
    // the unsigned tail grows (the monitor checks only what is signed).
    checks.push_back({"log_integrator", [this] { return integrator_->Health(); }});
  }
  SIGNET_TRY(server::AddHealthzRoute(router, std::move(checks)));
  SIGNET_TRY(server::AddMetricsRoute(
      router, metrics_,
      metrics_public_ ? server::MetricsAccess() : server::api::MetricsReaders(accounts_)));
  SIGNET_TRY(server::csc::RegisterCscRoutes(
      router, server::csc::CscDependencies{
                  accounts_, signing_, keys_, clock_, "signet",
                  // Half the workers at most hash passwords; the rest stay for signing.
                  std::make_shared<server::ConcurrencyLimit>(
                      std::max<size_t>(1, options.worker_threads / 2))}));
  SIGNET_TRY(server::api::RegisterApiRoutes(
      router, server::api::ApiDependencies{accounts_, signing_, keys_}));
  SIGNET_TRY(server::log::RegisterLogRoutes(
      router, server::log::LogRouteDependencies{store_, accounts_, log.public_read,
                                                std::max<size_t>(1, options.worker_threads / 4)}));
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
  if (log_background_) {
    integrator_->Start();
    Status monitoring = monitor_->Start(verify_interval_);
    if (!monitoring.ok()) {
      integrator_->Stop();
      housekeeper_.Stop();
      server_->Stop();
      server_->Wait();
      return monitoring.error();
    }
    log_started_ = true;
  }
  return bound;
}

void ServiceStack::Stop() {
  if (server_) server_->Stop();
  housekeeper_.RequestStop();
}

void ServiceStack::Wait(const std::function<void()>& before_last_checkpoint) {
  if (server_) server_->Wait();
  housekeeper_.Stop();
  // No request comes any more: the counts of this minute's anonymous rejections go in now.
  if (auto held = accounts_.LogHeldRejections(clock_.Now() + service::RejectionThrottle::kWindow);
      !held.ok()) {
    LogLine(LogLevel::kError, "serve",
            "could not log the count of recent anonymous rejections: " + held.error().message());
  }
  if (before_last_checkpoint) before_last_checkpoint();
  if (log_started_) {
    log_started_ = false;
    monitor_->Stop();
    integrator_->Stop();
    // One last round, so what the last requests logged is covered by a checkpoint before exit;
    // if it fails, the next start integrates it.
    (void)integrator_->IntegrateOnce();
  }
}

uint16_t ServiceStack::port() const { return server_ ? server_->port() : 0; }

}  // namespace signet::cli
