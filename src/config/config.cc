#include "config/config.h"

#include <arpa/inet.h>
#include <toml++/toml.h>

#include <charconv>
#include <filesystem>
#include <set>

#include "common/fs.h"
#include "common/text.h"

namespace signet::config {
namespace {

std::string Resolve(const std::string& data_dir, const std::string& p) {
  if (p.empty()) return p;
  std::filesystem::path path(p);
  if (path.is_absolute()) return p;
  return (std::filesystem::path(data_dir) / path).lexically_normal().string();
}

Error Bad(std::string_view source, std::string_view key, std::string_view what) {
  return InvalidArgument(std::string(source) + ": " + std::string(key) + ": " + std::string(what));
}

// Reads string `key` of `table` into `out`; absent keys leave `out` unchanged.
Status ReadString(const toml::table& table, std::string_view section, std::string_view key,
                  std::string_view source, std::string& out) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return OkStatus();
  auto value = node->value<std::string>();
  if (!value || !node->is_string()) {
    return Bad(source, std::string(section) + "." + std::string(key), "must be a string");
  }
  if (value->empty()) {
    return Bad(source, std::string(section) + "." + std::string(key), "must not be empty");
  }
  // Every string here ends up in a C call (a path, an address, a PIN file); a NUL written as
  // \u0000 would silently cut it short there.
  if (value->find('\0') != std::string::npos) {
    return Bad(source, std::string(section) + "." + std::string(key),
               "must not contain a NUL character (\\u0000)");
  }
  out = *value;
  return OkStatus();
}

// Reads boolean `key` of `table` into `out`; absent keys leave `out` unchanged.
Status ReadBool(const toml::table& table, std::string_view section, std::string_view key,
                std::string_view source, bool& out) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return OkStatus();
  if (!node->is_boolean()) {
    return Bad(source, std::string(section) + "." + std::string(key), "must be true or false");
  }
  out = node->value<bool>().value_or(false);
  return OkStatus();
}

// Reads integer `key` of `table` into `out`, which must lie in [min, max]; absent keys leave `out`
// unchanged.
Status ReadInt(const toml::table& table, std::string_view section, std::string_view key,
               std::string_view source, int64_t min, int64_t max, int64_t& out) {
  const toml::node* node = table.get(key);
  if (node == nullptr) return OkStatus();
  std::string name = std::string(section) + "." + std::string(key);
  if (!node->is_integer()) return Bad(source, name, "must be an integer");
  int64_t value = node->value<int64_t>().value_or(0);
  if (value < min || value > max) {
    return Bad(source, name,
               "must be between " + std::to_string(min) + " and " + std::to_string(max) + " (got " +
                   std::to_string(value) + ")");
  }
  out = value;
  return OkStatus();
}

// The table `name` of `root`, or nullptr if absent; InvalidArgument if it is not a table or holds
// a key outside `allowed`.
Result<const toml::table*> Section(const toml::table& root, std::string_view name,
                                   const std::set<std::string_view>& allowed,
                                   std::string_view source);

Status CheckKeys(const toml::table& table, std::string_view section,
                 const std::set<std::string_view>& allowed, std::string_view source) {
  for (const auto& [key, node] : table) {
    if (allowed.count(key.str()) == 0) {
      std::string list;
      for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      // The key is the file's text, not ours: shown escaped, on one line, and cut if long.
      const std::string shown = OneLineSafe(key.str(), 128);
      std::string name = section.empty() ? shown : std::string(section) + "." + shown;
      return Bad(source, name, "unknown setting; allowed here: " + list);
    }
    (void)node;
  }
  return OkStatus();
}

Result<const toml::table*> Section(const toml::table& root, std::string_view name,
                                   const std::set<std::string_view>& allowed,
                                   std::string_view source) {
  const toml::node* node = root.get(name);
  if (node == nullptr) return static_cast<const toml::table*>(nullptr);
  const toml::table* table = node->as_table();
  if (table == nullptr) {
    return Bad(source, name, "must be a table ([" + std::string(name) + "])");
  }
  SIGNET_TRY(CheckKeys(*table, name, allowed, source));
  return table;
}

