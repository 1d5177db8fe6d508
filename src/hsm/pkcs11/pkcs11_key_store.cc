#include "hsm/pkcs11/pkcs11_key_store.h"

#include <array>
#include <chrono>
#include <cstring>
#include <exception>
#include <functional>
#include <mutex>
#include <new>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/der.h"
#include "common/encoding.h"
#include "common/text.h"
#include "hsm/pkcs11/internal/ckr.h"
#include "hsm/pkcs11/internal/cryptoki.h"
#include "hsm/pkcs11/internal/key_encoding.h"
#include "hsm/pkcs11/internal/module.h"
#include "hsm/pkcs11/internal/session_pool.h"
#include "hsm/pkcs11/internal/session_runner.h"

namespace signet::hsm {
namespace {

using internal::DescribeRv;
using internal::Lease;
using internal::Module;
using internal::RecoveryGate;
using internal::RvError;
using internal::Session;
using internal::TokenSelector;

using namespace std::chrono_literals;

constexpr size_t kKeyIdSize =
    16;  // Random CKA_ID; CKA_ID is not unique by itself (pkcs11-softhsm.md §5).
constexpr size_t kMaxLabelSize = 256;      // CKA_LABEL of a generated key.
constexpr size_t kTokenLabelSize = 32;     // CK_TOKEN_INFO.label, blank-padded.
constexpr size_t kMaxSignatureSize = 512;  // RSA-4096.

// How often one call may recover from each kind of failure before it gives up. Under concurrent
// disturbance (another thread's recovery, someone logging out again) a second round can be
// legitimate, so sessions and logins get two; device loss gets a few rounds with back-off.
constexpr int kMaxSessionRecoveries = 2;
constexpr int kMaxLoginRecoveries = 2;
constexpr std::array<std::chrono::milliseconds, 4> kDeviceBackoff = {10ms, 25ms, 50ms, 100ms};

// The recovery rules of pkcs11-softhsm.md §4.
enum class Recovery { kNone, kSession, kLogin, kDevice };

Recovery RecoveryFor(CK_RV rv) {
  switch (rv) {
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED:
    case CKR_OPERATION_ACTIVE:  // A session left mid-operation: replace it.
      return Recovery::kSession;
    case CKR_USER_NOT_LOGGED_IN:
    case CKR_OBJECT_HANDLE_INVALID:  // On SoftHSM also the symptom of a logout.
    case CKR_KEY_HANDLE_INVALID:
      return Recovery::kLogin;
    case CKR_DEVICE_REMOVED:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_DEVICE_ERROR:
    case CKR_DEVICE_MEMORY:
    case CKR_CRYPTOKI_NOT_INITIALIZED:
    case CKR_SLOT_ID_INVALID:  // Slot ids change when the module is re-initialised.
      return Recovery::kDevice;
    default:
      return Recovery::kNone;
  }
}

int RecoveryLimit(Recovery kind) {
  switch (kind) {
    case Recovery::kNone:
      return 0;
    case Recovery::kSession:
      return kMaxSessionRecoveries;
    case Recovery::kLogin:
      return kMaxLoginRecoveries;
    case Recovery::kDevice:
      return static_cast<int>(kDeviceBackoff.size());
  }
  return 0;
}

// What to do with the session a failed call used.
Lease::Disposition DispositionFor(CK_RV rv) {
  switch (rv) {
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED:
      // Dead. Do not close it: after a module reset the number may name someone else's session.
      return Lease::Disposition::kForget;
    case CKR_OPERATION_ACTIVE:
    case CKR_BUFFER_TOO_SMALL:  // C_Sign leaves the operation active (v2.40 §5.2).
      return Lease::Disposition::kDiscard;
    default:
      return Lease::Disposition::kReturn;
  }
}

// Template values are only read by the module, but the C API takes non-const pointers.
CK_ATTRIBUTE Attribute(CK_ATTRIBUTE_TYPE type, ByteView value) {
  return {type, const_cast<uint8_t*>(value.data()), value.size()};
}
template <typename T>
CK_ATTRIBUTE Attribute(CK_ATTRIBUTE_TYPE type, T* value) {
  return {type, value, sizeof(T)};
}

CK_RSA_PKCS_PSS_PARAMS PssParams(HashAlgorithm hash) {
  switch (hash) {
    case HashAlgorithm::kSha256:
      return {CKM_SHA256, CKG_MGF1_SHA256, 32};
    case HashAlgorithm::kSha384:
      return {CKM_SHA384, CKG_MGF1_SHA384, 48};
    case HashAlgorithm::kSha512:
      return {CKM_SHA512, CKG_MGF1_SHA512, 64};
  }
  return {};
}

bool IsKnown(KeyAlgorithm algorithm) {
  switch (algorithm) {
    case KeyAlgorithm::kRsa3072:
    case KeyAlgorithm::kRsa4096:
    case KeyAlgorithm::kEcP256:
    case KeyAlgorithm::kEcP384:
    case KeyAlgorithm::kEd25519:
      return true;
  }
  return false;
}

bool IsKnown(HashAlgorithm hash) { return DigestSize(hash) != 0; }

bool IsKnown(SignatureScheme scheme) {
  switch (scheme) {
    case SignatureScheme::kRsaPkcs1v15:
    case SignatureScheme::kRsaPss:
    case SignatureScheme::kEcdsa:
    case SignatureScheme::kEd25519:
      return true;
  }
  return false;
}

std::string Quoted(const std::vector<std::string>& labels) {
  std::string out;
  for (const std::string& label : labels) {
    if (!out.empty()) out += ", ";
    out += "'" + label + "'";
  }
  return out;
}

// Logs the user in; a login that already exists (login state is per application, pkcs11-softhsm.md
// §4) counts.
CK_RV LoginUser(const Module& module, CK_SESSION_HANDLE session, const SecretBytes& pin) {
  CK_RV rv = module.Call(&CK_FUNCTION_LIST::C_Login, session, CK_USER_TYPE{CKU_USER},
                         const_cast<CK_UTF8CHAR*>(pin.data()), CK_ULONG{pin.size()});
  return rv == CKR_USER_ALREADY_LOGGED_IN ? CKR_OK : rv;
}

// Destroys a freshly generated key pair unless Keep() is called, so a failure after
// C_GenerateKeyPair does not leave keys nobody knows about on the token.
class GeneratedPairGuard {
 public:
  GeneratedPairGuard(const Module& module, CK_SESSION_HANDLE session, CK_OBJECT_HANDLE public_key,
                     CK_OBJECT_HANDLE private_key)
      : module_(module), session_(session), public_key_(public_key), private_key_(private_key) {}
  // Destroys the pair at most once; a copy would try twice.
  GeneratedPairGuard(const GeneratedPairGuard&) = delete;
  GeneratedPairGuard& operator=(const GeneratedPairGuard&) = delete;
  ~GeneratedPairGuard() {
    if (keep_) return;
    (void)module_.Call(&CK_FUNCTION_LIST::C_DestroyObject, session_, private_key_);
    (void)module_.Call(&CK_FUNCTION_LIST::C_DestroyObject, session_, public_key_);
  }
  void Keep() { keep_ = true; }

 private:
  const Module& module_;
  CK_SESSION_HANDLE session_;
  CK_OBJECT_HANDLE public_key_;
  CK_OBJECT_HANDLE private_key_;
  bool keep_ = false;
};

// What one attempt of an operation reports about a failed module call, so Run() can decide whether
// recovery and a retry may help. Errors that are not module failures (bad input, no such key)
// leave rv at CKR_OK and are returned as they are.
struct Attempt {
  CK_RV rv = CKR_OK;
  std::string_view function;
  uint64_t epoch = 0;  // Recovery epoch the failure was seen in.

