// audit/integrator: turns the sequenced entries of the audit log into a Merkle tree and signs it.
//
// The sequencer (sequencer.h) makes entries durable at consecutive indices; the integrator then,
// every `interval` or as soon as `max_pending` entries wait, reads the entries past the last
// checkpoint, extends its compact range (merkle.h) with their leaf hashes, builds the C2SP
// tlog-tiles hash tiles (tiles.h) that the new entries complete or grow, checks that the new tree
// is consistent with the last checkpoint, signs a c2sp.org/tlog-checkpoint note with an Ed25519
// key held in the HSM, and publishes tiles, checkpoint and the checkpoint's own log entry in one
// store transaction (Store::PublishLogCheckpoint). DESIGN.md §4 "Log"; the checklist of
// reference/transparency-log.md §11.
//
// The tree state in memory (compact range and the partial tile at the right edge of each level) is
// always that of the newest stored checkpoint. Create() rebuilds it from the stored tiles and
// refuses to start (DataLoss) when they do not reproduce the signed root; after a crash nothing is
// lost, because tiles and checkpoint are stored together and entries past the checkpoint are
// simply integrated again. Another integrator on the same database (another node) is noticed
// through Store::LatestLogCheckpoint and the state reloaded; the store refuses a second checkpoint
// of the same or a smaller size.
//
// Threads: Notify(), stats(), LastError() and verifier_key() may be called from any thread at any
// time. IntegrateOnce() may be called from any thread; rounds are serialised (a second caller
// waits). Start() runs rounds on one background thread until Stop() or destruction. The store,
// key store and clock must outlive the Integrator.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "audit/merkle.h"
#include "audit/note.h"
#include "audit/tiles.h"
#include "common/clock.h"
#include "common/result.h"
#include "hsm/key_store.h"
#include "store/store.h"

