// Store: the port for everything signet keeps in its database, shaped by what the service needs.
// This first version holds code-signing key records; later issues add accounts, activations,
// audit entries and checkpoints. Adapters: store/sqlite/ (default, one machine) and, later,
// store/postgres/ (several nodes).
//
// Every method is atomic: it either fully applies or changes nothing. Threads: an implementation
// may be used from many threads at once.
#pragma once

#include <cstddef>
#include <functional>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/bytes.h"
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
  std::string id;         // signet's identifier, e.g. "k_3f2a9c0d1e5b4a7c"; never reused
  std::string name;       // unique, chosen by the user
  std::string algorithm;  // KeyAlgorithmName(), e.g. "rsa-3072"
  KeyState state = KeyState::kActive;
  std::string owner;        // account that owns the key ("local" for CLI-created keys)
  std::string token_label;  // PKCS#11 token holding the key
  std::string token_serial;
  std::string hsm_key_id;             // CKA_ID, lower-case hex
  std::string public_key_spki;        // DER SubjectPublicKeyInfo, base64
  std::string certificate_chain_pem;  // leaf first; empty until imported
  TimePoint created_at;
  TimePoint updated_at;
};

// ---- accounts and bearer tokens (migration 2) ----

enum class AccountKind { kPerson, kService };
enum class AccountState { kActive, kDisabled };
enum class Role { kAdmin, kSigner, kAuditor };

// "person"/"service", "active"/"disabled", "admin"/"signer"/"auditor".
std::string_view AccountKindName(AccountKind kind);
Result<AccountKind> ParseAccountKind(std::string_view name);
std::string_view AccountStateName(AccountState state);
Result<AccountState> ParseAccountState(std::string_view name);
std::string_view RoleName(Role role);
Result<Role> ParseRole(std::string_view name);

// A set of roles; empty by default (least privilege). A plain value.
class RoleSet {
 public:
  RoleSet() = default;
  RoleSet(std::initializer_list<Role> roles) {
    for (Role r : roles) Add(r);
  }
  void Add(Role role) { bits_ |= Bit(role); }
  void Remove(Role role) { bits_ &= static_cast<unsigned>(~Bit(role)); }
  bool Has(Role role) const { return (bits_ & Bit(role)) != 0; }
  bool empty() const { return bits_ == 0; }
  bool operator==(const RoleSet&) const = default;
  // The canonical text form: role names in the order admin, signer, auditor, joined by ','
  // ("" for no role). This is what the database stores.
  std::string ToString() const;
  // Parses the canonical form; InvalidArgument for unknown, repeated or misordered names.
  static Result<RoleSet> Parse(std::string_view text);

 private:
  static unsigned Bit(Role role) { return 1u << static_cast<unsigned>(role); }
  unsigned bits_ = 0;
};

// An account: a person (password + TOTP) or a service (mTLS client certificate). Secrets are only
// held in protected form: password_hash is an Argon2id encoded string, totp_seed_sealed the
// seed sealed by the HSM (hsm::SecretSealer).
struct AccountRecord {
  std::string id;    // e.g. "a_3f2a9c0d1e5b4a7c"; never reused
  std::string name;  // unique
  AccountKind kind = AccountKind::kPerson;
  RoleSet roles;
  AccountState state = AccountState::kActive;
  std::optional<std::string> password_hash;  // people only
  std::optional<Bytes> totp_seed_sealed;     // people only, once enrolled
  int64_t totp_last_step = 0;   // the last TOTP time step accepted (0: none); only grows, but
                                // for a new seed (SetTotpSeed)
  int64_t failed_attempts = 0;  // consecutive failed logins since the last success or lock
  std::optional<TimePoint> locked_until;
  std::optional<std::string> mtls_fingerprint;  // services only: SHA-256 of the cert DER, hex
  bool must_change_password = false;
  TimePoint created_at;
  TimePoint updated_at;
};

// A bearer token, known to the store only by the SHA-256 of its value.
struct BearerTokenRecord {
  Bytes token_hash;  // 32 bytes
  std::string account_id;
  TimePoint created_at;
  TimePoint expires_at;
  std::optional<TimePoint> revoked_at;
};

