#include "audit/verifier.h"

#include <algorithm>
#include <array>
#include <limits>
#include <string>
#include <utility>

#include "audit/entry.h"
#include "common/encoding.h"
#include "common/text.h"

namespace signet::audit {
namespace {

std::string Str(uint64_t v) { return std::to_string(v); }

std::string RootText(const Sha256Digest& root) { return Base64Encode(root); }

// Perfect nodes that fold into the root of any size in [base, current]: the nodes of the compact
// range at `base` (RFC 9162 trees: every node of Nodes(n) that ends at or before base is also in
// Nodes(base)) and every node completed after `base`, per level in index order (nodes of one level
// complete left to right). This is how the verifier finds the root at size N when the entry
// recording that checkpoint arrives later, at some index j >= N, without keeping the whole tree.
class NodeCache {
 public:
  void Record(NodeId node, const Sha256Digest& hash) {
    Level& level = levels_[node.level];
    if (level.hashes.empty()) level.first = node.index;
    level.hashes.push_back(hash);
  }

  uint64_t base() const { return base_; }

  Result<Sha256Digest> Node(NodeId node) const {
    if (node.level >= 64) return InternalError("node level out of range");
    const uint64_t end = (node.index + 1) << node.level;
    if (end <= base_) {
      for (const auto& [id, hash] : base_nodes_) {
        if (id == node) return hash;
      }
    } else {
      const Level& level = levels_[node.level];
      if (node.index >= level.first && node.index - level.first < level.hashes.size()) {
        return level.hashes[node.index - level.first];
      }
    }
    return InternalError("verifier lost track of node (level " + Str(node.level) + ", index " +
                         Str(node.index) + ")");
  }

  // MTH(D[0:size]) for base <= size <= the tree size recorded so far.
  Result<Sha256Digest> RootAt(uint64_t size) const {
    std::vector<Sha256Digest> hashes;
    for (const NodeId& id : CompactRange::Nodes(TreeSize(size))) {
      SIGNET_ASSIGN_OR_RETURN(Sha256Digest hash, Node(id));
      hashes.push_back(hash);
    }
    SIGNET_ASSIGN_OR_RETURN(CompactRange range,
                            CompactRange::FromHashes(TreeSize(size), std::move(hashes)));
    return range.Root();
  }

  // Moves the base to `size` (base <= size <= recorded) and forgets what is no longer needed.
  Status Rebase(uint64_t size) {
    std::vector<std::pair<NodeId, Sha256Digest>> nodes;
    for (const NodeId& id : CompactRange::Nodes(TreeSize(size))) {
      SIGNET_ASSIGN_OR_RETURN(Sha256Digest hash, Node(id));
      nodes.emplace_back(id, hash);
    }
    base_nodes_ = std::move(nodes);
    base_ = size;
    for (uint32_t l = 0; l < levels_.size(); ++l) {
      Level& level = levels_[l];
      const uint64_t keep_from = size >> l;  // nodes ending after `size`
      if (level.hashes.empty() || keep_from <= level.first) continue;
      const uint64_t drop = std::min<uint64_t>(keep_from - level.first, level.hashes.size());
      level.hashes.erase(level.hashes.begin(),
                         level.hashes.begin() + static_cast<std::ptrdiff_t>(drop));
      level.first += drop;
    }
    return OkStatus();
  }

 private:
  struct Level {
    uint64_t first = 0;  // node index of hashes[0]
    std::vector<Sha256Digest> hashes;
  };
  std::array<Level, 64> levels_;
  uint64_t base_ = 0;
  std::vector<std::pair<NodeId, Sha256Digest>> base_nodes_;
};

// One run of Verify. Not reusable.
class Verification {
 public:
  Verification(LogReader& reader, const VerifyOptions& options)
      : reader_(reader), options_(options) {}

