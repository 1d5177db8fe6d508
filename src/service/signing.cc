#include "service/signing.h"

#include <algorithm>
#include <array>
#include <set>
#include <utility>

#include "common/encoding.h"
#include "common/log.h"
#include "common/random.h"
#include "common/text.h"
#include "pki/pki.h"
#include "service/admin_session.h"

namespace signet::service {
namespace {

constexpr size_t kSadRandomBytes = 32;

constexpr std::array kAllSchemes = {SignatureScheme::kRsaPkcs1v15, SignatureScheme::kRsaPss,
                                    SignatureScheme::kEcdsa, SignatureScheme::kEd25519};
constexpr std::array kAllHashes = {HashAlgorithm::kSha256, HashAlgorithm::kSha384,
                                   HashAlgorithm::kSha512};

Result<SignatureScheme> ParseScheme(std::string_view name) {
  for (SignatureScheme s : kAllSchemes) {
    if (SignatureSchemeName(s) == name) return s;
  }
  return InvalidArgument("unknown signature scheme '" + std::string(name) + "'");
}

std::vector<std::string> HexAll(const std::vector<Bytes>& hashes) {
  std::vector<std::string> out;
  out.reserve(hashes.size());
  for (const Bytes& h : hashes) out.push_back(HexEncode(h));
  return out;
}

// A compact text form of a policy for the audit details.
// "a,b,c": the names of a list of schemes or hash algorithms.
template <typename T, typename NameOf>
std::string JoinNames(const std::vector<T>& list, NameOf name_of) {
  std::string out;
  for (const T& item : list) {
    if (!out.empty()) out += ',';
    out += name_of(item);
  }
  return out;
}

std::string JoinSchemes(const std::vector<SignatureScheme>& list) {
  return JoinNames(list, SignatureSchemeName);
}

std::string JoinHashes(const std::vector<HashAlgorithm>& list) {
  return JoinNames(list, HashAlgorithmName);
}

std::string DescribePolicy(const KeyPolicy& p) {
  return "schemes=" + JoinSchemes(p.allowed_sign_schemes) +
         ";hashes=" + JoinHashes(p.allowed_hash_algorithms) +
         ";max_per_authorization=" + std::to_string(p.max_signatures_per_authorization) +
         ";rate_per_minute_key=" + std::to_string(p.rate_per_minute_key) +
         ";rate_per_minute_account=" + std::to_string(p.rate_per_minute_account);
}

// Only the fields the change sets, in DescribePolicy's form.
std::string DescribePolicyChange(const KeyPolicyChange& c) {
  std::string out;
  auto add = [&out](const char* name, const std::string& value) {
    if (!out.empty()) out += ';';
    out += std::string(name) + "=" + value;
  };
  if (c.allowed_sign_schemes) add("schemes", JoinSchemes(*c.allowed_sign_schemes));
  if (c.allowed_hash_algorithms) add("hashes", JoinHashes(*c.allowed_hash_algorithms));
  if (c.max_signatures_per_authorization) {
    add("max_per_authorization", std::to_string(*c.max_signatures_per_authorization));
  }
  if (c.rate_per_minute_key) add("rate_per_minute_key", std::to_string(*c.rate_per_minute_key));
  if (c.rate_per_minute_account) {
    add("rate_per_minute_account", std::to_string(*c.rate_per_minute_account));
  }
  return out;
}

store::KeyPolicyRecord ToRecord(const std::string& key_id, const KeyPolicy& p) {
  store::KeyPolicyRecord r;
  r.key_id = key_id;
  for (SignatureScheme s : p.allowed_sign_schemes) {
    r.allowed_sign_algos.emplace_back(SignatureSchemeName(s));
  }
  for (HashAlgorithm h : p.allowed_hash_algorithms) {
    r.allowed_hash_algos.emplace_back(HashAlgorithmName(h));
  }
  r.max_signatures_per_authorization = p.max_signatures_per_authorization;
  r.rate_per_minute_key = p.rate_per_minute_key;
  r.rate_per_minute_account = p.rate_per_minute_account;
  return r;
}

template <typename T>
bool Contains(const std::vector<T>& v, const T& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

Result<Bytes> SadHash(const SecretBytes& sad) {
  if (sad.empty()) return InvalidArgument("no SAD given");
  return pki::ComputeDigest(HashAlgorithm::kSha256, sad.view());
}

// What the caller is told of a refusal. Everything except a SAD issued to another account: that
// answer would confirm to someone holding a stolen SAD that it is real and live, so the caller
// gets the answer for an unknown SAD, and only the audit log says which it was.
Error CallersView(Error error) {
  if (error.code() == ErrorCode::kUnauthenticated &&
      std::string_view(error.message()).starts_with(store::kSadOfAnotherAccountMessage)) {
    return Unauthenticated(std::string(store::kSadNotValidMessage));
  }
  return error;
}

// Records `event` as the refusal `error` and returns the caller's view of `error`. If even the
// refusal cannot be recorded the refusal still stands; the message then says so.
// A refusal keeps at most this many of the hashes it names (unless they were consumed).
constexpr size_t kRefusalHashes = 16;

Error RecordRefusal(AuditSink& audit, AuditEvent& event, Error error) {
  event.outcome = error.message();
  event.details["error"] = std::string(ErrorCodeName(error.code()));
  // A refused request's hash list is the client's, not yet checked against any authorization: in
  // full, a stream of refused requests of 20 000 hashes each would grow the append-only log by
  // 1.4 MB a request. The first hashes, the count and a digest of the whole list identify the
  // request; hashes that were consumed (authorized, then the HSM or the log failed) are kept in
  // full, since they are what the authorization's count was spent on.
  if (event.signature && event.signature->hashes.size() > kRefusalHashes &&
      !event.details.contains("hashes_consumed")) {
    std::vector<std::string>& hashes = event.signature->hashes;
    std::string joined;
    for (const std::string& h : hashes) joined += h;
    Result<Bytes> digest = pki::ComputeDigest(HashAlgorithm::kSha256, AsBytes(joined));
    event.details["hashes_total"] = std::to_string(hashes.size());
    event.details["hashes_recorded"] = std::to_string(kRefusalHashes);
    if (digest.ok()) event.details["hashes_sha256"] = HexEncode(*digest);
    hashes.resize(kRefusalHashes);
  }
  Status recorded = audit.Record(event);
  Error answer = CallersView(std::move(error));
  if (!recorded.ok()) {
    // The refusal stands. Why the log failed is for the operator (it may name files), not for
    // the caller, whose answer is a refusal (4xx) that the server shows as it is.
    LogLine(LogLevel::kError, "audit",
            "request " + event.request_id +
                ": a refusal could not be logged: " + recorded.error().message());
    return Error(answer.code(), answer.message() + " (and the refusal could not be logged)");
  }
  return answer;
}

}  // namespace

SigningService::SigningService(hsm::KeyStore& key_store, store::Store& store, const Clock& clock,
                               AuditSink& audit, SigningOptions options)
    : key_store_(key_store),
      store_(store),
      clock_(clock),
      audit_(audit),
      options_(std::move(options)) {}

KeyPolicy SigningService::DefaultPolicy(KeyAlgorithm algorithm) const {
  KeyPolicy p;
  for (SignatureScheme s : kAllSchemes) {
    if (s != SignatureScheme::kEd25519 && SchemeFitsKey(s, algorithm)) {
      p.allowed_sign_schemes.push_back(s);
    }
  }
  p.allowed_hash_algorithms.assign(kAllHashes.begin(), kAllHashes.end());
  p.max_signatures_per_authorization = options_.default_max_signatures_per_authorization;
  p.rate_per_minute_key = options_.default_rate_per_minute_key;
  p.rate_per_minute_account = options_.default_rate_per_minute_account;
  return p;
}

AuditEvent SigningService::NewEvent(const Caller& caller, AuditAction action,
                                    std::string_view object) const {
  AuditEvent e;
  e.time = clock_.Now();
  e.actor = caller.actor;
  e.action = action;
  e.object = std::string(object);
  e.request_id = caller.request_id;
  return e;
}

// ---- access ----

Result<store::KeyRecord> SigningService::ResolveKey(std::string_view credential) {
  if (credential.empty()) return InvalidArgument("no credential given");
  auto by_id = store_.GetKeyById(credential);
  if (by_id.ok() || by_id.error().code() != ErrorCode::kNotFound) return by_id;
  return store_.GetKeyByName(credential);
}

Result<std::optional<store::ActivationRecord>> SigningService::FindActivation(
    const Bytes& sad_hash) {
  auto found = store_.GetActivation(sad_hash);
  if (found.ok()) return std::optional<store::ActivationRecord>(std::move(found).value());
  if (found.error().code() == ErrorCode::kNotFound) {
    return std::optional<store::ActivationRecord>();
  }
  return found.error();
}

Result<store::KeyRecord> SigningService::CheckSignerAccess(const Caller& caller,
                                                           std::string_view credential,
                                                           AuditEvent* event) {
  const std::string& account = caller.actor.account_id;
  if (account.empty()) return PermissionDenied("the caller is not an account");
  if (!caller.actor.roles.Has(store::Role::kSigner)) {
    return PermissionDenied("account '" + account +
                            "' does not have the signer role; signing needs it as well as a "
                            "grant on the key");
  }
  // An unknown credential and a credential without grant get the same answer, so a signer cannot
  // probe which key names exist.
  const std::string no_grant = "credential '" + OneLineSafe(credential, 128) +
                               "' does not exist or account '" + account + "' has no grant on it";
  auto key = ResolveKey(credential);
  if (!key.ok()) {
    if (key.error().code() == ErrorCode::kNotFound) return PermissionDenied(no_grant);
    return key.error();
  }
  if (event != nullptr) {
    // The log names the key whatever follows; the caller's answer below stays the same for a key
    // it has no grant on as for none.
    event->object = key->name;
    if (event->signature) {
      event->signature->key_id = key->id;
      event->signature->key_name = key->name;
    }
  }
  SIGNET_ASSIGN_OR_RETURN(bool granted, store_.HasGrant(key->id, account));
  if (!granted) return PermissionDenied(no_grant);
  if (key->state != store::KeyState::kActive) {
    return FailedPrecondition("key '" + key->name + "' is " +
                              std::string(store::KeyStateName(key->state)) +
                              "; only an active key can be used");
  }
  SIGNET_TRY(CheckCertificateValidity(*key, clock_.Now()));
  return key;
}

Status SigningService::CheckCertificateValidity(const store::KeyRecord& key, TimePoint now) {
  if (key.certificate_chain_pem.empty()) return OkStatus();
  // The stored chain is named by its SHA-256 (hashed outside the lock): a chain may be up to
  // 1 MiB, and the cache holds no copy of it.
  SIGNET_ASSIGN_OR_RETURN(
      Bytes chain_sha256,
      pki::ComputeDigest(HashAlgorithm::kSha256, AsBytes(key.certificate_chain_pem)));
  LeafValidity validity;
  bool cached = false;
  {
    std::lock_guard<std::mutex> lock(validity_mu_);
    auto it = validity_.find(key.id);
    if (it != validity_.end() && it->second.chain_sha256 == chain_sha256) {
      validity.not_before = it->second.not_before;
      validity.not_after = it->second.not_after;
      validity.not_before_text = it->second.not_before_text;
      validity.not_after_text = it->second.not_after_text;
      cached = true;
    }
  }
  if (!cached) {
    SIGNET_ASSIGN_OR_RETURN(Bytes spki,
                            StoredKeyField(key, "public key", Base64Decode(key.public_key_spki)));
    SIGNET_ASSIGN_OR_RETURN(pki::CertificateChain chain,
                            StoredKeyField(key, "certificate chain",
                                           pki::ParseChainForKey(key.certificate_chain_pem, spki)));
    validity = LeafValidity{std::move(chain_sha256), chain.not_before, chain.not_after,
                            std::move(chain.not_before_text), std::move(chain.not_after_text)};
    std::lock_guard<std::mutex> lock(validity_mu_);
    if (validity_.size() >= kMaxCachedValidities) validity_.clear();
    validity_[key.id] = validity;
  }
  if (now >= validity.not_after) {
    return FailedPrecondition("the certificate of key '" + key.name + "' expired at " +
                              validity.not_after_text +
                              "; a signature made now would not validate. Import a renewed "
                              "certificate chain for the key (keys/import-chain)");
  }
  if (now < validity.not_before) {
    return FailedPrecondition("the certificate of key '" + key.name + "' is not valid before " +
                              validity.not_before_text +
                              "; a signature made now would not validate");
  }
  return OkStatus();
}

Result<KeyPolicy> SigningService::EffectivePolicy(const store::KeyRecord& key) {
  SIGNET_ASSIGN_OR_RETURN(KeyAlgorithm alg,
                          StoredKeyField(key, "algorithm", ParseKeyAlgorithm(key.algorithm)));
  SIGNET_ASSIGN_OR_RETURN(std::optional<store::KeyPolicyRecord> stored,
                          store_.GetKeyPolicy(key.id));
  if (!stored.has_value()) return DefaultPolicy(alg);
  KeyPolicy p;
  for (const std::string& name : stored->allowed_sign_algos) {
    auto s = ParseScheme(name);
    if (!s.ok()) return DataLoss("policy of key '" + key.name + "': " + s.error().message());
    p.allowed_sign_schemes.push_back(*s);
  }
  for (const std::string& name : stored->allowed_hash_algos) {
    auto h = ParseHashAlgorithm(name);
    if (!h.ok()) return DataLoss("policy of key '" + key.name + "': " + h.error().message());
    p.allowed_hash_algorithms.push_back(*h);
  }
  p.max_signatures_per_authorization = stored->max_signatures_per_authorization;
  p.rate_per_minute_key = stored->rate_per_minute_key;
  p.rate_per_minute_account = stored->rate_per_minute_account;
  return p;
}

Status SigningService::CheckHashes(const std::vector<Bytes>& hashes, HashAlgorithm hash_algorithm,
                                   const KeyPolicy& policy, const store::KeyRecord& key) {
  if (hashes.empty()) {
    return InvalidArgument("no hashes given; list the hashes to be signed (SCAL 2)");
  }
  const size_t digest_size = DigestSize(hash_algorithm);
  std::set<Bytes> seen;
  for (size_t i = 0; i < hashes.size(); ++i) {
    if (hashes[i].size() != digest_size) {
      return InvalidArgument("hash " + std::to_string(i + 1) + " of " +
                             std::to_string(hashes.size()) + " is " +
                             std::to_string(hashes[i].size()) + " bytes long; a " +
                             std::string(HashAlgorithmName(hash_algorithm)) + " digest has " +
                             std::to_string(digest_size));
    }
    if (!seen.insert(hashes[i]).second) {
      return InvalidArgument("hash " + std::to_string(i + 1) +
                             " is listed twice; each hash can be signed once");
    }
  }
  if (!Contains(policy.allowed_hash_algorithms, hash_algorithm)) {
    return PermissionDenied("the policy of key '" + key.name + "' does not allow " +
                            std::string(HashAlgorithmName(hash_algorithm)) + " hashes");
  }
  const auto n = static_cast<int64_t>(hashes.size());
  if (n > policy.max_signatures_per_authorization || n > kMaxSignaturesPerAuthorization) {
    return PermissionDenied("the policy of key '" + key.name + "' allows at most " +
                            std::to_string(std::min(policy.max_signatures_per_authorization,
                                                    kMaxSignaturesPerAuthorization)) +
                            " signatures per authorization; " + std::to_string(n) + " requested");
  }
  return OkStatus();
}

// ---- activation ----

Status SigningService::CheckOpenActivations(const Caller& caller) {
  const int64_t max_open = options_.max_open_activations_per_account;
  if (max_open <= 0) return OkStatus();
  SIGNET_ASSIGN_OR_RETURN(int64_t open,
                          store_.CountOpenActivations(caller.actor.account_id, clock_.Now()));
  if (open < max_open) return OkStatus();
  return ResourceExhausted(std::string(kOpenActivationsMessage) + "account '" +
                           caller.actor.account_name + "' holds " + std::to_string(open) +
                           " SADs that are neither used up nor expired, the most one account "
                           "may hold (" +
                           std::to_string(max_open) +
                           "); sign with them or retry when they expire (within " +
                           std::to_string(options_.sad_lifetime.count()) + " s)");
}

Result<Authorization> SigningService::IssueAuthorization(
    const Caller& caller, const store::KeyRecord& key, HashAlgorithm hash_algorithm,
    const std::vector<Bytes>& hashes, const KeyPolicy& policy, const SecretBytes* old_sad,
    AuditEvent& event) {
  const TimePoint now = clock_.Now();
  store::ActivationRecord activation;
  activation.account_id = caller.actor.account_id;
  activation.key_id = key.id;
  activation.hash_algorithm = std::string(HashAlgorithmName(hash_algorithm));
  activation.num_signatures = static_cast<int64_t>(hashes.size());
  activation.created_at = now;
  activation.expires_at = now + options_.sad_lifetime;
  for (const Bytes& h : hashes) activation.hashes.push_back({h, std::nullopt});

  Bytes old_sad_hash;
  int64_t transaction_num_signatures = activation.num_signatures;
  if (old_sad != nullptr) {
    SIGNET_ASSIGN_OR_RETURN(old_sad_hash, SadHash(*old_sad));
    SIGNET_ASSIGN_OR_RETURN(std::optional<store::ActivationRecord> found,
                            FindActivation(old_sad_hash));
    SIGNET_TRY(store::CheckActivationBinding(found, caller.actor.account_id, key.id, now));
    // The transaction keeps the time the account authorized it; extensions cannot outlive it by
    // more than max_transaction_lifetime.
    activation.created_at = found->created_at;
    const TimePoint cap = found->created_at + options_.max_transaction_lifetime;
    if (cap <= now) {
      return Unauthenticated(
          std::string(kSadExpiredPrefix) + ": the transaction was authorized more than " +
          std::to_string(options_.max_transaction_lifetime.count()) + " s ago; authorize again");
    }
    activation.expires_at = std::min(activation.expires_at, cap);
    // A used-up SAD is not open; its extension would be: bounded as a new authorization is.
    if (found->signatures_used >= found->num_signatures) SIGNET_TRY(CheckOpenActivations(caller));
    event.details["extends_sad_sha256"] = HexEncode(old_sad_hash);
    // A SAD's num_signatures never changes, so this is what ReplaceActivation will store.
    transaction_num_signatures = found->num_signatures + activation.num_signatures;
  }

  // The SAD: 256 random bits, base64url. Only its SHA-256 is stored.
  Bytes random(kSadRandomBytes);
  SIGNET_TRY(RandomBytes(random));
  std::string text = Base64UrlEncode(random);
  SecureWipe(random.data(), random.size());
  SecretBytes sad(text);
  SecureWipe(text.data(), text.size());
  SIGNET_ASSIGN_OR_RETURN(activation.sad_hash, SadHash(sad));

  event.details["sad_sha256"] = HexEncode(activation.sad_hash);
  event.details["expires_at"] = FormatRfc3339(activation.expires_at);
  if (old_sad != nullptr) {
    event.details["transaction_num_signatures"] = std::to_string(transaction_num_signatures);
  }
  event.outcome = std::string(kOutcomeSuccess);
  // The activation is stored in the transaction that appends the event: if the log cannot record
  // it, an extension leaves the old SAD as it was (the client keeps its transaction), and a new
  // one leaves nothing that would count toward the account's open authorizations.
  const int64_t max_signatures =
      std::min(policy.max_signatures_per_authorization, kMaxSignaturesPerAuthorization);
  std::optional<Error> store_error;  // the store's own answer, from the last attempt
  Status recorded = audit_.RecordIf(event, [&]() -> Status {
    store_error.reset();
    // The open-SAD bound is checked again inside the insert: concurrent authorizations that all
    // passed CheckOpenActivations cannot overshoot it together.
    Status stored =
        old_sad != nullptr
            ? store_.ReplaceActivation(old_sad_hash, caller.actor.account_id, key.id, now,
                                       activation, max_signatures,
                                       options_.max_open_activations_per_account)
            : store_.InsertActivation(activation, options_.max_open_activations_per_account);
    if (!stored.ok()) store_error = stored.error();
    return stored;
  });
  if (!recorded.ok()) {
    // The refusal is recorded without the SAD that was never issued.
    for (const char* issued : {"sad_sha256", "expires_at", "transaction_num_signatures"}) {
      event.details.erase(issued);
    }
    if (store_error) return *store_error;  // refused or failed by the store, as it said
    // The SAD never leaves, and nothing of it was stored.
    return recorded.error().WithContext("no SAD issued because the audit log could not record it");
  }
  const auto expires_in =
      std::chrono::duration_cast<std::chrono::seconds>(activation.expires_at - now);
  return Authorization{std::move(sad), activation.expires_at, expires_in};
}

Result<Authorization> SigningService::Authorize(const Caller& caller, std::string_view credential,
                                                HashAlgorithm hash_algorithm,
                                                const std::vector<Bytes>& hashes,
                                                int64_t num_signatures) {
  AuditEvent event = NewEvent(caller, AuditAction::kAuthorize, credential);
  event.signature =
      SignatureAudit{"", "", "", std::string(HashAlgorithmName(hash_algorithm)), HexAll(hashes)};
  event.details["num_signatures"] = std::to_string(num_signatures);
  auto result = [&]() -> Result<Authorization> {
    SIGNET_ASSIGN_OR_RETURN(store::KeyRecord key, CheckSignerAccess(caller, credential, &event));
    SIGNET_ASSIGN_OR_RETURN(KeyPolicy policy, CheckAuthorizeRequest(caller, key, hash_algorithm,
                                                                    hashes, num_signatures));
    return IssueAuthorization(caller, key, hash_algorithm, hashes, policy, nullptr, event);
  }();
  if (!result.ok()) {
    event.action = AuditAction::kAuthorizeRefused;
    return RecordRefusal(audit_, event, std::move(result).error());
  }
  return result;
}

Result<KeyPolicy> SigningService::CheckAuthorizeRequest(const Caller& caller,
                                                        const store::KeyRecord& key,
                                                        HashAlgorithm hash_algorithm,
                                                        const std::vector<Bytes>& hashes,
                                                        int64_t num_signatures) {
  if (num_signatures != static_cast<int64_t>(hashes.size())) {
    return InvalidArgument("numSignatures is " + std::to_string(num_signatures) + " but " +
                           std::to_string(hashes.size()) +
                           " hashes were given; they must be equal (SCAL 2)");
  }
  SIGNET_ASSIGN_OR_RETURN(KeyPolicy policy, EffectivePolicy(key));
  SIGNET_TRY(CheckHashes(hashes, hash_algorithm, policy, key));
  SIGNET_TRY(CheckOpenActivations(caller));
  return policy;
}

Status SigningService::PrecheckAuthorize(const Caller& caller, std::string_view credential,
                                         HashAlgorithm hash_algorithm,
                                         const std::vector<Bytes>& hashes, int64_t num_signatures) {
  SIGNET_ASSIGN_OR_RETURN(store::KeyRecord key, CheckSignerAccess(caller, credential));
  auto policy = CheckAuthorizeRequest(caller, key, hash_algorithm, hashes, num_signatures);
  if (!policy.ok()) return std::move(policy).error();
  return OkStatus();
}

Status SigningService::PrecheckExtend(const Caller& caller, std::string_view credential,
                                      const SecretBytes& sad, HashAlgorithm hash_algorithm,
                                      const std::vector<Bytes>& hashes) {
  SIGNET_ASSIGN_OR_RETURN(store::KeyRecord key, CheckSignerAccess(caller, credential));
  SIGNET_ASSIGN_OR_RETURN(KeyPolicy policy, EffectivePolicy(key));
  SIGNET_TRY(CheckHashes(hashes, hash_algorithm, policy, key));
  const TimePoint now = clock_.Now();
  SIGNET_ASSIGN_OR_RETURN(Bytes sad_hash, SadHash(sad));
  SIGNET_ASSIGN_OR_RETURN(std::optional<store::ActivationRecord> found, FindActivation(sad_hash));
  SIGNET_TRY(store::CheckActivationBinding(found, caller.actor.account_id, key.id, now));
  if (found->created_at + options_.max_transaction_lifetime <= now) {
    return Unauthenticated(
        std::string(kSadExpiredPrefix) + ": the transaction was authorized more than " +
        std::to_string(options_.max_transaction_lifetime.count()) + " s ago; authorize again");
  }
  store::ActivationRecord replacement;
  replacement.account_id = caller.actor.account_id;
  replacement.key_id = key.id;
  replacement.num_signatures = static_cast<int64_t>(hashes.size());
  auto continued = store::ContinueTransaction(
      *found, replacement,
      std::min(policy.max_signatures_per_authorization, kMaxSignaturesPerAuthorization));
  if (!continued.ok()) return std::move(continued).error();
  if (found->signatures_used >= found->num_signatures) SIGNET_TRY(CheckOpenActivations(caller));
  return OkStatus();
}

Result<Authorization> SigningService::ExtendTransaction(const Caller& caller,
                                                        std::string_view credential,
                                                        const SecretBytes& sad,
                                                        HashAlgorithm hash_algorithm,
                                                        const std::vector<Bytes>& hashes) {
  AuditEvent event = NewEvent(caller, AuditAction::kAuthorize, credential);
  event.signature =
      SignatureAudit{"", "", "", std::string(HashAlgorithmName(hash_algorithm)), HexAll(hashes)};
  event.details["operation"] = "extend_transaction";
  event.details["num_signatures"] = std::to_string(hashes.size());
  auto result = [&]() -> Result<Authorization> {
    SIGNET_ASSIGN_OR_RETURN(store::KeyRecord key, CheckSignerAccess(caller, credential, &event));
    SIGNET_ASSIGN_OR_RETURN(KeyPolicy policy, EffectivePolicy(key));
    SIGNET_TRY(CheckHashes(hashes, hash_algorithm, policy, key));
    return IssueAuthorization(caller, key, hash_algorithm, hashes, policy, &sad, event);
  }();
  if (!result.ok()) {
    event.action = AuditAction::kAuthorizeRefused;
    return RecordRefusal(audit_, event, std::move(result).error());
  }
  return result;
}

// ---- signing ----

Result<std::vector<Bytes>> SigningService::SignHashUnrecorded(
    const Caller& caller, std::string_view credential, const SecretBytes& sad,
    const std::vector<Bytes>& hashes, SignatureScheme scheme, HashAlgorithm hash_algorithm,
    AuditEvent& event) {
  SIGNET_ASSIGN_OR_RETURN(store::KeyRecord key, CheckSignerAccess(caller, credential, &event));
  SIGNET_ASSIGN_OR_RETURN(KeyAlgorithm key_alg,
                          StoredKeyField(key, "algorithm", ParseKeyAlgorithm(key.algorithm)));
  if (!SchemeFitsKey(scheme, key_alg) || scheme == SignatureScheme::kEd25519) {
    return InvalidArgument("signature scheme " + std::string(SignatureSchemeName(scheme)) +
                           " does not fit key '" + key.name + "' (" + key.algorithm + ")");
  }
  SIGNET_ASSIGN_OR_RETURN(KeyPolicy policy, EffectivePolicy(key));
  if (!Contains(policy.allowed_sign_schemes, scheme)) {
    return PermissionDenied("the policy of key '" + key.name + "' does not allow " +
                            std::string(SignatureSchemeName(scheme)) + " signatures");
  }
  SIGNET_TRY(CheckHashes(hashes, hash_algorithm, policy, key));
  SIGNET_ASSIGN_OR_RETURN(Bytes hsm_id,
                          StoredKeyField(key, "HSM key id", HexDecode(key.hsm_key_id)));

  store::ConsumeActivationRequest consume;
  SIGNET_ASSIGN_OR_RETURN(consume.sad_hash, SadHash(sad));
  event.details["sad_sha256"] = HexEncode(consume.sad_hash);
  consume.account_id = caller.actor.account_id;
  consume.key_id = key.id;
  consume.hash_algorithm = std::string(HashAlgorithmName(hash_algorithm));
  consume.hashes = hashes;
  consume.now = clock_.Now();
  consume.limits.per_key = policy.rate_per_minute_key;
  consume.limits.per_account_key = policy.rate_per_minute_account;
  consume.limits.per_account = options_.rate_per_minute_account;
  consume.flush_with_next_commit = options_.audit_commits_to_store;
  // From here on the hashes are spent, whatever happens next (see signing.h).
  SIGNET_TRY(store_.ConsumeActivationHashes(consume));
  event.details["hashes_consumed"] = "true";

  std::vector<Bytes> signatures;
  signatures.reserve(hashes.size());
  for (size_t i = 0; i < hashes.size(); ++i) {
    auto sig = key_store_.Sign(hsm::HsmKeyId{hsm_id}, scheme, hash_algorithm, hashes[i]);
    if (!sig.ok()) {
      // The request was checked in full before the hashes were consumed, so whatever the HSM
      // says now is the service's failure, never the caller's: a lost HSM login is Unavailable
      // (like an unreachable HSM), and any other refusal (a missing object, a key not allowed to
      // sign) Internal, so that no client reads it as a bad request or a bad SAD.
      event.details["hsm_signatures_made"] = std::to_string(i);  // made, then discarded
      const ErrorCode code = sig.error().code();
      const ErrorCode kept =
          code == ErrorCode::kUnavailable || code == ErrorCode::kResourceExhausted ? code
          : code == ErrorCode::kUnauthenticated ? ErrorCode::kUnavailable
                                                : ErrorCode::kInternal;
      return Error(kept, sig.error().message())
          .WithContext("the HSM could not sign hash " + std::to_string(i + 1) + " of " +
                       std::to_string(hashes.size()) + "; " + std::string(kHashesUsedUpNote));
    }
    signatures.push_back(std::move(sig).value());
  }
  return signatures;
}

Result<std::vector<Bytes>> SigningService::SignHash(
    const Caller& caller, std::string_view credential, const SecretBytes& sad,
    const std::vector<Bytes>& hashes, SignatureScheme scheme, HashAlgorithm hash_algorithm) {
  AuditEvent event = NewEvent(caller, AuditAction::kSign, credential);
  event.signature = SignatureAudit{"", "", std::string(SignatureSchemeName(scheme)),
                                   std::string(HashAlgorithmName(hash_algorithm)), HexAll(hashes)};
  event.details["num_signatures"] = std::to_string(hashes.size());
  auto signatures =
      SignHashUnrecorded(caller, credential, sad, hashes, scheme, hash_algorithm, event);
  if (!signatures.ok()) {
    event.action = AuditAction::kSignRefused;
    return RecordRefusal(audit_, event, std::move(signatures).error());
  }
  // The audit invariant: the signatures leave only if this record is durable. (A signature's
  // hashes were consumed by definition; the mark is for refusals.) The HSM may have taken
  // seconds, so the caller's right to sign with the key is read again in the transaction that
  // records the signatures: a key disabled or destroyed, a grant revoked, an account disabled or
  // locked, a session ended meanwhile releases nothing (and the log shows them in that order).
  event.outcome = std::string(kOutcomeSuccess);
  event.details.erase("hashes_consumed");
  const std::string key_id = event.signature->key_id;
  bool check_refused = false;  // the last run of the check refused (not the log)
  Status recorded = audit_.RecordIf(event, [&]() -> Status {
    Status allowed = RecheckSigner(caller, key_id);
    check_refused = !allowed.ok() && IsRefusal(allowed.error());
    return allowed;
  });
  if (!recorded.ok()) {
    event.details["hashes_consumed"] = "true";
    for (Bytes& s : *signatures) SecureWipe(s.data(), s.size());
    if (check_refused && IsRefusal(recorded.error())) {
      event.action = AuditAction::kSignRefused;
      event.details["stage"] = "release";
      return RecordRefusal(audit_, event,
                           std::move(recorded).error().WithContext(
                               "no signature returned: the right to sign changed while the HSM "
                               "signed; " +
                               std::string(kHashesUsedUpNote)));
    }
    // The request was fine; whatever the log refused is the service's failure (Unavailable if it
    // may pass on a retry, Internal otherwise), never a bad request or bad SAD of the caller's.
    const ErrorCode code = recorded.error().code();
    const ErrorCode kept = code == ErrorCode::kUnavailable || code == ErrorCode::kResourceExhausted
                               ? code
                               : ErrorCode::kInternal;
    Error e = Error(kept, recorded.error().message())
                  .WithContext("no signature returned because the audit log could not record it; " +
                               std::string(kHashesUsedUpNote));
    event.action = AuditAction::kSignRefused;
    return RecordRefusal(audit_, event, std::move(e));
  }
  return signatures;
}

Status SigningService::RecheckSigner(const Caller& caller, const std::string& key_id) {
  const std::string& account = caller.actor.account_id;
  SIGNET_TRY(RecheckSignerSession(
      store_, account, caller.actor.account_name.empty() ? account : caller.actor.account_name,
      caller.session_token_hash, clock_.Now()));
  Result<store::KeyRecord> key = store_.GetKeyById(key_id);
  if (!key.ok() && key.error().code() == ErrorCode::kNotFound) {
    return FailedPrecondition("key '" + key_id + "' was deleted while the request ran");
  }
  if (!key.ok()) return key.error();
  if (key->state != store::KeyState::kActive) {
    return FailedPrecondition("key '" + key->name + "' became " +
                              std::string(store::KeyStateName(key->state)) +
                              " while the request ran");
  }
  SIGNET_ASSIGN_OR_RETURN(bool granted, store_.HasGrant(key_id, account));
  if (!granted) {
    return PermissionDenied("the grant of account '" + account + "' on key '" + key->name +
                            "' was revoked while the request ran");
  }
  return OkStatus();
}

Error SigningService::RecordActivationRefusal(const Caller& caller, std::string_view credential,
                                              HashAlgorithm hash_algorithm,
                                              const std::vector<Bytes>& hashes,
                                              int64_t num_signatures, std::string_view stage,
                                              std::string_view operation, Error error) {
  AuditEvent event = NewEvent(caller, AuditAction::kAuthorizeRefused, credential);
  event.signature =
      SignatureAudit{"", "", "", std::string(HashAlgorithmName(hash_algorithm)), HexAll(hashes)};
  event.details["num_signatures"] = std::to_string(num_signatures);
  event.details["stage"] = std::string(stage);
  if (!operation.empty()) event.details["operation"] = std::string(operation);
  if (auto key = ResolveKey(credential); key.ok()) {
    event.object = key->name;
    event.signature->key_id = key->id;
    event.signature->key_name = key->name;
  }
  return RecordRefusal(audit_, event, std::move(error));
}

Error SigningService::RecordMalformedRequest(const Caller& caller, AuditAction action,
                                             std::string_view credential, Error error) {
  if (action != AuditAction::kAuthorizeRefused && action != AuditAction::kSignRefused) {
    return InvalidArgument("a malformed request is recorded as authorize_refused or sign_refused");
  }
  AuditEvent event = NewEvent(caller, action, credential);
  event.details["stage"] = "request";
  return RecordRefusal(audit_, event, std::move(error));
}

// ---- grants and policies ----

Status SigningService::ChangeAsAdmin(
    const Caller& admin, std::string_view credential, AuditEvent& event,
    const std::function<Status(const store::KeyRecord&, AuditDetails&)>& change) {
  Status result = [&]() -> Status {
    if (!admin.actor.roles.Has(store::Role::kAdmin)) {
      return PermissionDenied("account '" + admin.actor.account_id +
                              "' does not have the admin "
                              "role; only admins change grants and policies");
    }
    SIGNET_ASSIGN_OR_RETURN(store::KeyRecord key, ResolveKey(credential));
    event.object = key.name;
    event.details["key_id"] = key.id;
    event.outcome = std::string(kOutcomeSuccess);
    // The change commits with its log entry or not at all.
    return audit_.RecordChange(event, [&](AuditDetails& details) -> Status {
      // The role was checked when the request began; the session must still be an admin's.
      SIGNET_TRY(RecheckAdminSession(store_, admin.actor.account_id, admin.actor.account_name,
                                     admin.session_token_hash, clock_.Now()));
      return change(key, details);
    });
  }();
  if (!result.ok()) return RecordRefusal(audit_, event, std::move(result).error());
  return OkStatus();
}

Status SigningService::Grant(const Caller& admin, std::string_view credential,
                             std::string_view account_id) {
  AuditEvent event = NewEvent(admin, AuditAction::kGrant, credential);
  event.details["account_id"] = std::string(account_id);
  const TimePoint now = clock_.Now();
  return ChangeAsAdmin(
      admin, credential, event, [&](const store::KeyRecord& resolved, AuditDetails&) -> Status {
        if (account_id.empty()) return InvalidArgument("no account id given for the grant");
        // Read again inside the change's transaction: a key destroyed meanwhile is not granted.
        SIGNET_ASSIGN_OR_RETURN(store::KeyRecord key, store_.GetKeyById(resolved.id));
        if (key.state == store::KeyState::kDestroyed) {
          return FailedPrecondition("key '" + key.name + "' is destroyed; it cannot be granted");
        }
        return store_.InsertGrant(key.id, account_id, now);
      });
}

Status SigningService::Revoke(const Caller& admin, std::string_view credential,
                              std::string_view account_id) {
  AuditEvent event = NewEvent(admin, AuditAction::kRevokeGrant, credential);
  event.details["account_id"] = std::string(account_id);
  return ChangeAsAdmin(admin, credential, event, [&](const store::KeyRecord& key, AuditDetails&) {
    return store_.DeleteGrant(key.id, account_id);
  });
}

Status SigningService::SetPolicy(const Caller& admin, std::string_view credential,
                                 const KeyPolicy& policy) {
  KeyPolicyChange change;
  change.allowed_sign_schemes = policy.allowed_sign_schemes;
  change.allowed_hash_algorithms = policy.allowed_hash_algorithms;
  change.max_signatures_per_authorization = policy.max_signatures_per_authorization;
  change.rate_per_minute_key = policy.rate_per_minute_key;
  change.rate_per_minute_account = policy.rate_per_minute_account;
  return ChangePolicy(admin, credential, change);
}

Status SigningService::ChangePolicy(const Caller& admin, std::string_view credential,
                                    const KeyPolicyChange& change) {
  AuditEvent event = NewEvent(admin, AuditAction::kPolicyChange, credential);
  event.details["change"] = DescribePolicyChange(change);
  if (change.empty()) {
    return RecordRefusal(audit_, event,
                         InvalidArgument("a policy change must set at least one field"));
  }
  return ChangeAsAdmin(
      admin, credential, event, [&](const store::KeyRecord& key, AuditDetails& details) -> Status {
        // Read inside the change's transaction, so it is the policy this one replaces, and the
        // fields the change leaves alone keep what they hold now (not what a client read earlier).
        SIGNET_ASSIGN_OR_RETURN(KeyPolicy current, EffectivePolicy(key));
        KeyPolicy policy = current;
        if (change.allowed_sign_schemes) policy.allowed_sign_schemes = *change.allowed_sign_schemes;
        if (change.allowed_hash_algorithms) {
          policy.allowed_hash_algorithms = *change.allowed_hash_algorithms;
        }
        if (change.max_signatures_per_authorization) {
          policy.max_signatures_per_authorization = *change.max_signatures_per_authorization;
        }
        if (change.rate_per_minute_key) policy.rate_per_minute_key = *change.rate_per_minute_key;
        if (change.rate_per_minute_account) {
          policy.rate_per_minute_account = *change.rate_per_minute_account;
        }
        details["new_policy"] = DescribePolicy(policy);
        SIGNET_ASSIGN_OR_RETURN(KeyAlgorithm alg,
                                StoredKeyField(key, "algorithm", ParseKeyAlgorithm(key.algorithm)));
        if (policy.allowed_sign_schemes.empty() || policy.allowed_hash_algorithms.empty()) {
          return InvalidArgument("a policy must allow at least one scheme and one hash");
        }
        for (SignatureScheme s : policy.allowed_sign_schemes) {
          if (!SchemeFitsKey(s, alg) || s == SignatureScheme::kEd25519) {
            return InvalidArgument("scheme " + std::string(SignatureSchemeName(s)) +
                                   " does not fit key '" + key.name + "' (" + key.algorithm + ")");
          }
        }
        if (policy.max_signatures_per_authorization < 1 ||
            policy.max_signatures_per_authorization > kMaxSignaturesPerAuthorization) {
          return InvalidArgument("max signatures per authorization must be 1 to " +
                                 std::to_string(kMaxSignaturesPerAuthorization));
        }
        if (policy.rate_per_minute_key < 0 || policy.rate_per_minute_account < 0) {
          return InvalidArgument("rate limits must be 0 (none) or positive");
        }
        details["old_policy"] = DescribePolicy(current);
        return store_.PutKeyPolicy(ToRecord(key.id, policy));
      });
}

Result<KeyPolicy> SigningService::GetPolicy(const Caller& caller, std::string_view credential) {
  SIGNET_ASSIGN_OR_RETURN(store::KeyRecord key, ResolveKey(credential));
  const store::RoleSet& roles = caller.actor.roles;
  if (!roles.Has(store::Role::kAdmin) && !roles.Has(store::Role::kAuditor)) {
    SIGNET_ASSIGN_OR_RETURN(bool granted, store_.HasGrant(key.id, caller.actor.account_id));
    if (!granted) {
      return PermissionDenied("account '" + caller.actor.account_id +
                              "' may not read the policy of key '" + key.name + "'");
    }
  }
  return EffectivePolicy(key);
}

Result<std::vector<std::string>> SigningService::ListGrants(const Caller& caller,
                                                            std::string_view credential) {
  const store::RoleSet& roles = caller.actor.roles;
  if (!roles.Has(store::Role::kAdmin) && !roles.Has(store::Role::kAuditor)) {
    return PermissionDenied("account '" + caller.actor.account_id +
                            "' lacks the admin or auditor role; only they list grants");
  }
  SIGNET_ASSIGN_OR_RETURN(store::KeyRecord key, ResolveKey(credential));
  return store_.ListGrants(key.id);
}

bool SigningService::IsExpiredSad(const Error& error) {
  return error.code() == ErrorCode::kUnauthenticated &&
         std::string_view(error.message()).starts_with(kSadExpiredPrefix);
}

bool SigningService::IsRateLimit(const Error& error) {
  const std::string_view message = error.message();
  return error.code() == ErrorCode::kResourceExhausted &&
         (message.starts_with(store::kRateLimitMessage) ||
          message.starts_with(kOpenActivationsMessage));
}

std::optional<int64_t> SigningService::RateLimitRetryAfter(const Error& error, TimePoint now) {
  if (error.code() != ErrorCode::kResourceExhausted ||
      !std::string_view(error.message()).starts_with(store::kRateLimitMessage)) {
    return std::nullopt;
  }
  // store::RateMinute's windows: minute m covers the unix seconds [60m, 60m + 60).
  return (store::RateMinute(now) + 1) * 60 - ToUnixSeconds(now);
}

bool SigningService::HashesUsedUp(const Error& error) {
  return std::string_view(error.message()).find(kHashesUsedUpNote) != std::string_view::npos;
}

bool SigningService::IsUnauthorizedHash(const Error& error) {
  return error.code() == ErrorCode::kPermissionDenied &&
         std::string_view(error.message()).starts_with(store::kHashNotAuthorizedMessage);
}

// ---- CSC credentials/list and credentials/info (server/csc) ----

Result<std::vector<store::KeyRecord>> SigningService::ListGrantedCredentials(
    const Caller& caller) {
  const std::string& account = caller.actor.account_id;
  if (account.empty()) return PermissionDenied("the caller is not an account");
  if (!caller.actor.roles.Has(store::Role::kSigner)) {
    return PermissionDenied("account '" + account + "' does not have the signer role");
  }
  SIGNET_ASSIGN_OR_RETURN(std::vector<store::KeyRecord> keys, store_.ListKeys());
  std::vector<store::KeyRecord> granted;
  for (store::KeyRecord& key : keys) {
    if (key.state == store::KeyState::kDestroyed) continue;
    SIGNET_ASSIGN_OR_RETURN(bool has, store_.HasGrant(key.id, account));
    if (has) granted.push_back(std::move(key));
  }
  std::sort(granted.begin(), granted.end(),
            [](const store::KeyRecord& a, const store::KeyRecord& b) { return a.name < b.name; });
  return granted;
}

Result<store::KeyRecord> SigningService::GetGrantedCredential(const Caller& caller,
                                                              std::string_view credential) {
  const std::string& account = caller.actor.account_id;
  if (account.empty()) return PermissionDenied("the caller is not an account");
  if (!caller.actor.roles.Has(store::Role::kSigner)) {
    return PermissionDenied("account '" + account + "' does not have the signer role");
  }
  const std::string no_grant = "credential '" + OneLineSafe(credential, 128) +
                               "' does not exist or account '" + account + "' has no grant on it";
  auto key = ResolveKey(credential);
  if (!key.ok()) {
    if (key.error().code() == ErrorCode::kNotFound) return PermissionDenied(no_grant);
    return key.error();
  }
  if (key->state == store::KeyState::kDestroyed) return PermissionDenied(no_grant);
  SIGNET_ASSIGN_OR_RETURN(bool granted, store_.HasGrant(key->id, account));
  if (!granted) return PermissionDenied(no_grant);
  return key;
}

// ---- end of CSC credentials/list and credentials/info ----

}  // namespace signet::service
