#include "cli/service_metrics.h"

#include <array>
#include <atomic>
#include <exception>
#include <string>
#include <utility>

#include "service/accounts.h"

namespace signet::cli {
namespace {

using service::AuditAction;
using service::AuditEvent;

constexpr std::string_view kUnknown = "unknown";
// An outcome that is not one of the known names (a future refusal text, say): never a label.
constexpr std::string_view kOtherOutcome = "other";

constexpr std::array kErrorCodes = {ErrorCode::kInvalidArgument,   ErrorCode::kNotFound,
                                    ErrorCode::kAlreadyExists,     ErrorCode::kPermissionDenied,
                                    ErrorCode::kUnauthenticated,   ErrorCode::kFailedPrecondition,
                                    ErrorCode::kResourceExhausted, ErrorCode::kUnavailable,
                                    ErrorCode::kDataLoss,          ErrorCode::kInternal};

// The outcome of a signing-service event as a bounded label: "success", or the error code name
// the service put in details["error"] when it recorded the refusal (signing.cc RecordRefusal);
// the outcome text itself is the error message and may quote client input.
std::string SigningOutcome(const AuditEvent& event) {
  if (event.succeeded()) return std::string(service::kOutcomeSuccess);
  auto it = event.details.find("error");
  if (it != event.details.end()) {
    for (ErrorCode code : kErrorCodes) {
      if (ErrorCodeName(code) == it->second) return it->second;
    }
  }
  return std::string(kOtherOutcome);
}

// account_audit.cc records AccountService's token_rejected as login_failure with this detail.
bool IsTokenRejection(const AuditEvent& event) {
  auto it = event.details.find("account_action");
  return it != event.details.end() && it->second == "token_rejected";
}

// How many attempts an event stands for: the count of an entry that stands for anonymous
// rejections not logged one by one (service::RejectionThrottle), else 1. So the counters see
// every attempt, if up to a minute late for those.
double Attempts(const AuditEvent& event) {
  auto it = event.details.find("not_logged_one_by_one");
  if (it == event.details.end()) return 1;
  try {
    const long long n = std::stoll(it->second);
    return n > 0 ? static_cast<double>(n) : 1;
  } catch (const std::exception&) {
    return 1;
  }
}

void CountCall(server::Metrics& metrics, std::string_view operation, const Error* error) {
  metrics.Increment("signet_hsm_operations_total", {{"operation", std::string(operation)}});
  if (error != nullptr) {
    metrics.Increment("signet_hsm_errors_total",
                      {{"operation", std::string(operation)},
                       {"code", std::string(ErrorCodeName(error->code()))}});
  }
}

template <typename T>
Result<T> Counted(server::Metrics& metrics, std::string_view operation, Result<T> result) {
  CountCall(metrics, operation, result.ok() ? nullptr : &result.error());
  return result;
}

}  // namespace

void DeclareServiceMetrics(server::Metrics& metrics) {
  metrics.DeclareCounter("signet_audit_events_total", "Audit events recorded, by action.");
  metrics.DeclareCounter("signet_audit_failures_total",
                         "Audit events the audit sink failed to record, by action.");
  metrics.DeclareCounter("signet_signatures_total",
                         "Hashes signed (outcome success) or refused (outcome = error code), by "
                         "key name.");
  metrics.DeclareCounter("signet_sign_requests_total",
                         "signHash calls, by key name and outcome (success or error code).");
  metrics.DeclareCounter("signet_authorizations_total",
                         "Signature activations (authorize, extendTransaction), by outcome.");
  metrics.DeclareCounter("signet_logins_total", "Login attempts, by method and outcome.");
  metrics.DeclareCounter("signet_login_failures_total", "Failed login attempts.");
  metrics.DeclareCounter("signet_lockouts_total", "Failed logins that locked an account.");
  metrics.DeclareCounter("signet_bearer_token_rejections_total",
                         "Requests whose bearer token was refused.");
  metrics.DeclareCounter("signet_hsm_operations_total", "Calls into the HSM, by operation.");
  metrics.DeclareCounter("signet_hsm_errors_total",
                         "Failed calls into the HSM, by operation and error code.");
  metrics.Increment("signet_login_failures_total", {}, 0);
  metrics.Increment("signet_lockouts_total", {}, 0);
  metrics.Increment("signet_bearer_token_rejections_total", {}, 0);
}

// ---- MetricsAuditSink ----

MetricsAuditSink::MetricsAuditSink(service::AuditSink& inner, store::Store* store,
                                   server::Metrics& metrics)
    : inner_(inner), store_(store), metrics_(metrics) {}

Status MetricsAuditSink::Record(const AuditEvent& event) {
  return Tally(event, inner_.Record(event), /*log_failed=*/true);
}

Status MetricsAuditSink::RecordChange(const AuditEvent& event,
                                      const service::AuditedChange& change) {
  // A change the store refused is the caller's answer, not a failure of the audit log.
  std::atomic<bool> refused{false};
  Status recorded = inner_.RecordChange(event, [&](service::AuditDetails& details) -> Status {
    Status changed = change(details);
    refused.store(!changed.ok() && service::IsRefusal(changed.error()));
    return changed;
  });
  return Tally(event, std::move(recorded), /*log_failed=*/!refused.load());
}

Status MetricsAuditSink::RecordIf(const AuditEvent& event, const service::AuditCheck& check) {
  // A check that failed is the caller's answer (the key was disabled meanwhile, the account holds
  // too many open authorizations) or the store's, not a failure of the audit log.
  std::atomic<bool> refused{false};
  Status recorded = inner_.RecordIf(event, [&]() -> Status {
    Status passed = check();
    refused.store(!passed.ok());
    return passed;
  });
  return Tally(event, std::move(recorded), /*log_failed=*/!refused.load());
}

Status MetricsAuditSink::Tally(const AuditEvent& event, Status recorded, bool log_failed) {
  const std::string action(service::AuditActionName(event.action));
  if (!recorded.ok()) {
    if (log_failed) metrics_.Increment("signet_audit_failures_total", {{"action", action}});
    return recorded;
  }
  metrics_.Increment("signet_audit_events_total", {{"action", action}});
  Count(event);
  return recorded;
}

std::string MetricsAuditSink::KeyLabel(const AuditEvent& event) {
  // The service names the key only once it has resolved it, so a name there is a real key's.
  if (event.signature && !event.signature->key_name.empty()) return event.signature->key_name;
  // Refused before the key was resolved (e.g. no grant): the object is the credential as the
  // client gave it, id or name. Only an existing key's name may become a label.
  if (store_ != nullptr && !event.object.empty()) {
    if (auto by_id = store_->GetKeyById(event.object); by_id.ok()) return by_id->name;
    if (auto by_name = store_->GetKeyByName(event.object); by_name.ok()) return by_name->name;
  }
  return std::string(kUnknown);
}

void MetricsAuditSink::Count(const AuditEvent& event) {
  switch (event.action) {
    case AuditAction::kSign:
    case AuditAction::kSignRefused: {
      const server::Labels labels = {{"key", KeyLabel(event)}, {"outcome", SigningOutcome(event)}};
      const size_t hashes = event.signature ? event.signature->hashes.size() : 0;
      metrics_.Increment("signet_signatures_total", labels, static_cast<double>(hashes));
      metrics_.Increment("signet_sign_requests_total", labels);
      return;
    }
    case AuditAction::kAuthorize:
    case AuditAction::kAuthorizeRefused:
      metrics_.Increment("signet_authorizations_total", {{"outcome", SigningOutcome(event)}});
      return;
    case AuditAction::kLockout:
      // Recorded after the login_failure that caused it, which counted the attempt.
      metrics_.Increment("signet_lockouts_total");
      return;
    case AuditAction::kLoginSuccess:
    case AuditAction::kLoginFailure: {
      // No reasons here: /metrics answers anyone, and "wrong_totp" would confirm a guessed
      // password, "unknown_account" a name, "certificate_mismatch" a stolen token. The audit log
      // keeps the reasons for those allowed to read it.
      const double attempts = Attempts(event);
      if (IsTokenRejection(event)) {
        metrics_.Increment("signet_bearer_token_rejections_total", {}, attempts);
        return;
      }
      metrics_.Increment("signet_logins_total",
                         {{"method", std::string(service::AuthMethodName(event.actor.auth_method))},
                          {"outcome", event.action == AuditAction::kLoginSuccess
                                          ? std::string(service::kOutcomeSuccess)
                                          : std::string("failure")}},
                         attempts);
      if (event.action != AuditAction::kLoginSuccess) {
        metrics_.Increment("signet_login_failures_total", {}, attempts);
      }
      return;
    }
    default:
      return;
  }
}

// ---- MetricsKeyStore ----

MetricsKeyStore::MetricsKeyStore(hsm::KeyStore& inner, server::Metrics& metrics)
    : inner_(inner), metrics_(metrics) {}

Result<hsm::GeneratedKey> MetricsKeyStore::GenerateKey(KeyAlgorithm algorithm,
                                                       std::string_view label) {
  return Counted(metrics_, "generate_key", inner_.GenerateKey(algorithm, label));
}

Result<Bytes> MetricsKeyStore::PublicKey(const hsm::HsmKeyId& id) {
  return Counted(metrics_, "public_key", inner_.PublicKey(id));
}

Result<Bytes> MetricsKeyStore::Sign(const hsm::HsmKeyId& id, SignatureScheme scheme,
                                    HashAlgorithm hash, ByteView input) {
  return Counted(metrics_, "sign", inner_.Sign(id, scheme, hash, input));
}

Result<hsm::KeyProtection> MetricsKeyStore::Protection(const hsm::HsmKeyId& id) {
  return Counted(metrics_, "protection", inner_.Protection(id));
}

Status MetricsKeyStore::DestroyKey(const hsm::HsmKeyId& id) {
  Status status = inner_.DestroyKey(id);
  CountCall(metrics_, "destroy_key", status.ok() ? nullptr : &status.error());
  return status;
}

Result<hsm::TokenDescription> MetricsKeyStore::DescribeToken() {
  return Counted(metrics_, "describe_token", inner_.DescribeToken());
}

Result<std::vector<hsm::TokenKey>> MetricsKeyStore::ListKeys() {
  return Counted(metrics_, "list_keys", inner_.ListKeys());
}

// ---- MetricsSecretSealer ----

MetricsSecretSealer::MetricsSecretSealer(hsm::SecretSealer& inner, server::Metrics& metrics)
    : inner_(inner), metrics_(metrics) {}

Result<Bytes> MetricsSecretSealer::Seal(ByteView plaintext, ByteView aad) {
  return Counted(metrics_, "seal", inner_.Seal(plaintext, aad));
}

Result<SecretBytes> MetricsSecretSealer::Unseal(ByteView sealed, ByteView aad) {
  return Counted(metrics_, "unseal", inner_.Unseal(sealed, aad));
}

}  // namespace signet::cli