  Result<VerifyReport> Run() {
    const auto start = std::chrono::steady_clock::now();
    Status status = RunChecks();
    if (!status.ok()) return std::move(status).error();
    report_.size = range_.size();
    report_.root = range_.Root();
    report_.signed_size = TreeSize(signed_size_);
    // The entries that record checkpoints come after the entries they sign, so the last of
    // them is never under a checkpoint itself; each carries a note that verified, so a tail of
    // only those passes. Any other entry there is covered by nothing.
    if (!failed() && options_.require_signed && last_plain_entry_ &&
        *last_plain_entry_ >= signed_size_) {
      const uint64_t size = range_.size().value();
      Fail(FailureKind::kUnsigned, signed_size_,
           "entries from index " + Str(signed_size_) + " on (" + Str(size - signed_size_) + " of " +
               Str(size) + ", entry " + Str(*last_plain_entry_) +
               " the last) are under no signed checkpoint that verified",
           size);
    }
    report_.elapsed = std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::steady_clock::now() - start);
    return std::move(report_);
  }

 private:
  bool failed() const { return report_.failure.has_value(); }

  void Fail(FailureKind kind, std::optional<uint64_t> index, std::string message,
            std::optional<uint64_t> range_end = std::nullopt) {
    if (failed()) return;
    report_.failure = VerifyFailure{kind, index, range_end, TerminalSafe(message)};
  }

  Status RunChecks() {
    if (options_.trusted_keys.empty()) {
      return InvalidArgument("no trusted verifier key: verification needs the log's public key");
    }
    origin_ = options_.origin.empty() ? options_.trusted_keys.front().name : options_.origin;
    // Any trusted key opens a note (OpenNote), so a key of another name given next to the log's
    // (another log's, a cosigner's) could sign a whole forged history under this origin. signet
    // names its log key after the origin; a renewed key keeps the name.
    for (const VerifierKey& key : options_.trusted_keys) {
      if (key.name != origin_) {
        // Key names are checked when a key is read (no spaces, '+' or control characters).
        return InvalidArgument("trusted key \"" + key.name + "\" is not a key of the log \"" +
                               origin_ + "\"" +
                               ": every key given must be named after the log's origin, as "
                               "signet names its log key; a key of another name could sign "
                               "checkpoints for this log on its own");
      }
    }
    if (options_.batch_size == 0) return InvalidArgument("batch size must be at least 1");

    if (options_.trusted_checkpoint) {
      auto opened = OpenCheckpoint(*options_.trusted_checkpoint, origin_, options_.trusted_keys);
      if (!opened.ok()) {
        // The user's input and key disagree: a wrong argument, whatever the note's fault was.
        return InvalidArgument(opened.error().message())
            .WithContext("the trusted checkpoint does not open with the trusted key");
      }
      trusted_ = opened->checkpoint;
    }
    if (options_.latest_checkpoint) {
      auto opened =
          OpenCheckpoint(options_.latest_checkpoint->note, origin_, options_.trusted_keys);
      if (opened.ok()) {
        latest_ = opened->checkpoint;
      } else {
        // Reported after the entries are read, unless an earlier entry disagrees first: the
        // report names the first index where anything does.
        const auto& at = options_.latest_checkpoint->entry_index;
        bad_latest_ =
            VerifyFailure{FailureKind::kBadCheckpoint, at, std::nullopt,
                          TerminalSafe("the log's latest checkpoint" +
                                       (at ? " (recorded at entry " + Str(*at) + ")" : "") +
                                       " does not verify: " + opened.error().message())};
      }
    }
    SIGNET_ASSIGN_OR_RETURN(size_, reader_.Size());
    stored_bound_ = latest_ ? latest_->size.value() : std::numeric_limits<uint64_t>::max();
    report_.stored_checkpoints_checked = static_cast<bool>(options_.stored_checkpoints);
    SIGNET_TRY(PlanConsistencyProof());

    sink_ = [this](NodeId node, const Sha256Digest& hash) {
      cache_.Record(node, hash);
      if (((wanted_levels_ >> node.level) & 1) != 0) {
        for (auto& [id, value] : wanted_) {
          if (id == node) value = hash;
        }
      }
    };

    if (bad_latest_) {
      // Without a latest checkpoint to bound it, the stored list is compared in full; the entries
      // are still checked for form, order and their own checkpoints.
      stored_bound_ = std::numeric_limits<uint64_t>::max();
      SIGNET_TRY(Stream());
      const bool earlier = failed() && report_.failure->index &&
                           (!bad_latest_->index || *report_.failure->index < *bad_latest_->index);
      if (!earlier) report_.failure = std::move(bad_latest_);
      return OkStatus();
    }
    SIGNET_TRY(Stream());
    if (failed()) return OkStatus();
    return FinalChecks();
  }

