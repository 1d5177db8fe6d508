// Unit tests for pki.h. The HSM is replaced by a hand-written fake DigestSigner backed by an
// OpenSSL key generated here; the test PKI (root, intermediate, leaf) is built in code.

#include "pki/pki.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/encoding.h"
#include "pki/internal/openssl_ptr.h"

namespace signet::pki {
namespace {

using internal::UniquePtr;
using ::testing::HasSubstr;
using ::testing::Not;

// --- Helpers ------------------------------------------------------------------------------------

template <typename T>
::testing::AssertionResult FailsWith(const Result<T>& result, ErrorCode code,
                                     std::string_view fragment) {
  if (result.ok()) return ::testing::AssertionFailure() << "succeeded, expected an error";
  const Error& error = result.error();
  if (error.code() != code || error.message().find(fragment) == std::string::npos) {
    return ::testing::AssertionFailure()
           << "got " << ErrorCodeName(error.code()) << ": " << error.message() << "\nexpected "
           << ErrorCodeName(code) << " containing '" << fragment << "'";
  }
  return ::testing::AssertionSuccess();
}

// Keys are generated once per process and named, as RSA-3072 generation takes a while.
EVP_PKEY* TestKey(const std::string& name, KeyAlgorithm alg = KeyAlgorithm::kEcP256) {
  static std::map<std::string, UniquePtr<EVP_PKEY>> keys;
  auto found = keys.find(name);
  if (found != keys.end()) return found->second.get();
  EVP_PKEY* key = nullptr;
  switch (alg) {
    case KeyAlgorithm::kRsa3072:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{3072});
      break;
    case KeyAlgorithm::kRsa4096:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{4096});
      break;
    case KeyAlgorithm::kEcP256:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
      break;
    case KeyAlgorithm::kEcP384:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384");
      break;
    case KeyAlgorithm::kEd25519:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
      break;
  }
  if (key == nullptr) std::abort();
  keys.emplace(name, UniquePtr<EVP_PKEY>(key));
  return key;
}

Bytes SpkiDer(EVP_PKEY* key) {
  int length = i2d_PUBKEY(key, nullptr);
  if (length <= 0) std::abort();
  Bytes der(static_cast<size_t>(length));
  unsigned char* out = der.data();
  i2d_PUBKEY(key, &out);
  return der;
}

Bytes CertificateDer(X509* certificate) {
  int length = i2d_X509(certificate, nullptr);
  if (length <= 0) std::abort();
  Bytes der(static_cast<size_t>(length));
  unsigned char* out = der.data();
  i2d_X509(certificate, &out);
  return der;
}

std::string ReadBio(BIO* bio) {
  std::string out(BIO_ctrl_pending(bio), '\0');
  if (!out.empty()) BIO_read(bio, out.data(), static_cast<int>(out.size()));
  return out;
}

// PEM as OpenSSL writes it: the reference for "normalised".
std::string CertificatePem(X509* certificate) {
  UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_X509(bio.get(), certificate) != 1) std::abort();
  return ReadBio(bio.get());
}

// A fake of the HSM port: signs digests with an in-process key and records what it was asked.
struct SignerCall {
  SignatureScheme scheme;
  HashAlgorithm hash;
  size_t digest_size;
};

DigestSigner FakeHsmSigner(EVP_PKEY* key, std::vector<SignerCall>* calls = nullptr) {
  return
      [key, calls](SignatureScheme scheme, HashAlgorithm hash, ByteView digest) -> Result<Bytes> {
        if (calls != nullptr) calls->push_back({scheme, hash, digest.size()});
        UniquePtr<EVP_PKEY_CTX> context(EVP_PKEY_CTX_new(key, nullptr));
        const EVP_MD* md = hash == HashAlgorithm::kSha256   ? EVP_sha256()
                           : hash == HashAlgorithm::kSha384 ? EVP_sha384()
                                                            : EVP_sha512();
        if (context == nullptr || EVP_PKEY_sign_init(context.get()) != 1 ||
            EVP_PKEY_CTX_set_signature_md(context.get(), md) != 1) {
          return InternalError("fake signer: cannot set up");
        }
        if (scheme == SignatureScheme::kRsaPkcs1v15 &&
            EVP_PKEY_CTX_set_rsa_padding(context.get(), RSA_PKCS1_PADDING) != 1) {
          return InternalError("fake signer: cannot set padding");
        }
        size_t length = 0;
        if (EVP_PKEY_sign(context.get(), nullptr, &length, digest.data(), digest.size()) != 1) {
          return InternalError("fake signer: cannot size");
        }
        Bytes signature(length);
        if (EVP_PKEY_sign(context.get(), signature.data(), &length, digest.data(), digest.size()) !=
            1) {
          return InternalError("fake signer: cannot sign");
        }
        signature.resize(length);
        return signature;
      };
}

UniquePtr<X509_REQ> ParseCsrPem(const std::string& pem) {
  UniquePtr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return UniquePtr<X509_REQ>(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
}

// The entries of an X509_NAME as a DistinguishedName with OpenSSL's short names.
DistinguishedName FromX509Name(const X509_NAME* name) {
  DistinguishedName dn;
  for (int i = 0; i < X509_NAME_entry_count(name); ++i) {
    const X509_NAME_ENTRY* entry = X509_NAME_get_entry(name, i);
    const int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(entry));
    unsigned char* utf8 = nullptr;
    const int length = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(entry));
    if (length < 0) std::abort();
    dn.attributes.emplace_back(
        OBJ_nid2sn(nid), std::string(reinterpret_cast<char*>(utf8), static_cast<size_t>(length)));
    OPENSSL_free(utf8);
  }
  return dn;
}

int NameEntryStringType(const X509_NAME* name, int nid) {
  const int index = X509_NAME_get_index_by_NID(name, nid, -1);
  if (index < 0) return -1;
  return ASN1_STRING_type(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index)));
}

DistinguishedName TestSubject() {
  auto dn = ParseSubject("/CN=Example Code Signer/O=Exämple Ltd/L=London/C=GB");
  if (!dn.ok()) std::abort();
  return *dn;
}

// --- ParseSubject -------------------------------------------------------------------------------

TEST(SubjectTest, ParsesAttributesInOrder) {
  auto dn = ParseSubject("/CN=Example Code Signer/O=Example Ltd/OU=Build/L=London/C=GB");
  ASSERT_TRUE(dn.ok()) << dn.error().message();
  const std::vector<std::pair<std::string, std::string>> expected = {{"CN", "Example Code Signer"},
                                                                     {"O", "Example Ltd"},
                                                                     {"OU", "Build"},
                                                                     {"L", "London"},
                                                                     {"C", "GB"}};
  EXPECT_EQ(dn->attributes, expected);
}

TEST(SubjectTest, UnescapesSlashAndBackslashInValues) {
  auto dn = ParseSubject("/CN=Signer A\\/B/O=Back\\\\slash Ltd");
  ASSERT_TRUE(dn.ok()) << dn.error().message();
  EXPECT_EQ(dn->attributes[0].second, "Signer A/B");
  EXPECT_EQ(dn->attributes[1].second, "Back\\slash Ltd");
}

TEST(SubjectTest, AcceptsUtf8Value) {
  auto dn = ParseSubject("/CN=Zoë Müller/O=株式会社 Example");
  ASSERT_TRUE(dn.ok()) << dn.error().message();
  EXPECT_EQ(dn->attributes[0].second, "Zoë Müller");
  EXPECT_EQ(dn->attributes[1].second, "株式会社 Example");
}

TEST(SubjectTest, CanonicalisesLongAndMixedCaseTypeNames) {
  auto dn = ParseSubject(
      "/commonName=X/organizationname=Y/jurisdictionCountryName=DE/"
      "BUSINESSCATEGORY=Private Organization/serialNumber=HRB 12345");
  ASSERT_TRUE(dn.ok()) << dn.error().message();
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"CN", "X"},
      {"O", "Y"},
      {"jurisdictionC", "DE"},
      {"businessCategory", "Private Organization"},
      {"serialNumber", "HRB 12345"}};
  EXPECT_EQ(dn->attributes, expected);
}

