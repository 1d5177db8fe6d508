// Where `signet key ...` acts: the data folder (KeyService on the local token, as the foundation
// commands always did) or a signet server (the management API, with the saved session). Both
// answer with the same records, so a key command prints the same text and JSON either way.
// Which one is used follows the rule in remote_context.h.
//
// Not thread-safe: one backend per command.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/command.h"
#include "common/algorithms.h"
#include "common/result.h"
#include "service/key_service.h"
#include "store/store.h"

namespace signet::cli {

class KeyBackend {
 public:
  virtual ~KeyBackend() = default;
  // Each mirrors the KeyService operation of the same name (errors as there, or as the server
  // maps them); the caller has validated names and algorithms where it can.
  virtual Result<store::KeyRecord> CreateKey(const std::string& name, KeyAlgorithm alg) = 0;
  virtual Result<std::vector<store::KeyRecord>> ListKeys() = 0;
  virtual Result<service::KeyDetails> ShowKey(const std::string& name) = 0;
  virtual Result<store::KeyRecord> DisableKey(const std::string& name) = 0;
  virtual Result<store::KeyRecord> EnableKey(const std::string& name) = 0;
  virtual Result<store::KeyRecord> DestroyKey(const std::string& name) = 0;
  // NotFound when there is no such key (asked before a confirmation prompt).
  virtual Status CheckKeyExists(const std::string& name) = 0;
  virtual Result<std::string> CreateCsr(const std::string& name, const std::string& subject) = 0;
  virtual Result<store::KeyRecord> ImportCertificateChain(const std::string& name,
                                                          const std::string& chain_pem) = 0;
  virtual Result<std::vector<service::UnrecordedKey>> ListUnrecordedKeys() = 0;
  virtual Result<service::UnrecordedKey> DestroyUnrecordedKey(const std::string& hsm_key_id) = 0;
};

// The backend the rule chooses for `global`: OpenLocal on the data folder, or the session's
// server (Unauthenticated when not logged in or the session expired).
Result<std::unique_ptr<KeyBackend>> OpenKeyBackend(const GlobalOptions& global);

class RemoteContext;
// The management API as a KeyBackend (remote_keys.cc).
std::unique_ptr<KeyBackend> MakeRemoteKeyBackend(std::unique_ptr<RemoteContext> remote);

// The management API's Key object (docs/api.md; the fields of KeyToJson / KeyDetailsToJson) back
// into the records the local commands print, so output is identical. Internal ("unexpected answer
// from the server: ...", naming the field) when the answer does not have the documented shape.
Result<store::KeyRecord> KeyRecordFromJson(const nlohmann::json& j);
Result<service::KeyDetails> KeyDetailsFromJson(const nlohmann::json& j);
Result<service::UnrecordedKey> UnrecordedKeyFromJson(const nlohmann::json& j);

}  // namespace signet::cli
