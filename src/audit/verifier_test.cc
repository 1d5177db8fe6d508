#include "audit/verifier.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "audit/testing/test_log.h"
#include "common/encoding.h"

namespace signet::audit {
namespace {

using json = nlohmann::json;
using testing::TestEd25519Key;
using testing::TestLog;

constexpr char kOrigin[] = "signet.test/verifier";

// 20 checkpoints, one after every 100 events; every third is published while 5 more events
// arrive (so its entry sits at j > N); then an unsigned tail of 37 events.
void BuildLog(TestLog& log, std::optional<uint64_t> diverge_at = std::nullopt) {
  for (int c = 0; c < 20; ++c) {
    for (int e = 0; e < 100; ++e) {
      const bool forked = diverge_at && log.entries().size() >= *diverge_at;
      log.AppendEvent(forked ? 480 : 400);
    }
    log.AppendCheckpoint(c % 3 == 1 ? 5 : 0);
  }
  for (int e = 0; e < 37; ++e) log.AppendEvent();
}

// Replaces the value of "index" in a rendered entry.
std::string WithIndex(const std::string& entry, uint64_t index) {
  return std::regex_replace(entry, std::regex("\"index\":[0-9]+"),
                            "\"index\":" + std::to_string(index),
                            std::regex_constants::format_first_only);
}

class VerifierTest : public ::testing::Test {
 protected:
  VerifierTest() : log_(kOrigin, key_) { BuildLog(log_); }

  VerifyReport Run(const VerifyOptions& options) { return RunOn(log_.entries(), options); }

  // Verifies only `entries` (a prefix of the log, as a reader that read the size earlier sees).
  VerifyReport RunOn(std::span<const std::string> entries, const VerifyOptions& options) {
    MemoryLogReader reader(entries);
    auto report = Verify(reader, options);
    EXPECT_TRUE(report.ok()) << report.error().message();
    if (!report.ok()) return VerifyReport{};
    return std::move(*report);
  }

  // Only the key: no latest checkpoint, stored list or tiles.
  VerifyOptions KeyOnly() const {
    VerifyOptions options;
    options.trusted_keys = {log_.verifier_key()};
    return options;
  }

  // The smallest checkpoint that covers entry `index`, and the one before it.
  std::pair<uint64_t, uint64_t> SignedRangeOf(uint64_t index) const {
    uint64_t begin = 0;
    for (const StoredCheckpoint& cp : log_.checkpoints()) {
      if (cp.size > index) return {begin, cp.size};
      begin = cp.size;
    }
    ADD_FAILURE() << "no checkpoint covers " << index;
    return {0, 0};
  }

  const StoredCheckpoint& Checkpoint(size_t c) const { return log_.checkpoints().at(c); }

  static void ExpectFailure(const VerifyReport& report, FailureKind kind, uint64_t index) {
    ASSERT_TRUE(report.failure.has_value()) << "the log verified";
    EXPECT_EQ(FailureKindName(report.failure->kind), FailureKindName(kind))
        << report.failure->message;
    EXPECT_EQ(report.failure->index, std::optional<uint64_t>(index)) << report.failure->message;
    EXPECT_NE(report.failure->message.find(std::to_string(index)), std::string::npos)
        << report.failure->message;
  }