namespace signet::audit {

// The CKA_LABEL of the checkpoint key in the HSM, and the action of a checkpoint's log entry.
inline constexpr std::string_view kLogKeyLabel = "signet-log-checkpoint";
inline constexpr std::string_view kLogCheckpointAction = "log_checkpoint";

// Returns the log's checkpoint-signing key, creating it on first use.
//  - A key is stored: its origin must be `origin` (FailedPrecondition otherwise: a log never
//    changes its origin), and the HSM must still hold it with the same public key (DataLoss if it
//    is gone or different: checkpoints could no longer be signed, or would not verify).
//  - No key is stored: generates an Ed25519 key pair inside the HSM (label kLogKeyLabel;
//    sensitive, non-extractable: the private key never leaves the module) and stores its record.
//    If another process stored a key first, the new HSM key is destroyed and the stored one used.
// InvalidArgument for an origin that is not a valid signed-note key name. Errors of the store and
// the key store (Unavailable, ...) are passed back with context.
Result<store::LogKeyRecord> EnsureLogKey(store::Store& store, hsm::KeyStore& key_store,
                                         std::string_view origin, const Clock& clock);

// Where the integrator keeps, outside the store, the newest checkpoint it signed: a store rolled
// back under it (an older backup restored, the tail of the log and its checkpoints cut) would
// otherwise be signed over, giving a second tree of a size already signed, a fork that everyone
// holding the first checkpoint can prove. `load` gives the note saved last (nullopt: none yet);
// `save` replaces it durably; `where` names it in messages (e.g. the file's path).
struct CheckpointWitness {
  std::function<Result<std::optional<std::string>>()> load;
  std::function<Status(std::string_view note)> save;
  std::string where;
};

// A witness kept in the file `path` (written atomically, owner-only); for `signet serve`, a file in
// its data folder beside the database, so that restoring the database alone is noticed.
CheckpointWitness FileCheckpointWitness(std::string path);

struct IntegratorOptions {
  // The log's identity: checkpoint origin and signed-note key name, e.g. "signet.example/prod".
  std::string origin;
  // The longest time between rounds (and the shortest, unless Notify() asks for one sooner).
  std::chrono::milliseconds interval{500};
  // Notify(new_size) starts a round at once when this many entries wait beyond the last
  // checkpoint.
  int64_t max_pending = 1024;
  // The most entries one checkpoint integrates; a larger backlog (e.g. after a long outage) is
  // worked off in several rounds, back to back. Bounds the memory and the length of a round; at
  // most kMaxBatchLimit.
  int64_t max_batch = 65536;
  // AdmitAppend() refuses appends while more than this many entries wait past the newest
  // checkpoint. An offline verifier (verifier.h) holds the entries past a checkpoint in memory
  // and refuses a log with more than kMaxEntriesBetweenCheckpoints (2^22) of them, so a longer
  // unsigned run (rounds failing for hours while the service logs on) would leave the log
  // unverifiable for good. At least max_pending, at most kMaxUnsignedLimit.
  int64_t max_unsigned = int64_t{1} << 20;
  // A round running longer than this makes Health() report the integrator stuck (an HSM or a
  // database that stopped answering fails no round, yet nothing new is signed). 0: the longer of
  // one minute and four intervals; else it must exceed `interval`.
  std::chrono::milliseconds stuck_after{0};
  // Renders the log entry that records a checkpoint, given the index it gets and the checkpoint
  // (with entry_index set to that index). Called inside the store's append transaction: must be a
  // cheap pure function. Required.
  std::function<Result<std::string>(int64_t index, const store::LogCheckpointRow& checkpoint)>
      render_checkpoint_entry;
  // Set: Create() holds the store's newest checkpoint to the witness's (it must be the same, or
  // extend it by a consistency proof from the stored tiles; DataLoss otherwise), and every
  // published checkpoint is saved to it. A witness without a note is given the store's newest.
  std::optional<CheckpointWitness> witness;
};

struct IntegratorStats {
  int64_t integrated_size = 0;       // size of the newest checkpoint (0 before the first)
  int64_t rounds = 0;                // IntegrateOnce calls that returned
  int64_t checkpoints_signed = 0;    // by this Integrator
  int64_t entries_integrated = 0;    // by this Integrator
  int64_t failures = 0;              // rounds that failed
  int64_t consecutive_failures = 0;  // since the last round that succeeded
  std::optional<TimePoint> last_checkpoint_time;  // of the last checkpoint this one signed
};

class Integrator {
 public:
  // Checks `options` (InvalidArgument), gets the key through EnsureLogKey, and loads the state of
  // the newest checkpoint: its note must verify with the log key and name the size and root of
  // its row, the log must hold at least that many entries, and the stored tiles must reproduce
  // that root (DataLoss otherwise: tiles or checkpoints were altered or lost). Does not start the
  // background thread.
  static Result<std::unique_ptr<Integrator>> Create(store::Store& store, hsm::KeyStore& key_store,
                                                    const Clock& clock, IntegratorOptions options);
  // Stops the background thread, if running.
  ~Integrator();
  // Owns a thread that refers to `this`; a copy or a move would leave it dangling.
  Integrator(const Integrator&) = delete;
  Integrator& operator=(const Integrator&) = delete;

  // One round. Reads the entries past the last checkpoint (at most max_batch; entries appended
  // meanwhile wait for the next round), integrates them and publishes a signed checkpoint of the
  // new size with its tiles and its own log entry; returns the stored checkpoint row (entry_index
  // set). Returns nullopt and changes nothing when no entry is new, or when the only new entry
  // is the last checkpoint's own (so checkpoints do not beget checkpoints for ever).
  // Errors: DataLoss if the log or the stored checkpoints changed under it (a gap in the indices,
  // a checkpoint gone or replaced, tiles that do not reproduce the previous root) — the
  // integrator then refuses to sign; FailedPrecondition if another integrator published first
  // (the next round reloads); errors of the store and the HSM (Unavailable, ...) with context.
  // Every call counts in stats().
  Result<std::optional<store::LogCheckpointRow>> IntegrateOnce();

  // Starts the background thread: a round at once, then one every `interval`, sooner when
  // Notify() asks. Failed rounds are recorded (stats(), LastError()) and retried in the next
  // round; the thread never stops on its own. No-op if already running.
  void Start();
  // Stops the background thread after the round in progress; no-op if not running.
  void Stop();

  // Tells the integrator that the log now holds `new_size` entries (wired to
  // Sequencer::SetOnAppended). Wakes the background thread if at least max_pending entries wait.
  // Cheap and non-blocking apart from a short lock; safe to call from the sequencer's thread.
  void Notify(int64_t new_size);

