// CSC API v2 (Cloud Signature Consortium, /work/shared/reference/csc-api-v2.md) on the signet
// HTTPS server: a thin layer that parses and validates JSON, calls the services and maps their
// errors to CSC error bodies. All routes are POST under /csc/v2/ and take/return application/json.
//
// Authentication:
//  - auth/login, person: HTTP Basic "name:password" plus the TOTP code in the JSON body field
//    "otp" (a signet extension; CSC leaves the second factor to the implementation). Optional
//    "rememberMe" is accepted and ignored. Returns {"access_token","expires_in"}.
//  - auth/login, service: on an mTLS connection (Request::client_cert_sha256 set) without an
//    Authorization header, the verified client certificate is the credential.
//  - Every other route except info needs "Authorization: Bearer <access_token>". A service
//    account's token works only on a connection that presents its certificate (bound to it).
//  - credentials/authorize: a person authenticates again, with both factors, for every
//    activation (CSBR 6.2.7.3: multi-factor authentication for every use of a key): "authData"
//    [{"id":"PIN","value":<password>},{"id":"OTP","value":<fresh TOTP code>}], the auth objects
//    credentials/info lists ("PIN AND OTP"); AccountService::VerifyActivationFactors applies the
//    login policy (each code once, failures count towards the lockout). A wrong factor is 400
//    invalid_request. A service account's activation rests on its certificate, presented on the
//    connection of every request (server-to-server); authData is not used. The returned SAD is
//    bound to the account, the credential and the hashes. extendTransaction, which CSC gives no
//    authData, rebinds within the transaction the authorization opened: for at most an hour and
//    never to more signatures in all than the key's policy allows per authorization.
//  - credentials/list onlyValid: only enabled keys whose leaf certificate is within its validity
//    period. credentials/info key.algo: only the signAlgo OIDs the key's policy allows.
//
// Errors: {"error","error_description"} with the CSC error strings; see csc_api.cc
// (CscErrorResponse) for the one table mapping signet ErrorCode to them.
#pragma once

#include <memory>
#include <string>

#include "common/clock.h"
#include "common/result.h"
#include "server/server.h"
#include "service/accounts.h"
#include "service/key_service.h"
#include "service/signing.h"

namespace signet::server::csc {

struct CscDependencies {
  service::AccountService& accounts;
  service::SigningService& signing;
  service::KeyService& keys;
  // The services' clock: login's expires_in and a certificate's validity are judged by it.
  const Clock& clock;
  std::string service_name = "signet";
  // Bounds the password logins (HTTP Basic) in progress at once: each costs a memory-hard hash
  // (Argon2id, 64 MiB), also for an unknown name, and anyone can send one, so without a bound a
  // flood of them fills the worker pool ahead of signHash. Beyond it: 503 + Retry-After before
  // the password is hashed or the code spent, unrecorded (a malformed Basic header or a missing
  // code is still refused and recorded first). Certificate logins are cheap and not counted.
  // Null: no bound.
  std::shared_ptr<ConcurrencyLimit> password_logins = nullptr;
};

// Registers POST /csc/v2/{info, auth/login, auth/revoke, credentials/list, credentials/info,
// credentials/authorize, credentials/extendTransaction, signatures/signHash} on `router`.
// The references in `deps` must outlive the router (and the server that runs it).
Status RegisterCscRoutes(Router& router, CscDependencies deps);

}  // namespace signet::server::csc
