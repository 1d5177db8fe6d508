#include "config/config.h"

#include <filesystem>
#include <set>

#include <toml++/toml.h>

#include "common/fs.h"

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
  out = *value;
  return OkStatus();
}

Status CheckKeys(const toml::table& table, std::string_view section,
                 const std::set<std::string_view>& allowed, std::string_view source) {
  for (const auto& [key, node] : table) {
    if (allowed.count(key.str()) == 0) {
      std::string list;
      for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      std::string name = section.empty() ? std::string(key.str())
                                         : std::string(section) + "." + std::string(key.str());
      return Bad(source, name, "unknown setting; allowed here: " + list);
    }
    (void)node;
  }
  return OkStatus();
}

}  // namespace

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
  SIGNET_TRY(CheckKeys(root, "", {"hsm", "store"}, source));

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

  if (config.hsm.module_path.empty()) return Bad(source, "hsm.module", "is required");
  if (config.hsm.token_label.empty() == config.hsm.token_serial.empty()) {
    return Bad(source, "hsm", "set exactly one of token_label and token_serial");
  }
  if (config.store.sqlite_path.empty()) config.store.sqlite_path = std::string(kDatabaseFileName);
  config.hsm.pin_file = Resolve(data_dir, config.hsm.pin_file);
  config.hsm.softhsm_conf = Resolve(data_dir, config.hsm.softhsm_conf);
  config.store.sqlite_path = Resolve(data_dir, config.store.sqlite_path);
  return config;
}

Result<Config> LoadDataDirConfig(const std::string& data_dir) {
  std::string path = (std::filesystem::path(data_dir) / kConfigFileName).string();
  auto text = fs::ReadFile(path, 1024 * 1024);
  if (!text.ok()) {
    if (text.error().code() == ErrorCode::kNotFound) {
      return NotFound(data_dir + " is not a signet data folder (no " +
                      std::string(kConfigFileName) + "); run: signet init --data-dir " + data_dir);
    }
    return std::move(text).error();
  }
  return ParseConfig(ToString(*text), path, data_dir);
}

std::string EmbeddedDefaultConfigText(std::string_view module_path) {
  std::string t;
  t += "# signet configuration, written by `signet init` for the embedded default:\n";
  t += "# a SoftHSM2 token and an SQLite database, both inside this folder.\n";
  t += "# Relative paths are relative to this folder.\n\n";
  t += "[hsm]\n";
  t += "module = \"" + std::string(module_path) + "\"\n";
  t += "token_label = \"" + std::string(kDefaultTokenLabel) + "\"\n";
  t += "pin_file = \"" + std::string(kUserPinFileName) + "\"\n";
  t += "softhsm_conf = \"" + std::string(kSoftHsmConfigFileName) + "\"\n\n";
  t += "[store]\n";
  t += "sqlite_path = \"" + std::string(kDatabaseFileName) + "\"\n";
  return t;
}

}  // namespace signet::config
