#include "cli/data_dir.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <vector>

#include "common/fs.h"
#include "common/random.h"
#include "common/text.h"
#include "hsm/pkcs11/pkcs11_key_store.h"
#include "pki/pki.h"
#include "store/sqlite/sqlite_store.h"

namespace signet::cli {
namespace {

namespace stdfs = std::filesystem;

std::string Join(const std::string& dir, std::string_view name) {
  return (stdfs::path(dir) / name).string();
}

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return (v != nullptr && *v != '\0') ? std::string(v) : fallback;
}

// Checks that `dir` is an existing folder this process may use, with a message that says what to
// do about it.
Status CheckUsableDataDir(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT) {
      return NotFound("no signet data folder at " + dir + "; run: signet init --data-dir " + dir);
    }
    if (errno == EACCES) {
      return PermissionDenied("no permission to reach data folder " + dir +
                              " (a parent folder is not accessible)");
    }
    return Unavailable("cannot use data folder " + dir + ": " + std::strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) return FailedPrecondition(dir + " is not a folder");
  if (::access(dir.c_str(), R_OK | W_OK | X_OK) != 0) {
    return PermissionDenied("no permission to use data folder " + dir +
                            "; it must be readable and writable by this user");
  }
  return OkStatus();
}

// The PIN from SIGNET_PIN, taken out of the environment: the value is overwritten where the
// process's environment keeps it (what /proc/<pid>/environ and a core dump show) and the variable
// removed, so a long-running `serve` does not carry it. Called before any thread starts.
std::optional<SecretBytes> TakePinFromEnvironment() {
  char* pin = std::getenv("SIGNET_PIN");
  if (pin == nullptr || *pin == '\0') return std::nullopt;
  SecretBytes taken{std::string_view(pin)};
  SecureWipe(pin, std::strlen(pin));
  ::unsetenv("SIGNET_PIN");
  return taken;
}

// The user PIN: SIGNET_PIN, else the PIN file. `from_environment` tells which.
Result<SecretBytes> ReadUserPin(const std::string& pin_file, bool* from_environment) {
  *from_environment = false;
  if (std::optional<SecretBytes> pin = TakePinFromEnvironment()) {
    *from_environment = true;
    return std::move(*pin);
  }
  if (pin_file.empty()) {
    return InvalidArgument(
        "no user PIN configured: set [hsm] pin_file, --pin-file, "
        "SIGNET_PIN_FILE or SIGNET_PIN");
  }
  auto pin = fs::ReadSecretFile(pin_file);
  if (!pin.ok()) return pin.error().WithContext("reading the token user PIN");
  return pin;
}

std::string SoftHsmConfigText(const std::string& token_dir) {
  return "# SoftHSM2 configuration of this signet data folder, written by `signet init`.\n"
         "directories.tokendir = " +
         token_dir +
         "\n"
         "objectstore.backend = file\n"
         "log.level = ERROR\n"
         "slots.removable = false\n";
}

// Whether an existing folder may be initialised: nothing in it but a file system's lost+found
// (a freshly made volume's). The remains of an interrupted init (its staging folder, with the
// PINs of a token never used, and what it had moved) are named as such.
Status CheckEmptyForInit(const std::string& dir) {
  std::error_code ec;
  bool other = false;
  for (const auto& entry : stdfs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name == "lost+found") continue;
    if (name.starts_with(".signet-init-")) {
      return FailedPrecondition(dir + " holds the remains of an interrupted signet init (" + name +
                                ", with the PINs of a token that was never used); remove " +
                                "everything in the folder and run signet init again");
    }
    other = true;
  }
  if (ec) return Unavailable("cannot list " + dir + ": " + ec.message());
  if (other) {
    return FailedPrecondition(dir + " exists, is not empty and holds no " +
                              std::string(config::kConfigFileName) +
                              "; choose a new or empty folder for signet init");
  }
  return OkStatus();
}

Status WriteTlsIdentity(const std::string& cert_path, const std::string& key_path,
                        const Clock& clock) {
  SIGNET_ASSIGN_OR_RETURN(pki::TlsIdentity identity, pki::CreateLocalhostTlsIdentity(clock.Now()));
  // The key first: a certificate without its key would be a half-made identity.
  SIGNET_TRY(fs::WriteFileAtomic(key_path, identity.private_key_pem.view(), 0600));
  SIGNET_TRY(fs::WriteFileAtomic(cert_path, AsBytes(identity.certificate_pem), 0644));
  return OkStatus();
}

