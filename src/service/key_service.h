// KeyService: the key-custody use cases (CSBR 6.1.2, 6.2.6, 6.2.7.3). A code-signing key is
// generated inside the HSM behind the KeyStore port and recorded in the Store; it can be disabled,
// enabled, destroyed, asked for a CSR and given its certificate chain. There is no operation that
// exports or imports a private key.
//
// Every operation either completes or leaves no trace: a key generated in the HSM whose record
// cannot be stored is destroyed again, and state changes are compare-and-set in the Store.
// Every change (and every refused change) is recorded through the AuditSink before the method
// returns; a change whose event cannot be recorded is undone and reported as an error (CSBR
// 6.2.7.3: all access, operations and configuration changes are logged). Knows nothing of HTTP or
// the command line.
//
// Threads: safe to call from many threads if the KeyStore, Store and Clock are (the adapters are).
#pragma once

#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/algorithms.h"
#include "common/clock.h"
#include "common/result.h"
#include "hsm/key_store.h"
#include "pki/pki.h"
#include "service/audit_sink.h"
#include "store/store.h"

namespace signet::service {

// A key record plus what the HSM says about it now.
struct KeyDetails {
  store::KeyRecord record;
  bool on_open_token = true;           // the record names the token the service has open; if
                                       // not, the HSM was not asked and present_in_hsm is false
  bool present_in_hsm = false;         // the key material is on the token (true for a destroyed
                                       // key whose HSM destruction is still to be repeated)
  hsm::KeyProtection protection;       // valid when present_in_hsm
  bool public_key_matches_hsm = false; // the stored SPKI equals the one the HSM reports
};

// What DestroyKey's error says when the key is marked destroyed but the HSM did not remove its
// key material; KeyService::DestroyPending is built on it. The rest of the message is the HSM's.
inline constexpr std::string_view kKeyDestroyPendingNote =
    "the key is marked destroyed but the HSM did not remove its key material; run the destroy "
    "command again";

// A private key on the open token that no key record (in any state, on any token) and not the
// audit log's checkpoint key names: what a crash between generating a key and recording it
// leaves behind, or a key another tool made on the same token.
struct UnrecordedKey {
  std::string hsm_key_id;  // CKA_ID, lower-case hex; empty if the object has none
  std::string label;       // CKA_LABEL as printable ASCII: other bytes and backslash as \xNN
  std::string algorithm;   // KeyAlgorithmName, or "other" for one signet does not use
};

// Where keys are created: copied into each record.
struct TokenIdentity {
  std::string label;
  std::string serial;
};

class KeyService {
 public:
  KeyService(hsm::KeyStore& key_store, store::Store& store, const Clock& clock,
             AuditSink& audit, TokenIdentity token);
  KeyService(const KeyService&) = delete;  // Holds references to the ports; copies add nothing.
  KeyService& operator=(const KeyService&) = delete;

  // Key names: 1 to 64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit.
  static Status ValidateKeyName(std::string_view name);

  // Generates a code-signing key (RSA 3072/4096, ECDSA P-256/P-384) in the HSM and records it as
  // active. InvalidArgument for a bad name or a non-code-signing algorithm; AlreadyExists if the
  // name is taken (by a key in any state: names are never reused, so log entries stay
  // unambiguous); FailedPrecondition if the key material left the HSM before the creation
  // finished (another process destroyed it as unrecorded): the record is then marked destroyed.
  Result<store::KeyRecord> CreateKey(const Caller& caller, std::string_view name,
                                     KeyAlgorithm algorithm, std::string_view owner);

  Result<std::vector<store::KeyRecord>> ListKeys();

  // NotFound if there is no key of that name.
  Result<KeyDetails> ShowKey(std::string_view name);

  // active → disabled / disabled → active. FailedPrecondition from any other state.
  Result<store::KeyRecord> DisableKey(const Caller& caller, std::string_view name);
  Result<store::KeyRecord> EnableKey(const Caller& caller, std::string_view name);

  // Marks the key destroyed, then destroys it in the HSM. The record stays for the log. Repeating
  // the call on a destroyed key retries the HSM destruction (idempotent) and is logged again. If
  // the HSM step fails, the failure is logged and the error (the HSM's code, e.g. Unavailable)
  // says kKeyDestroyPendingNote. FailedPrecondition, before anything changes, if the key lives on
  // another token than the open one: destroying "nothing" there would leave the key alive.
  Result<store::KeyRecord> DestroyKey(const Caller& caller, std::string_view name);

  // True if `error` (from DestroyKey) says the key is marked destroyed but still in the HSM.
  static bool DestroyPending(const Error& error);

  // A PKCS#10 CSR for an active key, subject like "/CN=Example/O=Example Ltd/C=GB", signed inside
  // the HSM. FailedPrecondition if the key is not active (also if it stopped being active while
  // the HSM signed) or lives on another token than the open one.
  Result<std::string> CreateCsr(const Caller& caller, std::string_view name,
                                std::string_view subject);

