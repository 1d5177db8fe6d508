// Tamper tests on a real database (issue 4, "Must show"): a log is built the way the service builds
// it — audit events appended through the Sequencer (group commit) into an SqliteStore, checkpoints
// signed by the Integrator with an Ed25519 key inside a SoftHSM2 token, each checkpoint recorded in
// the log by the service's own renderer. The data folder is then copied, and each copy is tampered
// with through the raw SQLite API, the way an operator with database access would: drop the
// append-only triggers, then change one byte of one entry, delete an entry, swap two, truncate
// the tail, or replace a checkpoint (its entry or its stored row). Each copy is verified twice,
// by audit::Verify over the store (what the CLI does) and by the real `signet audit verify
// --data-dir DIR --key KEY` binary: every tampered copy must fail naming the index, the untouched
// copy must pass.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "audit/integrator.h"
#include "audit/note.h"
#include "audit/sequencer.h"
#include "audit/store_log.h"
#include "audit/testing/test_log.h"
#include "audit/verifier.h"
#include "common/clock.h"
#include "hsm/pkcs11/pkcs11_key_store.h"
#include "hsm/pkcs11/testing/softhsm_sandbox.h"
#include "service/audit_sink.h"
#include "store/sqlite/sqlite_store.h"

namespace signet {
namespace {

namespace stdfs = std::filesystem;

constexpr char kOrigin[] = "signet.test/tamper";

// What the suite's log looks like once built.
struct BuiltLog {
  std::string dir;           // the untouched data folder (signet.toml + signet.db)
  std::string verifier_key;  // FormatVerifierKey of the log key
  std::vector<store::LogCheckpointRow> checkpoints;
  int64_t size = 0;
};

BuiltLog* g_log = nullptr;

// A "sign" event as the service records it.
service::AuditEvent SignEvent(const Clock& clock, int thread, int n) {
  service::AuditEvent event;
  event.time = clock.Now();
  event.action = service::AuditAction::kSign;
  event.actor.account_id = "acc-" + std::to_string(thread);
  event.actor.account_name = "build-" + std::to_string(thread);
  event.actor.auth_method = service::AuthMethod::kMtls;
  event.actor.client_address = "192.0.2.7:5123" + std::to_string(thread);
  event.object = "release-key";
  event.request_id = "req-" + std::to_string(thread) + "-" + std::to_string(n);
  service::SignatureAudit signature;
  signature.key_id = "key-1";
  signature.key_name = "release-key";
  signature.algorithm = "ecdsa";
  signature.hash_algorithm = "sha256";
  signature.hashes = {"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"};
  event.signature = signature;
  return event;
}

// Builds the log: 6 rounds of 4 concurrent appenders x 60 events, each round ending in a signed
// checkpoint, then 7 events no checkpoint covers yet.
void BuildLog(BuiltLog& out) {
  char tmpl[] = "/tmp/signet-audit-tamper-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  out.dir = std::string(tmpl) + "/original";
  stdfs::create_directories(out.dir);
  {
    std::ofstream toml(out.dir + "/signet.toml");
    // What `signet audit verify --data-dir` reads is [store]; [hsm] is required by the format
    // but not opened (verification needs no token).
    toml << "[hsm]\nmodule = \"" << hsm::testing::kSoftHsmModulePath
         << "\"\ntoken_label = \"audit-tamper\"\n\n[store]\nsqlite_path = \"signet.db\"\n";
  }

  hsm::testing::SoftHsmSandbox& sandbox = hsm::testing::SharedSoftHsmSandbox();
  auto options = sandbox.CreateToken("audit-tamper");
  ASSERT_TRUE(options.ok()) << options.error().message();
  auto key_store = hsm::Pkcs11KeyStore::Open(std::move(*options));
  ASSERT_TRUE(key_store.ok()) << key_store.error().message();
  auto store = store::SqliteStore::Open(out.dir + "/signet.db");
  ASSERT_TRUE(store.ok()) << store.error().message();
  SystemClock clock;
  {
    audit::Sequencer sequencer(**store);
    audit::IntegratorOptions integrator_options;
    integrator_options.origin = kOrigin;
    integrator_options.render_checkpoint_entry = [](int64_t index,
                                                    const store::LogCheckpointRow& row) {
      return service::RenderCheckpointEntry(index, row, kOrigin);
    };
    auto integrator = audit::Integrator::Create(**store, **key_store, clock, integrator_options);
    ASSERT_TRUE(integrator.ok()) << integrator.error().message();
    out.verifier_key = audit::FormatVerifierKey((*integrator)->verifier_key());

    auto append = [&](int thread, int count) {
      for (int n = 0; n < count; ++n) {
        auto index = sequencer.Append(service::ToLogEntries(SignEvent(clock, thread, n)));
        ASSERT_TRUE(index.ok()) << index.error().message();
      }
    };
    for (int round = 0; round < 6; ++round) {
      std::vector<std::thread> threads;
      for (int t = 0; t < 4; ++t) threads.emplace_back(append, t, 60);
      for (auto& t : threads) t.join();
      auto checkpoint = (*integrator)->IntegrateOnce();
      ASSERT_TRUE(checkpoint.ok()) << checkpoint.error().message();
      ASSERT_TRUE(checkpoint->has_value());
    }
    append(9, 7);
  }
  auto checkpoints = (*store)->ListLogCheckpoints(-1, 100);
  ASSERT_TRUE(checkpoints.ok()) << checkpoints.error().message();
  out.checkpoints = *checkpoints;
  ASSERT_EQ(out.checkpoints.size(), 6u);
  auto size = (*store)->LogSize();
  ASSERT_TRUE(size.ok());
  out.size = *size;
}

// A raw connection to a copy's database, as an attacker would open it.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) ADD_FAILURE() << sqlite3_errmsg(db_);
  }
  ~RawDb() { sqlite3_close(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  void Exec(const std::string& sql) {
    char* error = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << (error != nullptr ? error : "?");
    }
    sqlite3_free(error);
  }

  // What the append-only design cannot stop: whoever can write the file can drop the triggers.
  void DropTriggers() {
    std::vector<std::string> names;
    sqlite3_stmt* stmt = nullptr;
    sqlite3_prepare_v2(db_, "SELECT name FROM sqlite_master WHERE type = 'trigger'", -1, &stmt,
                       nullptr);
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      names.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)));
    }
    sqlite3_finalize(stmt);
    ASSERT_FALSE(names.empty());
    for (const std::string& name : names) Exec("DROP TRIGGER \"" + name + "\"");
  }

  std::string Entry(int64_t index) {
    sqlite3_stmt* stmt = nullptr;
    sqlite3_prepare_v2(db_, "SELECT data FROM log_entries WHERE idx = ?", -1, &stmt, nullptr);
    sqlite3_bind_int64(stmt, 1, index);
    std::string data;
    if (sqlite3_step(stmt) == SQLITE_ROW) {
      data.assign(static_cast<const char*>(sqlite3_column_blob(stmt, 0)),
                  static_cast<size_t>(sqlite3_column_bytes(stmt, 0)));
    } else {
      ADD_FAILURE() << "no entry " << index;
    }
    sqlite3_finalize(stmt);
    return data;
  }

  void SetEntry(int64_t index, const std::string& data) {
    sqlite3_stmt* stmt = nullptr;
    sqlite3_prepare_v2(db_, "UPDATE log_entries SET data = ? WHERE idx = ?", -1, &stmt, nullptr);
    sqlite3_bind_blob(stmt, 1, data.data(), static_cast<int>(data.size()), SQLITE_TRANSIENT);
    sqlite3_bind_int64(stmt, 2, index);
    EXPECT_EQ(sqlite3_step(stmt), SQLITE_DONE) << sqlite3_errmsg(db_);
    sqlite3_finalize(stmt);
  }

  void SetCheckpointNote(int64_t size, const std::string& note, const Bytes& root) {
    sqlite3_stmt* stmt = nullptr;
    sqlite3_prepare_v2(db_, "UPDATE log_checkpoints SET note = ?, root = ? WHERE size = ?", -1,
                       &stmt, nullptr);
    sqlite3_bind_text(stmt, 1, note.data(), static_cast<int>(note.size()), SQLITE_TRANSIENT);
    sqlite3_bind_blob(stmt, 2, root.data(), static_cast<int>(root.size()), SQLITE_TRANSIENT);
    sqlite3_bind_int64(stmt, 3, size);
    EXPECT_EQ(sqlite3_step(stmt), SQLITE_DONE) << sqlite3_errmsg(db_);
    EXPECT_EQ(sqlite3_changes(db_), 1);
    sqlite3_finalize(stmt);
  }

 private:
  sqlite3* db_ = nullptr;
};