// Builds the whole data folder inside `staging`, configured for its final place `final_dir`.
Status BuildEmbeddedDefault(const std::string& staging, const std::string& final_dir,
                            const std::string& module_path) {
  std::string staging_tokens = Join(staging, config::kTokenDirName);
  SIGNET_TRY(fs::EnsureDirectory(staging_tokens, 0700));
  std::string staging_conf = Join(staging, config::kSoftHsmConfigFileName);
  SIGNET_TRY(fs::WriteFileAtomic(staging_conf, AsBytes(SoftHsmConfigText(staging_tokens))));

  SIGNET_ASSIGN_OR_RETURN(SecretBytes so_pin, RandomPrintableSecret(24));
  SIGNET_ASSIGN_OR_RETURN(SecretBytes user_pin, RandomPrintableSecret(24));
  SIGNET_TRY(fs::WriteFileAtomic(Join(staging, config::kSoPinFileName), so_pin.view(), 0600));
  SIGNET_TRY(fs::WriteFileAtomic(Join(staging, config::kUserPinFileName), user_pin.view(), 0600));

  // Everything that can be refused is checked before a token is made: a module path that is not
  // UTF-8 cannot be written in TOML, and the module must be SoftHSM2, whose token goes inside the
  // staging folder (SOFTHSM2_CONF) and disappears with it if init fails. Another module would
  // initialise a slot of a real HSM, whose SO PIN would then be lost with the staging folder.
  const std::string config_text = config::EmbeddedDefaultConfigText(module_path);
  auto parsed = config::ParseConfig(config_text, config::kConfigFileName, final_dir);
  if (!parsed.ok()) {
    return InvalidArgument("the module path " + OneLineSafe(module_path, 512) +
                           " cannot be written to " + std::string(config::kConfigFileName) + ": " +
                           parsed.error().message());
  }
  ::setenv("SOFTHSM2_CONF", staging_conf.c_str(), 1);
  Status made =
      hsm::InitializeToken(module_path, config::kDefaultTokenLabel, so_pin, user_pin, "SoftHSM");
  if (!made.ok() && made.error().message().find("no token was initialised") != std::string::npos) {
    return made.error().WithContext(
        "init sets up the embedded default, a SoftHSM2 token inside the data folder; for another "
        "HSM, initialise its token with the vendor's tools and write signet.toml's [hsm] yourself "
        "(README)");
  }
  SIGNET_TRY(made);

  {
    auto db = store::SqliteStore::Open(Join(staging, config::kDatabaseFileName));
    if (!db.ok()) return std::move(db).error();
  }

  SystemClock clock;
  SIGNET_TRY(WriteTlsIdentity(Join(staging, config::kTlsCertificateFileName),
                              Join(staging, config::kTlsPrivateKeyFileName), clock));

  // Now point SoftHSM at the folder's final place, and write signet.toml (checked above) last of
  // all: a folder moved into place must open.
  SIGNET_TRY(fs::WriteFileAtomic(
      staging_conf, AsBytes(SoftHsmConfigText(Join(final_dir, config::kTokenDirName)))));
  SIGNET_TRY(
      fs::WriteFileAtomic(Join(staging, config::kConfigFileName), AsBytes(config_text), 0600));
  return OkStatus();
}

}  // namespace

std::string ResolveDataDir(const GlobalOptions& global) {
  std::string dir = global.data_dir;
  if (dir.empty()) dir = EnvOr("SIGNET_DATA_DIR", std::string(config::kDefaultDataDir));
  std::error_code ec;
  stdfs::path abs = stdfs::absolute(dir, ec);
  stdfs::path normal = (ec ? stdfs::path(dir) : abs).lexically_normal();
  // "data/" and "." normalise to a path ending in a separator, whose parent_path() is the folder
  // itself: init would then create the folder to stage in and fail to move the staging into it.
  if (!normal.has_filename() && normal.has_relative_path()) normal = normal.parent_path();
  return normal.string();
}