  TestEd25519Key key_;
  TestLog log_;
};

TEST_F(VerifierTest, GoodLogPassesWithEverythingChecked) {
  VerifyOptions options = log_.FullOptions();
  options.trusted_checkpoint = Checkpoint(7).note;
  VerifyReport report = Run(options);
  ASSERT_TRUE(report.ok()) << report.failure->message;
  EXPECT_EQ(report.entries_checked, log_.entries().size());
  EXPECT_EQ(report.checkpoints_checked, log_.checkpoints().size());
  EXPECT_EQ(report.size.value(), log_.entries().size());
  EXPECT_EQ(report.root, log_.RootAt(log_.entries().size()));
  EXPECT_EQ(report.signed_size.value(), log_.checkpoints().back().size);
  EXPECT_TRUE(report.latest_checked);
  EXPECT_TRUE(report.trusted_checked);
  EXPECT_TRUE(report.consistency_proof_checked);
  EXPECT_TRUE(report.stored_checkpoints_checked);
  uint64_t bytes = 0;
  for (const auto& e : log_.entries()) bytes += e.size();
  EXPECT_EQ(report.bytes_checked, bytes);
}

TEST_F(VerifierTest, GoodLogPassesWithOnlyTheKey) {
  VerifyReport report = Run(KeyOnly());
  ASSERT_TRUE(report.ok()) << report.failure->message;
  EXPECT_EQ(report.checkpoints_checked, log_.checkpoints().size());
}

TEST_F(VerifierTest, GoodLogPassesInSmallBatches) {
  VerifyOptions options = log_.FullOptions();
  options.batch_size = 7;
  EXPECT_TRUE(Run(options).ok());
}

TEST_F(VerifierTest, EmptyLogPasses) {
  TestLog empty(kOrigin, key_);
  MemoryLogReader reader(empty.entries());
  auto report = Verify(reader, empty.FullOptions());
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok());
  EXPECT_EQ(report->root, EmptyRoot());
}

TEST_F(VerifierTest, RequireSignedNamesTheFirstEntryNoCheckpointCovers) {
  VerifyOptions options = log_.FullOptions();
  options.require_signed = true;
  VerifyReport report = Run(options);
  const uint64_t signed_size = log_.checkpoints().back().size;
  ExpectFailure(report, FailureKind::kUnsigned, signed_size);
  EXPECT_EQ(report.failure->range_end, std::optional<uint64_t>(log_.entries().size()));
  // Without it the same log passes and says how much is signed.
  VerifyReport plain = Run(log_.FullOptions());
  ASSERT_TRUE(plain.ok()) << plain.failure->message;
  EXPECT_EQ(plain.signed_size.value(), signed_size);
}

TEST_F(VerifierTest, RequireSignedAcceptsATailOfOnlyTheLastCheckpointsEntry) {
  // Checkpoint 18 was recorded right after the entries it signs: up to its entry, nothing but
  // that entry (whose note verified) is outside a checkpoint.
  const uint64_t end = Checkpoint(18).entry_index + 1;
  ASSERT_EQ(Checkpoint(18).entry_index, Checkpoint(18).size);
  VerifyOptions options = KeyOnly();
  options.require_signed = true;
  std::span<const std::string> prefix(log_.entries().data(), end);
  VerifyReport report = RunOn(prefix, options);
  EXPECT_TRUE(report.ok()) << report.failure->message;
}

TEST_F(VerifierTest, RequireSignedFailsALogWithNoCheckpointAtAll) {
  // What an export stripped of its checkpoints looks like: every entry hashes as it should,
  // because the verifier computed the hashes itself.
  std::span<const std::string> first(log_.entries().data(), 50);
  VerifyOptions options = KeyOnly();
  EXPECT_TRUE(RunOn(first, options).ok());
  options.require_signed = true;
  ExpectFailure(RunOn(first, options), FailureKind::kUnsigned, 0);
}

TEST_F(VerifierTest, RefusesOptionsWithoutKey) {
  MemoryLogReader reader(log_.entries());
  auto report = Verify(reader, VerifyOptions{});
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.error().code(), ErrorCode::kInvalidArgument);
}

// Every trusted key opens a note by itself, so a key named otherwise than the log (another log's,
// a cosigner's) would let its holder sign a forged history under this origin: refused up front.
// Two keys of the log's name (a renewal) are fine.
TEST_F(VerifierTest, RefusesATrustedKeyNamedOtherwiseThanTheLog) {
  TestEd25519Key other;
  VerifyOptions options = KeyOnly();
  options.trusted_keys.push_back(other.Verifier("staging.example/log"));
  MemoryLogReader reader(log_.entries());
  auto report = Verify(reader, options);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(report.error().message().find("\"staging.example/log\" is not a key of the log"),
            std::string::npos)
      << report.error().message();
  VerifyOptions renewed = KeyOnly();
  renewed.trusted_keys.push_back(other.Verifier(kOrigin));
  EXPECT_TRUE(Run(renewed).ok());
}