  // The nodes a consistency proof from the trusted checkpoint to the latest one needs are known
  // before reading (the proof's shape depends only on the two sizes), so they are caught as the
  // tree is rebuilt instead of keeping the tree.
  Status PlanConsistencyProof() {
    if (!trusted_ || !latest_) return OkStatus();
    const uint64_t m = trusted_->size.value();
    const uint64_t l = latest_->size.value();
    if (m == 0 || m >= l) return OkStatus();
    auto planned = ConsistencyProof(TreeSize(m), TreeSize(l), [this](NodeId id) {
      wanted_.emplace_back(id, Sha256Digest{});
      wanted_levels_ |= uint64_t{1} << id.level;
      return Result<Sha256Digest>(Sha256Digest{});
    });
    if (!planned.ok()) return planned.error().WithContext("planning the consistency proof");
    return OkStatus();
  }

  Status Stream() {
    EntryBatch batch;
    uint64_t position = 0;
    uint64_t singly_until = 0;  // after a failed batch: entries before this are read one by one
    while (position < size_) {
      const uint64_t want =
          position < singly_until ? 1 : std::min(options_.batch_size, size_ - position);
      Status status = reader_.Read(position, want, batch);
      if (!status.ok()) {
        if (want > 1) {
          // The source fails somewhere in this batch (a damaged line, a bundle it cannot
          // fetch): read it again one entry at a time, so that the entries before the
          // unreadable one are still checked (an earlier disagreement is the first bad index),
          // and the error names the entry it is about.
          singly_until = position + want;
          continue;
        }
        return status.error().WithContext("reading entry " + Str(position));
      }
      const uint64_t got = std::min<uint64_t>(batch.size(), want);
      for (uint64_t k = 0; k < got; ++k) {
        SIGNET_TRY(CheckEntry(position, batch[k]));
        if (failed()) return OkStatus();
        if (!has_checkpoint_ || last_checkpoint_entry_ != position) last_plain_entry_ = position;
        ++position;
      }
      // Fewer than asked for is a batch cut at its byte bound; none, the end of the source
      // (judged in FinalChecks when it comes before the size).
      if (got == 0) break;
    }
    return OkStatus();
  }

  Status CheckEntry(uint64_t i, std::string_view data) {
    auto fields = ParseEntryFields(data);
    if (!fields.ok()) {
      Fail(FailureKind::kMalformedEntry, i,
           "entry " + Str(i) + " is not a valid log entry: " + fields.error().message());
      return OkStatus();
    }
    if (fields->index.value() != i) {
      const uint64_t says = fields->index.value();
      Fail(FailureKind::kIndexMismatch, i,
           "the entry at position " + Str(i) + " says it is entry " + Str(says) +
               (says > i ? ": entries " + Str(i) + (says - i > 1 ? ".." + Str(says - 1) : "") +
                               " are missing (deleted) or entries were reordered"
                         : ": entries were inserted, repeated or reordered"));
      return OkStatus();
    }
    if (i - cache_.base() >= kMaxEntriesBetweenCheckpoints) {
      return ResourceExhausted("more than " + Str(kMaxEntriesBetweenCheckpoints) +
                               " entries after the last verified checkpoint (size " +
                               Str(cache_.base()) + "); cannot verify without unbounded memory");
    }
    SIGNET_TRY(range_.Append(HashLeaf(AsBytes(data)), sink_));
    ++report_.entries_checked;
    report_.bytes_checked += data.size();

    const uint64_t size = range_.size().value();
    if (trusted_ && size == trusted_->size.value()) CheckTrustedRoot();
    if (failed()) return OkStatus();
    if (latest_ && size == latest_->size.value()) SIGNET_TRY(CheckLatestRoot());
    if (failed()) return OkStatus();

    SIGNET_ASSIGN_OR_RETURN(const StoredCheckpoint* row, PeekStored());
    if (row != nullptr && row->entry_index < i) {
      Fail(FailureKind::kStoredCheckpointMismatch, row->entry_index,
           "the stored checkpoint of size " + Str(row->size) + " says entry " +
               Str(row->entry_index) +
               " records it, but that entry is not a checkpoint of that "
               "size: the stored checkpoint list was altered");
      return OkStatus();
    }
    if (fields->action != kCheckpointAction) {
      if (row != nullptr && row->entry_index == i) {
        Fail(FailureKind::kStoredCheckpointMismatch, i,
             "the stored checkpoint of size " + Str(row->size) + " says entry " + Str(i) +
                 " records it, but entry " + Str(i) + " is a \"" + fields->action +
                 "\" entry: the entry or the stored checkpoint was replaced");
      }
      return OkStatus();
    }
    return CheckCheckpointEntry(i, *fields, row);
  }

