// LogMonitor: re-verification of the newest part of the log. The checks read only what an outside
// verifier would read (signed notes, hash tiles, entries), never the integrator's memory, so they
// catch an edited database whatever process edited it.
#include "audit/monitor.h"

#include <algorithm>
#include <cstddef>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "audit/note.h"
#include "audit/tiles.h"

namespace signet::audit {
namespace {

std::string SizeText(int64_t size) { return std::to_string(size); }

// A stored-data problem: whatever a helper said, the check's verdict is DataLoss (tampering or
// corruption), with `context` saying where; but the store failing to answer (a tile read that
// failed: Unavailable, Internal, ResourceExhausted) stays what it is, an outage, not an alarm.
Error AsDataLoss(const Error& e, const std::string& context) {
  switch (e.code()) {
    case ErrorCode::kDataLoss:
    case ErrorCode::kUnavailable:
    case ErrorCode::kInternal:
    case ErrorCode::kResourceExhausted:
      return e.WithContext(context);
    default:
      return DataLoss(context + ": " + e.message());
  }
}

}  // namespace

LogMonitor::LogMonitor(store::Store& store, const Clock& clock, LogMonitorOptions options)
    : store_(store), clock_(clock), options_(std::move(options)) {}

LogMonitor::~LogMonitor() { Stop(); }

Status LogMonitor::CheckOnce() {
  std::lock_guard<std::mutex> check_lock(check_mu_);
  LogCheck check;
  check.time = clock_.Now();
  Status verified = Verify(check);
  if (!verified.ok()) {
    check.error = verified.error().WithContext("log check");
    // Until a check passes, the next ones start from the base of the last check that passed,
    // which lies at or below every range checked since: a range that failed is re-hashed again
    // even after newer checkpoints move the usual base above it.
    if (verified_ && !retry_) retry_ = Base{base_, base_range_};
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    last_ = check;
    ++checks_;
    if (!check.ok()) ++failures_;
  }
  if (options_.on_check) options_.on_check(check);
  if (!check.ok()) return *check.error;
  return OkStatus();
}

Result<Bytes> LogMonitor::FetchTile(int level, uint64_t index, int width) {
  const std::string name = "tile " + std::to_string(level) + "/" + std::to_string(index) +
                           " (width " + std::to_string(width) + ")";
  SIGNET_ASSIGN_OR_RETURN(std::optional<Bytes> tile,
                          store_.GetLogTile(level, static_cast<int64_t>(index), width));
  if (!tile) return DataLoss(name + " is missing from the store although a checkpoint covers it");
  return std::move(*tile);
}

Result<LogMonitor::Verified> LogMonitor::OpenStored(const store::LogCheckpointRow& row,
                                                    const store::LogKeyRecord& key) {
  const std::string what = "checkpoint of size " + SizeText(row.size);
  auto vkey = NewEd25519VerifierKey(key.origin, key.public_key);
  if (!vkey.ok()) return AsDataLoss(vkey.error(), "the stored log key");
  const VerifierKey trusted[] = {*vkey};
  auto opened = OpenCheckpoint(row.note, key.origin, trusted);
  if (!opened.ok()) return AsDataLoss(opened.error(), what);
  const Checkpoint& cp = opened->checkpoint;
  if (cp.size.value() != static_cast<uint64_t>(row.size)) {
    return DataLoss(what + ": the signed note says size " + std::to_string(cp.size.value()));
  }
  auto root = ToSha256Digest(row.root, "stored root");
  if (!root.ok() || *root != cp.root) {
    return DataLoss(what + ": the stored root differs from the root the note signs");
  }
  return Verified{row.size, cp.root};
}

// ListLogCheckpoints only walks upwards, and a log keeps every checkpoint (one per integration),
// so the predecessor of `size` is found by bisection on `after_size`: first(x) = the smallest
// checkpoint above x is below `size` exactly when x is below the predecessor. O(log size) lookups.
Result<std::optional<store::LogCheckpointRow>> LogMonitor::PreviousCheckpoint(int64_t size) {
  auto first_above = [&](int64_t after) -> Result<std::optional<store::LogCheckpointRow>> {
    SIGNET_ASSIGN_OR_RETURN(std::vector<store::LogCheckpointRow> rows,
                            store_.ListLogCheckpoints(after, 1));
    if (rows.empty() || rows.front().size >= size) return std::optional<store::LogCheckpointRow>();
    return std::optional<store::LogCheckpointRow>(std::move(rows.front()));
  };
  int64_t lo = -1;  // first_above(lo) is below `size` (checked next)
  SIGNET_ASSIGN_OR_RETURN(std::optional<store::LogCheckpointRow> best, first_above(lo));
  if (!best) return best;
  int64_t hi = size - 1;  // first_above(hi) is `size` itself (or nothing)
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    SIGNET_ASSIGN_OR_RETURN(std::optional<store::LogCheckpointRow> found, first_above(mid));
    if (found) {
      lo = mid;
      best = std::move(found);
    } else {
      hi = mid;
    }
  }
  return best;
}

