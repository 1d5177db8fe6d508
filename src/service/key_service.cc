#include "service/key_service.h"

#include <algorithm>
#include <mutex>
#include <set>

#include "common/encoding.h"
#include "common/log.h"
#include "common/random.h"
#include "common/text.h"
#include "pki/pki.h"
#include "service/admin_session.h"
#include "service/hsm_failure.h"

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

// A CKA_LABEL (bytes, not necessarily text) as printable ASCII: other bytes as \xNN, so that it
// is valid UTF-8 in JSON and carries no control sequence to a terminal or a log line.
std::string PrintableLabel(std::string_view label) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (char c : label.substr(0, 256)) {
    const auto b = static_cast<unsigned char>(c);
    if (b >= 0x20 && b < 0x7f && b != '\\') {
      out += c;
    } else {
      out += "\\x";
      out += kHex[b >> 4];
      out += kHex[b & 0x0f];
    }
  }
  if (label.size() > 256) out += "...";
  return out;
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
                       AuditSink& audit, TokenIdentity token)
    : key_store_(key_store),
      store_(store),
      clock_(clock),
      audit_(audit),
      token_(std::move(token)) {}

Status KeyService::Record(const Caller& caller, AuditAction action, std::string_view object,
                          std::string_view outcome, std::map<std::string, std::string> details) {
  return audit_.Record(MakeEvent(caller, action, object, outcome, std::move(details)));
}

Status KeyService::RecordChange(const Caller& caller, AuditAction action, std::string_view object,
                                std::map<std::string, std::string> details,
                                const AuditedChange& change) {
  AuditEvent event = MakeEvent(caller, action, object, kOutcomeSuccess, std::move(details));
  return audit_.RecordChange(event, [&](AuditDetails& d) -> Status {
    // Every change here is an admin's: its session must still be one when the change commits.
    SIGNET_TRY(RecheckAdminSession(store_, caller.actor.account_id, caller.actor.account_name,
                                   caller.session_token_hash, clock_.Now()));
    return change(d);
  });
}

AuditEvent KeyService::MakeEvent(const Caller& caller, AuditAction action, std::string_view object,
                                 std::string_view outcome,
                                 std::map<std::string, std::string> details) const {
  AuditEvent event;
  event.time = clock_.Now();
  event.actor = caller.actor;
  event.request_id = caller.request_id;
  event.action = action;
  event.object = std::string(object);
  event.outcome = std::string(outcome);
  event.details = std::move(details);
  return event;
}

Error KeyService::Refused(const Caller& caller, AuditAction action, std::string_view object,
                          Error error, std::map<std::string, std::string> details) {
  if (!details.contains("key_id")) {
    // A name that names no key (a create, a typo) leaves the entry without one.
    if (auto key = store_.GetKeyByName(object); key.ok()) details["key_id"] = key->id;
  }
  Status recorded = Record(caller, action, object, error.message(), std::move(details));
  if (!recorded.ok()) {
    // Why the log failed is for the operator (it may name files), not in a refusal's answer.
    LogLine(LogLevel::kError, "audit",
            "request " + caller.request_id +
                ": a refusal could not be logged: " + recorded.error().message());
    return error.WithContext("(the refusal could not be logged either)");
  }
  return error;
}

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
  // A credential is named by id or by name (SigningService::ResolveKey tries the id first), so a
  // name shaped like an id (NewRecordId: "k_" and 16 hex digits) could stand for another key.
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); };
  if (name.size() == 18 && name.starts_with("k_") &&
      std::all_of(name.begin() + 2, name.end(), hex)) {
    return InvalidArgument("key name '" + std::string(name) +
                           "' has the form of a key id (k_ and 16 hex digits); choose another");
  }
  return OkStatus();
}

