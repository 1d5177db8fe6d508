// OpenSSL's independent view of what a KeyStore produced, for tests: hashing, the key inside a
// SubjectPublicKeyInfo, and signature verification. Pure functions, thread-safe.
#pragma once

#include <string>

#include "common/algorithms.h"
#include "common/bytes.h"
#include "common/result.h"

namespace signet::hsm::testing {

// The digest of `message` with `hash`.
Bytes Digest(HashAlgorithm hash, ByteView message);

// What OpenSSL finds in a DER SubjectPublicKeyInfo: "rsa-3072", "rsa-4096", "ec-p256",
// "ec-p384", "ed25519" (the KeyAlgorithmName spelling), or another description. InvalidArgument
// if OpenSSL cannot parse it.
Result<std::string> DescribeSpki(ByteView spki);

// Whether `signature` is valid for `spki`. For kEd25519 `input` is the message; otherwise it is
// the digest, verified as RSASSA-PKCS1-v1_5 with a DigestInfo for `hash`, RSASSA-PSS with MGF1
// `hash` and salt length = digest length, or DER ECDSA. InvalidArgument if the SPKI is unusable.
Result<bool> VerifySignature(ByteView spki, SignatureScheme scheme, HashAlgorithm hash,
                             ByteView input, ByteView signature);

}  // namespace signet::hsm::testing