TEST(SubjectTest, ToStringRoundTrips) {
  auto dn = ParseSubject("/CN=A\\/B\\\\C/O=Exämple=Ltd/OU=x/OU=y/C=GB");
  ASSERT_TRUE(dn.ok()) << dn.error().message();
  EXPECT_EQ(dn->ToString(), "/CN=A\\/B\\\\C/O=Exämple=Ltd/OU=x/OU=y/C=GB");
  auto again = ParseSubject(dn->ToString());
  ASSERT_TRUE(again.ok()) << again.error().message();
  EXPECT_EQ(*again, *dn);
}

TEST(SubjectTest, RejectsEmptyText) {
  EXPECT_TRUE(FailsWith(ParseSubject(""), ErrorCode::kInvalidArgument, "the subject is empty"));
}

TEST(SubjectTest, RejectsMissingLeadingSlash) {
  EXPECT_TRUE(
      FailsWith(ParseSubject("CN=Example"), ErrorCode::kInvalidArgument, "must start with '/'"));
}

TEST(SubjectTest, RejectsUnknownAttribute) {
  EXPECT_TRUE(FailsWith(ParseSubject("/CN=Example/emailAddress=a@example.com"),
                        ErrorCode::kInvalidArgument,
                        "subject attribute 2 has unknown type 'emailAddress'; use one of CN, O"));
}

TEST(SubjectTest, RejectsDomainComponent) {
  EXPECT_TRUE(FailsWith(ParseSubject("/DC=com/CN=Example"), ErrorCode::kInvalidArgument,
                        "DC (domainComponent) is prohibited"));
}

TEST(SubjectTest, RejectsEmptyValue) {
  EXPECT_TRUE(FailsWith(ParseSubject("/CN=Example/O="), ErrorCode::kInvalidArgument,
                        "subject attribute 2 (O) has an empty value"));
}

TEST(SubjectTest, RejectsThreeLetterCountry) {
  EXPECT_TRUE(FailsWith(ParseSubject("/CN=Example/C=GBR"), ErrorCode::kInvalidArgument,
                        "'GBR' is not a country code"));
}

TEST(SubjectTest, RejectsLowerCaseCountry) {
  EXPECT_TRUE(FailsWith(ParseSubject("/CN=Example/C=gb"), ErrorCode::kInvalidArgument,
                        "'gb' is not a country code"));
}

TEST(SubjectTest, RejectsMissingCommonName) {
  EXPECT_TRUE(FailsWith(ParseSubject("/O=Example Ltd/C=GB"), ErrorCode::kInvalidArgument,
                        "the subject has no CN"));
}

TEST(SubjectTest, RejectsMissingEquals) {
  EXPECT_TRUE(FailsWith(ParseSubject("/CN=Example/O"), ErrorCode::kInvalidArgument,
                        "subject attribute 2 ('O') has no '='"));
}

TEST(SubjectTest, RejectsEmptyType) {
  EXPECT_TRUE(FailsWith(ParseSubject("/=Example"), ErrorCode::kInvalidArgument,
                        "subject attribute 1 has no type"));
}

TEST(SubjectTest, RejectsTrailingSlash) {
  EXPECT_TRUE(FailsWith(ParseSubject("/CN=Example/"), ErrorCode::kInvalidArgument,
                        "subject attribute 2 is empty"));
}

TEST(SubjectTest, RejectsLoneTrailingBackslash) {
  EXPECT_TRUE(FailsWith(ParseSubject("/CN=Example\\"), ErrorCode::kInvalidArgument, "lone '\\'"));
}

TEST(SubjectTest, RejectsRepeatedCommonName) {
  EXPECT_TRUE(FailsWith(ParseSubject("/CN=A/CN=B"), ErrorCode::kInvalidArgument,
                        "subject attribute 2 (CN) repeats CN"));
}

TEST(SubjectTest, RejectsInvalidUtf8) {
  EXPECT_TRUE(FailsWith(ParseSubject("/CN=Bad \xc3\x28 name"), ErrorCode::kInvalidArgument,
                        "is not valid UTF-8"));
  EXPECT_TRUE(FailsWith(ParseSubject("/CN=Overlong \xc0\xaf"), ErrorCode::kInvalidArgument,
                        "is not valid UTF-8"));
  EXPECT_TRUE(FailsWith(ParseSubject("/CN=Cut \xe6\xa0"), ErrorCode::kInvalidArgument,
                        "truncated character"));
}

TEST(SubjectTest, RejectsControlCharacter) {
  EXPECT_TRUE(FailsWith(ParseSubject(std::string_view("/CN=A\nB")), ErrorCode::kInvalidArgument,
                        "control character"));
  EXPECT_TRUE(FailsWith(ParseSubject(std::string_view("/CN=A\0B", 7)), ErrorCode::kInvalidArgument,
                        "control character"));
}

TEST(SubjectTest, RejectsPlaceholderValue) {
  EXPECT_TRUE(
      FailsWith(ParseSubject("/CN=Example/OU=-"), ErrorCode::kInvalidArgument, "is a placeholder"));
  EXPECT_TRUE(FailsWith(ParseSubject("/CN=Example/O=-\xc2\xa0-"), ErrorCode::kInvalidArgument,
                        "is a placeholder"));
  EXPECT_TRUE(FailsWith(ParseSubject("/CN=Example/ST=N\\/A"), ErrorCode::kInvalidArgument,
                        "is a placeholder"));
}

TEST(SubjectTest, RejectsSurroundingSpaces) {
  EXPECT_TRUE(FailsWith(ParseSubject("/CN= Example"), ErrorCode::kInvalidArgument,
                        "starts or ends with a space"));
  // Other spaces than ASCII's: NO-BREAK SPACE, IDEOGRAPHIC SPACE.
  EXPECT_TRUE(FailsWith(ParseSubject("/CN=Example\xc2\xa0"), ErrorCode::kInvalidArgument,
                        "starts or ends with a space"));
  EXPECT_TRUE(FailsWith(ParseSubject("/CN=\xe3\x80\x80"
                                     "Example"),
                        ErrorCode::kInvalidArgument, "starts or ends with a space"));
  // Inside a value they are kept.
  auto inside = ParseSubject("/CN=Example\xc2\xa0Ltd");
  ASSERT_TRUE(inside.ok()) << inside.error().message();
}

// A name that shows other than it reads: bidi overrides, zero-width characters, a BOM.
TEST(SubjectTest, RejectsInvisibleFormattingCharacters) {
  EXPECT_TRUE(FailsWith(ParseSubject("/CN=Micro\xe2\x80\xae"
                                     "tfos"),
                        ErrorCode::kInvalidArgument, "invisible formatting character U+202E"));
  EXPECT_TRUE(
      FailsWith(ParseSubject("/CN=Exa\xe2\x80\x8bmple"), ErrorCode::kInvalidArgument, "U+200B"));
  EXPECT_TRUE(FailsWith(ParseSubject("/CN=\xef\xbb\xbf"
                                     "Example"),
                        ErrorCode::kInvalidArgument, "U+FEFF"));
  EXPECT_TRUE(FailsWith(ParseSubject("/CN=Example/O=A\xe2\x81\xa6"
                                     "B"),
                        ErrorCode::kInvalidArgument, "U+2066"));
}

TEST(SubjectTest, RejectsTooLongCommonName) {
  EXPECT_TRUE(FailsWith(ParseSubject("/CN=" + std::string(65, 'a')), ErrorCode::kInvalidArgument,
                        "(CN) is 65 characters long; at most 64"));
  // 64 two-byte characters are 64 characters, not 128.
  std::string umlauts;
  for (int i = 0; i < 64; ++i) umlauts += "ä";
  EXPECT_TRUE(ParseSubject("/CN=" + umlauts).ok());
}