Result<KeyRecord> KeyService::CreateKey(const Caller& caller, std::string_view name,
                                        KeyAlgorithm algorithm, std::string_view owner) {
  const auto refuse = [&](Error e) { return Refused(caller, AuditAction::kKeyCreate, name, e); };
  if (Status valid = ValidateKeyName(name); !valid.ok()) return refuse(valid.error());
  if (!IsCodeSigningAlgorithm(algorithm)) {
    return refuse(InvalidArgument("algorithm " + std::string(KeyAlgorithmName(algorithm)) +
                                  " is not allowed for code-signing keys; use rsa-3072, rsa-4096, "
                                  "ec-p256 or ec-p384"));
  }
  // Checked first so the common mistake costs no key generation; the unique index in the store
  // still decides races.
  auto existing = store_.GetKeyByName(name);
  if (existing.ok()) {
    return refuse(AlreadyExists("a key named '" + std::string(name) + "' already exists (" +
                                std::string(store::KeyStateName(existing->state)) + ")"));
  }
  if (existing.error().code() != ErrorCode::kNotFound) return refuse(existing.error());

  auto record_id = NewRecordId();
  if (!record_id.ok()) return refuse(record_id.error());
  // Held from before the HSM generates until the record is stored or the key undone: an
  // unrecorded-key listing (exclusive) never sees this key between generation and record.
  std::shared_lock creating(creation_mu_);
  auto generated = FromHsm(key_store_.GenerateKey(algorithm, name));
  if (!generated.ok()) return refuse(generated.error());

  TimePoint now = clock_.Now();
  KeyRecord record;
  record.id = std::move(*record_id);
  record.name = std::string(name);
  record.algorithm = std::string(KeyAlgorithmName(algorithm));
  record.state = KeyState::kActive;
  record.owner = std::string(owner);
  record.token_label = token_.label;
  record.token_serial = token_.serial;
  record.hsm_key_id = HexEncode(generated->id.bytes);
  record.public_key_spki = Base64Encode(generated->public_key_spki);
  record.created_at = now;
  record.updated_at = now;

  // The record and the log entry of its creation commit together: no key the log does not show.
  Status inserted = RecordChange(caller, AuditAction::kKeyCreate, name,
                                 {{"key_id", record.id},
                                  {"algorithm", record.algorithm},
                                  {"owner", record.owner},
                                  {"hsm_key_id", record.hsm_key_id}},
                                 [&](AuditDetails&) { return store_.InsertKey(record); });
  if (!inserted.ok()) {
    // No orphan keys in the HSM: undo the generation. If even that fails, say so.
    Status undo = key_store_.DestroyKey(generated->id);
    if (!undo.ok()) {
      return refuse(inserted.error().WithContext(
          "key generated in the HSM (CKA_ID " + record.hsm_key_id +
          ") could not be recorded nor removed (" + undo.error().message() + ")"));
    }
    return refuse(inserted.error().WithContext("key '" + record.name + "' was not created"));
  }
  // Another process on the same token and database (a local `key destroy-unrecorded` beside
  // `serve`) may have taken the key for a crash's leftover between its generation and the record
  // above. Then the record must not stay active over nothing: it is marked destroyed, and the log
  // says why.
  Result<Bytes> still_there = key_store_.PublicKey(generated->id);
  if (!still_there.ok() && still_there.error().code() == ErrorCode::kNotFound) {
    const TimePoint gone_at = clock_.Now();
    // A repair of the store, not the admin's change: made even if the session ended meanwhile.
    Status marked = audit_.RecordChange(
        MakeEvent(caller, AuditAction::kKeyDestroy, name, kOutcomeSuccess,
                  {{"key_id", record.id},
                   {"hsm_key_id", record.hsm_key_id},
                   {"reason", "its key material left the HSM while the key was being created"}}),
        [&](AuditDetails&) {
          return store_.UpdateKeyState(record.id, KeyState::kActive, KeyState::kDestroyed, gone_at);
        });
    Error gone = FailedPrecondition(
        "key '" + record.name +
        "' was generated and recorded, but its key material left the HSM before the creation "
        "finished (destroyed as an unrecorded key by another process?); create a key with "
        "another name");
    if (!marked.ok()) {
      return gone.WithContext("and its record could not be marked destroyed (" +
                              marked.error().message() + ")");
    }
    return gone;
  }
  return record;
}

Result<std::vector<KeyRecord>> KeyService::ListKeys() { return store_.ListKeys(); }

Status KeyService::CheckHsmKeyMatches(const KeyRecord& record, const hsm::HsmKeyId& id,
                                      const Bytes& spki, std::string_view verb) {
  auto hsm_spki = FromHsm(key_store_.PublicKey(id));
  if (!hsm_spki.ok()) {
    if (hsm_spki.error().code() == ErrorCode::kNotFound) {
      return FailedPrecondition("cannot " + std::string(verb) + " key '" + record.name +
                                "': its key material is not in the HSM");
    }
    return hsm_spki.error();
  }
  if (*hsm_spki != spki) {
    return FailedPrecondition("cannot " + std::string(verb) + " key '" + record.name +
                              "': the public key the HSM reports differs from the stored one");
  }
  return OkStatus();
}

