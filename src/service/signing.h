// SigningService: signature activation and signing (CSC API v2 credentials/authorize,
// credentials/extendTransaction, signatures/signHash; DESIGN.md §3 "activation", §4 "Sign on the
// server"), plus the per-key grants and policies that decide who may sign what.
//
// An activation (SAD) is bound to one account, one key, one hash algorithm and the exact list of
// hashes to be signed (SCAL 2); each hash can be signed once, and the SAD expires after a short
// lifetime. The SAD value is returned once and stored only as its SHA-256.
//
// The audit invariant: SignHash releases signatures only after the `sign` event that lists every
// hash has been recorded durably by the AuditSink. Every refusal is recorded too
// (authorize_refused, sign_refused, or the admin action with the refusal as outcome).
//
// Least privilege: signing needs the signer role AND a grant on the key; admin alone is not
// enough. Grants and policies are changed only by admins.
//
// Error codes, chosen so the CSC layer can map them in one place:
//   InvalidArgument     bad input: no hashes, a hash of the wrong length or listed twice,
//                       numSignatures != number of hashes, a scheme that does not fit the key
//                       (CSC invalid_request)
//   PermissionDenied    no signer/admin role, no grant, unknown credential, more signatures than
//                       authorized (also a used hash when the SAD has no signature left: the
//                       count is checked first), a hash algorithm other than the SAD's, an
//                       algorithm the key's policy forbids (CSC access_denied / 403); a hash not
//                       in the SAD or one used already (CSC invalid_hash / 403:
//                       SigningService::IsUnauthorizedHash tells these apart, their message starts
//                       "Hash is not authorized by the SAD"); the message says which
//   Unauthenticated     a SAD that is not valid for the request: unknown, replaced, or issued to
//                       another account or for another credential; or the SAD expired
//                       (SigningService::IsExpiredSad tells this case apart; its message starts
//                       "SAD expired", CSC's description)
//   FailedPrecondition  the key is disabled or destroyed, or its certificate (the leaf of the
//                       chain imported for it) has expired or is not valid yet: a signature
//                       made then would not validate, so none is made. A key without a
//                       certificate (before keys/import-chain) can still sign; CSC's
//                       credentials/info says it has none
//   ResourceExhausted   a per-minute rate limit (retry in the next minute)
//   Unavailable etc.    the Store, HSM or AuditSink failed; an HSM failure after the hashes were
//                       consumed is Unavailable (also a lost HSM login) or Internal, whatever
//                       code the KeyStore gave, since the request was already found valid
//
// Threads: safe to call from many threads if the KeyStore, Store, Clock and AuditSink are.
// Concurrent SignHash calls presenting the same SAD and hash are serialised by the Store's atomic
// ConsumeActivationHashes: exactly one signs.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/algorithms.h"
#include "common/bytes.h"
#include "common/clock.h"
#include "common/result.h"
#include "hsm/key_store.h"
#include "service/audit_sink.h"
#include "store/store.h"

namespace signet::service {

struct SigningOptions {
  // How long a SAD is valid. CSC's default is 3600 s; signet defaults short.
  std::chrono::seconds sad_lifetime{300};
  // extendTransaction issues new SADs, but never valid beyond the original authorization time plus
  // this, so one second factor cannot keep a key unlocked indefinitely.
  std::chrono::seconds max_transaction_lifetime{3600};
  // The policy of keys that have none (see KeyPolicy).
  int64_t default_max_signatures_per_authorization = 1000;
  int64_t default_rate_per_minute_key = 6000;
  int64_t default_rate_per_minute_account = 3000;
  // Per account over all keys, in addition to the key policies; 0: no limit.
  int64_t rate_per_minute_account = 6000;
  // How many open SADs (unexpired, with signatures left) one account may hold; Authorize refuses
  // beyond it (ResourceExhausted, IsRateLimit), so that no client, a service account needing no
  // fresh second factor least of all, can fill the database with activations. Checked before the
  // insert, not inside it: requests authorizing at the same moment may pass it together. 0: none.
  int64_t max_open_activations_per_account = 256;
  // Set only when the AuditSink commits every event durably to the same Store as the activations
  // (cli::ServiceStack: the Merkle log's sequencer). SignHash then lets the consumption of the
  // hashes reach the disk with the `sign` entry's commit, which follows it and precedes the
  // answer, instead of flushing it on its own (store::ConsumeActivationRequest::
  // flush_with_next_commit): one disk flush per signHash instead of two. A crash between the two
  // may undo the consumption, but then no signature was released.
  bool audit_commits_to_store = false;
};

// What an admin allows on one key.
struct KeyPolicy {
  std::vector<SignatureScheme> allowed_sign_schemes;   // each must fit the key; non-empty
  std::vector<HashAlgorithm> allowed_hash_algorithms;  // non-empty
  int64_t max_signatures_per_authorization = 1000;     // 1 .. kMaxSignaturesPerAuthorization
  int64_t rate_per_minute_key = 0;      // signatures per minute on the key, all accounts; 0: none
  int64_t rate_per_minute_account = 0;  // per account on the key; 0: none

