// Router, Request helpers, HttpStatusFor and the transport's JSON error body (server.h).

#include <algorithm>

#include "server/internal/http_util.h"
#include "server/server.h"

namespace signet::server {
namespace {

bool IsPrefixPattern(std::string_view pattern) {
  return pattern.size() >= 2 && pattern.substr(pattern.size() - 2) == "/*";
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

}  // namespace

std::optional<std::string_view> Request::Header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (EqualsIgnoreCase(n, name)) return std::string_view(v);
  }
  return std::nullopt;
}

std::optional<std::string_view> Request::QueryParam(std::string_view name) const {
  for (const auto& [n, v] : query) {
    if (n == name) return std::string_view(v);
  }
  return std::nullopt;
}

int HttpStatusFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return 400;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kAlreadyExists:
      return 409;
    case ErrorCode::kPermissionDenied:
      return 403;
    case ErrorCode::kUnauthenticated:
      return 401;
    case ErrorCode::kFailedPrecondition:
      return 400;
    case ErrorCode::kResourceExhausted:
      return 429;
    case ErrorCode::kUnavailable:
      return 503;
    case ErrorCode::kDataLoss:
    case ErrorCode::kInternal:
      return 500;
  }
  return 500;
}

Response JsonErrorResponse(int status, std::string_view error, std::string_view description) {
  Response response;
  response.status = status;
  response.content_type = "application/json";
  response.body = "{\"error\":\"" + internal::JsonEscape(error) + "\",\"error_description\":\"" +
                  internal::JsonEscape(description) + "\"}";
  return response;
}

bool ConcurrencyLimit::TryAcquire() {
  size_t now = in_flight_.load();
  do {
    if (now >= max_) return false;
  } while (!in_flight_.compare_exchange_weak(now, now + 1));
  return true;
}

void ConcurrencyLimit::Release() { in_flight_.fetch_sub(1); }

Status Router::Add(std::string method, std::string pattern, Handler handler, RouteOptions options) {
  if (!internal::IsHttpToken(method)) {
    return InvalidArgument("route method '" + method + "' is not an HTTP token");
  }
  if (pattern.empty() || pattern.front() != '/') {
    return InvalidArgument("route pattern '" + pattern + "' must start with '/'");
  }
  if (!handler) return InvalidArgument("route " + method + " " + pattern + " has no handler");
  if (options.limit && options.limit->max_in_flight() == 0) {
    return InvalidArgument("route " + method + " " + pattern +
                           " has a concurrency limit of 0, which would refuse every request");
  }
  for (const Route& route : routes_) {
    if (route.method == method && route.pattern == pattern) {
      return InvalidArgument("route " + method + " " + pattern + " is registered twice");
    }
  }
  routes_.push_back(Route{std::move(method), std::move(pattern), std::move(handler), options});
  return OkStatus();
}

Router::Match Router::Find(std::string_view method, std::string_view path) const {
  // The best pattern for the path: an exact one, else the longest matching prefix.
  const std::string* best = nullptr;
  bool best_exact = false;
  for (const Route& route : routes_) {
    if (IsPrefixPattern(route.pattern)) {
      std::string_view prefix = std::string_view(route.pattern).substr(0, route.pattern.size() - 1);
      if (best_exact || path.substr(0, prefix.size()) != prefix) continue;
      if (best == nullptr || route.pattern.size() > best->size()) best = &route.pattern;
    } else if (route.pattern == path) {
      best = &route.pattern;
      best_exact = true;
    }
  }
  Match match;
  if (best == nullptr) return match;
  for (const Route& route : routes_) {
    if (route.pattern != *best) continue;
    if (route.method == method) {
      match.route = &route;
      match.allowed.clear();
      return match;
    }
    match.allowed.push_back(route.method);
  }
  std::sort(match.allowed.begin(), match.allowed.end());
  return match;
}

}  // namespace signet::server
