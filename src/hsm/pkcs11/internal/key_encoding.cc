#include "hsm/pkcs11/internal/key_encoding.h"

#include <algorithm>
#include <array>
#include <string>

#include "common/der.h"

namespace signet::hsm::internal {
namespace {

// 1.2.840.10045.3.1.7 (prime256v1 / P-256) and 1.3.132.0.34 (secp384r1 / P-384), RFC 5480 §2.1.1.1.
constexpr std::array<uint8_t, 10> kP256Params = {0x06, 0x08, 0x2a, 0x86, 0x48,
                                                 0xce, 0x3d, 0x03, 0x01, 0x07};
constexpr std::array<uint8_t, 7> kP384Params = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};
// 1.3.101.112 (id-Ed25519), RFC 8410 §3.
constexpr std::array<uint8_t, 5> kEd25519Params = {0x06, 0x03, 0x2b, 0x65, 0x70};
// PrintableString "edwards25519", the other CKA_EC_PARAMS form PKCS#11 v3.0 allows.
constexpr std::array<uint8_t, 14> kEd25519NameParams = {0x13, 0x0c, 'e', 'd', 'w', 'a', 'r',
                                                        'd',  's',  '2', '5', '5', '1', '9'};

// AlgorithmIdentifier contents: rsaEncryption 1.2.840.113549.1.1.1,
// id-ecPublicKey 1.2.840.10045.2.1.
constexpr std::array<uint8_t, 11> kRsaEncryptionOid = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
                                                       0xf7, 0x0d, 0x01, 0x01, 0x01};
constexpr std::array<uint8_t, 9> kEcPublicKeyOid = {0x06, 0x07, 0x2a, 0x86, 0x48,
                                                    0xce, 0x3d, 0x02, 0x01};

constexpr std::array<uint8_t, 19> kSha256DigestInfo = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                                       0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                                       0x01, 0x05, 0x00, 0x04, 0x20};
constexpr std::array<uint8_t, 19> kSha384DigestInfo = {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                                       0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                                       0x02, 0x05, 0x00, 0x04, 0x30};
constexpr std::array<uint8_t, 19> kSha512DigestInfo = {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                                       0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                                       0x03, 0x05, 0x00, 0x04, 0x40};

bool Equal(ByteView a, ByteView b) { return std::ranges::equal(a, b); }

// Length of the public point: 0x04 || X || Y for ECDSA, the 32-byte key for Ed25519.
size_t PointSize(KeyAlgorithm algorithm) {
  switch (algorithm) {
    case KeyAlgorithm::kEcP256:
      return 65;
    case KeyAlgorithm::kEcP384:
      return 97;
    case KeyAlgorithm::kEd25519:
      return 32;
    case KeyAlgorithm::kRsa3072:
    case KeyAlgorithm::kRsa4096:
      break;
  }
  return 0;
}

}  // namespace

ByteView EcParams(KeyAlgorithm algorithm) {
  switch (algorithm) {
    case KeyAlgorithm::kEcP256:
      return kP256Params;
    case KeyAlgorithm::kEcP384:
      return kP384Params;
    case KeyAlgorithm::kEd25519:
      return kEd25519Params;
    case KeyAlgorithm::kRsa3072:
    case KeyAlgorithm::kRsa4096:
      break;
  }
  return {};
}

std::optional<KeyAlgorithm> AlgorithmFromEcParams(ByteView params, bool edwards) {
  if (edwards) {
    if (Equal(params, kEd25519Params) || Equal(params, kEd25519NameParams)) {
      return KeyAlgorithm::kEd25519;
    }
    return std::nullopt;
  }
  if (Equal(params, kP256Params)) return KeyAlgorithm::kEcP256;
  if (Equal(params, kP384Params)) return KeyAlgorithm::kEcP384;
  return std::nullopt;
}

std::optional<KeyAlgorithm> RsaAlgorithmFromModulus(ByteView modulus) {
  auto first = std::ranges::find_if(modulus, [](uint8_t b) { return b != 0; });
  size_t size = static_cast<size_t>(modulus.end() - first);
  if (size == 384) return KeyAlgorithm::kRsa3072;
  if (size == 512) return KeyAlgorithm::kRsa4096;
  return std::nullopt;
}

size_t MaxSignatureSize(KeyAlgorithm algorithm) {
  switch (algorithm) {
    case KeyAlgorithm::kRsa3072:
      return 384;
    case KeyAlgorithm::kRsa4096:
      return 512;
    case KeyAlgorithm::kEcP256:
      return 64;
    case KeyAlgorithm::kEcP384:
      return 96;
    case KeyAlgorithm::kEd25519:
      return 64;
  }
  return 0;
}

ByteView DigestInfoPrefix(HashAlgorithm hash) {
  switch (hash) {
    case HashAlgorithm::kSha256:
      return kSha256DigestInfo;
    case HashAlgorithm::kSha384:
      return kSha384DigestInfo;
    case HashAlgorithm::kSha512:
      return kSha512DigestInfo;
  }
  return {};
}

Result<Bytes> RsaSpki(ByteView modulus, ByteView public_exponent) {
  if (modulus.empty() || public_exponent.empty()) {
    return InvalidArgument("RSA public key: the module returned an empty modulus or exponent");
  }
  Bytes algorithm = der::Sequence(der::Concat({kRsaEncryptionOid, der::Null()}));
  // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER } (RFC 8017 §A.1.1).
  Bytes rsa_public_key = der::Sequence(
      der::Concat({der::UnsignedInteger(modulus), der::UnsignedInteger(public_exponent)}));
  return der::Sequence(der::Concat({algorithm, der::BitString(rsa_public_key)}));
}

Result<Bytes> EcSpki(KeyAlgorithm algorithm, ByteView ec_point) {
  size_t point_size = PointSize(algorithm);
  if (point_size == 0) {
    return InvalidArgument(std::string("EC public key requested for ") +
                           std::string(KeyAlgorithmName(algorithm)));
  }
  Bytes point;
  if (ec_point.size() == point_size) {
    point.assign(ec_point.begin(), ec_point.end());  // Bare point.
  } else {
    Result<Bytes> unwrapped = der::ParseOctetString(ec_point);
    if (!unwrapped.ok() || unwrapped->size() != point_size) {
      return InvalidArgument("CKA_EC_POINT of a " + std::string(KeyAlgorithmName(algorithm)) +
                             " key has " + std::to_string(ec_point.size()) +
                             " bytes; expected the " + std::to_string(point_size) +
                             "-byte point, bare or in an OCTET STRING");
    }
    point = std::move(unwrapped).value();
  }
  if (algorithm == KeyAlgorithm::kEd25519) {
    // AlgorithmIdentifier with absent parameters (RFC 8410 §3).
    Bytes algorithm_id = der::Sequence(kEd25519Params);
    return der::Sequence(der::Concat({algorithm_id, der::BitString(point)}));
  }
  if (point[0] != 0x04) {
    return InvalidArgument("CKA_EC_POINT is not an uncompressed point (first byte " +
                           std::to_string(point[0]) + ")");
  }
  Bytes algorithm_id = der::Sequence(der::Concat({kEcPublicKeyOid, EcParams(algorithm)}));
  return der::Sequence(der::Concat({algorithm_id, der::BitString(point)}));
}

}  // namespace signet::hsm::internal
