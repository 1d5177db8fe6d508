// The management API handlers (docs/api.md): authenticate, check the body's fields and the
// caller's role, call one service, answer JSON. The error table is internal::ApiErrorResponse
// (json_handler.h); the route table (who may call what, with which fields) is in RegisterApiRoutes.
#include "server/api/api.h"

#include <algorithm>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/algorithms.h"
#include "common/bytes.h"
#include "common/clock.h"
#include "common/text.h"
#include "server/internal/json_handler.h"
#include "service/key_json.h"

namespace signet::server::api {
namespace {

using json = nlohmann::json;
using internal::OptString;
using internal::ReqInt;
using internal::ReqString;
using store::Role;

constexpr std::string_view kPrefix = "/api/v1/";

// ---- errors -------------------------------------------------------------------------------------

// The error table is internal::ApiErrorResponse (server/internal/json_handler.h), shared with the
// log routes.
using internal::ApiErrorResponse;

// ---- reading bodies -----------------------------------------------------------------------------

// docs/api.md: unknown fields are errors, so a typo never silently changes meaning.
Status CheckFields(const json& object, const std::vector<std::string_view>& allowed,
                   std::string_view where = "the request") {
  for (auto it = object.begin(); it != object.end(); ++it) {
    if (std::find(allowed.begin(), allowed.end(), it.key()) == allowed.end()) {
      return InvalidArgument(std::string(where) + " has an unknown field '" + it.key() + "'");
    }
  }
  return OkStatus();
}

// A required list of distinct strings, each turned into a T by `parse`.
template <typename T, typename Parse>
Result<std::vector<T>> ReqList(const json& body, const char* field, Parse parse) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) {
    return InvalidArgument(std::string("'") + field + "' is required (a list, [] for none)");
  }
  if (!it->is_array()) return InvalidArgument(std::string("'") + field + "' must be a list");
  std::vector<std::string> seen;
  std::vector<T> out;
  for (const json& item : *it) {
    if (!item.is_string()) {
      return InvalidArgument(std::string("'") + field + "' must hold strings only");
    }
    const std::string& text = item.get_ref<const std::string&>();
    if (std::find(seen.begin(), seen.end(), text) != seen.end()) {
      return InvalidArgument(std::string("'") + field + "' lists '" + text + "' twice");
    }
    seen.push_back(text);
    auto parsed = parse(text);
    if (!parsed.ok()) return parsed.error().WithContext(std::string("'") + field + "'");
    out.push_back(std::move(parsed).value());
  }
  return out;
}

Result<store::RoleSet> ReqRoles(const json& body) {
  SIGNET_ASSIGN_OR_RETURN(
      std::vector<Role> roles,
      ReqList<Role>(body, "roles", [](std::string_view name) { return store::ParseRole(name); }));
  store::RoleSet set;
  for (Role r : roles) set.Add(r);
  return set;
}

Result<std::string> ReqAccountName(const json& body, const char* field) {
  SIGNET_ASSIGN_OR_RETURN(std::string name, ReqString(body, field));
  SIGNET_TRY(service::AccountService::ValidateAccountName(name));
  return name;
}

Result<std::string> ReqKeyName(const json& body) {
  SIGNET_ASSIGN_OR_RETURN(std::string name, ReqString(body, "name"));
  SIGNET_TRY(service::KeyService::ValidateKeyName(name));
  return name;
}

Result<SignatureScheme> ParseSchemeName(std::string_view name) {
  for (SignatureScheme s : {SignatureScheme::kRsaPkcs1v15, SignatureScheme::kRsaPss,
                            SignatureScheme::kEcdsa, SignatureScheme::kEd25519}) {
    if (SignatureSchemeName(s) == name) return s;
  }
  return InvalidArgument("unknown signature scheme '" + std::string(name) +
                         "'; use rsa-pkcs1, rsa-pss or ecdsa");
}