  Error Fail(CK_RV failed, std::string_view failed_function, std::string_view context,
             std::string_view advice = {}) {
    rv = failed;
    function = failed_function;
    return RvError(failed, failed_function, context, advice);
  }
};

// The key-handle cache is keyed by the id's bytes as a string (16 bytes: no allocation).
std::string CacheKey(const HsmKeyId& id) { return ToString(id.bytes); }

struct KeyHandles {
  CK_OBJECT_HANDLE private_key = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE public_key = CK_INVALID_HANDLE;  // CK_INVALID_HANDLE if missing or not one.
  size_t public_objects = 0;  // found with the key's CKA_ID (at most 2 are counted)
  KeyAlgorithm algorithm = KeyAlgorithm::kEcP256;
  // Empty when the private key carries the protection signet generates keys with; otherwise which
  // attributes it lacks. Such a key (imported from a file, or changed by another tool) neither
  // signs nor gives its public key (CSBR 6.2.7.3: generated and kept in the module).
  std::string unprotected;
};

// What `p` lacks of the protection of a key generated inside the module and never exportable
// (v2.40 §4.9), or "" when nothing.
std::string MissingProtection(const KeyProtection& p) {
  std::string missing;
  auto lacks = [&missing](bool has, std::string_view what) {
    if (has) return;
    if (!missing.empty()) missing += ", ";
    missing += what;
  };
  lacks(p.local, "CKA_LOCAL (generated on the token)");
  lacks(p.sensitive, "CKA_SENSITIVE");
  lacks(p.always_sensitive, "CKA_ALWAYS_SENSITIVE");
  lacks(!p.extractable, "CKA_EXTRACTABLE false");
  lacks(p.never_extractable, "CKA_NEVER_EXTRACTABLE");
  lacks(p.is_token_object, "CKA_TOKEN");
  lacks(p.is_private_object, "CKA_PRIVATE");
  return missing;
}

}  // namespace

// Lock discipline
// - gate_ is held shared by every operation for as long as it uses a leased session, and
//   exclusively by whatever changes the module-wide state: opening sessions, logging in again,
//   re-initialising the module, forgetting cached handles. So an operation never sees handles
//   change under it, and recovery never closes a session a thread is using.
// - Never wait for gate_ (either way) while holding it, a lease, or keys_mu_.
// - keys_mu_ guards the key-handle map. Lookups take it shared; inserts and erases exclusively;
//   clearing (which must not race with a thread using a handle) happens only with gate_ held
//   exclusively too.
class Pkcs11KeyStore::Impl final : public internal::SessionRunner {
 public:
  Impl(Module module, Pkcs11Options options, CK_SLOT_ID slot)
      : module_(std::move(module)),
        options_(std::move(options)),
        selector_{options_.token_label, options_.token_serial},
        token_name_(selector_.Describe()),
        slot_(slot),
        pool_(options_.max_sessions) {}

  ~Impl() {
    std::unique_lock<RecoveryGate> exclusive(gate_);
    pool_.CloseAll();
    // module_ (declared first, destroyed last) then finalises if it owns the initialisation.
  }

  // Opens the first session and logs in, checking the PIN even if the module would not need it.
  Status Start() {
    std::unique_lock<RecoveryGate> exclusive(gate_);
    Session session;
    CK_RV rv = Session::Open(module_, slot_, &session);
    if (rv != CKR_OK) {
      return RvError(rv, "C_OpenSession",
                     "cannot open a session on " + token_name_ + " in " + module_.path());
    }
    rv = LoginUser(module_, session.get(), options_.user_pin);
    switch (rv) {
      case CKR_OK:
        break;
      case CKR_PIN_INCORRECT:
        return RvError(rv, "C_Login", token_name_ + " rejected the user PIN", "check the PIN");
      case CKR_PIN_LOCKED:
        return RvError(rv, "C_Login", "the user PIN of " + token_name_ + " is locked",
                       "ask the token's security officer to unlock or reset it");
      case CKR_USER_PIN_NOT_INITIALIZED:
        return RvError(rv, "C_Login", token_name_ + " has no user PIN",
                       "initialise the token's user PIN first");
      default:
        return RvError(rv, "C_Login", "cannot log in to " + token_name_ + " in " + module_.path());
    }
    pool_.Add(std::move(session));
    return OkStatus();
  }

  Result<GeneratedKey> GenerateKey(KeyAlgorithm algorithm, std::string_view label) {
    if (!IsKnown(algorithm)) {
      return InvalidArgument("unsupported key algorithm " +
                             std::to_string(static_cast<int>(algorithm)) +
                             "; use rsa-3072, rsa-4096, ec-p256, ec-p384 or ed25519");
    }
    if (label.size() > kMaxLabelSize) {
      return InvalidArgument("key label has " + std::to_string(label.size()) +
                             " bytes; use at most " + std::to_string(kMaxLabelSize));
    }
    // The key pair an attempt generated before failing on a session that died (so that its guard
    // could not destroy it either); the next attempt removes it before generating another, so a
    // retried generation leaves one key, not one per attempt.
    std::optional<HsmKeyId> leftover;
    Result<GeneratedKey> generated =
        Run<GeneratedKey>([&](Lease& lease, Attempt& attempt) -> Result<GeneratedKey> {
          if (leftover) {
            SIGNET_TRY(DestroyObjectsWithId(lease, attempt, *leftover));
            leftover.reset();
          }
          return GenerateWith(lease, attempt, algorithm, label, &leftover);
        });
    if (!generated.ok() && leftover) {
      return generated.error().WithContext("a key pair generated on the way (CKA_ID " +
                                           HexEncode(leftover->bytes) + ") may be left on " +
                                           token_name_ + "; `signet key unrecorded` lists it");
    }
    return generated;
  }

  Result<Bytes> PublicKey(const HsmKeyId& id) {
    SIGNET_TRY(CheckId(id));
    return Run<Bytes>([&](Lease& lease, Attempt& attempt) -> Result<Bytes> {
      SIGNET_ASSIGN_OR_RETURN(KeyHandles key, LookupKey(lease, attempt, id));
      SIGNET_TRY(RequireProtected(id, key));
      return ReadSpki(lease, attempt, id, key);
    });
  }

  Result<Bytes> Sign(const HsmKeyId& id, SignatureScheme scheme, HashAlgorithm hash,
                     ByteView input) {
    SIGNET_TRY(CheckId(id));
    if (!IsKnown(scheme)) {
      return InvalidArgument("unsupported signature scheme " +
                             std::to_string(static_cast<int>(scheme)));
    }
    if (scheme != SignatureScheme::kEd25519) {
      if (!IsKnown(hash)) {
        return InvalidArgument("unsupported hash algorithm " +
                               std::to_string(static_cast<int>(hash)) +
                               "; use sha256, sha384 or sha512");
      }
      if (input.size() != DigestSize(hash)) {
        return InvalidArgument("the digest to sign has " + std::to_string(input.size()) +
                               " bytes but a " + std::string(HashAlgorithmName(hash)) +
                               " digest has " + std::to_string(DigestSize(hash)) +
                               "; pass the digest, not the data");
      }
    }
    return Run<Bytes>([&](Lease& lease, Attempt& attempt) -> Result<Bytes> {
      SIGNET_ASSIGN_OR_RETURN(KeyHandles key, LookupKey(lease, attempt, id));
      SIGNET_TRY(RequireProtected(id, key));
      if (!SchemeFitsKey(scheme, key.algorithm)) {
        return InvalidArgument("key " + HexEncode(id.bytes) + " is " +
                               std::string(KeyAlgorithmName(key.algorithm)) + " and cannot sign " +
                               std::string(SignatureSchemeName(scheme)) +
                               "; use a scheme that fits the key");
      }
      return SignWith(lease, attempt, id, key, scheme, hash, input);
    });
  }

  Result<KeyProtection> Protection(const HsmKeyId& id) {
    SIGNET_TRY(CheckId(id));
    return Run<KeyProtection>([&](Lease& lease, Attempt& attempt) -> Result<KeyProtection> {
      SIGNET_ASSIGN_OR_RETURN(KeyHandles key, LookupKey(lease, attempt, id));
      return ReadProtection(lease, attempt, id, key.private_key);
    });
  }

