#include "cli/serve_command.h"

#include <unistd.h>

#include <exception>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/data_dir.h"
#include "cli/qr_terminal.h"
#include "cli/service_stack.h"
#include "common/encoding.h"
#include "common/fs.h"
#include "common/log.h"
#include "hsm/pkcs11/pkcs11_secret_sealer.h"
#include "pki/pki.h"
#include "server/server.h"
#include "service/accounts.h"
#include "service/audit_sink.h"

namespace signet::cli {
namespace {

namespace stdfs = std::filesystem;

constexpr std::string_view kBootstrapAdminName = "admin";
// In the data folder: held (flock) by the one `signet serve` that uses the folder.
constexpr std::string_view kServeLockFileName = "serve.lock";

std::string BootstrapFilePath(const config::Config& config) {
  return (stdfs::path(config.data_dir) / config::kBootstrapAdminFileName).string();
}

// Removes the bootstrap file once the bootstrap admin no longer has a one-time password.
void RemoveBootstrapFileIfDone(store::Store& store, const std::string& path) {
  if (!fs::Exists(path)) return;
  auto admin = store.GetAccountByName(kBootstrapAdminName);
  if (!admin.ok() || admin->must_change_password) return;
  std::error_code ec;
  if (stdfs::remove(path, ec)) {
    std::cerr << "signet: removed " << path << " (the bootstrap admin has changed its password)\n";
  } else if (ec) {
    std::cerr << "signet: warning: could not remove " << path << " (" << ec.message()
              << "); it holds the bootstrap admin's TOTP secret: delete it by hand\n";
  }
}

// fs::WriteFileAtomic writes a file as ".<name>.tmpXXXXXX" first and renames it: a crash in
// between leaves that copy where nothing else would ever remove it; for the bootstrap file it
// holds the one-time password and the TOTP secret, for the TLS key the private key. Called once
// serve holds the folder's lock, before anything writes one of these files.
void RemoveStaleTemporaryCopies(const std::string& data_dir) {
  struct Written {
    std::string_view name;
    std::string_view holds;  // what a stale copy holds, for the message
  };
  static constexpr Written kWritten[] = {
      {config::kBootstrapAdminFileName, "bootstrap credentials"},
      {config::kTlsPrivateKeyFileName, "the TLS private key"},
      {config::kTlsCertificateFileName, "the TLS certificate"},
      {config::kLogWitnessFileName, "a log checkpoint"},
  };
  std::error_code ec;
  for (const auto& entry : stdfs::directory_iterator(data_dir, ec)) {
    const std::string name = entry.path().filename().string();
    const Written* match = nullptr;
    for (const Written& w : kWritten) {
      if (name.starts_with("." + std::string(w.name) + ".tmp")) match = &w;
    }
    if (match == nullptr || entry.is_symlink(ec) || !entry.is_regular_file(ec)) continue;
    std::error_code removed;
    if (stdfs::remove(entry.path(), removed)) {
      std::cerr << "signet: removed " << entry.path().string() << ", a copy of " << match->holds
                << " left by an interrupted write\n";
    } else if (removed) {
      std::cerr << "signet: warning: could not remove " << entry.path().string() << " ("
                << removed.message() << "); it holds " << match->holds << ": delete it by hand\n";
    }
  }
}

// The text holds secrets: built in one buffer reserved up front (appends never reallocate and
// leave no copy behind), which the caller wipes.
std::string BootstrapText(std::string_view name, const SecretBytes& one_time_password,
                          const service::TotpEnrolment& totp, std::string_view qr) {
  std::string t;
  t.reserve(2048 + name.size() * 2 + one_time_password.size() + totp.secret_base32.size() +
            totp.uri.size() + qr.size());
  for (std::string_view part :
       {std::string_view("signet bootstrap administrator (shown once; "),
        std::string_view(config::kBootstrapAdminFileName),
        std::string_view(" is deleted after the first password change)\n\n  account            "),
        name, std::string_view(" (role admin)\n  one-time password  "),
        one_time_password.text_view(), std::string_view("\n  TOTP secret        "),
        totp.secret_base32.text_view(), std::string_view("\n  TOTP URI           "),
        totp.uri.text_view(), std::string_view("\n\nScan this with an authenticator app:\n\n"), qr,
        std::string_view("\nLog in as '"), name,
        std::string_view("' with the one-time password and a TOTP code, then change the "
                         "password.\n")}) {
    t.append(part);
  }
  return t;
}

// On first start (no account at all) creates the person "admin" with the admin role and writes
// its one-time password and TOTP enrolment to <data>/bootstrap-admin.txt (0600), and shows them
// once on stdout if stdout is a terminal. A service manager's stdout goes to a journal that keeps
// it and that more people read, so there only the file is named (unless it could not be written:
// then the credentials are printed, since the account exists and must not be left unusable). On
// later starts removes that file if the admin has changed the password.
Status BootstrapAdmin(store::Store& store, service::AccountService& accounts,
                      const config::Config& config) {
  const std::string path = BootstrapFilePath(config);
  SIGNET_ASSIGN_OR_RETURN(auto existing, store.ListAccounts());
  SecretBytes one_time_password;
  std::optional<service::TotpEnrolment> totp;
  if (existing.empty()) {
    SIGNET_ASSIGN_OR_RETURN(service::NewPerson admin,
                            accounts.CreatePerson(service::SystemPrincipal(), kBootstrapAdminName,
                                                  store::RoleSet{store::Role::kAdmin}));
    one_time_password = std::move(admin.one_time_password);
    totp = std::move(admin.totp);
  } else if (existing.size() == 1 && existing[0].name == kBootstrapAdminName &&
             existing[0].must_change_password && existing[0].totp_last_step == 0 &&
             !fs::Exists(path)) {
    // The bootstrap admin has never logged in (no TOTP code was ever accepted for it: a person's
    // login needs one; it could administer nothing before changing the password, so it is still
    // the only account) and its credentials are nowhere: a crash
    // between creating it and writing the file, or a file deleted unread. Without this, nobody
    // could ever log in. New credentials replace the lost ones (both changes are audited).
    std::cerr << "signet: the bootstrap admin never logged in and " << path
              << " is gone; issuing new one-time credentials\n";
    SIGNET_ASSIGN_OR_RETURN(
        one_time_password, accounts.ResetPassword(service::SystemPrincipal(), kBootstrapAdminName));
    SIGNET_ASSIGN_OR_RETURN(totp,
                            accounts.ResetTotp(service::SystemPrincipal(), kBootstrapAdminName));
  } else {
    RemoveBootstrapFileIfDone(store, path);
    return OkStatus();
  }
  auto qr = RenderQrForTerminal(totp->uri.text_view());
  std::string text = BootstrapText(kBootstrapAdminName, one_time_password, *totp,
                                   qr.ok() ? std::string_view(*qr) : "(QR code unavailable)\n");
  if (qr.ok()) SecureWipe(qr->data(), qr->size());
  Status written = fs::WriteFileAtomic(path, AsBytes(text), 0600);
  if (!written.ok()) {
    std::cerr << "signet: warning: could not write " << path << ": " << written.error().message()
              << "\n";
  }
  if (!written.ok() || ::isatty(STDOUT_FILENO) == 1) {
    std::cout << text << std::flush;
  } else {
    std::cout << "signet: created the account 'admin'; its one-time password and TOTP enrolment "
                 "are in "
              << path << " (mode 0600), not printed here because stdout is not a terminal\n"
              << std::flush;
  }
  SecureWipe(text.data(), text.size());
  return OkStatus();
}

server::ClientAuth ToClientAuth(config::ClientAuthMode mode) {
  switch (mode) {
    case config::ClientAuthMode::kNone:
      return server::ClientAuth::kNone;
    case config::ClientAuthMode::kOptional:
      return server::ClientAuth::kOptional;
    case config::ClientAuthMode::kRequired:
      return server::ClientAuth::kRequired;
  }
  return server::ClientAuth::kNone;
}

server::ServerOptions ToServerOptions(const config::Config& c) {
  server::ServerOptions o;
  o.bind_address = c.server.host;
  o.port = c.server.port;
  o.tls.certificate_chain_file = c.server.tls_certificate;
  o.tls.private_key_file = c.server.tls_private_key;
  o.tls.client_ca_file = c.server.client_ca;
  o.tls.client_auth = ToClientAuth(c.server.client_auth);
  o.io_threads = static_cast<size_t>(c.server.io_threads);
  o.worker_threads = static_cast<size_t>(c.server.worker_threads);
  o.max_body_bytes = static_cast<size_t>(c.limits.max_body_bytes);
  o.max_header_bytes = static_cast<size_t>(c.limits.max_header_bytes);
  o.max_connections = static_cast<size_t>(c.limits.max_connections);
  o.max_connections_per_address = static_cast<size_t>(c.limits.max_connections_per_address);
  o.request_timeout = std::chrono::seconds(c.limits.request_timeout_seconds);
  o.idle_timeout = std::chrono::seconds(c.limits.idle_timeout_seconds);
  o.handle_signals = true;
  return o;
}

// The SHA-256 of a file the configuration names (a certificate, a CA bundle), so that one
// replaced in place between two starts shows as a config_change; what went wrong instead, when it
// cannot be read now (the service started with it, so that is news too).
std::string FileFingerprint(const std::string& path) {
  if (path.empty()) return "(none)";
  Result<Bytes> bytes = fs::ReadFile(path, 16 * 1024 * 1024);
  if (!bytes.ok()) return "(unreadable: " + bytes.error().message() + ")";
  Result<Bytes> digest = pki::ComputeDigest(HashAlgorithm::kSha256, *bytes);
  if (!digest.ok()) return "(cannot hash: " + digest.error().message() + ")";
  return HexEncode(*digest);
}

// A module's fixed-width token fields may hold any bytes (or a UTF-8 sequence cut at the width);
// the log would store such bytes replaced, and the next start, comparing raw bytes, would see a
// change every time. Printable ASCII is kept, anything else becomes '?'.
std::string PrintableAscii(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  return out;
}

// The effective configuration, for the config_startup event. Paths and numbers only: the PIN
// file is named, never read into the event; the certificates' contents are named by their
// SHA-256, and signet's version stands for its compiled-in defaults (the default key policy).
std::map<std::string, std::string> EffectiveConfig(const config::Config& c,
                                                   const hsm::TokenDescription& token,
                                                   const std::string& log_origin) {
  std::map<std::string, std::string> d;
  d["signet.version"] = SIGNET_VERSION;
  d["hsm.softhsm_conf"] = c.hsm.softhsm_conf.empty() ? "(none)" : c.hsm.softhsm_conf;
  d["server.tls_certificate_sha256"] = FileFingerprint(c.server.tls_certificate);
  d["server.client_ca_sha256"] = FileFingerprint(c.server.client_ca);
  d["log.origin"] = log_origin;
  d["log.public"] = c.log.public_read ? "true" : "false";
  d["log.checkpoint_interval_ms"] = std::to_string(c.log.checkpoint_interval_ms);
  d["log.verify_interval_seconds"] = std::to_string(c.log.verify_interval_seconds);
  d["data_dir"] = c.data_dir;
  d["hsm.module"] = c.hsm.module_path;
  d["hsm.token_label"] = token.label;
  d["hsm.token_serial"] = token.serial;
  // What the module says it is, so that the crypto module behind the keys (CSBR 6.2.7.3: FIPS 140-2
  // Level 3 or Common Criteria EAL 4+) is on record, and a swap of it is a config_change.
  d["hsm.token_manufacturer"] = PrintableAscii(token.manufacturer);
  d["hsm.token_model"] = PrintableAscii(token.model);
  d["hsm.firmware_version"] = PrintableAscii(token.firmware_version);
  d["hsm.pin_file"] =
      c.hsm.pin_file.empty() ? "(none: the PIN came from SIGNET_PIN)" : c.hsm.pin_file;
  d["store.sqlite_path"] = c.store.sqlite_path;
  d["server.listen"] = c.server.listen;
  d["server.tls_certificate"] = c.server.tls_certificate;
  d["server.tls_private_key"] = c.server.tls_private_key;
  d["server.client_ca"] = c.server.client_ca;
  d["server.client_auth"] = std::string(config::ClientAuthModeName(c.server.client_auth));
  d["server.io_threads"] = std::to_string(c.server.io_threads);
  d["server.worker_threads"] = std::to_string(c.server.worker_threads);
  d["server.metrics_public"] = c.server.metrics_public ? "true" : "false";
  d["limits.max_body_bytes"] = std::to_string(c.limits.max_body_bytes);
  d["limits.max_header_bytes"] = std::to_string(c.limits.max_header_bytes);
  d["limits.max_connections"] = std::to_string(c.limits.max_connections);
  d["limits.max_connections_per_address"] = std::to_string(c.limits.max_connections_per_address);
  d["limits.request_timeout_seconds"] = std::to_string(c.limits.request_timeout_seconds);
  d["limits.idle_timeout_seconds"] = std::to_string(c.limits.idle_timeout_seconds);
  d["accounts.token_lifetime_seconds"] = std::to_string(c.accounts.token_lifetime_seconds);
  d["accounts.lockout_threshold"] = std::to_string(c.accounts.lockout_threshold);
  d["accounts.lockout_seconds"] = std::to_string(c.accounts.lockout_seconds);
  d["accounts.anonymous_rejections_per_minute"] =
      std::to_string(c.accounts.anonymous_rejections_per_minute);
  d["activation.sad_lifetime_seconds"] = std::to_string(c.activation.sad_lifetime_seconds);
  d["activation.max_open_per_account"] = std::to_string(c.activation.max_open_per_account);
  return d;
}

// The effective configuration recorded by the newest config_startup entry of the log, or nullopt
// if there is none (first start).
Result<std::optional<std::map<std::string, std::string>>> LastStartupConfig(store::Store& store) {
  store::LogEntryQuery query;
  query.action = std::string(service::AuditActionName(service::AuditAction::kConfigStartup));
  query.limit = 1000;
  std::optional<store::LogEntryRow> last;
  for (;;) {
    SIGNET_ASSIGN_OR_RETURN(store::LogEntryPage page, store.QueryLogEntries(query));
    if (!page.entries.empty()) last = std::move(page.entries.back());
    if (!page.next_after) break;
    query.after_index = *page.next_after;
  }
  if (!last.has_value()) return std::optional<std::map<std::string, std::string>>();
  std::map<std::string, std::string> out;
  try {
    nlohmann::json j = nlohmann::json::parse(last->data);
    for (const auto& [k, v] : j.at("details").items()) out[k] = v.get<std::string>();
  } catch (const std::exception& e) {
    return DataLoss("log entry " + std::to_string(last->index) +
                    " (config_startup) is not a valid audit entry: " + e.what());
  }
  return std::optional<std::map<std::string, std::string>>(std::move(out));
}

// The settings that differ between two effective configurations, as details of a config_change
// event: "<setting>": "<old> -> <new>" ("(unset)" for a setting one side lacks), and "changed":
// the list of settings.
std::map<std::string, std::string> ConfigDiff(const std::map<std::string, std::string>& before,
                                              const std::map<std::string, std::string>& after) {
  std::map<std::string, std::string> out;
  std::string changed;
  auto note = [&](const std::string& key, const std::string& from, const std::string& to) {
    out[key] = from + " -> " + to;
    changed += (changed.empty() ? "" : ",") + key;
  };
  for (const auto& [k, v] : after) {
    auto it = before.find(k);
    if (it == before.end()) {
      note(k, "(unset)", v);
    } else if (it->second != v) {
      note(k, it->second, v);
    }
  }
  for (const auto& [k, v] : before) {
    if (after.count(k) == 0) note(k, v, "(unset)");
  }
  out["changed"] = changed;
  return out;
}

// The log's origin: [log] origin if set, else the one the log key was created with, else
// "<host name>/signet" for a new log. A configured origin that differs from the log key's is
// refused later by audit::EnsureLogKey.
Result<std::string> LogOrigin(store::Store& store, const config::LogConfig& log) {
  if (!log.origin.empty()) return log.origin;
  SIGNET_ASSIGN_OR_RETURN(std::optional<store::LogKeyRecord> key, store.GetLogKey());
  if (key.has_value()) return key->origin;
  char host[256] = {};
  std::string name = ::gethostname(host, sizeof host - 1) == 0 ? std::string(host) : "";
  std::string clean;
  for (char c : name) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
        c == '-') {
      clean += c;
    }
  }
  if (clean.empty()) clean = "localhost";
  return clean + "/signet";
}