TEST_F(VerifierTest, RefusesTrustedCheckpointFromAnotherKey) {
  TestEd25519Key other;
  VerifyOptions options = KeyOnly();
  options.trusted_checkpoint =
      log_.SignCheckpointNote(Checkpoint(3).size, Checkpoint(3).root, &other);
  MemoryLogReader reader(log_.entries());
  auto report = Verify(reader, options);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.error().code(), ErrorCode::kInvalidArgument);  // as the header promises
  EXPECT_NE(report.error().message().find("does not open with the trusted key"), std::string::npos)
      << report.error().message();
}

TEST_F(VerifierTest, ChangedByteIsNamedExactlyWithTiles) {
  const uint64_t k = 550;
  std::string& entry = log_.entries()[k];
  entry[entry.find("release-key")] = 's';  // still canonical JSON, with the right index
  VerifyReport report = Run(log_.FullOptions());
  ExpectFailure(report, FailureKind::kChangedEntry, k);
}

TEST_F(VerifierTest, ChangedByteWithoutTilesNamesTheSignedRange) {
  const uint64_t k = 550;
  std::string& entry = log_.entries()[k];
  entry[entry.find("release-key")] = 's';
  VerifyReport report = Run(KeyOnly());
  const auto [begin, end] = SignedRangeOf(k);
  ExpectFailure(report, FailureKind::kRootMismatch, begin);
  EXPECT_EQ(report.failure->range_end, std::optional<uint64_t>(end));
  EXPECT_LE(begin, k);
  EXPECT_LT(k, end);
}

TEST_F(VerifierTest, ChangedByteThatBreaksTheJsonIsNamed) {
  const uint64_t k = 1234;
  log_.entries()[k][0] = ' ';
  ExpectFailure(Run(KeyOnly()), FailureKind::kMalformedEntry, k);
}

TEST_F(VerifierTest, DeletedEntryIsNamed) {
  const uint64_t k = 777;
  log_.entries().erase(log_.entries().begin() + k);
  ExpectFailure(Run(log_.FullOptions()), FailureKind::kIndexMismatch, k);
}

TEST_F(VerifierTest, SwappedEntriesAreNamed) {
  const uint64_t a = 300;
  const uint64_t b = 1800;
  std::swap(log_.entries()[a], log_.entries()[b]);
  ExpectFailure(Run(log_.FullOptions()), FailureKind::kIndexMismatch, a);
}

TEST_F(VerifierTest, SwappedEntriesWithRewrittenIndicesAreNamedByTiles) {
  const uint64_t a = 301;
  const uint64_t b = 302;
  auto& entries = log_.entries();
  std::swap(entries[a], entries[b]);
  entries[a] = WithIndex(entries[a], a);
  entries[b] = WithIndex(entries[b], b);
  ExpectFailure(Run(log_.FullOptions()), FailureKind::kChangedEntry, a);
}

TEST_F(VerifierTest, TruncatedTailIsNamedByTheLatestCheckpoint) {
  const uint64_t cut = Checkpoint(17).entry_index;
  log_.entries().resize(cut);
  VerifyOptions options = KeyOnly();
  options.latest_checkpoint = log_.Latest();
  ExpectFailure(Run(options), FailureKind::kTruncated, cut);
}

TEST_F(VerifierTest, TruncatedTailIsNamedByTheStoredCheckpoints) {
  const uint64_t cut = Checkpoint(17).entry_index;
  log_.entries().resize(cut);
  VerifyOptions options = KeyOnly();
  options.stored_checkpoints = log_.StoredCheckpointLister();
  ExpectFailure(Run(options), FailureKind::kTruncated, cut);
}

TEST_F(VerifierTest, TruncatedTailIsNamedByTheTrustedCheckpoint) {
  const uint64_t cut = Checkpoint(17).entry_index;
  VerifyOptions options = KeyOnly();
  options.trusted_checkpoint = Checkpoint(18).note;
  log_.entries().resize(cut);
  ExpectFailure(Run(options), FailureKind::kTruncated, cut);
}

