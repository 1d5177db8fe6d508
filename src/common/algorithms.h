// The algorithm vocabulary shared by hsm/, pki/ and service/: key types, hash functions and
// signature schemes, with their stable text names. Pure, thread-safe.
#pragma once

#include <cstddef>
#include <string_view>

#include "common/result.h"

namespace signet {

// Key types signet generates. Code-signing keys are RSA 3072/4096 and ECDSA P-256/P-384 (CSBR
// 6.1.5.2); Ed25519 is only for signet's own log checkpoints.
enum class KeyAlgorithm { kRsa3072, kRsa4096, kEcP256, kEcP384, kEd25519 };

enum class HashAlgorithm { kSha256, kSha384, kSha512 };

enum class SignatureScheme {
  kRsaPkcs1v15,  // RSASSA-PKCS1-v1_5 over a DigestInfo (RFC 8017 §8.2)
  kRsaPss,       // RSASSA-PSS, MGF1 with the same hash, salt length = hash length (RFC 8017 §8.1)
  kEcdsa,        // ECDSA, signature DER-encoded as Ecdsa-Sig-Value (RFC 3279 §2.2.3)
  kEd25519,      // PureEdDSA over the whole message (RFC 8032 §5.1)
};

// "rsa-3072", "rsa-4096", "ec-p256", "ec-p384", "ed25519".
std::string_view KeyAlgorithmName(KeyAlgorithm alg);
// Parses the names above; the error lists the accepted names.
Result<KeyAlgorithm> ParseKeyAlgorithm(std::string_view name);
// True for the algorithms allowed for code-signing keys (everything but Ed25519).
bool IsCodeSigningAlgorithm(KeyAlgorithm alg);
bool IsRsa(KeyAlgorithm alg);
bool IsEcdsa(KeyAlgorithm alg);

// "sha256", "sha384", "sha512".
std::string_view HashAlgorithmName(HashAlgorithm hash);
Result<HashAlgorithm> ParseHashAlgorithm(std::string_view name);
size_t DigestSize(HashAlgorithm hash);

// "rsa-pkcs1", "rsa-pss", "ecdsa", "ed25519".
std::string_view SignatureSchemeName(SignatureScheme scheme);
// Whether `scheme` can be used with a key of type `alg`.
bool SchemeFitsKey(SignatureScheme scheme, KeyAlgorithm alg);

}  // namespace signet