TEST(SubjectTest, RejectsSerialNumberOutsidePrintableString) {
  EXPECT_TRUE(FailsWith(ParseSubject("/CN=Example/serialNumber=HRB_123"),
                        ErrorCode::kInvalidArgument, "PrintableString"));
}

TEST(SubjectTest, RejectsUnknownBusinessCategory) {
  EXPECT_TRUE(FailsWith(ParseSubject("/CN=Example/businessCategory=Startup"),
                        ErrorCode::kInvalidArgument, "not a CSBR business category"));
}

TEST(SubjectTest, RejectsOversizedText) {
  EXPECT_TRUE(FailsWith(ParseSubject("/CN=" + std::string(kMaxSubjectTextSize, 'a')),
                        ErrorCode::kInvalidArgument, "at most 4096 are accepted"));
}

TEST(SubjectTest, RejectsTooManyAttributes) {
  std::string text = "/CN=Example";
  for (size_t i = 0; i < kMaxSubjectAttributes; ++i) text += "/OU=unit";
  EXPECT_TRUE(
      FailsWith(ParseSubject(text), ErrorCode::kInvalidArgument, "more than 32 attributes"));
}

// --- CreateCsrPem -------------------------------------------------------------------------------

struct CsrCase {
  const char* name;
  KeyAlgorithm alg;
  SignatureScheme scheme;
  HashAlgorithm hash;
  int signature_nid;
  int parameter_type;  // of signatureAlgorithm: V_ASN1_NULL for RSA, absent for ECDSA
};

void PrintTo(const CsrCase& c, std::ostream* os) { *os << c.name; }

class CsrAlgorithmTest : public ::testing::TestWithParam<CsrCase> {};

TEST_P(CsrAlgorithmTest, ProducesRequestThatVerifiesAndCarriesInputs) {
  const CsrCase& c = GetParam();
  EVP_PKEY* key = TestKey(c.name, c.alg);
  const Bytes spki = SpkiDer(key);
  std::vector<SignerCall> calls;
  auto pem = CreateCsrPem(spki, c.alg, TestSubject(), FakeHsmSigner(key, &calls));
  ASSERT_TRUE(pem.ok()) << pem.error().message();
  EXPECT_THAT(*pem, ::testing::StartsWith("-----BEGIN CERTIFICATE REQUEST-----\n"));

  // The signer was asked once, with the scheme and hash of the key type.
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].scheme, c.scheme);
  EXPECT_EQ(calls[0].hash, c.hash);
  EXPECT_EQ(calls[0].digest_size, DigestSize(c.hash));

  UniquePtr<X509_REQ> request = ParseCsrPem(*pem);
  ASSERT_NE(request, nullptr);
  EXPECT_EQ(X509_REQ_get_version(request.get()), 0);
  EXPECT_EQ(X509_REQ_verify(request.get(), key), 1);
  EXPECT_EQ(X509_REQ_get_attr_count(request.get()), 0);

  // The public key is the SPKI we gave, byte for byte.
  unsigned char* request_spki = nullptr;
  const int spki_length = i2d_X509_PUBKEY(X509_REQ_get_X509_PUBKEY(request.get()), &request_spki);
  ASSERT_GT(spki_length, 0);
  EXPECT_EQ(Bytes(request_spki, request_spki + spki_length), spki);
  OPENSSL_free(request_spki);

  EXPECT_EQ(FromX509Name(X509_REQ_get_subject_name(request.get())), TestSubject());

  EXPECT_EQ(X509_REQ_get_signature_nid(request.get()), c.signature_nid);
  const ASN1_BIT_STRING* signature = nullptr;
  const X509_ALGOR* algorithm = nullptr;
  X509_REQ_get0_signature(request.get(), &signature, &algorithm);
  int parameter_type = 0;
  X509_ALGOR_get0(nullptr, &parameter_type, nullptr, algorithm);
  EXPECT_EQ(parameter_type, c.parameter_type);
}

INSTANTIATE_TEST_SUITE_P(
    Algorithms, CsrAlgorithmTest,
    ::testing::Values(CsrCase{"Rsa3072", KeyAlgorithm::kRsa3072, SignatureScheme::kRsaPkcs1v15,
                              HashAlgorithm::kSha256, NID_sha256WithRSAEncryption, V_ASN1_NULL},
                      CsrCase{"EcP256", KeyAlgorithm::kEcP256, SignatureScheme::kEcdsa,
                              HashAlgorithm::kSha256, NID_ecdsa_with_SHA256, V_ASN1_UNDEF},
                      CsrCase{"EcP384", KeyAlgorithm::kEcP384, SignatureScheme::kEcdsa,
                              HashAlgorithm::kSha384, NID_ecdsa_with_SHA384, V_ASN1_UNDEF}),
    [](const ::testing::TestParamInfo<CsrCase>& param_info) {
      return std::string(param_info.param.name);
    });

TEST(CsrTest, EncodesTextAsUtf8StringAndCountryAsPrintableString) {
  EVP_PKEY* key = TestKey("EcP256");
  auto pem = CreateCsrPem(SpkiDer(key), KeyAlgorithm::kEcP256, TestSubject(), FakeHsmSigner(key));
  ASSERT_TRUE(pem.ok()) << pem.error().message();
  UniquePtr<X509_REQ> request = ParseCsrPem(*pem);
  ASSERT_NE(request, nullptr);
  const X509_NAME* name = X509_REQ_get_subject_name(request.get());
  EXPECT_EQ(NameEntryStringType(name, NID_commonName), V_ASN1_UTF8STRING);
  EXPECT_EQ(NameEntryStringType(name, NID_organizationName), V_ASN1_UTF8STRING);
  EXPECT_EQ(NameEntryStringType(name, NID_countryName), V_ASN1_PRINTABLESTRING);
}

TEST(CsrTest, EncodesEvSubjectAttributes) {
  EVP_PKEY* key = TestKey("EcP256");
  auto dn = ParseSubject(
      "/jurisdictionC=DE/jurisdictionST=Bayern/jurisdictionL=München/businessCategory=Private "
      "Organization/serialNumber=HRB 12345/C=DE/ST=Bayern/L=München/street=Hauptstraße 1/"
      "postalCode=80331/O=Beispiel GmbH/OU=Build/CN=Beispiel GmbH");
  ASSERT_TRUE(dn.ok()) << dn.error().message();
  auto pem = CreateCsrPem(SpkiDer(key), KeyAlgorithm::kEcP256, *dn, FakeHsmSigner(key));
  ASSERT_TRUE(pem.ok()) << pem.error().message();
  UniquePtr<X509_REQ> request = ParseCsrPem(*pem);
  ASSERT_NE(request, nullptr);
  EXPECT_EQ(FromX509Name(X509_REQ_get_subject_name(request.get())), *dn);
  EXPECT_EQ(NameEntryStringType(X509_REQ_get_subject_name(request.get()), NID_serialNumber),
            V_ASN1_PRINTABLESTRING);
}

TEST(CsrTest, OpenSslCommandLineVerifiesRequest) {
  EVP_PKEY* key = TestKey("Rsa3072", KeyAlgorithm::kRsa3072);
  auto pem = CreateCsrPem(SpkiDer(key), KeyAlgorithm::kRsa3072, TestSubject(), FakeHsmSigner(key));
  ASSERT_TRUE(pem.ok()) << pem.error().message();
  const std::filesystem::path path = std::filesystem::temp_directory_path() /
                                     ("signet_pki_test_" + std::to_string(getpid()) + ".csr");
  { std::ofstream(path) << *pem; }
  const std::string command = "openssl req -verify -noout -in '" + path.string() + "' 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[256];
  while (std::fgets(buffer, sizeof(buffer), pipe) != nullptr) output += buffer;
  const int status = pclose(pipe);
  std::filesystem::remove(path);
  ASSERT_TRUE(WIFEXITED(status)) << output;
  EXPECT_EQ(WEXITSTATUS(status), 0) << output;
  EXPECT_THAT(output, HasSubstr("verify OK"));
}