Status ParseServer(const toml::table& root, std::string_view source, ServerConfig& out) {
  SIGNET_ASSIGN_OR_RETURN(const toml::table* t,
                          Section(root, "server",
                                  {"listen", "tls_certificate", "tls_private_key", "client_ca",
                                   "client_auth", "io_threads", "worker_threads", "metrics_public"},
                                  source));
  if (t == nullptr) return OkStatus();
  SIGNET_TRY(ReadString(*t, "server", "listen", source, out.listen));
  SIGNET_TRY(ParseListenAddress(out.listen, std::string(source) + ": server.listen", &out.host,
                                &out.port));
  SIGNET_TRY(ReadString(*t, "server", "tls_certificate", source, out.tls_certificate));
  SIGNET_TRY(ReadString(*t, "server", "tls_private_key", source, out.tls_private_key));
  SIGNET_TRY(ReadString(*t, "server", "client_ca", source, out.client_ca));
  std::string client_auth(ClientAuthModeName(out.client_auth));
  SIGNET_TRY(ReadString(*t, "server", "client_auth", source, client_auth));
  if (client_auth == "none") {
    out.client_auth = ClientAuthMode::kNone;
  } else if (client_auth == "optional") {
    out.client_auth = ClientAuthMode::kOptional;
  } else if (client_auth == "required") {
    out.client_auth = ClientAuthMode::kRequired;
  } else {
    return Bad(source, "server.client_auth", "must be \"none\", \"optional\" or \"required\"");
  }
  SIGNET_TRY(ReadInt(*t, "server", "io_threads", source, 1, 64, out.io_threads));
  SIGNET_TRY(ReadInt(*t, "server", "worker_threads", source, 1, 256, out.worker_threads));
  SIGNET_TRY(ReadBool(*t, "server", "metrics_public", source, out.metrics_public));
  return OkStatus();
}

Status ParseServiceSections(const toml::table& root, std::string_view source, Config& config) {
  SIGNET_TRY(ParseServer(root, source, config.server));
  if (config.server.client_auth != ClientAuthMode::kNone && config.server.client_ca.empty()) {
    return Bad(source, "server.client_ca", "is required when server.client_auth is not \"none\"");
  }
  if (config.server.client_auth == ClientAuthMode::kNone && !config.server.client_ca.empty()) {
    return Bad(source, "server.client_ca",
               "is only used with server.client_auth \"optional\" or \"required\"");
  }

  SIGNET_ASSIGN_OR_RETURN(
      const toml::table* limits,
      Section(root, "limits",
              {"max_body_bytes", "max_header_bytes", "max_connections",
               "max_connections_per_address", "request_timeout_seconds", "idle_timeout_seconds"},
              source));
  if (limits != nullptr) {
    LimitsConfig& l = config.limits;
    SIGNET_TRY(
        ReadInt(*limits, "limits", "max_body_bytes", source, 1024, 64 << 20, l.max_body_bytes));
    SIGNET_TRY(
        ReadInt(*limits, "limits", "max_header_bytes", source, 1024, 1 << 20, l.max_header_bytes));
    SIGNET_TRY(ReadInt(*limits, "limits", "max_connections", source, 1, 100000, l.max_connections));
    SIGNET_TRY(ReadInt(*limits, "limits", "max_connections_per_address", source, 1, 100000,
                       l.max_connections_per_address));
    SIGNET_TRY(ReadInt(*limits, "limits", "request_timeout_seconds", source, 1, 3600,
                       l.request_timeout_seconds));
    SIGNET_TRY(ReadInt(*limits, "limits", "idle_timeout_seconds", source, 1, 3600,
                       l.idle_timeout_seconds));
  }

  SIGNET_ASSIGN_OR_RETURN(const toml::table* accounts,
                          Section(root, "accounts",
                                  {"token_lifetime_seconds", "lockout_threshold", "lockout_seconds",
                                   "anonymous_rejections_per_minute"},
                                  source));
  if (accounts != nullptr) {
    AccountsConfig& a = config.accounts;
    SIGNET_TRY(ReadInt(*accounts, "accounts", "token_lifetime_seconds", source, 60, 86400,
                       a.token_lifetime_seconds));
    SIGNET_TRY(
        ReadInt(*accounts, "accounts", "lockout_threshold", source, 1, 5, a.lockout_threshold));
    SIGNET_TRY(
        ReadInt(*accounts, "accounts", "lockout_seconds", source, 60, 86400, a.lockout_seconds));
    SIGNET_TRY(ReadInt(*accounts, "accounts", "anonymous_rejections_per_minute", source, 0, 100000,
                       a.anonymous_rejections_per_minute));
  }

  SIGNET_ASSIGN_OR_RETURN(
      const toml::table* activation,
      Section(root, "activation", {"sad_lifetime_seconds", "max_open_per_account"}, source));
  if (activation != nullptr) {
    SIGNET_TRY(ReadInt(*activation, "activation", "sad_lifetime_seconds", source, 10, 3600,
                       config.activation.sad_lifetime_seconds));
    SIGNET_TRY(ReadInt(*activation, "activation", "max_open_per_account", source, 0, 1000000,
                       config.activation.max_open_per_account));
  }

  SIGNET_ASSIGN_OR_RETURN(
      const toml::table* log,
      Section(root, "log",
              {"origin", "public", "checkpoint_interval_ms", "verify_interval_seconds"}, source));
  if (log != nullptr) {
    LogConfig& l = config.log;
    SIGNET_TRY(ReadString(*log, "log", "origin", source, l.origin));
    for (unsigned char c : l.origin) {
      // Visible ASCII other than '+': always a valid signed-note key name (audit/note.h, which
      // also allows non-white-space Unicode), checked here for a clear message at start-up.
      if (c <= 0x20 || c >= 0x7f || c == '+') {
        return Bad(source, "log.origin",
                   "must be visible ASCII without spaces or '+' (e.g. \"signet.example/prod\"; "
                   "write an internationalised host name in its xn-- form)");
      }
    }
    if (l.origin.size() > 256) return Bad(source, "log.origin", "must be at most 256 bytes");
    SIGNET_TRY(ReadBool(*log, "log", "public", source, l.public_read));
    SIGNET_TRY(ReadInt(*log, "log", "checkpoint_interval_ms", source, 50, 60000,
                       l.checkpoint_interval_ms));
    SIGNET_TRY(ReadInt(*log, "log", "verify_interval_seconds", source, 1, 86400,
                       l.verify_interval_seconds));
  }
  return OkStatus();
}

}  // namespace