Result<bool> EnsureEmbeddedTlsIdentity(const config::Config& config, const Clock& clock) {
  const std::string& cert = config.server.tls_certificate;
  const std::string& key = config.server.tls_private_key;
  bool have_cert = fs::Exists(cert);
  bool have_key = fs::Exists(key);
  // Only the embedded default's own files are made: a configured path that is missing (a typo,
  // a certificate not yet copied in) must fail at start-up, naming the file, not be replaced by a
  // self-signed development certificate without anyone noticing.
  auto is_default = [&](const std::string& path, std::string_view name) {
    return stdfs::path(path).lexically_normal() ==
           (stdfs::path(config.data_dir) / name).lexically_normal();
  };
  const bool defaults = is_default(cert, config::kTlsCertificateFileName) &&
                        is_default(key, config::kTlsPrivateKeyFileName);
  if (have_cert && have_key) {
    // A certificate that has expired, or soon will, makes every client fail its handshake with
    // nothing in signet's own output to say why. The development certificate is renewed (clients
    // that pinned it must take the new one); a configured one is the operator's: a warning.
    auto text = fs::ReadFile(cert, 1024 * 1024);
    auto summary = text.ok() ? pki::SummarizeTlsCertificate(ToString(*text))
                             : Result<pki::TlsCertificateSummary>(text.error());
    if (!summary.ok()) return false;  // the server's TLS set-up reports what is wrong
    const TimePoint* not_after = &summary->not_after;
    const TimePoint now = clock.Now();
    const bool expired = now >= *not_after;
    if (now + kTlsRenewBefore < *not_after) return false;
    // Only signet's own development certificate is replaced: a CA-issued one put in these files
    // (the obvious way to install one) is the operator's, and so is its key.
    if (!defaults || !summary->development) {
      std::cerr << "signet: warning: the TLS certificate " << cert
                << (expired ? " expired at " : " expires at ") << FormatRfc3339(*not_after)
                << "; clients will refuse the server" << (expired ? "" : " then")
                << ": install a renewed certificate\n";
      return false;
    }
    std::cerr << "signet: the development TLS certificate " << cert
              << (expired ? " expired at " : " expires at ") << FormatRfc3339(*not_after)
              << "; a new one is made (clients that trusted the old one need the new file)\n";
    SIGNET_TRY(WriteTlsIdentity(cert, key, clock));
    return true;
  }
  if (!defaults) return false;
  if (have_cert != have_key) {
    return FailedPrecondition("TLS identity incomplete: " + (have_cert ? key : cert) +
                              " is missing; remove " + (have_cert ? cert : key) +
                              " to have a new development identity created");
  }
  SIGNET_TRY(WriteTlsIdentity(cert, key, clock));
  return true;
}

namespace {

// OpenLocal; with `fixed_pin_file`, the user PIN is read from that file only (a folder init has
// just made), and a PIN given by the environment or --pin-file is set aside.
Result<std::unique_ptr<LocalContext>> OpenLocalWith(const GlobalOptions& global,
                                                    const std::string& config_file,
                                                    const std::string* fixed_pin_file) {
  std::string dir = ResolveDataDir(global);
  SIGNET_TRY(CheckUsableDataDir(dir));
  auto ctx = std::make_unique<LocalContext>();
  if (config_file.empty()) {
    SIGNET_ASSIGN_OR_RETURN(ctx->config, config::LoadDataDirConfig(dir));
  } else {
    SIGNET_ASSIGN_OR_RETURN(ctx->config, config::LoadConfigFile(config_file, dir));
  }
  config::HsmConfig& hsm_config = ctx->config.hsm;
  if (!global.module_path.empty()) hsm_config.module_path = global.module_path;
  if (!global.token_label.empty() || !global.token_serial.empty()) {
    hsm_config.token_label = global.token_label;
    hsm_config.token_serial = global.token_serial;
  }
  std::string pin_file =
      global.pin_file.empty() ? EnvOr("SIGNET_PIN_FILE", hsm_config.pin_file) : global.pin_file;

  auto db = store::SqliteStore::OpenExisting(ctx->config.store.sqlite_path);
  if (!db.ok()) return std::move(db).error();
  ctx->store = std::move(*db);

  bool pin_from_environment = false;
  if (fixed_pin_file != nullptr) {
    const bool from_environment = TakePinFromEnvironment().has_value();  // taken and wiped
    const bool other_file = !pin_file.empty() && pin_file != *fixed_pin_file;
    if (from_environment || other_file) {
      std::cerr << "signet: the PIN given by SIGNET_PIN, SIGNET_PIN_FILE or --pin-file is not "
                   "used: the new token's user PIN is the one init generated, in "
                << *fixed_pin_file << "\n";
    }
    pin_file = *fixed_pin_file;
  }
  SIGNET_ASSIGN_OR_RETURN(SecretBytes pin, ReadUserPin(pin_file, &pin_from_environment));
  // From here the configuration says where the PIN came from (the start-up entry records it):
  // the file actually read, or none when SIGNET_PIN gave the PIN itself.
  hsm_config.pin_file = pin_from_environment ? std::string() : pin_file;
  if (!hsm_config.softhsm_conf.empty()) {
    ::setenv("SOFTHSM2_CONF", hsm_config.softhsm_conf.c_str(), 1);
  }
  hsm::Pkcs11Options options;
  options.module_path = hsm_config.module_path;
  options.token_label = hsm_config.token_label;
  options.token_serial = hsm_config.token_serial;
  options.user_pin = std::move(pin);
  auto key_store = hsm::Pkcs11KeyStore::Open(std::move(options));
  if (!key_store.ok()) {
    Error e = std::move(key_store).error();
    // A refused PIN: say which one was used, since SIGNET_PIN wins over every PIN file.
    if (e.code() != ErrorCode::kUnauthenticated) return e;
    return Error(e.code(), e.message() + " (the PIN " +
                               (pin_from_environment ? std::string("came from SIGNET_PIN")
                                                     : "was read from " + pin_file) +
                               ")");
  }
  ctx->pkcs11 = key_store->get();
  ctx->key_store = std::move(*key_store);
  SIGNET_ASSIGN_OR_RETURN(ctx->token, ctx->key_store->DescribeToken());

  ctx->audit = std::make_unique<service::LogAuditSink>(service::DirectLogAppender(*ctx->store));
  ctx->keys = std::make_unique<service::KeyService>(
      *ctx->key_store, *ctx->store, ctx->clock, *ctx->audit,
      service::TokenIdentity{ctx->token.label, ctx->token.serial});
  return ctx;
}

}  // namespace

