#include "audit/integrator.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <span>
#include <utility>

#include "audit/entry.h"
#include "common/algorithms.h"
#include "common/encoding.h"
#include "common/fs.h"

namespace signet::audit {
namespace {

// Entries read per store query.
constexpr int64_t kReadChunk = 1024;

// The DER SubjectPublicKeyInfo of an Ed25519 key is this fixed prefix and the 32-byte key
// (RFC 8410 §4: AlgorithmIdentifier 1.3.101.112 without parameters, BIT STRING of 33 bytes).
constexpr std::array<uint8_t, 12> kEd25519SpkiPrefix = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
                                                        0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};

std::string Str(int64_t v) { return std::to_string(v); }

Result<Bytes> Ed25519KeyFromSpki(ByteView spki) {
  if (spki.size() != kEd25519SpkiPrefix.size() + 32 ||
      !std::equal(kEd25519SpkiPrefix.begin(), kEd25519SpkiPrefix.end(), spki.begin())) {
    return InvalidArgument("not the SubjectPublicKeyInfo of an Ed25519 key (" +
                           Str(static_cast<int64_t>(spki.size())) + " bytes)");
  }
  return Bytes(spki.begin() + kEd25519SpkiPrefix.size(), spki.end());
}

Bytes Concat(std::span<const Sha256Digest> hashes) {
  Bytes out;
  out.reserve(hashes.size() * kSha256DigestSize);
  for (const Sha256Digest& h : hashes) out.insert(out.end(), h.begin(), h.end());
  return out;
}

std::string DescribeCheckpoint(const store::LogCheckpointRow& row) {
  return "checkpoint of size " + Str(row.size);
}

// A stored tile, as TileNodeHashFn reads it. Tiles for every checkpoint were stored with it, so
// a missing one is lost data.
TileFetchFn StoredTiles(store::Store& store) {
  return [&store](const TileRef& tile) -> Result<Bytes> {
    SIGNET_ASSIGN_OR_RETURN(
        std::optional<Bytes> bytes,
        store.GetLogTile(tile.level, static_cast<int64_t>(tile.index), tile.width));
    if (!bytes) {
      return DataLoss("tile " + TilePath(tile) +
                      " is missing from the database although a checkpoint covers it");
    }
    return std::move(*bytes);
  };
}

Result<hsm::HsmKeyId> StoredKeyId(const store::LogKeyRecord& record) {
  Result<Bytes> id = HexDecode(record.hsm_key_id);
  if (!id.ok() || id->empty()) {
    return DataLoss("the stored checkpoint key id '" + record.hsm_key_id + "' is not hex");
  }
  return hsm::HsmKeyId{std::move(*id)};
}

// The stored key of an existing log, checked against `origin` and the HSM.
Result<store::LogKeyRecord> CheckStoredKey(hsm::KeyStore& key_store, store::LogKeyRecord record,
                                           std::string_view origin) {
  if (record.origin != origin) {
    return FailedPrecondition("the audit log's checkpoint key belongs to origin '" + record.origin +
                              "', not '" + std::string(origin) +
                              "'; a log keeps its origin for ever: configure '" + record.origin +
                              "' again");
  }
  SIGNET_ASSIGN_OR_RETURN(hsm::HsmKeyId id, StoredKeyId(record));
  Result<Bytes> spki = key_store.PublicKey(id);
  if (!spki.ok()) {
    if (spki.error().code() == ErrorCode::kNotFound) {
      return DataLoss("the audit log's checkpoint key " + record.hsm_key_id + " (token serial '" +
                      record.token_serial +
                      "') is no longer in the HSM: " + spki.error().message() +
                      "; restore the token from its backup, checkpoints cannot be signed");
    }
    return spki.error().WithContext("cannot read the audit log's checkpoint key");
  }
  Result<Bytes> key = Ed25519KeyFromSpki(*spki);
  if (!key.ok() || *key != record.public_key) {
    return DataLoss("the HSM key " + record.hsm_key_id +
                    " is not the audit log's checkpoint key stored in the database (its public "
                    "key differs); the token or the database was replaced");
  }
  return record;
}

}  // namespace

