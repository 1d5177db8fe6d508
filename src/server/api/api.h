// The management API under /api/v1/ (docs/api.md): accounts, keys, grants and key policies, for
// the remote `signet` CLI. A thin layer over service/: every route is POST with a JSON object body,
// authenticated by a bearer token from the CSC login (/csc/v2/auth/login), checked against the
// caller's roles (admin; read = admin or auditor; self), and answered with JSON. Errors are
// {"error","error_description"} with the status of server::HttpStatusFor; api.cc (ApiErrorResponse)
// holds the one table that names them.
//
// Audit: changes and refused changes are recorded by the services before the answer is sent. The
// account operations check the admin role themselves and record their refusals; for key, grant and
// policy changes the API checks the role and records a refusal through KeyService::Refused.
//
// Threads: the handlers keep no state of their own; they are as thread-safe as the services
// (which are). Every route is `blocking` (it authenticates against the database, and may use the
// HSM or run Argon2id), so it runs on the server's worker pool.
#pragma once

#include "common/result.h"
#include "server/server.h"
#include "service/accounts.h"
#include "service/key_service.h"
#include "service/signing.h"

namespace signet::server::api {

struct ApiDependencies {
  service::AccountService& accounts;
  service::SigningService& signing;
  service::KeyService& keys;
};

// Registers the POST routes of docs/api.md under /api/v1/ on `router`. The services in `deps`
// must outlive the router (and the server that runs it). InvalidArgument if a route is already
// registered.
Status RegisterApiRoutes(Router& router, ApiDependencies deps);

// The access rule for /metrics when it is not public (AddMetricsRoute): a bearer token of an
// auditor or an admin, refusals answered as the API's errors (401 with WWW-Authenticate, 403).
// `accounts` must outlive the router.
MetricsAccess MetricsReaders(service::AccountService& accounts);

}  // namespace signet::server::api
