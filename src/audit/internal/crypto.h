// The cryptography audit/ needs, behind plain C++ signatures: SHA-256 over several parts, and
// verification of Ed25519 and ECDSA P-256 signatures. Private to audit/. crypto.cc is the only
// file of the component that includes OpenSSL or libsodium (Ed25519, for speed: see crypto.cc),
// and it owns every OpenSSL handle it uses.
//
// Threads: all functions are safe to call concurrently. SHA-256 keeps no state between calls (its
// context is on the stack, see crypto.cc for why it bypasses EVP). Allocation failure inside
// OpenSSL, or a libsodium that cannot initialise, aborts, as bad_alloc would.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>

#include "common/bytes.h"
#include "common/result.h"

namespace signet::audit::internal {

using Digest32 = std::array<uint8_t, 32>;

// SHA-256 of the concatenation of `parts`.
Digest32 Sha256(std::initializer_list<ByteView> parts);

inline constexpr size_t kEd25519PublicKeySize = 32;
inline constexpr size_t kEd25519SignatureSize = 64;

// True iff `signature` is a valid pure Ed25519 signature (RFC 8032 §5.1, no prehash, no context)
// by the 32-byte `public_key` over `message`. Any malformed input is simply "false".
bool VerifyEd25519(ByteView public_key, ByteView message, ByteView signature);

// Checks that `spki_der` is a DER SubjectPublicKeyInfo of an ECDSA P-256 key that spans all of the
// input. InvalidArgument otherwise.
Status CheckEcdsaP256Spki(ByteView spki_der);

// Whether `der_signature` (an Ecdsa-Sig-Value) is a valid ECDSA signature over SHA-256(message)
// by the P-256 key in `spki_der`; InvalidArgument (as CheckEcdsaP256Spki) if the key is bad.
Result<bool> VerifyEcdsaP256Sha256(ByteView spki_der, ByteView message, ByteView der_signature);

}  // namespace signet::audit::internal
