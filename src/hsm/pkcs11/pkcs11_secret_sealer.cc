#include "hsm/pkcs11/pkcs11_secret_sealer.h"

#include <array>
#include <vector>

#include "hsm/pkcs11/internal/cryptoki.h"
#include "hsm/pkcs11/internal/module.h"
#include "hsm/pkcs11/internal/session_runner.h"

namespace signet::hsm {
namespace {

using internal::CallFailure;
using internal::SessionRunner;

constexpr uint8_t kFormatVersion = 1;
constexpr size_t kIvSize = 12;   // 96 bits: the GCM IV size NIST SP 800-38D §8.2 recommends
constexpr size_t kTagSize = 16;  // 128 bits
constexpr size_t kKeySize = 32;  // AES-256
constexpr size_t kMaxPlaintext = 4096;
constexpr size_t kHeaderSize = 1 + kIvSize;

// Template values are only read by the module, but the C API takes non-const pointers.
template <typename T>
CK_ATTRIBUTE Attribute(CK_ATTRIBUTE_TYPE type, T* value) {
  return {type, value, sizeof(T)};
}
CK_ATTRIBUTE Attribute(CK_ATTRIBUTE_TYPE type, std::string_view value) {
  return {type, const_cast<char*>(value.data()), value.size()};
}

Error IntegrityError() { return DataLoss("sealed secret failed its integrity check"); }

// The logged-in state matters: logged out, private objects are invisible, and "not found" would
// make Open() create a second key. CKR_USER_NOT_LOGGED_IN lets the runner log in and retry.
Status CheckLoggedIn(const internal::Module& module, CK_SESSION_HANDLE session,
                     CallFailure& failure, const std::string& token_name) {
  CK_SESSION_INFO info{};
  CK_RV rv = module.Call(&CK_FUNCTION_LIST::C_GetSessionInfo, session, &info);
  if (rv != CKR_OK) {
    return failure.Fail(rv, "C_GetSessionInfo", "cannot check the login state of " + token_name);
  }
  if (info.state == CKS_RO_PUBLIC_SESSION || info.state == CKS_RW_PUBLIC_SESSION) {
    return failure.Fail(CKR_USER_NOT_LOGGED_IN, "the login check", token_name + " is logged out");
  }
  return OkStatus();
}

// The handles of the private AES token keys labelled `label` (at most 2, enough to see
// duplicates). Public objects, which a session that never logged in can create, are not looked
// at: one under this label must not shadow the key, or make sealing fail.
Result<std::vector<CK_OBJECT_HANDLE>> FindSealingKeys(const internal::Module& module,
                                                      CK_SESSION_HANDLE session,
                                                      CallFailure& failure,
                                                      const std::string& token_name,
                                                      std::string_view label) {
  CK_OBJECT_CLASS object_class = CKO_SECRET_KEY;
  CK_KEY_TYPE key_type = CKK_AES;
  CK_BBOOL yes = CK_TRUE;
  std::array<CK_ATTRIBUTE, 5> search = {
      Attribute(CKA_CLASS, &object_class), Attribute(CKA_KEY_TYPE, &key_type),
      Attribute(CKA_TOKEN, &yes), Attribute(CKA_PRIVATE, &yes), Attribute(CKA_LABEL, label)};
  std::vector<CK_OBJECT_HANDLE> found;
  CK_RV rv = internal::FindObjects(module, session, search, 2, &found);
  if (rv != CKR_OK) {
    return failure.Fail(rv, "C_FindObjects",
                        "cannot search " + token_name + " for the secret-sealing key");
  }
  return found;
}

Status CheckSealingKey(const internal::Module& module, CK_SESSION_HANDLE session,
                       CK_OBJECT_HANDLE key, const std::string& token_name, std::string_view label);

// The single sealing key, fit for sealing (CheckSealingKey); NotFound if absent (after checking
// the login), FailedPrecondition if several or unfit.
Result<CK_OBJECT_HANDLE> FindSealingKey(const internal::Module& module, CK_SESSION_HANDLE session,
                                        CallFailure& failure, const std::string& token_name,
                                        std::string_view label) {
  SIGNET_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> found,
                          FindSealingKeys(module, session, failure, token_name, label));
  if (found.empty()) {
    SIGNET_TRY(CheckLoggedIn(module, session, failure, token_name));
    return NotFound("the secret-sealing key '" + std::string(label) + "' is missing from " +
                    token_name + "; sealed secrets cannot be opened without it");
  }
  if (found.size() > 1) {
    return FailedPrecondition("several AES keys on " + token_name + " are labelled '" +
                              std::string(label) + "'; remove the one that seals nothing");
  }
  // Checked on every use, not only at Open: a key put in its place since must not seal anything.
  SIGNET_TRY(CheckSealingKey(module, session, found[0], token_name, label));
  return found[0];
}

// Reads one CK_BBOOL attribute; `fallback` when the module does not report it.
bool ReadBool(const internal::Module& module, CK_SESSION_HANDLE session, CK_OBJECT_HANDLE key,
              CK_ATTRIBUTE_TYPE type, bool fallback) {
  Bytes value;
  CK_RV rv = internal::GetAttributeBytes(module, session, key, type, &value);
  if (rv != CKR_OK || value.size() != sizeof(CK_BBOOL)) return fallback;
  return value[0] != CK_FALSE;
}

KeyProtection ReadKeyProtection(const internal::Module& module, CK_SESSION_HANDLE session,
                                CK_OBJECT_HANDLE key) {
  // Attributes the module does not report keep the unsafe default, so nothing looks protected by
  // accident.
  KeyProtection p;
  p.local = ReadBool(module, session, key, CKA_LOCAL, false);
  p.sensitive = ReadBool(module, session, key, CKA_SENSITIVE, false);
  p.always_sensitive = ReadBool(module, session, key, CKA_ALWAYS_SENSITIVE, false);
  p.extractable = ReadBool(module, session, key, CKA_EXTRACTABLE, true);
  p.never_extractable = ReadBool(module, session, key, CKA_NEVER_EXTRACTABLE, false);
  p.is_token_object = ReadBool(module, session, key, CKA_TOKEN, false);
  p.is_private_object = ReadBool(module, session, key, CKA_PRIVATE, false);
  return p;
}

// Refuses a key found under our label that is weaker than one Open() would have made.
Status CheckSealingKey(const internal::Module& module, CK_SESSION_HANDLE session,
                       CK_OBJECT_HANDLE key, const std::string& token_name,
                       std::string_view label) {
  std::string problem;
  CK_ULONG value_len = 0;
  if (internal::GetAttributeUlong(module, session, key, CKA_VALUE_LEN, &value_len) != CKR_OK ||
      value_len != kKeySize) {
    problem = "it is not a 256-bit key";
  }
  KeyProtection p = ReadKeyProtection(module, session, key);
  if (!p.sensitive || p.extractable || !p.is_token_object || !p.is_private_object) {
    problem = "it is extractable, not sensitive, not private or not a token object";
  }
  // A key imported with C_CreateObject (its value known to whoever made it) or once readable
  // would open every sealed TOTP secret from a copy of the database.
  if (!p.local || !p.always_sensitive || !p.never_extractable) {
    problem = "it was not generated on the token, or was once extractable or not sensitive";
  }
  if (!ReadBool(module, session, key, CKA_ENCRYPT, false) ||
      !ReadBool(module, session, key, CKA_DECRYPT, false)) {
    problem = "it may not encrypt and decrypt";
  }
  if (problem.empty()) return OkStatus();
  return FailedPrecondition(
      "the AES key labelled '" + std::string(label) + "' on " + token_name +
      " is unfit for sealing secrets: " + problem +
      "; remove it so signet can generate a proper one. If it is the key that sealed the "
      "accounts' TOTP secrets (brought over by unwrapping, say), those become unreadable with it: "
      "each person then needs 'signet account reset-totp'");
}

Status GenerateSealingKey(const internal::Module& module, CK_SESSION_HANDLE session,
                          CallFailure& failure, const std::string& token_name,
                          std::string_view label) {
  CK_OBJECT_CLASS object_class = CKO_SECRET_KEY;
  CK_KEY_TYPE key_type = CKK_AES;
  CK_ULONG value_len = kKeySize;
  CK_BBOOL yes = CK_TRUE;
  CK_BBOOL no = CK_FALSE;
  std::array<CK_ATTRIBUTE, 17> tmpl = {Attribute(CKA_CLASS, &object_class),
                                       Attribute(CKA_KEY_TYPE, &key_type),
                                       Attribute(CKA_VALUE_LEN, &value_len),
                                       Attribute(CKA_LABEL, label),
                                       Attribute(CKA_TOKEN, &yes),
                                       Attribute(CKA_PRIVATE, &yes),
                                       Attribute(CKA_SENSITIVE, &yes),
                                       Attribute(CKA_EXTRACTABLE, &no),
                                       Attribute(CKA_ENCRYPT, &yes),
                                       Attribute(CKA_DECRYPT, &yes),
                                       Attribute(CKA_SIGN, &no),
                                       Attribute(CKA_VERIFY, &no),
                                       Attribute(CKA_WRAP, &no),
                                       Attribute(CKA_UNWRAP, &no),
                                       Attribute(CKA_DERIVE, &no),
                                       Attribute(CKA_MODIFIABLE, &no),
                                       Attribute(CKA_COPYABLE, &no)};
  CK_MECHANISM mechanism = {CKM_AES_KEY_GEN, nullptr, 0};
  CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
  CK_RV rv = module.Call(&CK_FUNCTION_LIST::C_GenerateKey, session, &mechanism, tmpl.data(),
                         CK_ULONG{tmpl.size()}, &key);
  if (rv == CKR_ATTRIBUTE_TYPE_INVALID) {
    // A PKCS#11 v2.20 module does not know CKA_COPYABLE (v2.40), the template's last attribute.
    rv = module.Call(&CK_FUNCTION_LIST::C_GenerateKey, session, &mechanism, tmpl.data(),
                     CK_ULONG{tmpl.size() - 1}, &key);
  }
  if (rv != CKR_OK) {
    return failure.Fail(rv, "C_GenerateKey",
                        "cannot generate the secret-sealing key on " + token_name);
  }
  return OkStatus();
}

CK_GCM_PARAMS GcmParams(const uint8_t* iv, ByteView aad) {
  CK_GCM_PARAMS params{};
  params.pIv = const_cast<uint8_t*>(iv);
  params.ulIvLen = kIvSize;
  params.ulIvBits = kIvSize * 8;
  params.pAAD = const_cast<uint8_t*>(aad.data());
  params.ulAADLen = aad.size();
  params.ulTagBits = kTagSize * 8;
  return params;
}

}  // namespace