  bool operator==(const KeyPolicy&) const = default;
};

// The fields of a KeyPolicy to change; unset ones keep their value (SigningService::ChangePolicy).
struct KeyPolicyChange {
  std::optional<std::vector<SignatureScheme>> allowed_sign_schemes;
  std::optional<std::vector<HashAlgorithm>> allowed_hash_algorithms;
  std::optional<int64_t> max_signatures_per_authorization;
  std::optional<int64_t> rate_per_minute_key;
  std::optional<int64_t> rate_per_minute_account;

  bool empty() const {
    return !allowed_sign_schemes && !allowed_hash_algorithms && !max_signatures_per_authorization &&
           !rate_per_minute_key && !rate_per_minute_account;
  }
};

// What Authorize's error says when the account holds max_open_activations_per_account open
// SADs already; SigningService::IsRateLimit recognises it.
inline constexpr std::string_view kOpenActivationsMessage = store::kOpenActivationsMessage;

// The hard upper bound on hashes in one authorization or one signHash call.
inline constexpr int64_t kMaxSignaturesPerAuthorization = 100000;

// Every error that means "the SAD, or the transaction it belongs to, has expired" is
// Unauthenticated and its message starts with this text: the store's activation check says
// exactly this, and the transaction cap of ExtendTransaction adds its reason after it. Code that
// must tell this case apart uses SigningService::IsExpiredSad rather than reading messages.
inline constexpr std::string_view kSadExpiredPrefix = store::kSadExpiredMessage;

// What SignHash's errors say, after what went wrong, once the request's hashes were consumed
// (signing.cc); SigningService::HashesUsedUp is built on it.
inline constexpr std::string_view kHashesUsedUpNote =
    "the authorized hashes are used up, authorize again";

// `parsed`, or, when a stored field of `key` does not parse, DataLoss naming the key and field:
// the database is damaged, not the request wrong (callers answer DataLoss as the service's fault,
// without the detail).
template <typename T>
Result<T> StoredKeyField(const store::KeyRecord& key, std::string_view field, Result<T> parsed) {
  if (parsed.ok()) return parsed;
  return DataLoss("key '" + key.name + "': the stored " + std::string(field) + " does not parse (" +
                  parsed.error().message() + ")");
}

// A freshly issued SAD. The value exists only here and in the client's hands.
struct Authorization {
  SecretBytes sad;  // base64url of 32 random bytes
  TimePoint expires_at;
  std::chrono::seconds expires_in{0};
};

class SigningService {
 public:
  SigningService(hsm::KeyStore& key_store, store::Store& store, const Clock& clock,
                 AuditSink& audit, SigningOptions options = {});
  SigningService(const SigningService&) = delete;  // Holds references to the ports.
  SigningService& operator=(const SigningService&) = delete;

  // CSC credentials/authorize at SCAL 2. `credential` is a key id or, failing that, a key name.
  // Checks: the caller has the signer role and a grant on the key; the key is active; `hashes`
  // is non-empty, without repeats, each DigestSize(hash_algorithm) long; `num_signatures` equals
  // the number of hashes and is within the policy's maximum; the policy allows `hash_algorithm`.
  // Records `authorize` (or `authorize_refused` with the reason). If that record fails, no SAD is
  // returned.
  Result<Authorization> Authorize(const Caller& caller, std::string_view credential,
                                  HashAlgorithm hash_algorithm, const std::vector<Bytes>& hashes,
                                  int64_t num_signatures);