// docs/api.md "Objects": Policy. For keys/set-policy every field is optional, and those left out
// keep their current value; at least one must be given.
Result<service::KeyPolicyChange> ReqPolicyChange(const json& body) {
  auto it = body.find("policy");
  if (it == body.end() || it->is_null()) return InvalidArgument("'policy' is required");
  if (!it->is_object()) return InvalidArgument("'policy' must be an object");
  const json& p = *it;
  SIGNET_TRY(CheckFields(p,
                         {"sign_schemes", "hash_algorithms", "max_signatures_per_authorization",
                          "rate_per_minute_key", "rate_per_minute_account"},
                         "'policy'"));
  service::KeyPolicyChange change;
  auto given = [&p](const char* field) { return p.contains(field) && !p[field].is_null(); };
  if (given("sign_schemes")) {
    SIGNET_ASSIGN_OR_RETURN(change.allowed_sign_schemes,
                            ReqList<SignatureScheme>(p, "sign_schemes", ParseSchemeName));
  }
  if (given("hash_algorithms")) {
    SIGNET_ASSIGN_OR_RETURN(change.allowed_hash_algorithms,
                            ReqList<HashAlgorithm>(p, "hash_algorithms", [](std::string_view n) {
                              return ParseHashAlgorithm(n);
                            }));
  }
  if (given("max_signatures_per_authorization")) {
    SIGNET_ASSIGN_OR_RETURN(change.max_signatures_per_authorization,
                            ReqInt(p, "max_signatures_per_authorization"));
  }
  if (given("rate_per_minute_key")) {
    SIGNET_ASSIGN_OR_RETURN(change.rate_per_minute_key, ReqInt(p, "rate_per_minute_key"));
  }
  if (given("rate_per_minute_account")) {
    SIGNET_ASSIGN_OR_RETURN(change.rate_per_minute_account, ReqInt(p, "rate_per_minute_account"));
  }
  if (change.empty()) {
    return InvalidArgument(
        "'policy' names no field to change; give at least one of sign_schemes, hash_algorithms, "
        "max_signatures_per_authorization, rate_per_minute_key, rate_per_minute_account");
  }
  return change;
}

// ---- answers ------------------------------------------------------------------------------------

json AccountJson(const service::AccountInfo& a) {
  json roles = json::array();
  for (Role r : {Role::kAdmin, Role::kSigner, Role::kAuditor}) {
    if (a.roles.Has(r)) roles.push_back(store::RoleName(r));
  }
  json j = {{"id", a.id},
            {"name", a.name},
            {"kind", store::AccountKindName(a.kind)},
            {"roles", std::move(roles)},
            {"state", store::AccountStateName(a.state)},
            {"totp_enrolled", a.totp_enrolled},
            {"must_change_password", a.must_change_password},
            {"failed_attempts", a.failed_attempts},
            {"created_at", FormatRfc3339(a.created_at)},
            {"updated_at", FormatRfc3339(a.updated_at)}};
  if (a.locked_until) j["locked_until"] = FormatRfc3339(*a.locked_until);
  if (a.kind == store::AccountKind::kService && a.mtls_fingerprint) {
    j["client_cert_sha256"] = *a.mtls_fingerprint;
  }
  return j;
}

json PolicyJson(const service::KeyPolicy& p) {
  json schemes = json::array();
  for (SignatureScheme s : p.allowed_sign_schemes) schemes.push_back(SignatureSchemeName(s));
  json hashes = json::array();
  for (HashAlgorithm h : p.allowed_hash_algorithms) hashes.push_back(HashAlgorithmName(h));
  return {{"sign_schemes", std::move(schemes)},
          {"hash_algorithms", std::move(hashes)},
          {"max_signatures_per_authorization", p.max_signatures_per_authorization},
          {"rate_per_minute_key", p.rate_per_minute_key},
          {"rate_per_minute_account", p.rate_per_minute_account}};
}

json AccountAnswer(const service::AccountInfo& a) { return {{"account", AccountJson(a)}}; }
json KeyAnswer(const store::KeyRecord& k) { return {{"key", service::KeyToJson(k)}}; }

// ---- access -------------------------------------------------------------------------------------

// Who may call a route (docs/api.md "Roles").
enum class Access {
  kSelf,          // any authenticated account, also one that must still change its one-time
                  // password (the self routes are auth/whoami and auth/password)
  kRead,          // admin or auditor
  kAdmin,         // admin; the API checks and records a refusal through KeyService::Refused
  kAccountAdmin,  // admin; AccountService checks it and records its own refusals
};

struct Call {
  const ApiDependencies& deps;
  const json& body;
  const internal::Authenticated& who;
  // On a route that changes something: what a refusal is recorded as (see RouteSpec).
  std::optional<service::AuditAction> refused_as = std::nullopt;
  std::optional<service::AccountAction> account_refused_as = std::nullopt;
  bool own_change = false;

