// libFuzzer target for ParseChainForKey (pki.h). The input is taken as PEM text. So that the
// fuzzer gets past the key comparison into the chain checks, the key passed in is the one of the
// input's first certificate when OpenSSL can read one, else a fixed P-256 key.
//
// Build: cmake -DSIGNET_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang ...
// Run:   pki_chain_fuzz -max_len=65536 /tmp/chain-corpus src/pki/fuzz/corpus/chain  (scratch first)

#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/bytes.h"
#include "pki/internal/openssl_ptr.h"
#include "pki/pki.h"

namespace {

// SubjectPublicKeyInfo of an arbitrary P-256 public key (the generator point).
constexpr uint8_t kFallbackSpki[] = {
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04, 0x6b, 0x17, 0xd1, 0xf2, 0xe1,
    0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5, 0x63, 0xa4, 0x40, 0xf2, 0x77, 0x03, 0x7d, 0x81, 0x2d,
    0xeb, 0x33, 0xa0, 0xf4, 0xa1, 0x39, 0x45, 0xd8, 0x98, 0xc2, 0x96, 0x4f, 0xe3, 0x42, 0xe2, 0xfe,
    0x1a, 0x7f, 0x9b, 0x8e, 0xe7, 0xeb, 0x4a, 0x7c, 0x0f, 0x9e, 0x16, 0x2b, 0xce, 0x33, 0x57, 0x6b,
    0x31, 0x5e, 0xce, 0xcb, 0xb6, 0x40, 0x68, 0x37, 0xbf, 0x51, 0xf5};

signet::Bytes FirstCertificateSpki(const uint8_t* data, size_t size) {
  using signet::pki::internal::UniquePtr;
  if (size > signet::pki::kMaxChainPemSize) return {};
  UniquePtr<BIO> bio(BIO_new_mem_buf(data, static_cast<int>(size)));
  if (bio == nullptr) return {};
  UniquePtr<X509> certificate(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (certificate == nullptr) return {};
  unsigned char* der = nullptr;
  const int length = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(certificate.get()), &der);
  if (length <= 0) return {};
  signet::Bytes spki(der, der + length);
  OPENSSL_free(der);
  return spki;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  signet::Bytes spki = FirstCertificateSpki(data, size);
  if (spki.empty()) spki.assign(std::begin(kFallbackSpki), std::end(kFallbackSpki));
  auto chain = signet::pki::ParseChainForKey(text, spki);
  if (chain.ok()) {
    // An accepted chain's normalised PEM must be accepted again, with the same certificates.
    auto again = signet::pki::ParseChainForKey(chain->pem, spki);
    if (!again.ok() || again->certificates_der != chain->certificates_der) __builtin_trap();
  }
  return 0;
}