  Status CheckCheckpointEntry(uint64_t i, const EntryFields& fields, const StoredCheckpoint* row) {
    const std::string& note = *fields.checkpoint_note;
    auto opened = OpenCheckpoint(note, origin_, options_.trusted_keys);
    if (!opened.ok()) {
      Fail(FailureKind::kBadCheckpoint, i,
           "the checkpoint in entry " + Str(i) +
               " does not verify with the trusted key(s): " + opened.error().message());
      return OkStatus();
    }
    const Checkpoint& cp = opened->checkpoint;
    const uint64_t n = cp.size.value();
    // The size and root the entry states beside its note (what a reader of the entry sees) must
    // be the ones the note signs.
    if ((fields.checkpoint_size && *fields.checkpoint_size != Str(n)) ||
        (fields.checkpoint_root && *fields.checkpoint_root != RootText(cp.root))) {
      Fail(FailureKind::kBadCheckpoint, i,
           "entry " + Str(i) + " states size " + fields.checkpoint_size.value_or("(none)") +
               " and root " + fields.checkpoint_root.value_or("(none)") +
               ", but the checkpoint it records signs size " + Str(n) + " and root " +
               RootText(cp.root));
      return OkStatus();
    }
    if (has_checkpoint_ && n <= last_checkpoint_size_) {
      Fail(FailureKind::kCheckpointOrder, i,
           "the checkpoint in entry " + Str(i) + " signs size " + Str(n) +
               ", not more than the previous checkpoint (size " + Str(last_checkpoint_size_) +
               " at entry " + Str(last_checkpoint_entry_) +
               "): checkpoints were replaced or "
               "reordered");
      return OkStatus();
    }
    if (n > i) {
      Fail(FailureKind::kCheckpointOrder, i,
           "the checkpoint in entry " + Str(i) + " signs size " + Str(n) +
               ", but a checkpoint can only cover entries recorded before it: the entry was "
               "moved or replaced");
      return OkStatus();
    }
    SIGNET_ASSIGN_OR_RETURN(Sha256Digest root, cache_.RootAt(n));
    if (root != cp.root) {
      SIGNET_TRY(Localize(cache_.base(), n, i,
                          "the checkpoint in entry " + Str(i) + " signs root " + RootText(cp.root) +
                              " for size " + Str(n) + ", but the entries give " + RootText(root)));
      return OkStatus();
    }
    // The entry agrees with the tree; now the stored row, if the list is being compared. A
    // checkpoint newer than the latest one read before the entries is matched at the end
    // (CheckNewerStoredRows), against a fresh read of the list.
    if (options_.stored_checkpoints && n > stored_bound_) {
      newer_checkpoints_.push_back(StoredCheckpoint{n, cp.root, note, i});
    } else if (options_.stored_checkpoints) {
      if (row == nullptr || row->entry_index != i) {
        Fail(FailureKind::kStoredCheckpointMismatch, i,
             "the checkpoint in entry " + Str(i) + " (size " + Str(n) +
                 ") has no row in the stored checkpoint list: the row was deleted or changed");
        return OkStatus();
      }
      std::string differs;
      if (row->size != n)
        differs = "its size is " + Str(row->size) + ", not " + Str(n);
      else if (row->root != cp.root)
        differs = "its root is " + RootText(row->root);
      else if (row->note != note)
        differs = "its signed note differs";
      if (!differs.empty()) {
        Fail(FailureKind::kStoredCheckpointMismatch, i,
             "the stored checkpoint row for entry " + Str(i) +
                 " does not match the checkpoint "
                 "that entry records: " +
                 differs + "; the stored checkpoint was replaced");
        return OkStatus();
      }
      PopStored();
    }
    has_checkpoint_ = true;
    last_checkpoint_size_ = n;
    last_checkpoint_entry_ = i;
    signed_size_ = std::max(signed_size_, n);
    ++report_.checkpoints_checked;
    return cache_.Rebase(n);
  }