  Status DestroyKey(const HsmKeyId& id) {
    SIGNET_TRY(CheckId(id));
    return Run<void>([&](Lease& lease, Attempt& attempt) -> Status {
      return DestroyObjectsWithId(lease, attempt, id);
    });
  }

  // The private and public key objects with CKA_ID `id`, destroyed (none there is success).
  Status DestroyObjectsWithId(const Lease& lease, Attempt& attempt, const HsmKeyId& id) {
    // Logged out, the search would not see the private key and "success" would be a lie.
    SIGNET_TRY(CheckLoggedIn(lease, attempt));
    EraseKey(id);
    for (CK_OBJECT_CLASS object_class : {CKO_PRIVATE_KEY, CKO_PUBLIC_KEY}) {
      std::vector<CK_OBJECT_HANDLE> found;
      SIGNET_TRY(FindKeyObjects(lease, attempt, object_class, id, 64, &found));
      for (CK_OBJECT_HANDLE object : found) {
        CK_RV rv = module_.Call(&CK_FUNCTION_LIST::C_DestroyObject, lease.session(), object);
        // CKR_OBJECT_HANDLE_INVALID: destroyed concurrently, which is the goal.
        if (rv != CKR_OK && rv != CKR_OBJECT_HANDLE_INVALID) {
          return attempt.Fail(rv, "C_DestroyObject",
                              "cannot destroy key " + HexEncode(id.bytes) + " on " + token_name_);
        }
      }
    }
    // A logout during the loop would also show as CKR_OBJECT_HANDLE_INVALID; make sure it did
    // not happen before calling the key gone.
    SIGNET_TRY(CheckLoggedIn(lease, attempt));
    EraseKey(id);  // A concurrent lookup may have cached it again meanwhile.
    return OkStatus();
  }

  Result<std::vector<TokenKey>> ListKeys() {
    using Keys = std::vector<TokenKey>;
    return Run<Keys>([&](Lease& lease, Attempt& attempt) -> Result<Keys> {
      // Logged out, private keys are invisible and the list would be wrongly empty.
      SIGNET_TRY(CheckLoggedIn(lease, attempt));
      CK_OBJECT_CLASS object_class = CKO_PRIVATE_KEY;
      CK_BBOOL yes = CK_TRUE;
      std::array<CK_ATTRIBUTE, 2> search = {Attribute(CKA_CLASS, &object_class),
                                            Attribute(CKA_TOKEN, &yes)};
      std::vector<CK_OBJECT_HANDLE> found;
      CK_RV rv =
          internal::FindObjects(module_, lease.session(), search, kMaxListedKeys + 1, &found);
      if (rv != CKR_OK) {
        return attempt.Fail(rv, "C_FindObjects", "cannot list the private keys on " + token_name_);
      }
      if (found.size() > kMaxListedKeys) {
        return ResourceExhausted(token_name_ + " holds more than " +
                                 std::to_string(kMaxListedKeys) +
                                 " private keys; signet lists at most that many");
      }
      Keys keys;
      keys.reserve(found.size());
      bool skipped = false;
      for (CK_OBJECT_HANDLE object : found) {
        TokenKey key;
        rv = internal::GetAttributeBytes(module_, lease.session(), object, CKA_ID, &key.id.bytes);
        if (rv == CKR_OBJECT_HANDLE_INVALID) {  // destroyed since the search, or a logout
          skipped = true;
          continue;
        }
        if (rv != CKR_OK && rv != CKR_ATTRIBUTE_TYPE_INVALID) {
          return attempt.Fail(rv, "C_GetAttributeValue(CKA_ID)",
                              "cannot read the id of a private key on " + token_name_);
        }
        Bytes label;
        rv = internal::GetAttributeBytes(module_, lease.session(), object, CKA_LABEL, &label);
        if (rv == CKR_OBJECT_HANDLE_INVALID) {
          skipped = true;
          continue;
        }
        if (rv != CKR_OK && rv != CKR_ATTRIBUTE_TYPE_INVALID) {
          return attempt.Fail(rv, "C_GetAttributeValue(CKA_LABEL)",
                              "cannot read the label of a private key on " + token_name_);
        }
        key.label.assign(label.begin(), label.end());
        Result<KeyAlgorithm> algorithm = ReadAlgorithm(lease, attempt, key.id, object);
        if (algorithm.ok()) {
          key.algorithm = *algorithm;
        } else if (attempt.rv != CKR_OK) {
          return std::move(algorithm).error();  // a module failure, not an unknown algorithm
        }
        keys.push_back(std::move(key));
      }
      // A logout during the loop also shows as CKR_OBJECT_HANDLE_INVALID (SoftHSM): then the
      // list is short, not the token; the login check fails and the listing is retried.
      if (skipped) SIGNET_TRY(CheckLoggedIn(lease, attempt));
      return keys;
    });
  }

  // internal::SessionRunner, for the secret sealer (pkcs11_secret_sealer.h).
  const Module& module() const override { return module_; }
  const std::string& token_name() const override { return token_name_; }
  Status RunWithSession(
      const std::function<Status(CK_SESSION_HANDLE, internal::CallFailure&)>& op) override {
    return Run<void>([&](Lease& lease, Attempt& attempt) -> Status {
      internal::CallFailure failure;
      Status status = op(lease.session(), failure);
      if (failure.rv != CKR_OK) {
        attempt.rv = failure.rv;
        attempt.function = failure.function;
      }
      return status;
    });
  }

  Result<TokenDescription> DescribeToken() {
    return Run<TokenDescription>([&](Lease&, Attempt& attempt) -> Result<TokenDescription> {
      // The token answers C_GetTokenInfo without a login, so a health check built on this would
      // pass while every signature fails for a PIN the token no longer accepts (read with gate_
      // held shared; it is written with gate_ held exclusively).
      if (refused_pin_ != CKR_OK) {
        return RvError(refused_pin_, "C_Login",
                       token_name_ + " refused the user PIN after a logout",
                       "reopen the key store (restart the service) with the right PIN");
      }
      CK_TOKEN_INFO info{};
      CK_RV rv = module_.Call(&CK_FUNCTION_LIST::C_GetTokenInfo, slot_, &info);
      if (rv != CKR_OK) {
        return attempt.Fail(rv, "C_GetTokenInfo", "cannot describe " + token_name_);
      }
      TokenDescription description;
      description.module_path = module_.path();
      description.label = internal::TrimPadded(info.label);
      description.serial = internal::TrimPadded(info.serialNumber);
      description.manufacturer = internal::TrimPadded(info.manufacturerID);
      description.model = internal::TrimPadded(info.model);
      description.firmware_version = std::to_string(info.firmwareVersion.major) + "." +
                                     std::to_string(info.firmwareVersion.minor);
      return description;
    });
  }

 private:
  // Runs `op` with a leased session, recovering from the failures of pkcs11-softhsm.md §4 and
  // retrying, within the budgets above. `op` reports module failures through Attempt::Fail.
  template <typename T, typename Op>
  Result<T> Run(Op op) {
    std::array<int, 4> recoveries{};  // Rounds used, indexed by Recovery.
    std::string recovery_note;
    for (;;) {
      Attempt attempt;
      Result<T> result = RunOnce<T>(op, attempt);
      if (result.ok() || attempt.rv == CKR_OK) return result;
      Recovery kind = RecoveryFor(attempt.rv);
      if (kind == Recovery::kNone) return result;
      int& used = recoveries[static_cast<size_t>(kind)];
      if (used >= RecoveryLimit(kind)) return GiveUp(attempt, used, recovery_note);
      ++used;
      SIGNET_TRY(Recover(kind, attempt.epoch, used, &recovery_note));
    }
  }