// What RecordLoginFailure left behind.
struct LoginFailureState {
  int64_t failed_attempts = 0;            // after this failure (0 when it caused a lock)
  std::optional<TimePoint> locked_until;  // set when this failure locked the account
};

// ---- end of accounts and bearer tokens ----

// ---- activations, grants, policies (migration 3) ----

// One hash bound to an activation (CSC API v2 SCAL 2), usable once.
struct ActivationHash {
  Bytes hash;                            // the raw digest, as authorized
  std::optional<TimePoint> consumed_at;  // set when a signature over it was released for signing
};

// A Signature Activation Data (SAD) as the store keeps it: only the SHA-256 of the SAD value,
// bound to one account, one key, one hash algorithm and a list of hashes (DESIGN.md §3
// "activation").
// The start of the refusal of an activation beyond an account's bound on open ones.
inline constexpr std::string_view kOpenActivationsMessage = "too many open authorizations: ";

struct ActivationRecord {
  Bytes sad_hash;  // SHA-256 of the SAD (32 bytes); the SAD itself is never stored
  std::string account_id;
  std::string key_id;          // KeyRecord::id
  std::string hash_algorithm;  // HashAlgorithmName(), e.g. "sha256"
  // How many signatures the transaction allows and has made in all: the first authorization's,
  // plus those of every extendTransaction that replaced its SAD (ReplaceActivation). The hashes
  // are the current SAD's only, so they, not the count, decide what can still be signed.
  int64_t num_signatures = 0;
  int64_t signatures_used = 0;
  TimePoint created_at;  // when the account authorized the transaction (kept by extensions)
  TimePoint expires_at;  // the SAD is refused from this instant on
  std::vector<ActivationHash> hashes;
};

// Per-minute signature limits checked and counted in the same transaction that consumes hashes.
// 0 means no limit. Minutes are fixed windows of Unix time (floor(seconds / 60)).
struct SignatureRateLimits {
  int64_t per_key = 0;          // all accounts together, on this key
  int64_t per_account_key = 0;  // this account, on this key
  int64_t per_account = 0;      // this account, on all keys
};

// What ConsumeActivationHashes is asked to do.
struct ConsumeActivationRequest {
  Bytes sad_hash;
  std::string account_id;      // who presents the SAD
  std::string key_id;          // the credential it is presented for
  std::string hash_algorithm;  // HashAlgorithmName() of `hashes`
  std::vector<Bytes> hashes;   // the hashes to be signed now, in the order asked
  TimePoint now;
  SignatureRateLimits limits;
  // false (the default): the consumption is on disk when the call returns. true: it is atomic and
  // visible to every later call at once, as always, but reaches the disk with the next durable
  // commit on this store; a power loss or OS crash before that commit may undo it. Only for a
  // caller that makes a durable commit to this same store before anything depends on the
  // consumption surviving a crash: the SigningService, whose `sign` audit entry is committed to
  // the store's log before any signature leaves (SigningOptions::audit_commits_to_store). A
  // consumption undone that way released no signature. Saves one disk flush per signHash.
  bool flush_with_next_commit = false;
};

// Signatures counted in the current minute, for the rate checks.
struct SignatureCounts {
  int64_t key = 0;
  int64_t account_key = 0;
  int64_t account = 0;
};

// The rules of ConsumeActivationHashes as one pure function, so every adapter refuses the same
// requests with the same errors. `activation` is the stored record (with every hash and its
// consumed state), or nullopt if no SAD has that hash. Checks, in this order:
//   no such SAD                                   -> Unauthenticated "the SAD is not valid ..."
//   SAD of another account                        -> Unauthenticated "... another account ..."
//   SAD of another credential                     -> Unauthenticated "... another credential ..."
//   now >= expires_at                             -> Unauthenticated "SAD expired"
//   hash algorithm differs from the authorized one -> PermissionDenied kHashNotAuthorizedMessage
//   no hashes, or one hash twice in the request   -> InvalidArgument
//   more hashes than signatures left              -> PermissionDenied "more signatures than ..."
//   a hash not bound to the SAD                   -> PermissionDenied kHashNotAuthorizedMessage
//   a hash already consumed                       -> PermissionDenied kHashNotAuthorizedMessage
//                                                    " any more: ... already used ..."
//   a rate limit would be exceeded                -> ResourceExhausted
// A SAD of another account or credential has the code of an unknown one (it is not valid for the
// request, whoever it was issued to); its message says which.
Status CheckActivationConsumable(const std::optional<ActivationRecord>& activation,
                                 const ConsumeActivationRequest& request,
                                 const SignatureCounts& counts_this_minute);