Result<std::unique_ptr<LocalContext>> OpenLocal(const GlobalOptions& global,
                                                const std::string& config_file) {
  return OpenLocalWith(global, config_file, nullptr);
}

namespace {

// Blocks SIGINT, SIGTERM, SIGHUP and SIGQUIT for the calling thread while it lives; one that
// arrives meanwhile is delivered when the old mask comes back.
class DeferredTerminationSignals {
 public:
  DeferredTerminationSignals() {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaddset(&set, sig);
    blocked_ = ::pthread_sigmask(SIG_BLOCK, &set, &old_) == 0;
  }
  ~DeferredTerminationSignals() {
    if (blocked_) ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  DeferredTerminationSignals(const DeferredTerminationSignals&) = delete;
  DeferredTerminationSignals& operator=(const DeferredTerminationSignals&) = delete;

 private:
  sigset_t old_{};
  bool blocked_ = false;
};

// Moves every entry of `staging` (inside `dir`) up into `dir`, signet.toml last, then removes
// the empty staging folder and makes `dir` owner-only. `moved` lists what was moved.
Status MoveEntriesUp(const std::string& staging, const std::string& dir,
                     std::vector<std::string>* moved) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : stdfs::directory_iterator(staging, ec)) {
    names.push_back(entry.path().filename().string());
  }
  if (ec) return Unavailable("cannot list " + staging + ": " + ec.message());
  std::stable_partition(names.begin(), names.end(),
                        [](const std::string& n) { return n != config::kConfigFileName; });
  for (const std::string& name : names) {
    const std::string from = Join(staging, name);
    const std::string to = Join(dir, name);
    // Never over anything that appeared meanwhile.
    if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) != 0) {
      return Unavailable("cannot move " + name + " into " + dir + ": " + std::strerror(errno));
    }
    moved->push_back(to);
  }
  if (::rmdir(staging.c_str()) != 0) {
    return Unavailable("cannot remove the staging folder " + staging + ": " + std::strerror(errno));
  }
  // The folder holds the PINs: owner-only, as a folder init creates is. (A folder this user may
  // write but not chmod, such as a mount point, keeps its mode; the files are owner-only anyway.)
  ::chmod(dir.c_str(), 0700);
  return OkStatus();
}

}  // namespace