  template <typename T, typename Op>
  Result<T> RunOnce(Op& op, Attempt& attempt) {
    SIGNET_ASSIGN_OR_RETURN(Lease lease, Acquire(attempt));
    attempt.epoch = lease.epoch();
    Result<T> result = op(lease, attempt);
    if (attempt.rv != CKR_OK) lease.set_disposition(DispositionFor(attempt.rv));
    return result;
  }

  Error GiveUp(const Attempt& attempt, int recoveries, const std::string& recovery_note) {
    std::string message = token_name_ + " in PKCS#11 module " + module_.path() +
                          " is unavailable: " + std::string(attempt.function) + " returned " +
                          DescribeRv(attempt.rv) + " again after " + std::to_string(recoveries) +
                          " recovery attempts";
    if (!recovery_note.empty()) message += " (last recovery: " + recovery_note + ")";
    message += "; check the HSM and its connection, then retry";
    return Unavailable(std::move(message));
  }

  // Borrows a session: an idle one if there is one, else opens one (up to max_sessions), else
  // waits for one to come back. On success the gate is held shared until the Lease goes.
  Result<Lease> Acquire(Attempt& attempt) {
    for (;;) {
      gate_.lock_shared();
      if (std::optional<Session> session = pool_.TryTake()) {
        return Lease(&gate_, &pool_, std::move(*session), epoch_);
      }
      gate_.unlock_shared();
      if (pool_.ShouldOpen()) {
        std::unique_lock<RecoveryGate> exclusive(gate_);
        // Only the limit can be re-checked here: with the gate held exclusively every session is
        // idle, so "none idle" is what this thread saw a moment ago, not what it sees now.
        if (!pool_.BelowLimit()) continue;
        std::string_view function;
        CK_RV rv = OpenSessionLocked(&function);
        if (rv != CKR_OK) {
          attempt.epoch = epoch_;  // After any invalidation OpenSessionLocked did itself.
          return attempt.Fail(rv, function, "cannot open a session on " + token_name_);
        }
        continue;
      }
      pool_.WaitForSession(100ms);
    }
  }

  // Requires gate_ held exclusively. Opens a session, logs in if the token is logged out, and puts
  // the session into the pool.
  CK_RV OpenSessionLocked(std::string_view* failed_function) {
    Session session;
    CK_RV rv = Session::Open(module_, slot_, &session);
    if (rv != CKR_OK) {
      *failed_function = "C_OpenSession";
      return rv;
    }
    if (pool_.Holds(session.get())) {
      // The module handed out a number we still hold: it was re-initialised behind our back and
      // numbering restarted, so every session and object handle we hold is stale and may now
      // name someone else's session or key.
      pool_.ForgetAll();
      InvalidateKeysLocked();
    }
    CK_SESSION_INFO info{};
    rv = module_.Call(&CK_FUNCTION_LIST::C_GetSessionInfo, session.get(), &info);
    if (rv != CKR_OK) {
      *failed_function = "C_GetSessionInfo";
      return rv;
    }
    if (info.state == CKS_RO_PUBLIC_SESSION || info.state == CKS_RW_PUBLIC_SESSION) {
      rv = LoginAgainLocked(session.get());
      if (rv != CKR_OK) {
        *failed_function = "C_Login";
        return rv;
      }
      InvalidateKeysLocked();  // Handles found before the logout are dead.
    }
    pool_.Add(std::move(session));
    return CKR_OK;
  }

  // Requires gate_ held exclusively. C_Login as CKU_USER after a logout. Once the token has
  // refused the PIN (incorrect, locked, expired), it is not offered again: each try may count
  // toward the token's retry limit, and every request would make one, locking the PIN within
  // seconds on an HSM that counts. The refusal is answered without calling the module until the
  // store is reopened.
  CK_RV LoginAgainLocked(CK_SESSION_HANDLE session) {
    if (refused_pin_ != CKR_OK) return refused_pin_;
    CK_RV rv = LoginUser(module_, session, options_.user_pin);
    if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED || rv == CKR_PIN_EXPIRED ||
        rv == CKR_PIN_LEN_RANGE || rv == CKR_PIN_INVALID) {
      refused_pin_ = rv;
    }
    return rv;
  }

  // Repairs what a failed call reported, unless another thread already did after `seen_epoch`.
  // Returns an error only when retrying cannot help (e.g. the PIN is no longer accepted).
  Status Recover(Recovery kind, uint64_t seen_epoch, int round, std::string* note) {
    if (kind == Recovery::kDevice) {
      std::this_thread::sleep_for(kDeviceBackoff[static_cast<size_t>(round - 1)]);
    }
    std::unique_lock<RecoveryGate> exclusive(gate_);
    if (epoch_ != seen_epoch) return OkStatus();
    switch (kind) {
      case Recovery::kNone:
        break;
      case Recovery::kSession:
        // Sessions die one at a time (someone closed one) or all together (C_CloseAllSessions,
        // module reset). Keep those that still answer; the retry opens new ones as needed, logging
        // in if the loss logged us out.
        pool_.ForgetDead([this](CK_SESSION_HANDLE handle) {
          CK_SESSION_INFO info{};
          const CK_RV rv = module_.Call(&CK_FUNCTION_LIST::C_GetSessionInfo, handle, &info);
          if (rv == CKR_OK) return false;
          // Gone already: nothing to close. Any other failure (a device error) leaves a session
          // that may still exist in the module: closed here, or a network HSM would count it
          // against its session limit for ever. (The module was not re-initialised, so the handle
          // is still ours.)
          if (rv != CKR_SESSION_HANDLE_INVALID && rv != CKR_SESSION_CLOSED) {
            (void)module_.Call(&CK_FUNCTION_LIST::C_CloseSession, handle);
          }
          return true;
        });
        InvalidateKeysLocked();
        break;
      case Recovery::kLogin: {
        InvalidateKeysLocked();
        std::optional<CK_SESSION_HANDLE> session = pool_.AnyIdle();
        if (!session) break;  // A new session logs in when it is opened.
        CK_RV rv = LoginAgainLocked(*session);
        // A recoverable failure (dead session, lost device) shows up again in the retry, which
        // then recovers from that instead.
        if (rv != CKR_OK && RecoveryFor(rv) == Recovery::kNone) {
          return RvError(rv, "C_Login", "cannot log in to " + token_name_ + " again",
                         refused_pin_ != CKR_OK
                             ? "the token refused the PIN, which is not tried again (a token "
                               "may lock it after a few tries); reopen the key store (restart "
                               "the service) with the right PIN"
                             : "");
        }
        break;
      }
      case Recovery::kDevice: {
        std::string_view function;
        CK_RV rv = ResetLocked(&function);
        *note = rv == CKR_OK ? "module and token reopened"
                             : std::string(function) + " returned " + DescribeRv(rv);
        break;
      }
    }
    return OkStatus();
  }

  // Requires gate_ held exclusively. Device recovery: close every session, re-initialise the
  // module if we own it (or nobody has it initialised any more), find the token again by label or
  // serial (slot ids may have changed) and log in with a fresh session.
  CK_RV ResetLocked(std::string_view* failed_function) {
    InvalidateKeysLocked();
    CK_INFO info{};
    bool uninitialised =
        module_.Call(&CK_FUNCTION_LIST::C_GetInfo, &info) == CKR_CRYPTOKI_NOT_INITIALIZED;
    if (uninitialised) {
      pool_.ForgetAll();  // Their handles died with the module.
    } else {
      pool_.CloseAll();
    }
    if (module_.owns_initialization() || uninitialised) {
      module_.Finalize();
      CK_RV rv = module_.Initialize();
      if (rv != CKR_OK) {
        *failed_function = "C_Initialize";
        return rv;
      }
    }
    internal::TokenSearch search = internal::FindToken(module_, selector_);
    if (search.rv != CKR_OK) {
      *failed_function = "C_GetSlotList";
      return search.rv;
    }
    if (!search.slot) {
      *failed_function = "C_GetTokenInfo";
      return CKR_TOKEN_NOT_PRESENT;
    }
    slot_ = *search.slot;
    return OpenSessionLocked(failed_function);
  }