Result<store::LogKeyRecord> EnsureLogKey(store::Store& store, hsm::KeyStore& key_store,
                                         std::string_view origin, const Clock& clock) {
  if (Status name = CheckKeyName(origin); !name.ok()) {
    return name.error().WithContext("the audit log origin is not a valid key name");
  }
  SIGNET_ASSIGN_OR_RETURN(std::optional<store::LogKeyRecord> stored, store.GetLogKey());
  if (stored) return CheckStoredKey(key_store, std::move(*stored), origin);

  Result<hsm::GeneratedKey> generated = key_store.GenerateKey(KeyAlgorithm::kEd25519, kLogKeyLabel);
  if (!generated.ok()) {
    return generated.error().WithContext("cannot generate the audit log's checkpoint key");
  }
  // From here on, a failure must not leave an unused key behind in the token.
  auto discard = [&](Error error) -> Error {
    (void)key_store.DestroyKey(generated->id);
    return error;
  };
  Result<Bytes> public_key = Ed25519KeyFromSpki(generated->public_key_spki);
  if (!public_key.ok()) {
    return discard(InternalError("the HSM returned an unusable Ed25519 public key: " +
                                 public_key.error().message()));
  }
  Result<hsm::TokenDescription> token = key_store.DescribeToken();
  if (!token.ok()) return discard(token.error().WithContext("cannot describe the HSM token"));
  store::LogKeyRecord record{.origin = std::string(origin),
                             .token_serial = token->serial,
                             .hsm_key_id = HexEncode(generated->id.bytes),
                             .public_key = std::move(*public_key),
                             .created_at = clock.Now()};
  Status inserted = store.InsertLogKey(record);
  if (inserted.ok()) return record;
  Error error = discard(std::move(inserted).error());
  if (error.code() != ErrorCode::kAlreadyExists) {
    return error.WithContext("cannot store the audit log's checkpoint key");
  }
  // Another process created the log's key between our read and our insert: use that one.
  SIGNET_ASSIGN_OR_RETURN(stored, store.GetLogKey());
  if (!stored) return InternalError("the audit log's checkpoint key exists and does not");
  return CheckStoredKey(key_store, std::move(*stored), origin);
}

CheckpointWitness FileCheckpointWitness(std::string path) {
  CheckpointWitness witness;
  witness.where = path;
  witness.load = [path]() -> Result<std::optional<std::string>> {
    Result<Bytes> bytes = fs::ReadFile(path, 64 * 1024);
    if (!bytes.ok()) {
      if (bytes.error().code() == ErrorCode::kNotFound) return std::optional<std::string>();
      return bytes.error();
    }
    return std::optional<std::string>(std::string(bytes->begin(), bytes->end()));
  };
  witness.save = [path](std::string_view note) -> Status {
    return fs::WriteFileAtomic(path, AsBytes(note));
  };
  return witness;
}

// ---- Integrator ----------------------------------------------------------------------------

