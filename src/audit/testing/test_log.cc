#include "audit/testing/test_log.h"

#include <openssl/evp.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <utility>

#include "audit/entry.h"
#include "common/encoding.h"

namespace signet::audit::testing {
namespace {

using nlohmann::json;

struct PkeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct PkeyCtxDeleter {
  void operator()(EVP_PKEY_CTX* ctx) const { EVP_PKEY_CTX_free(ctx); }
};
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

constexpr int64_t kTimeUnix = 1795440201;  // 2026-11-22T13:23:21Z
constexpr char kTime[] = "2026-11-22T13:23:21Z";

json SystemActor() {
  return json{{"account_id", ""},
              {"account_name", ""},
              {"auth_method", "system"},
              {"client_address", ""},
              {"roles", json::array()}};
}

}  // namespace

struct TestEd25519Key::Impl {
  std::unique_ptr<EVP_PKEY, PkeyDeleter> key;
};

TestEd25519Key::TestEd25519Key() : impl_(std::make_unique<Impl>()) {
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter> ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr));
  EVP_PKEY* key = nullptr;
  if (ctx == nullptr || EVP_PKEY_keygen_init(ctx.get()) != 1 ||
      EVP_PKEY_keygen(ctx.get(), &key) != 1) {
    std::abort();
  }
  impl_->key.reset(key);
}

TestEd25519Key::TestEd25519Key(ByteView seed) : impl_(std::make_unique<Impl>()) {
  if (seed.size() != 32) std::abort();
  impl_->key.reset(
      EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed.data(), seed.size()));
  if (impl_->key == nullptr) std::abort();
}

TestEd25519Key::~TestEd25519Key() = default;

Bytes TestEd25519Key::PublicKey() const {
  Bytes out(32);
  size_t length = out.size();
  if (EVP_PKEY_get_raw_public_key(impl_->key.get(), out.data(), &length) != 1) std::abort();
  return out;
}

VerifierKey TestEd25519Key::Verifier(std::string_view name) const {
  auto key = NewEd25519VerifierKey(name, PublicKey());
  if (!key.ok()) std::abort();
  return *key;
}

NoteSigner TestEd25519Key::ForName(std::string_view name) const {
  EVP_PKEY* pkey = impl_->key.get();
  MessageSigner sign = [pkey](ByteView message) -> Result<Bytes> {
    std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
    Bytes signature(64);
    size_t length = signature.size();
    if (ctx == nullptr || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, pkey) != 1 ||
        EVP_DigestSign(ctx.get(), signature.data(), &length, message.data(), message.size()) != 1) {
      return InternalError("EVP_DigestSign failed");
    }
    return signature;
  };
  return NoteSigner{Verifier(name), std::move(sign)};
}

