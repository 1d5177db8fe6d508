// Service metrics for /metrics (issue 3: "signatures by key and outcome, HSM errors, failed
// logins"), derived from what already flows through the ports rather than by instrumenting the use
// cases: decorators of the AuditSink, KeyStore and SecretSealer ports that pass every call through
// unchanged and count what they see in a server::Metrics registry.
//
// They live in the composition root (cli/), next to ServiceStack, because it is the one place that
// knows both server::Metrics and the ports; hsm/ and service/ stay free of the server component.
//
// Metric families (every label value is bounded: key names of keys that exist, enum names, error
// code names; text a client chose never becomes a label):
//   signet_audit_events_total{action}              events recorded, by AuditActionName
//   signet_audit_failures_total{action}            events the inner sink failed to record
//   signet_signatures_total{key,outcome}           hashes signed ("success") or refused (the
//                                                  ErrorCodeName of the refusal, e.g.
//                                                  "permission_denied"), from sign / sign_refused;
//                                                  key = the key's name, or "unknown" when no key
//                                                  has the name or id the client gave
//   signet_sign_requests_total{key,outcome}        signHash calls, labelled the same way
//   signet_authorizations_total{outcome}           authorize / authorize_refused (incl.
//                                                  extendTransaction), outcome as above
//   signet_logins_total{method,outcome}            login attempts; method = AuthMethodName
//                                                  ("password+totp", "mtls"); outcome = "success"
//                                                  or "failure" (never why: /metrics answers
//                                                  anyone, and a reason such as "wrong_totp" or
//                                                  "unknown_account" would confirm a guessed
//                                                  password or name; the audit log has it)
//   signet_login_failures_total                    failed login attempts (all methods)
//   signet_lockouts_total                          failures that locked an account
//   signet_bearer_token_rejections_total           requests whose bearer token was refused (no
//                                                  reason: "certificate_mismatch" would confirm a
//                                                  stolen token is live)
//   signet_hsm_operations_total{operation}         KeyStore / SecretSealer calls
//   signet_hsm_errors_total{operation,code}        of those, the failed ones, by ErrorCodeName
// operation is one of generate_key, public_key, sign, protection, destroy_key, describe_token,
// seal, unseal.
//
// Counting happens only after the wrapped call returned; an event is counted as recorded only if
// the inner sink recorded it, so the counts never run ahead of the audit trail.
//
// Threads: all three decorators are safe to call from many threads if the wrapped port is
// (server::Metrics is thread-safe).
#pragma once

#include <string>
#include <string_view>

#include "hsm/key_store.h"
#include "hsm/secret_sealer.h"
#include "server/metrics.h"
#include "service/audit_sink.h"
#include "store/store.h"

namespace signet::cli {

// Declares (HELP/TYPE) every family above and creates the unlabelled counters at 0, so a scrape
// shows them before the first event. Idempotent.
void DeclareServiceMetrics(server::Metrics& metrics);

// Records each event with `inner`; then, if that succeeded, counts it. `store` resolves the key
// named by a refused signature whose event carries no key name (the service only fills it in once
// it found the key); it may be null, and then such refusals are labelled "unknown". The
// references must outlive the sink.
class MetricsAuditSink final : public service::AuditSink {
 public:
  MetricsAuditSink(service::AuditSink& inner, store::Store* store, server::Metrics& metrics);
  MetricsAuditSink(const MetricsAuditSink&) = delete;  // Holds references; copies add nothing.
  MetricsAuditSink& operator=(const MetricsAuditSink&) = delete;

  // The inner sink's result, unchanged.
  Status Record(const service::AuditEvent& event) override;
  Status RecordChange(const service::AuditEvent& event,
                      const service::AuditedChange& change) override;
  Status RecordIf(const service::AuditEvent& event, const service::AuditCheck& check) override;

 private:
  // Counts `recorded`, the inner sink's result for `event`, and returns it; an error counts as an
  // audit failure only if `log_failed` (not when a change was refused).
  Status Tally(const service::AuditEvent& event, Status recorded, bool log_failed);
  void Count(const service::AuditEvent& event);
  std::string KeyLabel(const service::AuditEvent& event);

  // Constant after construction.
  service::AuditSink& inner_;
  store::Store* const store_;
  server::Metrics& metrics_;
};

// Forwards to `inner` and counts every call and every error. `inner` and `metrics` must outlive it.
class MetricsKeyStore final : public hsm::KeyStore {
 public:
  MetricsKeyStore(hsm::KeyStore& inner, server::Metrics& metrics);
  MetricsKeyStore(const MetricsKeyStore&) = delete;  // Holds references; copies add nothing.
  MetricsKeyStore& operator=(const MetricsKeyStore&) = delete;

  // hsm::KeyStore: `inner`'s results, unchanged.
  Result<hsm::GeneratedKey> GenerateKey(KeyAlgorithm algorithm, std::string_view label) override;
  Result<Bytes> PublicKey(const hsm::HsmKeyId& id) override;
  Result<Bytes> Sign(const hsm::HsmKeyId& id, SignatureScheme scheme, HashAlgorithm hash,
                     ByteView input) override;
  Result<hsm::KeyProtection> Protection(const hsm::HsmKeyId& id) override;
  Status DestroyKey(const hsm::HsmKeyId& id) override;
  Result<hsm::TokenDescription> DescribeToken() override;
  Result<std::vector<hsm::TokenKey>> ListKeys() override;

 private:
  // Constant after construction.
  hsm::KeyStore& inner_;
  server::Metrics& metrics_;
};

// The same for the SecretSealer (TOTP seeds are sealed by a key in the same module).
class MetricsSecretSealer final : public hsm::SecretSealer {
 public:
  MetricsSecretSealer(hsm::SecretSealer& inner, server::Metrics& metrics);
  MetricsSecretSealer(const MetricsSecretSealer&) = delete;  // Holds references.
  MetricsSecretSealer& operator=(const MetricsSecretSealer&) = delete;

  // hsm::SecretSealer: `inner`'s results, unchanged.
  Result<Bytes> Seal(ByteView plaintext, ByteView aad) override;
  Result<SecretBytes> Unseal(ByteView sealed, ByteView aad) override;

 private:
  // Constant after construction.
  hsm::SecretSealer& inner_;
  server::Metrics& metrics_;
};

}  // namespace signet::cli