// Every rule above except the two about each hash's row (bound to the SAD, not yet consumed): for
// an adapter that checks those two by a conditional update ("set consumed where not consumed")
// and, when anything fails, asks CheckActivationConsumable for the reason. OK here and all rows
// updated is exactly CheckActivationConsumable's OK. `activation` needs no hash rows.
Status CheckActivationRequest(const std::optional<ActivationRecord>& activation,
                              const ConsumeActivationRequest& request,
                              const SignatureCounts& counts_this_minute);

// The message for a SAD the store does not know (never issued, or replaced by an extension).
inline constexpr std::string_view kSadNotValidMessage =
    "the SAD is not valid (unknown, or replaced by extendTransaction); authorize again";

// The start of the message for a SAD issued to another account than the caller's. It is for the
// audit log only: SigningService answers the caller kSadNotValidMessage instead, so that someone
// holding another account's SAD cannot learn from the answer that it is real.
inline constexpr std::string_view kSadOfAnotherAccountMessage =
    "the SAD was issued to another account";

// The message of the "SAD expired" error above; SigningService::IsExpiredSad is built on it.
inline constexpr std::string_view kSadExpiredMessage = "SAD expired";

// The start of the message of both per-hash refusals above (CSC's description of its invalid_hash
// error); SigningService::IsUnauthorizedHash is built on it.
inline constexpr std::string_view kHashNotAuthorizedMessage = "Hash is not authorized by the SAD";

// The start of the message of the rate-limit refusal above (the caller signed too much this
// minute, as opposed to the service being out of disk space or memory, also ResourceExhausted);
// SigningService::IsRateLimit is built on it.
inline constexpr std::string_view kRateLimitMessage = "rate limit of ";

// The first four rules above: the SAD exists, is bound to `account_id` and `key_id`, and has not
// expired at `now`. Used alone by ReplaceActivation.
Status CheckActivationBinding(const std::optional<ActivationRecord>& activation,
                              std::string_view account_id, std::string_view key_id, TimePoint now);

// What ReplaceActivation stores for `replacement` (counts of its own hashes only) continuing the
// transaction of `old`: the same record with old's counts added and old's created_at (the
// transaction's start). InvalidArgument if `replacement` names another account or key than
// `old`. PermissionDenied, naming both
// numbers, if the transaction would then allow more than `max_transaction_signatures` (> 0)
// signatures: an extension trades the old SAD for new hashes, never for more signatures than
// one authorization may carry.
Result<ActivationRecord> ContinueTransaction(const ActivationRecord& old,
                                             const ActivationRecord& replacement,
                                             int64_t max_transaction_signatures);

// The unit of the rate windows: floor(unix seconds / 60).
int64_t RateMinute(TimePoint t);

// The policy an administrator set on one key. Lists hold names; the service checks them.
struct KeyPolicyRecord {
  std::string key_id;
  std::vector<std::string> allowed_sign_algos;  // SignatureSchemeName()s, e.g. "rsa-pss"
  std::vector<std::string> allowed_hash_algos;  // HashAlgorithmName()s, e.g. "sha256"
  int64_t max_signatures_per_authorization = 0;
  int64_t rate_per_minute_key = 0;      // 0: no limit
  int64_t rate_per_minute_account = 0;  // per account on this key; 0: no limit
};

// ---- end of activations, grants, policies ----

// ---- the audit log (migration 4) ----

// The largest entry the log accepts, in bytes: C2SP tlog-tiles entry bundles prefix each entry
// with a big-endian uint16 length.
inline constexpr size_t kMaxLogEntrySize = 65535;

