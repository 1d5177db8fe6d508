#include "common/algorithms.h"

#include <string>

namespace signet {

std::string_view KeyAlgorithmName(KeyAlgorithm alg) {
  switch (alg) {
    case KeyAlgorithm::kRsa3072: return "rsa-3072";
    case KeyAlgorithm::kRsa4096: return "rsa-4096";
    case KeyAlgorithm::kEcP256: return "ec-p256";
    case KeyAlgorithm::kEcP384: return "ec-p384";
    case KeyAlgorithm::kEd25519: return "ed25519";
  }
  return "unknown";
}

Result<KeyAlgorithm> ParseKeyAlgorithm(std::string_view name) {
  for (KeyAlgorithm a : {KeyAlgorithm::kRsa3072, KeyAlgorithm::kRsa4096, KeyAlgorithm::kEcP256,
                         KeyAlgorithm::kEcP384, KeyAlgorithm::kEd25519}) {
    if (KeyAlgorithmName(a) == name) return a;
  }
  return InvalidArgument("unknown key algorithm '" + std::string(name) +
                         "'; use one of rsa-3072, rsa-4096, ec-p256, ec-p384");
}

bool IsCodeSigningAlgorithm(KeyAlgorithm alg) { return alg != KeyAlgorithm::kEd25519; }
bool IsRsa(KeyAlgorithm alg) { return alg == KeyAlgorithm::kRsa3072 || alg == KeyAlgorithm::kRsa4096; }
bool IsEcdsa(KeyAlgorithm alg) { return alg == KeyAlgorithm::kEcP256 || alg == KeyAlgorithm::kEcP384; }

std::string_view HashAlgorithmName(HashAlgorithm hash) {
  switch (hash) {
    case HashAlgorithm::kSha256: return "sha256";
    case HashAlgorithm::kSha384: return "sha384";
    case HashAlgorithm::kSha512: return "sha512";
  }
  return "unknown";
}

Result<HashAlgorithm> ParseHashAlgorithm(std::string_view name) {
  for (HashAlgorithm h : {HashAlgorithm::kSha256, HashAlgorithm::kSha384, HashAlgorithm::kSha512}) {
    if (HashAlgorithmName(h) == name) return h;
  }
  return InvalidArgument("unknown hash algorithm '" + std::string(name) +
                         "'; use one of sha256, sha384, sha512");
}

size_t DigestSize(HashAlgorithm hash) {
  switch (hash) {
    case HashAlgorithm::kSha256: return 32;
    case HashAlgorithm::kSha384: return 48;
    case HashAlgorithm::kSha512: return 64;
  }
  return 0;
}

std::string_view SignatureSchemeName(SignatureScheme scheme) {
  switch (scheme) {
    case SignatureScheme::kRsaPkcs1v15: return "rsa-pkcs1";
    case SignatureScheme::kRsaPss: return "rsa-pss";
    case SignatureScheme::kEcdsa: return "ecdsa";
    case SignatureScheme::kEd25519: return "ed25519";
  }
  return "unknown";
}

bool SchemeFitsKey(SignatureScheme scheme, KeyAlgorithm alg) {
  switch (scheme) {
    case SignatureScheme::kRsaPkcs1v15:
    case SignatureScheme::kRsaPss: return IsRsa(alg);
    case SignatureScheme::kEcdsa: return IsEcdsa(alg);
    case SignatureScheme::kEd25519: return alg == KeyAlgorithm::kEd25519;
  }
  return false;
}

}  // namespace signet