TEST_F(VerifierTest, CheckpointEntrySignedByAnotherKeyIsNamed) {
  TestEd25519Key other;
  const StoredCheckpoint& cp = Checkpoint(9);
  log_.entries()[cp.entry_index] =
      log_.RenderCheckpointEntry(cp.entry_index, log_.SignCheckpointNote(cp.size, cp.root, &other));
  ExpectFailure(Run(log_.FullOptions()), FailureKind::kBadCheckpoint, cp.entry_index);
}

// The newest checkpoint entry is covered by no checkpoint, so only its own check can catch a size
// or root beside the note that the note does not sign.
TEST_F(VerifierTest, CheckpointEntryStatingAnotherSizeOrRootIsNamed) {
  const StoredCheckpoint& last = log_.checkpoints().back();
  ASSERT_GT(log_.entries().size(), last.entry_index);
  const std::string original = log_.entries()[last.entry_index];
  ASSERT_FALSE(Run(KeyOnly()).failure.has_value());
  for (const char* field : {"size", "root"}) {
    json entry = json::parse(original);
    ASSERT_TRUE(entry["details"].contains(field));
    entry["details"][field] = std::string(field) == "size" ? std::to_string(last.size + 1)
                                                           : Base64Encode(Bytes(32, 7));
    log_.entries()[last.entry_index] = entry.dump();
    VerifyReport report = Run(KeyOnly());
    ExpectFailure(report, FailureKind::kBadCheckpoint, last.entry_index);
    ASSERT_TRUE(report.failure.has_value());
    EXPECT_NE(report.failure->message.find("states size"), std::string::npos)
        << report.failure->message;
  }
  // The entry's own text is quoted, but cannot drive the terminal the report is shown on.
  json spoof = json::parse(original);
  spoof["details"]["size"] = "\x1b[2J\x1b[HOK: the log verifies\x1b[8m";
  log_.entries()[last.entry_index] = spoof.dump();
  VerifyReport spoofed = Run(KeyOnly());
  ExpectFailure(spoofed, FailureKind::kBadCheckpoint, last.entry_index);
  ASSERT_TRUE(spoofed.failure.has_value());
  EXPECT_EQ(spoofed.failure->message.find('\x1b'), std::string::npos) << spoofed.failure->message;
  EXPECT_NE(spoofed.failure->message.find("\\x1b[2J"), std::string::npos)
      << spoofed.failure->message;
  // Without a stated size and root (only the note), the entry verifies.
  json bare = json::parse(original);
  bare["details"].erase("size");
  bare["details"].erase("root");
  log_.entries()[last.entry_index] = bare.dump();
  EXPECT_FALSE(Run(KeyOnly()).failure.has_value());
  log_.entries()[last.entry_index] = original;
}

TEST_F(VerifierTest, CheckpointEntryWithWrongRootIsNamedByTheStoredList) {
  const StoredCheckpoint& cp = Checkpoint(4);  // recorded 5 entries after its size
  ASSERT_GT(cp.entry_index, cp.size);
  Sha256Digest wrong = cp.root;
  wrong[0] ^= 1;
  log_.entries()[cp.entry_index] =
      log_.RenderCheckpointEntry(cp.entry_index, log_.SignCheckpointNote(cp.size, wrong));
  ExpectFailure(Run(log_.FullOptions()), FailureKind::kRootMismatch, cp.entry_index);
}

TEST_F(VerifierTest, CheckpointEntryWithWrongRootIsNamedByTheTiles) {
  const StoredCheckpoint& cp = Checkpoint(4);
  Sha256Digest wrong = cp.root;
  wrong[0] ^= 1;
  log_.entries()[cp.entry_index] =
      log_.RenderCheckpointEntry(cp.entry_index, log_.SignCheckpointNote(cp.size, wrong));
  VerifyOptions options = KeyOnly();
  options.level0_tiles = log_.TileFetcher();
  ExpectFailure(Run(options), FailureKind::kChangedEntry, cp.entry_index);
}

