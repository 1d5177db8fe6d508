// signet's configuration: what `signet.toml` may say, with safe defaults, and how the embedded
// default data folder is laid out: [hsm], [store], and for `signet serve` [server] (listen address,
// TLS), [limits], [accounts] (tokens, lockout), [activation] (SAD lifetime) and
// [log] (the audit log's origin, public reading, checkpoint and verification intervals).
//
// Loading is strict: an unknown section or key, a value of the wrong type or a missing required
// value is an InvalidArgument naming the file, the key and what is expected. Pure functions,
// thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace signet::config {

// The file names inside a data folder created by `signet init`.
inline constexpr std::string_view kConfigFileName = "signet.toml";
inline constexpr std::string_view kDatabaseFileName = "signet.db";
inline constexpr std::string_view kSoftHsmConfigFileName = "softhsm2.conf";
inline constexpr std::string_view kTokenDirName = "tokens";
inline constexpr std::string_view kUserPinFileName = "user.pin";
inline constexpr std::string_view kSoPinFileName = "so.pin";
inline constexpr std::string_view kDefaultTokenLabel = "signet";
inline constexpr std::string_view kDefaultDataDir = "signet-data";
inline constexpr std::string_view kSoftHsmModulePath = "/usr/lib/softhsm/libsofthsm2.so";
// The development TLS identity of the embedded default (self-signed, localhost).
inline constexpr std::string_view kTlsCertificateFileName = "tls-server.crt";
inline constexpr std::string_view kTlsPrivateKeyFileName = "tls-server.key";
// The bootstrap admin's one-time password and TOTP enrolment, until the first password change.
inline constexpr std::string_view kBootstrapAdminFileName = "bootstrap-admin.txt";
// The newest audit-log checkpoint `signet serve` signed, kept beside the database
// (audit::FileCheckpointWitness).
inline constexpr std::string_view kLogWitnessFileName = "log-witness.note";

struct HsmConfig {
  std::string module_path;   // [hsm] module
  std::string token_label;   // [hsm] token_label (or token_serial)
  std::string token_serial;  // [hsm] token_serial
  std::string pin_file;      // [hsm] pin_file; absolute, or relative to the data folder
  std::string softhsm_conf;  // [hsm] softhsm_conf: SOFTHSM2_CONF to set for the embedded token
};

struct StoreConfig {
  std::string sqlite_path;  // [store] sqlite_path; absolute, or relative to the data folder
};

enum class ClientAuthMode { kNone, kOptional, kRequired };
std::string_view ClientAuthModeName(ClientAuthMode mode);  // "none", "optional", "required"

struct ServerConfig {
  // [server] listen: "HOST:PORT" with an IPv4 literal, or "[IPv6]:PORT"; port 0 picks a free one.
  std::string listen = "127.0.0.1:8443";
  std::string host = "127.0.0.1";  // parsed from listen (without brackets)
  uint16_t port = 8443;            // parsed from listen
  // Paths; absolute, or relative to the data folder. Defaults: the embedded development identity.
  std::string tls_certificate{kTlsCertificateFileName};
  std::string tls_private_key{kTlsPrivateKeyFileName};
  std::string client_ca;  // optional; required when client_auth is not "none"
  ClientAuthMode client_auth = ClientAuthMode::kNone;
  int64_t io_threads = 2;      // 1 .. 64
  int64_t worker_threads = 4;  // 1 .. 256
  // [server] metrics_public: serve /metrics without a token. Off, it needs an auditor's or admin's
  // bearer token: its series name keys and count each key's signatures and refusals.
  bool metrics_public = false;
};

struct LimitsConfig {
  int64_t max_body_bytes = 1024 * 1024;  // 1 KiB .. 64 MiB
  int64_t max_header_bytes = 16 * 1024;  // 1 KiB .. 1 MiB
  int64_t max_connections = 1024;        // 1 .. 100000
  int64_t max_connections_per_address = 128;  // 1 .. 100000; IPv4 address or IPv6 /64
  int64_t request_timeout_seconds = 30;  // 1 .. 3600
  int64_t idle_timeout_seconds = 60;     // 1 .. 3600
};

struct AccountsConfig {
  int64_t token_lifetime_seconds = 15 * 60;  // 60 .. 86400
  int64_t lockout_threshold = 5;             // 1 .. 5 (CSBR NCSSR 2.2.1.5: at most five)
  int64_t lockout_seconds = 15 * 60;         // 60 .. 86400
  // Per client address and minute: unknown bearer tokens and logins refused before any
  // credential that are logged one by one; the rest are logged as a count. 0 .. 100000 (0: all).
  int64_t anonymous_rejections_per_minute = 60;
};

struct ActivationConfig {
  int64_t sad_lifetime_seconds = 300;  // 10 .. 3600
  // Open SADs (unexpired, signatures left) one account may hold; 0: no bound. 0 .. 1000000
  int64_t max_open_per_account = 256;
};

// The audit log (issue 4): its identity, who may read it, and how often it is checkpointed and
// re-verified.
struct LogConfig {
  // [log] origin: the checkpoint origin and signed-note key name, e.g. "signet.example/prod";
  // visible ASCII without '+', at most 256 bytes.
  // Empty: the origin the log key was created with, or for a new log "<host name>/signet".
  // Fixed once the log key exists (the service refuses to start with a different one).
  std::string origin;
  bool public_read = false;               // [log] public: serve /log/ without a token
  int64_t checkpoint_interval_ms = 500;   // [log] checkpoint_interval_ms: 50 .. 60000
  int64_t verify_interval_seconds = 60;   // [log] verify_interval_seconds: 1 .. 86400
};

struct Config {
  std::string data_dir;  // absolute path of the data folder the file was read from
  HsmConfig hsm;
  StoreConfig store;
  ServerConfig server;
  LimitsConfig limits;
  AccountsConfig accounts;
  ActivationConfig activation;
  LogConfig log;
};

// Parses "HOST:PORT" / "[IPv6]:PORT" (the [server] listen syntax, also --listen). `key` names the
// setting in the InvalidArgument message.
Status ParseListenAddress(std::string_view text, std::string_view key, std::string* host,
                          uint16_t* port);

// Reads `<data_dir>/signet.toml`. Relative paths in it are resolved against `data_dir`.
// NotFound if the file is missing (the folder was not initialised: run `signet init`).
Result<Config> LoadDataDirConfig(const std::string& data_dir);

// Reads the configuration file `path` (e.g. `signet serve --config`); relative paths in it are
// still resolved against `data_dir`. NotFound if the file is missing.
Result<Config> LoadConfigFile(const std::string& path, const std::string& data_dir);

// Parses configuration text; `source` names the file in error messages.
Result<Config> ParseConfig(std::string_view text, std::string_view source,
                           const std::string& data_dir);

// The text `signet init` writes for an embedded default whose files all live in the data folder;
// `module_path` is the SoftHSM2 (or compatible) module the token was created with.
std::string EmbeddedDefaultConfigText(std::string_view module_path = kSoftHsmModulePath);

}  // namespace signet::config