Result<std::unique_ptr<Pkcs11SecretSealer>> Pkcs11SecretSealer::Open(Pkcs11KeyStore& store,
                                                                     std::string key_label) {
  if (key_label.empty() || key_label.size() > 256) {
    return InvalidArgument("the secret-sealing key label must have 1 to 256 bytes");
  }
  SessionRunner& runner = store.runner();
  const internal::Module& module = runner.module();
  const std::string& token_name = runner.token_name();
  Status status =
      runner.RunWithSession([&](CK_SESSION_HANDLE session, CallFailure& failure) -> Status {
        SIGNET_TRY(CheckLoggedIn(module, session, failure, token_name));
        SIGNET_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> found,
                                FindSealingKeys(module, session, failure, token_name, key_label));
        if (found.empty()) {
          SIGNET_TRY(GenerateSealingKey(module, session, failure, token_name, key_label));
          // Find it again rather than trust the returned handle, so the checks below see the key as
          // any later call will.
          SIGNET_ASSIGN_OR_RETURN(found,
                                  FindSealingKeys(module, session, failure, token_name, key_label));
        }
        if (found.size() != 1) {
          return FailedPrecondition("expected one AES key labelled '" + key_label + "' on " +
                                    token_name + ", found " + std::to_string(found.size()) +
                                    "; remove the one that seals nothing");
        }
        return CheckSealingKey(module, session, found[0], token_name, key_label);
      });
  if (!status.ok()) return std::move(status).error();
  return std::unique_ptr<Pkcs11SecretSealer>(new Pkcs11SecretSealer(store, std::move(key_label)));
}