TEST_F(VerifierTest, CheckpointEntryWithWrongRootAloneNamesTheRange) {
  const StoredCheckpoint& cp = Checkpoint(4);
  const uint64_t previous_size = Checkpoint(3).size;
  Sha256Digest wrong = cp.root;
  wrong[0] ^= 1;
  log_.entries()[cp.entry_index] =
      log_.RenderCheckpointEntry(cp.entry_index, log_.SignCheckpointNote(cp.size, wrong));
  VerifyReport report = Run(KeyOnly());
  ExpectFailure(report, FailureKind::kRootMismatch, previous_size);
  EXPECT_NE(report.failure->message.find("checkpoint entry " + std::to_string(cp.entry_index)),
            std::string::npos)
      << report.failure->message;
}

TEST_F(VerifierTest, ReplayedOlderCheckpointIsNamed) {
  const StoredCheckpoint& older = Checkpoint(5);
  const StoredCheckpoint& cp = Checkpoint(6);
  log_.entries()[cp.entry_index] = log_.RenderCheckpointEntry(cp.entry_index, older.note);
  ExpectFailure(Run(KeyOnly()), FailureKind::kCheckpointOrder, cp.entry_index);
}

TEST_F(VerifierTest, ReplacedStoredCheckpointRowIsNamed) {
  StoredCheckpoint& row = log_.checkpoints().at(11);
  const uint64_t j = row.entry_index;
  row.root[0] ^= 1;
  row.note = log_.SignCheckpointNote(row.size, row.root);
  VerifyOptions options = KeyOnly();
  options.stored_checkpoints = log_.StoredCheckpointLister();
  ExpectFailure(Run(options), FailureKind::kStoredCheckpointMismatch, j);
}

TEST_F(VerifierTest, StoredRowWithAnotherSignatureIsNamed) {
  TestEd25519Key other;
  StoredCheckpoint& row = log_.checkpoints().at(11);
  const uint64_t j = row.entry_index;
  row.note = log_.SignCheckpointNote(row.size, row.root, &other);
  VerifyOptions options = KeyOnly();
  options.stored_checkpoints = log_.StoredCheckpointLister();
  ExpectFailure(Run(options), FailureKind::kStoredCheckpointMismatch, j);
}

TEST_F(VerifierTest, DeletedStoredCheckpointRowIsNamed) {
  const uint64_t j = Checkpoint(11).entry_index;
  log_.checkpoints().erase(log_.checkpoints().begin() + 11);
  VerifyOptions options = KeyOnly();
  options.stored_checkpoints = log_.StoredCheckpointLister();
  ExpectFailure(Run(options), FailureKind::kStoredCheckpointMismatch, j);
}

// The data folder's latest checkpoint is its newest stored row. Deleting the newest rows makes the
// log present an older state (what /log/checkpoint serves), while the entries still record the
// newer checkpoints: named at the first checkpoint entry without its row.
TEST_F(VerifierTest, DeletedNewestStoredCheckpointRowsAreNamed) {
  auto& rows = log_.checkpoints();
  const uint64_t j = rows.at(rows.size() - 3).entry_index;
  rows.erase(rows.end() - 3, rows.end());
  VerifyOptions options = KeyOnly();
  options.stored_checkpoints = log_.StoredCheckpointLister();
  options.latest_checkpoint = log_.Latest();
  VerifyReport report = Run(options);
  ExpectFailure(report, FailureKind::kStoredCheckpointMismatch, j);
  ASSERT_TRUE(report.failure.has_value());
  EXPECT_NE(report.failure->message.find("newest stored checkpoints were deleted"),
            std::string::npos)
      << report.failure->message;
}

// A checkpoint the integrator publishes while verify runs: after the latest was read (so it is
// beyond the bound) and before or after the log's size was read. Neither is a failure.
TEST_F(VerifierTest, CheckpointPublishedDuringVerificationIsAccepted) {
  const auto& rows = log_.checkpoints();
  const StoredCheckpoint newest = rows.back();
  const StoredCheckpoint before = rows.at(rows.size() - 2);
  VerifyOptions options = KeyOnly();
  options.stored_checkpoints = log_.StoredCheckpointLister();
  options.latest_checkpoint = LatestCheckpoint{before.note, before.entry_index};

  // Its entry was read: matched against its row, read again at the end.
  VerifyReport report = Run(options);
  EXPECT_TRUE(report.ok()) << report.failure->message;
  EXPECT_EQ(report.checkpoints_checked, rows.size());

  // Its entry came after the size was read: only the row is there, and it is newer.
  std::span<const std::string> prefix(log_.entries().data(), newest.entry_index);
  report = RunOn(prefix, options);
  EXPECT_TRUE(report.ok()) << report.failure->message;
  EXPECT_EQ(report.checkpoints_checked, rows.size() - 1);
}