// Replaces the first `"index":<from>,` in an entry.
std::string Reindexed(std::string entry, int64_t from, int64_t to) {
  const std::string old_text = "\"index\":" + std::to_string(from) + ",";
  const size_t at = entry.find(old_text);
  EXPECT_NE(at, std::string::npos);
  if (at != std::string::npos) {
    entry.replace(at, old_text.size(), "\"index\":" + std::to_string(to) + ",");
  }
  return entry;
}

struct CliOutcome {
  int exit_code = -1;
  std::string output;
};

CliOutcome RunCliVerify(const std::string& dir, const std::string& key,
                        const std::string& trusted_file = "", const std::string& extra = "") {
  std::string command =
      std::string(SIGNET_BINARY) + " audit verify --data-dir '" + dir + "' --key '" + key + "'";
  if (!trusted_file.empty()) command += " --trusted-checkpoint '" + trusted_file + "'";
  if (!extra.empty()) command += " " + extra;
  command += " 2>&1";
  CliOutcome outcome;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return outcome;
  char buffer[4096];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) outcome.output.append(buffer, n);
  const int status = ::pclose(pipe);
  outcome.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return outcome;
}

class AuditTamperTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g_log = new BuiltLog();
    BuildLog(*g_log);
  }
  static void TearDownTestSuite() {
    if (g_log != nullptr && !g_log->dir.empty()) {
      std::error_code ec;
      stdfs::remove_all(stdfs::path(g_log->dir).parent_path(), ec);
    }
    delete g_log;
    g_log = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(g_log, nullptr);
    ASSERT_FALSE(HasFatalFailure());
    ASSERT_EQ(g_log->checkpoints.size(), 6u) << "the log could not be built";
  }

  // A copy of the untouched data folder, named after the test.
  std::string Copy() {
    const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    const std::string copy = stdfs::path(g_log->dir).parent_path().string() + "/" + name;
    stdfs::remove_all(copy);
    stdfs::copy(g_log->dir, copy, stdfs::copy_options::recursive);
    return copy;
  }

  static audit::VerifyReport VerifyLibrary(const std::string& dir,
                                           const std::string& trusted_note = "") {
    auto store = store::SqliteStore::OpenExisting(dir + "/signet.db");
    EXPECT_TRUE(store.ok()) << store.error().message();
    if (!store.ok()) return {};
    audit::VerifyOptions options;
    auto key = audit::ParseVerifierKey(g_log->verifier_key);
    EXPECT_TRUE(key.ok());
    options.trusted_keys = {*key};
    if (!trusted_note.empty()) options.trusted_checkpoint = trusted_note;
    EXPECT_TRUE(audit::AddStoreSources(**store, options).ok());
    audit::StoreLogReader reader(**store);
    auto report = audit::Verify(reader, options);
    EXPECT_TRUE(report.ok()) << report.error().message();
    return report.ok() ? std::move(*report) : audit::VerifyReport{};
  }

  // Both verifiers fail on `dir`, naming `index` (and, for the library, `kind`).
  static void ExpectNamed(const std::string& dir, audit::FailureKind kind, int64_t index,
                          const std::string& trusted_note = "",
                          const std::string& trusted_file = "") {
    audit::VerifyReport report = VerifyLibrary(dir, trusted_note);
    ASSERT_TRUE(report.failure.has_value()) << "the tampered log verified";
    EXPECT_EQ(audit::FailureKindName(report.failure->kind), audit::FailureKindName(kind))
        << report.failure->message;
    EXPECT_EQ(report.failure->index, std::optional<uint64_t>(static_cast<uint64_t>(index)))
        << report.failure->message;

    CliOutcome cli = RunCliVerify(dir, g_log->verifier_key, trusted_file);
    EXPECT_EQ(cli.exit_code, 8) << cli.output;
    EXPECT_NE(cli.output.find("first bad index  " + std::to_string(index)), std::string::npos)
        << cli.output;
    EXPECT_NE(cli.output.find("failed at index " + std::to_string(index)), std::string::npos)
        << cli.output;
  }

  // An ordinary entry in the middle of the third checkpoint's range.
  static int64_t MiddleEvent() {
    const auto& cps = g_log->checkpoints;
    return (cps[1].entry_index + 1 + cps[2].size) / 2;
  }
};

