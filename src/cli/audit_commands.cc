#include "cli/audit_commands.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "audit/entry.h"
#include "audit/export.h"
#include "audit/note.h"
#include "audit/store_log.h"
#include "audit/tiles.h"
#include "audit/verifier.h"
#include "cli/data_dir.h"
#include "cli/remote_context.h"
#include "cli/remote_session.h"
#include "client/client.h"
#include "common/encoding.h"
#include "common/fs.h"
#include "common/text.h"
#include "config/config.h"
#include "store/sqlite/sqlite_store.h"

namespace signet::cli {
namespace {

using nlohmann::json;

std::string Str(uint64_t v) { return std::to_string(v); }

// ---- where the log comes from ------------------------------------------------------------------

enum class SourceKind { kDataDir, kServer, kExport };

struct Source {
  SourceKind kind = SourceKind::kDataDir;
  std::string where;  // folder, server URL or file
};

// Exactly one of --server, --data-dir and (where allowed) --export; with none, SIGNET_SERVER, else
// the data folder of SIGNET_DATA_DIR or ./signet-data.
Result<Source> ChooseSource(const GlobalOptions& global, const std::string& export_file) {
  const int given = static_cast<int>(!global.server.empty()) +
                    static_cast<int>(!global.data_dir.empty()) +
                    static_cast<int>(!export_file.empty());
  if (given > 1) {
    return InvalidArgument("give only one of --server, --data-dir and --export");
  }
  if (!export_file.empty()) return Source{SourceKind::kExport, export_file};
  if (global.data_dir.empty() && !ServerFromOptions(global).empty()) {
    return Source{SourceKind::kServer, ServerFromOptions(global)};
  }
  return Source{SourceKind::kDataDir, ResolveDataDir(global)};
}

// A data folder's database, opened without the HSM.
struct LocalLog {
  config::Config config;
  std::unique_ptr<store::SqliteStore> store;
};

Result<LocalLog> OpenLocalLog(const std::string& dir) {
  LocalLog log;
  auto config = config::LoadDataDirConfig(dir);
  if (!config.ok()) return config.error().WithContext("opening the data folder " + dir);
  log.config = std::move(*config);
  auto db = store::SqliteStore::OpenExisting(log.config.store.sqlite_path);
  if (!db.ok()) return db.error().WithContext("opening " + log.config.store.sqlite_path);
  log.store = std::move(*db);
  return log;
}

// A server's /log/ resources over HTTPS.
class ServerLog {
 public:
  // Uses the session of `signet login` when it belongs to `url` (its pinned CA and token), else
  // `ca_file` (empty: the system trust store) and no token.
  static Result<std::unique_ptr<ServerLog>> Connect(const std::string& url,
                                                    const std::string& ca_file) {
    client::ClientOptions options;
    options.server_url = url;
    options.ca_file = ca_file;
    std::string token;
    auto path = DefaultSessionFilePath();
    if (path.ok() && fs::Exists(*path)) {
      auto session = LoadSession(*path);
      SystemClock clock;
      if (session.ok() && NormalizeServerUrl(session->server_url) == url &&
          !session->ExpiredAt(clock.Now())) {
        options = ClientOptionsFor(*session);
        if (!ca_file.empty()) {  // given now: it replaces the CA the session pinned
          options.ca_file = ca_file;
          options.ca_pem.clear();
        }
        token = std::string(session->access_token.text_view());
      }
    }
    SecretBytes secret(token);
    SecureWipe(token.data(), token.size());
    SIGNET_ASSIGN_OR_RETURN(auto http, client::HttpsClient::Create(std::move(options)));
    return std::unique_ptr<ServerLog>(new ServerLog(std::move(http), std::move(secret)));
  }
  ~ServerLog() = default;
  // Owns a connection.
  ServerLog(const ServerLog&) = delete;
  ServerLog& operator=(const ServerLog&) = delete;

  // The body of a 2xx answer to GET `target`; other answers become errors (a 401/403 says how to
  // get access).
  Result<std::string> Get(const std::string& target) {
    client::HttpRequest request;
    request.method = "GET";
    request.target = target;
    if (!token_.empty()) {
      request.headers.emplace_back("Authorization", "Bearer " + std::string(token_.text_view()));
    }
    auto response = http_->Send(request);
    for (auto& [name, value] : request.headers) SecureWipe(value.data(), value.size());
    if (!response.ok()) return std::move(response).error();
    if (response->status >= 200 && response->status <= 299) return std::move(response->body);
    Error error = client::ErrorFromResponse(*response);
    if (response->status == 401 || response->status == 403) {
      return Error(error.code(), error.message() +
                                     "; reading the log needs 'signet login' as an "
                                     "auditor or admin, unless the server makes it "
                                     "public");
    }
    return error.WithContext("GET " + target);
  }

  // The latest checkpoint, or nullopt before the first (404).
  Result<std::optional<std::string>> Checkpoint() {
    auto body = Get("/log/checkpoint");
    if (!body.ok() && body.error().code() == ErrorCode::kNotFound) {
      return std::optional<std::string>();
    }
    if (!body.ok()) return std::move(body).error();
    return std::optional<std::string>(std::move(*body));
  }