  const service::Principal& principal() const { return who.principal; }
  const service::Caller& caller() const { return who.caller; }
  // The principal with the request's origin, for AccountService's changes.
  service::AccountCaller account_caller() const {
    return {who.principal, {who.caller.actor.client_address, who.caller.request_id}};
  }

  // A change refused for its body (a field name or value) before any service saw it: recorded
  // like the services' own refusals, as the route's action on the account or key the body names.
  Error Refuse(Error error) const;
  // `value`, or its error refused as above.
  template <typename T>
  Result<T> Checked(Result<T> value) const {
    if (!value.ok()) return Refuse(std::move(value).error());
    return value;
  }
};

struct RouteSpec {
  std::string_view name;
  Access access;
  Result<json> (*run)(const Call&);
  std::vector<std::string_view> fields = {};  // the body fields the route accepts
  // kAdmin: the action a refusal is recorded as (its object is the body's "name").
  std::optional<service::AuditAction> refused_as = std::nullopt;
  // kAccountAdmin: the same, for the account services' records.
  std::optional<service::AccountAction> account_refused_as = std::nullopt;
  // kSelf routes that change the caller's own account: refusals recorded on it.
  bool own_change = false;
};

// The object a refused change on an admin route is recorded with: the body's "name", if a string;
// for keys/destroy-unrecorded "hsm:" and its "hsm_key_id", as KeyService records that route.
std::string NamedObject(const json& body) {
  auto name = body.find("name");
  if (name != body.end() && name->is_string()) return name->get<std::string>();
  auto hsm_key_id = body.find("hsm_key_id");
  if (hsm_key_id != body.end() && hsm_key_id->is_string()) {
    // Lower-case, as KeyService records it.
    return "hsm:" + AsciiLower(OneLineSafe(hsm_key_id->get<std::string>(), 128));
  }
  return std::string();
}

Error Call::Refuse(Error error) const {
  if (own_change) return deps.accounts.RefusedOwnChange(account_caller(), std::move(error));
  if (account_refused_as) {
    return deps.accounts.RefusedChange(account_caller(), *account_refused_as, NamedObject(body),
                                       std::move(error));
  }
  if (refused_as) return deps.keys.Refused(caller(), *refused_as, NamedObject(body), error);
  return error;
}

Status CheckAccess(const RouteSpec& route, const Call& call) {
  const service::Principal& p = call.principal();
  std::optional<Error> refused;
  switch (route.access) {
    case Access::kSelf:
    case Access::kAccountAdmin:
      return OkStatus();
    case Access::kRead:
      if (!p.Has(Role::kAdmin) && !p.Has(Role::kAuditor)) {
        refused = PermissionDenied("account '" + p.name + "' lacks the admin or auditor role");
      }
      break;
    case Access::kAdmin:
      if (!p.Has(Role::kAdmin)) {
        refused = PermissionDenied("account '" + p.name + "' lacks the admin role");
      }
      break;
  }
  if (!refused && p.must_change_password) {
    refused = PermissionDenied("account '" + p.name +
                               "' must change its one-time password first (auth/password)");
  }
  if (!refused) return OkStatus();
  if (route.access != Access::kAdmin) return *refused;
  // A refused change is recorded; its object is the key the body names, whatever that holds.
  return call.Refuse(*refused);
}

// ---- auth/ --------------------------------------------------------------------------------------

Result<json> Whoami(const Call& c) {
  SIGNET_ASSIGN_OR_RETURN(service::AccountInfo me, c.deps.accounts.GetSelf(c.principal()));
  return AccountAnswer(me);
}

Result<json> ChangePassword(const Call& c) {
  SIGNET_ASSIGN_OR_RETURN(std::string old_text, c.Checked(ReqString(c.body, "old_password")));
  SecretBytes old_password{std::string_view(old_text)};
  SecureWipe(old_text.data(), old_text.size());
  SIGNET_ASSIGN_OR_RETURN(std::string new_text, c.Checked(ReqString(c.body, "new_password")));
  SecretBytes new_password{std::string_view(new_text)};
  SecureWipe(new_text.data(), new_text.size());
  Status changed = c.deps.accounts.ChangePassword(c.account_caller(), old_password, new_password);
  if (!changed.ok()) {
    // The bearer token is fine; it is the current password that is wrong (docs/api.md: 403). A
    // session that ended while the request ran stays 401.
    if (service::AccountService::IsWrongCurrentPassword(changed.error())) {
      return PermissionDenied(changed.error().message());
    }
    return std::move(changed).error();
  }
  return json::object();
}

