#include "service/testing/fakes.h"

#include <algorithm>

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "common/encoding.h"

namespace signet::testing {

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

struct FakeKeyStore::Impl {
  std::mutex mu;
  int next_id = 1;                          // guarded by mu
  std::map<std::string, std::pair<KeyAlgorithm, PkeyPtr>> keys;  // by hex id  // guarded by mu
  std::optional<Error> fail_destroy;        // guarded by mu
};

FakeKeyStore::FakeKeyStore() : impl_(std::make_unique<Impl>()) {}
FakeKeyStore::~FakeKeyStore() = default;

Result<hsm::GeneratedKey> FakeKeyStore::GenerateKey(KeyAlgorithm algorithm, std::string_view) {
  EVP_PKEY* raw = nullptr;
  switch (algorithm) {
    case KeyAlgorithm::kRsa3072: raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{3072}); break;
    case KeyAlgorithm::kRsa4096: raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{4096}); break;
    case KeyAlgorithm::kEcP256: raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"); break;
    case KeyAlgorithm::kEcP384: raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"); break;
    case KeyAlgorithm::kEd25519: raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"); break;
  }
  if (raw == nullptr) return InternalError("fake keygen failed");
  PkeyPtr key(raw);
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(key.get(), &der);
  if (len <= 0) return InternalError("fake i2d_PUBKEY failed");
  Bytes spki(der, der + len);
  OPENSSL_free(der);
  std::lock_guard lock(impl_->mu);
  Bytes id = {static_cast<uint8_t>(impl_->next_id++)};
  impl_->keys.emplace(HexEncode(id), std::make_pair(algorithm, std::move(key)));
  return hsm::GeneratedKey{hsm::HsmKeyId{id}, algorithm, spki};
}

Result<Bytes> FakeKeyStore::PublicKey(const hsm::HsmKeyId& id) {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->keys.find(HexEncode(id.bytes));
  if (it == impl_->keys.end()) return NotFound("no such key");
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(it->second.second.get(), &der);
  Bytes spki(der, der + len);
  OPENSSL_free(der);
  return spki;
}

Result<Bytes> FakeKeyStore::Sign(const hsm::HsmKeyId& id, SignatureScheme scheme,
                                 HashAlgorithm hash, ByteView input) {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->keys.find(HexEncode(id.bytes));
  if (it == impl_->keys.end()) return NotFound("no such key");
  if (!SchemeFitsKey(scheme, it->second.first)) return InvalidArgument("scheme does not fit");
  if (input.size() != DigestSize(hash)) return InvalidArgument("digest length");
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
      EVP_PKEY_CTX_new(it->second.second.get(), nullptr), EVP_PKEY_CTX_free);
  const EVP_MD* md = hash == HashAlgorithm::kSha256   ? EVP_sha256()
                     : hash == HashAlgorithm::kSha384 ? EVP_sha384()
                                                      : EVP_sha512();
  if (EVP_PKEY_sign_init(ctx.get()) <= 0 || EVP_PKEY_CTX_set_signature_md(ctx.get(), md) <= 0) {
    return InternalError("fake sign init failed");
  }
  if (scheme == SignatureScheme::kRsaPss) {
    EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PSS_PADDING);
    EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx.get(), RSA_PSS_SALTLEN_DIGEST);
  }
  size_t len = 0;
  EVP_PKEY_sign(ctx.get(), nullptr, &len, input.data(), input.size());
  Bytes sig(len);
  if (EVP_PKEY_sign(ctx.get(), sig.data(), &len, input.data(), input.size()) <= 0) {
    return InternalError("fake sign failed");
  }
  sig.resize(len);
  return sig;
}

Result<hsm::KeyProtection> FakeKeyStore::Protection(const hsm::HsmKeyId& id) {
  std::lock_guard lock(impl_->mu);
  if (impl_->keys.count(HexEncode(id.bytes)) == 0) return NotFound("no such key");
  return hsm::KeyProtection{true, true, true, false, true, true, true};
}

Status FakeKeyStore::DestroyKey(const hsm::HsmKeyId& id) {
  std::lock_guard lock(impl_->mu);
  if (impl_->fail_destroy) {
    Error e = *impl_->fail_destroy;
    impl_->fail_destroy.reset();
    return e;
  }
  impl_->keys.erase(HexEncode(id.bytes));
  return OkStatus();
}

Result<hsm::TokenDescription> FakeKeyStore::DescribeToken() {
  return hsm::TokenDescription{"fake", "fake-token", "0001", "signet tests", "fake", "0.0"};
}

size_t FakeKeyStore::KeyCount() {
  std::lock_guard lock(impl_->mu);
  return impl_->keys.size();
}

void FakeKeyStore::FailNextDestroy(Error e) {
  std::lock_guard lock(impl_->mu);
  impl_->fail_destroy = std::move(e);
}

Status MemoryStore::InsertKey(const store::KeyRecord& key) {
  std::lock_guard lock(mu_);
  if (fail_insert_) {
    Error e = *fail_insert_;
    fail_insert_.reset();
    return e;
  }
  for (const auto& [id, k] : by_id_) {
    if (k.name == key.name || id == key.id) return AlreadyExists("a key named '" + key.name + "' already exists");
  }
  by_id_[key.id] = key;
  return OkStatus();
}

Result<store::KeyRecord> MemoryStore::GetKeyByName(std::string_view name) {
  std::lock_guard lock(mu_);
  for (const auto& [id, k] : by_id_) {
    if (k.name == name) return k;
  }
  return NotFound("no key named '" + std::string(name) + "'");
}

Result<store::KeyRecord> MemoryStore::GetKeyById(std::string_view id) {
  std::lock_guard lock(mu_);
  auto it = by_id_.find(std::string(id));
  if (it == by_id_.end()) return NotFound("no key with id " + std::string(id));
  return it->second;
}

Result<std::vector<store::KeyRecord>> MemoryStore::ListKeys() {
  std::lock_guard lock(mu_);
  std::vector<store::KeyRecord> out;
  for (const auto& [id, k] : by_id_) out.push_back(k);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

Status MemoryStore::UpdateKeyState(std::string_view id, store::KeyState from, store::KeyState to,
                                   TimePoint now) {
  std::lock_guard lock(mu_);
  auto it = by_id_.find(std::string(id));
  if (it == by_id_.end()) return NotFound("no key with id " + std::string(id));
  if (it->second.state != from) return FailedPrecondition("state changed");
  it->second.state = to;
  it->second.updated_at = now;
  return OkStatus();
}

Status MemoryStore::SetCertificateChain(std::string_view id, std::string_view chain_pem,
                                        TimePoint now) {
  std::lock_guard lock(mu_);
  auto it = by_id_.find(std::string(id));
  if (it == by_id_.end()) return NotFound("no key with id " + std::string(id));
  it->second.certificate_chain_pem = std::string(chain_pem);
  it->second.updated_at = now;
  return OkStatus();
}

void MemoryStore::FailNextInsert(Error e) {
  std::lock_guard lock(mu_);
  fail_insert_ = std::move(e);
}

}  // namespace signet::testing
