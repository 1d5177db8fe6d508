// CreateCsrPem (pki.h): a PKCS#10 request signed by a key pki/ never holds.
//
// OpenSSL's X509_REQ_sign wants an EVP_PKEY with the private key. Instead the request is assembled
// field by field, the DER CertificationRequestInfo (RFC 2986 §4.1) is hashed here, and only the
// digest goes to the signer (the HSM). The finished request is then decoded again from its own DER
// and verified, so what we return is exactly what a CA will check.

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/x509.h>

#include <algorithm>
#include <exception>
#include <string>

#include "pki/internal/openssl_ptr.h"
#include "pki/internal/openssl_util.h"
#include "pki/internal/subject.h"
#include "pki/pki.h"

namespace signet::pki {
namespace {

using internal::OpenSslError;
using internal::UniquePtr;

// Longest signature accepted from a signer: RSA-4096 is 512 bytes, ECDSA P-384 at most 104.
constexpr size_t kMaxSignatureSize = 1024;

// How a key of each type signs its request.
struct SignatureProfile {
  SignatureScheme scheme;
  HashAlgorithm hash;
  const EVP_MD* (*md)();
  int algorithm_nid;     // signatureAlgorithm OID
  bool null_parameters;  // RSA: parameters NULL (RFC 4055 §5); ECDSA: absent (RFC 5758 §3.2)
};

Result<SignatureProfile> ProfileFor(KeyAlgorithm alg) {
  switch (alg) {
    case KeyAlgorithm::kRsa3072:
    case KeyAlgorithm::kRsa4096:
      return SignatureProfile{SignatureScheme::kRsaPkcs1v15, HashAlgorithm::kSha256, EVP_sha256,
                              NID_sha256WithRSAEncryption, true};
    case KeyAlgorithm::kEcP256:
      return SignatureProfile{SignatureScheme::kEcdsa, HashAlgorithm::kSha256, EVP_sha256,
                              NID_ecdsa_with_SHA256, false};
    case KeyAlgorithm::kEcP384:
      return SignatureProfile{SignatureScheme::kEcdsa, HashAlgorithm::kSha384, EVP_sha384,
                              NID_ecdsa_with_SHA384, false};
    case KeyAlgorithm::kEd25519:
      break;
  }
  return InvalidArgument(
      "a certificate request for code signing needs an RSA-3072, RSA-4096, "
      "P-256 or P-384 key (CSBR 6.1.5.2), not " +
      std::string(KeyAlgorithmName(alg)));
}

// Checks that `key` is of type `alg`: RSA of the stated size, or EC on the stated curve.
Status CheckKeyMatchesAlgorithm(EVP_PKEY* key, KeyAlgorithm alg) {
  const std::string expected(KeyAlgorithmName(alg));
  if (IsRsa(alg)) {
    const int want_bits = alg == KeyAlgorithm::kRsa3072 ? 3072 : 4096;
    if (EVP_PKEY_is_a(key, "RSA") != 1) {
      return InvalidArgument("the public key is not an RSA key, but the key is said to be " +
                             expected);
    }
    const int bits = EVP_PKEY_get_bits(key);
    if (bits != want_bits) {
      return InvalidArgument("the public key is RSA-" + std::to_string(bits) +
                             ", but the key is said to be " + expected);
    }
    return OkStatus();
  }
  if (EVP_PKEY_is_a(key, "EC") != 1) {
    return InvalidArgument("the public key is not an EC key, but the key is said to be " +
                           expected);
  }
  char group[64] = {};
  size_t group_length = 0;
  if (EVP_PKEY_get_group_name(key, group, sizeof(group), &group_length) != 1) {
    return OpenSslError(ErrorCode::kInvalidArgument, "the EC public key has no named curve");
  }
  int nid = OBJ_sn2nid(group);
  if (nid == NID_undef) nid = EC_curve_nist2nid(group);
  const int want_nid = alg == KeyAlgorithm::kEcP256 ? NID_X9_62_prime256v1 : NID_secp384r1;
  if (nid != want_nid) {
    return InvalidArgument("the public key is on curve " + std::string(group) +
                           ", but the key is said to be " + expected);
  }
  return OkStatus();
}

Result<UniquePtr<X509_NAME>> BuildName(const DistinguishedName& subject) {
  UniquePtr<X509_NAME> name(X509_NAME_new());
  if (name == nullptr) return OpenSslError(ErrorCode::kInternal, "cannot allocate a name");
  for (const auto& [type_name, value] : subject.attributes) {
    const internal::AttributeType* type = internal::FindAttributeType(type_name);
    if (type == nullptr) return InternalError("subject type vanished after validation");
    UniquePtr<ASN1_OBJECT> oid(OBJ_txt2obj(std::string(type->oid).c_str(), /*no_name=*/1));
    if (oid == nullptr) {
      return OpenSslError(ErrorCode::kInternal, "cannot make OID " + std::string(type->oid));
    }
    // RFC 5280 §4.1.2.4: DirectoryString values as UTF8String; countryName, serialNumber and
    // jurisdictionCountryName are PrintableString by their ASN.1 definitions (X.520). The string
    // type is set explicitly so OpenSSL's process-wide string mask cannot change it.
    const bool printable = type->rule == internal::ValueRule::kPrintable ||
                           type->rule == internal::ValueRule::kCountryCode;
    if (X509_NAME_add_entry_by_OBJ(name.get(), oid.get(),
                                   printable ? V_ASN1_PRINTABLESTRING : V_ASN1_UTF8STRING,
                                   reinterpret_cast<const unsigned char*>(value.data()),
                                   internal::ToInt(value.size()), -1, 0) != 1) {
      return OpenSslError(ErrorCode::kInternal,
                          "cannot add " + std::string(type->short_name) + " to the subject");
    }
  }
  return name;
}

// Calls the signer, turning an exception escaping it into an error so none crosses pki's API.
Result<Bytes> CallSigner(const DigestSigner& sign, const SignatureProfile& profile,
                         ByteView digest) {
  try {
    return sign(profile.scheme, profile.hash, digest);
  } catch (const std::exception& e) {
    return InternalError(std::string("the signer threw an exception: ") + e.what());
  }
}

}  // namespace

Result<std::string> CreateCsrPem(ByteView spki_der, KeyAlgorithm alg,
                                 const DistinguishedName& subject, const DigestSigner& sign) {
  ERR_clear_error();
  SIGNET_ASSIGN_OR_RETURN(const SignatureProfile profile, ProfileFor(alg));
  if (!sign) return InvalidArgument("no signer was given for the certificate request");
  SIGNET_TRY(internal::ValidateDistinguishedName(subject));
  SIGNET_ASSIGN_OR_RETURN(UniquePtr<EVP_PKEY> public_key,
                          internal::ParseSpki(spki_der, "the public key"));
  SIGNET_TRY(CheckKeyMatchesAlgorithm(public_key.get(), alg));
  SIGNET_ASSIGN_OR_RETURN(UniquePtr<X509_NAME> name, BuildName(subject));

  // CertificationRequestInfo (RFC 2986 §4.1): version 0, subject, subjectPKInfo and an empty
  // attributes set, which OpenSSL encodes as the required [0] with no elements.
  UniquePtr<X509_REQ> request(X509_REQ_new());
  if (request == nullptr) return OpenSslError(ErrorCode::kInternal, "cannot allocate a request");
  if (X509_REQ_set_version(request.get(), 0L) != 1 ||
      X509_REQ_set_subject_name(request.get(), name.get()) != 1 ||
      X509_REQ_set_pubkey(request.get(), public_key.get()) != 1) {
    return OpenSslError(ErrorCode::kInternal, "cannot fill in the certificate request");
  }
  // The request must carry the SPKI we were given, not merely an equivalent key.
  SIGNET_ASSIGN_OR_RETURN(
      const Bytes request_spki,
      internal::EncodeDer(i2d_X509_PUBKEY, X509_REQ_get_X509_PUBKEY(request.get()),
                          "the request's public key"));
  if (!std::equal(request_spki.begin(), request_spki.end(), spki_der.begin(), spki_der.end())) {
    return InvalidArgument(
        "the public key is not in canonical DER form (OpenSSL re-encodes it "
        "differently); pass the SubjectPublicKeyInfo as DER");
  }

  // i2d_re_* re-encodes instead of returning a cached encoding from before our changes.
  SIGNET_ASSIGN_OR_RETURN(
      const Bytes info_der,
      internal::EncodeDer(i2d_re_X509_REQ_tbs, request.get(), "the CertificationRequestInfo"));
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_length = 0;
  if (EVP_Digest(info_der.data(), info_der.size(), digest, &digest_length, profile.md(), nullptr) !=
      1) {
    return OpenSslError(ErrorCode::kInternal, "cannot hash the CertificationRequestInfo");
  }

  Result<Bytes> signed_result = CallSigner(sign, profile, ByteView(digest, digest_length));
  if (!signed_result.ok()) {
    return signed_result.error().WithContext("signing the certificate request");
  }
  Bytes signature = std::move(signed_result).value();
  if (signature.empty() || signature.size() > kMaxSignatureSize) {
    return InternalError("the signer returned a signature of " + std::to_string(signature.size()) +
                         " bytes for the certificate request; expected 1 to " +
                         std::to_string(kMaxSignatureSize));
  }

  // signatureAlgorithm and signature (RFC 2986 §4.2).
  UniquePtr<X509_ALGOR> algorithm(X509_ALGOR_new());
  if (algorithm == nullptr ||
      X509_ALGOR_set0(algorithm.get(), OBJ_nid2obj(profile.algorithm_nid),
                      profile.null_parameters ? V_ASN1_NULL : V_ASN1_UNDEF, nullptr) != 1 ||
      X509_REQ_set1_signature_algo(request.get(), algorithm.get()) != 1) {
    return OpenSslError(ErrorCode::kInternal, "cannot set the request's signature algorithm");
  }
  UniquePtr<ASN1_STRING> signature_bits(ASN1_BIT_STRING_new());
  if (signature_bits == nullptr || ASN1_BIT_STRING_set(signature_bits.get(), signature.data(),
                                                       internal::ToInt(signature.size())) != 1) {
    return OpenSslError(ErrorCode::kInternal, "cannot store the request's signature");
  }
  // Say explicitly that no bits are unused; otherwise OpenSSL derives "unused bits" from trailing
  // zero bits and would drop trailing zero bytes of the signature.
  signature_bits->flags &= ~static_cast<long>(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
  signature_bits->flags |= ASN1_STRING_FLAG_BITS_LEFT;
  X509_REQ_set0_signature(request.get(), signature_bits.release());

  SIGNET_ASSIGN_OR_RETURN(const Bytes request_der, internal::EncodeDer(i2d_X509_REQ, request.get(),
                                                                       "the certificate request"));

  // Self-check: decode what we produced and verify it with the key we were given.
  const unsigned char* cursor = request_der.data();
  UniquePtr<X509_REQ> decoded(
      d2i_X509_REQ(nullptr, &cursor, static_cast<long>(request_der.size())));
  if (decoded == nullptr || cursor != request_der.data() + request_der.size()) {
    return OpenSslError(ErrorCode::kInternal, "the certificate request does not decode again");
  }
  if (X509_REQ_verify(decoded.get(), public_key.get()) != 1) {
    return OpenSslError(ErrorCode::kInternal,
                        "the certificate request's signature does not verify with the given "
                        "public key: the signing key is not the key of this public key (SPKI "
                        "SHA-256 " +
                            internal::Sha256Hex(spki_der) +
                            "), or the signer returned a malformed signature");
  }
  return internal::PemEncode("CERTIFICATE REQUEST", request_der);
}

}  // namespace signet::pki
