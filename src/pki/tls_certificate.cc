// CreateLocalhostTlsIdentity (pki.h): the self-signed TLS certificate of the embedded default.
//
// The certificate is an end-entity certificate (cA FALSE) that is its own issuer. OpenSSL accepts
// such a certificate as a trust anchor when it is in the trust store itself, which is how a
// developer trusts it (`curl --cacert cert.pem`). The private key PEM goes through a secure-heap
// BIO so no copy of it outlives this function outside the returned SecretBytes.

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <array>
#include <chrono>
#include <ctime>
#include <string>

#include "common/random.h"
#include "pki/internal/openssl_ptr.h"
#include "pki/internal/openssl_util.h"
#include "pki/pki.h"

namespace signet::pki {
namespace {

using internal::OpenSslError;
using internal::UniquePtr;

// CA/Browser Forum's historical ceiling for TLS certificates; longer makes no sense even in dev.
constexpr std::chrono::seconds kMaxValidity{std::chrono::hours(24 * 825)};
constexpr std::chrono::seconds kBackdate{std::chrono::minutes(5)};

Status AddExtension(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  UniquePtr<X509_EXTENSION> ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return OpenSslError(ErrorCode::kInternal,
                        std::string("cannot add extension ") + OBJ_nid2sn(nid) + "=" + value);
  }
  return OkStatus();
}

Status AddNameEntry(X509_NAME* name, const char* field, const char* value) {
  if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(value), -1, -1, 0) != 1) {
    return OpenSslError(ErrorCode::kInternal, std::string("cannot set subject ") + field);
  }
  return OkStatus();
}

// The subject (and issuer) of the development certificate.
Status AddDevelopmentName(X509_NAME* name) {
  SIGNET_TRY(AddNameEntry(name, "O", "signet development"));
  SIGNET_TRY(AddNameEntry(name, "OU", "signet development TLS (not for production)"));
  return AddNameEntry(name, "CN", "localhost");
}

// A random positive serial of 16 bytes (RFC 5280 §4.1.2.2: positive, at most 20 octets).
Status SetRandomSerial(X509* cert) {
  std::array<uint8_t, 16> raw{};
  SIGNET_TRY(RandomBytes(raw));
  raw[0] &= 0x7f;
  raw[0] |= 0x01;  // never zero, never with a leading zero octet to strip
  UniquePtr<BIGNUM> bn(BN_bin2bn(raw.data(), static_cast<int>(raw.size()), nullptr));
  if (!bn || BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr) {
    return OpenSslError(ErrorCode::kInternal, "cannot set the certificate serial");
  }
  return OkStatus();
}

}  // namespace

Result<TlsIdentity> CreateLocalhostTlsIdentity(TimePoint now, std::chrono::seconds validity) {
  if (validity.count() <= 0 || validity > kMaxValidity) {
    return InvalidArgument("TLS certificate validity must be between 1 second and 825 days, not " +
                           std::to_string(validity.count()) + " seconds");
  }
  UniquePtr<EVP_PKEY> key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return OpenSslError(ErrorCode::kInternal, "cannot generate a P-256 key");

  UniquePtr<X509> cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) {
    return OpenSslError(ErrorCode::kInternal, "cannot create a certificate");
  }
  SIGNET_TRY(SetRandomSerial(cert.get()));

  UniquePtr<X509_NAME> name(X509_NAME_new());
  if (!name) return OpenSslError(ErrorCode::kInternal, "cannot create a name");
  SIGNET_TRY(AddDevelopmentName(name.get()));
  if (X509_set_subject_name(cert.get(), name.get()) != 1 ||
      X509_set_issuer_name(cert.get(), name.get()) != 1) {
    return OpenSslError(ErrorCode::kInternal, "cannot set the certificate names");
  }

  const TimePoint not_before = now - kBackdate;
  const TimePoint not_after = now + validity;
  if (ASN1_TIME_set(X509_getm_notBefore(cert.get()),
                    static_cast<time_t>(ToUnixSeconds(not_before))) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert.get()),
                    static_cast<time_t>(ToUnixSeconds(not_after))) == nullptr) {
    return OpenSslError(ErrorCode::kInternal, "cannot set the certificate validity");
  }
  if (X509_set_pubkey(cert.get(), key.get()) != 1) {
    return OpenSslError(ErrorCode::kInternal, "cannot set the certificate public key");
  }

  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  SIGNET_TRY(AddExtension(cert.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE"));
  SIGNET_TRY(AddExtension(cert.get(), &ctx, NID_key_usage, "critical,digitalSignature"));
  SIGNET_TRY(AddExtension(cert.get(), &ctx, NID_ext_key_usage, "serverAuth"));
  SIGNET_TRY(
      AddExtension(cert.get(), &ctx, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1"));
  SIGNET_TRY(AddExtension(cert.get(), &ctx, NID_subject_key_identifier, "hash"));

  if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) {
    return OpenSslError(ErrorCode::kInternal, "cannot sign the TLS certificate");
  }

  SIGNET_ASSIGN_OR_RETURN(Bytes der, internal::EncodeDer(i2d_X509, cert.get(), "certificate"));
  TlsIdentity identity;
  identity.certificate_pem = internal::PemEncode("CERTIFICATE", der);
  identity.not_after = FromUnixSeconds(ToUnixSeconds(not_after));

  // The secure heap is cleared when freed; without one configured OpenSSL falls back to ordinary
  // memory, which BIO_free then still clears for secmem BIOs.
  UniquePtr<BIO> bio(BIO_new(BIO_s_secmem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return OpenSslError(ErrorCode::kInternal, "cannot encode the TLS private key");
  }
  char* data = nullptr;
  long size = BIO_get_mem_data(bio.get(), &data);
  if (size <= 0 || data == nullptr) {
    return OpenSslError(ErrorCode::kInternal, "cannot encode the TLS private key");
  }
  identity.private_key_pem =
      SecretBytes(ByteView(reinterpret_cast<const uint8_t*>(data), static_cast<size_t>(size)));
  return identity;
}

Result<TlsCertificateSummary> SummarizeTlsCertificate(std::string_view text) {
  UniquePtr<BIO> bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  UniquePtr<X509> cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) return InvalidArgument("holds no PEM certificate");
  TlsCertificateSummary summary;
  SIGNET_ASSIGN_OR_RETURN(summary.not_after,
                          internal::AsnTimeToTimePoint(X509_get0_notAfter(cert.get())));
  UniquePtr<X509_NAME> expected(X509_NAME_new());
  if (!expected) return InternalError("cannot allocate a name");
  SIGNET_TRY(AddDevelopmentName(expected.get()));
  summary.development = X509_NAME_cmp(X509_get_subject_name(cert.get()), expected.get()) == 0 &&
                        X509_NAME_cmp(X509_get_issuer_name(cert.get()), expected.get()) == 0;
  return summary;
}

}  // namespace signet::pki
