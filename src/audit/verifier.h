// audit/verifier: the offline verifier behind `signet audit verify` (issue 4, docs/audit.md). It
// reads a whole log once, in order, recomputes every leaf hash and the tree (RFC 9162 §2.1) and
// checks that everything the log and its operator have signed or stored agrees with that tree:
//
//   - every entry is canonical JSON with an "index" equal to its position (entry.h), so a deleted,
//     inserted or reordered entry is named where it happens;
//   - every checkpoint entry ("log_checkpoint") carries a signed note that opens with a trusted key
//     (c2sp.org/signed-note), names the log's origin (c2sp.org/tlog-checkpoint), signs a size
//     larger than the previous checkpoint's and no larger than its own index, and whose root equals
//     the root recomputed at that size; the size and root the entry states beside the note, if
//     any, are the note's. Recomputing every checkpoint's root from the same leaves
//     proves the consistency of all of them at once;
//   - the stored list of checkpoints (a data folder's log_checkpoints table), if given, agrees row
//     by row with the checkpoint entries (same note, size, root and entry index);
//   - the log's latest checkpoint (what /log/checkpoint serves), if given, opens, covers no more
//     than the log holds, and its root equals the recomputed one;
//   - a trusted checkpoint (one the user saved earlier), if given, has the recomputed root at its
//     size, and a consistency proof from it to the latest checkpoint, generated from the
//     recomputed tree and checked with VerifyConsistency (RFC 9162 §2.1.4), verifies.
//
// The first disagreement ends the run and is reported with the first index involved. When a
// checkpoint's root does not match, the entry that changed is found by comparing the recomputed
// leaf hashes with level-0 hash tiles (c2sp.org/tlog-tiles) if a tile fetcher is given; otherwise
// the report names the range between the last checkpoint that verified and the one that failed.
// Tiles only locate a change: a log is accepted on signed checkpoints alone, never on tiles.
//
// Memory: O(log n) for the tree, plus the perfect nodes completed since the last verified
// checkpoint's size (64 bytes per entry on average; signet checkpoints at least every 1024
// entries), plus one read batch. A log with more than kMaxEntriesBetweenCheckpoints entries after
// its last checkpoint is refused with ResourceExhausted rather than buffered without bound.
//
// Threads: Verify is a pure function of its arguments (and the reader's answers) and may run on
// any thread; the reader and the callbacks are called on that thread only. EntryBatch and the
// readers are not thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "audit/merkle.h"
#include "audit/note.h"
#include "audit/tiles.h"
#include "common/result.h"

namespace signet::audit {

// Entries read from a log, kept back to back in one buffer so reading a million entries does not
// allocate a million strings. Reused from one read to the next.
// How many bytes of entries a LogReader gathers in one Read before it may stop short: entries are
// up to 64 KiB, so a batch of 4096 could otherwise hold 256 MiB of a hostile source's data.
inline constexpr size_t kEntryBatchBytes = size_t{16} << 20;

class EntryBatch {
 public:
  void Clear() {
    data_.clear();
    ends_.clear();
  }
  void Add(std::string_view entry) {
    data_.append(entry);
    ends_.push_back(data_.size());
  }
  size_t size() const { return ends_.size(); }
  bool empty() const { return ends_.empty(); }
  // True once the entries added hold kEntryBatchBytes or more: a reader stops adding there.
  bool full() const { return data_.size() >= kEntryBatchBytes; }
  // Valid until the next Clear or Add.
  std::string_view operator[](size_t i) const {
    const size_t begin = i == 0 ? 0 : ends_[i - 1];
    return std::string_view(data_).substr(begin, ends_[i] - begin);
  }

 private:
  std::string data_;
  std::vector<size_t> ends_;
};

// Where the verifier reads a log from: a data folder's database, a server's entry bundles, an
// export file, or memory.
class LogReader {
 public:
  virtual ~LogReader() = default;
  // The number of entries the source says the log holds.
  virtual Result<uint64_t> Size() = 0;
  // Replaces the contents of `out` with the entries at positions [begin, begin + count), in order,
  // byte-exact; or with fewer of them, at least one, once out.full() (the caller reads on from
  // where the batch ends). None only where the source ends at `begin`. Errors
  // (Unavailable, DataLoss for a damaged source, ...) end verification and are returned by Verify.
  virtual Status Read(uint64_t begin, uint64_t count, EntryBatch& out) = 0;
};

// A LogReader over entries held in memory (tests, benchmarks). `entries` must outlive it.
class MemoryLogReader final : public LogReader {
 public:
  explicit MemoryLogReader(std::span<const std::string> entries) : entries_(entries) {}
  Result<uint64_t> Size() override { return uint64_t{entries_.size()}; }
  Status Read(uint64_t begin, uint64_t count, EntryBatch& out) override;

