#include "common/bytes.h"

#include <gtest/gtest.h>

namespace signet {
namespace {

TEST(SecretBytesTest, MoveLeavesSourceEmpty) {
  SecretBytes a(std::string_view("1234"));
  SecretBytes b = std::move(a);
  EXPECT_EQ(b.text_view(), "1234");
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): checking the moved-from state.
}

TEST(SecretBytesTest, EqualsComparesContent) {
  SecretBytes a(std::string_view("secret"));
  SecretBytes b(std::string_view("secret"));
  SecretBytes c(std::string_view("secreT"));
  SecretBytes d(std::string_view("secret2"));
  EXPECT_TRUE(a.Equals(b));
  EXPECT_FALSE(a.Equals(c));
  EXPECT_FALSE(a.Equals(d));
}

TEST(SecretBytesTest, CloneIsIndependent) {
  SecretBytes a(std::string_view("pin"));
  SecretBytes b = a.Clone();
  a = SecretBytes(std::string_view("other"));
  EXPECT_EQ(b.text_view(), "pin");
}

TEST(SecureWipeTest, ZeroesMemory) {
  uint8_t buf[16];
  for (auto& b : buf) b = 0xAB;
  SecureWipe(buf, sizeof buf);
  for (auto b : buf) EXPECT_EQ(b, 0);
}

TEST(ConstantTimeEqualsTest, LengthMismatchIsUnequal) {
  EXPECT_FALSE(ConstantTimeEquals(AsBytes("ab"), AsBytes("abc")));
  EXPECT_TRUE(ConstantTimeEquals(AsBytes(""), AsBytes("")));
}

}  // namespace
}  // namespace signet
