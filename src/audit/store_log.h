// audit/store_log: the verifier's view of a log kept in a store::Store (a data folder's database):
// its entries as a LogReader, and the stored latest checkpoint, checkpoint list, hash tiles and log
// key as VerifyOptions. Used by `signet audit verify --data-dir` and the tamper tests.
//
// Nothing read from the store is trusted by being read from it: the entries and checkpoints are
// what Verify checks, the tiles only help it name a changed entry, and the stored key is only as
// good as the database it came from (the CLI says so when it has to use it).
//
// Threads: as thread-safe as the store; a StoreLogReader is one reader's state.
#pragma once

#include <cstdint>

#include "audit/note.h"
#include "audit/verifier.h"
#include "common/result.h"
#include "store/store.h"

namespace signet::audit {

// The store's entries by position. A position is read as an index (rows with index >= position),
// so a deleted row shows up as an entry whose own "index" is not its position.
class StoreLogReader final : public LogReader {
 public:
  // `store` must outlive the reader.
  explicit StoreLogReader(store::Store& store) : store_(store) {}
  // Store::LogSize.
  Result<uint64_t> Size() override;
  // Store::ReadLogEntries in pages; the store's errors are returned unchanged.
  Status Read(uint64_t begin, uint64_t count, EntryBatch& out) override;

 private:
  store::Store& store_;
};

// Reads the store's latest checkpoint into `options.latest_checkpoint` (call this before the
// reader's Size, so that the entries read cover it) and points `options.stored_checkpoints` and
// `options.level0_tiles` at the store, which must outlive `options`. Errors of the store.
Status AddStoreSources(store::Store& store, VerifyOptions& options);

// The verifier key of the store's log key (Store::GetLogKey). NotFound if the log has no key yet;
// InvalidArgument if the stored record is not a valid Ed25519 key.
Result<VerifierKey> StoredVerifierKey(store::Store& store);

}  // namespace signet::audit