// One entry to append to the Merkle log. The store assigns the index (0, 1, 2, ... in append
// order) inside the append transaction and calls `render` with it, so the index can be part of
// the bytes that are hashed. `render` must be a cheap pure function of its argument (it runs with
// the store's write lock held) and may be called more than once if the store retries.
//
// `apply`, if set, is the change to the store that the entry records (a key disabled, a grant
// given, an account created). The store runs it inside the append transaction, before any entry
// of the append is rendered, with the store itself as argument; it makes its change through that
// store's ordinary methods, which then join the transaction. So the change and its entry are
// durable together or not at all: no crash or failure can leave a change the log does not show,
// or an entry for a change that did not happen. An error from `apply` fails the append (its code
// kept) and undoes everything. Like `render`, it may run more than once if the caller retries, so
// it must do nothing outside the store; it must not append to the log or publish a checkpoint.
class Store;
using StoreChange = std::function<Status(Store& store)>;

struct LogEntryAppend {
  TimePoint time;
  std::string action;      // the entry's action name, for queries; never empty
  std::string key_id;      // KeyRecord::id the entry concerns, or "" (for queries)
  std::string account_id;  // AccountRecord::id of the actor, or "" (for queries)
  std::function<Result<std::string>(int64_t index)> render;
  StoreChange apply;  // optional; see above
};

// One stored entry. `data` is exactly the bytes that were hashed into leaf `index`.
struct LogEntryRow {
  int64_t index = 0;
  TimePoint time;
  std::string action;
  std::string key_id;
  std::string account_id;
  std::string data;
};

// A search of the log. Empty strings and nullopt match everything; all given conditions must hold.
struct LogEntryQuery {
  std::optional<TimePoint> since;  // time >= since
  std::optional<TimePoint> until;  // time < until
  std::string key_id;
  std::string account_id;
  std::string action;
  int64_t after_index = -1;  // only entries with index > after_index (for paging)
  int64_t limit = 100;       // at most this many, in index order; 1 .. 10000
  // How much one call may do, so that no query holds the store (and every append waiting on it)
  // for as long as it takes to search the whole log: it stops once it has examined about
  // `max_scanned` entries (an adapter may count whole blocks of them), or once the entries it
  // collected hold `max_bytes` of data (it always returns at least one entry it found).
  int64_t max_scanned = 65536;
  size_t max_bytes = 8 * 1024 * 1024;
};

// One page of a query's answer.
struct LogEntryPage {
  std::vector<LogEntryRow> entries;  // in index order
  // Where the next page starts (pass it as after_index): the last entry examined. nullopt when
  // the query reached the end of the log (as it was) with room to spare. A page with a successor
  // may be short, even empty, when a work bound of the query stopped it; a full page always has
  // one, though it may turn out empty.
  std::optional<int64_t> next_after;
};

// A C2SP tlog-tiles hash tile: `width` (1..256) consecutive node hashes of tree level
// 8 * `level`, starting at node 256 * `index`. Full tiles (width 256) never change; the store
// keeps only the widest partial tile of each (level, index), since a narrower one is its prefix.
struct LogTileRow {
  int level = 0;
  int64_t index = 0;
  int width = 0;
  Bytes hashes;  // 32 * width bytes
};

// A signed checkpoint of the log (c2sp.org/tlog-checkpoint in a signed note).
struct LogCheckpointRow {
  int64_t size = 0;          // tree size it commits to
  Bytes root;                // 32-byte root hash at that size
  std::string note;          // the signed note, exactly as served at /log/checkpoint
  TimePoint time;            // when it was signed
  int64_t entry_index = -1;  // index of the log entry that records it (set by the store)
};

// The HSM key that signs checkpoints: one per log, created once.
struct LogKeyRecord {
  std::string origin;        // checkpoint origin and signed-note key name
  std::string token_serial;  // PKCS#11 token holding the private key
  std::string hsm_key_id;    // CKA_ID, lower-case hex
  Bytes public_key;          // 32-byte Ed25519 public key
  TimePoint created_at;
};