Result<std::unique_ptr<Integrator>> Integrator::Create(store::Store& store,
                                                       hsm::KeyStore& key_store, const Clock& clock,
                                                       IntegratorOptions options) {
  if (options.interval <= std::chrono::milliseconds(0) || options.max_pending < 1 ||
      options.max_batch < 1) {
    return InvalidArgument(
        "the audit integrator needs a positive interval, max_pending and "
        "max_batch");
  }
  if (options.max_batch > kMaxBatchLimit) {
    return InvalidArgument("the audit integrator's max_batch may be at most " +
                           std::to_string(kMaxBatchLimit) + " (32 bytes of memory per entry)");
  }
  if (options.max_unsigned < options.max_pending || options.max_unsigned > kMaxUnsignedLimit) {
    return InvalidArgument("the audit integrator's max_unsigned must be between max_pending and " +
                           std::to_string(kMaxUnsignedLimit));
  }
  if (options.stuck_after == std::chrono::milliseconds(0)) {
    // A round takes milliseconds; a minute (or several intervals, when they are long) is stuck.
    options.stuck_after =
        std::max<std::chrono::milliseconds>(std::chrono::minutes(1), 4 * options.interval);
  }
  if (options.stuck_after <= options.interval) {
    return InvalidArgument("the audit integrator's stuck_after must be longer than its interval");
  }
  if (!options.render_checkpoint_entry) {
    return InvalidArgument("the audit integrator needs a renderer for checkpoint entries");
  }
  SIGNET_ASSIGN_OR_RETURN(store::LogKeyRecord record,
                          EnsureLogKey(store, key_store, options.origin, clock));
  SIGNET_ASSIGN_OR_RETURN(hsm::HsmKeyId key_id, StoredKeyId(record));
  SIGNET_ASSIGN_OR_RETURN(VerifierKey verifier_key,
                          NewEd25519VerifierKey(record.origin, record.public_key));
  std::unique_ptr<Integrator> integrator(new Integrator(store, key_store, clock, std::move(options),
                                                        std::move(record), std::move(key_id),
                                                        std::move(verifier_key)));
  SIGNET_ASSIGN_OR_RETURN(integrator->state_, integrator->LoadState());
  SIGNET_TRY(integrator->CheckWitness());
  integrator->integrated_size_ = static_cast<int64_t>(integrator->state_.range.size().value());
  integrator->stats_.integrated_size = integrator->integrated_size_;
  return integrator;
}

Integrator::Integrator(store::Store& store, hsm::KeyStore& key_store, const Clock& clock,
                       IntegratorOptions options, store::LogKeyRecord log_key, hsm::HsmKeyId key_id,
                       VerifierKey verifier_key)
    : store_(store),
      key_store_(key_store),
      clock_(clock),
      options_(std::move(options)),
      log_key_(std::move(log_key)),
      key_id_(std::move(key_id)),
      verifier_key_(std::move(verifier_key)) {}

Integrator::~Integrator() { Stop(); }

Result<Integrator::TreeState> Integrator::LoadState() {
  TreeState state;
  SIGNET_ASSIGN_OR_RETURN(state.checkpoint, store_.LatestLogCheckpoint());
  if (!state.checkpoint) return state;
  const store::LogCheckpointRow& row = *state.checkpoint;
  const std::string what = "the newest " + DescribeCheckpoint(row);

  // The row must say what the signed note says, and the note must be ours.
  const VerifierKey trusted[] = {verifier_key_};
  Result<VerifiedCheckpoint> opened = OpenCheckpoint(row.note, options_.origin, trusted);
  if (!opened.ok()) {
    return DataLoss(what + " in the database does not verify with the log key " +
                    FormatVerifierKey(verifier_key_) + ": " + opened.error().message());
  }
  const Checkpoint& signed_checkpoint = opened->checkpoint;
  if (row.size < 0 || signed_checkpoint.size.value() != static_cast<uint64_t>(row.size) ||
      !std::equal(row.root.begin(), row.root.end(), signed_checkpoint.root.begin(),
                  signed_checkpoint.root.end())) {
    return DataLoss(what + " in the database names another size or root than its signed note");
  }
  SIGNET_ASSIGN_OR_RETURN(int64_t log_size, store_.LogSize());
  if (log_size < row.size) {
    return DataLoss(what + " covers more entries than the log holds (" + Str(log_size) +
                    "): entries were removed");
  }
  // Its own entry must still be there, recording this note: were it gone, the next append would
  // take its index and only a full verify would notice.
  if (row.entry_index < row.size || row.entry_index >= log_size) {
    return DataLoss(what + " says its entry is at index " + Str(row.entry_index) +
                    ", which the log (" + Str(log_size) + " entries) does not hold");
  }
  SIGNET_ASSIGN_OR_RETURN(std::vector<store::LogEntryRow> own,
                          store_.ReadLogEntries(row.entry_index, 1));
  Result<EntryFields> fields = own.size() == 1 && own[0].index == row.entry_index
                                   ? ParseEntryFields(own[0].data)
                                   : Result<EntryFields>(NotFound("missing"));
  if (!fields.ok() || fields->action != kCheckpointAction || fields->checkpoint_note != row.note) {
    return DataLoss("log entry " + Str(row.entry_index) + " does not record " + what +
                    ": entries were removed or replaced");
  }

  // The partial tile at the right edge of each level, which the next round grows.
  const TreeSize size(static_cast<uint64_t>(row.size));
  TileFetchFn fetch = StoredTiles(store_);
  for (int level = 0; level <= kMaxTileLevel; ++level) {
    const uint64_t count = size.value() >> (kTileHeight * level);
    if (count % kTileWidth == 0) continue;
    const TileRef tile{false, level, count / kTileWidth, static_cast<int>(count % kTileWidth)};
    SIGNET_ASSIGN_OR_RETURN(Bytes bytes, fetch(tile));
    Result<std::vector<Sha256Digest>> hashes = SplitDigests(bytes, kTileWidth);
    if (!hashes.ok() || hashes->size() != static_cast<size_t>(tile.width)) {
      return DataLoss("tile " + TilePath(tile) + " in the database has the wrong length");
    }
    state.edges[static_cast<size_t>(level)] = std::move(*hashes);
  }
  // The compact range from the tiles; its root must be the signed one.
  SIGNET_ASSIGN_OR_RETURN(state.range,
                          CompactRange::FromNodes(size, TileNodeHashFn(size, std::move(fetch))));
  if (state.range.Root() != signed_checkpoint.root) {
    return DataLoss("the tiles in the database do not reproduce the root of " + what +
                    ": tiles or checkpoints were altered");
  }
  return state;
}