Status KeyService::CheckOnOpenToken(const KeyRecord& record) const {
  // Both fields, always: a module may report a blank serial, and a blank serial must not make
  // every token look like the key's.
  if (record.token_serial == token_.serial && record.token_label == token_.label) {
    return OkStatus();
  }
  return FailedPrecondition("key '" + record.name + "' is on token '" + record.token_label +
                            "' (serial " + record.token_serial + "), but the token open is '" +
                            token_.label + "' (serial " + token_.serial +
                            "); open the key's token to use it");
}

Status KeyService::CheckCodeSigningLeaf(const pki::CertificateChain& chain, TimePoint now) {
  if (chain.not_after <= now) {
    return InvalidArgument("certificate 1 expired at " + chain.not_after_text +
                           "; import the renewed certificate");
  }
  if (chain.not_before >= chain.not_after) {
    return InvalidArgument("certificate 1 is never valid: its notBefore (" + chain.not_before_text +
                           ") is not before its notAfter (" + chain.not_after_text + ")");
  }
  // The import replaces the chain clients are given: one that is not valid for a long while
  // would make every signature until then fail to verify.
  if (chain.not_before > now + kMaxImportAhead) {
    return InvalidArgument("certificate 1 is not valid before " + chain.not_before_text +
                           "; the chain in use would be replaced by one no verifier accepts until "
                           "then: import it at most a day ahead");
  }
  if (chain.leaf_is_ca) {
    return InvalidArgument(
        "certificate 1 is a CA certificate (basicConstraints cA TRUE); a signing key's "
        "certificate must not be");
  }
  // keyUsage (CSBR 7.1.2.3): present and critical, digitalSignature set, no CA bits.
  if (!chain.leaf_key_usage.has_value()) {
    return InvalidArgument(
        "certificate 1 has no keyUsage extension; a code-signing certificate must carry one, "
        "critical, with digitalSignature (CSBR 7.1.2.3)");
  }
  if ((*chain.leaf_key_usage & pki::kKeyUsageDigitalSignature) == 0) {
    return InvalidArgument(
        "certificate 1's keyUsage does not allow digitalSignature, so no signature made with "
        "it would be accepted (CSBR 7.1.2.3)");
  }
  if ((*chain.leaf_key_usage & (pki::kKeyUsageKeyCertSign | pki::kKeyUsageCrlSign)) != 0) {
    return InvalidArgument(
        "certificate 1's keyUsage allows keyCertSign or cRLSign, which a code-signing "
        "certificate must not (CSBR 7.1.2.3)");
  }
  if (!chain.leaf_key_usage_critical) {
    return InvalidArgument(
        "certificate 1's keyUsage extension is not marked critical, as CSBR 7.1.2.3 requires");
  }
  const auto& usages = chain.leaf_extended_key_usage;
  const auto has = [&](std::string_view oid) {
    return usages && std::find(usages->begin(), usages->end(), oid) != usages->end();
  };
  if (!has(pki::kOidEkuCodeSigning)) {
    return InvalidArgument(
        "certificate 1 lacks the codeSigning extended key usage (1.3.6.1.5.5.7.3.3), which a "
        "code-signing certificate must carry (CSBR 7.1.2.3)");
  }
  if (has(pki::kOidEkuAny) || has(pki::kOidEkuServerAuth)) {
    return InvalidArgument(
        "certificate 1 also allows " +
        std::string(has(pki::kOidEkuAny) ? "anyExtendedKeyUsage" : "serverAuth") +
        ", which a code-signing certificate must not (CSBR 7.1.2.3)");
  }
  return OkStatus();
}

