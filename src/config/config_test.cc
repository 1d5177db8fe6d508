#include "config/config.h"

#include <gtest/gtest.h>

namespace signet::config {
namespace {

TEST(ConfigTest, EmbeddedDefaultParsesAndResolvesPaths) {
  auto c = ParseConfig(EmbeddedDefaultConfigText(), "signet.toml", "/srv/signet");
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->hsm.module_path, kSoftHsmModulePath);
  EXPECT_EQ(c->hsm.token_label, "signet");
  EXPECT_EQ(c->hsm.pin_file, "/srv/signet/user.pin");
  EXPECT_EQ(c->hsm.softhsm_conf, "/srv/signet/softhsm2.conf");
  EXPECT_EQ(c->store.sqlite_path, "/srv/signet/signet.db");
}

TEST(ConfigTest, EmbeddedDefaultNamesTheModuleUsed) {
  auto c = ParseConfig(EmbeddedDefaultConfigText("/opt/hsm/libvendor.so"), "signet.toml", "/d");
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->hsm.module_path, "/opt/hsm/libvendor.so");
}

TEST(ConfigTest, AbsolutePathsStay) {
  auto c = ParseConfig(
      "[hsm]\nmodule='/m.so'\ntoken_serial='abc'\npin_file='/etc/pin'\n[store]\nsqlite_path='/x.db'\n",
      "f", "/d");
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->hsm.pin_file, "/etc/pin");
  EXPECT_EQ(c->store.sqlite_path, "/x.db");
  EXPECT_EQ(c->hsm.token_serial, "abc");
}

TEST(ConfigTest, UnknownKeyIsNamed) {
  auto c = ParseConfig("[hsm]\nmodule='/m.so'\ntoken_label='t'\nmodul='x'\n", "f.toml", "/d");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(c.error().message().find("hsm.modul"), std::string::npos) << c.error().message();
}

TEST(ConfigTest, UnknownSectionIsRefused) {
  auto c = ParseConfig("[hsm]\nmodule='/m.so'\ntoken_label='t'\n[stor]\n", "f.toml", "/d");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("stor"), std::string::npos);
}

TEST(ConfigTest, WrongTypeIsRefused) {
  auto c = ParseConfig("[hsm]\nmodule=3\ntoken_label='t'\n", "f.toml", "/d");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("must be a string"), std::string::npos);
}

TEST(ConfigTest, SyntaxErrorHasLineNumber) {
  auto c = ParseConfig("[hsm\nmodule='x'\n", "f.toml", "/d");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("f.toml:1"), std::string::npos) << c.error().message();
}

TEST(ConfigTest, LabelAndSerialAreExclusive) {
  EXPECT_FALSE(ParseConfig("[hsm]\nmodule='/m'\n", "f", "/d").ok());
  EXPECT_FALSE(ParseConfig("[hsm]\nmodule='/m'\ntoken_label='a'\ntoken_serial='b'\n", "f", "/d").ok());
}

TEST(ConfigTest, MissingFileSaysRunInit) {
  auto c = LoadDataDirConfig("/nonexistent-signet-dir");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(c.error().message().find("signet init"), std::string::npos);
}

}  // namespace
}  // namespace signet::config