// ---- accounts/ ----------------------------------------------------------------------------------

Result<json> ListAccounts(const Call& c) {
  SIGNET_ASSIGN_OR_RETURN(std::vector<service::AccountInfo> all,
                          c.deps.accounts.List(c.principal()));
  json list = json::array();
  for (const service::AccountInfo& a : all) list.push_back(AccountJson(a));
  return json{{"accounts", std::move(list)}};
}

Result<json> ShowAccount(const Call& c) {
  SIGNET_ASSIGN_OR_RETURN(std::string name, ReqAccountName(c.body, "name"));
  SIGNET_ASSIGN_OR_RETURN(service::AccountInfo a, c.deps.accounts.Get(c.principal(), name));
  return AccountAnswer(a);
}

Result<json> CreateAccount(const Call& c) {
  SIGNET_ASSIGN_OR_RETURN(std::string name, c.Checked(ReqString(c.body, "name")));
  SIGNET_ASSIGN_OR_RETURN(std::string kind_name, c.Checked(ReqString(c.body, "kind")));
  auto kind = store::ParseAccountKind(kind_name);
  if (!kind.ok()) return c.Refuse(InvalidArgument("'kind' must be person or service"));
  SIGNET_ASSIGN_OR_RETURN(store::RoleSet roles, c.Checked(ReqRoles(c.body)));
  SIGNET_ASSIGN_OR_RETURN(std::optional<std::string> fingerprint,
                          c.Checked(OptString(c.body, "client_cert_sha256")));
  if (*kind == store::AccountKind::kPerson) {
    if (fingerprint) {
      return c.Refuse(InvalidArgument("'client_cert_sha256' is only for service accounts"));
    }
    SIGNET_ASSIGN_OR_RETURN(service::NewPerson person,
                            c.deps.accounts.CreatePerson(c.account_caller(), name, roles));
    return json{{"account", AccountJson(person.account)},
                {"one_time_password", std::string(person.one_time_password.text_view())},
                {"totp_secret", std::string(person.totp.secret_base32.text_view())},
                {"totp_uri", std::string(person.totp.uri.text_view())}};
  }
  if (!fingerprint || fingerprint->empty()) {
    return c.Refuse(InvalidArgument(
        "'client_cert_sha256' is required for a service account: the SHA-256 of its TLS client "
        "certificate (DER) as 64 lower-case hex digits"));
  }
  SIGNET_ASSIGN_OR_RETURN(
      service::AccountInfo a,
      c.deps.accounts.CreateService(c.account_caller(), name, roles, *fingerprint));
  return AccountAnswer(a);
}

// accounts/disable, enable, unlock: one AccountService method on {"name"}.
template <Result<service::AccountInfo> (service::AccountService::*Method)(
    const service::AccountCaller&, std::string_view)>
Result<json> ChangeAccount(const Call& c) {
  SIGNET_ASSIGN_OR_RETURN(std::string name, c.Checked(ReqString(c.body, "name")));
  SIGNET_ASSIGN_OR_RETURN(service::AccountInfo a,
                          (c.deps.accounts.*Method)(c.account_caller(), name));
  return AccountAnswer(a);
}

Result<json> ResetPassword(const Call& c) {
  SIGNET_ASSIGN_OR_RETURN(std::string name, c.Checked(ReqString(c.body, "name")));
  service::AccountInfo a;
  SIGNET_ASSIGN_OR_RETURN(SecretBytes password,
                          c.deps.accounts.ResetPassword(c.account_caller(), name, &a));
  return json{{"account", AccountJson(a)},
              {"one_time_password", std::string(password.text_view())}};
}

Result<json> ResetTotp(const Call& c) {
  SIGNET_ASSIGN_OR_RETURN(std::string name, c.Checked(ReqString(c.body, "name")));
  service::AccountInfo a;
  SIGNET_ASSIGN_OR_RETURN(service::TotpEnrolment totp,
                          c.deps.accounts.ResetTotp(c.account_caller(), name, &a));
  return json{{"account", AccountJson(a)},
              {"totp_secret", std::string(totp.secret_base32.text_view())},
              {"totp_uri", std::string(totp.uri.text_view())}};
}

