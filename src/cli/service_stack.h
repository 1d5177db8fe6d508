// ServiceStack: the object graph of the signing service, built in one place (DESIGN.md §2: wiring
// lives in cli/serve). Given the ports (KeyStore, SecretSealer, Store, Clock) it builds
//
//   the audit log: audit::Sequencer (group commit) -> service::LogAuditSink; audit::Integrator
//   (tiles and HSM-signed checkpoints, every checkpoint_interval); audit::LogMonitor (re-verifies
//   the newest checkpoints every verify_interval; "log" in /healthz, signet_log_* in /metrics)
//   MetricsKeyStore / MetricsSecretSealer / MetricsAuditSink   counting decorators of the ports
//                                                              (cli/service_metrics.h)
//   AccountService (Argon2PasswordHasher, OathTotp)            events -> cli/account_audit.h
//   SigningService, KeyService
//   server::Metrics and the Router: GET /healthz (store, HSM), GET /metrics, the CSC API v2
//   under /csc/v2/, the management API under /api/v1/ and the log under /log/ (server/log)
//   server::Server (HTTPS)
//   Housekeeper (cli/housekeeping.h): deletes expired activations and bearer tokens every minute
//     and logs the held counts of anonymous rejections (AccountService::LogHeldRejections; the
//     last minute's at shutdown, in Wait)
//
// and runs it. `signet serve` opens the data folder and hands its ports to a ServiceStack; tests
// and benchmarks build one in-process the same way, e.g.:
//
//   auto& sandbox = hsm::testing::SharedSoftHsmSandbox();              // softhsm_sandbox.h
//   auto keys = hsm::Pkcs11KeyStore::Open(*sandbox.CreateToken("e2e"));
//   auto sealer = hsm::Pkcs11SecretSealer::Open(**keys);
//   auto store = store::SqliteStore::Open(tmp_dir + "/signet.db");
//   FakeClock clock(...);                                               // or SystemClock
//   auto tls = pki::CreateLocalhostTlsIdentity(clock.Now());
//   // write tls->certificate_pem to tmp_dir/tls.crt and tls->private_key_pem to tmp_dir/tls.key
//   // with fs::WriteFileAtomic(..., 0600): the server refuses a key file others can read
//   ServiceStackOptions options;
//   options.server.port = 0;                                            // any free port
//   options.server.tls.certificate_chain_file = tmp_dir + "/tls.crt";
//   options.server.tls.private_key_file = tmp_dir + "/tls.key";
//   options.argon2 = {.iterations = 1, .memory_kib = 4096};              // cheaper logins
//   options.log.origin = "signet.test/e2e";
//   auto stack = ServiceStack::Create({**keys, **sealer, **store, clock, {"e2e", "1"}},
//                                     std::move(options));
//   uint16_t port = *(*stack)->Start();
//   // clients: client::HttpsClient with server_url "https://127.0.0.1:<port>" and
//   // ca_file tmp_dir + "/tls.crt" (the self-signed certificate is its own CA)
//   // admin work in-process: (*stack)->accounts().CreatePerson(service::SystemPrincipal(), ...)
//   (*stack)->Stop(); (*stack)->Wait();
//
// Lifetime: the ports must outlive the stack. The destructor stops and waits.
// Threads: build and Start on one thread. Stop is thread-safe and idempotent (a signal handler
// thread of the server may also stop it); Wait must be called from one thread, never from a
// handler. The services and the metrics returned by the accessors are thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "audit/integrator.h"
#include "audit/monitor.h"
#include "audit/sequencer.h"
#include "cli/housekeeping.h"
#include "cli/service_metrics.h"
#include "common/clock.h"
#include "common/result.h"
#include "hsm/key_store.h"
#include "hsm/secret_sealer.h"
#include "server/metrics.h"
#include "server/server.h"
#include "service/accounts.h"
#include "service/adapters/argon2_password_hasher.h"
#include "service/adapters/oath_totp.h"
#include "service/audit_sink.h"
#include "service/key_service.h"
#include "service/signing.h"
#include "store/store.h"