  Result<Bytes> Tile(const audit::TileRef& ref) {
    SIGNET_ASSIGN_OR_RETURN(std::string body, Get("/log/" + audit::TilePath(ref)));
    return ToBytes(body);
  }

 private:
  ServerLog(std::unique_ptr<client::HttpsClient> http, SecretBytes token)
      : http_(std::move(http)), token_(std::move(token)) {}
  std::unique_ptr<client::HttpsClient> http_;
  SecretBytes token_;
};

// The size a checkpoint note claims (not verified: that is the verifier's job).
Result<uint64_t> ClaimedSize(const std::string& note) {
  const size_t split = note.rfind("\n\n");
  if (split == std::string::npos) return InvalidArgument("the server's checkpoint is not a note");
  auto checkpoint = audit::ParseCheckpoint(std::string_view(note).substr(0, split + 1));
  if (!checkpoint.ok()) return checkpoint.error().WithContext("the server's checkpoint");
  const uint64_t size = checkpoint->size.value();
  if (size > static_cast<uint64_t>(INT64_MAX)) {
    return InvalidArgument("the server's checkpoint claims " + std::to_string(size) +
                           " entries, more than a log can hold (2^63 - 1)");
  }
  return size;
}

// The entries a server publishes (up to its latest checkpoint), read through entry bundles.
class ServerLogReader final : public audit::LogReader {
 public:
  ServerLogReader(ServerLog& server, uint64_t size) : server_(server), size_(size) {}
  Result<uint64_t> Size() override { return size_; }
  Status Read(uint64_t begin, uint64_t count, audit::EntryBatch& out) override {
    out.Clear();
    for (uint64_t i = begin; i < size_ && i - begin < count && !out.full(); ++i) {
      const uint64_t bundle = i / audit::kTileWidth;
      if (bundle != bundle_index_ || bundle_.empty()) {
        audit::TileRef ref;
        ref.entries = true;
        ref.index = bundle;
        ref.width = static_cast<int>(
            std::min<uint64_t>(audit::kTileWidth, size_ - bundle * audit::kTileWidth));
        SIGNET_ASSIGN_OR_RETURN(Bytes bytes, server_.Tile(ref));
        auto entries = audit::DecodeEntryBundle(bytes, ref.width);
        if (!entries.ok()) {
          return DataLoss("entry bundle " + audit::TilePath(ref) + ": " +
                          entries.error().message());
        }
        bundle_ = std::move(*entries);
        bundle_index_ = bundle;
      }
      out.Add(bundle_[i % audit::kTileWidth]);
    }
    return OkStatus();
  }

 private:
  ServerLog& server_;
  uint64_t size_;
  uint64_t bundle_index_ = 0;
  std::vector<std::string> bundle_;
};

// ---- output ------------------------------------------------------------------------------------

// A file written under a temporary name in the same folder and renamed into place once complete
// and synced, so a reader never sees half an export (fs::WriteFileAtomic, streamed).
class AtomicOutputFile {
 public:
  static Result<std::unique_ptr<AtomicOutputFile>> Create(const std::string& path) {
    std::filesystem::path target(path);
    std::string folder = target.parent_path().string();
    if (folder.empty()) folder = ".";
    std::string temp = folder + "/." + target.filename().string() + ".tmp-XXXXXX";
    const int fd = ::mkostemp(temp.data(), O_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      std::string message = "cannot create a file in " + folder + ": " + std::strerror(err);
      if (err == EACCES || err == EPERM || err == EROFS) return PermissionDenied(message);
      if (err == ENOENT) return NotFound(message);
      return Unavailable(message);
    }
    FILE* file = ::fdopen(fd, "wb");
    if (file == nullptr) {
      ::close(fd);
      ::unlink(temp.c_str());
      return Unavailable("cannot open " + temp);
    }
    return std::unique_ptr<AtomicOutputFile>(new AtomicOutputFile(path, temp, file, folder));
  }
  ~AtomicOutputFile() {
    if (file_ != nullptr) {
      std::fclose(file_);
      ::unlink(temp_.c_str());  // never committed: leave nothing behind
    }
  }
  // Owns an open file and its temporary name.
  AtomicOutputFile(const AtomicOutputFile&) = delete;
  AtomicOutputFile& operator=(const AtomicOutputFile&) = delete;

  Status Write(std::string_view data) {
    if (std::fwrite(data.data(), 1, data.size(), file_) != data.size()) {
      return WriteError();
    }
    return OkStatus();
  }

  Status Commit() {
    if (std::fflush(file_) != 0 || ::fsync(::fileno(file_)) != 0) return WriteError();
    if (std::fclose(file_) != 0) {
      file_ = nullptr;
      ::unlink(temp_.c_str());
      return WriteError();
    }
    file_ = nullptr;
    if (::rename(temp_.c_str(), path_.c_str()) != 0) {
      const int err = errno;
      ::unlink(temp_.c_str());
      return Unavailable("cannot rename " + temp_ + " to " + path_ + ": " + std::strerror(err));
    }
    Status synced = fs::SyncFolder(folder_);
    if (!synced.ok()) {
      return Error(synced.error().code(), path_ + " was written, but it may not survive a crash: " +
                                              synced.error().message());
    }
    return OkStatus();
  }