TEST_F(VerifierTest, ReplacedStoredRowNewerThanTheLatestIsNamed) {
  auto& rows = log_.checkpoints();
  const StoredCheckpoint before = rows.at(rows.size() - 2);
  StoredCheckpoint& newest = rows.back();
  newest.root[3] ^= 1;
  newest.note = log_.SignCheckpointNote(newest.size, newest.root);
  VerifyOptions options = KeyOnly();
  options.stored_checkpoints = log_.StoredCheckpointLister();
  options.latest_checkpoint = LatestCheckpoint{before.note, before.entry_index};
  ExpectFailure(Run(options), FailureKind::kStoredCheckpointMismatch, newest.entry_index);
}

TEST_F(VerifierTest, StoredRowPointingAtAnOrdinaryEntryIsNamed) {
  StoredCheckpoint& row = log_.checkpoints().at(2);
  row.entry_index -= 3;
  const uint64_t j = row.entry_index;
  VerifyOptions options = KeyOnly();
  options.stored_checkpoints = log_.StoredCheckpointLister();
  ExpectFailure(Run(options), FailureKind::kStoredCheckpointMismatch, j);
}

TEST_F(VerifierTest, TrustedCheckpointFromTheSameLogIsProvedConsistent) {
  for (size_t c : {0, 6, 13}) {
    VerifyOptions options = log_.FullOptions();
    options.trusted_checkpoint = Checkpoint(c).note;
    VerifyReport report = Run(options);
    EXPECT_TRUE(report.ok()) << report.failure->message;
    EXPECT_TRUE(report.trusted_checked);
    EXPECT_TRUE(report.consistency_proof_checked);
  }
}

TEST_F(VerifierTest, TrustedCheckpointFromAForkedLogFails) {
  const uint64_t fork_at = 1234;
  TestLog forked(kOrigin, key_);
  BuildLog(forked, fork_at);
  const StoredCheckpoint& trusted = forked.checkpoints().at(15);
  ASSERT_GT(trusted.size, fork_at);
  ASSERT_EQ(forked.RootAt(fork_at), log_.RootAt(fork_at));  // the same history up to the fork

  VerifyOptions options = log_.FullOptions();
  options.trusted_checkpoint = trusted.note;
  VerifyReport report = Run(options);
  ExpectFailure(report, FailureKind::kTrustedCheckpointMismatch, 0);
  EXPECT_EQ(report.failure->range_end, std::optional<uint64_t>(trusted.size));
}

TEST_F(VerifierTest, RollbackBehindTheTrustedCheckpointIsNamed) {
  VerifyOptions options = log_.FullOptions();
  options.latest_checkpoint = LatestCheckpoint{Checkpoint(10).note, Checkpoint(10).entry_index};
  options.trusted_checkpoint = Checkpoint(12).note;
  ExpectFailure(Run(options), FailureKind::kRollback, Checkpoint(10).size);
}

TEST_F(VerifierTest, LatestCheckpointThatDoesNotOpenIsNamed) {
  TestEd25519Key other;
  const StoredCheckpoint& last = log_.checkpoints().back();
  VerifyOptions options = KeyOnly();
  options.latest_checkpoint =
      LatestCheckpoint{log_.SignCheckpointNote(last.size, last.root, &other), last.entry_index};
  ExpectFailure(Run(options), FailureKind::kBadCheckpoint, last.entry_index);
}

// The report names the first index where anything disagrees: an entry changed before the latest
// checkpoint's entry wins over that checkpoint failing to open.
TEST_F(VerifierTest, EarlierDamageIsNamedBeforeALatestCheckpointThatDoesNotOpen) {
  TestEd25519Key other;
  const StoredCheckpoint& last = log_.checkpoints().back();
  log_.entries()[40] = WithIndex(log_.entries()[40], 41);
  VerifyOptions options = KeyOnly();
  options.latest_checkpoint =
      LatestCheckpoint{log_.SignCheckpointNote(last.size, last.root, &other), last.entry_index};
  ExpectFailure(Run(options), FailureKind::kIndexMismatch, 40);
}