  void CheckTrustedRoot() {
    report_.trusted_checked = true;
    const Sha256Digest root = range_.Root();
    if (root == trusted_->root) return;
    const uint64_t m = trusted_->size.value();
    Fail(FailureKind::kTrustedCheckpointMismatch, 0,
         "the trusted checkpoint signs root " + RootText(trusted_->root) + " for size " + Str(m) +
             ", but this log's first " + Str(m) + " entries give " + RootText(root) +
             ": the log was rewritten, or forked, somewhere in entries 0.." + Str(m - 1) +
             " (a saved checkpoint alone cannot say where)",
         m);
  }

  Status CheckLatestRoot() {
    report_.latest_checked = true;
    const Sha256Digest root = range_.Root();
    const uint64_t l = latest_->size.value();
    if (root == latest_->root) {
      signed_size_ = std::max(signed_size_, l);
      return OkStatus();
    }
    // The entry that records the latest checkpoint comes after the entries it covers, so it
    // cannot be told apart here: only the range is named.
    return Localize(cache_.base(), l, std::nullopt,
                    "the log's latest checkpoint signs root " + RootText(latest_->root) +
                        " for size " + Str(l) + ", but the entries give " + RootText(root));
  }

  // A signed root at size `end` disagrees with the entries, which agreed with the checkpoint at
  // size `begin`: find the first entry in [begin, end) (or the checkpoint entry `at` itself) that
  // changed, or name the range.
  Status Localize(uint64_t begin, uint64_t end, std::optional<uint64_t> at, std::string what) {
    // The stored checkpoint of this size still matches the entries: the entry that records the
    // checkpoint is what was replaced.
    if (at && options_.stored_checkpoints && end <= stored_bound_) {
      SIGNET_ASSIGN_OR_RETURN(const StoredCheckpoint* row, PeekStored());
      if (row != nullptr && row->entry_index == *at && row->size == end) {
        auto stored = OpenCheckpoint(row->note, origin_, options_.trusted_keys);
        SIGNET_ASSIGN_OR_RETURN(Sha256Digest root, cache_.RootAt(end));
        if (stored.ok() && stored->checkpoint.root == root) {
          Fail(FailureKind::kRootMismatch, *at,
               what + ". The stored checkpoint of size " + Str(end) +
                   " matches the entries, so entry " + Str(*at) + " was replaced");
          return OkStatus();
        }
      }
    }
    std::string tiles_note;
    if (options_.level0_tiles) {
      auto changed = FirstChangedLeaf(begin, end);
      if (changed.ok() && !*changed && at && *at >= end) {
        // The checkpoint entry itself, if a tile covers it yet (only a later checkpoint's tree
        // does; no tile is no answer, not an error).
        auto own = FirstChangedLeaf(*at, *at + 1);
        if (own.ok()) changed = std::move(own);
      }
      if (!changed.ok()) {
        tiles_note = " (the hash tiles could not say which: " + changed.error().message() + ")";
      } else if (*changed) {
        const uint64_t k = **changed;
        Fail(FailureKind::kChangedEntry, k,
             what + ". Entry " + Str(k) +
                 " was changed: its leaf hash differs from the stored "
                 "hash tile");
        return OkStatus();
      } else {
        tiles_note =
            " (the hash tiles agree with the entries, so they were rewritten too, or the "
            "checkpoint was signed over other entries)";
      }
    }
    Fail(FailureKind::kRootMismatch, begin,
         what + ". An entry in " + Str(begin) + ".." + Str(end - 1) + " was changed" +
             (at ? ", or the checkpoint entry " + Str(*at) + " was replaced" : "") + tiles_note,
         end);
    return OkStatus();
  }

