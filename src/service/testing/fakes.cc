#include "service/testing/fakes.h"

#include <algorithm>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "common/encoding.h"

namespace signet::testing {

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

// RSA generation costs a second or more per key (much more under ASan), and unit tests create
// RSA keys in every fixture. The fake therefore hands out one RSA key pair per size per process
// (a new reference each time); tests that need two different RSA key pairs must not use it.
EVP_PKEY* SharedRsaKey(size_t bits) {
  static std::mutex mu;
  static std::map<size_t, PkeyPtr> keys;  // guarded by mu; freed at exit
  std::lock_guard lock(mu);
  PkeyPtr& key = keys[bits];
  if (!key) key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", bits));
  if (!key || EVP_PKEY_up_ref(key.get()) != 1) return nullptr;
  return key.get();
}

bool VerifyWithPublicKey(std::string_view spki_base64, SignatureScheme scheme, HashAlgorithm hash,
                         ByteView digest, ByteView signature) {
  auto spki = Base64Decode(spki_base64);
  if (!spki.ok()) return false;
  const unsigned char* p = spki->data();
  PkeyPtr pkey(d2i_PUBKEY(nullptr, &p, static_cast<long>(spki->size())));
  if (!pkey) return false;
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
      EVP_PKEY_CTX_new(pkey.get(), nullptr), EVP_PKEY_CTX_free);
  const EVP_MD* md = hash == HashAlgorithm::kSha256   ? EVP_sha256()
                     : hash == HashAlgorithm::kSha384 ? EVP_sha384()
                                                      : EVP_sha512();
  if (!ctx || EVP_PKEY_verify_init(ctx.get()) <= 0) return false;
  if (scheme == SignatureScheme::kRsaPss) {
    EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PSS_PADDING);
    EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx.get(), RSA_PSS_SALTLEN_DIGEST);
  } else if (scheme == SignatureScheme::kRsaPkcs1v15) {
    EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING);
  }
  if (EVP_PKEY_CTX_set_signature_md(ctx.get(), md) <= 0) return false;
  return EVP_PKEY_verify(ctx.get(), signature.data(), signature.size(), digest.data(),
                         digest.size()) == 1;
}

SecretBytes Base32Decode(std::string_view text) {
  Bytes out;
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    uint32_t v = (c >= 'A' && c <= 'Z') ? static_cast<uint32_t>(c - 'A')
                                        : static_cast<uint32_t>(c - '2' + 26);
    buffer = (buffer << 5) | v;
    bits += 5;
    if (bits >= 8) {
      out.push_back(static_cast<uint8_t>(buffer >> (bits - 8)));
      bits -= 8;
    }
  }
  SecretBytes secret{ByteView(out)};
  SecureWipe(out.data(), out.size());
  return secret;
}

struct FakeKeyStore::Impl {
  std::mutex mu;
  int next_id = 1;                                               // guarded by mu
  std::map<std::string, std::pair<KeyAlgorithm, PkeyPtr>> keys;  // by hex id  // guarded by mu
  std::map<std::string, std::string> labels;                     // by hex id  // guarded by mu
  std::optional<Error> fail_destroy;                             // guarded by mu
  std::optional<Error> fail_sign;                                // guarded by mu
  std::function<void()> during_sign;                             // guarded by mu
};

FakeKeyStore::FakeKeyStore() : impl_(std::make_unique<Impl>()) {}
FakeKeyStore::~FakeKeyStore() = default;