  // Requires gate_ held exclusively: no thread is using a cached handle.
  void InvalidateKeysLocked() {
    std::unique_lock<std::shared_mutex> lock(keys_mu_);
    keys_.clear();
    ++key_changes_;
    ++epoch_;
  }

  void EraseKey(const HsmKeyId& id) {
    std::unique_lock<std::shared_mutex> lock(keys_mu_);
    keys_.erase(CacheKey(id));
    ++key_changes_;
  }

  static Status CheckId(const HsmKeyId& id) {
    if (id.bytes.empty()) return InvalidArgument("empty key id; pass the id GenerateKey returned");
    return OkStatus();
  }

  // Fails with CKR_USER_NOT_LOGGED_IN (recovered by logging in) if the token is logged out.
  Status CheckLoggedIn(const Lease& lease, Attempt& attempt) {
    CK_SESSION_INFO info{};
    CK_RV rv = module_.Call(&CK_FUNCTION_LIST::C_GetSessionInfo, lease.session(), &info);
    if (rv != CKR_OK) {
      return attempt.Fail(rv, "C_GetSessionInfo", "cannot check the login state of " + token_name_);
    }
    if (info.state == CKS_RO_PUBLIC_SESSION || info.state == CKS_RW_PUBLIC_SESSION) {
      return attempt.Fail(CKR_USER_NOT_LOGGED_IN, "the login check",
                          token_name_ + " is logged out");
    }
    return OkStatus();
  }

  // Objects of `object_class` with CKA_ID `id`; with `private_token_only`, only token objects
  // that need a login to be seen (CKA_TOKEN and CKA_PRIVATE true), so that an object planted from
  // a public session cannot stand in for a key while the store is logged out.
  Status FindKeyObjects(const Lease& lease, Attempt& attempt, CK_OBJECT_CLASS object_class,
                        const HsmKeyId& id, size_t limit, std::vector<CK_OBJECT_HANDLE>* found,
                        bool private_token_only = false) {
    CK_BBOOL yes = CK_TRUE;
    std::array<CK_ATTRIBUTE, 4> search = {Attribute(CKA_CLASS, &object_class),
                                          Attribute(CKA_ID, id.bytes), Attribute(CKA_TOKEN, &yes),
                                          Attribute(CKA_PRIVATE, &yes)};
    CK_RV rv = internal::FindObjects(
        module_, lease.session(),
        std::span<CK_ATTRIBUTE>(search.data(), private_token_only ? 4 : 2), limit, found);
    if (rv != CKR_OK) {
      return attempt.Fail(rv, "C_FindObjects",
                          "cannot search " + token_name_ + " for key " + HexEncode(id.bytes));
    }
    return OkStatus();
  }

  // The key's handles: from the cache, or found by CKA_ID (v2.40 §5.7) and cached.
  Result<KeyHandles> LookupKey(const Lease& lease, Attempt& attempt, const HsmKeyId& id) {
    uint64_t changes_seen = 0;
    {
      std::shared_lock<std::shared_mutex> lock(keys_mu_);
      auto it = keys_.find(CacheKey(id));
      if (it != keys_.end()) return it->second;
      changes_seen = key_changes_;
    }
    KeyHandles key;
    std::vector<CK_OBJECT_HANDLE> found;
    SIGNET_TRY(FindKeyObjects(lease, attempt, CKO_PRIVATE_KEY, id, 2, &found,
                              /*private_token_only=*/true));
    if (found.empty()) {
      // Logged out, private keys are invisible: log in again rather than report NotFound.
      SIGNET_TRY(CheckLoggedIn(lease, attempt));
      return NotFound("no key with id " + HexEncode(id.bytes) + " on " + token_name_ +
                      "; check the key id");
    }
    if (found.size() > 1) {
      return FailedPrecondition("several private keys on " + token_name_ + " have id " +
                                HexEncode(id.bytes) + "; remove the duplicates");
    }
    key.private_key = found[0];
    SIGNET_TRY(FindKeyObjects(lease, attempt, CKO_PUBLIC_KEY, id, 2, &found));
    key.public_objects = found.size();
    if (found.size() == 1) key.public_key = found[0];
    SIGNET_ASSIGN_OR_RETURN(key.algorithm, ReadAlgorithm(lease, attempt, id, key.private_key));
    SIGNET_ASSIGN_OR_RETURN(KeyProtection protection,
                            ReadProtection(lease, attempt, id, key.private_key));
    key.unprotected = MissingProtection(protection);
    std::unique_lock<std::shared_mutex> lock(keys_mu_);
    // A DestroyKey (or an invalidation) since the search may have removed these objects: caching
    // their handles then would keep them after the destroy's own erase, and a module that reuses
    // handles could later give one to another object.
    if (key_changes_ == changes_seen) keys_.insert_or_assign(CacheKey(id), key);
    return key;
  }

  Status RequireProtected(const HsmKeyId& id, const KeyHandles& key) const {
    if (key.unprotected.empty()) return OkStatus();
    return FailedPrecondition("key " + HexEncode(id.bytes) + " on " + token_name_ + " lacks " +
                              key.unprotected +
                              ": it was not generated inside the module as non-exportable, or "
                              "was changed since, so signet does not use it");
  }

  // The key's algorithm from CKA_KEY_TYPE and CKA_MODULUS / CKA_EC_PARAMS of the private key.
  Result<KeyAlgorithm> ReadAlgorithm(const Lease& lease, Attempt& attempt, const HsmKeyId& id,
                                     CK_OBJECT_HANDLE private_key) {
    std::string context = "cannot read the type of key " + HexEncode(id.bytes);
    CK_KEY_TYPE key_type = 0;
    CK_RV rv =
        internal::GetAttributeUlong(module_, lease.session(), private_key, CKA_KEY_TYPE, &key_type);
    if (rv != CKR_OK) return attempt.Fail(rv, "C_GetAttributeValue(CKA_KEY_TYPE)", context);
    std::optional<KeyAlgorithm> algorithm;
    Bytes value;
    if (key_type == CKK_RSA) {
      rv = internal::GetAttributeBytes(module_, lease.session(), private_key, CKA_MODULUS, &value);
      if (rv != CKR_OK) return attempt.Fail(rv, "C_GetAttributeValue(CKA_MODULUS)", context);
      algorithm = internal::RsaAlgorithmFromModulus(value);
    } else if (key_type == CKK_EC || key_type == CKK_EC_EDWARDS) {
      rv =
          internal::GetAttributeBytes(module_, lease.session(), private_key, CKA_EC_PARAMS, &value);
      if (rv != CKR_OK) return attempt.Fail(rv, "C_GetAttributeValue(CKA_EC_PARAMS)", context);
      algorithm = internal::AlgorithmFromEcParams(value, key_type == CKK_EC_EDWARDS);
    }
    if (!algorithm) {
      return FailedPrecondition("key " + HexEncode(id.bytes) + " on " + token_name_ +
                                " is not RSA-3072/4096, P-256/P-384 or Ed25519; signet cannot "
                                "use it");
    }
    return *algorithm;
  }