TEST_F(AuditTamperTest, UntouchedCopyPasses) {
  const std::string dir = Copy();
  audit::VerifyReport report = VerifyLibrary(dir);
  ASSERT_TRUE(report.ok()) << report.failure->message;
  EXPECT_EQ(static_cast<int64_t>(report.entries_checked), g_log->size);
  EXPECT_EQ(report.checkpoints_checked, 6u);
  EXPECT_TRUE(report.latest_checked);
  EXPECT_TRUE(report.stored_checkpoints_checked);

  CliOutcome cli = RunCliVerify(dir, g_log->verifier_key);
  EXPECT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_NE(cli.output.find("OK:"), std::string::npos) << cli.output;
}

TEST_F(AuditTamperTest, RequireSignedFailsOnTheEntriesNoCheckpointCoversYet) {
  // The 7 events after the last checkpoint verify for form and order only; --require-signed makes
  // them the failure they are for someone who needs every entry signed.
  const std::string dir = Copy();
  CliOutcome cli = RunCliVerify(dir, g_log->verifier_key, "", "--require-signed");
  EXPECT_EQ(cli.exit_code, 8) << cli.output;
  const int64_t signed_size = g_log->checkpoints.back().size;
  EXPECT_NE(cli.output.find("first bad index  " + std::to_string(signed_size)), std::string::npos)
      << cli.output;
  EXPECT_NE(cli.output.find("unsigned"), std::string::npos) << cli.output;
}