TEST(CsrTest, KeepsTrailingZeroBytesOfSignature) {
  // A BIT STRING whose "unused bits" OpenSSL derives itself loses trailing zero bytes. ECDSA is
  // randomised, so re-sign until the DER signature ends in 0x00 (about 1 in 256 tries).
  EVP_PKEY* key = TestKey("EcP256");
  DigestSigner inner = FakeHsmSigner(key);
  bool ended_in_zero = false;
  DigestSigner zero_ending = [&](SignatureScheme scheme, HashAlgorithm hash,
                                 ByteView digest) -> Result<Bytes> {
    for (int attempt = 0; attempt < 20000; ++attempt) {
      auto signature = inner(scheme, hash, digest);
      if (!signature.ok() || signature->back() == 0x00) {
        ended_in_zero = signature.ok();
        return signature;
      }
    }
    return InternalError("no signature ending in 0x00");
  };
  auto pem = CreateCsrPem(SpkiDer(key), KeyAlgorithm::kEcP256, TestSubject(), zero_ending);
  ASSERT_TRUE(pem.ok()) << pem.error().message();
  ASSERT_TRUE(ended_in_zero);
  UniquePtr<X509_REQ> request = ParseCsrPem(*pem);
  ASSERT_NE(request, nullptr);
  EXPECT_EQ(X509_REQ_verify(request.get(), key), 1);
}

TEST(CsrTest, FailsWhenSignerUsesDifferentKey) {
  auto pem = CreateCsrPem(SpkiDer(TestKey("EcP256")), KeyAlgorithm::kEcP256, TestSubject(),
                          FakeHsmSigner(TestKey("OtherEcP256")));
  EXPECT_TRUE(
      FailsWith(pem, ErrorCode::kInternal, "signature does not verify with the given public key"));
}

TEST(CsrTest, PropagatesSignerError) {
  DigestSigner failing = [](SignatureScheme, HashAlgorithm, ByteView) -> Result<Bytes> {
    return Unavailable("HSM session lost; retry");
  };
  auto pem =
      CreateCsrPem(SpkiDer(TestKey("EcP256")), KeyAlgorithm::kEcP256, TestSubject(), failing);
  EXPECT_TRUE(FailsWith(pem, ErrorCode::kUnavailable,
                        "signing the certificate request: HSM session lost; retry"));
}

TEST(CsrTest, FailsWhenSignerReturnsEmptySignature) {
  DigestSigner empty = [](SignatureScheme, HashAlgorithm, ByteView) -> Result<Bytes> {
    return Bytes{};
  };
  EXPECT_TRUE(FailsWith(
      CreateCsrPem(SpkiDer(TestKey("EcP256")), KeyAlgorithm::kEcP256, TestSubject(), empty),
      ErrorCode::kInternal, "signature of 0 bytes"));
}

TEST(CsrTest, FailsWhenSignerReturnsGarbage) {
  DigestSigner garbage = [](SignatureScheme, HashAlgorithm, ByteView) -> Result<Bytes> {
    return Bytes(72, 0x30);
  };
  EXPECT_TRUE(FailsWith(
      CreateCsrPem(SpkiDer(TestKey("EcP256")), KeyAlgorithm::kEcP256, TestSubject(), garbage),
      ErrorCode::kInternal, "does not verify"));
}

TEST(CsrTest, TurnsSignerExceptionIntoError) {
  DigestSigner throwing = [](SignatureScheme, HashAlgorithm, ByteView) -> Result<Bytes> {
    throw std::runtime_error("boom");
  };
  EXPECT_TRUE(FailsWith(
      CreateCsrPem(SpkiDer(TestKey("EcP256")), KeyAlgorithm::kEcP256, TestSubject(), throwing),
      ErrorCode::kInternal, "the signer threw an exception: boom"));
}

TEST(CsrTest, RejectsEmptySigner) {
  EXPECT_TRUE(FailsWith(CreateCsrPem(SpkiDer(TestKey("EcP256")), KeyAlgorithm::kEcP256,
                                     TestSubject(), DigestSigner()),
                        ErrorCode::kInvalidArgument, "no signer"));
}

TEST(CsrTest, RejectsKeyOfOtherCurve) {
  EVP_PKEY* key = TestKey("EcP256");
  EXPECT_TRUE(FailsWith(
      CreateCsrPem(SpkiDer(key), KeyAlgorithm::kEcP384, TestSubject(), FakeHsmSigner(key)),
      ErrorCode::kInvalidArgument, "curve prime256v1, but the key is said to be ec-p384"));
}

TEST(CsrTest, RejectsRsaKeyOfOtherSize) {
  EVP_PKEY* key = TestKey("Rsa3072", KeyAlgorithm::kRsa3072);
  EXPECT_TRUE(FailsWith(
      CreateCsrPem(SpkiDer(key), KeyAlgorithm::kRsa4096, TestSubject(), FakeHsmSigner(key)),
      ErrorCode::kInvalidArgument, "RSA-3072, but the key is said to be rsa-4096"));
}

TEST(CsrTest, RejectsEcKeyDeclaredAsRsa) {
  EVP_PKEY* key = TestKey("EcP256");
  EXPECT_TRUE(FailsWith(
      CreateCsrPem(SpkiDer(key), KeyAlgorithm::kRsa3072, TestSubject(), FakeHsmSigner(key)),
      ErrorCode::kInvalidArgument, "not an RSA key"));
}

TEST(CsrTest, RejectsEd25519) {
  EVP_PKEY* key = TestKey("Ed25519", KeyAlgorithm::kEd25519);
  EXPECT_TRUE(FailsWith(
      CreateCsrPem(SpkiDer(key), KeyAlgorithm::kEd25519, TestSubject(), FakeHsmSigner(key)),
      ErrorCode::kInvalidArgument, "CSBR 6.1.5.2"));
}

TEST(CsrTest, RejectsMalformedSpki) {
  EVP_PKEY* key = TestKey("EcP256");
  const Bytes garbage = {0x30, 0x03, 0x02, 0x01, 0x00};
  EXPECT_TRUE(
      FailsWith(CreateCsrPem(garbage, KeyAlgorithm::kEcP256, TestSubject(), FakeHsmSigner(key)),
                ErrorCode::kInvalidArgument, "is not a DER SubjectPublicKeyInfo"));
  Bytes trailing = SpkiDer(key);
  trailing.push_back(0);
  EXPECT_TRUE(
      FailsWith(CreateCsrPem(trailing, KeyAlgorithm::kEcP256, TestSubject(), FakeHsmSigner(key)),
                ErrorCode::kInvalidArgument, "1 bytes after the DER SubjectPublicKeyInfo"));
}

TEST(CsrTest, RejectsHandBuiltSubjectThatBreaksRules) {
  EVP_PKEY* key = TestKey("EcP256");
  DistinguishedName no_cn{{{"O", "Example Ltd"}}};
  EXPECT_TRUE(
      FailsWith(CreateCsrPem(SpkiDer(key), KeyAlgorithm::kEcP256, no_cn, FakeHsmSigner(key)),
                ErrorCode::kInvalidArgument, "no CN"));
  DistinguishedName long_type{{{"commonName", "Example"}}};  // types must be canonical
  EXPECT_TRUE(
      FailsWith(CreateCsrPem(SpkiDer(key), KeyAlgorithm::kEcP256, long_type, FakeHsmSigner(key)),
                ErrorCode::kInvalidArgument, "type 'commonName'"));
}

// --- ParseChainForKey ---------------------------------------------------------------------------

constexpr int64_t kLeafNotBefore = 1767225600;  // 2026-01-01T00:00:00Z (UTCTime)
constexpr int64_t kLeafNotAfter = 2524608000;   // 2050-01-01T00:00:00Z (GeneralizedTime)