namespace {

Status Keep(const CheckpointWitness& witness, std::string_view note) {
  Status saved = witness.save(note);
  if (!saved.ok()) {
    return saved.error().WithContext("cannot keep the newest checkpoint in " + witness.where);
  }
  return OkStatus();
}

}  // namespace

Status Integrator::CheckWitness() {
  if (!options_.witness) return OkStatus();
  const CheckpointWitness& witness = *options_.witness;
  const std::optional<store::LogCheckpointRow>& latest = state_.checkpoint;
  Result<std::optional<std::string>> loaded = witness.load();
  if (!loaded.ok()) {
    return loaded.error().WithContext("cannot read the last signed checkpoint from " +
                                      witness.where);
  }
  if (!*loaded) {
    if (!latest) return OkStatus();
    return Keep(witness, latest->note);
  }
  const VerifierKey trusted[] = {verifier_key_};
  Result<VerifiedCheckpoint> opened = OpenCheckpoint(**loaded, options_.origin, trusted);
  if (!opened.ok()) {
    return DataLoss(witness.where + " does not hold a checkpoint of this log signed with " +
                    FormatVerifierKey(verifier_key_) + ": " + opened.error().message());
  }
  const Checkpoint& kept = opened->checkpoint;
  const auto kept_size = static_cast<int64_t>(kept.size.value());
  const std::string signed_before =
      "this service signed the log at size " + Str(kept_size) + " (" + witness.where + ")";
  const std::string refusal =
      ". Signing on would fork the log: two trees of one size, which anyone holding the "
      "earlier checkpoint can prove. Restore the database with all its entries, or start a new "
      "log (a new data folder and origin)";
  if (!latest) {
    return DataLoss(signed_before +
                    ", but the database holds no checkpoint: it was replaced or "
                    "emptied" +
                    refusal);
  }
  if (latest->size < kept_size) {
    return DataLoss(signed_before + ", but the database's newest " + DescribeCheckpoint(*latest) +
                    ": it was rolled back (an older backup "
                    "restored, or its tail removed)" +
                    refusal);
  }
  SIGNET_ASSIGN_OR_RETURN(Sha256Digest latest_root,
                          ToSha256Digest(latest->root, "checkpoint root"));
  if (latest->size == kept_size) {
    if (latest_root != kept.root) {
      return DataLoss(signed_before + ", but the database's " + DescribeCheckpoint(*latest) +
                      " has another root" + refusal);
    }
    return OkStatus();
  }
  // Newer in the database (published, then stopped before the witness was written, or by another
  // node): it must extend the kept one.
  const TreeSize old_tree(kept.size.value());
  const TreeSize new_tree(static_cast<uint64_t>(latest->size));
  Result<std::vector<Sha256Digest>> proof =
      ConsistencyProof(old_tree, new_tree, TileNodeHashFn(new_tree, StoredTiles(store_)));
  Status consistent = proof.ok()
                          ? VerifyConsistency(old_tree, new_tree, *proof, kept.root, latest_root)
                          : Status(proof.error());
  if (!consistent.ok()) {
    return DataLoss(signed_before + ", and the database's newest " + DescribeCheckpoint(*latest) +
                    " does not extend it: " + consistent.error().message() + refusal);
  }
  return Keep(witness, latest->note);
}