TEST_F(AuditTamperTest, ChangedByteInOneEntryIsNamed) {
  const std::string dir = Copy();
  const int64_t k = MiddleEvent();
  {
    RawDb db(dir + "/signet.db");
    db.DropTriggers();
    std::string entry = db.Entry(k);
    const size_t at = entry.find("release-key");
    ASSERT_NE(at, std::string::npos) << entry;
    entry[at] = 'R';  // one byte; still canonical JSON with the right index
    db.SetEntry(k, entry);
  }
  ExpectNamed(dir, audit::FailureKind::kChangedEntry, k);
}

TEST_F(AuditTamperTest, DeletedEntryIsNamed) {
  const std::string dir = Copy();
  const int64_t k = MiddleEvent();
  {
    RawDb db(dir + "/signet.db");
    db.DropTriggers();
    db.Exec("DELETE FROM log_entries WHERE idx = " + std::to_string(k));
  }
  ExpectNamed(dir, audit::FailureKind::kIndexMismatch, k);
}

TEST_F(AuditTamperTest, SwappedEntriesAreNamed) {
  const std::string dir = Copy();
  const int64_t a = MiddleEvent();
  const int64_t b = g_log->checkpoints[4].size - 3;
  {
    RawDb db(dir + "/signet.db");
    db.DropTriggers();
    const std::string entry_a = db.Entry(a);
    const std::string entry_b = db.Entry(b);
    db.SetEntry(a, entry_b);
    db.SetEntry(b, entry_a);
  }
  ExpectNamed(dir, audit::FailureKind::kIndexMismatch, a);
}

TEST_F(AuditTamperTest, SwappedAndRenumberedEntriesAreNamed) {
  const std::string dir = Copy();
  const int64_t a = MiddleEvent();
  const int64_t b = g_log->checkpoints[4].size - 3;
  {
    RawDb db(dir + "/signet.db");
    db.DropTriggers();
    const std::string entry_a = db.Entry(a);
    const std::string entry_b = db.Entry(b);
    db.SetEntry(a, Reindexed(entry_b, b, a));
    db.SetEntry(b, Reindexed(entry_a, a, b));
  }
  ExpectNamed(dir, audit::FailureKind::kChangedEntry, a);
}

TEST_F(AuditTamperTest, TruncatedTailIsNamed) {
  const std::string dir = Copy();
  const int64_t cut = g_log->checkpoints.back().size - 5;
  {
    RawDb db(dir + "/signet.db");
    db.DropTriggers();
    db.Exec("DELETE FROM log_entries WHERE idx >= " + std::to_string(cut));
  }
  ExpectNamed(dir, audit::FailureKind::kTruncated, cut);
}