struct CertificateSpec {
  std::string common_name;
  std::string organization = "Signet Test";
  EVP_PKEY* key = nullptr;
  X509* issuer = nullptr;  // nullptr: self-signed
  EVP_PKEY* issuer_key = nullptr;
  std::string basic_constraints;  // empty: no extension
  std::string key_usage;          // empty: no extension
  std::string extended_key_usage;
  std::string serial_hex = "01";
  int64_t not_before = kLeafNotBefore;
  int64_t not_after = kLeafNotAfter;
  std::string not_after_text;  // GeneralizedTime; when set, instead of not_after
  std::string not_before_text;
  const EVP_MD* digest = EVP_sha256();  // what the issuer signs with
};

UniquePtr<X509> MakeCertificate(const CertificateSpec& spec) {
  UniquePtr<X509> certificate(X509_new());
  X509_set_version(certificate.get(), X509_VERSION_3);
  BIGNUM* serial = nullptr;
  if (BN_hex2bn(&serial, spec.serial_hex.c_str()) == 0) std::abort();
  BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(certificate.get()));
  BN_free(serial);

  UniquePtr<X509_NAME> name(X509_NAME_new());
  auto add = [&](const char* type, const std::string& value) {
    X509_NAME_add_entry_by_txt(name.get(), type, MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(value.data()),
                               static_cast<int>(value.size()), -1, 0);
  };
  add("C", "GB");  // conventional DER order: most general first
  add("O", spec.organization);
  add("CN", spec.common_name);
  X509_set_subject_name(certificate.get(), name.get());
  X509_set_issuer_name(certificate.get(),
                       spec.issuer != nullptr ? X509_get_subject_name(spec.issuer) : name.get());
  ASN1_TIME_set(X509_getm_notBefore(certificate.get()), static_cast<time_t>(spec.not_before));
  ASN1_TIME_set(X509_getm_notAfter(certificate.get()), static_cast<time_t>(spec.not_after));
  if (!spec.not_before_text.empty() && ASN1_TIME_set_string(X509_getm_notBefore(certificate.get()),
                                                            spec.not_before_text.c_str()) != 1) {
    std::abort();
  }
  if (!spec.not_after_text.empty() && ASN1_TIME_set_string(X509_getm_notAfter(certificate.get()),
                                                           spec.not_after_text.c_str()) != 1) {
    std::abort();
  }
  X509_set_pubkey(certificate.get(), spec.key);

  X509V3_CTX context;
  X509V3_set_ctx(&context, spec.issuer != nullptr ? spec.issuer : certificate.get(),
                 certificate.get(), nullptr, nullptr, 0);
  auto add_extension = [&](int nid, const std::string& value) {
    if (value.empty()) return;
    UniquePtr<X509_EXTENSION> extension(X509V3_EXT_conf_nid(nullptr, &context, nid, value.c_str()));
    if (extension == nullptr) std::abort();
    X509_add_ext(certificate.get(), extension.get(), -1);
  };
  add_extension(NID_basic_constraints, spec.basic_constraints);
  add_extension(NID_key_usage, spec.key_usage);
  add_extension(NID_ext_key_usage, spec.extended_key_usage);

  EVP_PKEY* signing_key = spec.issuer_key != nullptr ? spec.issuer_key : spec.key;
  if (X509_sign(certificate.get(), signing_key, spec.digest) <= 0) std::abort();
  return certificate;
}

CertificateSpec CaSpec(std::string common_name, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key) {
  CertificateSpec spec;
  spec.common_name = std::move(common_name);
  spec.key = key;
  spec.issuer = issuer;
  spec.issuer_key = issuer_key;
  spec.basic_constraints = "critical,CA:TRUE";
  spec.key_usage = "critical,keyCertSign,cRLSign";
  spec.serial_hex = "1001";
  spec.not_before = 1735689600;  // 2025-01-01
  spec.not_after = 2051222400;   // 2035-01-01
  return spec;
}

CertificateSpec LeafSpec(EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key) {
  CertificateSpec spec;
  spec.common_name = "Example Code Signer";
  spec.organization = "Exämple Ltd";
  spec.key = key;
  spec.issuer = issuer;
  spec.issuer_key = issuer_key;
  spec.basic_constraints = "critical,CA:FALSE";
  spec.key_usage = "critical,digitalSignature";
  spec.extended_key_usage = "codeSigning";
  spec.serial_hex = "8A1B2C3D4E5F607182";
  return spec;
}

class ChainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = MakeCertificate(CaSpec("Signet Test Root", RootKey(), nullptr, nullptr));
    CertificateSpec intermediate =
        CaSpec("Signet Test Code Signing CA", IntermediateKey(), root_.get(), RootKey());
    intermediate.basic_constraints = "critical,CA:TRUE,pathlen:0";
    intermediate_ = MakeCertificate(intermediate);
    leaf_ = MakeCertificate(LeafSpec(LeafKey(), intermediate_.get(), IntermediateKey()));
    leaf_spki_ = SpkiDer(LeafKey());
  }

  static EVP_PKEY* RootKey() { return TestKey("root"); }
  static EVP_PKEY* IntermediateKey() { return TestKey("intermediate"); }
  static EVP_PKEY* LeafKey() { return TestKey("leaf"); }

  static std::string Pem(std::initializer_list<X509*> certificates) {
    std::string out;
    for (X509* certificate : certificates) out += CertificatePem(certificate);
    return out;
  }

  UniquePtr<X509> root_;
  UniquePtr<X509> intermediate_;
  UniquePtr<X509> leaf_;
  Bytes leaf_spki_;
};

TEST_F(ChainTest, AcceptsLeafAndIntermediate) {
  const std::string pem = Pem({leaf_.get(), intermediate_.get()});
  auto chain = ParseChainForKey(pem, leaf_spki_);
  ASSERT_TRUE(chain.ok()) << chain.error().message();
  ASSERT_EQ(chain->certificates_der.size(), 2u);
  EXPECT_EQ(chain->certificates_der[0], CertificateDer(leaf_.get()));
  EXPECT_EQ(chain->certificates_der[1], CertificateDer(intermediate_.get()));
  EXPECT_EQ(chain->pem, pem);
  EXPECT_EQ(chain->leaf_subject, "CN=Example Code Signer,O=Exämple Ltd,C=GB");
  EXPECT_EQ(chain->leaf_issuer, "CN=Signet Test Code Signing CA,O=Signet Test,C=GB");
  EXPECT_EQ(chain->leaf_serial_hex, "8a1b2c3d4e5f607182");
  EXPECT_EQ(ToUnixSeconds(chain->not_before), kLeafNotBefore);
  EXPECT_EQ(ToUnixSeconds(chain->not_after), kLeafNotAfter);
}

// RFC 5280 §4.1.2.5: 99991231235959Z is the notAfter of a certificate that does not expire. It
// is beyond what a TimePoint holds (2262), so it must saturate rather than wrap into the past
// (undefined behaviour, and a valid certificate reported expired); the text keeps the year.
TEST_F(ChainTest, DatesBeyondTimePointsRangeSaturateAndKeepTheirText) {
  CertificateSpec spec = LeafSpec(LeafKey(), intermediate_.get(), IntermediateKey());
  spec.not_before_text = "16000101000000Z";
  spec.not_after_text = "99991231235959Z";
  UniquePtr<X509> leaf = MakeCertificate(spec);
  auto chain = ParseChainForKey(Pem({leaf.get(), intermediate_.get()}), leaf_spki_);
  ASSERT_TRUE(chain.ok()) << chain.error().message();
  EXPECT_EQ(chain->not_before, TimePoint::min());
  EXPECT_EQ(chain->not_after, TimePoint::max());
  EXPECT_EQ(chain->not_before_text, "16000101000000Z");
  EXPECT_EQ(chain->not_after_text, "99991231235959Z");
  const TimePoint now = std::chrono::system_clock::now();
  EXPECT_TRUE(chain->not_before <= now && now < chain->not_after);
}

