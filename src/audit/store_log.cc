#include "audit/store_log.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace signet::audit {
namespace {

// Rows per store query: 256 entries of at most 64 KiB each stay within a batch's byte bound
// (EntryBatch::full is checked between pages).
constexpr uint64_t kPage = 256;

StoredCheckpoint ToStoredCheckpoint(const store::LogCheckpointRow& row) {
  StoredCheckpoint out;
  out.size = static_cast<uint64_t>(std::max<int64_t>(row.size, 0));
  // A root of the wrong length is left all zero: it then disagrees with the log and is reported
  // as a stored checkpoint that does not match, which is what it is.
  if (row.root.size() == out.root.size()) {
    std::copy(row.root.begin(), row.root.end(), out.root.begin());
  }
  out.note = row.note;
  out.entry_index = static_cast<uint64_t>(std::max<int64_t>(row.entry_index, 0));
  return out;
}

}  // namespace

Result<uint64_t> StoreLogReader::Size() {
  SIGNET_ASSIGN_OR_RETURN(int64_t size, store_.LogSize());
  return static_cast<uint64_t>(std::max<int64_t>(size, 0));
}

Status StoreLogReader::Read(uint64_t begin, uint64_t count, EntryBatch& out) {
  out.Clear();
  auto position = static_cast<int64_t>(begin);
  while (out.size() < count && !out.full()) {
    const auto want = static_cast<int64_t>(std::min<uint64_t>(count - out.size(), kPage));
    SIGNET_ASSIGN_OR_RETURN(std::vector<store::LogEntryRow> rows,
                            store_.ReadLogEntries(position, want));
    for (const store::LogEntryRow& row : rows) out.Add(row.data);
    if (static_cast<int64_t>(rows.size()) < want) break;
    position = rows.back().index + 1;
  }
  return OkStatus();
}

Status AddStoreSources(store::Store& store, VerifyOptions& options) {
  SIGNET_ASSIGN_OR_RETURN(std::optional<store::LogCheckpointRow> latest,
                          store.LatestLogCheckpoint());
  if (latest) {
    options.latest_checkpoint = LatestCheckpoint{
        latest->note, static_cast<uint64_t>(std::max<int64_t>(latest->entry_index, 0))};
  }
  options.stored_checkpoints = [&store](int64_t after,
                                        size_t limit) -> Result<std::vector<StoredCheckpoint>> {
    SIGNET_ASSIGN_OR_RETURN(std::vector<store::LogCheckpointRow> rows,
                            store.ListLogCheckpoints(after, static_cast<int64_t>(limit)));
    std::vector<StoredCheckpoint> out;
    out.reserve(rows.size());
    for (const store::LogCheckpointRow& row : rows) out.push_back(ToStoredCheckpoint(row));
    return out;
  };
  options.level0_tiles = [&store](const TileRef& ref) -> Result<Bytes> {
    SIGNET_ASSIGN_OR_RETURN(
        std::optional<Bytes> tile,
        store.GetLogTile(ref.level, static_cast<int64_t>(ref.index), ref.width));
    if (!tile) return NotFound("no stored tile " + TilePath(ref));
    return std::move(*tile);
  };
  return OkStatus();
}

Result<VerifierKey> StoredVerifierKey(store::Store& store) {
  SIGNET_ASSIGN_OR_RETURN(std::optional<store::LogKeyRecord> key, store.GetLogKey());
  if (!key) {
    return NotFound(
        "this log has no checkpoint key yet: it is created when 'signet serve' first "
        "starts");
  }
  return NewEd25519VerifierKey(key->origin, key->public_key);
}

}  // namespace signet::audit