 private:
  AtomicOutputFile(std::string path, std::string temp, FILE* file, std::string folder)
      : path_(std::move(path)), temp_(std::move(temp)), file_(file), folder_(std::move(folder)) {}
  Error WriteError() const {
    const int err = errno;
    std::string message = "cannot write " + temp_ + ": " + std::strerror(err);
    if (err == ENOSPC || err == EDQUOT) return ResourceExhausted(message);
    return Unavailable(message);
  }

  std::string path_;
  std::string temp_;
  FILE* file_;
  std::string folder_;
};

std::string FormatSeconds(std::chrono::nanoseconds elapsed) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.2f s", std::chrono::duration<double>(elapsed).count());
  return buffer;
}

json ReportToJson(const audit::VerifyReport& report) {
  json failure = nullptr;
  if (report.failure) {
    const audit::VerifyFailure& f = *report.failure;
    failure = json{{"kind", std::string(audit::FailureKindName(f.kind))},
                   {"index", f.index ? json(*f.index) : json(nullptr)},
                   {"range_end", f.range_end ? json(*f.range_end) : json(nullptr)},
                   {"message", f.message}};
  }
  return json{{"ok", report.ok()},
              {"entries_checked", report.entries_checked},
              {"bytes_checked", report.bytes_checked},
              {"checkpoints_checked", report.checkpoints_checked},
              {"size", report.size.value()},
              {"root", Base64Encode(report.root)},
              {"signed_size", report.signed_size.value()},
              {"latest_checked", report.latest_checked},
              {"trusted_checked", report.trusted_checked},
              {"consistency_proof_checked", report.consistency_proof_checked},
              {"stored_checkpoints_checked", report.stored_checkpoints_checked},
              {"elapsed_seconds", std::chrono::duration<double>(report.elapsed).count()},
              {"failure", failure}};
}

std::string ReportText(const audit::VerifyReport& report, const std::string& what) {
  std::string out;
  const double mb = static_cast<double>(report.bytes_checked) / 1e6;
  char size_text[32];
  std::snprintf(size_text, sizeof size_text, "%.1f MB", mb);
  if (report.failure) {
    const audit::VerifyFailure& f = *report.failure;
    out += "FAILED: " + what + " does not verify\n";
    out +=
        "  first bad index  " + (f.index ? Str(*f.index) : std::string("(none recorded)")) +
        (f.range_end ? " (the change lies in " + Str(*f.index) + ".." + Str(*f.range_end - 1) + ")"
                     : "") +
        "\n";
    out += "  problem          " + std::string(audit::FailureKindName(f.kind)) + ": " + f.message +
           "\n";
    out += "  checked before   " + Str(report.entries_checked) + " entries, " +
           Str(report.checkpoints_checked) + " checkpoints (" + FormatSeconds(report.elapsed) +
           ")\n";
    return out;
  }
  out += "OK: " + what + " verifies\n";
  out += "  entries          " + Str(report.entries_checked) + " (" + size_text + ") in " +
         FormatSeconds(report.elapsed) + "\n";
  out += "  checkpoints      " + Str(report.checkpoints_checked) + " signed checkpoint entries\n";
  out += "  tree             size " + Str(report.size.value()) + ", root " +
         Base64Encode(report.root) + "\n";
  const uint64_t unsigned_tail =
      report.size.value() - std::min(report.size.value(), report.signed_size.value());
  out += "  signed           " + Str(report.signed_size.value()) + " entries" +
         (unsigned_tail > 0 ? "; the last " + Str(unsigned_tail) +
                                  " are not under a checkpoint yet (form and order checked only)"
                            : "") +
         "\n";
  out += std::string("  latest           ") +
         (report.latest_checked ? "the log's latest checkpoint matches" : "not compared") + "\n";
  out += std::string("  stored list      ") +
         (report.stored_checkpoints_checked ? "every stored checkpoint matches its entry"
                                            : "not compared") +
         "\n";
  if (report.trusted_checked) {
    out += std::string("  trusted          your checkpoint is a prefix of this log") +
           (report.consistency_proof_checked ? " (consistency proof to the latest verified)" : "") +
           "\n";
  }
  return out;
}

Result<std::vector<audit::VerifierKey>> ParseKeys(const std::vector<std::string>& texts) {
  std::vector<audit::VerifierKey> keys;
  for (const std::string& text : texts) {
    auto key = audit::ParseVerifierKey(text);
    if (!key.ok()) return key.error().WithContext("--key");
    keys.push_back(std::move(*key));
  }
  return keys;
}

// ---- signet audit verify -----------------------------------------------------------------------

class AuditVerifyCommand final : public Command {
 public:
  void Configure(CLI::App& app) override {
    app.add_option("--export", export_file_,
                   "Verify an export file written by 'signet audit export' (offline)");
    app.add_option("--key", keys_,
                   "The log's verifier key (name+id+base64, from 'signet audit key'); may be "
                   "given more than once. Required with --server and --export");
    app.add_option("--trusted-checkpoint", trusted_file_,
                   "A checkpoint you saved earlier (e.g. from GET /log/checkpoint): prove the log "
                   "only grew since");
    app.add_option("--ca-file", ca_file_,
                   "CA certificate(s) of the server (PEM), when not logged in to it");
    app.add_flag("--require-signed", require_signed_,
                 "Fail (exit 8) unless every entry is under a signed checkpoint that verified; "
                 "entries after the last checkpoint are otherwise only checked for form and "
                 "order");
    app.footer(
        "Reads the log from exactly one of --server URL, --data-dir DIR (global options) or "
        "--export FILE; with none, SIGNET_SERVER or the data folder. Recomputes every leaf and the "
        "Merkle tree, checks every checkpoint's signature and root, the stored checkpoints, the "
        "latest checkpoint and the trusted one. Exit 0: the log verifies; 8: it does not (the "
        "first bad index is named); 6: there is nothing to verify (a server without a "
        "checkpoint; no entries with --require-signed); others: it could not be read.");
  }