TEST_F(AuditTamperTest, TruncatedTailWithItsCheckpointRowsIsNamedByAKeptCheckpoint) {
  // The attacker cuts the tail inside the last signed range, with the last checkpoint's entry,
  // and deletes its stored row too: nothing left in the database signs past the cut, so the copy
  // verifies as a shorter log. A checkpoint the auditor kept (--trusted-checkpoint) names the cut.
  const std::string dir = Copy();
  const store::LogCheckpointRow& last = g_log->checkpoints.back();
  const int64_t cut = last.size - 1;
  {
    RawDb db(dir + "/signet.db");
    db.DropTriggers();
    db.Exec("DELETE FROM log_entries WHERE idx >= " + std::to_string(cut));
    db.Exec("DELETE FROM log_checkpoints WHERE size >= " + std::to_string(last.size));
  }
  audit::VerifyReport alone = VerifyLibrary(dir);
  EXPECT_TRUE(alone.ok()) << alone.failure->message;

  const std::string kept = dir + "/kept-checkpoint.txt";
  std::ofstream(kept) << last.note;
  ExpectNamed(dir, audit::FailureKind::kTruncated, cut, last.note, kept);
}

TEST_F(AuditTamperTest, DeletedNewestCheckpointRowsAreNamed) {
  // Only the two newest stored checkpoint rows deleted, every entry kept: the data folder's latest
  // checkpoint (what /log/checkpoint serves) goes back two checkpoints, while the entries still
  // record the deleted ones.
  const std::string dir = Copy();
  const store::LogCheckpointRow& first_deleted = g_log->checkpoints[4];
  {
    RawDb db(dir + "/signet.db");
    db.DropTriggers();
    db.Exec("DELETE FROM log_checkpoints WHERE size >= " + std::to_string(first_deleted.size));
  }
  ExpectNamed(dir, audit::FailureKind::kStoredCheckpointMismatch, first_deleted.entry_index);
}

TEST_F(AuditTamperTest, ReplacedCheckpointEntryIsNamed) {
  // The entry of checkpoint 3 replaced by checkpoint 2's entry, renumbered to fit: a valid
  // signature, but a checkpoint older than the one before it.
  const std::string dir = Copy();
  const int64_t j = g_log->checkpoints[3].entry_index;
  const int64_t previous = g_log->checkpoints[2].entry_index;
  {
    RawDb db(dir + "/signet.db");
    db.DropTriggers();
    db.SetEntry(j, Reindexed(db.Entry(previous), previous, j));
  }
  ExpectNamed(dir, audit::FailureKind::kCheckpointOrder, j);
}

TEST_F(AuditTamperTest, ForgedCheckpointEntryIsNamed) {
  // The attacker cannot use the HSM key, so a rewritten checkpoint is signed by another key.
  const std::string dir = Copy();
  const store::LogCheckpointRow& cp = g_log->checkpoints[3];
  audit::testing::TestEd25519Key attacker;
  audit::Checkpoint forged{kOrigin, audit::TreeSize(static_cast<uint64_t>(cp.size)), {}, {}};
  forged.root[0] = 1;
  std::vector<audit::NoteSigner> signers{attacker.ForName(kOrigin)};
  auto note = audit::SignCheckpoint(forged, signers);
  ASSERT_TRUE(note.ok());
  store::LogCheckpointRow row = cp;
  row.note = *note;
  row.root = Bytes(forged.root.begin(), forged.root.end());
  auto entry = service::RenderCheckpointEntry(cp.entry_index, row, kOrigin);
  ASSERT_TRUE(entry.ok());
  {
    RawDb db(dir + "/signet.db");
    db.DropTriggers();
    db.SetEntry(cp.entry_index, *entry);
  }
  ExpectNamed(dir, audit::FailureKind::kBadCheckpoint, cp.entry_index);
}

TEST_F(AuditTamperTest, ReplacedCheckpointRowIsNamed) {
  // The stored row of checkpoint 3 given checkpoint 2's note and root.
  const std::string dir = Copy();
  const store::LogCheckpointRow& cp = g_log->checkpoints[3];
  const store::LogCheckpointRow& older = g_log->checkpoints[2];
  {
    RawDb db(dir + "/signet.db");
    db.DropTriggers();
    db.SetCheckpointNote(cp.size, older.note, older.root);
  }
  ExpectNamed(dir, audit::FailureKind::kStoredCheckpointMismatch, cp.entry_index);
}

}  // namespace
}  // namespace signet
