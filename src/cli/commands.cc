#include "cli/commands.h"

#include <iostream>

#include "cli/audit_commands.h"
#include "cli/data_dir.h"
#include "cli/key_backend.h"
#include "cli/output.h"
#include "cli/serve_command.h"
#include "common/fs.h"
#include "common/text.h"

namespace signet::cli {
namespace {

using nlohmann::json;

// ensure_ascii: a server's strings (remote key commands) cannot carry a C1 control in UTF-8, and
// invalid UTF-8 is replaced rather than thrown on after the command took effect.
void PrintJson(const json& j) {
  std::cout << j.dump(2, ' ', /*ensure_ascii=*/true, json::error_handler_t::replace) << "\n";
}

class InitCommand final : public Command {
 public:
  void Configure(CLI::App&) override {}
  Status Run(const GlobalOptions& global) override {
    SIGNET_ASSIGN_OR_RETURN(InitOutcome outcome, InitDataDir(global));
    const std::unique_ptr<LocalContext>& ctx = outcome.ctx;
    if (global.json) {
      PrintJson(json{{"data_dir", outcome.data_dir},
                     {"created", outcome.created},
                     {"token", TokenToJson(ctx->token)},
                     {"database", ctx->config.store.sqlite_path}});
      return OkStatus();
    }
    if (outcome.created) {
      std::cout << "initialised signet data folder " << outcome.data_dir << "\n"
                << "  token     " << ctx->token.label << " (serial " << ctx->token.serial
                << ", SoftHSM2, config " << ctx->config.hsm.softhsm_conf << ")\n"
                << "  user PIN  "
                << (ctx->config.hsm.pin_file.empty() ? std::string("from SIGNET_PIN")
                                                     : ctx->config.hsm.pin_file + " (owner-only)")
                << "\n"
                << "  database  " << ctx->config.store.sqlite_path << "\n";
    } else {
      std::cout << "signet data folder " << outcome.data_dir
                << " is already initialised; nothing changed\n";
    }
    return OkStatus();
  }
};

class StatusCommand final : public Command {
 public:
  void Configure(CLI::App&) override {}
  Status Run(const GlobalOptions& global) override {
    SIGNET_ASSIGN_OR_RETURN(auto ctx, OpenLocal(global));
    SIGNET_TRY(ctx->store->Ping());
    SIGNET_ASSIGN_OR_RETURN(auto keys, ctx->keys->ListKeys());
    if (global.json) {
      json jkeys = json::array();
      for (const auto& k : keys) jkeys.push_back(KeyToJson(k));
      PrintJson(json{{"data_dir", ctx->config.data_dir},
                     {"token", TokenToJson(ctx->token)},
                     {"database", ctx->config.store.sqlite_path},
                     {"keys", jkeys}});
      return OkStatus();
    }
    const auto& t = ctx->token;
    std::cout << "data folder  " << ctx->config.data_dir << "\n"
              << "module       " << t.module_path << "\n"
              << "token        " << t.label << " (serial " << t.serial << ", " << t.manufacturer
              << " " << t.model << " " << t.firmware_version << ")\n"
              << "database     " << ctx->config.store.sqlite_path << "\n"
              << "keys         " << keys.size() << "\n";
    if (!keys.empty()) std::cout << "\n" << KeyTable(keys);
    return OkStatus();
  }
};

class KeyCreateCommand final : public Command {
 public:
  void Configure(CLI::App& app) override {
    app.add_option("--name", name_, "Unique key name (letters, digits, . _ -)")->required();
    app.add_option("--alg", alg_, "rsa-3072, rsa-4096, ec-p256 or ec-p384")->required();
  }
  Status Run(const GlobalOptions& global) override {
    // Validate before opening anything so a typo costs nothing; the service checks the rest.
    SIGNET_ASSIGN_OR_RETURN(KeyAlgorithm alg, ParseKeyAlgorithm(alg_));
    SIGNET_TRY(service::KeyService::ValidateKeyName(name_));
    SIGNET_ASSIGN_OR_RETURN(auto keys, OpenKeyBackend(global));
    SIGNET_ASSIGN_OR_RETURN(store::KeyRecord key, keys->CreateKey(name_, alg));
    if (global.json) {
      PrintJson(KeyToJson(key));
    } else {
      std::cout << "created key '" << key.name << "' (" << key.algorithm << ", id " << key.id
                << ") in token '" << key.token_label << "'\n";
    }
    return OkStatus();
  }

 private:
  std::string name_;
  std::string alg_;
};

class KeyListCommand final : public Command {
 public:
  void Configure(CLI::App&) override {}
  Status Run(const GlobalOptions& global) override {
    SIGNET_ASSIGN_OR_RETURN(auto backend, OpenKeyBackend(global));
    SIGNET_ASSIGN_OR_RETURN(auto keys, backend->ListKeys());
    if (global.json) {
      json arr = json::array();
      for (const auto& k : keys) arr.push_back(KeyToJson(k));
      PrintJson(arr);
    } else {
      std::cout << KeyTable(keys);
    }
    return OkStatus();
  }
};

// Base for commands that take one positional key name.
class NamedKeyCommand : public Command {
 public:
  void Configure(CLI::App& app) override { app.add_option("name", name_, "Key name")->required(); }

