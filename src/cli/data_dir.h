// The composition root for commands that work on a local data folder: reads signet.toml, applies
// command-line and environment overrides, points SoftHSM2 at the folder's own configuration, opens
// the PKCS#11 KeyStore and the SQLite Store, and builds the KeyService on them. Also creates the
// embedded default (`signet init`). Not thread-safe; one per process.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "cli/command.h"
#include "common/clock.h"
#include "config/config.h"
#include "hsm/key_store.h"
#include "hsm/pkcs11/pkcs11_key_store.h"
#include "service/audit_sink.h"
#include "service/key_service.h"
#include "store/store.h"

namespace signet::cli {

// Everything a local command needs, owned together; members are destroyed in reverse order.
struct LocalContext {
  config::Config config;
  hsm::TokenDescription token;
  SystemClock clock;
  std::unique_ptr<hsm::KeyStore> key_store;
  hsm::Pkcs11KeyStore* pkcs11 = nullptr;  // the same object as key_store (for the SecretSealer)
  std::unique_ptr<store::Store> store;
  std::unique_ptr<service::AuditSink> audit;  // events of local commands go to the store's log
  std::unique_ptr<service::KeyService> keys;
};

// The data folder named by --data-dir, SIGNET_DATA_DIR or the default, as an absolute path.
std::string ResolveDataDir(const GlobalOptions& global);

// Opens an initialised data folder. Fails with a one-line error naming what is wrong (missing
// folder or config, module, token, PIN, database). `config_file`, if not empty, is read instead of
// `<data folder>/signet.toml` (relative paths in it still resolve against the data folder).
Result<std::unique_ptr<LocalContext>> OpenLocal(const GlobalOptions& global,
                                                const std::string& config_file = "");

// Creates the development TLS identity (pki::CreateLocalhostTlsIdentity; key file 0600) at
// `config.server.tls_certificate` / `tls_private_key` when both are missing and both are the
// embedded default's own files (tls-server.crt and tls-server.key in the data folder): this is
// how a folder initialised before `signet serve` existed gets one. Returns true if it created
// them. Other paths are never created (a missing one fails when the server loads it);
// FailedPrecondition if only one of the two exists. A certificate that has expired or expires
// within kTlsRenewBefore is renewed if it is the development certificate in the default's own
// files (returns true; stderr says why), and warned about on stderr otherwise (a CA-issued one,
// also in those files, is never replaced).
inline constexpr std::chrono::hours kTlsRenewBefore{24 * 30};
Result<bool> EnsureEmbeddedTlsIdentity(const config::Config& config, const Clock& clock);

// What `signet init` did.
struct InitOutcome {
  std::string data_dir;
  bool created = false;  // false: the folder was already initialised and nothing changed
  // The folder, opened: a new one with the user PIN init generated (SIGNET_PIN, SIGNET_PIN_FILE
  // and --pin-file cannot name it, and are not used), an existing one as OpenLocal opens it. Use
  // it rather than opening again, which would find SIGNET_PIN already taken.
  std::unique_ptr<LocalContext> ctx;
};

// Creates the embedded default in the data folder: a SoftHSM2 token with its own softhsm2.conf,
// random SO and user PINs in owner-only files, the SQLite database and signet.toml. All of it is
// built in a staging folder and renamed into place, so an interrupted init leaves nothing behind.
// Running it on an initialised folder changes nothing.
Result<InitOutcome> InitDataDir(const GlobalOptions& global);

}  // namespace signet::cli