std::string_view ClientAuthModeName(ClientAuthMode mode) {
  switch (mode) {
    case ClientAuthMode::kNone:
      return "none";
    case ClientAuthMode::kOptional:
      return "optional";
    case ClientAuthMode::kRequired:
      return "required";
  }
  return "none";
}

Status ParseListenAddress(std::string_view text, std::string_view key, std::string* host,
                          uint16_t* port) {
  auto bad = [&] {
    return InvalidArgument(std::string(key) + ": \"" + OneLineSafe(text, 128) +
                           "\" must be HOST:PORT with an IP address, e.g. 127.0.0.1:8443 or "
                           "[::1]:8443 (port 0 picks a free one)");
  };
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return bad();
  std::string_view h = text.substr(0, colon);
  std::string_view p = text.substr(colon + 1);
  bool v6 = false;
  if (h.front() == '[') {
    if (h.size() < 3 || h.back() != ']') return bad();
    h = h.substr(1, h.size() - 2);
    v6 = true;
  }
  std::string hs(h);
  unsigned char buf[16];
  if (::inet_pton(v6 ? AF_INET6 : AF_INET, hs.c_str(), buf) != 1) return bad();
  unsigned value = 0;
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
  if (p.empty() || ec != std::errc() || end != p.data() + p.size() || value > 65535) return bad();
  *host = std::move(hs);
  *port = static_cast<uint16_t>(value);
  return OkStatus();
}