  // CSC signatures/signHash. Returns one signature per hash, in the same order. Steps (DESIGN.md
  // §4): caller, grant and key state; scheme fits the key and the policy allows it and the hash
  // algorithm; then, in one Store transaction, the SAD's account, credential, expiry, count and
  // hashes plus the rate limits, consuming the hashes; then one HSM signature per hash; then the
  // `sign` event. Any failure records `sign_refused` with the reason and returns no signature.
  //
  // Hashes are consumed BEFORE the HSM signs. If the HSM then fails, or the `sign` event cannot
  // be recorded, the hashes stay consumed and the caller must authorize again: an activation is
  // never handed back, so a failure can cost a retry but can never yield a second signature.
  // The key state and grant are checked again inside the consuming transaction, and once more,
  // with the caller's session and account (RecheckSigner), inside the transaction that appends
  // the `sign` event: a key disabled or destroyed, a grant revoked, an account disabled, locked
  // or stripped of the signer role, or a session ended while the HSM signed releases nothing
  // (FailedPrecondition, PermissionDenied or Unauthenticated, recorded as `sign_refused` with
  // stage "release"), and whatever the log shows before the `sign` event held when it was made.
  Result<std::vector<Bytes>> SignHash(const Caller& caller, std::string_view credential,
                                      const SecretBytes& sad, const std::vector<Bytes>& hashes,
                                      SignatureScheme scheme, HashAlgorithm hash_algorithm);

  // CSC credentials/extendTransaction: checks `sad` as SignHash does (account, credential,
  // expiry) and the new hashes as Authorize does, then atomically replaces the old SAD by a new
  // one bound to `hashes` (the old SAD stops working). The new SAD expires after sad_lifetime but
  // not after the original authorization time + max_transaction_lifetime, and the transaction
  // (the first authorization and all its extensions) never allows more signatures than the key's
  // policy allows per authorization (PermissionDenied): without fresh factors, an extension
  // changes which hashes may be signed, not how many. "Each hash once" holds per SAD: a new SAD
  // may list a hash an earlier one of the transaction signed, and it is then signed again (as a
  // new authorization listing it would allow), within that total. Recorded as `authorize` with
  // details "operation": "extend_transaction".
  Result<Authorization> ExtendTransaction(const Caller& caller, std::string_view credential,
                                          const SecretBytes& sad, HashAlgorithm hash_algorithm,
                                          const std::vector<Bytes>& hashes);

  // Admin only (PermissionDenied otherwise). Grant: NotFound for an unknown key,
  // FailedPrecondition for a destroyed one, AlreadyExists if granted already. Revoke: NotFound if
  // there is no such grant. Recorded as `grant` / `revoke_grant`; refusals too, with the reason
  // as outcome. If the record fails, the change is undone and the error returned.
  Status Grant(const Caller& admin, std::string_view credential, std::string_view account_id);
  Status Revoke(const Caller& admin, std::string_view credential, std::string_view account_id);

  // Admin only. InvalidArgument for empty lists, a scheme that does not fit the key, or numbers
  // out of range. Recorded as `policy_change` (old and new policy in details); undone if the
  // record fails.
  Status SetPolicy(const Caller& admin, std::string_view credential, const KeyPolicy& policy);

  // Changes only the fields `change` sets; the others keep the value of the policy in force,
  // read in the change's own transaction, so two admins changing different fields at once both
  // take effect. At least one field must be set (InvalidArgument otherwise); the merged policy is
  // checked and recorded as SetPolicy's is.
  Status ChangePolicy(const Caller& admin, std::string_view credential,
                      const KeyPolicyChange& change);

  // The policy in force (the defaults if none was set). Admins, auditors and accounts with a
  // grant on the key may read it; PermissionDenied for others.
  Result<KeyPolicy> GetPolicy(const Caller& caller, std::string_view credential);

  // The policy a key of `algorithm` has when no admin set one.
  KeyPolicy DefaultPolicy(KeyAlgorithm algorithm) const;