 protected:
  std::string name_;
};

class KeyShowCommand final : public NamedKeyCommand {
 public:
  Status Run(const GlobalOptions& global) override {
    SIGNET_ASSIGN_OR_RETURN(auto keys, OpenKeyBackend(global));
    SIGNET_ASSIGN_OR_RETURN(service::KeyDetails d, keys->ShowKey(name_));
    if (global.json) {
      PrintJson(KeyDetailsToJson(d));
    } else {
      std::cout << KeyDetailsText(d);
    }
    return OkStatus();
  }
};

class KeyStateCommand final : public NamedKeyCommand {
 public:
  enum class Action { kDisable, kEnable };
  explicit KeyStateCommand(Action action) : action_(action) {}
  Status Run(const GlobalOptions& global) override {
    SIGNET_ASSIGN_OR_RETURN(auto keys, OpenKeyBackend(global));
    auto key = action_ == Action::kDisable ? keys->DisableKey(name_) : keys->EnableKey(name_);
    if (!key.ok()) return std::move(key).error();
    if (global.json) {
      PrintJson(KeyToJson(*key));
    } else {
      std::cout << "key '" << key->name << "' is now " << store::KeyStateName(key->state) << "\n";
    }
    return OkStatus();
  }

 private:
  Action action_;
};

class KeyDestroyCommand final : public NamedKeyCommand {
 public:
  void Configure(CLI::App& app) override {
    NamedKeyCommand::Configure(app);
    app.add_flag("--yes,-y", yes_, "Do not ask for confirmation");
  }
  Status Run(const GlobalOptions& global) override {
    SIGNET_TRY(service::KeyService::ValidateKeyName(name_));
    SIGNET_ASSIGN_OR_RETURN(auto keys, OpenKeyBackend(global));
    SIGNET_TRY(keys->CheckKeyExists(name_));  // NotFound before asking anything
    if (!yes_) {
      std::cerr << "Destroying key '" << name_
                << "' deletes it from the HSM for ever; signatures can no longer be made with it.\n"
                << "Type the key name to confirm: " << std::flush;
      std::string answer;
      if (!std::getline(std::cin, answer)) {
        return FailedPrecondition(
            "no confirmation received (stdin closed); pass --yes to "
            "destroy without asking");
      }
      if (answer != name_)
        return FailedPrecondition("confirmation did not match; nothing destroyed");
    }
    SIGNET_ASSIGN_OR_RETURN(store::KeyRecord key, keys->DestroyKey(name_));
    if (global.json) {
      PrintJson(KeyToJson(key));
    } else {
      std::cout << "key '" << key.name << "' destroyed\n";
    }
    return OkStatus();
  }

 private:
  bool yes_ = false;
};

class KeyCsrCommand final : public NamedKeyCommand {
 public:
  void Configure(CLI::App& app) override {
    NamedKeyCommand::Configure(app);
    app.add_option("--subject", subject_, "Subject, e.g. \"/CN=Example Ltd/O=Example Ltd/C=GB\"")
        ->required();
    app.add_option("--out,-o", out_, "Write the PEM CSR to this file instead of stdout");
  }
  Status Run(const GlobalOptions& global) override {
    SIGNET_ASSIGN_OR_RETURN(auto keys, OpenKeyBackend(global));
    SIGNET_ASSIGN_OR_RETURN(std::string pem, keys->CreateCsr(name_, subject_));
    if (out_.empty()) {
      std::cout << pem;
      return OkStatus();
    }
    SIGNET_TRY(fs::WriteFileAtomic(out_, AsBytes(pem), 0644));
    std::cerr << "wrote CSR for key '" << name_ << "' to " << out_ << "\n";
    return OkStatus();
  }

 private:
  std::string subject_;
  std::string out_;
};

class KeyImportCertCommand final : public NamedKeyCommand {
 public:
  void Configure(CLI::App& app) override {
    NamedKeyCommand::Configure(app);
    app.add_option("--chain", chain_, "PEM file: the key's certificate first, then its issuers")
        ->required();
  }
  Status Run(const GlobalOptions& global) override {
    auto pem = fs::ReadFile(chain_, 1024 * 1024);
    if (!pem.ok()) return pem.error().WithContext("reading the certificate chain");
    SIGNET_ASSIGN_OR_RETURN(auto keys, OpenKeyBackend(global));
    SIGNET_ASSIGN_OR_RETURN(store::KeyRecord key,
                            keys->ImportCertificateChain(name_, ToString(*pem)));
    if (global.json) {
      PrintJson(KeyToJson(key));
    } else {
      std::cout << "imported certificate chain for key '" << key.name << "'\n";
    }
    return OkStatus();
  }

