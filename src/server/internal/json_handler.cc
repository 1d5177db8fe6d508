#include "server/internal/json_handler.h"

#include <cctype>
#include <exception>
#include <limits>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/log.h"
#include "common/text.h"
#include "service/audit_sink.h"

namespace signet::server::internal {

using json = nlohmann::json;

namespace {

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string_view TrimSpaces(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

}  // namespace

std::optional<std::string_view> AuthorizationParam(const Request& request,
                                                   std::string_view scheme) {
  auto h = request.Header("authorization");
  if (!h) return std::nullopt;
  std::string_view v = *h;
  if (v.size() <= scheme.size() || v[scheme.size()] != ' ') return std::nullopt;
  if (!EqualsIgnoreCase(v.substr(0, scheme.size()), scheme)) return std::nullopt;
  return TrimSpaces(v.substr(scheme.size()));
}

service::Caller MakeCaller(const service::Principal& principal, const Request& request) {
  service::Caller caller;
  caller.actor.account_id = principal.account_id;
  caller.actor.account_name = principal.name;
  caller.actor.roles = principal.roles;
  caller.actor.auth_method = principal.kind == service::AccountKind::kService
                                 ? service::AuthMethod::kMtls
                                 : service::AuthMethod::kPasswordTotp;
  caller.actor.client_address = request.client_address;
  caller.request_id = request.request_id;
  caller.session_token_hash = principal.token_hash;
  return caller;
}

Status CheckPasswordChangeNotDue(const service::Principal& principal) {
  if (!principal.must_change_password) return OkStatus();
  return PermissionDenied("account '" + principal.name +
                          "' must change its one-time password first");
}

Result<Authenticated> AuthenticateBearer(service::AccountService& accounts, const Request& request,
                                         bool allow_password_change_due) {
  auto token = AuthorizationParam(request, "Bearer");
  if (!token || token->empty()) {
    return Unauthenticated("an 'Authorization: Bearer <access_token>' header is required");
  }
  SIGNET_ASSIGN_OR_RETURN(
      service::Principal principal,
      accounts.Authenticate(*token, {request.client_address, request.request_id,
                                     request.client_cert_sha256.value_or("")}));
  if (!allow_password_change_due) SIGNET_TRY(CheckPasswordChangeNotDue(principal));
  service::Caller caller = MakeCaller(principal, request);
  return Authenticated{std::move(principal), std::move(caller), std::string(*token)};
}

bool IsJsonContentType(const Request& request) {
  auto ct = request.Header("content-type");
  if (!ct) return false;
  std::string_view v = *ct;
  return EqualsIgnoreCase(TrimSpaces(v.substr(0, v.find(';'))), "application/json");
}

Result<json> ParseJsonObject(const Request& request) {
  if (request.body.empty()) return json::object();
  // Before parsing: a handler that copies or dumps a member would recurse once per level.
  if (JsonNestsDeeperThan(request.body)) {
    return InvalidArgument("the request body nests objects and arrays deeper than " +
                           std::to_string(kMaxJsonDepth) + " levels");
  }
  // A key given twice in one object would be read as its last value here, and maybe as its first
  // by a proxy or a log in front of signet: two readings of one request. Refused.
  std::vector<std::unordered_set<std::string>> open_objects;  // the keys of each open object
  std::optional<std::string> repeated;
  const json::parser_callback_t track = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (event == json::parse_event_t::key && !open_objects.empty() && !repeated &&
               parsed.is_string()) {
      if (!open_objects.back().insert(parsed.get_ref<const std::string&>()).second) {
        repeated = parsed.get_ref<const std::string&>();
      }
    }
    return true;
  };
  json body = json::parse(request.body, track, /*allow_exceptions=*/false);
  if (body.is_discarded()) return InvalidArgument("the request body is not valid JSON");
  if (repeated) {
    return InvalidArgument("the request body gives '" + OneLineSafe(*repeated, 64) +
                           "' twice in one object");
  }
  if (!body.is_object()) return InvalidArgument("the request body must be a JSON object");
  return body;
}

Result<std::optional<std::string>> OptString(const json& body, const char* field) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return std::optional<std::string>();
  if (!it->is_string()) return InvalidArgument(std::string("'") + field + "' must be a string");
  return std::optional<std::string>(it->get<std::string>());
}

Result<std::string> ReqString(const json& body, const char* field) {
  SIGNET_ASSIGN_OR_RETURN(std::optional<std::string> v, OptString(body, field));
  if (!v || v->empty()) return InvalidArgument(std::string("'") + field + "' is required");
  return std::move(*v);
}

