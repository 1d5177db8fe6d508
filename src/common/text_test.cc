#include "common/text.h"

#include <gtest/gtest.h>

#include <string>

namespace signet {
namespace {

TEST(JsonNestsDeeperThanTest, CountsObjectsAndArraysOutsideStrings) {
  EXPECT_FALSE(JsonNestsDeeperThan("", 0));
  EXPECT_FALSE(JsonNestsDeeperThan("1", 0));
  EXPECT_TRUE(JsonNestsDeeperThan("{}", 0));
  EXPECT_FALSE(JsonNestsDeeperThan(R"({"a":[1,{"b":[]}]})", 4));
  EXPECT_TRUE(JsonNestsDeeperThan(R"({"a":[1,{"b":[]}]})", 3));
  EXPECT_FALSE(JsonNestsDeeperThan(R"([[]],[[]],[[]])", 2));  // siblings do not add up
  // Brackets inside strings, escaped quotes included, are text.
  EXPECT_FALSE(JsonNestsDeeperThan(R"({"a":"[[[[{{{{"})", 1));
  EXPECT_FALSE(JsonNestsDeeperThan(R"({"a":"\"[[[[","b":"\\"})", 1));
  EXPECT_TRUE(JsonNestsDeeperThan(R"({"a":"\\",  "b":[[]]})", 2));
  // The default bound, and a document far deeper than any stack would survive copying.
  EXPECT_FALSE(
      JsonNestsDeeperThan(std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']')));
  EXPECT_TRUE(JsonNestsDeeperThan(std::string(kMaxJsonDepth + 1, '[')));
  EXPECT_TRUE(JsonNestsDeeperThan("{\"p\":" + std::string(200000, '[')));
}

TEST(TerminalSafeTest, EscapesControlCharactersAndKeepsTheRest) {
  EXPECT_EQ(TerminalSafe("plain text, é and 日本"), "plain text, é and 日本");
  EXPECT_EQ(TerminalSafe("two\nlines"), "two\nlines");
  EXPECT_EQ(TerminalSafe("\x1b]0;PWNED\x07\x1b[2K\rfake prompt"),
            "\\x1b]0;PWNED\\x07\\x1b[2K\\x0dfake prompt");
  EXPECT_EQ(TerminalSafe(std::string("a\0b\tc\x7f", 6)), "a\\x00b\\x09c\\x7f");
  // C1 controls in UTF-8 (U+009B is CSI on terminals that honour 8-bit controls); U+00A0 is not.
  EXPECT_EQ(TerminalSafe("\xc2\x9b"
                         "31m \xc2\x85 \xc2\xa0"),
            "\\u009b31m \\u0085 \xc2\xa0");
  // Invalid UTF-8 is passed through: it cannot form a control sequence on its own.
  EXPECT_EQ(TerminalSafe("\xff\xc2"), "\xff\xc2");
}

TEST(OneLineSafeTest, EscapesTheNewlineToo) {
  EXPECT_EQ(OneLineSafe("two\nlines\r\x1b[2K"), "two\\x0alines\\x0d\\x1b[2K");
  EXPECT_EQ(OneLineSafe("\xc2\x85 next"), "\\u0085 next");
  EXPECT_EQ(OneLineSafe("plain, é"), "plain, é");
  EXPECT_EQ(OneLineSafe(std::string(10, 'a'), 4), "aaaa... (10 bytes in all)");
  EXPECT_EQ(OneLineSafe("a\nb\\c"), "a\\x0ab\\c");  // a backslash is data here (a label)
}

TEST(TerminalSafeTest, EscapesLineSeparatorsAndBidiControls) {
  EXPECT_EQ(TerminalSafe("a\xe2\x80\xa8"
                         "b\xe2\x80\xa9"
                         "c"),
            "a\\u2028b\\u2029c");
  // "txt.exe" shown as "exe.txt" by a right-to-left override, and its kin.
  EXPECT_EQ(TerminalSafe("\xe2\x80\xae"
                         "exe.txt"),
            "\\u202eexe.txt");
  EXPECT_EQ(TerminalSafe("\xe2\x81\xa6x\xe2\x81\xa9\xe2\x80\x8f\xd8\x9c"),
            "\\u2066x\\u2069\\u200f\\u061c");
  EXPECT_EQ(OneLineSafe("\xe2\x80\xa8"), "\\u2028");
  // Neighbours that are ordinary text stay: U+2027, U+202F, U+2070, "—" (U+2014), a cut sequence.
  EXPECT_EQ(TerminalSafe("\xe2\x80\xa7\xe2\x80\xaf\xe2\x81\xb0\xe2\x80\x94"),
            "\xe2\x80\xa7\xe2\x80\xaf\xe2\x81\xb0\xe2\x80\x94");
  EXPECT_EQ(TerminalSafe("\xe2\x80"), "\xe2\x80");
  EXPECT_EQ(TerminalSafe("a\\b"), "a\\b");  // many lines: a backslash is only itself
}

TEST(Utf8CutPointTest, NeverSplitsASequence) {
  EXPECT_EQ(Utf8CutPoint("abc", 5), 3u);
  EXPECT_EQ(Utf8CutPoint("abcé", 4), 3u);  // "é" is 0xc3 0xa9
  EXPECT_EQ(Utf8CutPoint("abcé", 5), 5u);
  EXPECT_EQ(Utf8CutPoint("日本", 4), 3u);  // three bytes each
  EXPECT_EQ(Utf8CutPoint("日本", 2), 0u);
  // Not UTF-8: a run of continuation bytes longer than a sequence is cut where it stands, not
  // backed up over.
  EXPECT_EQ(Utf8CutPoint(std::string(10, '\x80'), 5), 5u);
  EXPECT_EQ(Utf8CutPoint("ab" + std::string(10, '\x80'), 6), 6u);
  EXPECT_EQ(Utf8CutPoint("\xf0\x9f\x98\x80z", 3), 0u);  // a 4-byte sequence cut after 3
  EXPECT_EQ(TerminalSafe(std::string(5000, '\x80'), 4096).size(),
            4096 + std::string("... (5000 bytes in all)").size());
}

TEST(TerminalSafeTest, CutsLongTextOutsideAUtf8Sequence) {
  EXPECT_EQ(TerminalSafe("abcdef", 4), "abcd... (6 bytes in all)");
  EXPECT_EQ(TerminalSafe("abcdef", 6), "abcdef");
  // "é" is two bytes; a cut after its first byte backs up before it.
  EXPECT_EQ(TerminalSafe("abcé", 4), "abc... (5 bytes in all)");
  const std::string huge(10 << 20, 'x');
  EXPECT_EQ(TerminalSafe(huge).size(), 4096 + std::string("... (10485760 bytes in all)").size());
}

TEST(AsciiLowerTest, LowersOnlyAsciiLetters) {
  EXPECT_EQ(AsciiLower("AbC-09_Z"), "abc-09_z");
  EXPECT_EQ(AsciiLower("\xc3\x84X\x9bY"), "\xc3\x84x\x9by");  // other bytes kept, no locale
  EXPECT_EQ(AsciiLower(""), "");
}

}  // namespace
}  // namespace signet