  Status Run(const GlobalOptions& global) override {
    SIGNET_ASSIGN_OR_RETURN(Source source, ChooseSource(global, export_file_));
    SIGNET_ASSIGN_OR_RETURN(std::vector<audit::VerifierKey> keys, ParseKeys(keys_));
    audit::VerifyOptions options;
    options.require_signed = require_signed_;
    if (!trusted_file_.empty()) {
      auto text = fs::ReadFile(trusted_file_, audit::kMaxNoteSize);
      if (!text.ok()) return text.error().WithContext("--trusted-checkpoint");
      options.trusted_checkpoint = ToString(*text);
    }
    switch (source.kind) {
      case SourceKind::kDataDir:
        return VerifyDataDir(source.where, std::move(keys), std::move(options), global.json);
      case SourceKind::kServer:
        return VerifyServer(source.where, std::move(keys), std::move(options), global.json);
      case SourceKind::kExport:
        return VerifyExport(source.where, std::move(keys), std::move(options), global.json);
    }
    return InternalError("unknown source");
  }

 private:
  Status VerifyDataDir(const std::string& dir, std::vector<audit::VerifierKey> keys,
                       audit::VerifyOptions options, bool as_json) {
    SIGNET_ASSIGN_OR_RETURN(LocalLog log, OpenLocalLog(dir));
    store::Store& store = *log.store;
    if (keys.empty()) {
      SIGNET_ASSIGN_OR_RETURN(audit::VerifierKey key, audit::StoredVerifierKey(store));
      std::cerr << "warning: no --key given, so the log key stored in " +
                       log.config.store.sqlite_path +
                       " is used. A key read from the same database proves only that the log is "
                       "consistent with itself; pass --key with the key you kept elsewhere "
                       "('signet audit key', printed when the log was set up).\n";
      keys.push_back(std::move(key));
    }
    options.trusted_keys = std::move(keys);
    // Without a kept checkpoint, the one serve wrote beside the database: it shows a database
    // rolled back behind what the service signed (though not a folder replaced as a whole).
    if (!options.trusted_checkpoint) {
      const std::string witness =
          (std::filesystem::path(log.config.data_dir) / config::kLogWitnessFileName).string();
      if (fs::Exists(witness)) {
        auto text = fs::ReadFile(witness, audit::kMaxNoteSize);
        if (!text.ok()) return text.error().WithContext("reading the service's checkpoint");
        // serve signed it with the log key; if that key (the given one, or the database's) does
        // not open it, the key row or the file was replaced: evidence, not a usage error.
        const std::string& origin =
            options.origin.empty() ? options.trusted_keys.front().name : options.origin;
        auto opened = audit::OpenCheckpoint(ToString(*text), origin, options.trusted_keys);
        if (!opened.ok()) {
          return DataLoss("the checkpoint serve kept in " + witness +
                          " does not open with the log key (" + opened.error().message() +
                          "): the key in the database or that file was replaced");
        }
        options.trusted_checkpoint = ToString(*text);
        std::cerr << "note: the checkpoint serve kept in " << witness
                  << " is taken as trusted; --trusted-checkpoint with one kept elsewhere checks "
                     "against a copy no one with access to this folder could replace\n";
      }
    }
    // The latest checkpoint first, then the size (in Verify): the entries read then cover it.
    SIGNET_TRY(audit::AddStoreSources(store, options));
    audit::StoreLogReader reader(store);
    return Finish(reader, options, "the log in " + log.config.store.sqlite_path, as_json);
  }

  Status VerifyServer(const std::string& url, std::vector<audit::VerifierKey> keys,
                      audit::VerifyOptions options, bool as_json) {
    if (keys.empty()) {
      return InvalidArgument(
          "--key VERIFIER_KEY is required with --server: a key served by the "
          "server itself would prove nothing (ask the operator for the output "
          "of 'signet audit key')");
    }
    options.trusted_keys = std::move(keys);
    SIGNET_ASSIGN_OR_RETURN(auto server, ServerLog::Connect(url, ca_file_));
    SIGNET_ASSIGN_OR_RETURN(std::optional<std::string> note, server->Checkpoint());
    if (!note) {
      // Without a checkpoint there is nothing signed to check the entries against; "verified" would
      // be said of nothing. A running signet signs its first within a second of its first entries,
      // so this is a wrong URL, a log that is not signet's, or a server hiding its log.
      return FailedPrecondition(
          "the server has no checkpoint (GET " + url +
          "/log/checkpoint answered 404), so nothing can be verified; check the URL, or retry "
          "in a second if the log is new");
    }
    uint64_t size = 0;
    {
      // Only a checkpoint that opens with the trusted key says how many entries to read. An
      // unsigned one could claim 2^63 entries and keep the verifier downloading for hours before
      // it fails; unread, it fails at once, as the bad checkpoint it is (Verify reports it).
      const std::string& origin =
          options.origin.empty() ? options.trusted_keys.front().name : options.origin;
      if (audit::OpenCheckpoint(*note, origin, options.trusted_keys).ok()) {
        SIGNET_ASSIGN_OR_RETURN(size, ClaimedSize(*note));
      }
      options.latest_checkpoint = audit::LatestCheckpoint{*note, std::nullopt};
    }
    ServerLog* raw = server.get();
    options.level0_tiles = [raw](const audit::TileRef& ref) { return raw->Tile(ref); };
    ServerLogReader reader(*server, size);
    return Finish(reader, options, "the log of " + url, as_json);
  }