  // Re-reads entries [begin, end) and compares their leaf hashes with the level-0 tiles; the first
  // index that differs, or nullopt.
  Result<std::optional<uint64_t>> FirstChangedLeaf(uint64_t begin, uint64_t end) {
    EntryBatch batch;
    uint64_t position = begin;
    Bytes tile;
    uint64_t tile_index = std::numeric_limits<uint64_t>::max();
    while (position < end) {
      const uint64_t want = std::min(options_.batch_size, end - position);
      SIGNET_TRY(reader_.Read(position, want, batch));
      if (batch.empty()) return DataLoss("entries ended while being re-read");
      const uint64_t got = std::min<uint64_t>(batch.size(), want);
      for (uint64_t k = 0; k < got; ++k, ++position) {
        const uint64_t t = position / kTileWidth;
        if (t != tile_index) {
          const uint64_t width = std::min<uint64_t>(kTileWidth, end - t * kTileWidth);
          TileRef ref;
          ref.level = 0;
          ref.index = t;
          ref.width = static_cast<int>(width);
          SIGNET_ASSIGN_OR_RETURN(tile, options_.level0_tiles(ref));
          if (tile.size() != width * kSha256DigestSize) {
            return DataLoss("tile " + TilePath(ref) + " has " + Str(tile.size()) + " bytes");
          }
          tile_index = t;
        }
        const Sha256Digest leaf = HashLeaf(AsBytes(batch[k]));
        const size_t offset = (position % kTileWidth) * kSha256DigestSize;
        if (!std::equal(leaf.begin(), leaf.end(),
                        tile.begin() + static_cast<std::ptrdiff_t>(offset))) {
          return std::optional<uint64_t>(position);
        }
      }
    }
    return std::optional<uint64_t>();
  }

  // The next stored checkpoint not yet matched (size <= stored_bound_), or nullptr.
  Result<const StoredCheckpoint*> PeekStored() {
    if (!options_.stored_checkpoints) return static_cast<const StoredCheckpoint*>(nullptr);
    if (stored_pos_ >= stored_page_.size() && !stored_done_) {
      auto page = options_.stored_checkpoints(stored_after_, 256);
      if (!page.ok()) return page.error().WithContext("reading the stored checkpoints");
      stored_page_ = std::move(*page);
      stored_pos_ = 0;
      if (stored_page_.empty()) stored_done_ = true;
      for (const StoredCheckpoint& row : stored_page_) {
        if (static_cast<int64_t>(row.size) <= stored_after_) {
          return DataLoss("the stored checkpoint list is not ordered by size (size " +
                          Str(row.size) + " after " + std::to_string(stored_after_) + ")");
        }
        stored_after_ = static_cast<int64_t>(row.size);
      }
    }
    if (stored_pos_ >= stored_page_.size()) return static_cast<const StoredCheckpoint*>(nullptr);
    const StoredCheckpoint* row = &stored_page_[stored_pos_];
    if (row->size > stored_bound_) {
      stored_done_ = true;
      stored_page_.clear();
      stored_pos_ = 0;
      return static_cast<const StoredCheckpoint*>(nullptr);
    }
    return row;
  }

  void PopStored() { ++stored_pos_; }