Status LogMonitor::CheckLeaves(int64_t from, int64_t to, CompactRange& range) {
  const auto first_tile = static_cast<uint64_t>(from) / kTileWidth;
  for (uint64_t t = first_tile; t * kTileWidth < static_cast<uint64_t>(to); ++t) {
    const auto tile_start = static_cast<int64_t>(t * kTileWidth);
    const int width = static_cast<int>(std::min<int64_t>(kTileWidth, to - tile_start));
    SIGNET_ASSIGN_OR_RETURN(Bytes tile, FetchTile(0, t, width));
    if (tile.size() != static_cast<size_t>(width) * kSha256DigestSize) {
      return DataLoss("tile 0/" + std::to_string(t) + " has " + std::to_string(tile.size()) +
                      " bytes, not " + std::to_string(width * kSha256DigestSize));
    }
    const int64_t begin = std::max(from, tile_start);
    const int64_t end = tile_start + width;
    if (begin >= end) continue;  // `from` is the end of the tree: nothing new
    SIGNET_ASSIGN_OR_RETURN(std::vector<store::LogEntryRow> entries,
                            store_.ReadLogEntries(begin, end - begin));
    for (int64_t i = begin; i < end; ++i) {
      const auto k = static_cast<size_t>(i - begin);
      if (k >= entries.size() || entries[k].index != i) {
        return DataLoss("entry " + std::to_string(i) + " is missing from the store");
      }
      const Sha256Digest leaf = HashLeaf(AsBytes(entries[k].data));
      const auto offset = static_cast<size_t>(i - tile_start) * kSha256DigestSize;
      if (!std::equal(leaf.begin(), leaf.end(),
                      tile.begin() + static_cast<std::ptrdiff_t>(offset))) {
        return DataLoss("entry " + std::to_string(i) +
                        " does not match its leaf hash in level-0 tile " + std::to_string(t));
      }
      SIGNET_TRY(range.Append(leaf));
    }
  }
  return OkStatus();
}

