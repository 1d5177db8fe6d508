// LogFixture: a signed audit log in a Store for tests, built the way audit::Integrator builds one
// (entries at consecutive indices; per checkpoint the tiles that grew, the signed note and the
// checkpoint's own "log_checkpoint" entry, in one Store::PublishLogCheckpoint) but independently
// of it: tiles are computed straight from the leaf hashes, and the checkpoint key is an Ed25519 key
// in process memory (OpenSSL), never an HSM. Tests only.
//
// Threads: not synchronised; use from one thread. The store must outlive the fixture.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "audit/merkle.h"
#include "audit/note.h"
#include "common/bytes.h"
#include "common/clock.h"
#include "common/result.h"
#include "store/store.h"

namespace signet::audit::testing {

inline constexpr std::string_view kTestOrigin = "signet.test/log";

class LogFixture {
 public:
  // Generates the key and stores its record (Store::InsertLogKey) under `origin`.
  static Result<std::unique_ptr<LogFixture>> Create(store::Store& store,
                                                    std::string origin = std::string(kTestOrigin));
  ~LogFixture();
  // Holds the private key; one owner.
  LogFixture(const LogFixture&) = delete;
  LogFixture& operator=(const LogFixture&) = delete;

  struct EntrySpec {
    std::string action = "sign";
    std::string key_id;
    std::string account_id;
    TimePoint time = FromUnixSeconds(1'800'000'000);
  };
  // Appends `count` entries, canonical JSON {"account_id","action","index","key_id","n"}; returns
  // the first index.
  Result<int64_t> Append(int64_t count, const EntrySpec& spec);
  Result<int64_t> Append(int64_t count) { return Append(count, EntrySpec{}); }

  // Signs a checkpoint of the whole log as it is now and publishes it with the tiles that grew
  // since the previous checkpoint and its own entry (which the next checkpoint covers). Entries
  // an earlier Publish covered are not read again (as the integrator does): their leaf hashes are
  // the ones signed then.
  Result<store::LogCheckpointRow> Publish(TimePoint time = FromUnixSeconds(1'800'000'100));

  // Signs `checkpoint` with the log key (for forged or replaced checkpoints).
  Result<std::string> Sign(const Checkpoint& checkpoint) const;

  // Stores a key record `id` named `name` (placeholder HSM fields, created at `time`), so that
  // entries naming the key can be found by its name, as the entry query's `key` filter does.
  static Status InsertKey(store::Store& store, std::string id, std::string name,
                          TimePoint time = FromUnixSeconds(1'800'000'000));

  // The leaf hashes of entries [0, size), read back from the store.
  Result<std::vector<Sha256Digest>> LeafHashes(int64_t size) const;
  // Appends to `leaves` (the hashes of entries [0, leaves.size())) those of the entries up to
  // `size`, read from the store.
  Status AppendLeafHashes(std::vector<Sha256Digest>& leaves, int64_t size) const;

  // Tile (level, index) of width `width` as C2SP tlog-tiles defines it, from all the leaf hashes of
  // a tree (each node hashed from its leaves with RootFromLeafHashes).
  static Bytes ExpectedTile(std::span<const Sha256Digest> leaves, int level, uint64_t index,
                            int width);

  const VerifierKey& verifier_key() const { return verifier_key_; }
  const std::string& origin() const { return origin_; }

 private:
  struct Key;
  LogFixture(store::Store& store, std::string origin, std::unique_ptr<Key> key,
             VerifierKey verifier_key);

  store::Store& store_;
  const std::string origin_;
  std::unique_ptr<Key> key_;
  const VerifierKey verifier_key_;
  std::vector<Sha256Digest> signed_leaves_;  // the leaf hashes the last Publish signed
};

}  // namespace signet::audit::testing