  Status VerifyExport(const std::string& path, std::vector<audit::VerifierKey> keys,
                      audit::VerifyOptions options, bool as_json) {
    if (keys.empty()) {
      return InvalidArgument(
          "--key VERIFIER_KEY is required with --export: the file cannot "
          "vouch for itself (use the key from 'signet audit key')");
    }
    SIGNET_ASSIGN_OR_RETURN(auto reader, audit::ExportReader::Open(path));
    if (reader->header().origin != keys.front().name) {
      std::cerr << "warning: the export says it is the log '" << reader->header().origin
                << "', but --key names '" << keys.front().name << "'\n";
    }
    options.trusted_keys = std::move(keys);
    if (reader->checkpoint()) {
      options.latest_checkpoint = audit::LatestCheckpoint{*reader->checkpoint(), std::nullopt};
    }
    if (!options.trusted_checkpoint) {
      // The file's header and final checkpoint are claims nobody signed: a copy cut after any
      // signed checkpoint, and ended with it, is the true log of that moment and verifies.
      std::cerr << "warning: without --trusted-checkpoint this shows that the export is a prefix "
                   "of the log, not that it is the whole log; pass a checkpoint fetched from "
                   "the server (GET /log/checkpoint) to prove it reaches that far\n";
    }
    return Finish(*reader, options, "the export " + path, as_json);
  }

  static Status Finish(audit::LogReader& reader, const audit::VerifyOptions& options,
                       const std::string& what, bool as_json) {
    SIGNET_ASSIGN_OR_RETURN(audit::VerifyReport report, audit::Verify(reader, options));
    const uint64_t size = report.size.value();
    if (report.ok() && size == 0) {
      // Vacuously true of an empty log; never what a verifier wants to be told "OK" about.
      if (options.require_signed) {
        return FailedPrecondition(what +
                                  " holds no entries, so nothing was verified "
                                  "(--require-signed)");
      }
      std::cerr << "warning: " << what << " holds no entries; nothing was verified\n";
    }
    if (report.ok() && size > 0 && report.signed_size.value() == 0) {
      std::cerr << "warning: no entry is under a signed checkpoint, so this shows only that the "
                   "entries are well-formed and in order, not that they are the log's; "
                   "--require-signed makes this an error\n";
    }
    if (as_json) {
      std::cout << ReportToJson(report).dump(2) << "\n";
    } else {
      std::cout << ReportText(report, what);
    }
    std::cout.flush();
    if (report.ok()) return OkStatus();
    const audit::VerifyFailure& f = *report.failure;
    return DataLoss("audit log verification failed" +
                    (f.index ? " at index " + Str(*f.index) : std::string()) + ": " + f.message);
  }

  std::string export_file_;
  std::vector<std::string> keys_;
  std::string trusted_file_;
  std::string ca_file_;
  bool require_signed_ = false;
};

// ---- signet audit export -----------------------------------------------------------------------

class AuditExportCommand final : public Command {
 public:
  void Configure(CLI::App& app) override {
    app.add_option("--out,-o", out_,
                   "Write to this file (created complete or not at all); default: stdout");
    app.add_option("--ca-file", ca_file_,
                   "CA certificate(s) of the server (PEM), when not logged in to it");
    app.add_option("--key", keys_,
                   "The log's verifier key (from 'signet audit key'); may be given more than "
                   "once. Required with --server: the checkpoint must be signed before its size "
                   "decides how many entries are downloaded");
    app.footer(
        "Writes the log as JSON lines (docs/audit.md): a header, one line per entry with its "
        "exact bytes in base64, and the latest signed checkpoint. 'signet audit verify --export "
        "FILE --key KEY' checks it offline. From --data-dir: every entry; from --server: the "
        "entries its latest checkpoint covers.");
  }