  // SubjectPublicKeyInfo from CKA_MODULUS/CKA_PUBLIC_EXPONENT or CKA_EC_POINT (pkcs11-softhsm.md
  // §7).
  Result<Bytes> ReadSpki(const Lease& lease, Attempt& attempt, const HsmKeyId& id,
                         const KeyHandles& key) {
    std::string context = "cannot read the public key of " + HexEncode(id.bytes);
    auto unusable = [&](const Error& error) {
      return InternalError(token_name_ + " returned an unusable public key for " +
                           HexEncode(id.bytes) + ": " + error.message());
    };
    if (IsRsa(key.algorithm)) {
      // Both attributes are public on the private object too, so a missing public object is fine.
      CK_OBJECT_HANDLE object =
          key.public_key != CK_INVALID_HANDLE ? key.public_key : key.private_key;
      Bytes modulus;
      Bytes exponent;
      CK_RV rv =
          internal::GetAttributeBytes(module_, lease.session(), object, CKA_MODULUS, &modulus);
      if (rv != CKR_OK) return attempt.Fail(rv, "C_GetAttributeValue(CKA_MODULUS)", context);
      rv = internal::GetAttributeBytes(module_, lease.session(), object, CKA_PUBLIC_EXPONENT,
                                       &exponent);
      if (rv != CKR_OK) {
        return attempt.Fail(rv, "C_GetAttributeValue(CKA_PUBLIC_EXPONENT)", context);
      }
      Result<Bytes> spki = internal::RsaSpki(modulus, exponent);
      if (!spki.ok()) return unusable(spki.error());
      return spki;
    }
    // Not NotFound: the private key is there and still signs, and callers take NotFound for key
    // material gone from the HSM. (Public objects need no login to be removed or added.)
    if (key.public_objects > 1) {
      return FailedPrecondition("several public key objects on " + token_name_ + " have id " +
                                HexEncode(id.bytes) + "; remove the ones signet did not make");
    }
    if (key.public_key == CK_INVALID_HANDLE) {
      return FailedPrecondition("the public key object of key " + HexEncode(id.bytes) +
                                " is missing from " + token_name_ +
                                "; its private key is there, but its public key cannot be read");
    }
    Bytes point;
    CK_RV rv =
        internal::GetAttributeBytes(module_, lease.session(), key.public_key, CKA_EC_POINT, &point);
    if (rv != CKR_OK) return attempt.Fail(rv, "C_GetAttributeValue(CKA_EC_POINT)", context);
    Result<Bytes> spki = internal::EcSpki(key.algorithm, point);
    if (!spki.ok()) return unusable(spki.error());
    return spki;
  }

  // The protection attributes of a private key (v2.40 §4.9). An attribute the module does not
  // report keeps the unsafe default of KeyProtection, so a missing answer never looks protected.
  Result<KeyProtection> ReadProtection(const Lease& lease, Attempt& attempt, const HsmKeyId& id,
                                       CK_OBJECT_HANDLE private_key) {
    constexpr std::array<CK_ATTRIBUTE_TYPE, 7> kTypes = {
        CKA_LOCAL, CKA_SENSITIVE, CKA_ALWAYS_SENSITIVE, CKA_EXTRACTABLE, CKA_NEVER_EXTRACTABLE,
        CKA_TOKEN, CKA_PRIVATE};
    std::array<CK_BBOOL, kTypes.size()> values{};
    std::array<CK_ATTRIBUTE, kTypes.size()> attributes{};
    for (size_t i = 0; i < kTypes.size(); ++i) attributes[i] = Attribute(kTypes[i], &values[i]);
    CK_RV rv = module_.Call(&CK_FUNCTION_LIST::C_GetAttributeValue, lease.session(), private_key,
                            attributes.data(), CK_ULONG{attributes.size()});
    // These two still fill every attribute they can (v2.40 §5.7.5).
    if (rv != CKR_OK && rv != CKR_ATTRIBUTE_TYPE_INVALID && rv != CKR_ATTRIBUTE_SENSITIVE) {
      return attempt.Fail(rv, "C_GetAttributeValue",
                          "cannot read the protection attributes of key " + HexEncode(id.bytes));
    }
    auto flag = [&](size_t i, bool fallback) {
      return attributes[i].ulValueLen == sizeof(CK_BBOOL) ? values[i] != CK_FALSE : fallback;
    };
    KeyProtection protection;
    protection.local = flag(0, false);
    protection.sensitive = flag(1, false);
    protection.always_sensitive = flag(2, false);
    protection.extractable = flag(3, true);
    protection.never_extractable = flag(4, false);
    protection.is_token_object = flag(5, false);
    protection.is_private_object = flag(6, false);
    return protection;
  }

  // C_GenerateKeyPair with the templates of pkcs11-softhsm.md §5 (v2.40 §5.14).
  // `leftover` is set to the new pair's id once it exists and reset once it is kept (see
  // GenerateKey).
  Result<GeneratedKey> GenerateWith(Lease& lease, Attempt& attempt, KeyAlgorithm algorithm,
                                    std::string_view label, std::optional<HsmKeyId>* leftover) {
    std::string context =
        "cannot generate a " + std::string(KeyAlgorithmName(algorithm)) + " key on " + token_name_;
    Bytes id(kKeyIdSize);
    CK_RV rv = module_.Call(&CK_FUNCTION_LIST::C_GenerateRandom, lease.session(), id.data(),
                            CK_ULONG{id.size()});
    if (rv != CKR_OK) return attempt.Fail(rv, "C_GenerateRandom", context);
    // Before the call: a module that creates the pair and then fails (a lost session, a network
    // HSM's timeout) leaves objects under this id for the next attempt to remove.
    *leftover = HsmKeyId{id};

    CK_BBOOL yes = CK_TRUE;
    CK_BBOOL no = CK_FALSE;
    ByteView label_bytes = AsBytes(label);
    // Neither object can be changed afterwards (CKA_MODIFIABLE false: no one holding the PIN can
    // give the key another CKA_ID, and so another tenant's place), nor the private key copied
    // (CKA_COPYABLE false: a copy under another id would outlive `signet key destroy`), nor used
    // for anything but signing.
    std::vector<CK_ATTRIBUTE> public_template = {
        Attribute(CKA_TOKEN, &yes),        Attribute(CKA_PRIVATE, &no),
        Attribute(CKA_VERIFY, &yes),       Attribute(CKA_ENCRYPT, &no),
        Attribute(CKA_WRAP, &no),          Attribute(CKA_ID, id),
        Attribute(CKA_LABEL, label_bytes), Attribute(CKA_MODIFIABLE, &no)};
    std::vector<CK_ATTRIBUTE> private_template = {
        Attribute(CKA_TOKEN, &yes),       Attribute(CKA_PRIVATE, &yes),
        Attribute(CKA_SENSITIVE, &yes),   Attribute(CKA_EXTRACTABLE, &no),
        Attribute(CKA_SIGN, &yes),        Attribute(CKA_DECRYPT, &no),
        Attribute(CKA_UNWRAP, &no),       Attribute(CKA_DERIVE, &no),
        Attribute(CKA_SIGN_RECOVER, &no), Attribute(CKA_MODIFIABLE, &no),
        Attribute(CKA_COPYABLE, &no),     Attribute(CKA_ID, id),
        Attribute(CKA_LABEL, label_bytes)};
    CK_MECHANISM mechanism{CKM_EC_KEY_PAIR_GEN, nullptr, 0};
    CK_ULONG modulus_bits = algorithm == KeyAlgorithm::kRsa4096 ? 4096 : 3072;
    static constexpr std::array<uint8_t, 3> kExponent65537 = {0x01, 0x00, 0x01};
    if (IsRsa(algorithm)) {
      mechanism.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
      public_template.push_back(Attribute(CKA_MODULUS_BITS, &modulus_bits));
      public_template.push_back(Attribute(CKA_PUBLIC_EXPONENT, kExponent65537));
    } else {
      mechanism.mechanism =
          algorithm == KeyAlgorithm::kEd25519 ? CKM_EC_EDWARDS_KEY_PAIR_GEN : CKM_EC_KEY_PAIR_GEN;
      public_template.push_back(Attribute(CKA_EC_PARAMS, internal::EcParams(algorithm)));
    }
    KeyHandles key;
    key.algorithm = algorithm;
    rv = module_.Call(&CK_FUNCTION_LIST::C_GenerateKeyPair, lease.session(), &mechanism,
                      public_template.data(), CK_ULONG{public_template.size()},
                      private_template.data(), CK_ULONG{private_template.size()}, &key.public_key,
                      &key.private_key);
    if (rv == CKR_ATTRIBUTE_TYPE_INVALID) {
      // A PKCS#11 v2.20 module does not know CKA_COPYABLE (v2.40); it has no C_CopyObject
      // restriction to ask for either. Once more without it.
      std::erase_if(private_template, [](const CK_ATTRIBUTE& a) { return a.type == CKA_COPYABLE; });
      rv = module_.Call(&CK_FUNCTION_LIST::C_GenerateKeyPair, lease.session(), &mechanism,
                        public_template.data(), CK_ULONG{public_template.size()},
                        private_template.data(), CK_ULONG{private_template.size()}, &key.public_key,
                        &key.private_key);
    }
    if (rv != CKR_OK) return attempt.Fail(rv, "C_GenerateKeyPair", context);
    GeneratedPairGuard guard(module_, lease.session(), key.public_key, key.private_key);

    HsmKeyId key_id{id};
    // Modules are free to ignore template attributes; refuse a key that came out exportable.
    SIGNET_ASSIGN_OR_RETURN(KeyProtection protection,
                            ReadProtection(lease, attempt, key_id, key.private_key));
    // The same rule as every later lookup (MissingProtection): a key that would be refused once
    // the handle cache is cleared must not be handed out now.
    if (const std::string missing = MissingProtection(protection); !missing.empty()) {
      return FailedPrecondition("PKCS#11 module " + module_.path() + " gave the new key no " +
                                missing + ", so it was destroyed; use a module that applies them");
    }
    SIGNET_ASSIGN_OR_RETURN(Bytes spki, ReadSpki(lease, attempt, key_id, key));
    guard.Keep();
    leftover->reset();
    {
      std::unique_lock<std::shared_mutex> lock(keys_mu_);
      keys_.insert_or_assign(CacheKey(key_id), key);
    }
    return GeneratedKey{std::move(key_id), algorithm, std::move(spki)};
  }

