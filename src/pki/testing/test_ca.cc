#include "pki/testing/test_ca.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/fs.h"
#include "pki/internal/openssl_ptr.h"

namespace signet::pki::testing {
namespace {

using internal::UniquePtr;

bool AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  UniquePtr<X509_EXTENSION> ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  return ext && X509_add_ext(cert, ext.get(), -1) == 1;
}

// From an hour before now + `shift` to 30 days after now + `shift`.
bool SetValidity(X509* cert, long shift = 0) {
  return X509_gmtime_adj(X509_getm_notBefore(cert), shift - 3600) != nullptr &&
         X509_gmtime_adj(X509_getm_notAfter(cert), shift + 30L * 24 * 3600) != nullptr;
}

std::string ToPem(X509* cert) {
  UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return "";
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string PrivateKeyPem(EVP_PKEY* key) {
  UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PKCS8PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return "";
  }
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

UniquePtr<X509> ParseDer(ByteView der) {
  const unsigned char* p = der.data();
  return UniquePtr<X509>(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
}

// An end-entity certificate from `ca` (signed with `ca_key`, serial `serial`) for `key`:
// keyUsage digitalSignature and the given extendedKeyUsage. Null if OpenSSL fails.
UniquePtr<X509> IssueLeaf(X509* ca, EVP_PKEY* ca_key, long serial, X509_NAME* subject,
                          EVP_PKEY* key, const char* extended_key_usage, long shift = 0) {
  UniquePtr<X509> leaf(X509_new());
  X509* c = leaf.get();
  const bool ok = c != nullptr && X509_set_version(c, X509_VERSION_3) == 1 &&
                  ASN1_INTEGER_set(X509_get_serialNumber(c), serial) == 1 &&
                  SetValidity(c, shift) && X509_set_subject_name(c, subject) == 1 &&
                  X509_set_issuer_name(c, X509_get_subject_name(ca)) == 1 &&
                  X509_set_pubkey(c, key) == 1 &&
                  AddExtension(c, ca, NID_basic_constraints, "critical,CA:FALSE") &&
                  AddExtension(c, ca, NID_key_usage, "critical,digitalSignature") &&
                  AddExtension(c, ca, NID_ext_key_usage, extended_key_usage) &&
                  AddExtension(c, ca, NID_authority_key_identifier, "keyid:always") &&
                  X509_sign(c, ca_key, EVP_sha256()) > 0;
  if (!ok) leaf.reset();
  return leaf;
}

}  // namespace

struct TestCodeSigningCa::Impl {
  UniquePtr<EVP_PKEY> key;
  UniquePtr<X509> cert;
  long serial = 1;
};

TestCodeSigningCa::TestCodeSigningCa(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TestCodeSigningCa::~TestCodeSigningCa() = default;

Result<std::unique_ptr<TestCodeSigningCa>> TestCodeSigningCa::Create(
    const std::string& common_name) {
  auto impl = std::make_unique<Impl>();
  impl->key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  impl->cert.reset(X509_new());
  if (!impl->key || !impl->cert) return InternalError("cannot create the test CA key");
  X509* c = impl->cert.get();
  X509_NAME* name = X509_get_subject_name(c);
  const bool ok =
      X509_set_version(c, X509_VERSION_3) == 1 &&
      ASN1_INTEGER_set(X509_get_serialNumber(c), 1) == 1 && SetValidity(c) &&
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                                 -1, 0) == 1 &&
      X509_set_issuer_name(c, name) == 1 && X509_set_pubkey(c, impl->key.get()) == 1 &&
      AddExtension(c, c, NID_basic_constraints, "critical,CA:TRUE") &&
      AddExtension(c, c, NID_key_usage, "critical,keyCertSign,cRLSign") &&
      AddExtension(c, c, NID_subject_key_identifier, "hash") &&
      X509_sign(c, impl->key.get(), EVP_sha256()) > 0;
  if (!ok) return InternalError("cannot create the test CA certificate");
  return std::unique_ptr<TestCodeSigningCa>(new TestCodeSigningCa(std::move(impl)));
}

Result<std::string> TestCodeSigningCa::Issue(const std::string& csr_pem,
                                             std::chrono::seconds shift) {
  UniquePtr<BIO> in(BIO_new_mem_buf(csr_pem.data(), static_cast<int>(csr_pem.size())));
  UniquePtr<X509_REQ> req(in ? PEM_read_bio_X509_REQ(in.get(), nullptr, nullptr, nullptr)
                             : nullptr);
  if (!req) return InvalidArgument("the test CA got no PEM certificate request");
  EVP_PKEY* pub = X509_REQ_get0_pubkey(req.get());
  if (pub == nullptr || X509_REQ_verify(req.get(), pub) != 1) {
    return InvalidArgument("the certificate request's signature does not verify");
  }
  auto leaf = IssueLeaf(impl_->cert.get(), impl_->key.get(), ++impl_->serial,
                        X509_REQ_get_subject_name(req.get()), pub, "codeSigning",
                        static_cast<long>(shift.count()));
  if (!leaf) return InternalError("the test CA could not issue the certificate");
  return ToPem(leaf.get()) + ToPem(impl_->cert.get());
}

Result<TestCodeSigningCa::TlsClient> TestCodeSigningCa::IssueTlsClient(
    const std::string& common_name) {
  UniquePtr<EVP_PKEY> key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  UniquePtr<X509_NAME> name(X509_NAME_new());
  if (!key || !name ||
      X509_NAME_add_entry_by_txt(name.get(), "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                                 -1, 0) != 1) {
    return InternalError("cannot make the test client's key or name");
  }
  auto leaf = IssueLeaf(impl_->cert.get(), impl_->key.get(), ++impl_->serial, name.get(),
                        key.get(), "clientAuth");
  if (!leaf) return InternalError("the test CA could not issue the client certificate");
  TlsClient out;
  out.certificate_pem = ToPem(leaf.get());
  std::string key_pem = PrivateKeyPem(key.get());
  out.private_key_pem = SecretBytes(std::string_view(key_pem));
  SecureWipe(key_pem.data(), key_pem.size());
  unsigned char* der = nullptr;
  const int n = i2d_X509(leaf.get(), &der);
  if (n <= 0 || out.certificate_pem.empty() || out.private_key_pem.size() == 0) {
    OPENSSL_free(der);
    return InternalError("cannot encode the test client certificate or key");
  }
  out.certificate_der.assign(der, der + n);
  OPENSSL_free(der);
  return out;
}

Status TestCodeSigningCa::TlsClient::WriteFiles(const std::string& base) const {
  SIGNET_TRY(fs::WriteFileAtomic(base + ".key", private_key_pem.view(), 0600));
  return fs::WriteFileAtomic(base + ".crt", AsBytes(certificate_pem), 0644);
}

bool TestCodeSigningCa::Issued(ByteView der) const {
  auto cert = ParseDer(der);
  return cert && X509_verify(cert.get(), impl_->key.get()) == 1;
}

std::string TestCodeSigningCa::certificate_pem() const { return ToPem(impl_->cert.get()); }

Result<Bytes> SubjectPublicKeyInfoOf(ByteView certificate_der) {
  auto cert = ParseDer(certificate_der);
  if (!cert) return InvalidArgument("not a DER certificate");
  unsigned char* out = nullptr;
  const int n = i2d_PUBKEY(X509_get0_pubkey(cert.get()), &out);
  if (n <= 0) return InvalidArgument("the certificate has no usable public key");
  Bytes spki(out, out + n);
  OPENSSL_free(out);
  return spki;
}

}  // namespace signet::pki::testing