TestLog::TestLog(std::string origin, const TestEd25519Key& key)
    : origin_(std::move(origin)), key_(key) {
  // A signature event with the fields the service records (service/audit_sink.h ToJson), kept
  // short so that ~400-byte entries are possible; the index and request id are filled in per entry
  // (prefix + index + middle + request id + suffix) and larger sizes are padded.
  json event = {{"action", "sign"},
                {"actor",
                 {{"account_id", "acc-5f0c7a1e"},
                  {"auth_method", "mtls"},
                  {"client_address", "192.0.2.7:51234"},
                  {"roles", {"signer"}}}},
                {"details", json::object()},
                {"index", 0},
                {"object", "release-key"},
                {"outcome", "success"},
                {"request_id", "req-7d1c2b4a9e8f3a60"},
                {"signature",
                 {{"algorithm", "ecdsa"},
                  {"hashes", {"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}},
                  {"key_id", "key-2b7e1516"}}},
                {"time_unix", kTimeUnix}};
  const std::string text = event.dump();
  const std::string marker = "\"index\":0";
  const size_t at = text.find(marker);
  const std::string request = "req-7d1c2b4a9e8f3a60";
  const size_t request_at = text.find(request);
  event_prefix_ = text.substr(0, at + marker.size() - 1);
  event_middle_ = text.substr(at + marker.size(), request_at + 4 - at - marker.size());
  event_suffix_ = text.substr(request_at + request.size());
  template_size_ = text.size();
}

void TestLog::Append(std::string entry) {
  const Sha256Digest leaf = HashLeaf(AsBytes(entry));
  leaf_hashes_.push_back(leaf);
  if (!range_.Append(leaf).ok()) std::abort();
  entries_.push_back(std::move(entry));
}

void TestLog::AppendEvent(size_t approximate_size) {
  const uint64_t i = entries_.size();
  // Every event has its own request id, so no two events are the same bytes.
  static constexpr char kHex[] = "0123456789abcdef";
  std::string request(16, '0');
  const uint64_t mixed = (i + 1) * 0x9e3779b97f4a7c15ULL;
  for (int k = 0; k < 16; ++k) request[static_cast<size_t>(k)] = kHex[(mixed >> (4 * k)) & 0xf];
  const std::string index = std::to_string(i) + event_middle_ + request;
  std::string entry;
  if (approximate_size > template_size_ + 16) {
    // Pad through details.comment, which sorts first in the (empty) details object.
    const size_t pad = approximate_size - template_size_ - 14;
    std::string prefix = event_prefix_;
    const size_t details = prefix.find("\"details\":{}");
    prefix.replace(details, 12, "\"details\":{\"comment\":\"" + std::string(pad, 'x') + "\"}");
    entry = prefix + index + event_suffix_;
  } else {
    entry = event_prefix_ + index + event_suffix_;
  }
  Append(std::move(entry));
}

std::string TestLog::RenderCheckpointEntry(uint64_t index, std::string_view note) const {
  auto cp = ParseCheckpoint(note.substr(0, note.find("\n\n") + 1));
  json details = {{"checkpoint", std::string(note)}};
  if (cp.ok()) {
    details["root"] = Base64Encode(cp->root);
    details["size"] = std::to_string(cp->size.value());
  }
  json entry = {{"action", std::string(kCheckpointAction)},
                {"actor", SystemActor()},
                {"details", details},
                {"index", index},
                {"object", origin_},
                {"outcome", "success"},
                {"request_id", ""},
                {"time", kTime},
                {"time_unix", kTimeUnix}};
  return entry.dump();
}

std::string TestLog::SignCheckpointNote(uint64_t size, const Sha256Digest& root,
                                        const TestEd25519Key* key) const {
  const TestEd25519Key& signer = key != nullptr ? *key : key_;
  Checkpoint cp{origin_, TreeSize(size), root, {}};
  std::vector<NoteSigner> signers{signer.ForName(origin_)};
  auto note = SignCheckpoint(cp, signers);
  if (!note.ok()) std::abort();
  return *note;
}

std::string TestLog::AppendCheckpoint(size_t gap) {
  const uint64_t size = range_.size().value();
  const Sha256Digest root = range_.Root();
  std::string note = SignCheckpointNote(size, root);
  for (size_t k = 0; k < gap; ++k) AppendEvent();
  const uint64_t index = entries_.size();
  Append(RenderCheckpointEntry(index, note));
  checkpoints_.push_back(StoredCheckpoint{size, root, note, index});
  return note;
}

void TestLog::Grow(uint64_t count, uint64_t every, size_t approximate_size) {
  for (uint64_t k = 1; k <= count; ++k) {
    AppendEvent(approximate_size);
    if (every != 0 && k % every == 0) AppendCheckpoint();
  }
}

VerifierKey TestLog::verifier_key() const { return key_.Verifier(origin_); }

LatestCheckpoint TestLog::Latest() const {
  if (checkpoints_.empty()) std::abort();
  return LatestCheckpoint{checkpoints_.back().note, checkpoints_.back().entry_index};
}

Sha256Digest TestLog::RootAt(uint64_t size) const {
  return RootFromLeafHashes(std::span<const Sha256Digest>(leaf_hashes_).first(size));
}

TileFetchFn TestLog::TileFetcher() const {
  return [this](const TileRef& ref) -> Result<Bytes> {
    const uint64_t begin = ref.index * kTileWidth;
    if (ref.entries || ref.level != 0 ||
        begin + static_cast<uint64_t>(ref.width) > leaf_hashes_.size()) {
      return NotFound("no such tile: " + std::to_string(ref.index));
    }
    Bytes out;
    for (uint64_t i = begin; i < begin + static_cast<uint64_t>(ref.width); ++i) {
      out.insert(out.end(), leaf_hashes_[i].begin(), leaf_hashes_[i].end());
    }
    return out;
  };
}

StoredCheckpointsFn TestLog::StoredCheckpointLister() const {
  return [this](int64_t after_size, size_t limit) -> Result<std::vector<StoredCheckpoint>> {
    std::vector<StoredCheckpoint> out;
    for (const StoredCheckpoint& row : checkpoints_) {
      if (static_cast<int64_t>(row.size) > after_size && out.size() < limit) out.push_back(row);
    }
    return out;
  };
}

VerifyOptions TestLog::FullOptions() const {
  VerifyOptions options;
  options.trusted_keys = {verifier_key()};
  if (!checkpoints_.empty()) options.latest_checkpoint = Latest();
  options.stored_checkpoints = StoredCheckpointLister();
  options.level0_tiles = TileFetcher();
  return options;
}

}  // namespace signet::audit::testing
