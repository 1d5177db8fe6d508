// The built-in endpoints /healthz and /metrics (server.h).

#include "server/internal/http_util.h"
#include "server/server.h"

namespace signet::server {

Status AddHealthzRoute(Router& router, std::vector<HealthCheck> checks) {
  for (const HealthCheck& check : checks) {
    if (!check.check) return InvalidArgument("health check '" + check.name + "' has no function");
  }
  auto handler = [checks = std::move(checks)](const Request&) {
    bool healthy = true;
    std::string results;
    for (const HealthCheck& check : checks) {
      Status status = InternalError("health check threw");
      try {
        status = check.check();
      } catch (...) {
        // Reported as internal below; a check must not take the endpoint down.
      }
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
  return router.Add("GET", "/healthz", std::move(handler), RouteOptions{.blocking = true});
}

Status AddMetricsRoute(Router& router, const Metrics& metrics) {
  return router.Add("GET", "/metrics", [&metrics](const Request&) {
    Response response;
    response.content_type = std::string(kPrometheusContentType);
    response.body = metrics.RenderPrometheus();
    return response;
  });
}

}  // namespace signet::server