TEST_F(ChainTest, ReportsTheLeafsCaFlagAndExtendedKeyUsage) {
  auto chain = ParseChainForKey(Pem({leaf_.get(), intermediate_.get()}), leaf_spki_);
  ASSERT_TRUE(chain.ok()) << chain.error().message();
  EXPECT_FALSE(chain->leaf_is_ca);
  EXPECT_EQ(chain->leaf_extended_key_usage,
            std::vector<std::string>{std::string(kOidEkuCodeSigning)});
  CertificateSpec spec = LeafSpec(LeafKey(), intermediate_.get(), IntermediateKey());
  spec.basic_constraints = "critical,CA:TRUE";
  spec.extended_key_usage = "serverAuth,anyExtendedKeyUsage";
  UniquePtr<X509> odd = MakeCertificate(spec);
  chain = ParseChainForKey(Pem({odd.get(), intermediate_.get()}), leaf_spki_);
  ASSERT_TRUE(chain.ok()) << chain.error().message();
  EXPECT_TRUE(chain->leaf_is_ca);
  EXPECT_EQ(chain->leaf_extended_key_usage,
            (std::vector<std::string>{std::string(kOidEkuServerAuth), std::string(kOidEkuAny)}));
  spec.extended_key_usage.clear();
  UniquePtr<X509> none = MakeCertificate(spec);
  chain = ParseChainForKey(Pem({none.get(), intermediate_.get()}), leaf_spki_);
  ASSERT_TRUE(chain.ok()) << chain.error().message();
  EXPECT_FALSE(chain->leaf_extended_key_usage.has_value());
}

TEST_F(ChainTest, ReportsTheLeafsKeyUsageAndWhetherItIsCritical) {
  auto chain = ParseChainForKey(Pem({leaf_.get(), intermediate_.get()}), leaf_spki_);
  ASSERT_TRUE(chain.ok()) << chain.error().message();
  EXPECT_EQ(chain->leaf_key_usage, kKeyUsageDigitalSignature);
  EXPECT_TRUE(chain->leaf_key_usage_critical);
  CertificateSpec spec = LeafSpec(LeafKey(), intermediate_.get(), IntermediateKey());
  spec.key_usage = "digitalSignature,keyCertSign";
  UniquePtr<X509> odd = MakeCertificate(spec);
  chain = ParseChainForKey(Pem({odd.get(), intermediate_.get()}), leaf_spki_);
  ASSERT_TRUE(chain.ok()) << chain.error().message();
  EXPECT_EQ(chain->leaf_key_usage, kKeyUsageDigitalSignature | kKeyUsageKeyCertSign);
  EXPECT_FALSE(chain->leaf_key_usage_critical);
  spec.key_usage.clear();
  UniquePtr<X509> none = MakeCertificate(spec);
  chain = ParseChainForKey(Pem({none.get(), intermediate_.get()}), leaf_spki_);
  ASSERT_TRUE(chain.ok()) << chain.error().message();
  EXPECT_FALSE(chain->leaf_key_usage.has_value());
}

// A CA certificate for the signing key itself, above its own leaf: every link verifies, but
// whoever may sign with the key could issue certificates.
TEST_F(ChainTest, RefusesTheKeyCertifiedAsACaInItsOwnChain) {
  CertificateSpec ca = CaSpec("Key As CA", LeafKey(), intermediate_.get(), IntermediateKey());
  UniquePtr<X509> key_ca = MakeCertificate(ca);
  UniquePtr<X509> leaf = MakeCertificate(LeafSpec(LeafKey(), key_ca.get(), LeafKey()));
  auto chain = ParseChainForKey(Pem({leaf.get(), key_ca.get(), intermediate_.get()}), leaf_spki_);
  ASSERT_FALSE(chain.ok());
  EXPECT_EQ(chain.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(chain.error().message().find(
                "certificate 2 ('CN=Key As CA,O=Signet Test,C=GB') certifies this key too"),
            std::string::npos)
      << chain.error().message();
}

// The issuer name differs from the CA's subject only in case: equal for RFC 5280's comparison,
// not for verifiers that compare bytes (CSBR 7.1.4.1).
TEST_F(ChainTest, RefusesAnIssuerNameThatMatchesOnlyLoosely) {
  UniquePtr<X509> leaf =
      MakeCertificate(LeafSpec(LeafKey(), intermediate_.get(), IntermediateKey()));
  UniquePtr<X509_NAME> loose(X509_NAME_new());
  auto add = [&](const char* type, const std::string& value) {
    X509_NAME_add_entry_by_txt(loose.get(), type, MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(value.data()),
                               static_cast<int>(value.size()), -1, 0);
  };
  add("C", "GB");
  add("O", "signet test");
  add("CN", "SIGNET TEST CODE SIGNING CA");
  ASSERT_EQ(X509_NAME_cmp(loose.get(), X509_get_subject_name(intermediate_.get())), 0);
  X509_set_issuer_name(leaf.get(), loose.get());
  ASSERT_GT(X509_sign(leaf.get(), IntermediateKey(), EVP_sha256()), 0);
  auto chain = ParseChainForKey(Pem({leaf.get(), intermediate_.get()}), leaf_spki_);
  ASSERT_FALSE(chain.ok());
  EXPECT_NE(chain.error().message().find("only when compared loosely"), std::string::npos)
      << chain.error().message();
}

TEST_F(ChainTest, RefusesACriticalExtensionNobodyKnows) {
  UniquePtr<X509> leaf =
      MakeCertificate(LeafSpec(LeafKey(), intermediate_.get(), IntermediateKey()));
  UniquePtr<ASN1_OBJECT> oid(OBJ_txt2obj("1.3.6.1.4.1.55555.1", 1));
  UniquePtr<ASN1_STRING> value(ASN1_OCTET_STRING_new());
  const unsigned char null_der[] = {0x05, 0x00};
  ASSERT_EQ(ASN1_OCTET_STRING_set(value.get(), null_der, sizeof null_der), 1);
  UniquePtr<X509_EXTENSION> extension(
      X509_EXTENSION_create_by_OBJ(nullptr, oid.get(), /*crit=*/1, value.get()));
  ASSERT_NE(extension, nullptr);
  ASSERT_EQ(X509_add_ext(leaf.get(), extension.get(), -1), 1);
  ASSERT_GT(X509_sign(leaf.get(), IntermediateKey(), EVP_sha256()), 0);
  auto chain = ParseChainForKey(Pem({leaf.get(), intermediate_.get()}), leaf_spki_);
  ASSERT_FALSE(chain.ok());
  EXPECT_NE(chain.error().message().find("critical extension"), std::string::npos)
      << chain.error().message();
}

TEST_F(ChainTest, RefusesSha1AndMd5Signatures) {
  // ECDSA with SHA-1 from the EC intermediate; MD5 (RSA only) from an RSA-2048 one.
  UniquePtr<EVP_PKEY> rsa2048(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}));
  ASSERT_NE(rsa2048, nullptr);
  UniquePtr<X509> rsa_issuer =
      MakeCertificate(CaSpec("Signet Test RSA CA", rsa2048.get(), root_.get(), RootKey()));
  struct Case {
    const EVP_MD* digest;
    X509* issuer;
    EVP_PKEY* issuer_key;
  };
  for (const Case& c : {Case{EVP_sha1(), intermediate_.get(), IntermediateKey()},
                        Case{EVP_md5(), rsa_issuer.get(), rsa2048.get()}}) {
    CertificateSpec spec = LeafSpec(LeafKey(), c.issuer, c.issuer_key);
    spec.digest = c.digest;
    UniquePtr<X509> weak = MakeCertificate(spec);
    auto chain = ParseChainForKey(Pem({weak.get(), c.issuer}), leaf_spki_);
    EXPECT_TRUE(FailsWith(chain, ErrorCode::kInvalidArgument, "which is too weak"))
        << EVP_MD_get0_name(c.digest) << ": "
        << (chain.ok() ? std::string("accepted") : chain.error().message());
  }
  // The same chain signed with SHA-384 is fine.
  CertificateSpec strong = LeafSpec(LeafKey(), intermediate_.get(), IntermediateKey());
  strong.digest = EVP_sha384();
  UniquePtr<X509> leaf = MakeCertificate(strong);
  auto chain = ParseChainForKey(Pem({leaf.get(), intermediate_.get()}), leaf_spki_);
  EXPECT_TRUE(chain.ok()) << chain.error().message();
}