Result<KeyDetails> KeyService::ShowKey(std::string_view name) {
  KeyDetails details;
  SIGNET_ASSIGN_OR_RETURN(details.record, store_.GetKeyByName(name));
  if (!CheckOnOpenToken(details.record).ok()) {
    details.on_open_token = false;
    return details;
  }
  // Asked for destroyed keys too: key material left by a failed destruction shows up here.
  SIGNET_ASSIGN_OR_RETURN(hsm::HsmKeyId id, HsmIdOf(details.record));
  auto protection = FromHsm(key_store_.Protection(id));
  if (!protection.ok()) {
    // A destroyed key's record is still worth showing when the HSM cannot be asked.
    if (protection.error().code() != ErrorCode::kNotFound &&
        details.record.state != KeyState::kDestroyed) {
      return std::move(protection).error();
    }
    return details;
  }
  details.present_in_hsm = true;
  details.protection = *protection;
  SIGNET_ASSIGN_OR_RETURN(Bytes hsm_spki, FromHsm(key_store_.PublicKey(id)));
  SIGNET_ASSIGN_OR_RETURN(Bytes stored_spki, SpkiOf(details.record));
  details.public_key_matches_hsm = (hsm_spki == stored_spki);
  return details;
}

Result<KeyRecord> KeyService::Transition(const Caller& caller, std::string_view name,
                                         KeyState from, KeyState to, AuditAction action,
                                         std::string_view verb) {
  auto found = store_.GetKeyByName(name);
  if (!found.ok()) return Refused(caller, action, name, found.error());
  KeyRecord record = std::move(*found);
  if (record.state != from) {
    return Refused(caller, action, name,
                   FailedPrecondition("cannot " + std::string(verb) + " key '" +
                                      std::string(name) + "': it is " +
                                      std::string(store::KeyStateName(record.state))));
  }
  TimePoint now = clock_.Now();
  if (Status moved = RecordChange(
          caller, action, name, {{"key_id", record.id}},
          [&](AuditDetails&) { return store_.UpdateKeyState(record.id, from, to, now); });
      !moved.ok()) {
    return Refused(caller, action, name, moved.error());
  }
  record.state = to;
  record.updated_at = now;
  return record;
}

Result<KeyRecord> KeyService::DisableKey(const Caller& caller, std::string_view name) {
  return Transition(caller, name, KeyState::kActive, KeyState::kDisabled, AuditAction::kKeyDisable,
                    "disable");
}

Result<KeyRecord> KeyService::EnableKey(const Caller& caller, std::string_view name) {
  return Transition(caller, name, KeyState::kDisabled, KeyState::kActive, AuditAction::kKeyEnable,
                    "enable");
}

Result<KeyRecord> KeyService::DestroyKey(const Caller& caller, std::string_view name) {
  const auto refuse = [&](Error e) { return Refused(caller, AuditAction::kKeyDestroy, name, e); };
  auto found = store_.GetKeyByName(name);
  if (!found.ok()) return refuse(found.error());
  KeyRecord record = std::move(*found);
  auto id = HsmIdOf(record);
  if (!id.ok()) return refuse(id.error());
  // On another token the HSM step would find nothing and succeed, and the key would live on.
  if (Status here = CheckOnOpenToken(record); !here.ok()) return refuse(here.error());
  const bool marked_before = record.state == KeyState::kDestroyed;
  if (!marked_before) {
    // Mark first: a key the store calls destroyed can no longer be used even if the HSM step
    // below fails; repeating the command finishes the job. The mark commits with its log entry,
    // before the key material goes, so the log never lacks a destruction that happened.
    const KeyState before = record.state;
    TimePoint now = clock_.Now();
    if (Status moved = RecordChange(
            caller, AuditAction::kKeyDestroy, name,
            {{"key_id", record.id}, {"hsm_key_id", record.hsm_key_id}, {"hsm", "pending"}},
            [&](AuditDetails&) {
              return store_.UpdateKeyState(record.id, before, KeyState::kDestroyed, now);
            });
        !moved.ok()) {
      return refuse(moved.error());
    }
    record.state = KeyState::kDestroyed;
    record.updated_at = now;
  } else {
    // A repeat only finishes an earlier destroy, but it is still an admin's change: the session
    // must still be one when the key material goes (the mark's transaction checked it above).
    if (Status still =
            RecheckAdminSession(store_, caller.actor.account_id, caller.actor.account_name,
                                caller.session_token_hash, clock_.Now());
        !still.ok()) {
      return refuse(still.error());
    }
  }
  Status destroyed = key_store_.DestroyKey(*id);
  if (!destroyed.ok()) {
    destroyed = HsmFailure(destroyed.error());
    // Logged as well: the log shows that the key material outlived the mark, until a repeated
    // command's entry shows it gone.
    return Refused(caller, AuditAction::kKeyDestroy, name,
                   destroyed.error().WithContext("key '" + record.name +
                                                 "': " + std::string(kKeyDestroyPendingNote)),
                   {{"key_id", record.id}, {"hsm_key_id", record.hsm_key_id}, {"hsm", "pending"}});
  }
  // The mark's entry says "pending"; this one says the key material is gone, so a crash between
  // the two leaves a log that does not claim more than happened.
  std::map<std::string, std::string> details = {
      {"key_id", record.id}, {"hsm_key_id", record.hsm_key_id}, {"hsm", "removed"}};
  if (marked_before) details["repeated"] = "true";
  if (Status recorded = Record(caller, AuditAction::kKeyDestroy, name, "success", details);
      !recorded.ok()) {
    return recorded.error().WithContext("key '" + record.name +
                                        "' was destroyed in the HSM, but the log could not "
                                        "record that it is gone");
  }
  return record;
}