Status LogMonitor::Verify(LogCheck& check) {
  // The checkpoint first: the log only grows, so a size read after it is at least what it signs.
  // Read the other way round, a checkpoint published between the two reads would look like
  // entries lost.
  SIGNET_ASSIGN_OR_RETURN(std::optional<store::LogCheckpointRow> latest,
                          store_.LatestLogCheckpoint());
  SIGNET_ASSIGN_OR_RETURN(const int64_t log_size, store_.LogSize());
  check.log_size = log_size;
  if (!latest) {
    if (verified_) {
      return DataLoss("the store holds no checkpoint, but one of size " +
                      SizeText(verified_->size) + " was verified before");
    }
    return OkStatus();  // nothing signed yet, nothing to verify
  }
  check.checkpoint_size = latest->size;
  check.checkpoint_time = latest->time;
  const std::string what = "checkpoint of size " + SizeText(latest->size);

  SIGNET_ASSIGN_OR_RETURN(std::optional<store::LogKeyRecord> key, store_.GetLogKey());
  if (!key) return DataLoss("the store holds a " + what + " but no log key");
  if (const auto& pinned = options_.pinned_key;
      pinned && (key->origin != pinned->origin || key->public_key != pinned->public_key)) {
    return DataLoss("the log key in the store (origin '" + key->origin +
                    "') is not the one the service started with, which the HSM holds");
  }
  SIGNET_ASSIGN_OR_RETURN(Verified now, OpenStored(*latest, *key));
  if (log_size < now.size) {
    return DataLoss("the store holds " + SizeText(log_size) + " entries, fewer than the " + what +
                    " signs");
  }

  std::optional<Verified> previous = verified_;
  if (!previous) {
    SIGNET_ASSIGN_OR_RETURN(std::optional<store::LogCheckpointRow> row,
                            PreviousCheckpoint(now.size));
    if (row) {
      SIGNET_ASSIGN_OR_RETURN(previous, OpenStored(*row, *key));
    }
  }
  if (previous && previous->size > now.size) {
    return DataLoss("the latest " + what + " is smaller than the checkpoint of size " +
                    SizeText(previous->size) + " verified before (rollback)");
  }

  const TreeSize size(static_cast<uint64_t>(now.size));
  const NodeHashFn nodes = TileNodeHashFn(
      size, [this](const TileRef& tile) { return FetchTile(tile.level, tile.index, tile.width); });
  auto root = RootHash(size, nodes);
  if (!root.ok()) return AsDataLoss(root.error(), "recomputing the root of the " + what);
  if (*root != now.root) {
    return DataLoss("the root recomputed from the stored tiles differs from the " + what);
  }

  if (previous && previous->size > 0) {
    const TreeSize old_size(static_cast<uint64_t>(previous->size));
    const std::string step =
        "consistency from size " + SizeText(previous->size) + " to " + SizeText(now.size);
    auto proof = ConsistencyProof(old_size, size, nodes);
    if (!proof.ok()) return AsDataLoss(proof.error(), step);
    Status consistent = VerifyConsistency(old_size, size, *proof, previous->root, now.root);
    if (!consistent.ok()) return AsDataLoss(consistent.error(), step);
  }

  // The base the entries are re-hashed from: while the latest is the one verified last, the same
  // base as then; once a newer one is signed, the one verified last (its range came from its
  // entries); on the first check, the stored checkpoint below the latest, its range read from the
  // tiles and held to its signature.
  Verified base;
  CompactRange range;
  if (retry_) {
    base = retry_->checkpoint;
    range = retry_->range;
  } else if (verified_ && verified_->size == now.size) {
    base = base_;
    range = base_range_;
  } else if (verified_) {
    base = *verified_;
    range = verified_range_;
  } else if (previous) {
    base = *previous;
    const NodeHashFn base_nodes = TileNodeHashFn(
        TreeSize(static_cast<uint64_t>(base.size)),
        [this](const TileRef& tile) { return FetchTile(tile.level, tile.index, tile.width); });
    auto from_tiles =
        CompactRange::FromNodes(TreeSize(static_cast<uint64_t>(base.size)), base_nodes);
    if (!from_tiles.ok()) {
      return AsDataLoss(from_tiles.error(), "reading the tree of the checkpoint of size " +
                                                SizeText(base.size) + " from the stored tiles");
    }
    if (from_tiles->Root() != base.root) {
      return DataLoss("the stored tiles do not reproduce the root the checkpoint of size " +
                      SizeText(base.size) + " signs");
    }
    range = std::move(*from_tiles);
  }
  check.checked_from = base.size;
  CompactRange base_range = range;
  SIGNET_TRY(CheckLeaves(base.size, now.size, range));
  if (range.Root() != now.root) {
    return DataLoss("the entries from " + SizeText(base.size) + " to " + SizeText(now.size) +
                    " do not hash to the root the " + what +
                    " signs: entries and their tile hashes were changed together");
  }
  base_ = base;
  base_range_ = std::move(base_range);
  retry_.reset();
  verified_ = now;
  verified_range_ = std::move(range);
  return OkStatus();
}

Status LogMonitor::Start(std::chrono::milliseconds interval) {
  if (interval.count() <= 0) return InvalidArgument("the log check interval must be positive");
  std::lock_guard<std::mutex> lifecycle(lifecycle_mu_);
  if (thread_.joinable()) return FailedPrecondition("the log monitor is already running");
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = false;
    interval_ = interval;
    started_at_ = clock_.Now();
  }
  try {
    thread_ = std::thread([this, interval] { Run(interval); });
  } catch (const std::system_error& e) {
    std::lock_guard<std::mutex> lock(mu_);
    interval_.reset();
    return Unavailable(std::string("cannot start the log monitor thread: ") + e.what());
  }
  return OkStatus();
}

void LogMonitor::Stop() {
  std::lock_guard<std::mutex> lifecycle(lifecycle_mu_);
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  interval_.reset();
}

void LogMonitor::Run(std::chrono::milliseconds interval) {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    lock.unlock();
    (void)CheckOnce();  // the outcome is kept in last_ and reported through on_check
    lock.lock();
    wake_.wait_for(lock, interval, [this] { return stop_; });
  }
}

LogMonitorState LogMonitor::State() const {
  std::lock_guard<std::mutex> lock(mu_);
  return LogMonitorState{last_, checks_, failures_, interval_};
}

Status LogMonitor::Health() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (last_ && !last_->ok()) return *last_->error;
  if (!interval_) {
    if (!last_) return FailedPrecondition("the log monitor has not checked the log yet");
    return OkStatus();
  }
  const TimePoint since = last_ ? last_->time : started_at_;
  const auto age = clock_.Now() - since;
  if (age > 3 * *interval_) {
    return Unavailable(
        "the log was last checked " +
        std::to_string(std::chrono::duration_cast<std::chrono::seconds>(age).count()) +
        " s ago; checks are due every " + std::to_string(interval_->count()) + " ms");
  }
  return OkStatus();
}

}  // namespace signet::audit