TEST_F(ChainTest, RefusesAnIssuerWithAWeakKey) {
  UniquePtr<EVP_PKEY> rsa1024(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{1024}));
  ASSERT_NE(rsa1024, nullptr);
  UniquePtr<X509> issuer =
      MakeCertificate(CaSpec("Signet Test Weak CA", rsa1024.get(), root_.get(), RootKey()));
  UniquePtr<X509> leaf = MakeCertificate(LeafSpec(LeafKey(), issuer.get(), rsa1024.get()));
  EXPECT_TRUE(FailsWith(ParseChainForKey(Pem({leaf.get(), issuer.get()}), leaf_spki_),
                        ErrorCode::kInvalidArgument, "80 bits of security"));
}

TEST_F(ChainTest, UtcTimeIsGivenWithAFourDigitYear) {
  auto chain = ParseChainForKey(Pem({leaf_.get(), intermediate_.get()}), leaf_spki_);
  ASSERT_TRUE(chain.ok()) << chain.error().message();
  EXPECT_EQ(chain->not_before_text, "20260101000000Z");  // encoded as UTCTime 260101000000Z
  EXPECT_EQ(chain->not_after_text, "20500101000000Z");
}

TEST_F(ChainTest, AcceptsTrailingSelfSignedRoot) {
  auto chain = ParseChainForKey(Pem({leaf_.get(), intermediate_.get(), root_.get()}), leaf_spki_);
  ASSERT_TRUE(chain.ok()) << chain.error().message();
  EXPECT_EQ(chain->certificates_der.size(), 3u);
  EXPECT_EQ(chain->certificates_der[2], CertificateDer(root_.get()));
}

TEST_F(ChainTest, RefusesACertificateListedTwice) {
  EXPECT_TRUE(
      FailsWith(ParseChainForKey(Pem({leaf_.get(), intermediate_.get(), root_.get(), root_.get()}),
                                 leaf_spki_),
                ErrorCode::kInvalidArgument, "certificate 4 repeats certificate 3"));
}

TEST_F(ChainTest, AcceptsLeafAlone) {
  auto chain = ParseChainForKey(Pem({leaf_.get()}), leaf_spki_);
  ASSERT_TRUE(chain.ok()) << chain.error().message();
  EXPECT_EQ(chain->certificates_der.size(), 1u);
}

TEST_F(ChainTest, NormalisesLineEndingsWidthAndSurroundingWhitespace) {
  // CRLF, 76-column base64 (as some Windows tools write), indentation and blank lines.
  std::string messy = "\r\n  \r\n";
  for (X509* certificate : {leaf_.get(), intermediate_.get()}) {
    const std::string base64 = Base64Encode(CertificateDer(certificate));
    messy += "-----BEGIN CERTIFICATE-----\r\n";
    for (size_t i = 0; i < base64.size(); i += 76) messy += "  " + base64.substr(i, 76) + " \r\n";
    messy += "-----END CERTIFICATE-----\r\n\r\n";
  }
  auto chain = ParseChainForKey(messy, leaf_spki_);
  ASSERT_TRUE(chain.ok()) << chain.error().message();
  EXPECT_EQ(chain->pem, Pem({leaf_.get(), intermediate_.get()}));
}

TEST_F(ChainTest, AcceptsTenCertificatesAndRefusesEleven) {
  // root -> 8 CAs -> leaf is 10 certificates; one more CA level makes 11.
  std::vector<UniquePtr<X509>> cas;
  cas.push_back(MakeCertificate(CaSpec("CA 0", TestKey("ca0"), nullptr, nullptr)));
  for (int i = 1; i <= 9; ++i) {
    const std::string name = "ca" + std::to_string(i);
    cas.push_back(MakeCertificate(CaSpec("CA " + std::to_string(i), TestKey(name), cas.back().get(),
                                         TestKey("ca" + std::to_string(i - 1)))));
  }
  auto build = [&](int top) {  // leaf issued by CA `top`, then CAs top..0
    UniquePtr<X509> leaf = MakeCertificate(LeafSpec(LeafKey(), cas[static_cast<size_t>(top)].get(),
                                                    TestKey("ca" + std::to_string(top))));
    std::string pem = CertificatePem(leaf.get());
    for (int i = top; i >= 0; --i) pem += CertificatePem(cas[static_cast<size_t>(i)].get());
    return pem;
  };
  auto ten = ParseChainForKey(build(8), leaf_spki_);
  ASSERT_TRUE(ten.ok()) << ten.error().message();
  EXPECT_EQ(ten->certificates_der.size(), 10u);
  EXPECT_TRUE(FailsWith(ParseChainForKey(build(9), leaf_spki_), ErrorCode::kInvalidArgument,
                        "more than 10 certificates"));
}

TEST_F(ChainTest, RefusesLeafForAnotherKey) {
  UniquePtr<X509> other =
      MakeCertificate(LeafSpec(TestKey("other leaf"), intermediate_.get(), IntermediateKey()));
  unsigned char digest[32];
  EVP_Digest(leaf_spki_.data(), leaf_spki_.size(), digest, nullptr, EVP_sha256(), nullptr);
  EXPECT_TRUE(FailsWith(ParseChainForKey(Pem({other.get(), intermediate_.get()}), leaf_spki_),
                        ErrorCode::kInvalidArgument,
                        "the certificate is not for key SPKI SHA-256 " +
                            HexEncode(ByteView(digest, sizeof(digest))) +
                            ": its public key differs"));
}

TEST_F(ChainTest, RefusesIntermediateWithSameNameButOtherKey) {
  // Same subject name as the real intermediate, issued by the same root, but another key.
  UniquePtr<X509> impostor = MakeCertificate(
      CaSpec("Signet Test Code Signing CA", TestKey("impostor"), root_.get(), RootKey()));
  EXPECT_TRUE(FailsWith(
      ParseChainForKey(Pem({leaf_.get(), impostor.get()}), leaf_spki_), ErrorCode::kInvalidArgument,
      "certificate 2 ('CN=Signet Test Code Signing CA,O=Signet Test,C=GB') did not issue "
      "certificate 1 ('CN=Example Code Signer,O=Exämple Ltd,C=GB'): the signature of certificate 1 "
      "does not verify with the public key of certificate 2"));
}

TEST_F(ChainTest, RefusesIntermediateBeforeLeaf) {
  EXPECT_TRUE(FailsWith(ParseChainForKey(Pem({intermediate_.get(), leaf_.get()}), leaf_spki_),
                        ErrorCode::kInvalidArgument,
                        "is not for this key, but certificate 2 is: list the leaf certificate "
                        "first"));
}

TEST_F(ChainTest, RefusesIssuersOutOfOrder) {
  EXPECT_TRUE(FailsWith(
      ParseChainForKey(Pem({leaf_.get(), root_.get(), intermediate_.get()}), leaf_spki_),
      ErrorCode::kInvalidArgument,
      "certificate 2 ('CN=Signet Test Root,O=Signet Test,C=GB') did not issue certificate 1 "
      "('CN=Example Code Signer,O=Exämple Ltd,C=GB'): the issuer of certificate 1 is "
      "'CN=Signet Test Code Signing CA"));
}

TEST_F(ChainTest, RefusesIssuerThatIsNotCa) {
  CertificateSpec not_ca =
      CaSpec("Signet Test Not A CA", TestKey("not ca"), root_.get(), RootKey());
  not_ca.basic_constraints = "critical,CA:FALSE";
  not_ca.key_usage = "critical,digitalSignature,keyCertSign";
  UniquePtr<X509> issuer = MakeCertificate(not_ca);
  UniquePtr<X509> leaf = MakeCertificate(LeafSpec(LeafKey(), issuer.get(), TestKey("not ca")));
  EXPECT_TRUE(FailsWith(ParseChainForKey(Pem({leaf.get(), issuer.get()}), leaf_spki_),
                        ErrorCode::kInvalidArgument,
                        "certificate 2 is not a CA certificate (its basicConstraints"));
}