 private:
  std::span<const std::string> entries_;
};

// One row of a stored checkpoint list (store::LogCheckpointRow without the time).
struct StoredCheckpoint {
  uint64_t size = 0;
  Sha256Digest root{};
  std::string note;          // the signed note as stored
  uint64_t entry_index = 0;  // where the log records it
};

// Up to `limit` stored checkpoints with size > `after_size` (-1: from the first), ordered by size
// (Store::ListLogCheckpoints). Errors end verification and are returned by Verify.
using StoredCheckpointsFn =
    std::function<Result<std::vector<StoredCheckpoint>>(int64_t after_size, size_t limit)>;

// The log's own claim of its latest state.
struct LatestCheckpoint {
  std::string note;                     // the signed note
  std::optional<uint64_t> entry_index;  // where the log records it, when known (store)
};

inline constexpr uint64_t kMaxEntriesBetweenCheckpoints = uint64_t{1} << 22;

struct VerifyOptions {
  // Keys whose signatures on checkpoints count (at least one). Checkpoint notes must carry a valid
  // signature from one of them. Each must be named after the origin (signet names its log key so,
  // and a renewed key keeps the name): InvalidArgument otherwise, since any of them alone opens a
  // note, and another log's or a cosigner's key must not vouch for this log.
  std::vector<VerifierKey> trusted_keys;
  // The log's origin, the first line of every checkpoint. Empty: the first trusted key's name
  // (signet names its key after the origin).
  std::string origin;
  // A checkpoint note the user saved earlier; must open with the trusted keys (else Verify fails
  // with that error, not with a report: the input is wrong, not the log).
  std::optional<std::string> trusted_checkpoint;
  // The latest checkpoint the source publishes (/log/checkpoint, the newest stored row, the last
  // line of an export). Read it before the log's size, so that it is covered by the entries read.
  std::optional<LatestCheckpoint> latest_checkpoint;
  // The stored checkpoint list, compared row by row with the checkpoint entries; rows larger than
  // the latest checkpoint are not read (they may be newer than the entries read).
  StoredCheckpointsFn stored_checkpoints;
  // Level-0 hash tiles of the same log, to name the exact entry that changed when a root does not
  // match. Asked for TileRef{entries=false, level=0, index=t, width=w} with w the width the tile
  // has at the failing checkpoint's size.
  TileFetchFn level0_tiles;
  // Entries per LogReader::Read.
  uint64_t batch_size = 4096;
  // Whether entries that no verified checkpoint covers make the log fail (kUnsigned). The
  // verifier hashes such entries itself, so nothing ties them to the log: a file with no
  // checkpoint at all "verifies" whatever it holds. Off by default, because a live log always has
  // a tail since its last checkpoint; VerifyReport::signed_size says how much is covered.
  bool require_signed = false;
};

// What disagreed.
enum class FailureKind {
  kMalformedEntry,            // not canonical JSON, or no index/action, or a checkpoint entry
                              // without a note
  kIndexMismatch,             // "index" differs from the position: deleted, inserted or moved
  kBadCheckpoint,             // a checkpoint note that does not open with the trusted keys or names
                              // another origin, or an entry whose stated size/root is not the
                              // note's
  kCheckpointOrder,           // checkpoint sizes not strictly growing, or one recorded before the
                              // entries it signs
  kRootMismatch,              // a signed root differs from the recomputed one (index: start of the
                              // range [index, range_end) that holds the change)
  kChangedEntry,              // the entry at index hashes differently from the stored tile
  kStoredCheckpointMismatch,  // the stored checkpoint list disagrees with the log's entries
  kTruncated,                 // a checkpoint covers entries the log does not hold (index: the first
                              // missing one)
  kTrustedCheckpointMismatch,  // the trusted checkpoint is not a prefix of this log
  kRollback,                   // the latest checkpoint is older than the trusted one
  kUnsigned,  // with require_signed: entries after the last verified checkpoint (index: the first
              // of them, range_end: the log's size)
};

// "malformed_entry", "index_mismatch", ...: stable names for JSON output.
std::string_view FailureKindName(FailureKind kind);

struct VerifyFailure {
  FailureKind kind = FailureKind::kMalformedEntry;
  // The first index where anything disagrees; nullopt only when a checkpoint that the log does not
  // record (the latest from a server or an export) fails to open.
  std::optional<uint64_t> index;
  // When only a range is known: the change lies in [index, range_end).
  std::optional<uint64_t> range_end;
  // A sentence for the user, naming the index and why. It may quote the log's own text (a
  // log under test is untrusted), so control characters in it are escaped (TerminalSafe).
  std::string message;
};

struct VerifyReport {
  std::optional<VerifyFailure> failure;  // nullopt: everything agreed
  uint64_t entries_checked = 0;          // entries read and hashed
  uint64_t bytes_checked = 0;            // their total size
  uint64_t checkpoints_checked = 0;      // checkpoint entries verified
  TreeSize size;                         // entries read before the end or the failure
  Sha256Digest root{};                   // MTH of those entries
  // The largest size a verified signed checkpoint covers (entries beyond it are checked for form
  // and order only: nobody has signed them yet).
  TreeSize signed_size;
  bool latest_checked = false;              // the latest checkpoint was compared
  bool trusted_checked = false;             // the trusted checkpoint was compared
  bool consistency_proof_checked = false;   // ... and a consistency proof to the latest verified
  bool stored_checkpoints_checked = false;  // the stored list was compared
  std::chrono::nanoseconds elapsed{0};

  bool ok() const { return !failure.has_value(); }
};

// Verifies the log `reader` holds against `options` (see the header comment). Returns a report
// whether or not the log verifies; errors are for what prevents a verdict: InvalidArgument for bad
// options (no trusted key) or a trusted checkpoint that does not open, the reader's and
// callbacks' errors (with context), ResourceExhausted past kMaxEntriesBetweenCheckpoints.
Result<VerifyReport> Verify(LogReader& reader, const VerifyOptions& options);

}  // namespace signet::audit