Result<Bytes> Pkcs11SecretSealer::Seal(ByteView plaintext, ByteView aad) {
  if (plaintext.empty() || plaintext.size() > kMaxPlaintext) {
    return InvalidArgument("a secret to seal must have 1 to " + std::to_string(kMaxPlaintext) +
                           " bytes");
  }
  SessionRunner& runner = store_.runner();
  const internal::Module& module = runner.module();
  const std::string& token_name = runner.token_name();
  Bytes sealed;
  Status status = runner.RunWithSession([&](CK_SESSION_HANDLE session,
                                            CallFailure& failure) -> Status {
    SIGNET_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE key,
                            FindSealingKey(module, session, failure, token_name, key_label_));
    Bytes out(kHeaderSize + plaintext.size() + kTagSize);
    out[0] = kFormatVersion;
    uint8_t* iv = out.data() + 1;
    CK_RV rv = module.Call(&CK_FUNCTION_LIST::C_GenerateRandom, session, iv, CK_ULONG{kIvSize});
    if (rv != CKR_OK) {
      return failure.Fail(rv, "C_GenerateRandom", "cannot draw an IV on " + token_name);
    }
    CK_GCM_PARAMS params = GcmParams(iv, aad);
    CK_MECHANISM mechanism = {CKM_AES_GCM, &params, sizeof(params)};
    rv = module.Call(&CK_FUNCTION_LIST::C_EncryptInit, session, &mechanism, key);
    if (rv != CKR_OK) {
      return failure.Fail(rv, "C_EncryptInit", "cannot seal a secret on " + token_name);
    }
    CK_ULONG out_len = plaintext.size() + kTagSize;
    rv = module.Call(&CK_FUNCTION_LIST::C_Encrypt, session, const_cast<uint8_t*>(plaintext.data()),
                     CK_ULONG{plaintext.size()}, out.data() + kHeaderSize, &out_len);
    if (rv != CKR_OK) return failure.Fail(rv, "C_Encrypt", "cannot seal a secret on " + token_name);
    // GCM ciphertext is as long as the plaintext, plus the tag we asked for: anything else means
    // the module did not apply the parameters we gave it.
    if (out_len != plaintext.size() + kTagSize) {
      return InternalError(token_name + " returned " + std::to_string(out_len) +
                           " bytes of AES-GCM output for " + std::to_string(plaintext.size()) +
                           " bytes of input; expected a 16-byte tag");
    }
    sealed = std::move(out);
    return OkStatus();
  });
  if (!status.ok()) return std::move(status).error();
  return sealed;
}

