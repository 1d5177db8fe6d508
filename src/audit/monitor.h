// audit/monitor: the service's own watch over its Merkle log (issue 4 "Monitoring"; CSBR 6.2.7.4.1
// and NCSSR 3.1.2 ask for log integrity to be monitored). Each check re-verifies the newest part
// of the log as stored, the way an outside auditor would, so an operator who edits what the
// newest checkpoint covers (its stored row, the tiles on the tree's right edge, the entries added
// since the previous checkpoint) is noticed on the next check rather than at the next audit.
// Older entries and tiles are held in place by the signed checkpoints that cover them, which a
// full `signet audit verify` re-checks; the monitor does not repeat that walk on every check, so an
// edit deep in the past is found by verify, not by the monitor. What a check does:
//
//  1. the latest stored checkpoint's signed note opens with the log's own key (Store::GetLogKey:
//     origin and Ed25519 public key; c2sp.org/signed-note, c2sp.org/tlog-checkpoint), and the size
//     and root of its row are the ones it signs;
//  2. the root recomputed from the stored hash tiles (TileNodeHashFn, RootHash) equals that root
//     (c2sp.org/tlog-tiles; RFC 9162 §2.1.1);
//  3. a consistency proof built from those tiles from the previously verified checkpoint to the
//     latest one verifies against both signed roots (RFC 9162 §2.1.4) — the previous one is the
//     last checkpoint this monitor verified, or on its first check the stored checkpoint just
//     below the latest, whose signature is verified as well;
//  4. the leaf hash of every entry from the base's size up to the latest size equals its hash in
//     the level-0 tiles, and the store holds at least as many entries as were signed;
//  5. those leaf hashes, appended to the base's compact range, give the latest signed root: the
//     entries themselves are tied to the signature, whatever the tiles say (an entry edited
//     together with its level-0 hash would otherwise pass, since the upper nodes come from
//     higher tiles). The base is the checkpoint below the latest verified one, its compact range
//     computed from entries by an earlier check or, on the first check, read from the tiles and
//     checked against its signed root.
// Every check re-hashes [base, latest), also when nothing was added, so an edit of the newest part
// made after it was verified is still noticed on the next check.
// A log without any checkpoint yet passes (nothing is signed); one whose checkpoints disappear
// after one was verified fails. A failed check keeps the last verified checkpoint, and until a
// check passes the next ones re-hash from the base of the last check that passed, so the range
// that failed is covered again even after newer checkpoints were signed: an alteration that stays
// keeps every check failing. (If it is undone, checks pass again; the failures stay counted, see
// server::log::RecordLogMetrics, and logged.) A store that cannot be read fails a check with its
// own error (Unavailable, ...), not DataLoss.
//
// The monitor does not know HTTP: server/log turns its results into the "log" health check and the
// signet_log_* metrics (RecordLogMetrics, LogHealthCheck).
//
// Threads: every public method is thread-safe. Checks are serialised (a CheckOnce called while the
// background thread checks waits for it). The observer runs on the checking thread after the result
// is stored and must not call CheckOnce, Start or Stop.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include "audit/merkle.h"
#include "common/clock.h"
#include "common/result.h"
#include "store/store.h"

namespace signet::audit {

// The outcome of one check.
struct LogCheck {
  TimePoint time;                   // when the check started (the monitor's clock)
  std::optional<Error> error;       // nullopt: everything checked out. DataLoss: the log
                                    // does not verify (tampering or corruption; alert);
                                    // others (Unavailable, ...): the store could not be read
  std::optional<int64_t> log_size;  // entries in the store (nullopt: could not be read)
  int64_t checkpoint_size = 0;      // size of the latest checkpoint (0: none, or unread)
  std::optional<TimePoint> checkpoint_time;  // when it was signed (nullopt: none, or unread)
  int64_t checked_from = 0;  // entries [checked_from, checkpoint_size) were re-hashed