Status Integrator::CheckExtends(const store::LogCheckpointRow& ours,
                                const std::optional<store::LogCheckpointRow>& latest) {
  const std::string refusal = "; refusing to sign until the log is verified";
  if (!latest || latest->size < ours.size) {
    return DataLoss("the " + DescribeCheckpoint(ours) +
                    " this integrator published is gone from the database" + refusal);
  }
  if (ours.size == 0) return OkStatus();  // every tree extends the empty one
  SIGNET_ASSIGN_OR_RETURN(Sha256Digest our_root, ToSha256Digest(ours.root, "checkpoint root"));
  SIGNET_ASSIGN_OR_RETURN(Sha256Digest new_root, ToSha256Digest(latest->root, "checkpoint root"));
  const TreeSize from(static_cast<uint64_t>(ours.size));
  const TreeSize to(static_cast<uint64_t>(latest->size));
  // The proof's nodes come from the stored tiles; VerifyConsistency binds them to both signed
  // roots, so altered tiles cannot make a fork pass.
  Result<std::vector<Sha256Digest>> proof =
      ConsistencyProof(from, to, TileNodeHashFn(to, StoredTiles(store_)));
  Status consistent =
      proof.ok() ? VerifyConsistency(from, to, *proof, our_root, new_root) : Status(proof.error());
  if (!consistent.ok()) {
    return DataLoss("the log's newest " + DescribeCheckpoint(*latest) + " does not extend the " +
                    DescribeCheckpoint(ours) + " this integrator published (" +
                    consistent.error().message() + ")" + refusal);
  }
  return OkStatus();
}

Result<std::string> Integrator::SignCheckpointNote(const Checkpoint& checkpoint) {
  const NoteSigner signers[] = {NoteSigner{
      .key = verifier_key_, .sign = [this](ByteView message) -> Result<Bytes> {
        // PureEdDSA over the whole note text, inside the HSM; the hash argument is ignored.
        return key_store_.Sign(key_id_, SignatureScheme::kEd25519, HashAlgorithm::kSha512, message);
      }}};
  return SignCheckpoint(checkpoint, signers);
}