Result<std::vector<UnrecordedKey>> KeyService::Unrecorded(
    const std::vector<hsm::TokenKey>& token_keys) {
  std::set<std::string> named;
  SIGNET_ASSIGN_OR_RETURN(std::vector<KeyRecord> records, store_.ListKeys());
  for (const KeyRecord& r : records) named.insert(AsciiLower(r.hsm_key_id));
  SIGNET_ASSIGN_OR_RETURN(std::optional<store::LogKeyRecord> log_key, store_.GetLogKey());
  if (log_key) named.insert(AsciiLower(log_key->hsm_key_id));
  std::vector<UnrecordedKey> unrecorded;
  for (const hsm::TokenKey& k : token_keys) {
    std::string hex = HexEncode(k.id.bytes);
    if (!hex.empty() && named.contains(hex)) continue;
    unrecorded.push_back(
        {hex, PrintableLabel(k.label),
         k.algorithm ? std::string(KeyAlgorithmName(*k.algorithm)) : std::string("other")});
  }
  return unrecorded;
}

Result<std::vector<UnrecordedKey>> KeyService::ListUnrecordedKeys() {
  std::unique_lock no_creation(creation_mu_);
  SIGNET_ASSIGN_OR_RETURN(std::vector<hsm::TokenKey> token_keys, FromHsm(key_store_.ListKeys()));
  return Unrecorded(token_keys);
}

Result<UnrecordedKey> KeyService::DestroyUnrecordedKey(const Caller& caller,
                                                       std::string_view hsm_key_id) {
  const std::string hex = AsciiLower(hsm_key_id);
  const std::string object = "hsm:" + OneLineSafe(hex, 128);
  const auto refuse = [&](Error e) { return Refused(caller, AuditAction::kKeyDestroy, object, e); };
  Result<Bytes> id = HexDecode(hex);
  if (!id.ok() || id->empty() || id->size() > 64) {
    return refuse(InvalidArgument("'" + OneLineSafe(hsm_key_id, 128) +
                                  "' is not an HSM key id: give the CKA_ID as 2 to 128 hex digits, "
                                  "as `key unrecorded` lists it"));
  }
  // No key of this process is between generation and record while this runs (CreateKey).
  std::unique_lock no_creation(creation_mu_);
  auto token_keys = FromHsm(key_store_.ListKeys());
  if (!token_keys.ok()) return refuse(token_keys.error());
  auto unrecorded = Unrecorded(*token_keys);
  if (!unrecorded.ok()) return refuse(unrecorded.error());
  auto found = std::find_if(unrecorded->begin(), unrecorded->end(),
                            [&](const UnrecordedKey& k) { return k.hsm_key_id == hex; });
  if (found == unrecorded->end()) {
    const bool on_token =
        std::any_of(token_keys->begin(), token_keys->end(),
                    [&](const hsm::TokenKey& k) { return HexEncode(k.id.bytes) == hex; });
    if (on_token) {
      return refuse(FailedPrecondition(
          "HSM key " + hex +
          " is recorded (a signing key, the audit log's checkpoint key, or a key being created "
          "right now); destroy a signing key by its name with `key destroy`"));
    }
    return refuse(NotFound("no private key with id " + hex + " on token '" + token_.label +
                           "'; `key unrecorded` lists the ones there are"));
  }
  const auto same_id =
      std::count_if(token_keys->begin(), token_keys->end(),
                    [&](const hsm::TokenKey& k) { return HexEncode(k.id.bytes) == hex; });
  if (same_id > 1) {
    // The HSM step removes every object with the id; the log entry could name only one.
    return refuse(FailedPrecondition(std::to_string(same_id) + " private keys on token '" +
                                     token_.label + "' have id " + hex +
                                     "; remove them with the HSM's own tools"));
  }
  UnrecordedKey key = *found;
  // Recorded before the key material goes, so the log never lacks a destruction that happened.
  if (Status recorded = RecordChange(caller, AuditAction::kKeyDestroy, object,
                                     {{"hsm_key_id", hex},
                                      {"unrecorded", "true"},
                                      {"label", key.label},
                                      {"algorithm", key.algorithm},
                                      {"hsm", "pending"}},
                                     [](AuditDetails&) { return OkStatus(); });
      !recorded.ok()) {
    return refuse(recorded.error());
  }
  if (Status destroyed = key_store_.DestroyKey(hsm::HsmKeyId{std::move(*id)}); !destroyed.ok()) {
    return refuse(HsmFailure(destroyed.error())
                      .WithContext("unrecorded HSM key " + hex +
                                   " was not destroyed; run the command again"));
  }
  if (Status recorded = Record(caller, AuditAction::kKeyDestroy, object, "success",
                               {{"hsm_key_id", hex},
                                {"unrecorded", "true"},
                                {"label", key.label},
                                {"algorithm", key.algorithm},
                                {"hsm", "removed"}});
      !recorded.ok()) {
    return recorded.error().WithContext("unrecorded HSM key " + hex +
                                        " was destroyed, but the log could not record that it is "
                                        "gone");
  }
  return key;
}

