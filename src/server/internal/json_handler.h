// What the JSON APIs on the signet server share (server/csc: CSC API v2 under /csc/v2/;
// server/api: the management API under /api/v1/): bearer-token authentication, the audit identity
// of an authenticated principal, reading JSON object bodies and their fields, and the route
// wrapper that checks the content type, parses the body and keeps exceptions inside the handler
// (STYLE.md "Errors"). Each API keeps its own mapping of errors to bodies and passes it in.
//
// Threads: the functions are pure apart from AuthenticateBearer, which calls the AccountService
// (thread-safe). A Handler made by JsonRoute is as thread-safe as the functions given to it.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "server/server.h"
#include "service/accounts.h"
#include "service/key_service.h"
#include "service/signing.h"

namespace signet::server::internal {

// The credentials of the Authorization header when it uses `scheme` (compared without regard to
// case, RFC 9110 §11.1), with surrounding spaces removed; nullopt if there is no such header or
// it names another scheme. The view points into `request`.
std::optional<std::string_view> AuthorizationParam(const Request& request, std::string_view scheme);

// The audit identity of `principal` acting through `request`: account, roles, how it proved who
// it is (person: password + TOTP at login; service: mTLS), client address and request id.
service::Caller MakeCaller(const service::Principal& principal, const Request& request);

struct Authenticated {
  service::Principal principal;
  service::Caller caller;
  std::string token;  // the bearer token as presented
};

// PermissionDenied while the account's one-time password is still to be changed; what
// AuthenticateBearer checks unless told not to.
Status CheckPasswordChangeNotDue(const service::Principal& principal);

// "Authorization: Bearer <access_token>" -> the principal behind it. Unauthenticated if the header
// is missing or empty, or AccountService::Authenticate refuses the token (unknown, expired,
// revoked, account disabled or locked, or a service account's token on a connection without that
// account's client certificate). A principal that must change its one-time password is
// refused with PermissionDenied unless `allow_password_change_due`.
Result<Authenticated> AuthenticateBearer(service::AccountService& accounts, const Request& request,
                                         bool allow_password_change_due = false);

// Whether Content-Type is application/json (parameters such as charset ignored, case-insensitive).
bool IsJsonContentType(const Request& request);

// The request body as a JSON object; an empty body counts as {}. InvalidArgument if it is not
// valid JSON or not an object.
Result<nlohmann::json> ParseJsonObject(const Request& request);

// Readers of one field of a JSON object body. An absent field and null are the same ("missing").
// Errors are InvalidArgument and name the field.
Result<std::optional<std::string>> OptString(const nlohmann::json& body, const char* field);
// Missing or "": "'<field>' is required".
Result<std::string> ReqString(const nlohmann::json& body, const char* field);
Result<std::optional<bool>> OptBool(const nlohmann::json& body, const char* field);
// An integer in the int64_t range.
Result<int64_t> ReqInt(const nlohmann::json& body, const char* field);

// `body` as JSON with status `status` and "Cache-Control: no-store" (answers carry account data,
// tokens and SADs).
Response JsonResponse(const nlohmann::json& body, int status = 200);

// An API's mapping of an error (from parsing or from a handler) to its error response.
using ErrorResponder = std::function<Response(const Error& error, const Request& request)>;
using JsonHandler = std::function<Response(const Request& request, const nlohmann::json& body)>;

// Wraps `handler` into a route handler:
//  - a request with a body or a Content-Type header must say application/json, else
//    415 {"error":"invalid_request"} (a body-less request without Content-Type is accepted);
//  - the body must be a JSON object (ParseJsonObject), else on_error(InvalidArgument);
//  - an exception escaping `handler` becomes on_error(Internal, with what() in the message for the
//    operational log) instead of leaving the handler.
Handler JsonRoute(JsonHandler handler, ErrorResponder on_error);

// Whether `error` is the service's own failure rather than an answer to the request: a dependency
// that is down (Unavailable), out of disk space or memory (ResourceExhausted other than a signing
// rate limit, SigningService::IsRateLimit), corrupt data (DataLoss) or a bug (Internal). Its
// message was written for the operator and may name files, modules and hosts.
bool IsServerFault(const Error& error);

// The answer to a server fault, the same in every API. The whole error goes to the operational log
// (common/log.h) with `request_id`; the client learns the kind of fault and the id to quote:
//   Unavailable        -> 503 temporarily_unavailable "a dependency of the service (the HSM or the
//                         database) is unavailable; retry later (request id ...)"
//   ResourceExhausted  -> 503 temporarily_unavailable "the service is out of a resource (disk
//                         space, memory or HSM sessions); ..." (not 429: the client did nothing
//                         too often)
//   DataLoss, Internal -> 500 server_error "internal error; request id ..."
// When the service's error says what the fault means for the request, that note follows after
// "; ": signHash's hashes are used up (SigningService::HashesUsedUp, "authorize again"), a key
// is marked destroyed but still in the HSM (KeyService::DestroyPending, "run ... again").
Response ServerFaultResponse(const Error& error, std::string_view request_id);

// THE mapping of signet errors to management API error bodies (docs/api.md "Errors"); the HTTP
// status comes from HttpStatusFor:
//   InvalidArgument                     -> invalid_request (400)
//   FailedPrecondition                  -> failed_precondition (400): the request is well formed
//                                          but does not fit the object's state (a disabled key)
//   NotFound                            -> not_found (404)
//   AlreadyExists                       -> already_exists (409)
//   PermissionDenied                    -> access_denied (403)
//   Unauthenticated                     -> invalid_token (401), with WWW-Authenticate (RFC 6750 §3)
//   ResourceExhausted (a rate limit)    -> too_many_requests (429)
//   a server fault (IsServerFault)      -> ServerFaultResponse: 503 temporarily_unavailable or
//                                          500 server_error, with a generic description that
//                                          carries the request id (messages may name internals)
// Used by the management API and the log routes. 413 and 415 are the transport's and JsonRoute's.
// Handlers that get Unauthenticated for anything but the bearer token (a wrong current password)
// turn it into PermissionDenied first.
Response ApiErrorResponse(const Error& error, std::string_view request_id);

}  // namespace signet::server::internal