  // Whether the log may take more entries: OK while at most options.max_unsigned entries (as
  // Notify last said) wait past the newest checkpoint; Unavailable, naming the last round's error,
  // once more do, until a round publishes. Two atomic loads when OK: for the audit sink before
  // each append, so that nothing that must be logged is done while its entry could not be
  // verified.
  Status AdmitAppend() const;
  static constexpr int64_t kMaxBatchLimit = int64_t{1} << 20;
  static constexpr int64_t kMaxUnsignedLimit = int64_t{1} << 21;

  IntegratorStats stats() const;
  // The error of the last round that failed (kept after later successes; see
  // stats().consecutive_failures), or nullopt if none ever did.
  std::optional<Error> LastError() const;
  // The health rule (the "log_integrator" check of /healthz): Unavailable while a round has run
  // longer than options.stuck_after; otherwise OK unless the last round failed and either its
  // error is DataLoss (the stored log disagrees with what was signed: alert at once) or
  // kUnhealthyAfterFailures rounds in a row have failed (the unsigned tail, which only a full
  // verify's form checks hold, grows while they do). Then that round's error, with the count.
  Status Health() const;
  static constexpr int64_t kUnhealthyAfterFailures = 3;

  // The key checkpoints verify with; FormatVerifierKey gives what `signet audit key` prints.
  const VerifierKey& verifier_key() const { return verifier_key_; }
  const std::string& origin() const { return options_.origin; }
  // The stored record of that key, as EnsureLogKey checked it against the HSM.
  const store::LogKeyRecord& log_key() const { return log_key_; }

 private:
  Integrator(store::Store& store, hsm::KeyStore& key_store, const Clock& clock,
             IntegratorOptions options, store::LogKeyRecord log_key, hsm::HsmKeyId key_id,
             VerifierKey verifier_key);

  // The compact range of the newest checkpoint and, per tile level, the hashes of its partial
  // right-edge tile (empty when that level ends on a tile boundary).
  struct TreeState {
    CompactRange range;
    std::array<std::vector<Sha256Digest>, kMaxTileLevel + 1> edges;
    std::optional<store::LogCheckpointRow> checkpoint;
  };

  Result<TreeState> LoadState();
  // Holds state_.checkpoint to options_.witness (see IntegratorOptions::witness).
  Status CheckWitness();
  // Set when a checkpoint was published and the witness does not hold it yet. Guarded by
  // round_mu_.
  bool witness_behind_ = false;
  // OK when `latest` (just loaded from the store) is `ours` or a tree that extends it, by a
  // consistency proof from the stored tiles checked against both signed roots; DataLoss if not.
  Status CheckExtends(const store::LogCheckpointRow& ours,
                      const std::optional<store::LogCheckpointRow>& latest);
  Result<std::optional<store::LogCheckpointRow>> IntegrateLocked(int64_t* integrated);
  Result<std::string> SignCheckpointNote(const Checkpoint& checkpoint);
  void Run();

  // Constant after construction.
  store::Store& store_;
  hsm::KeyStore& key_store_;
  const Clock& clock_;
  const IntegratorOptions options_;
  const store::LogKeyRecord log_key_;
  const hsm::HsmKeyId key_id_;
  const VerifierKey verifier_key_;

  // Guarded by round_mu_ (held for a whole round).
  std::mutex round_mu_;
  TreeState state_;
  bool reload_ = false;  // the stored checkpoints moved on without us: reload before the round

  // Written under round_mu_, read anywhere.
  std::atomic<int64_t> integrated_size_{0};
  std::atomic<bool> backlog_{false};  // the last round stopped at max_batch
  std::atomic<int64_t> notified_size_{0};  // the largest size Notify was given

  // Guarded by mu_.
  mutable std::mutex mu_;
  std::condition_variable wake_cv_;
  bool wake_ = false;
  bool stopping_ = false;
  std::thread thread_;
  IntegratorStats stats_;
  std::optional<Error> last_error_;
  std::optional<std::chrono::steady_clock::time_point> round_started_;  // while one runs
};

}  // namespace signet::audit