// Read from a server, the log holds what its latest checkpoint covers; a trusted checkpoint
// beyond that is a rollback, not a truncated tail.
TEST_F(VerifierTest, ServerRolledBackBehindTheTrustedCheckpointIsARollback) {
  const StoredCheckpoint& latest = Checkpoint(10);
  VerifyOptions options = KeyOnly();
  options.latest_checkpoint = LatestCheckpoint{latest.note, std::nullopt};
  options.trusted_checkpoint = Checkpoint(12).note;
  std::span<const std::string> served(log_.entries().data(), latest.size);
  ExpectFailure(RunOn(served, options), FailureKind::kRollback, latest.size);
}

TEST_F(VerifierTest, LatestCheckpointWithWrongRootNamesTheRange) {
  const StoredCheckpoint& last = log_.checkpoints().back();
  Sha256Digest wrong = last.root;
  wrong[5] ^= 0x40;
  VerifyOptions options = KeyOnly();
  options.latest_checkpoint = LatestCheckpoint{log_.SignCheckpointNote(last.size, wrong), {}};
  VerifyReport report = Run(options);
  ExpectFailure(report, FailureKind::kRootMismatch,
                log_.checkpoints()[log_.checkpoints().size() - 2].size);
}

// A reader that fails: its error ends verification and is returned, not reported.
class FailingReader final : public LogReader {
 public:
  Result<uint64_t> Size() override { return uint64_t{10}; }
  Status Read(uint64_t, uint64_t, EntryBatch&) override { return Unavailable("disk gone"); }
};

// Returns at most 3 entries per Read, as a reader whose batches reach their byte bound does.
class ShortBatchReader final : public LogReader {
 public:
  explicit ShortBatchReader(std::span<const std::string> entries) : inner_(entries) {}
  Result<uint64_t> Size() override { return inner_.Size(); }
  Status Read(uint64_t begin, uint64_t count, EntryBatch& out) override {
    ++reads;
    return inner_.Read(begin, std::min<uint64_t>(count, 3), out);
  }
  int reads = 0;

 private:
  MemoryLogReader inner_;
};

TEST_F(VerifierTest, ShortBatchesAreReadOnNotTakenForTheEnd) {
  ShortBatchReader reader(log_.entries());
  auto report = Verify(reader, log_.FullOptions());
  ASSERT_TRUE(report.ok()) << report.error().message();
  EXPECT_TRUE(report->ok()) << report->failure->message;
  EXPECT_EQ(report->entries_checked, log_.entries().size());
  EXPECT_GT(reader.reads, static_cast<int>(log_.entries().size() / 3));

  // Re-reading a range to name a changed entry copes with them too.
  log_.entries()[550][log_.entries()[550].find("release-key")] = 's';
  ShortBatchReader again(log_.entries());
  auto changed = Verify(again, log_.FullOptions());
  ASSERT_TRUE(changed.ok()) << changed.error().message();
  ExpectFailure(*changed, FailureKind::kChangedEntry, 550);
}

TEST(EntryBatchTest, AReaderStopsNearTheByteBound) {
  // 400 entries of 60 KiB: 23 MiB, more than one batch may hold.
  std::vector<std::string> big(400, std::string(60 * 1024, 'x'));
  MemoryLogReader reader(big);
  EntryBatch batch;
  ASSERT_TRUE(reader.Read(0, 4096, batch).ok());
  EXPECT_GT(batch.size(), 0u);
  EXPECT_LT(batch.size(), big.size());
  EXPECT_TRUE(batch.full());
  EXPECT_LT(batch.size() * big[0].size(), kEntryBatchBytes + big[0].size());
}

TEST_F(VerifierTest, ReaderErrorsAreReturned) {
  FailingReader reader;
  auto report = Verify(reader, KeyOnly());
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.error().code(), ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace signet::audit
