// Tests for CreateLocalhostTlsIdentity (pki.h): the certificate is parsed back with OpenSSL and
// checked with the `openssl verify` command, as a developer would.

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "common/fs.h"
#include "pki/internal/openssl_ptr.h"
#include "pki/pki.h"

namespace signet::pki {
namespace {

using internal::UniquePtr;

constexpr int64_t kNow = 1'800'000'000;

UniquePtr<X509> ParseCertificate(const std::string& pem) {
  UniquePtr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return UniquePtr<X509>(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

// Runs a shell command, returning its exit status and standard output + error.
std::pair<int, std::string> RunCommand(const std::string& command) {
  std::string output;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return {-1, ""};
  char buf[512];
  while (size_t n = fread(buf, 1, sizeof buf, pipe)) output.append(buf, n);
  return {pclose(pipe), output};
}

TEST(TlsCertificateTest, IsSelfSignedP256WithLocalhostNames) {
  auto identity = CreateLocalhostTlsIdentity(FromUnixSeconds(kNow));
  ASSERT_TRUE(identity.ok()) << identity.error().message();
  UniquePtr<X509> cert = ParseCertificate(identity->certificate_pem);
  ASSERT_TRUE(cert);

  EXPECT_EQ(X509_check_host(cert.get(), "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "::1", 0), 1);
  EXPECT_NE(X509_check_host(cert.get(), "example.com", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_purpose(cert.get(), X509_PURPOSE_SSL_SERVER, 0), 1);
  EXPECT_EQ(X509_check_ca(cert.get()), 0);

  EVP_PKEY* key = X509_get0_pubkey(cert.get());
  ASSERT_NE(key, nullptr);
  EXPECT_TRUE(EVP_PKEY_is_a(key, "EC"));
  EXPECT_EQ(EVP_PKEY_get_bits(key), 256);
  EXPECT_EQ(X509_verify(cert.get(), key), 1);

  char subject[256];
  X509_NAME_oneline(X509_get_subject_name(cert.get()), subject, sizeof subject);
  EXPECT_NE(std::string(subject).find("signet development"), std::string::npos) << subject;

  EXPECT_EQ(ASN1_TIME_cmp_time_t(X509_get0_notBefore(cert.get()), kNow - 300), 0);
  EXPECT_EQ(ASN1_TIME_cmp_time_t(X509_get0_notAfter(cert.get()), kNow + 365 * 86400), 0);
  EXPECT_EQ(ToUnixSeconds(identity->not_after), kNow + 365 * 86400);
}

TEST(TlsCertificateTest, PrivateKeyMatchesCertificate) {
  auto identity = CreateLocalhostTlsIdentity(FromUnixSeconds(kNow));
  ASSERT_TRUE(identity.ok());
  std::string key_pem(identity->private_key_pem.text_view());
  EXPECT_EQ(key_pem.rfind("-----BEGIN PRIVATE KEY-----\n", 0), 0u);
  UniquePtr<BIO> bio(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  UniquePtr<EVP_PKEY> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  ASSERT_TRUE(key);
  UniquePtr<X509> cert = ParseCertificate(identity->certificate_pem);
  ASSERT_TRUE(cert);
  EXPECT_EQ(X509_check_private_key(cert.get(), key.get()), 1);
}

TEST(TlsCertificateTest, EachCallMakesANewKeyAndSerial) {
  auto a = CreateLocalhostTlsIdentity(FromUnixSeconds(kNow));
  auto b = CreateLocalhostTlsIdentity(FromUnixSeconds(kNow));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->certificate_pem, b->certificate_pem);
  UniquePtr<X509> ca = ParseCertificate(a->certificate_pem);
  UniquePtr<X509> cb = ParseCertificate(b->certificate_pem);
  EXPECT_NE(ASN1_INTEGER_cmp(X509_get0_serialNumber(ca.get()), X509_get0_serialNumber(cb.get())),
            0);
}

TEST(TlsCertificateTest, RefusesBadValidity) {
  EXPECT_EQ(
      CreateLocalhostTlsIdentity(FromUnixSeconds(kNow), std::chrono::seconds(0)).error().code(),
      ErrorCode::kInvalidArgument);
  EXPECT_EQ(CreateLocalhostTlsIdentity(FromUnixSeconds(kNow), std::chrono::hours(24 * 900))
                .error()
                .code(),
            ErrorCode::kInvalidArgument);
}

TEST(TlsCertificateTest, VerifiesWithOpensslCommandAgainstItself) {
  auto identity = CreateLocalhostTlsIdentity(std::chrono::system_clock::now());
  ASSERT_TRUE(identity.ok());
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("signet-tls-cert-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string cert_path = (dir / "cert.pem").string();
  ASSERT_TRUE(fs::WriteFileAtomic(cert_path, AsBytes(identity->certificate_pem), 0644).ok());

  auto [status, output] = RunCommand("openssl verify -x509_strict -purpose sslserver -CAfile " +
                                     cert_path + " " + cert_path);
  EXPECT_EQ(status, 0) << output;
  EXPECT_NE(output.find(": OK"), std::string::npos) << output;

  auto [text_status, text] = RunCommand("openssl x509 -noout -ext subjectAltName -in " + cert_path);
  EXPECT_EQ(text_status, 0) << text;
  EXPECT_NE(text.find("DNS:localhost"), std::string::npos) << text;
  EXPECT_NE(text.find("IP Address:127.0.0.1"), std::string::npos) << text;
  EXPECT_NE(text.find("IP Address:0:0:0:0:0:0:0:1"), std::string::npos) << text;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace signet::pki