namespace signet::cli {

// The ports a stack runs on; all must outlive it.
struct ServicePorts {
  hsm::KeyStore& key_store;
  hsm::SecretSealer& sealer;  // normally a Pkcs11SecretSealer on the same token as key_store
  store::Store& store;
  const Clock& clock;
  service::TokenIdentity token;  // copied into the records of keys the KeyService creates
};

struct LogOptions {
  // Checkpoint origin and signed-note key name (audit::CheckKeyName rules). Required.
  std::string origin;
  bool public_read = false;  // serve /log/ without a token
  std::chrono::milliseconds checkpoint_interval{500};
  std::chrono::seconds verify_interval{60};
  // Run the integrator and the monitor threads (tests that drive them by hand turn this off).
  bool background = true;
  // Where the integrator keeps the newest checkpoint it signed, outside the database
  // (audit::FileCheckpointWitness): a database rolled back behind it is refused at start. Empty:
  // none (tests).
  std::string witness_file;
};

struct ServiceStackOptions {
  LogOptions log;
  // Serve /metrics without a token; else an auditor's or admin's bearer token is needed.
  bool metrics_public = false;
  service::AccountServiceOptions accounts;
  service::SigningOptions signing;
  server::ServerOptions server;
  // Password hashing cost; the default is the production cost (64 MiB, 3 passes).
  service::Argon2Parameters argon2;
  HousekeepingOptions housekeeping;
  // Called with each account event after it was recorded (serve: removes the bootstrap file once
  // the bootstrap admin changed its password). Must be thread-safe. May be empty.
  std::function<void(const service::AccountEvent&)> after_account_event;
  // Benchmarks only: given the log's sink, returns the sink the services use instead (e.g. a
  // timing decorator the caller owns around it; it must outlive the stack). It must pass every
  // event to `log` and succeed only if that did: the signing service counts on the log's durable
  // commit (SigningOptions::audit_commits_to_store). Empty: the log's.
  std::function<service::AuditSink&(service::AuditSink& log)> decorate_audit;
};

class ServiceStack {
 public:
  // Builds the graph and the server (loads the TLS files: InvalidArgument, NotFound or
  // PermissionDenied as server::Server::Create says), registers the routes; does not bind. Finds
  // or creates the log's checkpoint key in the HSM (audit::EnsureLogKey: FailedPrecondition if
  // the log was created with another origin) and checks the stored tiles against the newest
  // checkpoint (DataLoss if they disagree).
  static Result<std::unique_ptr<ServiceStack>> Create(ServicePorts ports,
                                                      ServiceStackOptions options);
  // Stops and waits.
  ~ServiceStack();
  // Holds references into itself (services -> decorators -> ports) and threads.
  ServiceStack(const ServiceStack&) = delete;
  ServiceStack& operator=(const ServiceStack&) = delete;

  // Binds, starts the server and the housekeeping, integrator and monitor threads, and returns
  // the bound port (the real one when options.server.port is 0). Unavailable if the address
  // cannot be bound; FailedPrecondition if called twice.
  Result<uint16_t> Start();
  // Begins a clean shutdown of the server (server::Server::Stop) and stops housekeeping; returns
  // at once. Thread-safe, idempotent. The integrator and monitor stop in Wait, after the server,
  // so the last requests' entries still get a checkpoint.
  void Stop();
  // Blocks until the server has stopped (after Stop or a handled signal), then stops and joins
  // the housekeeping thread. Returns at once if never started. `before_last_checkpoint`, if
  // given, runs once no request is left and before the log's last checkpoint round, so what it
  // records (the service_stop entry) is signed before the process exits.
  void Wait(const std::function<void()>& before_last_checkpoint = {});

  // The bound port after Start, else 0.
  uint16_t port() const;

  service::AccountService& accounts() { return accounts_; }
  service::SigningService& signing() { return signing_; }
  service::KeyService& keys() { return keys_; }
  server::Metrics& metrics() { return metrics_; }
  // The counting decorators the services use; calls through them are counted like the services'.
  hsm::KeyStore& key_store() { return key_store_; }
  service::AuditSink& audit() { return audit_; }
  audit::Sequencer& sequencer() { return sequencer_; }
  audit::Integrator& integrator() { return *integrator_; }
  audit::LogMonitor& monitor() { return *monitor_; }
  store::Store& store() { return store_; }
  const Clock& clock() const { return clock_; }

 private:
  ServiceStack(ServicePorts ports, ServiceStackOptions options);
  Status BuildLog(const LogOptions& options);
  Status BuildServer(server::ServerOptions options, const LogOptions& log);

  // Constant after construction. Declared in dependency order: members are destroyed in reverse,
  // so the server and the housekeeper (last) stop before anything they use goes away.
  store::Store& store_;
  const Clock& clock_;
  server::Metrics metrics_;
  MetricsKeyStore key_store_;
  MetricsSecretSealer sealer_;
  audit::Sequencer sequencer_;
  service::LogAuditSink log_sink_;
  MetricsAuditSink audit_;
  service::Argon2PasswordHasher hasher_;
  service::OathTotp totp_;
  service::AccountService accounts_;
  service::SigningService signing_;
  service::KeyService keys_;
  Housekeeper housekeeper_;
  std::unique_ptr<audit::Integrator> integrator_;  // set by Create
  std::unique_ptr<audit::LogMonitor> monitor_;     // set by Create
  std::unique_ptr<server::Server> server_;         // set by Create
  bool housekeeping_enabled_ = true;
  bool log_background_ = true;
  bool metrics_public_ = false;
  bool log_started_ = false;  // used by Start and Wait only (one thread)
  std::chrono::milliseconds checkpoint_interval_{500};
  std::chrono::seconds verify_interval_{60};
};

}  // namespace signet::cli
