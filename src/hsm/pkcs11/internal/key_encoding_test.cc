#include "hsm/pkcs11/internal/key_encoding.h"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>

#include "common/encoding.h"

namespace signet::hsm::internal {
namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

Bytes Hex(std::string_view text) { return HexDecode(text).value(); }

Pkey Parse(ByteView spki) {
  const unsigned char* p = spki.data();
  Pkey key(d2i_PUBKEY(nullptr, &p, static_cast<long>(spki.size())));
  EXPECT_EQ(p, spki.data() + spki.size());
  return key;
}

// A P-256 point (the generator) and the Ed25519 public key of RFC 8032 §7.1 test 1.
const char kP256Point[] =
    "046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"
    "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5";
const char kEd25519Key[] = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

TEST(KeyEncodingTest, RsaSpkiParsesWithOpenSsl) {
  Bytes modulus(384, 0xc5);  // Any odd 3072-bit number will do for encoding.
  Bytes exponent = {0x01, 0x00, 0x01};
  Result<Bytes> spki = RsaSpki(modulus, exponent);
  ASSERT_TRUE(spki.ok());
  Pkey key = Parse(*spki);
  ASSERT_TRUE(key);
  EXPECT_TRUE(EVP_PKEY_is_a(key.get(), "RSA"));
  EXPECT_EQ(EVP_PKEY_get_bits(key.get()), 3072);
  BIGNUM* e = nullptr;
  ASSERT_EQ(EVP_PKEY_get_bn_param(key.get(), OSSL_PKEY_PARAM_RSA_E, &e), 1);
  EXPECT_EQ(BN_get_word(e), 65537u);
  BN_free(e);
}

TEST(KeyEncodingTest, RsaSpkiRejectsEmptyModulus) {
  EXPECT_EQ(RsaSpki({}, Bytes{1, 0, 1}).error().code(), ErrorCode::kInvalidArgument);
}

TEST(KeyEncodingTest, EcSpkiAcceptsWrappedAndBarePoint) {
  Bytes bare = Hex(kP256Point);
  Bytes wrapped = Hex(std::string("0441") + kP256Point);
  Result<Bytes> from_bare = EcSpki(KeyAlgorithm::kEcP256, bare);
  Result<Bytes> from_wrapped = EcSpki(KeyAlgorithm::kEcP256, wrapped);
  ASSERT_TRUE(from_bare.ok());
  ASSERT_TRUE(from_wrapped.ok());
  EXPECT_EQ(*from_bare, *from_wrapped);
  Pkey key = Parse(*from_bare);
  ASSERT_TRUE(key);
  char group[32] = {};
  size_t size = 0;
  EVP_PKEY_get_utf8_string_param(key.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &size);
  EXPECT_EQ(std::string(group, size), "prime256v1");
}

TEST(KeyEncodingTest, EcSpkiRejectsWrongSizeAndCompressedPoints) {
  Bytes point = Hex(kP256Point);
  EXPECT_EQ(EcSpki(KeyAlgorithm::kEcP384, point).error().code(), ErrorCode::kInvalidArgument);
  point[0] = 0x02;  // Compressed form marker on an uncompressed-length point.
  EXPECT_EQ(EcSpki(KeyAlgorithm::kEcP256, point).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_FALSE(EcSpki(KeyAlgorithm::kRsa3072, point).ok());
}

TEST(KeyEncodingTest, Ed25519SpkiMatchesRfc8410) {
  Result<Bytes> spki = EcSpki(KeyAlgorithm::kEd25519, Hex(std::string("0420") + kEd25519Key));
  ASSERT_TRUE(spki.ok());
  // RFC 8410 §10.1 layout: SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING }.
  EXPECT_EQ(HexEncode(*spki), std::string("302a300506032b6570032100") + kEd25519Key);
  Pkey key = Parse(*spki);
  ASSERT_TRUE(key);
  EXPECT_TRUE(EVP_PKEY_is_a(key.get(), "ED25519"));
}

TEST(KeyEncodingTest, EcParamsRoundTrip) {
  for (KeyAlgorithm a : {KeyAlgorithm::kEcP256, KeyAlgorithm::kEcP384}) {
    EXPECT_EQ(AlgorithmFromEcParams(EcParams(a), false), a);
    EXPECT_EQ(AlgorithmFromEcParams(EcParams(a), true), std::nullopt);
  }
  EXPECT_EQ(AlgorithmFromEcParams(EcParams(KeyAlgorithm::kEd25519), true), KeyAlgorithm::kEd25519);
  EXPECT_EQ(AlgorithmFromEcParams(ToBytes("\x13\x0c"
                                          "edwards25519"),
                                  true),
            KeyAlgorithm::kEd25519);
  EXPECT_EQ(HexEncode(EcParams(KeyAlgorithm::kEcP256)), "06082a8648ce3d030107");
  EXPECT_EQ(HexEncode(EcParams(KeyAlgorithm::kEcP384)), "06052b81040022");
  EXPECT_TRUE(EcParams(KeyAlgorithm::kRsa3072).empty());
}

TEST(KeyEncodingTest, RsaAlgorithmFromModulusSize) {
  EXPECT_EQ(RsaAlgorithmFromModulus(Bytes(384, 0xff)), KeyAlgorithm::kRsa3072);
  Bytes padded(513, 0xff);
  padded[0] = 0;
  EXPECT_EQ(RsaAlgorithmFromModulus(padded), KeyAlgorithm::kRsa4096);
  EXPECT_EQ(RsaAlgorithmFromModulus(Bytes(256, 0xff)), std::nullopt);
}

TEST(KeyEncodingTest, DigestInfoPrefixesMatchRfc8017) {
  EXPECT_EQ(HexEncode(DigestInfoPrefix(HashAlgorithm::kSha256)),
            "3031300d060960864801650304020105000420");
  EXPECT_EQ(HexEncode(DigestInfoPrefix(HashAlgorithm::kSha384)),
            "3041300d060960864801650304020205000430");
  EXPECT_EQ(HexEncode(DigestInfoPrefix(HashAlgorithm::kSha512)),
            "3051300d060960864801650304020305000440");
}

TEST(KeyEncodingTest, MaxSignatureSizes) {
  EXPECT_EQ(MaxSignatureSize(KeyAlgorithm::kRsa3072), 384u);
  EXPECT_EQ(MaxSignatureSize(KeyAlgorithm::kRsa4096), 512u);
  EXPECT_EQ(MaxSignatureSize(KeyAlgorithm::kEcP256), 64u);
  EXPECT_EQ(MaxSignatureSize(KeyAlgorithm::kEcP384), 96u);
  EXPECT_EQ(MaxSignatureSize(KeyAlgorithm::kEd25519), 64u);
}

}  // namespace
}  // namespace signet::hsm::internal
