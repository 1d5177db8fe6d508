#include "common/encoding.h"

#include <gtest/gtest.h>

namespace signet {
namespace {

// RFC 4648 §10 test vectors.
struct Vector {
  const char* plain;
  const char* b64;
};
constexpr Vector kRfc4648[] = {{"", ""},           {"f", "Zg=="},         {"fo", "Zm8="},
                               {"foo", "Zm9v"},    {"foob", "Zm9vYg=="},  {"fooba", "Zm9vYmE="},
                               {"foobar", "Zm9vYmFy"}};

TEST(Base64Test, Rfc4648Vectors) {
  for (const auto& v : kRfc4648) {
    EXPECT_EQ(Base64Encode(AsBytes(v.plain)), v.b64);
    auto d = Base64Decode(v.b64);
    ASSERT_TRUE(d.ok()) << v.b64;
    EXPECT_EQ(ToString(*d), v.plain);
  }
}

TEST(Base64Test, RejectsBadInput) {
  EXPECT_FALSE(Base64Decode("Zg=").ok());      // wrong length
  EXPECT_FALSE(Base64Decode("Z!==").ok());     // bad character
  EXPECT_FALSE(Base64Decode("Zh==").ok());     // non-zero trailing bits
  EXPECT_FALSE(Base64Decode("Zg==Zg==").ok()); // padding in the middle
  EXPECT_FALSE(Base64Decode("Z===").ok());
}

TEST(Base64UrlTest, RoundTripWithoutPadding) {
  Bytes data = {0xfb, 0xff, 0xfe, 0x00, 0x10};
  std::string enc = Base64UrlEncode(data);
  EXPECT_EQ(enc, "-__-ABA");
  auto dec = Base64UrlDecode(enc);
  ASSERT_TRUE(dec.ok());
  EXPECT_EQ(*dec, data);
  EXPECT_TRUE(Base64UrlDecode("-__-ABA=").ok());
  EXPECT_FALSE(Base64UrlDecode("+//+ABA").ok());
}

TEST(HexTest, RoundTripAndErrors) {
  Bytes data = {0x00, 0x01, 0xab, 0xff};
  EXPECT_EQ(HexEncode(data), "0001abff");
  EXPECT_EQ(*HexDecode("0001ABff"), data);
  EXPECT_FALSE(HexDecode("abc").ok());
  auto bad = HexDecode("0g");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("offset 1"), std::string::npos);
}

}  // namespace
}  // namespace signet
