#include "cli/housekeeping.h"

#include <time.h>

#include <memory>
#include <optional>
#include <utility>

#include "common/log.h"

namespace signet::cli {

std::vector<HousekeepingTask> StoreHousekeepingTasks(store::Store& store) {
  return {
      {"activations", [&store](TimePoint now) { return store.DeleteExpiredActivations(now); }},
      {"bearer_tokens", [&store](TimePoint now) { return store.DeleteExpiredBearerTokens(now); }},
  };
}

std::chrono::nanoseconds BootTime() {
  timespec ts{};
  ::clock_gettime(CLOCK_BOOTTIME, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

HousekeepingTask ClockStepTask(service::AuditSink& audit, const Clock& clock,
                               std::function<std::chrono::nanoseconds()> real_time) {
  struct Seen {
    std::optional<TimePoint> wall;
    std::chrono::nanoseconds real{0};
  };
  // Passes are serialised (Housekeeper::run_mu_), so the state needs no lock of its own.
  auto seen = std::make_shared<Seen>();
  return {"clock_steps",
          [&audit, &clock, real_time = std::move(real_time), seen](TimePoint) -> Result<int64_t> {
            // Both read here, together: the pass's own time was read before the tasks ahead of
            // this one, which may take long.
            const auto real = real_time();
            const TimePoint now = clock.Now();
            const std::optional<TimePoint> last = seen->wall;
            const auto last_real = seen->real;
            seen->wall = now;
            seen->real = real;
            if (!last) return 0;
            const auto expected =
                *last + std::chrono::duration_cast<TimePoint::duration>(real - last_real);
            const auto step = std::chrono::duration_cast<std::chrono::milliseconds>(now - expected);
            if (step < kClockStepThreshold && step > -kClockStepThreshold) return 0;
            service::AuditEvent event;
            event.time = now;
            event.action = service::AuditAction::kClockStep;
            event.actor.auth_method = service::AuthMethod::kSystem;
            event.object = "signet";
            event.details["step_ms"] = std::to_string(step.count());
            event.details["expected"] = FormatRfc3339(expected);
            event.details["now"] = FormatRfc3339(now);
            SIGNET_TRY(audit.Record(event));
            return 1;
          }};
}

Housekeeper::Housekeeper(std::vector<HousekeepingTask> tasks, const Clock& clock,
                         server::Metrics& metrics, std::chrono::milliseconds interval,
                         Reporter report)
    : tasks_(std::move(tasks)),
      clock_(clock),
      metrics_(metrics),
      interval_(interval),
      report_(report ? std::move(report) : Reporter([](std::string_view line) {
        LogLine(LogLevel::kWarning, "housekeeping", line);
      })) {
  metrics_.DeclareCounter("signet_housekeeping_runs_total", "Housekeeping passes completed.");
  metrics_.DeclareCounter("signet_housekeeping_deleted_total",
                          "Expired rows deleted by housekeeping, by kind.");
  metrics_.DeclareCounter("signet_housekeeping_errors_total",
                          "Housekeeping tasks that failed, by kind.");
  metrics_.Increment("signet_housekeeping_runs_total", {}, 0);
  for (const HousekeepingTask& task : tasks_) {
    metrics_.Increment("signet_housekeeping_deleted_total", {{"kind", task.kind}}, 0);
    metrics_.Increment("signet_housekeeping_errors_total", {{"kind", task.kind}}, 0);
  }
}

Housekeeper::~Housekeeper() { Stop(); }

Status Housekeeper::Start() {
  std::lock_guard lock(mu_);
  if (started_) return FailedPrecondition("housekeeping was already started");
  started_ = true;
  thread_ = std::thread([this] { Loop(); });
  return OkStatus();
}

void Housekeeper::RequestStop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
}

void Housekeeper::Stop() {
  RequestStop();
  if (thread_.joinable()) thread_.join();
}

void Housekeeper::Loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    RunOnce();
    lock.lock();
    wake_.wait_for(lock, interval_, [this] { return stopping_; });
  }
}

void Housekeeper::RunOnce() {
  std::lock_guard lock(run_mu_);
  const TimePoint now = clock_.Now();
  for (const HousekeepingTask& task : tasks_) {
    Result<int64_t> deleted = InternalError("the task threw an exception");
    try {
      deleted = task.run(now);
    } catch (...) {
      // A store adapter must not throw; if one does anyway, it is one failed pass, not a crash.
    }
    if (deleted.ok()) {
      metrics_.Increment("signet_housekeeping_deleted_total", {{"kind", task.kind}},
                         static_cast<double>(*deleted));
      continue;
    }
    metrics_.Increment("signet_housekeeping_errors_total", {{"kind", task.kind}});
    if (reported_.insert(task.kind).second) {
      report_("housekeeping task " + task.kind + " failed: " + deleted.error().message() +
              " (will retry; further failures are counted in "
              "signet_housekeeping_errors_total, not shown)");
    }
  }
  metrics_.Increment("signet_housekeeping_runs_total");
}

}  // namespace signet::cli
