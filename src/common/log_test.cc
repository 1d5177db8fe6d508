#include "common/log.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace signet {
namespace {

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    previous_ = SetLogSink([this](std::string_view line) { lines_.emplace_back(line); });
  }
  void TearDown() override { SetLogSink(std::move(previous_)); }

  std::vector<std::string> lines_;
  LogSink previous_;
};

TEST_F(LogTest, ALineNamesTheTimeLevelAndComponent) {
  LogLine(LogLevel::kError, "server", "request 42: unavailable: the HSM is gone");
  LogLine(LogLevel::kWarning, "healthz", "database: locked");
  ASSERT_EQ(lines_.size(), 2u);
  // "2026-11-24T05:30:00Z " is 21 characters.
  ASSERT_GT(lines_[0].size(), 21u);
  EXPECT_EQ(lines_[0][4], '-');
  EXPECT_EQ(lines_[0][20], ' ');
  EXPECT_EQ(lines_[0].substr(21),
            "signet error: server: request 42: unavailable: the HSM is gone\n");
  EXPECT_EQ(lines_[1].substr(21), "signet warning: healthz: database: locked\n");
}

TEST_F(LogTest, AMessageCannotForgeASecondLine) {
  LogLine(LogLevel::kError, "server",
          "bad\n2026-11-24T05:30:00Z signet error: server: \x1b[2Kforged\r");
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_EQ(lines_[0].find('\n'), lines_[0].size() - 1);
  EXPECT_NE(lines_[0].find("bad\\x0a2026"), std::string::npos) << lines_[0];
  EXPECT_NE(lines_[0].find("\\x1b[2Kforged\\x0d"), std::string::npos) << lines_[0];
}

// Text that spells an escape is not read as one: a backslash in a message is doubled.
TEST_F(LogTest, TextSpellingAnEscapeIsNotReadAsOne) {
  LogLine(LogLevel::kError, "server", "bad\\x0a2026 forged, C:\\temp");
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_NE(lines_[0].find("bad\\\\x0a2026 forged, C:\\\\temp\n"), std::string::npos) << lines_[0];
}

TEST_F(LogTest, ALongMessageIsCut) {
  LogLine(LogLevel::kError, "server", std::string(10000, 'x'));
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_LT(lines_[0].size(), 4200u);
  EXPECT_NE(lines_[0].find("(10000 bytes in all)"), std::string::npos);
}

}  // namespace
}  // namespace signet