  // C_SignInit + one C_Sign into a buffer of the maximum size (v2.40 §5.11; mechanisms per
  // pkcs11-softhsm.md §6).
  Result<Bytes> SignWith(const Lease& lease, Attempt& attempt, const HsmKeyId& id,
                         const KeyHandles& key, SignatureScheme scheme, HashAlgorithm hash,
                         ByteView input) {
    CK_MECHANISM mechanism{CKM_ECDSA, nullptr, 0};
    CK_RSA_PKCS_PSS_PARAMS pss{};
    std::array<uint8_t, 19 + 64> digest_info{};
    ByteView data = input;
    switch (scheme) {
      case SignatureScheme::kRsaPkcs1v15: {
        // CKM_RSA_PKCS signs what it is given: prepend the DigestInfo (RFC 8017 §9.2).
        ByteView prefix = internal::DigestInfoPrefix(hash);
        std::memcpy(digest_info.data(), prefix.data(), prefix.size());
        std::memcpy(digest_info.data() + prefix.size(), input.data(), input.size());
        data = ByteView(digest_info.data(), prefix.size() + input.size());
        mechanism.mechanism = CKM_RSA_PKCS;
        break;
      }
      case SignatureScheme::kRsaPss:
        pss = PssParams(hash);  // MGF1 with the same hash, salt as long as the digest.
        mechanism = {CKM_RSA_PKCS_PSS, &pss, sizeof pss};
        break;
      case SignatureScheme::kEcdsa:
        mechanism.mechanism = CKM_ECDSA;
        break;
      case SignatureScheme::kEd25519:
        mechanism.mechanism = CKM_EDDSA;
        break;  // PureEdDSA.
    }
    CK_RV rv =
        module_.Call(&CK_FUNCTION_LIST::C_SignInit, lease.session(), &mechanism, key.private_key);
    if (rv != CKR_OK) {
      return attempt.Fail(rv, "C_SignInit", "cannot sign with key " + HexEncode(id.bytes));
    }
    std::array<uint8_t, kMaxSignatureSize> signature;
    size_t max_size = internal::MaxSignatureSize(key.algorithm);
    CK_ULONG size = max_size;
    rv = module_.Call(&CK_FUNCTION_LIST::C_Sign, lease.session(), const_cast<CK_BYTE*>(data.data()),
                      CK_ULONG{data.size()}, signature.data(), &size);
    if (rv != CKR_OK) {
      return attempt.Fail(rv, "C_Sign", "cannot sign with key " + HexEncode(id.bytes));
    }
    // Every scheme here has a fixed length: RSA the modulus' (v2.40 §2.1.6; verifiers refuse a
    // shorter one), ECDSA r||s, Ed25519 64 bytes. Anything else is a broken module.
    if (size != max_size) {
      return InternalError(token_name_ + " returned a " + std::to_string(size) +
                           "-byte signature for a " + std::string(KeyAlgorithmName(key.algorithm)) +
                           " key");
    }
    ByteView raw(signature.data(), size);
    if (scheme == SignatureScheme::kEcdsa) return der::EcdsaRawToDer(raw);
    return Bytes(raw.begin(), raw.end());
  }

  // Declared first so it is destroyed last: sessions close through it. Its initialisation
  // ownership changes only with gate_ held exclusively.
  Module module_;
  // Constant after construction.
  const Pkcs11Options options_;
  const TokenSelector selector_;
  const std::string token_name_;

  RecoveryGate gate_;
  CK_SLOT_ID slot_;     // Guarded by gate_ (written exclusively). Valid for this initialisation.
  uint64_t epoch_ = 0;  // Guarded by gate_; counts recoveries and handle invalidations.
  CK_RV refused_pin_ = CKR_OK;  // Guarded by gate_: the token's refusal of the PIN after Start.
  internal::SessionPool pool_;  // Thread-safe; see the "exclusive gate" methods.

  std::shared_mutex keys_mu_;
  // By CacheKey(id). Guarded by keys_mu_; cleared only with gate_ held exclusively.
  std::unordered_map<std::string, KeyHandles> keys_;
  uint64_t key_changes_ = 0;  // Guarded by keys_mu_; counts erases and clears of keys_.
};

Result<std::unique_ptr<Pkcs11KeyStore>> Pkcs11KeyStore::Open(Pkcs11Options options) {
  if (options.token_label.empty() == options.token_serial.empty()) {
    return InvalidArgument("select the PKCS#11 token by label or by serial (exactly one)");
  }
  if (options.token_label.size() > kTokenLabelSize) {
    return InvalidArgument("token label '" + options.token_label + "' is longer than " +
                           std::to_string(kTokenLabelSize) + " bytes; PKCS#11 labels cannot be");
  }
  if (options.user_pin.empty()) {
    return InvalidArgument("the user PIN for the PKCS#11 token is empty; set the PIN");
  }
  if (options.max_sessions == 0) {
    return InvalidArgument("max_sessions is 0; allow at least one PKCS#11 session");
  }
  SIGNET_ASSIGN_OR_RETURN(Module module, Module::Load(options.module_path));
  CK_RV rv = module.Initialize();
  if (rv != CKR_OK) {
    Error error = RvError(rv, "C_Initialize", "cannot initialise PKCS#11 module " + module.path(),
                          "for SoftHSM check SOFTHSM2_CONF and that its token directory exists");
    if (error.code() == ErrorCode::kInternal) {
      return FailedPrecondition(error.message());
    }
    return error;
  }
  TokenSelector selector{options.token_label, options.token_serial};
  internal::TokenSearch search = internal::FindToken(module, selector);
  if (search.rv != CKR_OK) {
    return RvError(search.rv, "C_GetSlotList",
                   "cannot list the tokens of PKCS#11 module " + module.path());
  }
  if (search.matches > 1) {
    return FailedPrecondition(std::to_string(search.matches) + " tokens in " + module.path() +
                              " match " + selector.Describe() + "; select the token by serial");
  }
  if (!search.slot) {
    std::string present = search.labels.empty() ? "the module has no initialised token"
                                                : "tokens present: " + Quoted(search.labels);
    return NotFound("no " + selector.Describe() + " in PKCS#11 module " + module.path() + " (" +
                    present + "); check the token label or serial, or initialise the token");
  }
  CK_SLOT_ID slot = *search.slot;
  auto impl = std::make_unique<Impl>(std::move(module), std::move(options), slot);
  SIGNET_TRY(impl->Start());
  return std::unique_ptr<Pkcs11KeyStore>(new Pkcs11KeyStore(std::move(impl)));
}