// ---- end of the audit log ----

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
  virtual Status UpdateKeyState(std::string_view id, KeyState from, KeyState to, TimePoint now) = 0;

  // Replaces the certificate chain of key `id` and sets updated_at.
  virtual Status SetCertificateChain(std::string_view id, std::string_view chain_pem,
                                     TimePoint now) = 0;

  // Cheap check that the database answers; for status and health output.
  virtual Status Ping() = 0;

  // ---- accounts and bearer tokens (migration 2) ----

  // Inserts a new account. AlreadyExists if the id, name or mTLS fingerprint is taken.
  virtual Status InsertAccount(const AccountRecord& account) = 0;
  // NotFound if there is no such account.
  virtual Result<AccountRecord> GetAccountById(std::string_view id) = 0;
  virtual Result<AccountRecord> GetAccountByName(std::string_view name) = 0;
  virtual Result<AccountRecord> GetAccountByFingerprint(std::string_view fingerprint) = 0;
  // All accounts, ordered by name.
  virtual Result<std::vector<AccountRecord>> ListAccounts() = 0;

  // Compare-and-set: records `step` as the last TOTP step used if it is greater than the one
  // stored and the account is not locked at `now`. Returns false (and changes nothing) if not, so
  // each code is accepted at most once even when two logins race, and none once a concurrent
  // failure has locked the account. NotFound if no such account.
  virtual Result<bool> RecordTotpStep(std::string_view id, int64_t step, TimePoint now) = 0;
  // As RecordTotpStep, but locked or not: uses up a code shown while the account is locked, so
  // that whoever finds it then cannot log in with it once the lock ends.
  virtual Result<bool> BurnTotpStep(std::string_view id, int64_t step, TimePoint now) = 0;

  // Atomically counts one failed login, unless the account is locked at `now` (then nothing
  // changes and an empty state is returned: a failure that raced a lock neither counts nor
  // extends it). When the count reaches `lock_threshold`, the account is locked until
  // `lock_until` and the count restarts at 0. NotFound if no such account.
  virtual Result<LoginFailureState> RecordLoginFailure(std::string_view id, int64_t lock_threshold,
                                                       TimePoint lock_until, TimePoint now) = 0;
  // Resets the failure count and lifts any lock (an admin unlock).
  virtual Status ClearLoginFailures(std::string_view id, TimePoint now) = 0;
  // After a successful login: resets the failure count, unless the account is locked at `now`
  // (a lock that concurrent failures set after the factors were checked stands; false then).
  // NotFound if no such account.
  virtual Result<bool> ForgiveLoginFailures(std::string_view id, TimePoint now) = 0;

  // Compare-and-set of the state, as UpdateKeyState. NotFound / FailedPrecondition.
  virtual Status UpdateAccountState(std::string_view id, AccountState from, AccountState to,
                                    TimePoint now) = 0;
  virtual Status SetAccountRoles(std::string_view id, const RoleSet& roles, TimePoint now) = 0;
  virtual Status SetPasswordHash(std::string_view id, std::string_view password_hash,
                                 bool must_change_password, TimePoint now) = 0;
  // Replaces the sealed TOTP seed and sets totp_last_step to 0: no code of the new seed was used,
  // and a step recorded while the clock ran ahead (which would refuse every code until the clock
  // caught up) must not outlive the seed.
  virtual Status SetTotpSeed(std::string_view id, ByteView sealed_seed, TimePoint now) = 0;

  // AlreadyExists if a token with this hash exists; NotFound if the account does not.
  virtual Status InsertBearerToken(const BearerTokenRecord& token) = 0;
  // NotFound if no token has this hash.
  virtual Result<BearerTokenRecord> GetBearerToken(ByteView token_hash) = 0;
  // Sets revoked_at if not yet revoked (repeating succeeds). NotFound if no such token.
  virtual Status RevokeBearerToken(ByteView token_hash, TimePoint now) = 0;
  // Revokes every unrevoked token of the account but the one whose hash is `keep` (none when
  // `keep` is empty); returns how many.
  virtual Result<int64_t> RevokeAccountTokens(std::string_view account_id, TimePoint now,
                                              ByteView keep) = 0;
  // Deletes tokens that expired before `cutoff`; returns how many.
  virtual Result<int64_t> DeleteExpiredBearerTokens(TimePoint cutoff) = 0;

  // ---- end of accounts and bearer tokens ----

  // ---- activations, grants, policies (migration 3) ----

  // Stores a new activation with all its hashes unconsumed. AlreadyExists if the SAD hash is
  // taken; InvalidArgument if it has no hashes or a hash twice; NotFound if there is no such key.
  // If `max_open_for_account` > 0 and the account already holds that many open activations at
  // activation.created_at (as CountOpenActivations counts them), counted in the same
  // transaction, nothing is stored and the answer is ResourceExhausted starting with
  // kOpenActivationsMessage: concurrent authorizations cannot overshoot the bound together.
  virtual Status InsertActivation(const ActivationRecord& activation,
                                  int64_t max_open_for_account) = 0;
  Status InsertActivation(const ActivationRecord& activation) {
    return InsertActivation(activation, 0);
  }
  // Deletes activations (and their hashes) that expired before `cutoff`; returns how many.
  virtual Result<int64_t> DeleteExpiredActivations(TimePoint cutoff) = 0;
  // NotFound if no activation has this SAD hash.
  virtual Result<ActivationRecord> GetActivation(ByteView sad_hash) = 0;
  // How many of the account's activations are open at `now`: not expired (expires_at > now) and
  // with signatures left (signatures_used < num_signatures). For SigningService's bound on them.
  virtual Result<int64_t> CountOpenActivations(std::string_view account_id, TimePoint now) = 0;

  // THE critical operation of signing (DESIGN.md §4): in one transaction, checks every rule of
  // CheckActivationConsumable against the stored activation and the signatures counted in this
  // minute; if all hold, marks each requested hash consumed at `now`, adds their number to
  // signatures_used and to the minute's counts. Otherwise changes nothing and returns the error
  // of the first rule broken. Of concurrent calls presenting the same hash (even from other
  // processes on the same database), exactly one succeeds. Once those rules hold, the key must
  // still be active (else FailedPrecondition; NotFound if it is gone) and the account still hold
  // a grant on it (else PermissionDenied), read in the same transaction, so that a disable,
  // destroy or revocation that committed before cannot be outrun by a request checked earlier.
  virtual Status ConsumeActivationHashes(const ConsumeActivationRequest& request) = 0;

  // CSC extendTransaction: in one transaction, checks that `old_sad_hash` is an activation of
  // `account_id` for `key_id` that has not expired at `now` (the first four rules of
  // CheckActivationConsumable), deletes it, and inserts `replacement` as the continuation of its
  // transaction (ContinueTransaction: the counts add up, and PermissionDenied if the transaction
  // would then allow more than `max_transaction_signatures`). `replacement` carries the counts of
  // its own hashes only (num_signatures = their number, signatures_used = 0). If the old activation
  // is used up (so not open) and `max_open_for_account` > 0, its continuation would be a new open
  // one: bounded as InsertActivation bounds one, counted in the same transaction
  // (ResourceExhausted starting with kOpenActivationsMessage). Changes nothing on error.
  virtual Status ReplaceActivation(ByteView old_sad_hash, std::string_view account_id,
                                   std::string_view key_id, TimePoint now,
                                   const ActivationRecord& replacement,
                                   int64_t max_transaction_signatures,
                                   int64_t max_open_for_account) = 0;
  Status ReplaceActivation(ByteView old_sad_hash, std::string_view account_id,
                           std::string_view key_id, TimePoint now,
                           const ActivationRecord& replacement,
                           int64_t max_transaction_signatures) {
    return ReplaceActivation(old_sad_hash, account_id, key_id, now, replacement,
                             max_transaction_signatures, 0);
  }

  // Grants `account_id` the use of key `key_id`. AlreadyExists if granted already; NotFound if
  // there is no such key.
  virtual Status InsertGrant(std::string_view key_id, std::string_view account_id,
                             TimePoint now) = 0;
  // NotFound if there is no such grant.
  virtual Status DeleteGrant(std::string_view key_id, std::string_view account_id) = 0;
  virtual Result<bool> HasGrant(std::string_view key_id, std::string_view account_id) = 0;
  // Accounts granted the key, ordered by id.
  virtual Result<std::vector<std::string>> ListGrants(std::string_view key_id) = 0;

  // Inserts or replaces the policy of key `policy.key_id`. NotFound if there is no such key.
  virtual Status PutKeyPolicy(const KeyPolicyRecord& policy) = 0;
  // nullopt if no policy was ever set for the key (the service then applies its defaults).
  virtual Result<std::optional<KeyPolicyRecord>> GetKeyPolicy(std::string_view key_id) = 0;

  // ---- end of activations, grants, policies ----

  // ---- the audit log (migration 4). Entries and checkpoints have no update or delete path. ----

  // Appends `entries` in one transaction, at consecutive indices, and returns the first index once
  // they are durable. The next index is read inside the transaction, so appends from other
  // processes on the same database also get consecutive, unique indices. All or nothing, and the
  // failed batch's indices go to the next append. Errors, naming the entry ("entry 2 of 5 (action
  // 'sign')"): InvalidArgument if `entries` is empty, an entry has no action or no render, or a
  // render returns an empty entry or one over kMaxLogEntrySize; a failing render's own error
  // (its code kept) with that context. Entries' `apply` changes run first, in entry order, in the
  // same transaction; an apply's error fails the append with that context. FailedPrecondition if
  // an apply tries to append to the log itself.
  virtual Result<int64_t> AppendLogEntries(std::span<const LogEntryAppend> entries) = 0;
  // Number of entries (the index the next append gets).
  virtual Result<int64_t> LogSize() = 0;
  // Up to `limit` entries with index >= `from`, in index order. InvalidArgument if from < 0 or
  // limit < 1 (there is no upper bound: the caller chooses how much to hold in memory).
  virtual Result<std::vector<LogEntryRow>> ReadLogEntries(int64_t from, int64_t limit) = 0;
  // Entries matching `query`, in index order, and where the next page starts. InvalidArgument for
  // a limit out of range or work bounds below 1.
  virtual Result<LogEntryPage> QueryLogEntries(const LogEntryQuery& query) = 0;

  // The hashes of tile (level, index) cut to its first `width` nodes, or nullopt if no stored
  // tile is that wide. InvalidArgument for a level outside 0..63, a negative index or a width
  // outside 1..256.
  virtual Result<std::optional<Bytes>> GetLogTile(int level, int64_t index, int width) = 0;

  // In one transaction: stores `tiles`, inserts `checkpoint`, and appends `entry` (the entry that
  // records the checkpoint) at the next index, which it stores as the checkpoint's entry_index and
  // returns. A tile where none is stored is inserted; otherwise the stored and the new tile must
  // agree on the hashes they share (else DataLoss: entries or tiles changed under the log), and a
  // wider partial tile replaces a narrower one, while an identical or narrower one changes nothing.
  // Errors, all leaving everything as it was:
  //   InvalidArgument    a tile with a level outside 0..63, a negative index, a width outside
  //                      1..256 or hashes not 32 * width bytes, or given twice; a negative size,
  //                      a root not 32 bytes or an empty note; `entry` as for AppendLogEntries,
  //                      or with an `apply` (a checkpoint's entry changes nothing)
  //   FailedPrecondition a checkpoint of this size or larger exists (another integrator got there
  //                      first), or checkpoint.size exceeds the log size
  //   DataLoss           a tile disagrees with the stored one
  virtual Result<int64_t> PublishLogCheckpoint(std::span<const LogTileRow> tiles,
                                               const LogCheckpointRow& checkpoint,
                                               const LogEntryAppend& entry) = 0;
  // The checkpoint with the largest size, or nullopt before the first.
  virtual Result<std::optional<LogCheckpointRow>> LatestLogCheckpoint() = 0;
  // Up to `limit` checkpoints with size > `after_size`, by size. InvalidArgument if limit < 1.
  virtual Result<std::vector<LogCheckpointRow>> ListLogCheckpoints(int64_t after_size,
                                                                   int64_t limit) = 0;

  // The checkpoint-signing key: inserted once (AlreadyExists if a key exists), never replaced.
  // InvalidArgument for an empty origin or hsm_key_id, or a public key that is not 32 bytes.
  virtual Status InsertLogKey(const LogKeyRecord& key) = 0;
  virtual Result<std::optional<LogKeyRecord>> GetLogKey() = 0;

  // ---- end of the audit log ----
};

}  // namespace signet::store