Result<json> SetRoles(const Call& c) {
  SIGNET_ASSIGN_OR_RETURN(std::string name, c.Checked(ReqString(c.body, "name")));
  SIGNET_ASSIGN_OR_RETURN(store::RoleSet roles, c.Checked(ReqRoles(c.body)));
  SIGNET_ASSIGN_OR_RETURN(service::AccountInfo a,
                          c.deps.accounts.SetRoles(c.account_caller(), name, roles));
  return AccountAnswer(a);
}

// ---- keys/ --------------------------------------------------------------------------------------

Result<json> ListKeys(const Call& c) {
  SIGNET_ASSIGN_OR_RETURN(std::vector<store::KeyRecord> keys, c.deps.keys.ListKeys());
  json list = json::array();
  for (const store::KeyRecord& k : keys) list.push_back(service::KeyToJson(k));
  return json{{"keys", std::move(list)}};
}

Result<json> ShowKey(const Call& c) {
  SIGNET_ASSIGN_OR_RETURN(std::string name, ReqKeyName(c.body));
  SIGNET_ASSIGN_OR_RETURN(service::KeyDetails details, c.deps.keys.ShowKey(name));
  return json{{"key", service::KeyDetailsToJson(details)}};
}

Result<json> CreateKey(const Call& c) {
  SIGNET_ASSIGN_OR_RETURN(std::string name, c.Checked(ReqKeyName(c.body)));
  SIGNET_ASSIGN_OR_RETURN(std::string algorithm, c.Checked(ReqString(c.body, "algorithm")));
  auto alg = ParseKeyAlgorithm(algorithm);
  if (!alg.ok()) return c.Refuse(alg.error().WithContext("'algorithm'"));
  SIGNET_ASSIGN_OR_RETURN(store::KeyRecord key,
                          c.deps.keys.CreateKey(c.caller(), name, *alg, c.principal().name));
  return KeyAnswer(key);
}

// keys/disable, enable, destroy: one KeyService method on {"name"}.
template <Result<store::KeyRecord> (service::KeyService::*Method)(const service::Caller&,
                                                                  std::string_view)>
Result<json> ChangeKey(const Call& c) {
  SIGNET_ASSIGN_OR_RETURN(std::string name, c.Checked(ReqKeyName(c.body)));
  SIGNET_ASSIGN_OR_RETURN(store::KeyRecord key, (c.deps.keys.*Method)(c.caller(), name));
  return KeyAnswer(key);
}

Result<json> CreateCsr(const Call& c) {
  SIGNET_ASSIGN_OR_RETURN(std::string name, c.Checked(ReqKeyName(c.body)));
  SIGNET_ASSIGN_OR_RETURN(std::string subject, c.Checked(ReqString(c.body, "subject")));
  SIGNET_ASSIGN_OR_RETURN(std::string pem, c.deps.keys.CreateCsr(c.caller(), name, subject));
  return json{{"csr_pem", std::move(pem)}};
}

Result<json> ImportChain(const Call& c) {
  SIGNET_ASSIGN_OR_RETURN(std::string name, c.Checked(ReqKeyName(c.body)));
  SIGNET_ASSIGN_OR_RETURN(std::string pem, c.Checked(ReqString(c.body, "chain_pem")));
  SIGNET_ASSIGN_OR_RETURN(store::KeyRecord key,
                          c.deps.keys.ImportCertificateChain(c.caller(), name, pem));
  return KeyAnswer(key);
}

Result<json> ListUnrecordedKeys(const Call& c) {
  SIGNET_ASSIGN_OR_RETURN(std::vector<service::UnrecordedKey> keys,
                          c.deps.keys.ListUnrecordedKeys());
  json list = json::array();
  for (const service::UnrecordedKey& k : keys) list.push_back(service::UnrecordedKeyToJson(k));
  return json{{"unrecorded_keys", std::move(list)}};
}

Result<json> DestroyUnrecordedKey(const Call& c) {
  SIGNET_ASSIGN_OR_RETURN(std::string id, c.Checked(ReqString(c.body, "hsm_key_id")));
  SIGNET_ASSIGN_OR_RETURN(service::UnrecordedKey gone,
                          c.deps.keys.DestroyUnrecordedKey(c.caller(), id));
  return json{{"destroyed", service::UnrecordedKeyToJson(gone)}};
}

