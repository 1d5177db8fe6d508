// The byte-level pieces of key generation and signing that do not need a module: curve parameters
// for CKA_EC_PARAMS, the DigestInfo prefixes of PKCS#1 v1.5, signature sizes, and
// SubjectPublicKeyInfo (RFC 5280 §4.1.2.7) built from the public attributes a module returns.
// Pure functions, thread-safe; no PKCS#11 or OpenSSL types.
#pragma once

#include <cstddef>
#include <optional>

#include "common/algorithms.h"
#include "common/bytes.h"
#include "common/result.h"

namespace signet::hsm::internal {

// DER of the OID that names the curve, as CKA_EC_PARAMS wants it (PKCS#11 v2.40 mechanisms §2.3,
// elliptic curve: an ECParameters namedCurve; for Ed25519 the RFC 8410 OID 1.3.101.112). Empty for
// RSA.
ByteView EcParams(KeyAlgorithm algorithm);

// The algorithm named by CKA_EC_PARAMS read back from a key: the OIDs above, and for Edwards keys
// also the PrintableString "edwards25519" that PKCS#11 v3.0 allows. nullopt for anything else.
std::optional<KeyAlgorithm> AlgorithmFromEcParams(ByteView params, bool edwards);

// kRsa3072 / kRsa4096 for a modulus of 384 / 512 bytes (leading zero bytes ignored).
std::optional<KeyAlgorithm> RsaAlgorithmFromModulus(ByteView modulus);

// The longest signature the module can return for a key: the modulus size for RSA, 2 × the field
// size for ECDSA (raw r||s), 64 for Ed25519.
size_t MaxSignatureSize(KeyAlgorithm algorithm);

// The DER DigestInfo prefix that precedes a raw hash for RSASSA-PKCS1-v1_5 (RFC 8017 §9.2 note 1).
ByteView DigestInfoPrefix(HashAlgorithm hash);

// SubjectPublicKeyInfo for rsaEncryption with NULL parameters (RFC 3279 §2.3.1) from CKA_MODULUS
// and CKA_PUBLIC_EXPONENT (big-endian). InvalidArgument if either is empty.
Result<Bytes> RsaSpki(ByteView modulus, ByteView public_exponent);

// SubjectPublicKeyInfo for an ECDSA (RFC 5480) or Ed25519 (RFC 8410) key from CKA_EC_POINT.
// Accepts the standard form, a DER OCTET STRING around the point (SoftHSM), and the bare point that
// some modules return; the two are told apart by length. ECDSA points must be uncompressed.
// InvalidArgument if the point does not have the size the algorithm needs.
Result<Bytes> EcSpki(KeyAlgorithm algorithm, ByteView ec_point);

}  // namespace signet::hsm::internal