Status RecordSystemEvent(service::AuditSink& audit, const Clock& clock, service::AuditAction action,
                         std::map<std::string, std::string> details = {}) {
  service::AuditEvent event;
  event.time = clock.Now();
  event.action = action;
  event.actor.auth_method = service::AuthMethod::kSystem;
  event.object = "signet";
  event.details = std::move(details);
  return audit.Record(event);
}

std::string UrlHost(const std::string& host) {
  return host.find(':') == std::string::npos ? host : "[" + host + "]";
}

// A key creation that crashed between the HSM and the database leaves a private key nobody
// knows; say so at every start until an operator has looked (`signet key unrecorded`).
void WarnAboutUnrecordedKeys(service::KeyService& keys) {
  Result<std::vector<service::UnrecordedKey>> unrecorded = keys.ListUnrecordedKeys();
  if (!unrecorded.ok()) {
    LogLine(LogLevel::kWarning, "serve",
            "cannot check the token for unrecorded keys: " + unrecorded.error().message());
    return;
  }
  if (unrecorded->empty()) return;
  std::string ids;
  for (size_t i = 0; i < unrecorded->size() && i < 10; ++i) {
    ids +=
        (i == 0 ? "" : ", ") + (*unrecorded)[i].hsm_key_id + " ('" + (*unrecorded)[i].label + "')";
  }
  if (unrecorded->size() > 10) ids += ", ...";
  LogLine(LogLevel::kWarning, "serve",
          std::to_string(unrecorded->size()) +
              " private key(s) on the token have no key record: " + ids +
              "; a key creation did not finish, or another tool uses the token. `signet key "
              "unrecorded` lists them and `signet key destroy-unrecorded` removes one");
}