TEST_F(ChainTest, RefusesIssuerWithoutBasicConstraints) {
  CertificateSpec bare = CaSpec("Signet Test Bare", TestKey("bare"), root_.get(), RootKey());
  bare.basic_constraints.clear();
  UniquePtr<X509> issuer = MakeCertificate(bare);
  UniquePtr<X509> leaf = MakeCertificate(LeafSpec(LeafKey(), issuer.get(), TestKey("bare")));
  EXPECT_TRUE(FailsWith(ParseChainForKey(Pem({leaf.get(), issuer.get()}), leaf_spki_),
                        ErrorCode::kInvalidArgument, "is not a CA certificate"));
}

TEST_F(ChainTest, RefusesIssuerWithoutKeyCertSign) {
  CertificateSpec spec =
      CaSpec("Signet Test No Cert Sign", TestKey("no cert sign"), root_.get(), RootKey());
  spec.key_usage = "critical,digitalSignature,cRLSign";
  UniquePtr<X509> issuer = MakeCertificate(spec);
  UniquePtr<X509> leaf =
      MakeCertificate(LeafSpec(LeafKey(), issuer.get(), TestKey("no cert sign")));
  EXPECT_TRUE(FailsWith(ParseChainForKey(Pem({leaf.get(), issuer.get()}), leaf_spki_),
                        ErrorCode::kInvalidArgument, "does not allow keyCertSign"));
}

TEST_F(ChainTest, RefusesChainLongerThanPathLengthAllows) {
  // The intermediate says pathlen:0, so it may not issue another CA.
  UniquePtr<X509> sub = MakeCertificate(
      CaSpec("Signet Test Sub CA", TestKey("sub"), intermediate_.get(), IntermediateKey()));
  UniquePtr<X509> leaf = MakeCertificate(LeafSpec(LeafKey(), sub.get(), TestKey("sub")));
  EXPECT_TRUE(FailsWith(
      ParseChainForKey(Pem({leaf.get(), sub.get(), intermediate_.get()}), leaf_spki_),
      ErrorCode::kInvalidArgument, "certificate 3 allows 0 intermediate CA certificate(s)"));
}

TEST_F(ChainTest, RefusesTextBetweenCertificates) {
  const std::string pem = CertificatePem(leaf_.get()) + "subject=CN=Signet Test Code Signing CA\n" +
                          CertificatePem(intermediate_.get());
  EXPECT_TRUE(FailsWith(ParseChainForKey(pem, leaf_spki_), ErrorCode::kInvalidArgument,
                        "unexpected text at line"));
  EXPECT_TRUE(FailsWith(ParseChainForKey(pem, leaf_spki_), ErrorCode::kInvalidArgument,
                        "after certificate 1"));
}

TEST_F(ChainTest, RefusesTextThatIsNotPem) {
  EXPECT_TRUE(FailsWith(ParseChainForKey("hello, this is not a certificate\n", leaf_spki_),
                        ErrorCode::kInvalidArgument, "not a PEM certificate chain: line 1"));
  const Bytes der = CertificateDer(leaf_.get());
  EXPECT_TRUE(FailsWith(
      ParseChainForKey(std::string_view(reinterpret_cast<const char*>(der.data()), der.size()),
                       leaf_spki_),
      ErrorCode::kInvalidArgument, "not a PEM certificate chain"));
}

TEST_F(ChainTest, RefusesEmptyText) {
  EXPECT_TRUE(FailsWith(ParseChainForKey("", leaf_spki_), ErrorCode::kInvalidArgument,
                        "no certificate found"));
  EXPECT_TRUE(FailsWith(ParseChainForKey(" \n\r\n\t\n", leaf_spki_), ErrorCode::kInvalidArgument,
                        "no certificate found"));
}

TEST_F(ChainTest, RefusesTruncatedBase64InSecondCertificate) {
  std::string second = CertificatePem(intermediate_.get());
  const size_t end = second.find("-----END");
  second.erase(end - 4, 3);  // drop 3 base64 characters of the last line
  EXPECT_TRUE(FailsWith(ParseChainForKey(CertificatePem(leaf_.get()) + second, leaf_spki_),
                        ErrorCode::kInvalidArgument, "certificate 2 is not valid base64"));
}

TEST_F(ChainTest, RefusesCertificateWithMissingLines) {
  std::string pem = CertificatePem(leaf_.get());
  const size_t second_line = pem.find('\n') + 1;
  pem.erase(second_line, 65);  // one whole 64-column line and its newline
  EXPECT_TRUE(FailsWith(ParseChainForKey(pem, leaf_spki_), ErrorCode::kInvalidArgument,
                        "certificate 1 is not a DER X.509 certificate"));
}

TEST_F(ChainTest, RefusesBlockWithoutEndLine) {
  std::string pem = CertificatePem(leaf_.get());
  pem.erase(pem.find("-----END"));
  EXPECT_TRUE(FailsWith(ParseChainForKey(pem, leaf_spki_), ErrorCode::kInvalidArgument,
                        "certificate 1 has no '-----END CERTIFICATE-----' line"));
  std::string two = CertificatePem(leaf_.get());
  two.erase(two.find("-----END"));
  two += CertificatePem(intermediate_.get());
  EXPECT_TRUE(FailsWith(ParseChainForKey(two, leaf_spki_), ErrorCode::kInvalidArgument,
                        "certificate 1 has no '-----END CERTIFICATE-----' line before line"));
}

TEST_F(ChainTest, RefusesOtherPemLabelWithoutEchoingIt) {
  const std::string key_body = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg";
  const std::string pem = CertificatePem(leaf_.get()) + "-----BEGIN PRIVATE KEY-----\n" + key_body +
                          "\n-----END PRIVATE KEY-----\n";
  auto result = ParseChainForKey(pem, leaf_spki_);
  EXPECT_TRUE(FailsWith(result, ErrorCode::kInvalidArgument, "PEM block 2 (line "));
  EXPECT_TRUE(
      FailsWith(result, ErrorCode::kInvalidArgument, "is a 'PRIVATE KEY', not a CERTIFICATE"));
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.error().message(), Not(HasSubstr(key_body)));
}

TEST_F(ChainTest, RefusesBytesAfterCertificateInsideBlock) {
  Bytes der = CertificateDer(leaf_.get());
  der.push_back(0x00);
  const std::string pem =
      "-----BEGIN CERTIFICATE-----\n" + Base64Encode(der) + "\n-----END CERTIFICATE-----\n";
  EXPECT_TRUE(FailsWith(ParseChainForKey(pem, leaf_spki_), ErrorCode::kInvalidArgument,
                        "certificate 1 has 1 bytes after the certificate"));
}

TEST_F(ChainTest, RefusesEmptyBlock) {
  EXPECT_TRUE(FailsWith(
      ParseChainForKey("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", leaf_spki_),
      ErrorCode::kInvalidArgument, "certificate 1 is empty"));
}

TEST_F(ChainTest, RefusesTextOverOneMebibyte) {
  std::string pem = Pem({leaf_.get(), intermediate_.get()});
  pem.append(kMaxChainPemSize + 1 - pem.size(), '\n');
  EXPECT_TRUE(FailsWith(ParseChainForKey(pem, leaf_spki_), ErrorCode::kInvalidArgument,
                        "the certificate chain is 1048577 bytes; at most 1048576"));
}

TEST_F(ChainTest, RefusesMalformedKey) {
  const Bytes not_spki = {0x04, 0x01, 0x00};
  EXPECT_TRUE(FailsWith(ParseChainForKey(Pem({leaf_.get()}), not_spki), ErrorCode::kInvalidArgument,
                        "is not a DER SubjectPublicKeyInfo"));
}

}  // namespace
}  // namespace signet::pki
