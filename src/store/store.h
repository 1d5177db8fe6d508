// Store: the port for everything signet keeps in its database, shaped by what the service needs.
// This first version holds code-signing key records; later issues add accounts, activations,
// audit entries and checkpoints. Adapters: store/sqlite/ (default, one machine) and, later,
// store/postgres/ (several nodes).
//
// Every method is atomic: it either fully applies or changes nothing. Threads: an implementation
// may be used from many threads at once.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/result.h"

namespace signet::store {

enum class KeyState { kActive, kDisabled, kDestroyed };

// "active", "disabled", "destroyed".
std::string_view KeyStateName(KeyState state);
Result<KeyState> ParseKeyState(std::string_view name);

// A code-signing key as the service knows it. The private key itself is in the HSM, named by
// (token_serial, hsm_key_id).
struct KeyRecord {
  std::string id;          // signet's identifier, e.g. "k_3f2a9c0d1e5b4a7c"; never reused
  std::string name;        // unique, chosen by the user
  std::string algorithm;   // KeyAlgorithmName(), e.g. "rsa-3072"
  KeyState state = KeyState::kActive;
  std::string owner;       // account that owns the key ("local" for CLI-created keys)
  std::string token_label;    // PKCS#11 token holding the key
  std::string token_serial;
  std::string hsm_key_id;     // CKA_ID, lower-case hex
  std::string public_key_spki;  // DER SubjectPublicKeyInfo, base64
  std::string certificate_chain_pem;  // leaf first; empty until imported
  TimePoint created_at;
  TimePoint updated_at;
};

class Store {
 public:
  virtual ~Store() = default;

  // Inserts a new key. AlreadyExists if the name or id is taken (by a key in any state).
  virtual Status InsertKey(const KeyRecord& key) = 0;

  // NotFound if there is no key of that name / id.
  virtual Result<KeyRecord> GetKeyByName(std::string_view name) = 0;
  virtual Result<KeyRecord> GetKeyById(std::string_view id) = 0;

  // All keys, ordered by name.
  virtual Result<std::vector<KeyRecord>> ListKeys() = 0;

  // Moves key `id` from state `from` to `to` and sets updated_at. FailedPrecondition if the key is
  // not in state `from` (compare-and-set, so two concurrent changes cannot both succeed).
  virtual Status UpdateKeyState(std::string_view id, KeyState from, KeyState to,
                                TimePoint now) = 0;

  // Replaces the certificate chain of key `id` and sets updated_at.
  virtual Status SetCertificateChain(std::string_view id, std::string_view chain_pem,
                                     TimePoint now) = 0;

  // Cheap check that the database answers; for status and health output.
  virtual Status Ping() = 0;
};

}  // namespace signet::store