  // The ids of the accounts granted `credential` (a key id or name), ordered by id. Admins and
  // auditors only (PermissionDenied otherwise); NotFound for an unknown key.
  Result<std::vector<std::string>> ListGrants(const Caller& caller, std::string_view credential);

  // Records a request the transport refused before it reached Authorize, ExtendTransaction or
  // SignHash because its body was malformed (a missing field, bad base64, an unknown algorithm):
  // `authorize_refused` for the first two, `sign_refused` for SignHash (`action` must be
  // kAuthorizeRefused or kSignRefused; InvalidArgument otherwise), with `credential` as object
  // (empty if the body did not say) and the error as outcome, so an authenticated caller's every
  // attempt is in the log. Returns `error`, with a note appended if it could not be recorded.
  Error RecordMalformedRequest(const Caller& caller, AuditAction action,
                               std::string_view credential, Error error);

  // True if `error` (from Authorize, ExtendTransaction or SignHash) says the SAD or its
  // transaction expired, as opposed to a SAD that is unknown, replaced, or another account's or
  // credential's.
  static bool IsExpiredSad(const Error& error);

  // True if `error` (from SignHash) refuses a hash the SAD does not list or whose signature was
  // already released, as opposed to a refusal of the caller or the count.
  static bool IsUnauthorizedHash(const Error& error);

  // OK unless the caller's account holds max_open_activations_per_account open SADs already
  // (ResourceExhausted starting with kOpenActivationsMessage).
  Status CheckOpenActivations(const Caller& caller);

  // Everything Authorize checks before it stores anything (the caller's access to the key,
  // numSignatures against the hashes, the key policy, the bound on open SADs), without recording
  // anything. The CSC layer runs it before a person's factors, so that a one-time code is not
  // spent on a request that would be refused anyway; Authorize checks it all again.
  // A person's activation refused before Authorize ran (by PrecheckAuthorize, or for a wrong
  // factor; the CSC layer checks those): recorded as Authorize records its refusals,
  // `authorize_refused` with the key (when `credential` names one), hash algorithm and hashes,
  // `stage` in the details ("precheck", "activation"), and `operation` "extend_transaction" as
  // ExtendTransaction records it (empty for authorize). Returns `error` as RecordMalformedRequest
  // does.
  Error RecordActivationRefusal(const Caller& caller, std::string_view credential,
                                HashAlgorithm hash_algorithm, const std::vector<Bytes>& hashes,
                                int64_t num_signatures, std::string_view stage,
                                std::string_view operation, Error error);

  // Everything ExtendTransaction checks before it stores anything (the caller's access to the
  // key, the hashes against the key policy, the current SAD: bound to the caller and the key,
  // unexpired, its transaction within max_transaction_lifetime and, with the new hashes, within
  // the policy's signatures per authorization; the bound on open SADs when it is used up), without
  // recording or changing anything. The CSC layer runs it before a person's factors, as
  // PrecheckAuthorize; ExtendTransaction checks it all again.
  Status PrecheckExtend(const Caller& caller, std::string_view credential, const SecretBytes& sad,
                        HashAlgorithm hash_algorithm, const std::vector<Bytes>& hashes);

  Status PrecheckAuthorize(const Caller& caller, std::string_view credential,
                           HashAlgorithm hash_algorithm, const std::vector<Bytes>& hashes,
                           int64_t num_signatures);

  // True if `error` is a key policy's or the service's rate limit (from SignHash: the caller
  // asked for more signatures this minute than allowed) or the bound on open SADs (from
  // Authorize): ResourceExhausted like a full disk, but the caller's to fix (429, not 503).
  static bool IsRateLimit(const Error& error);

  // If `error` is a per-minute rate limit (not the bound on open SADs, which frees when a SAD is
  // used up or expires), the seconds from `now` until the next rate window opens (1 to 60): what
  // a 429's Retry-After says. Nothing was consumed, so the same request may be sent again then.
  static std::optional<int64_t> RateLimitRetryAfter(const Error& error, TimePoint now);

  // True if `error` (from SignHash) came after the request's hashes were consumed, so they cannot
  // be signed again with this SAD (kHashesUsedUpNote); whatever failed, the client must authorize
  // those hashes again.
  static bool HashesUsedUp(const Error& error);

