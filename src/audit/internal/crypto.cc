#include "audit/internal/crypto.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <sodium.h>

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

// SHA-256 through OpenSSL's low-level SHA256_Init/Update/Final rather than EVP. OpenSSL 3.0
// deprecates these in favour of EVP, but they are the code the default provider's SHA-256 itself
// runs (the same block function, SHA-NI or AVX2 chosen at run time), so the digests are identical;
// what they skip is EVP's per-hash bookkeeping. In OpenSSL 3.0 (Debian 12) every
// EVP_DigestInit_ex frees and re-allocates the provider's hash context (one malloc, cleanse and
// free per hash) and consults the ENGINE table, even with a reused EVP_MD_CTX and an explicitly
// fetched EVP_MD: 100-200 ns per hash, as much as or more than the two blocks of a 65-byte node
// hash. The verifier hashes a leaf and about one node per log entry, and that overhead alone kept
// `signet audit verify` under its throughput target (bench/log_verify_bench.cc, issue 4). Here the
// context is on the stack: no allocation, no state between calls. Only public data is hashed
// (entries, tree nodes, keys), so bypassing the provider layer gives up nothing a FIPS
// configuration would protect. The deprecation warning is silenced for this function alone.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
Digest32 Sha256(std::initializer_list<ByteView> parts) {
  SHA256_CTX ctx;
  if (SHA256_Init(&ctx) != 1) std::abort();
  for (ByteView part : parts) {
    if (!part.empty() && SHA256_Update(&ctx, part.data(), part.size()) != 1) std::abort();
  }
  Digest32 out{};
  if (SHA256_Final(out.data(), &ctx) != 1) std::abort();
  return out;
}
#pragma GCC diagnostic pop

// Ed25519 through libsodium rather than OpenSSL. The verifier checks the signature of every
// checkpoint in a log (about one per 1024 entries), and on this project's reference machine
// OpenSSL 3.0's Ed25519 verification takes 157 us (`openssl speed ed25519`: 6 360 verify/s)
// against 68 us for libsodium's crypto_sign_verify_detached: about a tenth of `signet audit
// verify`'s time on a million-entry log went to OpenSSL's (bench/log_verify_bench.cc). Both
// implement RFC 8032 §5.1.7 without a cofactor; libsodium additionally refuses a non-canonical or
// small-order public key and a small-order R, which no honest signer produces. Only public data is
// handled here.
bool VerifyEd25519(ByteView public_key, ByteView message, ByteView signature) {
  static_assert(kEd25519PublicKeySize == crypto_sign_PUBLICKEYBYTES);
  static_assert(kEd25519SignatureSize == crypto_sign_BYTES);
  if (public_key.size() != kEd25519PublicKeySize || signature.size() != kEd25519SignatureSize) {
    return false;
  }
  // sodium_init is idempotent and thread-safe; it fails only if the library cannot initialise
  // its random source, which verification does not use, but an uninitialised library is not used.
  static const bool initialised = sodium_init() >= 0;
  if (!initialised) std::abort();
  static constexpr uint8_t kNothing = 0;  // libsodium gets a valid pointer for an empty message
  const uint8_t* text = message.empty() ? &kNothing : message.data();
  return crypto_sign_verify_detached(signature.data(), text, message.size(), public_key.data()) ==
         0;
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