  Status Run(const GlobalOptions& global) override {
    SIGNET_ASSIGN_OR_RETURN(Source source, ChooseSource(global, ""));
    std::unique_ptr<AtomicOutputFile> file;
    if (!out_.empty()) {
      SIGNET_ASSIGN_OR_RETURN(file, AtomicOutputFile::Create(out_));
    }
    auto write = [&](std::string_view text) -> Status {
      if (file) return file->Write(text);
      std::cout << text;
      return std::cout ? OkStatus() : Unavailable("cannot write to stdout");
    };

    audit::ExportHeader header;
    std::optional<std::string> note;
    std::unique_ptr<LocalLog> local;
    std::unique_ptr<ServerLog> server;
    std::unique_ptr<audit::LogReader> reader;
    if (source.kind == SourceKind::kDataDir) {
      SIGNET_ASSIGN_OR_RETURN(LocalLog opened, OpenLocalLog(source.where));
      local = std::make_unique<LocalLog>(std::move(opened));
      SIGNET_ASSIGN_OR_RETURN(auto key, local->store->GetLogKey());
      if (key) header.origin = key->origin;
      // The checkpoint first, then the size, so the entries cover it.
      SIGNET_ASSIGN_OR_RETURN(auto latest, local->store->LatestLogCheckpoint());
      if (latest) note = latest->note;
      reader = std::make_unique<audit::StoreLogReader>(*local->store);
      SIGNET_ASSIGN_OR_RETURN(header.size, reader->Size());
    } else {
      // The checkpoint's size decides how many entries are fetched: an unsigned one could claim
      // 2^63 and keep export downloading (and filling the disk) until it is stopped.
      SIGNET_ASSIGN_OR_RETURN(std::vector<audit::VerifierKey> keys, ParseKeys(keys_));
      if (keys.empty()) {
        return InvalidArgument(
            "--key VERIFIER_KEY is required with --server: the server's checkpoint must be signed "
            "by the log's key before its size decides how much is downloaded (ask the operator "
            "for the output of 'signet audit key')");
      }
      SIGNET_ASSIGN_OR_RETURN(server, ServerLog::Connect(source.where, ca_file_));
      SIGNET_ASSIGN_OR_RETURN(note, server->Checkpoint());
      if (note) {
        auto opened = audit::OpenCheckpoint(*note, keys.front().name, keys);
        if (!opened.ok()) {
          return opened.error().WithContext(
              "the server's checkpoint does not verify with --key; nothing was written");
        }
        SIGNET_ASSIGN_OR_RETURN(header.size, ClaimedSize(*note));
        header.origin = note->substr(0, note->find('\n'));
      }
      reader = std::make_unique<ServerLogReader>(*server, header.size);
    }

    SIGNET_TRY(write(audit::ExportHeaderLine(header)));
    audit::EntryBatch batch;
    uint64_t position = 0;
    while (position < header.size) {
      const uint64_t want = std::min<uint64_t>(4096, header.size - position);
      SIGNET_TRY(reader->Read(position, want, batch));
      if (batch.empty()) {
        return DataLoss("the log says it holds " + Str(header.size) + " entries, but entry " +
                        Str(position) + " cannot be read; nothing was written");
      }
      std::string lines;
      for (size_t k = 0; k < batch.size(); ++k) {
        lines += audit::ExportEntryLine(position + k, batch[k]);
      }
      SIGNET_TRY(write(lines));
      position += batch.size();
    }
    SIGNET_TRY(write(audit::ExportCheckpointLine(note)));
    if (file) {
      SIGNET_TRY(file->Commit());
      std::cerr << "wrote " << header.size << " entries"
                << (note ? " and the latest checkpoint" : " (no checkpoint yet)") << " to " << out_
                << "\n";
    } else {
      std::cout.flush();
    }
    return OkStatus();
  }

 private:
  std::string out_;
  std::string ca_file_;
  std::vector<std::string> keys_;
};

// ---- signet audit tail -------------------------------------------------------------------------

class AuditTailCommand final : public Command {
 public:
  void Configure(CLI::App& app) override {
    app.add_option("--from", from_,
                   "First index to print (default: only entries appended from now on)")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--interval", interval_seconds_, "Seconds between polls (default 1)")
        ->check(CLI::Range(0.05, 3600.0));
    app.add_flag("--no-follow", no_follow_, "Print what is there and exit instead of polling");
    app.add_option("--ca-file", ca_file_,
                   "CA certificate(s) of the server (PEM), when not logged in to it");
    app.footer(
        "Prints entries as JSON lines, exactly as they are hashed into the log, and keeps polling "
        "for new ones until interrupted (Ctrl-C). From a server it reads /api/v1/log/entries "
        "(auditor or admin).");
  }

  Status Run(const GlobalOptions& global) override {
    SIGNET_ASSIGN_OR_RETURN(Source source, ChooseSource(global, ""));
    const auto interval = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::duration<double>(interval_seconds_));
    if (source.kind == SourceKind::kDataDir) return TailDataDir(source.where, interval);
    return TailServer(source.where, interval);
  }

 private:
  Status TailDataDir(const std::string& dir, std::chrono::milliseconds interval) {
    SIGNET_ASSIGN_OR_RETURN(LocalLog log, OpenLocalLog(dir));
    int64_t next = from_;
    if (from_ < 0) {
      SIGNET_ASSIGN_OR_RETURN(next, log.store->LogSize());
    }
    while (true) {
      SIGNET_ASSIGN_OR_RETURN(std::vector<store::LogEntryRow> rows,
                              log.store->ReadLogEntries(next, 1000));
      for (const store::LogEntryRow& row : rows) {
        WriteEntryLine(row.data);
        next = row.index + 1;
      }
      SIGNET_TRY(FlushOrStop());
      if (rows.size() == 1000) continue;
      if (no_follow_) return OkStatus();
      std::this_thread::sleep_for(interval);
    }
  }