Result<Config> ParseConfig(std::string_view text, std::string_view source,
                           const std::string& data_dir) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    return InvalidArgument(std::string(source) + ":" + std::to_string(where.line) + ":" +
                           std::to_string(where.column) + ": " + std::string(e.description()));
  }
  SIGNET_TRY(
      CheckKeys(root, "", {"hsm", "store", "server", "limits", "accounts", "activation", "log"},
                source));

  Config config;
  config.data_dir = data_dir;
  if (const toml::node* hsm_node = root.get("hsm")) {
    const toml::table* hsm = hsm_node->as_table();
    if (hsm == nullptr) return Bad(source, "hsm", "must be a table ([hsm])");
    SIGNET_TRY(CheckKeys(*hsm, "hsm",
                         {"module", "token_label", "token_serial", "pin_file", "softhsm_conf"},
                         source));
    SIGNET_TRY(ReadString(*hsm, "hsm", "module", source, config.hsm.module_path));
    SIGNET_TRY(ReadString(*hsm, "hsm", "token_label", source, config.hsm.token_label));
    SIGNET_TRY(ReadString(*hsm, "hsm", "token_serial", source, config.hsm.token_serial));
    SIGNET_TRY(ReadString(*hsm, "hsm", "pin_file", source, config.hsm.pin_file));
    SIGNET_TRY(ReadString(*hsm, "hsm", "softhsm_conf", source, config.hsm.softhsm_conf));
  }
  if (const toml::node* store_node = root.get("store")) {
    const toml::table* store = store_node->as_table();
    if (store == nullptr) return Bad(source, "store", "must be a table ([store])");
    SIGNET_TRY(CheckKeys(*store, "store", {"sqlite_path"}, source));
    SIGNET_TRY(ReadString(*store, "store", "sqlite_path", source, config.store.sqlite_path));
  }

  SIGNET_TRY(ParseServiceSections(root, source, config));

  if (config.hsm.module_path.empty()) return Bad(source, "hsm.module", "is required");
  if (config.hsm.module_path.front() != '/') {
    // dlopen would look a relative path up from the current folder and a bare name along the
    // library search path (LD_LIBRARY_PATH): which code runs with the PIN would depend on where
    // and how the service was started.
    return Bad(source, "hsm.module",
               "must be an absolute path, e.g. /usr/lib/softhsm/libsofthsm2.so");
  }
  if (config.hsm.token_label.empty() == config.hsm.token_serial.empty()) {
    return Bad(source, "hsm", "set exactly one of token_label and token_serial");
  }
  if (config.store.sqlite_path.empty()) config.store.sqlite_path = std::string(kDatabaseFileName);
  config.hsm.pin_file = Resolve(data_dir, config.hsm.pin_file);
  config.hsm.softhsm_conf = Resolve(data_dir, config.hsm.softhsm_conf);
  config.store.sqlite_path = Resolve(data_dir, config.store.sqlite_path);
  config.server.tls_certificate = Resolve(data_dir, config.server.tls_certificate);
  config.server.tls_private_key = Resolve(data_dir, config.server.tls_private_key);
  config.server.client_ca = Resolve(data_dir, config.server.client_ca);
  return config;
}

Result<Config> LoadConfigFile(const std::string& path, const std::string& data_dir) {
  auto text = fs::ReadProtectedFile(path, 1024 * 1024);
  if (!text.ok()) {
    if (text.error().code() == ErrorCode::kNotFound) {
      return NotFound("configuration file " + path + " does not exist");
    }
    return std::move(text).error();
  }
  return ParseConfig(ToString(*text), path, data_dir);
}

Result<Config> LoadDataDirConfig(const std::string& data_dir) {
  std::string path = (std::filesystem::path(data_dir) / kConfigFileName).string();
  auto text = fs::ReadProtectedFile(path, 1024 * 1024);
  if (!text.ok()) {
    if (text.error().code() == ErrorCode::kNotFound) {
      return NotFound(data_dir + " is not a signet data folder (no " +
                      std::string(kConfigFileName) + "); run: signet init --data-dir " + data_dir);
    }
    return std::move(text).error();
  }
  return ParseConfig(ToString(*text), path, data_dir);
}

namespace {

// `text` as a TOML basic string, quotes included: backslash, quote and control characters are
// escaped, so any path reads back as itself.
std::string TomlBasicString(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\u00";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

std::string EmbeddedDefaultConfigText(std::string_view module_path) {
  std::string t;
  t += "# signet configuration, written by `signet init` for the embedded default:\n";
  t += "# a SoftHSM2 token and an SQLite database, both inside this folder.\n";
  t += "# Relative paths are relative to this folder.\n\n";
  t += "[hsm]\n";
  t += "module = " + TomlBasicString(module_path) + "\n";
  t += "token_label = \"" + std::string(kDefaultTokenLabel) + "\"\n";
  t += "pin_file = \"" + std::string(kUserPinFileName) + "\"\n";
  t += "softhsm_conf = \"" + std::string(kSoftHsmConfigFileName) + "\"\n\n";
  t += "[store]\n";
  t += "sqlite_path = \"" + std::string(kDatabaseFileName) + "\"\n\n";
  t += "# `signet serve`: a self-signed localhost certificate for development; replace it (and\n";
  t += "# the listen address) for production. Limits, [accounts] and [activation] use defaults.\n";
  t += "[server]\n";
  t += "listen = \"127.0.0.1:8443\"\n";
  t += "tls_certificate = \"" + std::string(kTlsCertificateFileName) + "\"\n";
  t += "tls_private_key = \"" + std::string(kTlsPrivateKeyFileName) + "\"\n";
  t += "client_auth = \"none\"\n";
  t += "\n# The audit log (signet audit key / verify): its origin is \"<host name>/signet\" unless a\n";
  t += "# [log] section sets one before the first start, e.g. origin = \"signet.example/prod\".\n";
  return t;
}

}  // namespace signet::config