Result<SecretBytes> Pkcs11SecretSealer::Unseal(ByteView sealed, ByteView aad) {
  if (sealed.size() < kHeaderSize + kTagSize + 1 ||
      sealed.size() > kHeaderSize + kMaxPlaintext + kTagSize) {
    return DataLoss("sealed secret has " + std::to_string(sealed.size()) +
                    " bytes, which no sealed secret has");
  }
  if (sealed[0] != kFormatVersion) {
    return DataLoss("sealed secret has unknown format version " + std::to_string(sealed[0]));
  }
  SessionRunner& runner = store_.runner();
  const internal::Module& module = runner.module();
  const std::string& token_name = runner.token_name();
  SecretBytes result;
  Status status =
      runner.RunWithSession([&](CK_SESSION_HANDLE session, CallFailure& failure) -> Status {
        SIGNET_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE key,
                                FindSealingKey(module, session, failure, token_name, key_label_));
        CK_GCM_PARAMS params = GcmParams(sealed.data() + 1, aad);
        CK_MECHANISM mechanism = {CKM_AES_GCM, &params, sizeof(params)};
        CK_RV rv = module.Call(&CK_FUNCTION_LIST::C_DecryptInit, session, &mechanism, key);
        if (rv != CKR_OK) {
          return failure.Fail(rv, "C_DecryptInit", "cannot open a sealed secret on " + token_name);
        }
        const ByteView body = sealed.subspan(kHeaderSize);
        // Plaintext is never longer than ciphertext + tag; one call, no size query. The buffer is
        // wiped on every path.
        Bytes plain(body.size());
        struct Wiper {
          Bytes& bytes;
          ~Wiper() { SecureWipe(bytes.data(), bytes.size()); }
        } wiper{plain};
        CK_ULONG plain_len = body.size();
        rv = module.Call(&CK_FUNCTION_LIST::C_Decrypt, session, const_cast<uint8_t*>(body.data()),
                         CK_ULONG{body.size()}, plain.data(), &plain_len);
        // A wrong tag, changed ciphertext or different AAD: SoftHSM answers CKR_GENERAL_ERROR, the
        // standard CKR_ENCRYPTED_DATA_INVALID (pkcs11-softhsm.md §8). Neither is recoverable, and
        // neither says more than "does not authenticate".
        if (rv == CKR_GENERAL_ERROR || rv == CKR_ENCRYPTED_DATA_INVALID ||
            rv == CKR_ENCRYPTED_DATA_LEN_RANGE) {
          return IntegrityError();
        }
        if (rv != CKR_OK) {
          return failure.Fail(rv, "C_Decrypt", "cannot open a sealed secret on " + token_name);
        }
        if (plain_len != body.size() - kTagSize) return IntegrityError();
        result = SecretBytes(ByteView(plain).first(plain_len));
        return OkStatus();
      });
  if (!status.ok()) return std::move(status).error();
  return result;
}

Result<KeyProtection> Pkcs11SecretSealer::Protection() {
  SessionRunner& runner = store_.runner();
  const internal::Module& module = runner.module();
  const std::string& token_name = runner.token_name();
  KeyProtection protection;
  Status status =
      runner.RunWithSession([&](CK_SESSION_HANDLE session, CallFailure& failure) -> Status {
        SIGNET_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE key,
                                FindSealingKey(module, session, failure, token_name, key_label_));
        protection = ReadKeyProtection(module, session, key);
        return OkStatus();
      });
  if (!status.ok()) return std::move(status).error();
  return protection;
}

}  // namespace signet::hsm
