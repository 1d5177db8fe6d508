// Hand-written fakes of the KeyStore and Store ports for unit tests of service/. FakeKeyStore keeps
// OpenSSL keys in memory (the opposite of what production does: tests only); MemoryStore keeps
// records in a map. Both can be told to fail the next call to exercise rollback paths. RSA keys
// of one size share their key material within a process (generation is slow); EC keys do not.
// Thread-safe (one mutex each).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <tuple>

#include "hsm/key_store.h"
#include "hsm/secret_sealer.h"
#include "store/store.h"

namespace signet::testing {

// Checks `signature` over `digest` with the public key `spki_base64` (a KeyRecord's
// public_key_spki) using OpenSSL directly, independently of the code that signed.
bool VerifyWithPublicKey(std::string_view spki_base64, SignatureScheme scheme, HashAlgorithm hash,
                         ByteView digest, ByteView signature);

// RFC 4648 base32 without padding, for turning a TOTP enrolment back into the seed an
// authenticator app would use.
SecretBytes Base32Decode(std::string_view text);

class FakeKeyStore final : public hsm::KeyStore {
 public:
  FakeKeyStore();
  ~FakeKeyStore() override;
  Result<hsm::GeneratedKey> GenerateKey(KeyAlgorithm algorithm, std::string_view label) override;
  Result<Bytes> PublicKey(const hsm::HsmKeyId& id) override;
  Result<Bytes> Sign(const hsm::HsmKeyId& id, SignatureScheme scheme, HashAlgorithm hash,
                     ByteView input) override;
  Result<hsm::KeyProtection> Protection(const hsm::HsmKeyId& id) override;
  Status DestroyKey(const hsm::HsmKeyId& id) override;
  Result<hsm::TokenDescription> DescribeToken() override;

  size_t KeyCount();
  void FailNextDestroy(Error e);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class MemoryStore final : public store::Store {
 public:
  Status InsertKey(const store::KeyRecord& key) override;
  Result<store::KeyRecord> GetKeyByName(std::string_view name) override;
  Result<store::KeyRecord> GetKeyById(std::string_view id) override;
  Result<std::vector<store::KeyRecord>> ListKeys() override;
  Status UpdateKeyState(std::string_view id, store::KeyState from, store::KeyState to,
                        TimePoint now) override;
  Status SetCertificateChain(std::string_view id, std::string_view chain_pem,
                             TimePoint now) override;
  Status Ping() override { return OkStatus(); }

  // ---- accounts and bearer tokens (migration 2) ----
  Status InsertAccount(const store::AccountRecord& account) override;
  Result<store::AccountRecord> GetAccountById(std::string_view id) override;
  Result<store::AccountRecord> GetAccountByName(std::string_view name) override;
  Result<store::AccountRecord> GetAccountByFingerprint(std::string_view fingerprint) override;
  Result<std::vector<store::AccountRecord>> ListAccounts() override;
  Result<bool> RecordTotpStep(std::string_view id, int64_t step, TimePoint now) override;
  Result<store::LoginFailureState> RecordLoginFailure(std::string_view id, int64_t lock_threshold,
                                                      TimePoint lock_until,
                                                      TimePoint now) override;
  Status ClearLoginFailures(std::string_view id, TimePoint now) override;
  Status UpdateAccountState(std::string_view id, store::AccountState from, store::AccountState to,
                            TimePoint now) override;
  Status SetAccountRoles(std::string_view id, const store::RoleSet& roles, TimePoint now) override;
  Status SetPasswordHash(std::string_view id, std::string_view password_hash,
                         bool must_change_password, TimePoint now) override;
  Status SetTotpSeed(std::string_view id, ByteView sealed_seed, TimePoint now) override;
  Status InsertBearerToken(const store::BearerTokenRecord& token) override;
  Result<store::BearerTokenRecord> GetBearerToken(ByteView token_hash) override;
  Status RevokeBearerToken(ByteView token_hash, TimePoint now) override;
  Result<int64_t> RevokeAccountTokens(std::string_view account_id, TimePoint now) override;
  Result<int64_t> DeleteExpiredBearerTokens(TimePoint cutoff) override;
  // ---- end of accounts and bearer tokens ----

  // ---- activations, grants, policies, audit events (migration 3) ----
  Status InsertActivation(const store::ActivationRecord& activation) override;
  Result<int64_t> DeleteExpiredActivations(TimePoint cutoff) override;
  Result<store::ActivationRecord> GetActivation(ByteView sad_hash) override;
  Status ConsumeActivationHashes(const store::ConsumeActivationRequest& request) override;
  Status ReplaceActivation(ByteView old_sad_hash, std::string_view account_id,
                           std::string_view key_id, TimePoint now,
                           const store::ActivationRecord& replacement) override;
  Status InsertGrant(std::string_view key_id, std::string_view account_id, TimePoint now) override;
  Status DeleteGrant(std::string_view key_id, std::string_view account_id) override;
  Result<bool> HasGrant(std::string_view key_id, std::string_view account_id) override;
  Result<std::vector<std::string>> ListGrants(std::string_view key_id) override;
  Status PutKeyPolicy(const store::KeyPolicyRecord& policy) override;
  Result<std::optional<store::KeyPolicyRecord>> GetKeyPolicy(std::string_view key_id) override;
  Result<int64_t> AppendAuditEvent(TimePoint time, std::string_view action,
                                   std::string_view json) override;
  Result<std::vector<store::AuditEventRow>> ListAuditEvents(int64_t after_seq,
                                                            int64_t limit) override;
  // The next AppendAuditEvent fails with `e` and appends nothing.
  void FailNextAuditAppend(Error e);
  // ---- end of activations, grants, policies, audit events ----

  void FailNextInsert(Error e);

 private:
  std::mutex mu_;
  std::map<std::string, store::KeyRecord> by_id_;  // guarded by mu_
  std::optional<Error> fail_insert_;               // guarded by mu_
  // ---- accounts and bearer tokens (migration 2) ----
  std::map<std::string, store::AccountRecord> accounts_by_id_;     // guarded by mu_
  std::map<Bytes, store::BearerTokenRecord> tokens_by_hash_;       // guarded by mu_
  // ---- end of accounts and bearer tokens ----
  // ---- activations, grants, policies, audit events (migration 3) ----
  std::map<Bytes, store::ActivationRecord> activations_;                  // guarded by mu_
  std::set<std::pair<std::string, std::string>> grants_;                  // (key, account); mu_
  std::map<std::string, store::KeyPolicyRecord> policies_;                // guarded by mu_
  std::vector<store::AuditEventRow> audit_events_;                        // guarded by mu_
  std::map<std::tuple<std::string, std::string, int64_t>, int64_t> signature_counts_;  // mu_
  std::optional<Error> fail_audit_append_;                                // guarded by mu_
  // ---- end of activations, grants, policies, audit events ----
};

// ---- accounts and bearer tokens (migration 2) ----
// A SecretSealer with an AES-256-GCM key in process memory (OpenSSL) and the same sealed format
// as the PKCS#11 adapter; tests only.
class FakeSecretSealer final : public hsm::SecretSealer {
 public:
  FakeSecretSealer();
  Result<Bytes> Seal(ByteView plaintext, ByteView aad) override;
  Result<SecretBytes> Unseal(ByteView sealed, ByteView aad) override;

 private:
  SecretBytes key_;  // constant after construction
};
// ---- end of accounts and bearer tokens ----

}  // namespace signet::testing