Result<std::optional<bool>> OptBool(const json& body, const char* field) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return std::optional<bool>();
  if (!it->is_boolean()) return InvalidArgument(std::string("'") + field + "' must be a boolean");
  return std::optional<bool>(it->get<bool>());
}

Result<int64_t> ReqInt(const json& body, const char* field) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) {
    return InvalidArgument(std::string("'") + field + "' is required");
  }
  if (!it->is_number_integer()) {
    return InvalidArgument(std::string("'") + field + "' must be an integer");
  }
  // nlohmann keeps integers above INT64_MAX as unsigned; they would wrap in get<int64_t>().
  if (it->is_number_unsigned() &&
      it->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return InvalidArgument(std::string("'") + field + "' is out of range");
  }
  return it->get<int64_t>();
}

Response JsonResponse(const json& body, int status) {
  Response r;
  r.status = status;
  // Invalid UTF-8 in a string is replaced (U+FFFD) rather than thrown on.
  r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

Handler JsonRoute(JsonHandler handler, ErrorResponder on_error) {
  return [handler = std::move(handler),
          on_error = std::move(on_error)](const Request& request) -> Response {
    if (!request.body.empty() || request.Header("content-type")) {
      if (!IsJsonContentType(request)) {
        return JsonErrorResponse(415, "invalid_request",
                                 "the Content-Type must be application/json");
      }
    }
    try {
      auto parsed = ParseJsonObject(request);
      if (!parsed.ok()) return on_error(parsed.error(), request);
      return handler(request, *parsed);
    } catch (const std::exception& e) {
      return on_error(InternalError(std::string("unexpected exception: ") + e.what()), request);
    }
  };
}

bool IsServerFault(const Error& error) {
  // The service's one classification of refusals (service::IsRefusal); of the rest, only a rate
  // limit answers the request rather than reporting the service's own failure.
  return !service::IsRefusal(error) && !service::SigningService::IsRateLimit(error);
}

Response ServerFaultResponse(const Error& error, std::string_view request_id) {
  LogLine(LogLevel::kError, "server",
          "request " + std::string(request_id) + ": " + std::string(ErrorCodeName(error.code())) +
              ": " + error.message());
  const std::string id = "request id " + std::string(request_id);
  std::string description;
  int status = 503;
  std::string_view csc = "temporarily_unavailable";
  switch (error.code()) {
    case ErrorCode::kUnavailable:
      description =
          "a dependency of the service (the HSM or the database) is unavailable; "
          "retry later (" +
          id + ")";
      break;
    case ErrorCode::kResourceExhausted:
      description =
          "the service is out of a resource (disk space, memory or HSM sessions); "
          "retry later (" +
          id + ")";
      break;
    default:
      status = 500;
      csc = "server_error";
      description = "internal error; " + id;
      break;
  }
  if (service::SigningService::HashesUsedUp(error)) {
    description += "; " + std::string(service::kHashesUsedUpNote);
  } else if (service::KeyService::DestroyPending(error)) {
    description += "; " + std::string(service::kKeyDestroyPendingNote);
  }
  return JsonErrorResponse(status, csc, description);
}

Response ApiErrorResponse(const Error& error, std::string_view request_id) {
  if (IsServerFault(error)) return ServerFaultResponse(error, request_id);
  const int status = HttpStatusFor(error.code());
  switch (error.code()) {
    case ErrorCode::kInvalidArgument:
      return JsonErrorResponse(status, "invalid_request", error.message());
    case ErrorCode::kFailedPrecondition:
      return JsonErrorResponse(status, "failed_precondition", error.message());
    case ErrorCode::kNotFound:
      return JsonErrorResponse(status, "not_found", error.message());
    case ErrorCode::kAlreadyExists:
      return JsonErrorResponse(status, "already_exists", error.message());
    case ErrorCode::kPermissionDenied:
      return JsonErrorResponse(status, "access_denied", error.message());
    case ErrorCode::kUnauthenticated: {
      Response r = JsonErrorResponse(status, "invalid_token", error.message());
      r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"signet\"");
      return r;
    }
    case ErrorCode::kResourceExhausted:
      return JsonErrorResponse(status, "too_many_requests", error.message());
    case ErrorCode::kUnavailable:
    case ErrorCode::kDataLoss:
    case ErrorCode::kInternal:
      break;  // server faults, answered above
  }
  return ServerFaultResponse(error, request_id);
}

}  // namespace signet::server::internal
