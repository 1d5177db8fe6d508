#include "hsm/pkcs11/testing/signature_check.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <memory>

namespace signet::hsm::testing {
namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* ctx) const { EVP_PKEY_CTX_free(ctx); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

const EVP_MD* Md(HashAlgorithm hash) {
  switch (hash) {
    case HashAlgorithm::kSha256:
      return EVP_sha256();
    case HashAlgorithm::kSha384:
      return EVP_sha384();
    case HashAlgorithm::kSha512:
      return EVP_sha512();
  }
  return nullptr;
}

Result<Pkey> ParseSpki(ByteView spki) {
  const unsigned char* p = spki.data();
  Pkey key(d2i_PUBKEY(nullptr, &p, static_cast<long>(spki.size())));
  if (!key || p != spki.data() + spki.size()) {
    return InvalidArgument("OpenSSL cannot parse the SubjectPublicKeyInfo");
  }
  return key;
}

}  // namespace

Bytes Digest(HashAlgorithm hash, ByteView message) {
  Bytes out(EVP_MAX_MD_SIZE);
  unsigned int size = 0;
  EVP_Digest(message.data(), message.size(), out.data(), &size, Md(hash), nullptr);
  out.resize(size);
  return out;
}

Result<std::string> DescribeSpki(ByteView spki) {
  SIGNET_ASSIGN_OR_RETURN(Pkey key, ParseSpki(spki));
  if (EVP_PKEY_is_a(key.get(), "RSA")) return "rsa-" + std::to_string(EVP_PKEY_get_bits(key.get()));
  if (EVP_PKEY_is_a(key.get(), "ED25519")) return std::string("ed25519");
  if (EVP_PKEY_is_a(key.get(), "EC")) {
    char group[64] = {};
    size_t size = 0;
    EVP_PKEY_get_utf8_string_param(key.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                   &size);
    std::string name(group, size);
    if (name == "prime256v1") return std::string("ec-p256");
    if (name == "secp384r1") return std::string("ec-p384");
    return "ec-" + name;
  }
  return std::string(EVP_PKEY_get0_type_name(key.get()));
}

Result<bool> VerifySignature(ByteView spki, SignatureScheme scheme, HashAlgorithm hash,
                             ByteView input, ByteView signature) {
  SIGNET_ASSIGN_OR_RETURN(Pkey key, ParseSpki(spki));
  if (scheme == SignatureScheme::kEd25519) {
    MdCtx ctx(EVP_MD_CTX_new());
    if (EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1) {
      return InvalidArgument("not an Ed25519 key");
    }
    return EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), input.data(),
                            input.size()) == 1;
  }
  PkeyCtx ctx(EVP_PKEY_CTX_new(key.get(), nullptr));
  if (!ctx || EVP_PKEY_verify_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_signature_md(ctx.get(), Md(hash)) != 1) {
    return InvalidArgument("OpenSSL cannot verify with this key");
  }
  if (scheme == SignatureScheme::kRsaPkcs1v15) {
    if (EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1) {
      return InvalidArgument("not an RSA key");
    }
  } else if (scheme == SignatureScheme::kRsaPss) {
    if (EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PSS_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), Md(hash)) != 1 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx.get(), RSA_PSS_SALTLEN_DIGEST) != 1) {
      return InvalidArgument("not an RSA key");
    }
  }
  return EVP_PKEY_verify(ctx.get(), signature.data(), signature.size(), input.data(),
                         input.size()) == 1;
}

}  // namespace signet::hsm::testing
