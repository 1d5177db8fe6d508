#include "audit/testing/log_fixture.h"

#include <openssl/evp.h>

#include <algorithm>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "audit/tiles.h"

namespace signet::audit::testing {

struct LogFixture::Key {
  ~Key() { EVP_PKEY_free(pkey); }
  EVP_PKEY* pkey = nullptr;
};

namespace {

Result<Bytes> SignEd25519(EVP_PKEY* pkey, ByteView message) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  Bytes signature(64);
  size_t length = signature.size();
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, pkey) != 1 ||
      EVP_DigestSign(ctx.get(), signature.data(), &length, message.data(), message.size()) != 1 ||
      length != 64) {
    return InternalError("Ed25519 signing failed");
  }
  return signature;
}

}  // namespace

LogFixture::LogFixture(store::Store& store, std::string origin, std::unique_ptr<Key> key,
                       VerifierKey verifier_key)
    : store_(store),
      origin_(std::move(origin)),
      key_(std::move(key)),
      verifier_key_(std::move(verifier_key)) {}

LogFixture::~LogFixture() = default;

Result<std::unique_ptr<LogFixture>> LogFixture::Create(store::Store& store, std::string origin) {
  auto key = std::make_unique<Key>();
  key->pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (key->pkey == nullptr) return InternalError("Ed25519 key generation failed");
  Bytes public_key(32);
  size_t length = public_key.size();
  if (EVP_PKEY_get_raw_public_key(key->pkey, public_key.data(), &length) != 1 || length != 32) {
    return InternalError("cannot read the Ed25519 public key");
  }
  SIGNET_ASSIGN_OR_RETURN(VerifierKey vkey, NewEd25519VerifierKey(origin, public_key));
  store::LogKeyRecord record;
  record.origin = origin;
  record.token_serial = "test";
  record.hsm_key_id = "01";
  record.public_key = public_key;
  record.created_at = FromUnixSeconds(1'800'000'000);
  SIGNET_TRY(store.InsertLogKey(record));
  return std::unique_ptr<LogFixture>(
      new LogFixture(store, std::move(origin), std::move(key), std::move(vkey)));
}

Result<int64_t> LogFixture::Append(int64_t count, const EntrySpec& spec) {
  std::vector<store::LogEntryAppend> entries;
  for (int64_t n = 0; n < count; ++n) {
    store::LogEntryAppend e;
    e.time = spec.time;
    e.action = spec.action;
    e.key_id = spec.key_id;
    e.account_id = spec.account_id;
    e.render = [spec, n](int64_t index) -> Result<std::string> {
      return nlohmann::json{{"account_id", spec.account_id},
                            {"action", spec.action},
                            {"index", index},
                            {"key_id", spec.key_id},
                            {"n", n}}
          .dump();
    };
    entries.push_back(std::move(e));
  }
  return store_.AppendLogEntries(entries);
}

Result<std::string> LogFixture::Sign(const Checkpoint& checkpoint) const {
  EVP_PKEY* pkey = key_->pkey;
  const NoteSigner signers[] = {
      NoteSigner{verifier_key_, [pkey](ByteView message) { return SignEd25519(pkey, message); }}};
  return SignCheckpoint(checkpoint, signers);
}

Status LogFixture::InsertKey(store::Store& store, std::string id, std::string name,
                             TimePoint time) {
  store::KeyRecord k;
  k.id = std::move(id);
  k.name = std::move(name);
  k.algorithm = "ec-p256";
  k.owner = "root";
  k.token_label = "t";
  k.token_serial = "1";
  k.hsm_key_id = "01";
  k.public_key_spki = "AA==";
  k.created_at = time;
  k.updated_at = time;
  return store.InsertKey(k);
}

Result<std::vector<Sha256Digest>> LogFixture::LeafHashes(int64_t size) const {
  std::vector<Sha256Digest> leaves;
  SIGNET_TRY(AppendLeafHashes(leaves, size));
  return leaves;
}

Status LogFixture::AppendLeafHashes(std::vector<Sha256Digest>& leaves, int64_t size) const {
  while (static_cast<int64_t>(leaves.size()) < size) {
    const auto from = static_cast<int64_t>(leaves.size());
    SIGNET_ASSIGN_OR_RETURN(std::vector<store::LogEntryRow> rows,
                            store_.ReadLogEntries(from, std::min<int64_t>(1000, size - from)));
    if (rows.empty()) return DataLoss("entry " + std::to_string(from) + " is missing");
    for (const store::LogEntryRow& row : rows) leaves.push_back(HashLeaf(AsBytes(row.data)));
  }
  leaves.resize(static_cast<size_t>(size));
  return OkStatus();
}

Bytes LogFixture::ExpectedTile(std::span<const Sha256Digest> leaves, int level, uint64_t index,
                               int width) {
  const uint64_t span = uint64_t{1} << (kTileHeight * level);  // leaves under one node
  Bytes tile;
  for (int i = 0; i < width; ++i) {
    const uint64_t node = index * kTileWidth + static_cast<uint64_t>(i);
    const Sha256Digest hash = RootFromLeafHashes(leaves.subspan(node * span, span));
    tile.insert(tile.end(), hash.begin(), hash.end());
  }
  return tile;
}

Result<store::LogCheckpointRow> LogFixture::Publish(TimePoint time) {
  SIGNET_ASSIGN_OR_RETURN(int64_t size, store_.LogSize());
  SIGNET_ASSIGN_OR_RETURN(std::optional<store::LogCheckpointRow> previous,
                          store_.LatestLogCheckpoint());
  const int64_t old_size = previous ? previous->size : 0;
  // Like the integrator, the entries already signed are not read again: their leaf hashes are the
  // ones this fixture signed, so an entry altered since does not change later checkpoints.
  std::vector<Sha256Digest> leaves = signed_leaves_;
  SIGNET_TRY(AppendLeafHashes(leaves, size));
  std::vector<store::LogTileRow> tiles;
  for (const TileRef& t :
       NewTiles(TreeSize(static_cast<uint64_t>(old_size)), TreeSize(static_cast<uint64_t>(size)))) {
    tiles.push_back(store::LogTileRow{t.level, static_cast<int64_t>(t.index), t.width,
                                      ExpectedTile(leaves, t.level, t.index, t.width)});
  }
  const Sha256Digest root = RootFromLeafHashes(leaves);
  SIGNET_ASSIGN_OR_RETURN(
      std::string note, Sign(Checkpoint{origin_, TreeSize(static_cast<uint64_t>(size)), root, {}}));
  store::LogCheckpointRow row;
  row.size = size;
  row.root = Bytes(root.begin(), root.end());
  row.note = std::move(note);
  row.time = time;
  store::LogEntryAppend entry;
  entry.time = time;
  entry.action = "log_checkpoint";
  entry.render = [size](int64_t index) -> Result<std::string> {
    return nlohmann::json{{"action", "log_checkpoint"}, {"index", index}, {"size", size}}.dump();
  };
  SIGNET_ASSIGN_OR_RETURN(row.entry_index, store_.PublishLogCheckpoint(tiles, row, entry));
  signed_leaves_ = std::move(leaves);
  return row;
}

}  // namespace signet::audit::testing
