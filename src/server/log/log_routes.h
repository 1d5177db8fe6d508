// server/log: the audit log over HTTP (docs/api.md "Log"; issue 4). Read-only:
//
//  - the C2SP tlog-tiles resources under /log/ (c2sp.org/tlog-tiles), so standard tooling can
//    mirror and verify the log: GET /log/checkpoint, GET /log/tile/<L>/<N>[.p/<W>] and
//    GET /log/tile/entries/<N>[.p/<W>];
//  - conveniences under /api/v1/log/: inclusion and consistency proofs against signed sizes, and a
//    query of entries by time, key, account and action.
//
// Only what the latest signed checkpoint covers is published as tiles and proofs: a tile or proof
// beyond its size is 404 / 400, so every byte served is authenticated by a checkpoint a client can
// verify. Entries are served verbatim (the bytes that were hashed), never re-serialised.
//
// Access: every route needs a bearer token (from /csc/v2/auth/login) of an account with the
// auditor or admin role, except that with `public_read` the /log/ resources are open to anyone.
// The entry bundles then publish every signed entry in full: account and key names, client
// addresses, the hashes signed, configuration (secrets excluded); names tried at login that are no
// account's are not recorded. Proofs and the entry query always need auditor or admin,
// but add little once entries are public. Reads are not themselves logged.
//
// Errors are JSON {"error","error_description"} with the names and statuses of the management API
// (docs/api.md "Errors").
//
// Also here: the glue from audit::LogMonitor to the transport's /healthz and /metrics.
//
// Threads: the handlers keep no state; they are as thread-safe as the store and the account
// service (which are). Every route is `blocking` (it reads the database).
#pragma once

#include "audit/monitor.h"
#include "common/result.h"
#include "server/metrics.h"
#include "server/server.h"
#include "service/accounts.h"
#include "store/store.h"

namespace signet::server::log {

struct LogRouteDependencies {
  store::Store& store;
  service::AccountService& accounts;
  // Open the /log/ resources (checkpoint, tiles, entry bundles) to unauthenticated clients, and
  // mark them cacheable by shared caches ("public"). Proofs and the entry query still need auditor
  // or admin.
  bool public_read = false;
  // How many log requests may be admitted at once (queued for or running on the WorkerPool), for
  // each of two groups: the tlog-tiles resources (anyone's, with public_read) and the auditor
  // routes (proofs, entry query), so that anonymous mirrors cannot lock auditors out either.
  // Beyond it a request is answered 503 + Retry-After at once. 0: no bound of their own. The
  // service sets a quarter of its workers for each, so log readers never take more than half.
  size_t max_concurrent_reads = 0;
};

// Registers the GET routes of docs/api.md "Log" on `router`: /log/checkpoint, the prefix route
// /log/tile/*, /api/v1/log/proof/inclusion, /api/v1/log/proof/consistency and /api/v1/log/entries.
// The store and service in `deps` must outlive the router (and the server that runs it).
// InvalidArgument if a route is already registered.
Status RegisterLogRoutes(Router& router, LogRouteDependencies deps);

// ---- monitoring ----

// The "log" check for AddHealthzRoute: monitor.Health() (the last check failed, or checks are
// overdue: older than three intervals). `monitor` must outlive the router.
HealthCheck LogHealthCheck(const audit::LogMonitor& monitor);

// Declares the log families in `metrics` (HELP texts). Optional: RecordLogMetrics declares on use.
void DeclareLogMetrics(Metrics& metrics);

// Records one check's outcome (use as LogMonitorOptions::on_check):
//   signet_log_size                    gauge: entries in the store at the check
//   signet_log_checkpoint_size         gauge: size of the latest signed checkpoint
//   signet_log_checkpoint_age_seconds  gauge: its age when checked (0 before the first checkpoint)
//   signet_log_verify_ok               gauge: 1 if the check passed, else 0
//   signet_log_verify_failures_total   counter: failed checks
//   signet_log_data_loss_total         counter: of which found the log altered (DataLoss)
// Sizes are left unchanged when the check could not read them (a store error).
void RecordLogMetrics(const audit::LogCheck& check, Metrics& metrics);

// Writes the operational log's lines for one check (use beside RecordLogMetrics): an error line for
// every check that fails (a log that does not verify is an alarm, not to be found only by whoever
// next probes /healthz), and a warning for the first check that passes after a failed one.
// `was_failing` carries that state from one check to the next (a monitor's checks run one at a
// time).
void LogCheckLine(const audit::LogCheck& check, bool& was_failing);

}  // namespace signet::server::log