Result<hsm::GeneratedKey> FakeKeyStore::GenerateKey(KeyAlgorithm algorithm,
                                                    std::string_view label) {
  EVP_PKEY* raw = nullptr;
  switch (algorithm) {
    case KeyAlgorithm::kRsa3072: raw = SharedRsaKey(3072); break;
    case KeyAlgorithm::kRsa4096: raw = SharedRsaKey(4096); break;
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
  impl_->labels.emplace(HexEncode(id), std::string(label));
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
  std::function<void()> during;
  {
    std::lock_guard lock(impl_->mu);
    during = std::exchange(impl_->during_sign, nullptr);
  }
  if (during) during();
  std::lock_guard lock(impl_->mu);
  if (impl_->fail_sign) {
    Error e = *impl_->fail_sign;
    impl_->fail_sign.reset();
    return e;
  }
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
  impl_->labels.erase(HexEncode(id.bytes));
  return OkStatus();
}

Result<hsm::TokenDescription> FakeKeyStore::DescribeToken() {
  return hsm::TokenDescription{"fake", "fake-token", "0001", "signet tests", "fake", "0.0"};
}

Result<std::vector<hsm::TokenKey>> FakeKeyStore::ListKeys() {
  std::lock_guard lock(impl_->mu);
  std::vector<hsm::TokenKey> keys;
  for (const auto& [hex, key] : impl_->keys) {
    Result<Bytes> id = HexDecode(hex);
    if (!id.ok()) return id.error();
    keys.push_back({hsm::HsmKeyId{std::move(*id)}, impl_->labels[hex], key.first});
  }
  return keys;
}

bool FakeKeyStore::ReplaceKeyMaterial(const hsm::HsmKeyId& id) {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  std::lock_guard lock(impl_->mu);
  auto it = impl_->keys.find(HexEncode(id.bytes));
  if (it == impl_->keys.end() || !key) return false;
  it->second = std::make_pair(KeyAlgorithm::kEcP256, std::move(key));
  return true;
}

size_t FakeKeyStore::KeyCount() {
  std::lock_guard lock(impl_->mu);
  return impl_->keys.size();
}

void FakeKeyStore::FailNextDestroy(Error e) {
  std::lock_guard lock(impl_->mu);
  impl_->fail_destroy = std::move(e);
}

void FakeKeyStore::DuringNextSign(std::function<void()> during) {
  std::lock_guard lock(impl_->mu);
  impl_->during_sign = std::move(during);
}

void FakeKeyStore::FailNextSign(Error e) {
  std::lock_guard lock(impl_->mu);
  impl_->fail_sign = std::move(e);
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

// ---- accounts and bearer tokens (migration 2) ----

namespace signet::testing {

Status MemoryStore::InsertAccount(const store::AccountRecord& account) {
  std::lock_guard lock(mu_);
  for (const auto& [id, a] : accounts_by_id_) {
    if (a.name == account.name) {
      return AlreadyExists("an account named '" + account.name + "' already exists");
    }
    if (id == account.id) return AlreadyExists("an account with id '" + id + "' already exists");
    if (account.mtls_fingerprint && a.mtls_fingerprint == account.mtls_fingerprint) {
      return AlreadyExists("another account already uses this client certificate");
    }
  }
  accounts_by_id_[account.id] = account;
  return OkStatus();
}

Result<store::AccountRecord> MemoryStore::GetAccountById(std::string_view id) {
  std::lock_guard lock(mu_);
  auto it = accounts_by_id_.find(std::string(id));
  if (it == accounts_by_id_.end()) return NotFound("no account with id '" + std::string(id) + "'");
  return it->second;
}

Result<store::AccountRecord> MemoryStore::GetAccountByName(std::string_view name) {
  std::lock_guard lock(mu_);
  for (const auto& [id, a] : accounts_by_id_) {
    if (a.name == name) return a;
  }
  return NotFound("no account named '" + std::string(name) + "'");
}

Result<store::AccountRecord> MemoryStore::GetAccountByFingerprint(std::string_view fingerprint) {
  std::lock_guard lock(mu_);
  for (const auto& [id, a] : accounts_by_id_) {
    if (a.mtls_fingerprint && *a.mtls_fingerprint == fingerprint) return a;
  }
  return NotFound("no account with this client certificate");
}

Result<std::vector<store::AccountRecord>> MemoryStore::ListAccounts() {
  std::lock_guard lock(mu_);
  std::vector<store::AccountRecord> out;
  for (const auto& [id, a] : accounts_by_id_) out.push_back(a);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

Result<bool> MemoryStore::RecordTotpStep(std::string_view id, int64_t step, TimePoint now) {
  return SetTotpStep(id, step, now, /*even_if_locked=*/false);
}

Result<bool> MemoryStore::BurnTotpStep(std::string_view id, int64_t step, TimePoint now) {
  return SetTotpStep(id, step, now, /*even_if_locked=*/true);
}

Result<bool> MemoryStore::SetTotpStep(std::string_view id, int64_t step, TimePoint now,
                                      bool even_if_locked) {
  std::lock_guard lock(mu_);
  auto it = accounts_by_id_.find(std::string(id));
  if (it == accounts_by_id_.end()) return NotFound("no account with id '" + std::string(id) + "'");
  if (it->second.totp_last_step >= step) return false;
  if (!even_if_locked && it->second.locked_until && *it->second.locked_until > now) return false;
  it->second.totp_last_step = step;
  it->second.updated_at = now;
  return true;
}

Result<store::LoginFailureState> MemoryStore::RecordLoginFailure(std::string_view id,
                                                                 int64_t lock_threshold,
                                                                 TimePoint lock_until,
                                                                 TimePoint now) {
  std::lock_guard lock(mu_);
  auto it = accounts_by_id_.find(std::string(id));
  if (it == accounts_by_id_.end()) return NotFound("no account with id '" + std::string(id) + "'");
  store::AccountRecord& a = it->second;
  store::LoginFailureState state;
  if (a.locked_until && *a.locked_until > now) return state;  // raced a lock: not counted
  if (a.failed_attempts + 1 >= lock_threshold) {
    a.failed_attempts = 0;
    a.locked_until = FromUnixSeconds(ToUnixSeconds(lock_until));
    state.locked_until = a.locked_until;
  } else {
    ++a.failed_attempts;
  }
  state.failed_attempts = a.failed_attempts;
  a.updated_at = now;
  return state;
}

Status MemoryStore::ClearLoginFailures(std::string_view id, TimePoint now) {
  std::lock_guard lock(mu_);
  auto it = accounts_by_id_.find(std::string(id));
  if (it == accounts_by_id_.end()) return NotFound("no account with id '" + std::string(id) + "'");
  it->second.failed_attempts = 0;
  it->second.locked_until.reset();
  it->second.updated_at = now;
  return OkStatus();
}

Result<bool> MemoryStore::ForgiveLoginFailures(std::string_view id, TimePoint now) {
  std::lock_guard lock(mu_);
  auto it = accounts_by_id_.find(std::string(id));
  if (it == accounts_by_id_.end()) return NotFound("no account with id '" + std::string(id) + "'");
  store::AccountRecord& a = it->second;
  if (a.locked_until && *a.locked_until > now) return false;
  a.failed_attempts = 0;
  a.locked_until.reset();
  a.updated_at = now;
  return true;
}

Status MemoryStore::UpdateAccountState(std::string_view id, store::AccountState from,
                                       store::AccountState to, TimePoint now) {
  std::lock_guard lock(mu_);
  auto it = accounts_by_id_.find(std::string(id));
  if (it == accounts_by_id_.end()) return NotFound("no account with id '" + std::string(id) + "'");
  if (it->second.state != from) {
    return FailedPrecondition("account '" + it->second.name + "' is " +
                              std::string(store::AccountStateName(it->second.state)) + ", not " +
                              std::string(store::AccountStateName(from)));
  }
  it->second.state = to;
  it->second.updated_at = now;
  return OkStatus();
}

Status MemoryStore::SetAccountRoles(std::string_view id, const store::RoleSet& roles,
                                    TimePoint now) {
  std::lock_guard lock(mu_);
  auto it = accounts_by_id_.find(std::string(id));
  if (it == accounts_by_id_.end()) return NotFound("no account with id '" + std::string(id) + "'");
  it->second.roles = roles;
  it->second.updated_at = now;
  return OkStatus();
}

Status MemoryStore::SetPasswordHash(std::string_view id, std::string_view password_hash,
                                    bool must_change_password, TimePoint now) {
  std::lock_guard lock(mu_);
  auto it = accounts_by_id_.find(std::string(id));
  if (it == accounts_by_id_.end()) return NotFound("no account with id '" + std::string(id) + "'");
  it->second.password_hash = std::string(password_hash);
  it->second.must_change_password = must_change_password;
  it->second.updated_at = now;
  return OkStatus();
}

Status MemoryStore::SetTotpSeed(std::string_view id, ByteView sealed_seed, TimePoint now) {
  std::lock_guard lock(mu_);
  auto it = accounts_by_id_.find(std::string(id));
  if (it == accounts_by_id_.end()) return NotFound("no account with id '" + std::string(id) + "'");
  it->second.totp_seed_sealed = Bytes(sealed_seed.begin(), sealed_seed.end());
  it->second.totp_last_step = 0;
  it->second.updated_at = now;
  return OkStatus();
}

Status MemoryStore::InsertBearerToken(const store::BearerTokenRecord& token) {
  std::lock_guard lock(mu_);
  if (accounts_by_id_.count(token.account_id) == 0) {
    return NotFound("no account with id '" + token.account_id + "'");
  }
  if (!tokens_by_hash_.emplace(token.token_hash, token).second) {
    return AlreadyExists("a token with this hash already exists");
  }
  return OkStatus();
}

Result<store::BearerTokenRecord> MemoryStore::GetBearerToken(ByteView token_hash) {
  std::lock_guard lock(mu_);
  auto it = tokens_by_hash_.find(Bytes(token_hash.begin(), token_hash.end()));
  if (it == tokens_by_hash_.end()) return NotFound("no such bearer token");
  return it->second;
}

Status MemoryStore::RevokeBearerToken(ByteView token_hash, TimePoint now) {
  std::lock_guard lock(mu_);
  auto it = tokens_by_hash_.find(Bytes(token_hash.begin(), token_hash.end()));
  if (it == tokens_by_hash_.end()) return NotFound("no such bearer token");
  if (!it->second.revoked_at) it->second.revoked_at = now;
  return OkStatus();
}

Result<int64_t> MemoryStore::RevokeAccountTokens(std::string_view account_id, TimePoint now,
                                                 ByteView keep) {
  std::lock_guard lock(mu_);
  int64_t count = 0;
  for (auto& [hash, token] : tokens_by_hash_) {
    const bool kept = !keep.empty() && std::ranges::equal(hash, keep);
    if (token.account_id == account_id && !token.revoked_at && !kept) {
      token.revoked_at = now;
      ++count;
    }
  }
  return count;
}

Result<int64_t> MemoryStore::DeleteExpiredBearerTokens(TimePoint cutoff) {
  std::lock_guard lock(mu_);
  int64_t count = 0;
  for (auto it = tokens_by_hash_.begin(); it != tokens_by_hash_.end();) {
    if (it->second.expires_at < cutoff) {
      it = tokens_by_hash_.erase(it);
      ++count;
    } else {
      ++it;
    }
  }
  return count;
}

namespace {
constexpr uint8_t kFakeSealVersion = 1;
constexpr size_t kFakeIvSize = 12;
constexpr size_t kFakeTagSize = 16;

struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
}  // namespace

FakeSecretSealer::FakeSecretSealer() {
  Bytes key(32);
  if (RAND_bytes(key.data(), static_cast<int>(key.size())) != 1) std::abort();
  key_ = SecretBytes(ByteView(key));
}

Result<Bytes> FakeSecretSealer::Seal(ByteView plaintext, ByteView aad) {
  if (plaintext.empty()) return InvalidArgument("nothing to seal");
  Bytes out(1 + kFakeIvSize + plaintext.size() + kFakeTagSize);
  out[0] = kFakeSealVersion;
  if (RAND_bytes(out.data() + 1, kFakeIvSize) != 1) return InternalError("fake RAND_bytes");
  std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree> ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  if (EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key_.data(), out.data() + 1) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), out.data() + 1 + kFakeIvSize, &len, plaintext.data(),
                        static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), out.data() + 1 + kFakeIvSize + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kFakeTagSize,
                          out.data() + out.size() - kFakeTagSize) != 1) {
    return InternalError("fake seal failed");
  }
  return out;
}