Result<std::optional<store::LogCheckpointRow>> Integrator::IntegrateOnce() {
  std::lock_guard<std::mutex> round(round_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    round_started_ = std::chrono::steady_clock::now();
  }
  int64_t integrated = 0;
  Result<std::optional<store::LogCheckpointRow>> result = IntegrateLocked(&integrated);
  // The witness follows the newest checkpoint; one that could not be written is tried again in
  // every round, empty ones too, and counts as a failed round until it is written (a witness left
  // behind still holds an earlier checkpoint of the same tree, which the next start accepts by a
  // consistency proof, but a rollback to between the two would go unseen).
  Status witness = OkStatus();
  if (witness_behind_ && state_.checkpoint) {
    witness = Keep(*options_.witness, state_.checkpoint->note);
    if (witness.ok()) {
      witness_behind_ = false;
    } else {
      witness = witness.error().WithContext("the " + DescribeCheckpoint(*state_.checkpoint) +
                                            " is published, but");
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  round_started_.reset();
  ++stats_.rounds;
  stats_.integrated_size = integrated_size_;
  if (!result.ok()) {
    ++stats_.failures;
    ++stats_.consecutive_failures;
    last_error_ = result.error();
    return result;
  }
  if (*result) {
    ++stats_.checkpoints_signed;
    stats_.entries_integrated += integrated;
    stats_.last_checkpoint_time = (*result)->time;
  }
  if (!witness.ok()) {
    ++stats_.failures;
    ++stats_.consecutive_failures;
    last_error_ = witness.error();
    return witness.error();
  }
  stats_.consecutive_failures = 0;
  return result;
}

Result<std::optional<store::LogCheckpointRow>> Integrator::IntegrateLocked(int64_t* integrated) {
  backlog_ = false;
  // The stored newest checkpoint must still be the one our state is from: a newer one means
  // another integrator published (reload), anything else that the database was altered.
  SIGNET_ASSIGN_OR_RETURN(std::optional<store::LogCheckpointRow> latest,
                          store_.LatestLogCheckpoint());
  const std::optional<store::LogCheckpointRow>& ours = state_.checkpoint;
  if (reload_ || (latest && (!ours || latest->size > ours->size))) {
    SIGNET_ASSIGN_OR_RETURN(TreeState loaded, LoadState());
    // What another integrator published must extend what this one signed: a checkpoint of a
    // fork (the database restored to an older state and other entries signed on top) would
    // otherwise be signed on as if it were the log.
    if (ours) SIGNET_TRY(CheckExtends(*ours, loaded.checkpoint));
    state_ = std::move(loaded);
    reload_ = false;
    integrated_size_ = static_cast<int64_t>(state_.range.size().value());
  } else if (ours && (!latest || latest->size != ours->size || latest->root != ours->root ||
                      latest->note != ours->note)) {
    return DataLoss("the " + DescribeCheckpoint(*ours) +
                    " this integrator published is gone or was replaced in the database; "
                    "refusing to sign until the log is verified");
  }

  const int64_t old_size = static_cast<int64_t>(state_.range.size().value());
  CompactRange range = state_.range;
  auto edges = state_.edges;
  std::map<std::pair<int, uint64_t>, Bytes> full_tiles;  // completed this round
  bool edges_broken = false;
  const CompactRange::NodeSink on_node = [&](NodeId node, const Sha256Digest& hash) {
    if (node.level % kTileHeight != 0) return;
    const int level = static_cast<int>(node.level) / kTileHeight;
    std::vector<Sha256Digest>& edge = edges[static_cast<size_t>(level)];
    if (node.index % kTileWidth != edge.size()) edges_broken = true;
    edge.push_back(hash);
    if (edge.size() == static_cast<size_t>(kTileWidth)) {
      full_tiles.emplace(std::make_pair(level, node.index / kTileWidth), Concat(edge));
      edge.clear();
    }
  };

  // Read and integrate the new entries, chunk by chunk.
  int64_t next = old_size;
  while (next - old_size < options_.max_batch) {
    const int64_t limit = std::min(kReadChunk, options_.max_batch - (next - old_size));
    SIGNET_ASSIGN_OR_RETURN(std::vector<store::LogEntryRow> entries,
                            store_.ReadLogEntries(next, limit));
    if (next == old_size) {
      if (entries.empty()) return std::optional<store::LogCheckpointRow>();
      // The last checkpoint's own entry alone is no reason for another checkpoint.
      if (entries.size() == 1 && ours && entries[0].index == ours->entry_index) {
        bool alone = limit > 1;
        if (!alone) {
          SIGNET_ASSIGN_OR_RETURN(std::vector<store::LogEntryRow> after,
                                  store_.ReadLogEntries(next + 1, 1));
          alone = after.empty();
        }
        if (alone) return std::optional<store::LogCheckpointRow>();
      }
    }
    for (const store::LogEntryRow& entry : entries) {
      if (entry.index != next) {
        return DataLoss("the log has entry " + Str(entry.index) + " where entry " + Str(next) +
                        " belongs: entries are missing or duplicated");
      }
      SIGNET_TRY(range.Append(HashLeaf(AsBytes(entry.data)), on_node));
      ++next;
    }
    if (static_cast<int64_t>(entries.size()) < limit) break;
  }
  const bool backlog = next - old_size == options_.max_batch;
  if (edges_broken) std::abort();  // The edges always end where the range does.
  const TreeSize old_tree(static_cast<uint64_t>(old_size));
  const TreeSize new_tree = range.size();

  // The tiles the growth created or widened: full tiles just completed, and the new right edge.
  std::vector<store::LogTileRow> tiles;
  for (const TileRef& tile : NewTiles(old_tree, new_tree)) {
    store::LogTileRow row{tile.level, static_cast<int64_t>(tile.index), tile.width, {}};
    if (tile.width == kTileWidth) {
      auto it = full_tiles.find({tile.level, tile.index});
      if (it == full_tiles.end()) std::abort();  // NewTiles and the sink disagree.
      row.hashes = std::move(it->second);
    } else {
      const std::vector<Sha256Digest>& edge = edges[static_cast<size_t>(tile.level)];
      if (edge.size() != static_cast<size_t>(tile.width)) std::abort();
      row.hashes = Concat(edge);
    }
    tiles.push_back(std::move(row));
  }

  // Self-check before signing (reference §11.4): a consistency proof from the last checkpoint,
  // built from the tiles about to be stored and those already stored, must reproduce both the
  // signed old root and the new root of the compact range.
  const Sha256Digest new_root = range.Root();
  if (ours) {
    TileFetchFn stored = StoredTiles(store_);
    TileFetchFn fetch = [&tiles, &stored](const TileRef& tile) -> Result<Bytes> {
      for (const store::LogTileRow& row : tiles) {
        if (row.level == tile.level && row.index == static_cast<int64_t>(tile.index) &&
            row.width == tile.width) {
          return row.hashes;
        }
      }
      return stored(tile);
    };
    SIGNET_ASSIGN_OR_RETURN(Sha256Digest old_root, ToSha256Digest(ours->root, "checkpoint root"));
    SIGNET_ASSIGN_OR_RETURN(std::vector<Sha256Digest> proof,
                            ConsistencyProof(old_tree, new_tree, TileNodeHashFn(new_tree, fetch)));
    if (Status consistent = VerifyConsistency(old_tree, new_tree, proof, old_root, new_root);
        !consistent.ok()) {
      return DataLoss("refusing to sign a checkpoint of size " +
                      Str(static_cast<int64_t>(new_tree.value())) +
                      ": it is not consistent with the " + DescribeCheckpoint(*ours) + ": " +
                      consistent.error().message());
    }
  }

  const Checkpoint checkpoint{
      .origin = options_.origin, .size = new_tree, .root = new_root, .extensions = {}};
  Result<std::string> note = SignCheckpointNote(checkpoint);
  if (!note.ok()) return note.error().WithContext("cannot sign the audit log checkpoint");
  store::LogCheckpointRow row{.size = static_cast<int64_t>(new_tree.value()),
                              .root = Bytes(new_root.begin(), new_root.end()),
                              .note = std::move(*note),
                              .time = clock_.Now(),
                              .entry_index = -1};
  const store::LogEntryAppend entry{.time = row.time,
                                    .action = std::string(kLogCheckpointAction),
                                    .key_id = "",
                                    .account_id = "",
                                    .render = [render = options_.render_checkpoint_entry,
                                               row](int64_t index) -> Result<std::string> {
                                      store::LogCheckpointRow recorded = row;
                                      recorded.entry_index = index;
                                      return render(index, recorded);
                                    },
                                    .apply = nullptr};
  Result<int64_t> entry_index = store_.PublishLogCheckpoint(tiles, row, entry);
  if (!entry_index.ok()) {
    // Another integrator may have published: reload before the next round.
    if (entry_index.error().code() == ErrorCode::kFailedPrecondition) reload_ = true;
    return entry_index.error().WithContext("cannot publish the audit log checkpoint of size " +
                                           Str(row.size));
  }
  row.entry_index = *entry_index;

  state_.range = std::move(range);
  state_.edges = std::move(edges);
  state_.checkpoint = row;
  integrated_size_ = row.size;
  *integrated = row.size - old_size;
  witness_behind_ = options_.witness.has_value();  // IntegrateOnce saves it
  backlog_ = backlog;  // only after a success: a failing round must not be retried at once
  return std::optional<store::LogCheckpointRow>(std::move(row));
}

// ---- Background thread ----------------------------------------------------------------------

void Integrator::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  wake_ = true;  // a round at once
  thread_ = std::thread([this] { Run(); });
}

void Integrator::Stop() {
  std::thread thread;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    thread = std::move(thread_);
  }
  wake_cv_.notify_all();
  if (thread.joinable()) thread.join();
}