  Status TailServer(const std::string& url, std::chrono::milliseconds interval) {
    SIGNET_ASSIGN_OR_RETURN(auto server, ServerLog::Connect(url, ca_file_));
    int64_t after = from_ - 1;
    if (from_ < 0) {
      after = -1;
      // "From now on": after the log's size as the server gives it with a page of entries.
      SIGNET_ASSIGN_OR_RETURN(std::optional<int64_t> now, LogSizeNow(*server));
      if (now) {
        after = *now - 1;
        return Follow(*server, after, interval);
      }
      // A server that does not say: from the latest checkpoint's size, then page to the end
      // without printing (entries appended while that runs are skipped).
      SIGNET_ASSIGN_OR_RETURN(std::optional<std::string> note, server->Checkpoint());
      if (note) {
        SIGNET_ASSIGN_OR_RETURN(uint64_t size, ClaimedSize(*note));
        after = static_cast<int64_t>(size) - 1;
      }
      SIGNET_TRY(Page(*server, after, /*print=*/false, /*drain=*/true));
    }
    return Follow(*server, after, interval);
  }

  Status Follow(ServerLog& server, int64_t& after, std::chrono::milliseconds interval) {
    while (true) {
      SIGNET_ASSIGN_OR_RETURN(bool full, Page(server, after, /*print=*/true, /*drain=*/false));
      if (full) continue;
      if (no_follow_) return OkStatus();
      std::this_thread::sleep_for(interval);
    }
  }

  // The log's size now, from the "log_size" of a one-entry page; nullopt when the server does not
  // give it. The server's word, so held to what a size is.
  static Result<std::optional<int64_t>> LogSizeNow(ServerLog& server) {
    const std::string target = "/api/v1/log/entries?limit=1";
    SIGNET_ASSIGN_OR_RETURN(std::string body, server.Get(target));
    SIGNET_ASSIGN_OR_RETURN(json answer, client::ParseJsonAnswer(body, target, kMaxTailAnswer));
    auto size = answer.is_object() ? answer.find("log_size") : answer.end();
    if (size == answer.end()) return std::optional<int64_t>();
    if (!size->is_number_integer() || size->get<int64_t>() < 0 ||
        (size->is_number_unsigned() &&
         size->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))) {
      return UnexpectedAnswer("\"log_size\" is not a size");
    }
    return std::optional<int64_t>(size->get<int64_t>());
  }

  // Following ends when the reader of stdout has gone (`signet audit tail | head`): SIGPIPE is
  // ignored, so without this the loop would poll for ever into a closed pipe.
  static Status FlushOrStop() {
    std::cout.flush();
    if (std::cout) return OkStatus();
    return Unavailable(
        "standard output was closed (or the disk is full); stopped after the last entry written");
  }

  // One entry as a line on stdout: its bytes exactly as they are hashed. On a terminal, whatever
  // a canonical entry may still hold that a terminal acts on (DEL, C1 controls in UTF-8) is shown
  // escaped (common/text.h); a pipe or file gets the bytes unchanged.
  static void WriteEntryLine(std::string_view entry) {
    static const bool tty = isatty(STDOUT_FILENO) == 1;
    if (tty) {
      std::cout << TerminalSafe(entry, audit::kMaxEntrySize) << "\n";
    } else {
      std::cout.write(entry.data(), static_cast<std::streamsize>(entry.size()));
      std::cout << "\n";
    }
  }

  // The bytes of one entry of a server's page, checked: canonical JSON (so no control character,
  // no second line) whose "index" is the page's. "entry_b64" holds the stored bytes. A server
  // that predates it sends only "entry", parsed JSON; entries are canonical JSON, so its dump()
  // gives the same bytes for an untouched entry (a damaged one would be shown repaired).
  static Result<std::string> EntryBytes(const json& e, int64_t index) {
    std::string bytes;
    if (auto b64 = e.find("entry_b64"); b64 != e.end() && b64->is_string()) {
      auto decoded = Base64Decode(b64->get<std::string>());
      if (!decoded.ok()) return UnexpectedAnswer("an entry whose \"entry_b64\" is not base64");
      bytes.assign(decoded->begin(), decoded->end());
    } else {
      bytes = e.find("entry")->dump(-1, ' ', false, json::error_handler_t::replace);
    }
    auto fields = audit::ParseEntryFields(bytes);
    if (!fields.ok()) {
      return UnexpectedAnswer("entry " + std::to_string(index) +
                              " is not a log entry: " + fields.error().message());
    }
    if (fields->index.value() != static_cast<uint64_t>(index)) {
      return UnexpectedAnswer("the entry listed at index " + std::to_string(index) +
                              " says it is entry " + std::to_string(fields->index.value()));
    }
    return bytes;
  }

  // One page of /api/v1/log/entries after `after` (all pages when `drain`); advances `after`.
  // Returns whether the server said another page follows ("next_after"; a page may be cut short
  // by the server's work bounds, so its size says nothing). The page is the server's word, so it
  // is held to what a page is: at most kTailPage entries, at indexes that only rise, past
  // `after`, and a next_after that rises too; otherwise a server could keep tail printing the
  // same entries, or asking for the same page, forever.
  static Result<bool> Page(ServerLog& server, int64_t& after, bool print, bool drain) {
    while (true) {
      std::string target = "/api/v1/log/entries?limit=" + std::to_string(kTailPage);
      if (after >= 0) target += "&after=" + std::to_string(after);
      SIGNET_ASSIGN_OR_RETURN(std::string body, server.Get(target));
      SIGNET_ASSIGN_OR_RETURN(json answer, client::ParseJsonAnswer(body, target, kMaxTailAnswer));
      auto list = answer.is_object() ? answer.find("entries") : answer.end();
      if (list == answer.end() || !list->is_array()) {
        return UnexpectedAnswer("no \"entries\" list");
      }
      const json& entries = *list;
      if (entries.size() > static_cast<size_t>(kTailPage)) {
        return UnexpectedAnswer(std::to_string(entries.size()) + " entries in a page of at most " +
                                std::to_string(kTailPage));
      }
      for (const json& e : entries) {
        auto index = e.is_object() ? e.find("index") : e.end();
        if (index == e.end() || !index->is_number_integer() || !e.contains("entry")) {
          return UnexpectedAnswer("an entry without \"index\" and \"entry\"");
        }
        // A non-negative index parses as unsigned; above INT64_MAX it would wrap.
        const bool too_large = index->is_number_unsigned() &&
                               index->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX);
        const int64_t i = too_large ? INT64_MIN : index->get<int64_t>();
        if (i <= after) {
          return UnexpectedAnswer("entry index " + index->dump() + " after entry " +
                                  std::to_string(after) +
                                  ": a page's indexes must rise past the last one read");
        }
        // tail asks for every entry (no filter), so a gap is entries the server left out.
        if (i != after + 1) {
          return UnexpectedAnswer("entry index " + index->dump() + " after entry " +
                                  std::to_string(after) + ": the entries between are missing");
        }
        if (print) {
          SIGNET_ASSIGN_OR_RETURN(std::string bytes, EntryBytes(e, i));
          WriteEntryLine(bytes);
        }
        after = i;
      }
      if (print) SIGNET_TRY(FlushOrStop());
      auto next = answer.find("next_after");
      bool more = false;
      if (next != answer.end() && !next->is_null()) {
        const bool fits = next->is_number_integer() &&
                          !(next->is_number_unsigned() &&
                            next->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX));
        if (!fits || next->get<int64_t>() < after ||
            (entries.empty() && next->get<int64_t>() == after)) {
          return UnexpectedAnswer("\"next_after\" " + next->dump() + " after entry " +
                                  std::to_string(after) + ": it must rise past the page");
        }
        // Unfiltered, every entry examined is listed: a next_after beyond the last one skips.
        if (next->get<int64_t>() != after) {
          return UnexpectedAnswer("\"next_after\" " + next->dump() + " after entry " +
                                  std::to_string(after) + ": the entries between are missing");
        }
        after = next->get<int64_t>();
        more = true;
      }
      if (!drain || !more) return more;
    }
  }

  // Entries per page: 256 of the largest entries (64 KiB, as parsed JSON and base64) stay within
  // kMaxTailAnswer.
  static constexpr int kTailPage = 256;
  static constexpr size_t kMaxTailAnswer = 48 * 1024 * 1024;

  int64_t from_ = -1;  // -1: from now on
  double interval_seconds_ = 1.0;
  bool no_follow_ = false;
  std::string ca_file_;
};