bool KeyService::DestroyPending(const Error& error) {
  return std::string_view(error.message()).find(kKeyDestroyPendingNote) != std::string_view::npos;
}

Result<std::string> KeyService::CreateCsr(const Caller& caller, std::string_view name,
                                          std::string_view subject) {
  const auto refuse = [&](Error e) { return Refused(caller, AuditAction::kKeyCsr, name, e); };
  auto dn = pki::ParseSubject(subject);
  if (!dn.ok()) return refuse(dn.error());
  auto found = store_.GetKeyByName(name);
  if (!found.ok()) return refuse(found.error());
  const KeyRecord& record = *found;
  if (record.state != KeyState::kActive) {
    return refuse(FailedPrecondition("cannot make a CSR for key '" + record.name + "': it is " +
                                     std::string(store::KeyStateName(record.state))));
  }
  if (Status here = CheckOnOpenToken(record); !here.ok()) return refuse(here.error());
  auto alg = ParseKeyAlgorithm(record.algorithm);
  if (!alg.ok()) return refuse(alg.error());
  auto id = HsmIdOf(record);
  if (!id.ok()) return refuse(id.error());
  auto spki = SpkiOf(record);
  if (!spki.ok()) return refuse(spki.error());
  // The request is for the key the HSM holds: a swapped key would make a CSR that fails its own
  // self-check, which the caller would see as a server fault.
  if (Status same = CheckHsmKeyMatches(record, *id, *spki, "make a CSR for"); !same.ok()) {
    return refuse(same.error());
  }
  pki::DigestSigner signer = [&](SignatureScheme scheme, HashAlgorithm hash, ByteView digest) {
    return FromHsm(key_store_.Sign(*id, scheme, hash, digest));
  };
  auto pem = pki::CreateCsrPem(*spki, *alg, *dn, signer);
  if (!pem.ok()) return refuse(pem.error());
  auto spki_sha256 = pki::ComputeDigest(HashAlgorithm::kSha256, *spki);
  auto csr_sha256 = pki::ComputeDigest(HashAlgorithm::kSha256, AsBytes(*pem));
  if (!spki_sha256.ok()) return refuse(spki_sha256.error());
  if (!csr_sha256.ok()) return refuse(csr_sha256.error());
  // Recorded as a change that makes none, so that its transaction re-reads the key (disabled or
  // destroyed while the HSM signed: no CSR) and the admin's session (RecordChange).
  if (Status recorded = RecordChange(
          caller, AuditAction::kKeyCsr, name,
          {{"key_id", record.id},
           {"subject", dn->ToString()},
           // Which key the request certifies, and which request was handed out (its PEM text).
           {"spki_sha256", HexEncode(*spki_sha256)},
           {"csr_pem_sha256", HexEncode(*csr_sha256)}},
          [&](AuditDetails&) -> Status {
            SIGNET_ASSIGN_OR_RETURN(KeyRecord current, store_.GetKeyById(record.id));
            if (current.state != KeyState::kActive) {
              return FailedPrecondition(
                  "cannot make a CSR for key '" + record.name + "': it became " +
                  std::string(store::KeyStateName(current.state)) + " meanwhile");
            }
            return OkStatus();
          });
      !recorded.ok()) {
    return refuse(recorded.error());
  }
  return pem;
}