  // ---- CSC credentials/list and credentials/info (server/csc) ----
  // The keys the caller holds a grant on, in any state but destroyed, ordered by name. Needs the
  // signer role (PermissionDenied otherwise), like signing itself.
  Result<std::vector<store::KeyRecord>> ListGrantedCredentials(const Caller& caller);
  // One key the caller holds a grant on (by id or name), in any state but destroyed. An unknown
  // credential and one without a grant both give PermissionDenied, as in Authorize.
  Result<store::KeyRecord> GetGrantedCredential(const Caller& caller,
                                                std::string_view credential);
  // ---- end of CSC credentials/list and credentials/info ----

 private:
  Result<store::KeyRecord> ResolveKey(std::string_view credential);
  // The activation stored under `sad_hash`, nullopt if there is none; other store errors as they
  // are. What store::CheckActivationBinding takes.
  Result<std::optional<store::ActivationRecord>> FindActivation(const Bytes& sad_hash);
  // The key `credential` names, if `caller` may sign with it now. Once the key is found, `event`
  // (if given) names it (object, and key id and name of its signature block), so that a refusal
  // for its state, its certificate or a missing grant is logged under the key, not only under
  // whatever the client sent.
  Result<store::KeyRecord> CheckSignerAccess(const Caller& caller, std::string_view credential,
                                             AuditEvent* event = nullptr);
  // FailedPrecondition if `key` has a certificate chain whose leaf is not valid at `now`.
  Status CheckCertificateValidity(const store::KeyRecord& key, TimePoint now);
  // Inside the transaction that records a signature: the caller's session and account (see
  // RecheckSignerSession), the key still active, the grant still there.
  Status RecheckSigner(const Caller& caller, const std::string& key_id);
  Result<KeyPolicy> EffectivePolicy(const store::KeyRecord& key);
  // Authorize's checks after the caller's access to `key`; the policy in force on success.
  Result<KeyPolicy> CheckAuthorizeRequest(const Caller& caller, const store::KeyRecord& key,
                                          HashAlgorithm hash_algorithm,
                                          const std::vector<Bytes>& hashes, int64_t num_signatures);
  Status CheckHashes(const std::vector<Bytes>& hashes, HashAlgorithm hash_algorithm,
                     const KeyPolicy& policy, const store::KeyRecord& key);
  Result<Authorization> IssueAuthorization(const Caller& caller, const store::KeyRecord& key,
                                           HashAlgorithm hash_algorithm,
                                           const std::vector<Bytes>& hashes,
                                           const KeyPolicy& policy, const SecretBytes* old_sad,
                                           AuditEvent& event);
  Result<std::vector<Bytes>> SignHashUnrecorded(const Caller& caller, std::string_view credential,
                                                const SecretBytes& sad,
                                                const std::vector<Bytes>& hashes,
                                                SignatureScheme scheme,
                                                HashAlgorithm hash_algorithm, AuditEvent& event);
  // Checks the admin role, resolves the key, then makes `change` and records `event` together
  // (AuditSink::RecordChange); any refusal is recorded as one.
  Status ChangeAsAdmin(const Caller& admin, std::string_view credential, AuditEvent& event,
                       const std::function<Status(const store::KeyRecord&, AuditDetails&)>& change);
  AuditEvent NewEvent(const Caller& caller, AuditAction action, std::string_view object) const;

  // Constant after construction.
  hsm::KeyStore& key_store_;
  store::Store& store_;
  const Clock& clock_;
  AuditSink& audit_;
  const SigningOptions options_;

  // The validity of each key's leaf certificate, parsed once per stored chain (a chain is
  // decoded and its signatures checked only when it is first seen or replaced, not per request).
  struct LeafValidity {
    Bytes chain_sha256;  // of the stored chain this was read from
    TimePoint not_before;
    TimePoint not_after;
    std::string not_before_text;
    std::string not_after_text;
  };
  static constexpr size_t kMaxCachedValidities = 4096;
  std::mutex validity_mu_;
  std::unordered_map<std::string, LeafValidity> validity_;  // by key id; under validity_mu_
};

}  // namespace signet::service