 private:
  std::string chain_;
};

class KeyUnrecordedCommand final : public Command {
 public:
  void Configure(CLI::App&) override {}
  Status Run(const GlobalOptions& global) override {
    SIGNET_ASSIGN_OR_RETURN(auto backend, OpenKeyBackend(global));
    SIGNET_ASSIGN_OR_RETURN(auto keys, backend->ListUnrecordedKeys());
    if (global.json) {
      json arr = json::array();
      for (const auto& k : keys) arr.push_back(service::UnrecordedKeyToJson(k));
      PrintJson(arr);
      return OkStatus();
    }
    if (keys.empty()) {
      std::cout << "every private key on the token is recorded\n";
      return OkStatus();
    }
    std::cout << "HSM KEY ID                        ALGORITHM  LABEL\n";
    for (const auto& k : keys) {
      std::string id = k.hsm_key_id.empty() ? "(none)" : k.hsm_key_id;
      std::string alg = k.algorithm;
      id.resize(std::max<size_t>(id.size(), 33), ' ');
      alg.resize(std::max<size_t>(alg.size(), 10), ' ');
      std::cout << id << " " << alg << " " << k.label << "\n";
    }
    std::cout << "\n"
              << keys.size()
              << " private key(s) on the token that no key record names: left by a key creation "
                 "that did not finish, or made by another tool on this token. `signet key "
                 "destroy-unrecorded HSM_KEY_ID` removes one (recorded in the audit log).\n";
    return OkStatus();
  }
};

class KeyDestroyUnrecordedCommand final : public Command {
 public:
  void Configure(CLI::App& app) override {
    app.add_option("hsm_key_id", id_, "The key's CKA_ID in hex, as `key unrecorded` lists it")
        ->required();
    app.add_flag("--yes,-y", yes_, "Do not ask for confirmation");
  }
  Status Run(const GlobalOptions& global) override {
    SIGNET_ASSIGN_OR_RETURN(auto backend, OpenKeyBackend(global));
    if (!yes_) {
      std::cerr << "Destroying HSM key " << OneLineSafe(id_, 256)
                << " deletes it from the token for ever; if another tool made it, that tool "
                   "loses it.\nType the key id to confirm: "
                << std::flush;
      std::string answer;
      if (!std::getline(std::cin, answer)) {
        return FailedPrecondition(
            "no confirmation received (stdin closed); pass --yes to destroy without asking");
      }
      if (answer != id_) return FailedPrecondition("confirmation did not match; nothing destroyed");
    }
    SIGNET_ASSIGN_OR_RETURN(service::UnrecordedKey key, backend->DestroyUnrecordedKey(id_));
    if (global.json) {
      PrintJson(service::UnrecordedKeyToJson(key));
    } else {
      std::cout << "unrecorded HSM key " << key.hsm_key_id << " (" << key.algorithm << ", label '"
                << key.label << "') destroyed\n";
    }
    return OkStatus();
  }

 private:
  std::string id_;
  bool yes_ = false;
};

}  // namespace

std::vector<NamedCommand> LocalCommands() {
  std::vector<NamedCommand> c;
  c.push_back({{"init"},
               "Create the embedded default (SoftHSM2 token + SQLite) in the data folder",
               std::make_unique<InitCommand>()});
  c.push_back({{"status"},
               "Show the token, database and keys of the data folder",
               std::make_unique<StatusCommand>()});
  c.push_back({{"serve"},
               "Run the signing service (HTTPS, CSC API v2); initialises the folder "
               "if needed",
               MakeServeCommand()});
  c.push_back({{"key", "create"},
               "Generate a code-signing key inside the HSM",
               std::make_unique<KeyCreateCommand>()});
  c.push_back({{"key", "list"}, "List keys", std::make_unique<KeyListCommand>()});
  c.push_back({{"key", "show"},
               "Show a key, with the protection attributes the HSM reports",
               std::make_unique<KeyShowCommand>()});
  c.push_back({{"key", "disable"},
               "Disable a key (no signing until enabled)",
               std::make_unique<KeyStateCommand>(KeyStateCommand::Action::kDisable)});
  c.push_back({{"key", "enable"},
               "Enable a disabled key",
               std::make_unique<KeyStateCommand>(KeyStateCommand::Action::kEnable)});
  c.push_back({{"key", "destroy"},
               "Destroy a key in the HSM (asks for confirmation)",
               std::make_unique<KeyDestroyCommand>()});
  c.push_back({{"key", "csr"},
               "Write a PKCS#10 certificate request signed inside the HSM",
               std::make_unique<KeyCsrCommand>()});
  c.push_back({{"key", "import-cert"},
               "Attach the key's certificate chain (checked against the key)",
               std::make_unique<KeyImportCertCommand>()});
  c.push_back({{"key", "unrecorded"},
               "List private keys on the token that no key record names",
               std::make_unique<KeyUnrecordedCommand>()});
  c.push_back({{"key", "destroy-unrecorded"},
               "Destroy one such key (asks for confirmation; recorded in the log)",
               std::make_unique<KeyDestroyUnrecordedCommand>()});
  for (auto& audit : AuditCommands()) c.push_back(std::move(audit));
  return c;
}

}  // namespace signet::cli
