// Test-only: synthetic audit logs built in memory the way signet writes them (canonical JSON
// entries with their index, a signed checkpoint recorded as a "log_checkpoint" entry after the
// entries it covers), with an Ed25519 key made by OpenSSL standing in for the HSM. Used by the
// verifier's unit tests and the verification benchmark. Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "audit/merkle.h"
#include "audit/note.h"
#include "audit/tiles.h"
#include "audit/verifier.h"
#include "common/bytes.h"
#include "common/result.h"

namespace signet::audit::testing {

// An Ed25519 key pair held by OpenSSL.
class TestEd25519Key {
 public:
  TestEd25519Key();  // a fresh random key
  // The key with this 32-byte private seed (RFC 8032), for runs that must repeat exactly.
  explicit TestEd25519Key(ByteView seed);
  ~TestEd25519Key();
  // Owns an OpenSSL key; one owner.
  TestEd25519Key(const TestEd25519Key&) = delete;
  TestEd25519Key& operator=(const TestEd25519Key&) = delete;

  Bytes PublicKey() const;
  // The signer of this key under `name` (the key must outlive the signer).
  NoteSigner ForName(std::string_view name) const;
  VerifierKey Verifier(std::string_view name) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A log under construction. Entries are plain strings the tests may then tamper with; leaf hashes,
// tiles and the stored checkpoint list are kept as they were when written.
class TestLog {
 public:
  // `key` must outlive the log.
  TestLog(std::string origin, const TestEd25519Key& key);

  // Appends one ordinary entry (a "sign" event as the service records it) of about
  // `approximate_size` bytes (never less than the bare event, about 350 bytes).
  void AppendEvent(size_t approximate_size = 400);
  // Signs a checkpoint of the current size, appends `gap` more events (entries that arrive while
  // the checkpoint is published), then the entry recording the checkpoint. Returns the note.
  std::string AppendCheckpoint(size_t gap = 0);
  // Appends `count` events, with a checkpoint after every `every` of them (0: none).
  void Grow(uint64_t count, uint64_t every, size_t approximate_size = 400);

  // The checkpoint entry at `index` for `note`, as the service renders it.
  std::string RenderCheckpointEntry(uint64_t index, std::string_view note) const;
  // A checkpoint note for any size and root, signed by `key` (this log's key by default).
  std::string SignCheckpointNote(uint64_t size, const Sha256Digest& root,
                                 const TestEd25519Key* key = nullptr) const;

  const std::string& origin() const { return origin_; }
  VerifierKey verifier_key() const;
  std::vector<std::string>& entries() { return entries_; }
  const std::vector<std::string>& entries() const { return entries_; }
  // Leaf hashes of the entries as written.
  const std::vector<Sha256Digest>& leaf_hashes() const { return leaf_hashes_; }
  // Every checkpoint, as a store's log_checkpoints table would hold them.
  std::vector<StoredCheckpoint>& checkpoints() { return checkpoints_; }
  const std::vector<StoredCheckpoint>& checkpoints() const { return checkpoints_; }
  // The latest checkpoint (the last one signed), with its entry index.
  LatestCheckpoint Latest() const;
  // MTH of the first `size` entries as written (O(size) hashes).
  Sha256Digest RootAt(uint64_t size) const;

  // A level-0 tile of the log as written (NotFound beyond it), for VerifyOptions::level0_tiles.
  TileFetchFn TileFetcher() const;
  // The stored checkpoint list above, for VerifyOptions::stored_checkpoints.
  StoredCheckpointsFn StoredCheckpointLister() const;
  // Options that trust this log's key, with its latest checkpoint, stored list and tiles.
  VerifyOptions FullOptions() const;

 private:
  void Append(std::string entry);

  std::string origin_;
  const TestEd25519Key& key_;
  std::vector<std::string> entries_;
  std::vector<Sha256Digest> leaf_hashes_;
  std::vector<StoredCheckpoint> checkpoints_;
  CompactRange range_;
  // An event rendered once around its index and request id: prefix + index + middle + request id
  // + suffix, padded per size.
  size_t template_size_ = 0;
  std::string event_prefix_;
  std::string event_middle_;
  std::string event_suffix_;
};

}  // namespace signet::audit::testing