void Integrator::Notify(int64_t new_size) {
  int64_t known = notified_size_.load();
  while (new_size > known && !notified_size_.compare_exchange_weak(known, new_size)) {
  }
  if (new_size - integrated_size_.load() < options_.max_pending) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    wake_ = true;
  }
  wake_cv_.notify_one();
}

Status Integrator::AdmitAppend() const {
  const int64_t integrated = integrated_size_.load();
  const int64_t waiting = notified_size_.load() - integrated;
  if (waiting <= options_.max_unsigned) return OkStatus();
  std::optional<Error> last = LastError();
  return Unavailable("the audit log has " + std::to_string(waiting) +
                     " entries past its newest checkpoint (size " + std::to_string(integrated) +
                     "), the most it may hold unsigned and stay verifiable; nothing that must be "
                     "logged is done until a checkpoint is published" +
                     (last ? " (the last round failed: " + last->message() + ")" : ""));
}

void Integrator::Run() {
  // Scheduling uses the monotonic clock; clock_ is wall time for what is stored.
  std::unique_lock<std::mutex> lock(mu_);
  auto next_round = std::chrono::steady_clock::now() + options_.interval;
  bool last_failed = false;
  while (true) {
    // After a failed round, Notify does not bring the next one forward: with appends going on,
    // it would otherwise re-read, re-hash and re-sign up to max_batch entries at every commit.
    wake_cv_.wait_until(lock, next_round,
                        [this, &last_failed] { return stopping_ || (wake_ && !last_failed); });
    if (stopping_) return;
    wake_ = false;
    lock.unlock();
    const auto started = std::chrono::steady_clock::now();
    // The outcome is recorded in stats_ and last_error_; a failed round is retried next time.
    last_failed = !IntegrateOnce().ok();
    lock.lock();
    if (backlog_) wake_ = true;
    next_round = started + options_.interval;
  }
}

IntegratorStats Integrator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

std::optional<Error> Integrator::LastError() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_error_;
}

Status Integrator::Health() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (round_started_) {
    const auto running = std::chrono::steady_clock::now() - *round_started_;
    if (running > options_.stuck_after) {
      const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(running).count();
      return Unavailable("a checkpoint round has been running for " + std::to_string(seconds) +
                         " s without finishing (the HSM or the database may have stopped "
                         "answering); new entries are not being signed");
    }
  }
  if (stats_.consecutive_failures == 0 || !last_error_) return OkStatus();
  if (last_error_->code() != ErrorCode::kDataLoss &&
      stats_.consecutive_failures < kUnhealthyAfterFailures) {
    return OkStatus();  // a passing hiccup: the next round retries
  }
  return last_error_->WithContext("the last " + std::to_string(stats_.consecutive_failures) +
                                  " checkpoint round(s) failed");
}

}  // namespace signet::audit
