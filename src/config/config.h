// signet's configuration: what `signet.toml` may say, with safe defaults, and how the embedded
// default data folder is laid out. This settings cover the HSM and the store; the service
// issue adds listen address, TLS, limits and lockout to the same file.
//
// Loading is strict: an unknown section or key, a value of the wrong type or a missing required
// value is an InvalidArgument naming the file, the key and what is expected. Pure functions,
// thread-safe.
#pragma once

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

struct HsmConfig {
  std::string module_path;    // [hsm] module
  std::string token_label;    // [hsm] token_label (or token_serial)
  std::string token_serial;   // [hsm] token_serial
  std::string pin_file;       // [hsm] pin_file; absolute, or relative to the data folder
  std::string softhsm_conf;   // [hsm] softhsm_conf: SOFTHSM2_CONF to set for the embedded token
};

struct StoreConfig {
  std::string sqlite_path;    // [store] sqlite_path; absolute, or relative to the data folder
};

struct Config {
  std::string data_dir;       // absolute path of the data folder the file was read from
  HsmConfig hsm;
  StoreConfig store;
};

// Reads `<data_dir>/signet.toml`. Relative paths in it are resolved against `data_dir`.
// NotFound if the file is missing (the folder was not initialised: run `signet init`).
Result<Config> LoadDataDirConfig(const std::string& data_dir);

// Parses configuration text; `source` names the file in error messages.
Result<Config> ParseConfig(std::string_view text, std::string_view source,
                           const std::string& data_dir);

// The text `signet init` writes for an embedded default whose files all live in the data folder;
// `module_path` is the SoftHSM2 (or compatible) module the token was created with.
std::string EmbeddedDefaultConfigText(std::string_view module_path = kSoftHsmModulePath);

}  // namespace signet::config