// ---- signet audit key --------------------------------------------------------------------------

class AuditKeyCommand final : public Command {
 public:
  void Configure(CLI::App& app) override {
    app.footer(
        "Prints the verifier key of the log's checkpoint-signing key (c2sp.org/signed-note form "
        "name+keyid+base64). Publish it, or give it to auditors: 'signet audit verify --key' "
        "trusts nothing else.");
  }
  Status Run(const GlobalOptions& global) override {
    SIGNET_ASSIGN_OR_RETURN(LocalLog log, OpenLocalLog(ResolveDataDir(global)));
    SIGNET_ASSIGN_OR_RETURN(audit::VerifierKey key, audit::StoredVerifierKey(*log.store));
    const std::string text = audit::FormatVerifierKey(key);
    if (global.json) {
      std::cout << json{{"origin", key.name}, {"verifier_key", text}}.dump(2) << "\n";
    } else {
      std::cout << text << "\n";
    }
    return OkStatus();
  }
};

}  // namespace

std::vector<NamedCommand> AuditCommands() {
  std::vector<NamedCommand> c;
  c.push_back({{"audit", "verify"},
               "Verify the audit log: recompute the Merkle tree, check every signed checkpoint, "
               "name the first bad index",
               std::make_unique<AuditVerifyCommand>()});
  c.push_back({{"audit", "export"},
               "Write the audit log as JSON lines that 'audit verify --export' checks offline",
               std::make_unique<AuditExportCommand>()});
  c.push_back({{"audit", "tail"},
               "Print new audit log entries as JSON lines as they arrive",
               std::make_unique<AuditTailCommand>()});
  c.push_back({{"audit", "key"},
               "Print the log's verifier key (for 'audit verify --key')",
               std::make_unique<AuditKeyCommand>()});
  return c;
}

}  // namespace signet::cli