  Status FinalChecks() {
    const uint64_t held = range_.size().value();
    if (held < size_) {
      Fail(FailureKind::kTruncated, held,
           "the log says it holds " + Str(size_) + " entries, but entry " + Str(held) +
               " cannot be read: entries from " + Str(held) + " on are missing");
      return OkStatus();
    }
    if (latest_ && latest_->size.value() > held) {
      Fail(FailureKind::kTruncated, held,
           "the log's latest checkpoint signs " + Str(latest_->size.value()) +
               " entries, but the log holds only " + Str(held) + ": entries " + Str(held) + ".." +
               Str(latest_->size.value() - 1) + " are missing (the tail was truncated)");
      return OkStatus();
    }
    // The log publishes a checkpoint older than the trusted one. When the log holds nothing past
    // that checkpoint (a server's log is read up to its latest checkpoint), the missing entries
    // are the rollback itself, so it is named as one rather than as a truncated tail.
    const bool rolled_back = trusted_ && latest_ && latest_->size < trusted_->size;
    if (rolled_back && held <= latest_->size.value()) return FailRollback();
    if (trusted_ && trusted_->size.value() > held) {
      Fail(FailureKind::kTruncated, held,
           "the trusted checkpoint signs " + Str(trusted_->size.value()) +
               " entries, but the log holds only " + Str(held) + ": entries " + Str(held) + ".." +
               Str(trusted_->size.value() - 1) + " are missing (the tail was truncated)");
      return OkStatus();
    }
    SIGNET_ASSIGN_OR_RETURN(const StoredCheckpoint* row, PeekStored());
    if (row != nullptr) {
      Fail(FailureKind::kTruncated, held,
           "the stored checkpoint of size " + Str(row->size) + " is recorded at entry " +
               Str(row->entry_index) + ", but the log ends at " + Str(held) + ": entries from " +
               Str(held) + " on are missing (the tail was truncated)");
      return OkStatus();
    }
    // The log holds everything the trusted checkpoint signs, but publishes an older checkpoint.
    if (rolled_back) return FailRollback();
    SIGNET_TRY(CheckNewerStoredRows(held));
    if (failed()) return OkStatus();
    if (trusted_ && latest_) SIGNET_TRY(CheckConsistencyProof());
    return OkStatus();
  }

  Status FailRollback() {
    Fail(FailureKind::kRollback, latest_->size.value(),
         "the log's latest checkpoint signs " + Str(latest_->size.value()) +
             " entries, fewer than the trusted checkpoint's " + Str(trusted_->size.value()) +
             ": the log was rolled back");
    return OkStatus();
  }

  // The checkpoint entries read that sign more than the latest checkpoint (which was read before
  // the entries, as the bound of the stored list) must each have their row now: an entry and its
  // row are committed in one transaction and rows are never removed. A missing row means the
  // newest stored checkpoints were deleted, so the log's latest checkpoint (the newest row) shows
  // an older state than its own entries. Rows read here that sign fewer than `held` entries must
  // match those entries too; rows recorded at or after `held` are newer than what was read and
  // are left alone.
  Status CheckNewerStoredRows(uint64_t held) {
    if (!options_.stored_checkpoints || stored_bound_ == std::numeric_limits<uint64_t>::max()) {
      return OkStatus();
    }
    auto missing = [this](const StoredCheckpoint& entry) {
      Fail(FailureKind::kStoredCheckpointMismatch, entry.entry_index,
           "the checkpoint in entry " + Str(entry.entry_index) + " (size " + Str(entry.size) +
               ") has no row in the stored checkpoint list, whose newest row signs only " +
               Str(stored_bound_) +
               " entries: the newest stored checkpoints were deleted, and the log's latest "
               "checkpoint shows an older state than its entries");
    };
    size_t next = 0;
    int64_t after = static_cast<int64_t>(stored_bound_);
    while (true) {
      auto page = options_.stored_checkpoints(after, 256);
      if (!page.ok()) return page.error().WithContext("reading the stored checkpoints again");
      if (page->empty()) break;
      for (const StoredCheckpoint& row : *page) {
        if (static_cast<int64_t>(row.size) <= after) {
          return DataLoss("the stored checkpoint list is not ordered by size (size " +
                          Str(row.size) + " after " + std::to_string(after) + ")");
        }
        after = static_cast<int64_t>(row.size);
        if (row.size >= held) break;
        // Published after the log's size was read (its entry was not read): newer, not ours.
        if (row.entry_index >= held) continue;
        if (next < newer_checkpoints_.size() && newer_checkpoints_[next].size < row.size) {
          missing(newer_checkpoints_[next]);
          return OkStatus();
        }
        if (next >= newer_checkpoints_.size() || newer_checkpoints_[next].size != row.size ||
            newer_checkpoints_[next].entry_index != row.entry_index ||
            newer_checkpoints_[next].root != row.root || newer_checkpoints_[next].note != row.note) {
          Fail(FailureKind::kStoredCheckpointMismatch, row.entry_index,
               "the stored checkpoint of size " + Str(row.size) + " says entry " +
                   Str(row.entry_index) +
                   " records it, but that entry does not record this checkpoint: the stored "
                   "checkpoint list was altered");
          return OkStatus();
        }
        ++next;
      }
      if (after >= static_cast<int64_t>(held)) break;
    }
    if (next < newer_checkpoints_.size()) missing(newer_checkpoints_[next]);
    return OkStatus();
  }