Pkcs11KeyStore::Pkcs11KeyStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Pkcs11KeyStore::~Pkcs11KeyStore() = default;

namespace {

// The adapter's edge (STYLE.md "Errors"): an exception from below (std::bad_alloc, a container's
// length_error) becomes an error here and never reaches the services, which would otherwise skip
// their own bookkeeping (a signing request's refusal record) on the way up.
template <typename F>
auto Guarded(std::string_view operation, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return ResourceExhausted("out of memory during the HSM " + std::string(operation));
  } catch (const std::exception& e) {
    return InternalError("unexpected failure during the HSM " + std::string(operation) + ": " +
                         e.what());
  }
}

}  // namespace

Result<GeneratedKey> Pkcs11KeyStore::GenerateKey(KeyAlgorithm algorithm, std::string_view label) {
  return Guarded("key generation", [&] { return impl_->GenerateKey(algorithm, label); });
}
Result<Bytes> Pkcs11KeyStore::PublicKey(const HsmKeyId& id) {
  return Guarded("public key read", [&] { return impl_->PublicKey(id); });
}
Result<Bytes> Pkcs11KeyStore::Sign(const HsmKeyId& id, SignatureScheme scheme, HashAlgorithm hash,
                                   ByteView input) {
  return Guarded("signature", [&] { return impl_->Sign(id, scheme, hash, input); });
}
Result<KeyProtection> Pkcs11KeyStore::Protection(const HsmKeyId& id) {
  return Guarded("key attribute read", [&] { return impl_->Protection(id); });
}
Status Pkcs11KeyStore::DestroyKey(const HsmKeyId& id) {
  return Guarded("key destruction", [&] { return impl_->DestroyKey(id); });
}
Result<TokenDescription> Pkcs11KeyStore::DescribeToken() {
  return Guarded("token description", [&] { return impl_->DescribeToken(); });
}
Result<std::vector<TokenKey>> Pkcs11KeyStore::ListKeys() {
  return Guarded("key listing", [&] { return impl_->ListKeys(); });
}
internal::SessionRunner& Pkcs11KeyStore::runner() { return *impl_; }

namespace {

// Logs the security officer out when it goes, however InitializeToken ends.
class SoLogin {
 public:
  SoLogin(const Module& module, CK_SESSION_HANDLE session) : module_(module), session_(session) {}
  // Logs out once; a copy would log out twice.
  SoLogin(const SoLogin&) = delete;
  SoLogin& operator=(const SoLogin&) = delete;
  ~SoLogin() { (void)module_.Call(&CK_FUNCTION_LIST::C_Logout, session_); }

 private:
  const Module& module_;
  CK_SESSION_HANDLE session_;
};

}  // namespace

Status InitializeToken(const std::string& module_path, std::string_view label,
                       const SecretBytes& so_pin, const SecretBytes& user_pin,
                       std::string_view only_manufacturer) {
  if (label.empty() || label.size() > kTokenLabelSize || label.back() == ' ') {
    return InvalidArgument("token label '" + std::string(label) +
                           "' must have 1 to 32 bytes and no trailing blank");
  }
  if (so_pin.empty() || user_pin.empty()) {
    return InvalidArgument("the SO PIN and the user PIN must not be empty");
  }
  std::string name = "token '" + std::string(label) + "'";
  SIGNET_ASSIGN_OR_RETURN(Module module, Module::Load(module_path));
  CK_RV rv = module.Initialize();
  if (rv != CKR_OK) {
    return RvError(rv, "C_Initialize", "cannot initialise PKCS#11 module " + module_path,
                   "for SoftHSM check SOFTHSM2_CONF and that its token directory exists");
  }
  if (!only_manufacturer.empty()) {
    CK_INFO info{};
    rv = module.Call(&CK_FUNCTION_LIST::C_GetInfo, &info);
    if (rv != CKR_OK) {
      return RvError(rv, "C_GetInfo", "cannot read which library " + module_path + " is");
    }
    const std::string manufacturer = internal::TrimPadded(info.manufacturerID);
    if (manufacturer != only_manufacturer) {
      return FailedPrecondition("PKCS#11 module " + module_path + " is made by '" +
                                OneLineSafe(manufacturer, 64) + "', not " +
                                std::string(only_manufacturer) + "; no token was initialised");
    }
  }
  std::vector<CK_SLOT_ID> slots;
  rv = internal::ListSlotsWithToken(module, &slots);
  if (rv != CKR_OK) {
    return RvError(rv, "C_GetSlotList", "cannot list the tokens of PKCS#11 module " + module_path);
  }
  std::optional<CK_SLOT_ID> free_slot;
  for (CK_SLOT_ID slot : slots) {
    CK_TOKEN_INFO info{};
    if (module.Call(&CK_FUNCTION_LIST::C_GetTokenInfo, slot, &info) != CKR_OK) continue;
    if ((info.flags & CKF_TOKEN_INITIALIZED) == 0) {
      if (!free_slot) free_slot = slot;
    } else if (internal::TrimPadded(info.label) == label) {
      return AlreadyExists("PKCS#11 module " + module_path + " already has a " + name +
                           "; choose another label or open the existing token");
    }
  }
  if (!free_slot) {
    return FailedPrecondition("PKCS#11 module " + module_path +
                              " has no slot with an uninitialised token for " + name +
                              "; free a slot or use another module");
  }
  std::array<CK_UTF8CHAR, kTokenLabelSize> padded_label;
  padded_label.fill(' ');
  std::memcpy(padded_label.data(), label.data(), label.size());
  rv = module.Call(&CK_FUNCTION_LIST::C_InitToken, *free_slot,
                   const_cast<CK_UTF8CHAR*>(so_pin.data()), CK_ULONG{so_pin.size()},
                   padded_label.data());
  if (rv != CKR_OK) {
    return RvError(rv, "C_InitToken", "cannot initialise " + name + " in " + module_path,
                   rv == CKR_PIN_LEN_RANGE ? "use a PIN of the length the module accepts" : "");
  }
  Session session;
  rv = Session::Open(module, *free_slot, &session);
  if (rv != CKR_OK) {
    return RvError(rv, "C_OpenSession", "cannot open a session on the new " + name);
  }
  rv = module.Call(&CK_FUNCTION_LIST::C_Login, session.get(), CK_USER_TYPE{CKU_SO},
                   const_cast<CK_UTF8CHAR*>(so_pin.data()), CK_ULONG{so_pin.size()});
  if (rv != CKR_OK) {
    return RvError(rv, "C_Login", "cannot log in as security officer to the new " + name);
  }
  SoLogin so_login(module, session.get());
  rv = module.Call(&CK_FUNCTION_LIST::C_InitPIN, session.get(),
                   const_cast<CK_UTF8CHAR*>(user_pin.data()), CK_ULONG{user_pin.size()});
  if (rv != CKR_OK) {
    return RvError(rv, "C_InitPIN", "cannot set the user PIN of the new " + name,
                   rv == CKR_PIN_LEN_RANGE ? "use a PIN of the length the module accepts" : "");
  }
  return OkStatus();
  // so_login logs out, session closes, module finalises (if this call initialised it) and unloads.
}

}  // namespace signet::hsm