Result<KeyRecord> KeyService::ImportCertificateChain(const Caller& caller, std::string_view name,
                                                     std::string_view pem) {
  const auto refuse = [&](Error e) {
    return Refused(caller, AuditAction::kKeyImportCert, name, e);
  };
  auto found = store_.GetKeyByName(name);
  if (!found.ok()) return refuse(found.error());
  KeyRecord record = std::move(*found);
  if (record.state == KeyState::kDestroyed) {
    return refuse(FailedPrecondition("cannot import a certificate for key '" + record.name +
                                     "': it is destroyed"));
  }
  if (Status here = CheckOnOpenToken(record); !here.ok()) return refuse(here.error());
  auto spki = SpkiOf(record);
  if (!spki.ok()) return refuse(spki.error());
  // The certificate must certify the key the HSM holds, not only the record's copy of it.
  auto id = HsmIdOf(record);
  if (!id.ok()) return refuse(id.error());
  if (Status same = CheckHsmKeyMatches(record, *id, *spki, "import a certificate for");
      !same.ok()) {
    return refuse(same.error());
  }
  auto chain = pki::ParseChainForKey(pem, *spki);
  if (!chain.ok()) return refuse(chain.error().WithContext("key '" + record.name + "'"));
  TimePoint now = clock_.Now();
  if (Status usable = CheckCodeSigningLeaf(*chain, now); !usable.ok()) {
    return refuse(usable.error().WithContext("key '" + record.name + "'"));
  }
  // A leaf not valid yet replaces the chain at once, and signing refuses a certificate outside
  // its validity: while the chain in use is still good, such a renewal would stop signing until
  // its notBefore. (With no usable chain in use there is nothing to lose.)
  if (chain->not_before > now && !record.certificate_chain_pem.empty()) {
    auto current = pki::ParseChainForKey(record.certificate_chain_pem, *spki);
    if (current.ok() && current->not_before <= now && now < current->not_after) {
      return refuse(FailedPrecondition(
          "key '" + record.name + "': the new certificate is valid only from " +
          chain->not_before_text + " and the one in use until " + current->not_after_text +
          "; importing it now would stop signing until then: import it from " +
          chain->not_before_text + " on"));
    }
  }
  auto leaf_sha256 = pki::ComputeDigest(HashAlgorithm::kSha256, chain->certificates_der[0]);
  auto chain_sha256 = pki::ComputeDigest(HashAlgorithm::kSha256, AsBytes(chain->pem));
  if (!leaf_sha256.ok()) return refuse(leaf_sha256.error());
  if (!chain_sha256.ok()) return refuse(chain_sha256.error());
  if (Status set = RecordChange(
          caller, AuditAction::kKeyImportCert, name,
          {{"key_id", record.id},
           {"leaf_subject", chain->leaf_subject},
           {"leaf_issuer", chain->leaf_issuer},
           {"leaf_serial", chain->leaf_serial_hex},
           // The exact certificate and chain put in use: issuer and serial alone would not tell
           // two certificates apart if a CA repeated a serial.
           {"leaf_sha256", HexEncode(*leaf_sha256)},
           {"chain_pem_sha256", HexEncode(*chain_sha256)}},
          [&](AuditDetails&) -> Status {
            // Read again in the transaction: a key destroyed meanwhile
            // gets no certificate.
            SIGNET_ASSIGN_OR_RETURN(KeyRecord current, store_.GetKeyById(record.id));
            if (current.state == KeyState::kDestroyed) {
              return FailedPrecondition("key '" + record.name + "' was destroyed meanwhile");
            }
            return store_.SetCertificateChain(record.id, chain->pem, now);
          });
      !set.ok()) {
    return refuse(set.error());
  }
  record.certificate_chain_pem = chain->pem;
  record.updated_at = now;
  return record;
}

}  // namespace signet::service
