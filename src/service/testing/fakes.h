// Hand-written fakes of the KeyStore and Store ports for unit tests of service/. FakeKeyStore keeps
// OpenSSL keys in memory (the opposite of what production does: tests only); MemoryStore keeps
// records in a map. Both can be told to fail the next call to exercise rollback paths.
// Thread-safe (one mutex each).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "hsm/key_store.h"
#include "store/store.h"

namespace signet::testing {

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

  void FailNextInsert(Error e);

 private:
  std::mutex mu_;
  std::map<std::string, store::KeyRecord> by_id_;  // guarded by mu_
  std::optional<Error> fail_insert_;               // guarded by mu_
};

}  // namespace signet::testing
