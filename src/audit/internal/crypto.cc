#include "audit/internal/crypto.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

namespace signet::audit::internal {
namespace {

// Owning pointers for the few OpenSSL types audit/ uses (declared here, the component's only
// OpenSSL file, rather than borrowing pki's private header).
struct EvpMdDeleter {
  void operator()(EVP_MD* md) const { EVP_MD_free(md); }
};
struct EvpMdCtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
struct EvpPkeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using EvpMdPtr = std::unique_ptr<EVP_MD, EvpMdDeleter>;
using EvpMdCtxPtr = std::unique_ptr<EVP_MD_CTX, EvpMdCtxDeleter>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyDeleter>;

// A SHA-256 context that is reset rather than re-created for each hash: with an explicitly
// fetched EVP_MD and a reused EVP_MD_CTX a 65-byte node hash costs about a third of what the
// one-shot SHA256() costs in OpenSSL 3, which matters to the verifier that rehashes whole logs.
class Sha256Context {
 public:
  Sha256Context() : md_(EVP_MD_fetch(nullptr, "SHA256", nullptr)), ctx_(EVP_MD_CTX_new()) {
    // Without SHA-256 or memory nothing in audit/ can work; this is not an input error.
    if (md_ == nullptr || ctx_ == nullptr) std::abort();
  }
  // Owns OpenSSL handles; one per thread, never copied.
  Sha256Context(const Sha256Context&) = delete;
  Sha256Context& operator=(const Sha256Context&) = delete;

  Digest32 Hash(std::initializer_list<ByteView> parts) {
    if (EVP_DigestInit_ex(ctx_.get(), md_.get(), nullptr) != 1) std::abort();
    for (ByteView part : parts) {
      if (!part.empty() && EVP_DigestUpdate(ctx_.get(), part.data(), part.size()) != 1) {
        std::abort();
      }
    }
    Digest32 out{};
    unsigned int length = 0;
    if (EVP_DigestFinal_ex(ctx_.get(), out.data(), &length) != 1 || length != out.size()) {
      std::abort();
    }
    return out;
  }

 private:
  EvpMdPtr md_;
  EvpMdCtxPtr ctx_;
};

bool DigestVerify(EVP_PKEY* key, const EVP_MD* md, ByteView message, ByteView signature) {
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  if (ctx == nullptr) std::abort();
  bool ok = EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, key) == 1 &&
            EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), message.data(),
                             message.size()) == 1;
  // A failed verification leaves entries on this thread's error queue; they are expected here
  // and must not surface in some later, unrelated error message.
  ERR_clear_error();
  return ok;
}

// Parses a DER SubjectPublicKeyInfo that must span the whole input and hold a P-256 key.
Result<EvpPkeyPtr> ParseP256Spki(ByteView der) {
  if (der.empty() || der.size() > 1024) {
    return InvalidArgument(
        "ECDSA public key must be a DER SubjectPublicKeyInfo of at most 1024 "
        "bytes, got " +
        std::to_string(der.size()) + " bytes");
  }
  const unsigned char* p = der.data();
  EvpPkeyPtr key(d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())));
  if (key == nullptr || p != der.data() + der.size()) {
    ERR_clear_error();
    return InvalidArgument(
        "ECDSA public key is not a DER SubjectPublicKeyInfo (or has trailing "
        "bytes)");
  }
  char group[64] = {};
  size_t group_length = 0;
  if (!EVP_PKEY_is_a(key.get(), "EC") ||
      EVP_PKEY_get_utf8_string_param(key.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                     &group_length) != 1 ||
      std::string(group, group_length) != "prime256v1") {
    ERR_clear_error();
    return InvalidArgument("ECDSA public key must be on curve P-256");
  }
  return key;
}

}  // namespace

Digest32 Sha256(std::initializer_list<ByteView> parts) {
  thread_local Sha256Context context;
  return context.Hash(parts);
}

bool VerifyEd25519(ByteView public_key, ByteView message, ByteView signature) {
  if (public_key.size() != kEd25519PublicKeySize || signature.size() != kEd25519SignatureSize) {
    return false;
  }
  EvpPkeyPtr key(
      EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, public_key.data(), public_key.size()));
  if (key == nullptr) {
    ERR_clear_error();
    return false;
  }
  // Ed25519 is one-shot: no digest (NULL) and the whole message at once.
  return DigestVerify(key.get(), nullptr, message, signature);
}

Status CheckEcdsaP256Spki(ByteView spki_der) {
  SIGNET_ASSIGN_OR_RETURN(EvpPkeyPtr key, ParseP256Spki(spki_der));
  (void)key;
  return OkStatus();
}

Result<bool> VerifyEcdsaP256Sha256(ByteView spki_der, ByteView message, ByteView der_signature) {
  SIGNET_ASSIGN_OR_RETURN(EvpPkeyPtr key, ParseP256Spki(spki_der));
  EvpMdPtr sha256(EVP_MD_fetch(nullptr, "SHA256", nullptr));
  if (sha256 == nullptr) std::abort();
  return DigestVerify(key.get(), sha256.get(), message, der_signature);
}

}  // namespace signet::audit::internal