  // Checks the PEM chain (leaf first) against the key's public key, as stored and as the HSM
  // reports it, that it links and that its leaf can sign code (CheckCodeSigningLeaf), then
  // stores it, replacing any chain before. FailedPrecondition for a destroyed key, a key
  // on another token than the open one, or one whose key material is not in the HSM (or differs
  // from the record), or a leaf not valid yet while the chain in use is (signing would stop until
  // its notBefore); InvalidArgument for a chain that is not for the key or does not link.
  Result<store::KeyRecord> ImportCertificateChain(const Caller& caller, std::string_view name,
                                                  std::string_view pem);

  // How far ahead of its notBefore a leaf may be imported (it replaces the chain in use at once).
  static constexpr std::chrono::hours kMaxImportAhead{24};

  // The leaf of a chain for a signing key, at `now`: not expired, valid at some time (notBefore
  // before notAfter) and no later than kMaxImportAhead from now (a renewal can be imported a
  // little ahead; clock skew), not a CA, with a critical keyUsage that allows
  // digitalSignature and neither keyCertSign nor cRLSign, and with extendedKeyUsage codeSigning
  // but neither anyExtendedKeyUsage nor serverAuth (CSBR 7.1.2.3). InvalidArgument naming what is
  // wrong. The rest of the CSBR profile (policies, CRL and AIA locations, validity period) is not
  // checked here; this is what no certificate a signing key signs under may lack.
  static Status CheckCodeSigningLeaf(const pki::CertificateChain& chain, TimePoint now);

  // The private keys on the open token that nothing in the store names (UnrecordedKey), in the
  // module's order. Keys this service is creating right now are not listed. No log entry: this
  // reads what `pkcs11-tool --list-objects` shows anyone holding the PIN.
  Result<std::vector<UnrecordedKey>> ListUnrecordedKeys();

  // Destroys one unrecorded key, named by its CKA_ID in hex, after recording the destruction
  // (key_destroy on object "hsm:<id>", details unrecorded=true with its label and algorithm). For
  // the keys a crash left behind; other tools' keys on a shared token are theirs, so the caller
  // must mean it. InvalidArgument for an id that is not hex; NotFound if no private key on the
  // token has it; FailedPrecondition if a key record or the audit log names it (destroy the key
  // by name instead) or the key is being created right now. An HSM failure is logged as well.
  Result<UnrecordedKey> DestroyUnrecordedKey(const Caller& caller, std::string_view hsm_key_id);

  // The methods above trust their caller to have checked the actor's role (the local CLI acts as
  // the operator; the management API requires admin). When such a check refuses an operation on a
  // key (one of the above, or a grant or policy change), the caller records the refusal here:
  // `action` on key `object`, with the error's message as outcome. Returns `error`, with a note
  // added if the refusal could not be recorded (that failure is not allowed to hide the refusal).
  // Records the refusal and returns `error`. The entry carries the key's id (looked up by the
  // name `object` unless `details` has one), so the log's per-key query finds refusals too.
  Error Refused(const Caller& caller, AuditAction action, std::string_view object, Error error,
                std::map<std::string, std::string> details = {});

 private:
  Result<store::KeyRecord> Transition(const Caller& caller, std::string_view name,
                                      store::KeyState from, store::KeyState to, AuditAction action,
                                      std::string_view verb);
  // FailedPrecondition unless `record` names the open token: the same label and the same serial
  // (a blank serial, which some modules report, matches only a blank serial).
  Status CheckOnOpenToken(const store::KeyRecord& record) const;
  // FailedPrecondition unless the HSM holds key `id` and reports `spki` (the record's) for it;
  // `verb` says what was refused, e.g. "make a CSR for".
  Status CheckHsmKeyMatches(const store::KeyRecord& record, const hsm::HsmKeyId& id,
                            const Bytes& spki, std::string_view verb);
  // Records `action` on key `object` with `outcome` ("success" or the refusal).
  Status Record(const Caller& caller, AuditAction action, std::string_view object,
                std::string_view outcome, std::map<std::string, std::string> details = {});
  AuditEvent MakeEvent(const Caller& caller, AuditAction action, std::string_view object,
                       std::string_view outcome, std::map<std::string, std::string> details) const;
  // Makes `change` and records its success as `action` on key `object` together, or neither
  // (AuditSink::RecordChange). Inside that transaction it first re-checks that the caller's
  // session is still an admin's (RecheckAdminSession).
  Status RecordChange(const Caller& caller, AuditAction action, std::string_view object,
                      std::map<std::string, std::string> details, const AuditedChange& change);

  // The unrecorded keys among `token_keys`, leaving out those being created.
  Result<std::vector<UnrecordedKey>> Unrecorded(const std::vector<hsm::TokenKey>& token_keys);

  // Constant after construction.
  hsm::KeyStore& key_store_;
  store::Store& store_;
  const Clock& clock_;
  AuditSink& audit_;
  const TokenIdentity token_;

  // Shared by CreateKey from generation until the record is stored or the key undone; exclusive
  // while unrecorded keys are listed or destroyed, so that a key being created is never taken
  // for one. Another process sharing the token and database is not covered: its window is the
  // milliseconds between its generation and its insert.
  std::shared_mutex creation_mu_;
};

}  // namespace signet::service
