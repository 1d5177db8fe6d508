#include "service/key_service.h"

#include "common/encoding.h"
#include "common/random.h"
#include "pki/pki.h"

namespace signet::service {
namespace {

using store::KeyRecord;
using store::KeyState;

// Record ids are public but must never collide or be predictable: 64 random bits.
Result<std::string> NewRecordId() {
  Bytes b(8);
  SIGNET_TRY(RandomBytes(b));
  return "k_" + HexEncode(b);
}

Result<hsm::HsmKeyId> HsmIdOf(const KeyRecord& r) {
  auto bytes = HexDecode(r.hsm_key_id);
  if (!bytes.ok()) {
    return DataLoss("key '" + r.name + "' has a corrupt HSM key id in the database");
  }
  return hsm::HsmKeyId{std::move(*bytes)};
}

Result<Bytes> SpkiOf(const KeyRecord& r) {
  auto spki = Base64Decode(r.public_key_spki);
  if (!spki.ok()) return DataLoss("key '" + r.name + "' has a corrupt public key in the database");
  return spki;
}

}  // namespace

KeyService::KeyService(hsm::KeyStore& key_store, store::Store& store, const Clock& clock,
                       TokenIdentity token)
    : key_store_(key_store), store_(store), clock_(clock), token_(std::move(token)) {}

Status KeyService::ValidateKeyName(std::string_view name) {
  if (name.empty() || name.size() > 64) {
    return InvalidArgument("key name must be 1 to 64 characters long");
  }
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  if (!alnum(name[0])) {
    return InvalidArgument("key name '" + std::string(name) + "' must start with a letter or digit");
  }
  for (char c : name) {
    if (!alnum(c) && c != '.' && c != '_' && c != '-') {
      return InvalidArgument("key name '" + std::string(name) +
                             "' may only contain letters, digits, '.', '_' and '-'");
    }
  }
  return OkStatus();
}

Result<KeyRecord> KeyService::CreateKey(std::string_view name, KeyAlgorithm algorithm,
                                        std::string_view owner) {
  SIGNET_TRY(ValidateKeyName(name));
  if (!IsCodeSigningAlgorithm(algorithm)) {
    return InvalidArgument("algorithm " + std::string(KeyAlgorithmName(algorithm)) +
                           " is not allowed for code-signing keys; use rsa-3072, rsa-4096, "
                           "ec-p256 or ec-p384");
  }
  // Checked first so the common mistake costs no key generation; the unique index in the store
  // still decides races.
  auto existing = store_.GetKeyByName(name);
  if (existing.ok()) {
    return AlreadyExists("a key named '" + std::string(name) + "' already exists (" +
                         std::string(store::KeyStateName(existing->state)) + ")");
  }
  if (existing.error().code() != ErrorCode::kNotFound) return std::move(existing).error();

  SIGNET_ASSIGN_OR_RETURN(std::string record_id, NewRecordId());
  SIGNET_ASSIGN_OR_RETURN(hsm::GeneratedKey generated, key_store_.GenerateKey(algorithm, name));

  TimePoint now = clock_.Now();
  KeyRecord record;
  record.id = std::move(record_id);
  record.name = std::string(name);
  record.algorithm = std::string(KeyAlgorithmName(algorithm));
  record.state = KeyState::kActive;
  record.owner = std::string(owner);
  record.token_label = token_.label;
  record.token_serial = token_.serial;
  record.hsm_key_id = HexEncode(generated.id.bytes);
  record.public_key_spki = Base64Encode(generated.public_key_spki);
  record.created_at = now;
  record.updated_at = now;

  Status inserted = store_.InsertKey(record);
  if (!inserted.ok()) {
    // No orphan keys in the HSM: undo the generation. If even that fails, say so.
    Status undo = key_store_.DestroyKey(generated.id);
    if (!undo.ok()) {
      return inserted.error().WithContext(
          "key generated in the HSM (CKA_ID " + record.hsm_key_id +
          ") could not be recorded nor removed (" + undo.error().message() + ")");
    }
    return std::move(inserted).error();
  }
  return record;
}

Result<std::vector<KeyRecord>> KeyService::ListKeys() { return store_.ListKeys(); }

Result<KeyDetails> KeyService::ShowKey(std::string_view name) {
  KeyDetails details;
  SIGNET_ASSIGN_OR_RETURN(details.record, store_.GetKeyByName(name));
  if (details.record.state == KeyState::kDestroyed) return details;
  SIGNET_ASSIGN_OR_RETURN(hsm::HsmKeyId id, HsmIdOf(details.record));
  auto protection = key_store_.Protection(id);
  if (!protection.ok()) {
    if (protection.error().code() != ErrorCode::kNotFound) return std::move(protection).error();
    return details;
  }
  details.present_in_hsm = true;
  details.protection = *protection;
  SIGNET_ASSIGN_OR_RETURN(Bytes hsm_spki, key_store_.PublicKey(id));
  SIGNET_ASSIGN_OR_RETURN(Bytes stored_spki, SpkiOf(details.record));
  details.public_key_matches_hsm = (hsm_spki == stored_spki);
  return details;
}

Result<KeyRecord> KeyService::Transition(std::string_view name, KeyState from, KeyState to,
                                         std::string_view verb) {
  SIGNET_ASSIGN_OR_RETURN(KeyRecord record, store_.GetKeyByName(name));
  if (record.state != from) {
    return FailedPrecondition("cannot " + std::string(verb) + " key '" + std::string(name) +
                              "': it is " + std::string(store::KeyStateName(record.state)));
  }
  TimePoint now = clock_.Now();
  SIGNET_TRY(store_.UpdateKeyState(record.id, from, to, now));
  record.state = to;
  record.updated_at = now;
  return record;
}

Result<KeyRecord> KeyService::DisableKey(std::string_view name) {
  return Transition(name, KeyState::kActive, KeyState::kDisabled, "disable");
}

Result<KeyRecord> KeyService::EnableKey(std::string_view name) {
  return Transition(name, KeyState::kDisabled, KeyState::kActive, "enable");
}

Result<KeyRecord> KeyService::DestroyKey(std::string_view name) {
  SIGNET_ASSIGN_OR_RETURN(KeyRecord record, store_.GetKeyByName(name));
  SIGNET_ASSIGN_OR_RETURN(hsm::HsmKeyId id, HsmIdOf(record));
  if (record.state != KeyState::kDestroyed) {
    // Mark first: a key the store calls destroyed can no longer be used even if the HSM step
    // below fails; repeating the command finishes the job.
    TimePoint now = clock_.Now();
    SIGNET_TRY(store_.UpdateKeyState(record.id, record.state, KeyState::kDestroyed, now));
    record.state = KeyState::kDestroyed;
    record.updated_at = now;
  }
  Status destroyed = key_store_.DestroyKey(id);
  if (!destroyed.ok()) {
    return destroyed.error().WithContext("key '" + record.name +
                                         "' is marked destroyed but the HSM did not remove it; "
                                         "run the command again");
  }
  return record;
}

Result<std::string> KeyService::CreateCsr(std::string_view name, std::string_view subject) {
  SIGNET_ASSIGN_OR_RETURN(pki::DistinguishedName dn, pki::ParseSubject(subject));
  SIGNET_ASSIGN_OR_RETURN(KeyRecord record, store_.GetKeyByName(name));
  if (record.state != KeyState::kActive) {
    return FailedPrecondition("cannot make a CSR for key '" + record.name + "': it is " +
                              std::string(store::KeyStateName(record.state)));
  }
  SIGNET_ASSIGN_OR_RETURN(KeyAlgorithm alg, ParseKeyAlgorithm(record.algorithm));
  SIGNET_ASSIGN_OR_RETURN(hsm::HsmKeyId id, HsmIdOf(record));
  SIGNET_ASSIGN_OR_RETURN(Bytes spki, SpkiOf(record));
  pki::DigestSigner signer = [&](SignatureScheme scheme, HashAlgorithm hash, ByteView digest) {
    return key_store_.Sign(id, scheme, hash, digest);
  };
  return pki::CreateCsrPem(spki, alg, dn, signer);
}

Result<KeyRecord> KeyService::ImportCertificateChain(std::string_view name, std::string_view pem) {
  SIGNET_ASSIGN_OR_RETURN(KeyRecord record, store_.GetKeyByName(name));
  if (record.state == KeyState::kDestroyed) {
    return FailedPrecondition("cannot import a certificate for key '" + record.name +
                              "': it is destroyed");
  }
  SIGNET_ASSIGN_OR_RETURN(Bytes spki, SpkiOf(record));
  auto chain = pki::ParseChainForKey(pem, spki);
  if (!chain.ok()) return chain.error().WithContext("key '" + record.name + "'");
  TimePoint now = clock_.Now();
  SIGNET_TRY(store_.SetCertificateChain(record.id, chain->pem, now));
  record.certificate_chain_pem = chain->pem;
  record.updated_at = now;
  return record;
}

}  // namespace signet::service
