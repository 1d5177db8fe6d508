#include "common/der.h"

#include <gtest/gtest.h>

#include "common/encoding.h"

namespace signet::der {
namespace {

TEST(DerTest, UnsignedIntegerAddsSignByteAndStripsZeros) {
  EXPECT_EQ(HexEncode(UnsignedInteger(Bytes{0x00, 0x00, 0x7f})), "02017f");
  EXPECT_EQ(HexEncode(UnsignedInteger(Bytes{0x80})), "02020080");
  EXPECT_EQ(HexEncode(UnsignedInteger(Bytes{0x00})), "020100");
}

TEST(DerTest, LongFormLength) {
  Bytes big(300, 0x11);
  Bytes tlv = OctetString(big);
  ASSERT_EQ(tlv.size(), 304u);
  EXPECT_EQ(tlv[1], 0x82);
  EXPECT_EQ(tlv[2], 0x01);
  EXPECT_EQ(tlv[3], 0x2c);
  auto back = ParseOctetString(tlv);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, big);
}

TEST(DerTest, ParseOctetStringRejectsTrailingData) {
  EXPECT_FALSE(ParseOctetString(Bytes{0x04, 0x01, 0xaa, 0xbb}).ok());
  EXPECT_FALSE(ParseOctetString(Bytes{0x04, 0x05, 0xaa}).ok());
  EXPECT_FALSE(ParseOctetString(Bytes{0x03, 0x01, 0xaa}).ok());
  EXPECT_FALSE(ParseOctetString(Bytes{0x04, 0x81, 0x01, 0xaa}).ok());  // non-minimal
  // A leading zero octet in a long-form length (found by common_encoding_fuzz): 0x82 0x00 0x8f
  // says 143, which DER writes 0x81 0x8f.
  Bytes padded = {0x04, 0x82, 0x00, 0x8f};
  padded.resize(4 + 0x8f, 0x11);
  EXPECT_FALSE(ParseOctetString(padded).ok());
  Bytes minimal = {0x04, 0x81, 0x8f};
  minimal.resize(3 + 0x8f, 0x11);
  EXPECT_TRUE(ParseOctetString(minimal).ok());
}

TEST(DerTest, EcdsaRawToDer) {
  Bytes raw(64, 0);
  raw[31] = 0x01;   // r = 1
  raw[32] = 0x80;   // s has its top bit set
  auto der = EcdsaRawToDer(raw);
  ASSERT_TRUE(der.ok());
  EXPECT_EQ((*der)[0], 0x30);
  EXPECT_EQ(HexEncode(ByteView(*der).first(5)), "3026020101");
  EXPECT_FALSE(EcdsaRawToDer(Bytes(63, 1)).ok());
}

}  // namespace
}  // namespace signet::der