Result<json> ListGrants(const Call& c) {
  SIGNET_ASSIGN_OR_RETURN(std::string name, ReqKeyName(c.body));
  SIGNET_ASSIGN_OR_RETURN(std::vector<std::string> ids,
                          c.deps.signing.ListGrants(c.caller(), name));
  SIGNET_ASSIGN_OR_RETURN(std::vector<service::AccountInfo> accounts,
                          c.deps.accounts.List(c.principal()));
  std::map<std::string, std::string> name_of;
  for (const service::AccountInfo& a : accounts) name_of[a.id] = a.name;
  std::vector<std::string> names;
  for (const std::string& id : ids) {
    auto it = name_of.find(id);
    names.push_back(it != name_of.end() ? it->second : id);  // an id without account: shown as is
  }
  std::sort(names.begin(), names.end());
  return json{{"accounts", std::move(names)}};
}

// keys/grant, keys/revoke: the account is named; SigningService takes its id.
template <Status (service::SigningService::*Method)(const service::Caller&, std::string_view,
                                                    std::string_view)>
Result<json> ChangeGrant(const Call& c) {
  SIGNET_ASSIGN_OR_RETURN(std::string name, c.Checked(ReqKeyName(c.body)));
  SIGNET_ASSIGN_OR_RETURN(std::string account, c.Checked(ReqAccountName(c.body, "account")));
  SIGNET_ASSIGN_OR_RETURN(service::AccountInfo a,
                          c.Checked(c.deps.accounts.Get(c.principal(), account)));
  SIGNET_TRY((c.deps.signing.*Method)(c.caller(), name, a.id));
  return json::object();
}

Result<json> GetPolicy(const Call& c) {
  SIGNET_ASSIGN_OR_RETURN(std::string name, ReqKeyName(c.body));
  SIGNET_ASSIGN_OR_RETURN(service::KeyPolicy policy, c.deps.signing.GetPolicy(c.caller(), name));
  return json{{"policy", PolicyJson(policy)}};
}

Result<json> SetPolicy(const Call& c) {
  SIGNET_ASSIGN_OR_RETURN(std::string name, c.Checked(ReqKeyName(c.body)));
  SIGNET_ASSIGN_OR_RETURN(service::KeyPolicyChange change, c.Checked(ReqPolicyChange(c.body)));
  SIGNET_TRY(c.deps.signing.ChangePolicy(c.caller(), name, change));
  SIGNET_ASSIGN_OR_RETURN(service::KeyPolicy now, c.deps.signing.GetPolicy(c.caller(), name));
  return json{{"policy", PolicyJson(now)}};
}

// ---- the route wrapper --------------------------------------------------------------------------

Response Serve(const ApiDependencies& deps, const RouteSpec& route, const Request& request,
               const json& body) {
  Result<json> answer = [&]() -> Result<json> {
    // Who first (401 before anything else), then the role, so that a refused change is recorded
    // whatever its body holds; then the body's field names (on an admin route a refusal is
    // recorded as well); the route itself reads and checks the field values.
    SIGNET_ASSIGN_OR_RETURN(
        internal::Authenticated who,
        internal::AuthenticateBearer(deps.accounts, request, /*allow_password_change_due=*/true));
    const Call call{deps, body, who, route.refused_as, route.account_refused_as, route.own_change};
    SIGNET_TRY(CheckAccess(route, call));
    if (Status fields = CheckFields(body, route.fields); !fields.ok()) {
      return call.Refuse(std::move(fields).error());
    }
    return route.run(call);
  }();
  if (!answer.ok()) return ApiErrorResponse(answer.error(), request.request_id);
  return internal::JsonResponse(*answer);
}

}  // namespace

MetricsAccess MetricsReaders(service::AccountService& accounts) {
  return [&accounts](const Request& request) -> std::optional<Response> {
    Result<internal::Authenticated> who = internal::AuthenticateBearer(accounts, request);
    if (!who.ok()) return ApiErrorResponse(who.error(), request.request_id);
    const service::Principal& p = who->principal;
    if (!p.Has(Role::kAdmin) && !p.Has(Role::kAuditor)) {
      return ApiErrorResponse(PermissionDenied("account '" + p.name +
                                               "' lacks the auditor or admin role needed to "
                                               "read /metrics"),
                              request.request_id);
    }
    return std::nullopt;
  };
}

