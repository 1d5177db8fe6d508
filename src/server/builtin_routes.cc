// The built-in endpoints /healthz and /metrics (server.h).

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "common/log.h"
#include "server/internal/http_util.h"
#include "server/server.h"

namespace signet::server {
namespace {

// What /healthz last said of each check, so that the operational log gets a line when a check
// starts failing, fails differently or recovers, and not one per probe of a load balancer.
class HealthLog {
 public:
  void Note(const std::string& name, const Status& status) {
    std::string now = status.ok() ? std::string()
                                  : std::string(ErrorCodeName(status.error().code())) + ": " +
                                        status.error().message();
    std::lock_guard lock(mu_);
    auto [it, first] = last_.try_emplace(name);
    if (!first && it->second == now) return;
    const bool was_failing = !first && !it->second.empty();
    it->second = now;
    if (!now.empty()) {
      LogLine(LogLevel::kError, "healthz", "check '" + name + "' fails: " + now);
    } else if (was_failing) {
      LogLine(LogLevel::kWarning, "healthz", "check '" + name + "' passes again");
    }
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::string> last_;  // "" = passed; guarded by mu_
};

// One run of the checks at a time. /healthz needs no login and its checks reach the database
// and the HSM on a worker; a flood of probes must not take every worker from signing. A probe
// that arrives while a run is in progress gets that endpoint's last answer at once instead of
// starting another run, or, before there is any answer, waits for that run's; probes one after
// another each run the checks.
class HealthRuns {
 public:
  // The answer to give if a run is in progress (the last one, or the running one's once it is
  // there); else nullopt, and the caller runs the checks and then calls Finish.
  std::optional<Response> JoinOrStart() {
    std::unique_lock lock(mu_);
    if (running_ > 0 && !last_) {
      const uint64_t waiting_for = finished_ + 1;
      done_.wait(lock, [&] { return finished_ >= waiting_for || running_ == 0; });
      if (last_) return last_;  // else that run threw: run the checks here
    }
    if (running_ > 0 && last_) return last_;
    ++running_;
    return std::nullopt;
  }
  // Ends a run that JoinOrStart started; `answer` is empty if the run failed (threw).
  void Finish(const std::optional<Response>& answer) {
    {
      std::lock_guard lock(mu_);
      if (answer) last_ = answer;
      --running_;
      ++finished_;
    }
    done_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable done_;  // signalled by Finish
  int running_ = 0;               // guarded by mu_
  uint64_t finished_ = 0;         // guarded by mu_: runs finished
  std::optional<Response> last_;  // guarded by mu_
};

}  // namespace

Status AddHealthzRoute(Router& router, std::vector<HealthCheck> checks) {
  for (const HealthCheck& check : checks) {
    if (!check.check) return InvalidArgument("health check '" + check.name + "' has no function");
  }
  auto log = std::make_shared<HealthLog>();
  auto runs = std::make_shared<HealthRuns>();
  auto run_checks = [checks = std::move(checks), log]() {
    bool healthy = true;
    std::string results;
    for (const HealthCheck& check : checks) {
      Status status = InternalError("health check threw");
      try {
        status = check.check();
      } catch (const std::exception& e) {
        // Reported as internal below; a check must not take the endpoint down.
        status = InternalError(std::string("health check threw: ") + e.what());
      } catch (...) {
      }
      // The reason goes to the operational log only: it may name files and modules.
      log->Note(check.name, status);
      std::string_view outcome = status.ok() ? "ok" : ErrorCodeName(status.error().code());
      healthy = healthy && status.ok();
      if (!results.empty()) results += ',';
      results +=
          "\"" + internal::JsonEscape(check.name) + "\":\"" + internal::JsonEscape(outcome) + "\"";
    }
    Response response;
    response.status = healthy ? 200 : 503;
    response.body = std::string("{\"status\":\"") + (healthy ? "ok" : "unavailable") +
                    "\",\"checks\":{" + results + "}}";
    return response;
  };
  auto handler = [runs, run_checks = std::move(run_checks)](const Request&) {
    if (std::optional<Response> last = runs->JoinOrStart()) return *last;
    struct Finisher {  // ends the run even if it throws (the router answers 500 then)
      HealthRuns& runs;
      std::optional<Response> answer;
      ~Finisher() { runs.Finish(answer); }
    } finisher{*runs, std::nullopt};
    finisher.answer = run_checks();
    return *finisher.answer;
  };
  return router.Add("GET", "/healthz", std::move(handler), RouteOptions{.blocking = true});
}

Status AddMetricsRoute(Router& router, const Metrics& metrics, MetricsAccess access) {
  const bool blocking = static_cast<bool>(access);
  return router.Add(
      "GET", "/metrics",
      [&metrics, access = std::move(access)](const Request& request) {
        if (access) {
          if (std::optional<Response> refused = access(request)) return std::move(*refused);
        }
        Response response;
        response.content_type = std::string(kPrometheusContentType);
        response.body = metrics.RenderPrometheus();
        return response;
      },
      RouteOptions{.blocking = blocking});
}

}  // namespace signet::server