  bool ok() const { return !error.has_value(); }
};

// What the monitor knows, as one consistent snapshot.
struct LogMonitorState {
  std::optional<LogCheck> last;                       // nullopt before the first check
  uint64_t checks = 0;                                // checks run since construction
  uint64_t failures = 0;                              // of which failed
  std::optional<std::chrono::milliseconds> interval;  // while Start()ed
};

struct LogMonitorOptions {
  // Called after every check with its outcome (e.g. server::log::RecordLogMetrics). Must not
  // throw; must not call back into the monitor's CheckOnce, Start or Stop.
  std::function<void(const LogCheck&)> on_check;
  // The log key as the service checked it against the HSM at start-up (the integrator's
  // EnsureLogKey). Set, the stored key must still be this one (origin and public key): whoever can
  // write the database could otherwise swap the key row and re-sign the log with a key of their
  // own. Unset, the stored key is trusted (a reader without the HSM).
  std::optional<store::LogKeyRecord> pinned_key;
};

class LogMonitor {
 public:
  // `store` and `clock` must outlive the monitor.
  LogMonitor(store::Store& store, const Clock& clock, LogMonitorOptions options = {});
  // Stops the background thread, if running.
  ~LogMonitor();
  // Owns a thread that points at it.
  LogMonitor(const LogMonitor&) = delete;
  LogMonitor& operator=(const LogMonitor&) = delete;

  // Runs one check now (see the header comment), records its outcome and returns it: OK, DataLoss
  // naming what does not verify (the checkpoint's size, the tile or entry index), or the store's
  // error (Unavailable, ...) with context.
  Status CheckOnce();

  // Starts a thread that checks at once and then every `interval` until Stop(). InvalidArgument
  // for a non-positive interval; FailedPrecondition if already started; Unavailable if no thread
  // can be created.
  Status Start(std::chrono::milliseconds interval);
  // Stops the thread (waiting for a check in progress). Idempotent; the monitor may be started
  // again afterwards.
  void Stop();

  LogMonitorState State() const;

  // The health rule: OK when the last check passed and, while started, is no older than three
  // intervals (before the first check: no older than three intervals since Start). Otherwise the
  // last check's error, or Unavailable if the checks are overdue (or have never run while not
  // started: FailedPrecondition).
  Status Health() const;

 private:
  struct Verified {
    int64_t size = 0;
    Sha256Digest root{};
  };

  // The work of CheckOnce; fills `check` as it learns. Requires check_mu_.
  Status Verify(LogCheck& check);
  // Opens a stored checkpoint with the log key and checks its row against the note.
  Result<Verified> OpenStored(const store::LogCheckpointRow& row, const store::LogKeyRecord& key);
  // The stored checkpoint with the largest size below `size`, or nullopt.
  Result<std::optional<store::LogCheckpointRow>> PreviousCheckpoint(int64_t size);
  // Re-hashes entries [from, to) against the level-0 tiles of the tree of size `to`, appending
  // each leaf hash to `range` (which holds the tree of size `from`).
  Status CheckLeaves(int64_t from, int64_t to, CompactRange& range);
  Result<Bytes> FetchTile(int level, uint64_t index, int width);
  void Run(std::chrono::milliseconds interval);

  // Constant after construction.
  store::Store& store_;
  const Clock& clock_;
  const LogMonitorOptions options_;

  // Serialises checks; guards verified_ and the ranges.
  std::mutex check_mu_;
  // Guarded by check_mu_: the last checkpoint verified and its compact range (computed from the
  // entries); the checkpoint the check that verified it started from, and its compact range.
  std::optional<Verified> verified_;
  CompactRange verified_range_;
  Verified base_;
  CompactRange base_range_;
  // Set by a failed check (to base_ and base_range_ as they were) and cleared by the next check
  // that passes: while set, checks re-hash from here, so the range that failed is covered again.
  struct Base {
    Verified checkpoint;
    CompactRange range;
  };
  std::optional<Base> retry_;

  // Serialises Start and Stop; guards thread_.
  std::mutex lifecycle_mu_;
  std::thread thread_;  // guarded by lifecycle_mu_

  mutable std::mutex mu_;
  std::condition_variable wake_;                       // signalled by Stop (with mu_)
  std::optional<LogCheck> last_;                       // guarded by mu_
  uint64_t checks_ = 0;                                // guarded by mu_
  uint64_t failures_ = 0;                              // guarded by mu_
  std::optional<std::chrono::milliseconds> interval_;  // guarded by mu_: set while started
  TimePoint started_at_;                               // guarded by mu_
  bool stop_ = false;                                  // guarded by mu_
};

}  // namespace signet::audit