Status RegisterApiRoutes(Router& router, ApiDependencies deps) {
  using service::AccountAction;
  using service::AccountService;
  using service::AuditAction;
  using service::KeyService;
  using service::SigningService;
  // One shared copy; the handlers hold it (the references inside point at the services).
  auto d = std::make_shared<const ApiDependencies>(deps);
  // docs/api.md "Routes", one entry per route in the order of its table (hence no clang-format).
  // Every route authenticates against the database and most use the HSM, the database or
  // Argon2id, so all are blocking (worker pool).
  // clang-format off
  const std::vector<RouteSpec> routes = {
      {"auth/whoami", Access::kSelf, Whoami},
      {"auth/password", Access::kSelf, ChangePassword, {"old_password", "new_password"}, {},
       std::nullopt, /*own_change=*/true},
      {"accounts/list", Access::kRead, ListAccounts},
      {"accounts/show", Access::kRead, ShowAccount, {"name"}},
      {"accounts/create", Access::kAccountAdmin, CreateAccount,
       {"name", "kind", "roles", "client_cert_sha256"}, {}, AccountAction::kAccountCreate},
      {"accounts/disable", Access::kAccountAdmin, ChangeAccount<&AccountService::Disable>,
       {"name"}, {}, AccountAction::kAccountDisable},
      {"accounts/enable", Access::kAccountAdmin, ChangeAccount<&AccountService::Enable>, {"name"},
       {}, AccountAction::kAccountEnable},
      {"accounts/unlock", Access::kAccountAdmin, ChangeAccount<&AccountService::Unlock>, {"name"},
       {}, AccountAction::kUnlock},
      {"accounts/reset-totp", Access::kAccountAdmin, ResetTotp, {"name"}, {},
       AccountAction::kAccountResetTotp},
      {"accounts/reset-password", Access::kAccountAdmin, ResetPassword, {"name"}, {},
       AccountAction::kAccountChange},
      {"accounts/roles", Access::kAccountAdmin, SetRoles, {"name", "roles"}, {},
       AccountAction::kAccountRoles},
      {"keys/list", Access::kRead, ListKeys},
      {"keys/show", Access::kRead, ShowKey, {"name"}},
      {"keys/create", Access::kAdmin, CreateKey, {"name", "algorithm"}, AuditAction::kKeyCreate},
      {"keys/disable", Access::kAdmin, ChangeKey<&KeyService::DisableKey>, {"name"},
       AuditAction::kKeyDisable},
      {"keys/enable", Access::kAdmin, ChangeKey<&KeyService::EnableKey>, {"name"},
       AuditAction::kKeyEnable},
      {"keys/destroy", Access::kAdmin, ChangeKey<&KeyService::DestroyKey>, {"name"},
       AuditAction::kKeyDestroy},
      {"keys/csr", Access::kAdmin, CreateCsr, {"name", "subject"}, AuditAction::kKeyCsr},
      {"keys/import-chain", Access::kAdmin, ImportChain, {"name", "chain_pem"},
       AuditAction::kKeyImportCert},
      {"keys/unrecorded", Access::kRead, ListUnrecordedKeys},
      {"keys/destroy-unrecorded", Access::kAdmin, DestroyUnrecordedKey, {"hsm_key_id"},
       AuditAction::kKeyDestroy},
      {"keys/grants", Access::kRead, ListGrants, {"name"}},
      {"keys/grant", Access::kAdmin, ChangeGrant<&SigningService::Grant>, {"name", "account"},
       AuditAction::kGrant},
      {"keys/revoke", Access::kAdmin, ChangeGrant<&SigningService::Revoke>, {"name", "account"},
       AuditAction::kRevokeGrant},
      {"keys/policy", Access::kRead, GetPolicy, {"name"}},
      {"keys/set-policy", Access::kAdmin, SetPolicy, {"name", "policy"},
       AuditAction::kPolicyChange},
  };
  // clang-format on
  for (const RouteSpec& route : routes) {
    SIGNET_TRY(router.Add(
        "POST", std::string(kPrefix) + std::string(route.name),
        internal::JsonRoute(
            [d, route](const Request& r, const json& body) { return Serve(*d, route, r, body); },
            [](const Error& error, const Request& r) {
              return ApiErrorResponse(error, r.request_id);
            }),
        RouteOptions{.blocking = true}));
  }
  return OkStatus();
}

}  // namespace signet::server::api