Result<InitOutcome> InitDataDir(const GlobalOptions& global) {
  InitOutcome outcome;
  outcome.data_dir = ResolveDataDir(global);
  const std::string& dir = outcome.data_dir;

  if (fs::Exists(Join(dir, config::kConfigFileName))) {
    // Already initialised: prove it still opens, and change nothing.
    SIGNET_ASSIGN_OR_RETURN(outcome.ctx, OpenLocal(global));
    return outcome;
  }
  if (fs::Exists(dir)) {
    SIGNET_TRY(CheckUsableDataDir(dir));
    SIGNET_TRY(CheckEmptyForInit(dir));
  }

  // A new folder is built beside its place and renamed into it whole. An existing empty one (made
  // by a package's install -d under a root-owned parent, a mounted volume, a symlink to a folder)
  // cannot be replaced by a rename: the staging folder is made inside it and its entries are
  // moved up, signet.toml last, so the folder counts as initialised only once it is complete.
  const bool existing = fs::Exists(dir);
  std::string parent = stdfs::path(dir).parent_path().string();
  if (!existing) SIGNET_TRY(fs::EnsureDirectory(parent, 0755));
  // Two inits of one existing folder (a restart racing a manual run) are kept apart by a lock on
  // the folder itself, and the winner looks again once it holds it. (Two inits of a new folder
  // race on the final rename, which only one can win.)
  struct FolderLock {
    int fd = -1;
    ~FolderLock() {
      if (fd >= 0) ::close(fd);
    }
  } folder_lock;
  if (existing) {
    folder_lock.fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (folder_lock.fd < 0) {
      return Unavailable("cannot open " + dir + ": " + std::strerror(errno));
    }
    if (::flock(folder_lock.fd, LOCK_EX | LOCK_NB) != 0) {
      return FailedPrecondition("another signet init is setting up " + dir +
                                "; wait for it to finish");
    }
    if (fs::Exists(Join(dir, config::kConfigFileName))) {
      return FailedPrecondition("another signet init set up " + dir +
                                " meanwhile; run the command again to use it");
    }
    SIGNET_TRY(CheckEmptyForInit(dir));
  }
  const std::string stage_in = existing ? dir : parent;
  // While the staging folder exists, Ctrl-C and the like wait: the folder is then either moved
  // into place whole or removed, and the signal acts on return (a staging folder left behind
  // would hold the new token's PINs, and nothing would ever remove it).
  DeferredTerminationSignals deferred;
  std::string tmpl = Join(stage_in, ".signet-init-XXXXXX");
  if (::mkdtemp(tmpl.data()) == nullptr) {
    int err = errno;
    std::string msg = "cannot create a staging folder in " + stage_in + ": " + std::strerror(err);
    if (err == EACCES || err == EPERM || err == EROFS) return PermissionDenied(msg);
    return Unavailable(msg);
  }
  const std::string staging = tmpl;

  std::string module_path =
      global.module_path.empty() ? std::string(config::kSoftHsmModulePath) : global.module_path;
  Status built = BuildEmbeddedDefault(staging, dir, module_path);
  std::vector<std::string> moved;  // entries moved into an existing folder, to undo on failure
  if (built.ok() && !existing && ::rename(staging.c_str(), dir.c_str()) != 0) {
    int err = errno;
    built = Unavailable("cannot move the new data folder into place at " + dir + ": " +
                        std::strerror(err));
  }
  if (built.ok() && existing) built = MoveEntriesUp(staging, dir, &moved);
  if (built.ok()) {
    // A rename is durable only once its folder is: after a power loss the folder could otherwise
    // come back under its staging name, PINs and all, where nothing looks.
    // Everything is in place by now, so a failure here is not undone (a retry would find the
    // folder in use); it is said.
    Status synced = fs::SyncFolder(existing ? dir : parent);
    if (!synced.ok()) {
      std::cerr << "signet: warning: the data folder " << dir
                << " is in place, but may not survive a crash yet (" << synced.error().message()
                << "); run 'sync' before relying on it\n";
    }
  }
  if (!built.ok()) {
    std::error_code ec;
    for (const std::string& entry : moved) stdfs::remove_all(entry, ec);
    stdfs::remove_all(staging, ec);
    return built.error().WithContext("signet init");
  }
  outcome.created = true;
  const std::string user_pin_file = Join(dir, config::kUserPinFileName);
  SIGNET_ASSIGN_OR_RETURN(outcome.ctx, OpenLocalWith(global, "", &user_pin_file));
  return outcome;
}

}  // namespace signet::cli