  Status CheckConsistencyProof() {
    const uint64_t m = trusted_->size.value();
    const uint64_t l = latest_->size.value();
    if (m == 0 || m >= l) {
      // Nothing to prove from the empty tree; equal sizes were compared root to root.
      report_.consistency_proof_checked = true;
      return OkStatus();
    }
    auto proof = ConsistencyProof(TreeSize(m), TreeSize(l), [this](NodeId id) {
      for (const auto& [wanted, hash] : wanted_) {
        if (wanted == id) return Result<Sha256Digest>(hash);
      }
      return Result<Sha256Digest>(InternalError("proof node was not captured"));
    });
    if (!proof.ok()) return proof.error().WithContext("building the consistency proof");
    Status verified =
        VerifyConsistency(TreeSize(m), TreeSize(l), *proof, trusted_->root, latest_->root);
    if (!verified.ok()) {
      Fail(FailureKind::kTrustedCheckpointMismatch, 0,
           "the consistency proof from the trusted checkpoint (size " + Str(m) +
               ") to the latest (size " + Str(l) +
               ") does not verify: " + verified.error().message(),
           m);
      return OkStatus();
    }
    report_.consistency_proof_checked = true;
    return OkStatus();
  }

  LogReader& reader_;
  const VerifyOptions& options_;
  std::string origin_;
  std::optional<Checkpoint> trusted_;
  std::optional<Checkpoint> latest_;
  uint64_t size_ = 0;  // what the reader says the log holds

  CompactRange range_;
  NodeCache cache_;
  CompactRange::NodeSink sink_;
  std::vector<std::pair<NodeId, Sha256Digest>> wanted_;  // consistency proof nodes
  uint64_t wanted_levels_ = 0;                           // bit l: a wanted node on level l

  bool has_checkpoint_ = false;
  uint64_t last_checkpoint_size_ = 0;
  uint64_t last_checkpoint_entry_ = 0;
  uint64_t signed_size_ = 0;
  // The last entry that is not a verified checkpoint's record (require_signed).
  std::optional<uint64_t> last_plain_entry_;

  uint64_t stored_bound_ = 0;
  std::vector<StoredCheckpoint> stored_page_;
  size_t stored_pos_ = 0;
  int64_t stored_after_ = -1;  // the largest size read so far (-1: none)
  bool stored_done_ = false;
  // Checkpoint entries newer than stored_bound_, in order, for CheckNewerStoredRows.
  std::vector<StoredCheckpoint> newer_checkpoints_;
  // The latest checkpoint did not open: reported unless an earlier index fails.
  std::optional<VerifyFailure> bad_latest_;

  VerifyReport report_;
};

}  // namespace

Status MemoryLogReader::Read(uint64_t begin, uint64_t count, EntryBatch& out) {
  out.Clear();
  for (uint64_t i = begin; i < entries_.size() && i - begin < count && !out.full(); ++i) {
    out.Add(entries_[i]);
  }
  return OkStatus();
}

std::string_view FailureKindName(FailureKind kind) {
  switch (kind) {
    case FailureKind::kMalformedEntry:
      return "malformed_entry";
    case FailureKind::kIndexMismatch:
      return "index_mismatch";
    case FailureKind::kBadCheckpoint:
      return "bad_checkpoint";
    case FailureKind::kCheckpointOrder:
      return "checkpoint_order";
    case FailureKind::kRootMismatch:
      return "root_mismatch";
    case FailureKind::kChangedEntry:
      return "changed_entry";
    case FailureKind::kStoredCheckpointMismatch:
      return "stored_checkpoint_mismatch";
    case FailureKind::kTruncated:
      return "truncated";
    case FailureKind::kTrustedCheckpointMismatch:
      return "trusted_checkpoint_mismatch";
    case FailureKind::kRollback:
      return "rollback";
    case FailureKind::kUnsigned:
      return "unsigned";
  }
  return "unknown";
}

Result<VerifyReport> Verify(LogReader& reader, const VerifyOptions& options) {
  Verification verification(reader, options);
  return verification.Run();
}

}  // namespace signet::audit