class ServeCommand final : public Command {
 public:
  void Configure(CLI::App& app) override {
    app.add_option("--config", config_file_,
                   "Read this configuration file instead of <data folder>/signet.toml");
    app.add_option("--listen", listen_,
                   "Override [server] listen, e.g. 127.0.0.1:8443 or 127.0.0.1:0 (any free port)");
  }

  Status Run(const GlobalOptions& global) override {
    std::string host;
    uint16_t port = 0;
    if (!listen_.empty()) SIGNET_TRY(config::ParseListenAddress(listen_, "--listen", &host, &port));

    const std::string dir = ResolveDataDir(global);
    std::unique_ptr<LocalContext> ctx;
    if (config_file_.empty() &&
        !fs::Exists((stdfs::path(dir) / config::kConfigFileName).string())) {
      SIGNET_ASSIGN_OR_RETURN(InitOutcome init, InitDataDir(global));
      if (init.created) std::cout << "signet: initialised data folder " << init.data_dir << "\n";
      ctx = std::move(init.ctx);  // opened once: SIGNET_PIN is taken by the first opening
    } else {
      SIGNET_ASSIGN_OR_RETURN(ctx, OpenLocal(global, config_file_));
    }
    config::Config& config = ctx->config;
    // One service per data folder: a second would bootstrap the admin again, and sequence and
    // sign the same log beside the first. Held until the process ends.
    auto serving =
        fs::ExclusiveLock::Acquire((stdfs::path(config.data_dir) / kServeLockFileName).string(),
                                   "the data folder " + config.data_dir + " for signet serve");
    if (!serving.ok()) {
      Error e = std::move(serving).error();
      if (e.code() != ErrorCode::kFailedPrecondition) return e;
      return FailedPrecondition(e.message() +
                                "; stop that service first, or give this one its own --data-dir");
    }
    RemoveStaleTemporaryCopies(config.data_dir);
    if (!listen_.empty()) {
      config.server.listen = listen_;
      config.server.host = host;
      config.server.port = port;
    }
    SIGNET_ASSIGN_OR_RETURN(bool made_tls, EnsureEmbeddedTlsIdentity(config, ctx->clock));
    if (made_tls) {
      std::cout << "signet: created a self-signed development TLS certificate "
                << config.server.tls_certificate << "\n";
    }

    SIGNET_ASSIGN_OR_RETURN(auto sealer, hsm::Pkcs11SecretSealer::Open(*ctx->pkcs11));
    SIGNET_ASSIGN_OR_RETURN(std::string origin, LogOrigin(*ctx->store, config.log));

    ServiceStackOptions options;
    options.accounts.token_lifetime = std::chrono::seconds(config.accounts.token_lifetime_seconds);
    options.accounts.lockout_threshold = config.accounts.lockout_threshold;
    options.accounts.lockout_duration = std::chrono::seconds(config.accounts.lockout_seconds);
    options.accounts.anonymous_rejections_per_minute =
        config.accounts.anonymous_rejections_per_minute;
    options.signing.sad_lifetime = std::chrono::seconds(config.activation.sad_lifetime_seconds);
    options.signing.max_open_activations_per_account = config.activation.max_open_per_account;
    options.server = ToServerOptions(config);
    options.metrics_public = config.server.metrics_public;
    options.log.origin = origin;
    options.log.public_read = config.log.public_read;
    options.log.checkpoint_interval = std::chrono::milliseconds(config.log.checkpoint_interval_ms);
    options.log.verify_interval = std::chrono::seconds(config.log.verify_interval_seconds);
    options.log.witness_file =
        (stdfs::path(config.data_dir) / config::kLogWitnessFileName).string();
    // The bootstrap file goes once the bootstrap admin has changed the one-time password; the
    // hook runs after the account_change event is recorded (and again at every start).
    const std::string bootstrap_file = BootstrapFilePath(config);
    store::Store& store = *ctx->store;
    options.after_account_event = [&store, bootstrap_file](const service::AccountEvent& e) {
      if (e.action == service::AccountAction::kAccountChange && e.succeeded() &&
          e.object == kBootstrapAdminName) {
        RemoveBootstrapFileIfDone(store, bootstrap_file);
      }
    };
    SIGNET_ASSIGN_OR_RETURN(
        std::unique_ptr<ServiceStack> stack,
        ServiceStack::Create(
            ServicePorts{*ctx->key_store, *sealer, store, ctx->clock,
                         service::TokenIdentity{ctx->token.label, ctx->token.serial}},
            std::move(options)));
    service::AuditSink& audit = stack->audit();

    std::map<std::string, std::string> effective = EffectiveConfig(config, ctx->token, origin);
    SIGNET_ASSIGN_OR_RETURN(auto previous, LastStartupConfig(store));
    SIGNET_TRY(
        RecordSystemEvent(audit, ctx->clock, service::AuditAction::kConfigStartup, effective));
    if (previous.has_value() && *previous != effective) {
      SIGNET_TRY(RecordSystemEvent(audit, ctx->clock, service::AuditAction::kConfigChange,
                                   ConfigDiff(*previous, effective)));
    }
    SIGNET_TRY(BootstrapAdmin(store, stack->accounts(), config));

    SIGNET_ASSIGN_OR_RETURN(uint16_t bound, stack->Start());
    Status started =
        RecordSystemEvent(audit, ctx->clock, service::AuditAction::kServiceStart,
                          {{"listen", UrlHost(config.server.host) + ":" + std::to_string(bound)}});
    if (!started.ok()) {
      stack->Stop();
      stack->Wait();
      return started;
    }
    std::cout << "signet: listening on https://" << UrlHost(config.server.host) << ":" << bound
              << std::endl;
    WarnAboutUnrecordedKeys(stack->keys());
    if (ctx->token.manufacturer.rfind("SoftHSM", 0) == 0) {
      std::cerr << "signet: note: the keys are in SoftHSM, a software token: right for development "
                   "and tests, but the CSBR (6.2.7.3) keeps code-signing keys in a module "
                   "certified to FIPS 140-2 Level 3 or Common Criteria EAL 4+; set [hsm] module "
                   "to such a module's PKCS#11 library for production\n";
    }
    // service_stop goes in before the last checkpoint round, so the stop is signed too.
    Status stopped = OkStatus();
    stack->Wait([&] {
      stopped = RecordSystemEvent(audit, ctx->clock, service::AuditAction::kServiceStop);
    });
    SIGNET_TRY(stopped);
    std::cout << "signet: stopped" << std::endl;
    return OkStatus();
  }

 private:
  std::string config_file_;
  std::string listen_;
};

}  // namespace

std::unique_ptr<Command> MakeServeCommand() { return std::make_unique<ServeCommand>(); }

}  // namespace signet::cli