Result<SecretBytes> FakeSecretSealer::Unseal(ByteView sealed, ByteView aad) {
  if (sealed.size() <= 1 + kFakeIvSize + kFakeTagSize || sealed[0] != kFakeSealVersion) {
    return DataLoss("sealed secret has an unknown format");
  }
  const size_t ct_size = sealed.size() - 1 - kFakeIvSize - kFakeTagSize;
  Bytes tag(sealed.end() - kFakeTagSize, sealed.end());
  Bytes plain(ct_size);
  std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree> ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  bool ok =
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key_.data(), sealed.data() + 1) ==
          1 &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) == 1 &&
      EVP_DecryptUpdate(ctx.get(), plain.data(), &len, sealed.data() + 1 + kFakeIvSize,
                        static_cast<int>(ct_size)) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kFakeTagSize, tag.data()) == 1 &&
      EVP_DecryptFinal_ex(ctx.get(), plain.data() + len, &len) == 1;
  SecretBytes result{ByteView(plain)};
  SecureWipe(plain.data(), plain.size());
  if (!ok) return DataLoss("sealed secret failed its integrity check");
  return result;
}

}  // namespace signet::testing

// ---- end of accounts and bearer tokens ----

// ---- activations, grants, policies (migration 3) ----

namespace signet::testing {

Status MemoryStore::InsertActivation(const store::ActivationRecord& activation,
                                     int64_t max_open_for_account) {
  std::lock_guard lock(mu_);
  if (max_open_for_account > 0) {
    int64_t open = 0;
    for (const auto& [sad_hash, a] : activations_) {
      if (a.account_id == activation.account_id && a.expires_at > activation.created_at &&
          a.signatures_used < a.num_signatures) {
        ++open;
      }
    }
    if (open >= max_open_for_account) {
      return ResourceExhausted(std::string(store::kOpenActivationsMessage) + "account '" +
                               activation.account_id + "' holds " + std::to_string(open));
    }
  }
  if (by_id_.count(activation.key_id) == 0) {
    return NotFound("no key with id '" + activation.key_id + "'");
  }
  if (activation.hashes.empty()) return InvalidArgument("an activation needs at least one hash");
  std::set<Bytes> seen;
  for (const auto& h : activation.hashes) {
    if (!seen.insert(h.hash).second) return InvalidArgument("an activation lists a hash twice");
  }
  if (!activations_.emplace(activation.sad_hash, activation).second) {
    return AlreadyExists("an activation with this SAD hash exists");
  }
  return OkStatus();
}

Result<int64_t> MemoryStore::DeleteExpiredActivations(TimePoint cutoff) {
  std::lock_guard lock(mu_);
  int64_t deleted = 0;
  for (auto it = activations_.begin(); it != activations_.end();) {
    if (it->second.expires_at < cutoff) {
      it = activations_.erase(it);
      ++deleted;
    } else {
      ++it;
    }
  }
  return deleted;
}

Result<store::ActivationRecord> MemoryStore::GetActivation(ByteView sad_hash) {
  std::lock_guard lock(mu_);
  auto it = activations_.find(Bytes(sad_hash.begin(), sad_hash.end()));
  if (it == activations_.end()) return NotFound("no activation with this SAD");
  return it->second;
}

Result<int64_t> MemoryStore::CountOpenActivations(std::string_view account_id, TimePoint now) {
  std::lock_guard lock(mu_);
  int64_t open = 0;
  for (const auto& [sad_hash, a] : activations_) {
    if (a.account_id == account_id && a.expires_at > now && a.signatures_used < a.num_signatures) {
      ++open;
    }
  }
  return open;
}

Status MemoryStore::ConsumeActivationHashes(const store::ConsumeActivationRequest& request) {
  std::lock_guard lock(mu_);
  consume_flush_modes_.push_back(request.flush_with_next_commit);
  auto it = activations_.find(request.sad_hash);
  std::optional<store::ActivationRecord> found;
  if (it != activations_.end()) found = it->second;
  const int64_t minute = store::RateMinute(request.now);
  store::SignatureCounts counts;
  for (const auto& [k, n] : signature_counts_) {
    const auto& [key_id, account_id, m] = k;
    if (m != minute) continue;
    if (key_id == request.key_id) counts.key += n;
    if (key_id == request.key_id && account_id == request.account_id) counts.account_key += n;
    if (account_id == request.account_id) counts.account += n;
  }
  SIGNET_TRY(store::CheckActivationConsumable(found, request, counts));
  auto key = by_id_.find(request.key_id);
  if (key == by_id_.end()) return NotFound("key '" + request.key_id + "' does not exist");
  if (key->second.state != store::KeyState::kActive) {
    return FailedPrecondition("key '" + request.key_id + "' is " +
                              std::string(store::KeyStateName(key->second.state)) +
                              "; only an active key can be used");
  }
  if (!grants_.contains({request.key_id, request.account_id})) {
    return PermissionDenied("account '" + request.account_id + "' has no grant on key '" +
                            request.key_id + "'");
  }
  for (const Bytes& h : request.hashes) {
    for (auto& ah : it->second.hashes) {
      if (ah.hash == h) ah.consumed_at = FromUnixSeconds(ToUnixSeconds(request.now));
    }
  }
  const auto n = static_cast<int64_t>(request.hashes.size());
  it->second.signatures_used += n;
  signature_counts_[{request.key_id, request.account_id, minute}] += n;
  return OkStatus();
}

Status MemoryStore::ReplaceActivation(ByteView old_sad_hash, std::string_view account_id,
                                      std::string_view key_id, TimePoint now,
                                      const store::ActivationRecord& replacement,
                                      int64_t max_transaction_signatures,
                                      int64_t max_open_for_account) {
  std::lock_guard lock(mu_);
  auto it = activations_.find(Bytes(old_sad_hash.begin(), old_sad_hash.end()));
  std::optional<store::ActivationRecord> found;
  if (it != activations_.end()) found = it->second;
  SIGNET_TRY(store::CheckActivationBinding(found, account_id, key_id, now));
  if (max_open_for_account > 0 && found->signatures_used >= found->num_signatures) {
    int64_t open = 0;
    for (const auto& [sad_hash, a] : activations_) {
      if (a.account_id == account_id && a.expires_at > now &&
          a.signatures_used < a.num_signatures) {
        ++open;
      }
    }
    if (open >= max_open_for_account) {
      return ResourceExhausted(std::string(store::kOpenActivationsMessage) + "account '" +
                               std::string(account_id) + "' holds " + std::to_string(open));
    }
  }
  SIGNET_ASSIGN_OR_RETURN(
      store::ActivationRecord next,
      store::ContinueTransaction(*found, replacement, max_transaction_signatures));
  if (activations_.count(next.sad_hash) != 0) {
    return AlreadyExists("an activation with this SAD hash exists");
  }
  activations_.erase(it);
  activations_.emplace(next.sad_hash, std::move(next));
  return OkStatus();
}

Status MemoryStore::InsertGrant(std::string_view key_id, std::string_view account_id,
                                TimePoint /*now*/) {
  std::lock_guard lock(mu_);
  if (by_id_.count(std::string(key_id)) == 0) {
    return NotFound("no key with id '" + std::string(key_id) + "'");
  }
  if (!grants_.emplace(std::string(key_id), std::string(account_id)).second) {
    return AlreadyExists("account '" + std::string(account_id) + "' already has a grant");
  }
  return OkStatus();
}

Status MemoryStore::DeleteGrant(std::string_view key_id, std::string_view account_id) {
  std::lock_guard lock(mu_);
  if (grants_.erase({std::string(key_id), std::string(account_id)}) == 0) {
    return NotFound("account '" + std::string(account_id) + "' has no grant on the key");
  }
  return OkStatus();
}

Result<bool> MemoryStore::HasGrant(std::string_view key_id, std::string_view account_id) {
  std::lock_guard lock(mu_);
  return grants_.count({std::string(key_id), std::string(account_id)}) != 0;
}

Result<std::vector<std::string>> MemoryStore::ListGrants(std::string_view key_id) {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [k, a] : grants_) {
    if (k == key_id) out.push_back(a);
  }
  return out;
}

