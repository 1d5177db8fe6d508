#include "hsm/pkcs11/testing/raw_signer.h"

#include <array>
#include <cstring>

#include "hsm/pkcs11/internal/ckr.h"
#include "hsm/pkcs11/internal/cryptoki.h"
#include "hsm/pkcs11/internal/key_encoding.h"
#include "hsm/pkcs11/internal/module.h"

namespace signet::hsm::testing {

using internal::Module;
using internal::Session;

struct RawSigner::State {
  Module module;
  Session session;  // Declared after module: closed before it is unloaded.
  CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
  CK_MECHANISM mechanism{};
  CK_RSA_PKCS_PSS_PARAMS pss{};
  ByteView prefix;                      // DigestInfo prefix for CKM_RSA_PKCS, else empty.
  std::array<uint8_t, 19 + 64> data{};  // prefix || digest
};

Result<std::unique_ptr<RawSigner>> RawSigner::Open(const std::string& module_path,
                                                   std::string_view token_label,
                                                   const SecretBytes& pin, const HsmKeyId& key,
                                                   SignatureScheme scheme, HashAlgorithm hash) {
  SIGNET_ASSIGN_OR_RETURN(Module module, Module::Load(module_path));
  auto state = std::unique_ptr<State>(new State{std::move(module),
                                                Session(),
                                                CK_INVALID_HANDLE,
                                                CK_MECHANISM{},
                                                CK_RSA_PKCS_PSS_PARAMS{},
                                                ByteView(),
                                                {}});
  const Module& m = state->module;
  internal::TokenSearch search = internal::FindToken(m, {std::string(token_label), ""});
  if (!search.slot) return NotFound("raw signer: no token '" + std::string(token_label) + "'");
  CK_RV rv = Session::Open(m, *search.slot, &state->session);
  if (rv != CKR_OK) return internal::RvError(rv, "C_OpenSession", "raw signer");
  rv = m.Call(&CK_FUNCTION_LIST::C_Login, state->session.get(), CK_USER_TYPE{CKU_USER},
              const_cast<CK_UTF8CHAR*>(pin.data()), CK_ULONG{pin.size()});
  if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
    return internal::RvError(rv, "C_Login", "raw signer");
  }
  CK_OBJECT_CLASS private_class = CKO_PRIVATE_KEY;
  std::array<CK_ATTRIBUTE, 2> search_template = {
      CK_ATTRIBUTE{CKA_CLASS, &private_class, sizeof private_class},
      CK_ATTRIBUTE{CKA_ID, const_cast<uint8_t*>(key.bytes.data()), key.bytes.size()}};
  std::vector<CK_OBJECT_HANDLE> found;
  rv = internal::FindObjects(m, state->session.get(), search_template, 2, &found);
  if (rv != CKR_OK) return internal::RvError(rv, "C_FindObjects", "raw signer");
  if (found.size() != 1) return NotFound("raw signer: key not found");
  state->key = found[0];

  switch (scheme) {
    case SignatureScheme::kRsaPkcs1v15:
      state->mechanism = {CKM_RSA_PKCS, nullptr, 0};
      state->prefix = internal::DigestInfoPrefix(hash);
      break;
    case SignatureScheme::kRsaPss: {
      CK_MECHANISM_TYPE hashes[] = {CKM_SHA256, CKM_SHA384, CKM_SHA512};
      CK_RSA_PKCS_MGF_TYPE mgfs[] = {CKG_MGF1_SHA256, CKG_MGF1_SHA384, CKG_MGF1_SHA512};
      size_t i = static_cast<size_t>(hash);
      state->pss = {hashes[i], mgfs[i], DigestSize(hash)};
      state->mechanism = {CKM_RSA_PKCS_PSS, &state->pss, sizeof state->pss};
      break;
    }
    case SignatureScheme::kEcdsa:
      state->mechanism = {CKM_ECDSA, nullptr, 0};
      break;
    case SignatureScheme::kEd25519:
      state->mechanism = {CKM_EDDSA, nullptr, 0};
      break;
  }
  std::memcpy(state->data.data(), state->prefix.data(), state->prefix.size());
  return std::unique_ptr<RawSigner>(new RawSigner(std::move(state)));
}

RawSigner::RawSigner(std::unique_ptr<State> state) : state_(std::move(state)) {}
RawSigner::~RawSigner() = default;

Result<size_t> RawSigner::Sign(ByteView digest, std::span<uint8_t> signature) {
  State& s = *state_;
  ByteView data = digest;
  if (!s.prefix.empty()) {
    std::memcpy(s.data.data() + s.prefix.size(), digest.data(), digest.size());
    data = ByteView(s.data.data(), s.prefix.size() + digest.size());
  }
  CK_RV rv = s.module.Call(&CK_FUNCTION_LIST::C_SignInit, s.session.get(), &s.mechanism, s.key);
  if (rv != CKR_OK) return internal::RvError(rv, "C_SignInit", "raw signer");
  CK_ULONG size = signature.size();
  rv = s.module.Call(&CK_FUNCTION_LIST::C_Sign, s.session.get(), const_cast<CK_BYTE*>(data.data()),
                     CK_ULONG{data.size()}, signature.data(), &size);
  if (rv != CKR_OK) return internal::RvError(rv, "C_Sign", "raw signer");
  return static_cast<size_t>(size);
}

}  // namespace signet::hsm::testing
