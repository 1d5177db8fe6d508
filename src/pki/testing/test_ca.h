// TestCodeSigningCa: a throwaway certification authority for tests and benchmarks that need a
// signet key to carry a real certificate chain (credentials/info, chain import, signature checks
// against the certificate). Self-signed ECDSA P-256 root; issues end-entity code-signing
// certificates (keyUsage digitalSignature, extendedKeyUsage codeSigning, valid from an hour ago
// for 30 days) for the key of a verified PKCS#10 request. Not for production: no revocation, no
// policy, serials counted from 2.
//
// It also issues TLS client certificates with fresh P-256 keys (IssueTlsClient), for the mTLS
// tests and the benchmark's service accounts.
//
// Threads: Issue and IssueTlsClient change the serial counter; use one CA per thread or
// synchronise.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "common/bytes.h"
#include "common/result.h"

namespace signet::pki::testing {

class TestCodeSigningCa {
 public:
  // A new root key and self-signed certificate with subject CN=`common_name`. Internal if
  // OpenSSL fails.
  static Result<std::unique_ptr<TestCodeSigningCa>> Create(const std::string& common_name);
  ~TestCodeSigningCa();
  // Owns OpenSSL objects; one CA, one key.
  TestCodeSigningCa(const TestCodeSigningCa&) = delete;
  TestCodeSigningCa& operator=(const TestCodeSigningCa&) = delete;

  // The PEM chain "leaf, then this CA" for the key of `csr_pem`, keeping the request's subject.
  // The leaf's validity is moved by `shift` (a renewal issued in a test's future). InvalidArgument
  // if the request does not parse or its self-signature does not verify.
  Result<std::string> Issue(const std::string& csr_pem,
                            std::chrono::seconds shift = std::chrono::seconds(0));

  // A TLS client certificate with subject CN=`common_name` (keyUsage digitalSignature,
  // extendedKeyUsage clientAuth, same validity as above) for a new P-256 key. Internal if
  // OpenSSL fails.
  struct TlsClient {
    std::string certificate_pem;  // the leaf only
    Bytes certificate_der;
    SecretBytes private_key_pem;  // PKCS#8, unencrypted: write it owner-only

    // Writes `base`.crt (the PEM certificate) and `base`.key (the key, mode 0600), as a TLS
    // client's options expect them.
    Status WriteFiles(const std::string& base) const;
  };
  Result<TlsClient> IssueTlsClient(const std::string& common_name);

  // Whether the DER certificate `der` parses and was signed by this CA.
  bool Issued(ByteView der) const;

  // The CA certificate as PEM.
  std::string certificate_pem() const;

 private:
  struct Impl;
  explicit TestCodeSigningCa(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The DER SubjectPublicKeyInfo of the DER certificate `der`; InvalidArgument if it does not parse.
Result<Bytes> SubjectPublicKeyInfoOf(ByteView certificate_der);

}  // namespace signet::pki::testing