Status MemoryStore::PutKeyPolicy(const store::KeyPolicyRecord& policy) {
  std::lock_guard lock(mu_);
  if (by_id_.count(policy.key_id) == 0) return NotFound("no key with id '" + policy.key_id + "'");
  policies_[policy.key_id] = policy;
  return OkStatus();
}

Result<std::optional<store::KeyPolicyRecord>> MemoryStore::GetKeyPolicy(std::string_view key_id) {
  std::lock_guard lock(mu_);
  auto it = policies_.find(std::string(key_id));
  if (it == policies_.end()) return std::optional<store::KeyPolicyRecord>();
  return std::optional<store::KeyPolicyRecord>(it->second);
}

Status InsertCallerAccount(store::Store& store, const service::Caller& caller, TimePoint now) {
  store::AccountRecord account;
  account.id = caller.actor.account_id;
  account.name =
      caller.actor.account_name.empty() ? caller.actor.account_id : caller.actor.account_name;
  account.roles = caller.actor.roles;
  account.created_at = account.updated_at = now;
  return store.InsertAccount(account);
}

Result<service::Caller> InsertAdminSession(store::Store& store, const std::string& name,
                                           const Bytes& token_hash, TimePoint now,
                                           std::chrono::seconds lifetime) {
  store::AccountRecord account;
  account.id = "a_" + name;
  account.name = name;
  account.roles = store::RoleSet{store::Role::kAdmin};
  account.created_at = account.updated_at = now;
  SIGNET_TRY(store.InsertAccount(account));
  store::BearerTokenRecord token;
  token.token_hash = token_hash;
  token.account_id = account.id;
  token.created_at = now;
  token.expires_at = now + lifetime;
  SIGNET_TRY(store.InsertBearerToken(token));
  service::Caller caller;
  caller.actor.account_id = account.id;
  caller.actor.account_name = account.name;
  caller.actor.roles = account.roles;
  caller.actor.auth_method = service::AuthMethod::kPasswordTotp;
  caller.session_token_hash = token_hash;
  return caller;
}

}  // namespace signet::testing

// ---- end of activations, grants, policies ----
