// Unit tests for the request-target and header helpers (internal/http_util.h).

#include "server/internal/http_util.h"

#include <gtest/gtest.h>

#include <string>

namespace signet::server::internal {
namespace {

TEST(ParseTargetTest, SplitsPathAndDecodesQuery) {
  auto parsed = ParseTarget("/csc/v2/info?lang=en%2DGB&q=a+b&flag&&x=%41=1");
  ASSERT_TRUE(parsed.ok()) << parsed.error().message();
  EXPECT_EQ(parsed->path, "/csc/v2/info");
  using Pairs = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(parsed->query, (Pairs{{"lang", "en-GB"}, {"q", "a b"}, {"flag", ""}, {"x", "A=1"}}));
}

TEST(ParseTargetTest, KeepsPathEncoded) {
  auto parsed = ParseTarget("/a%2Fb");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->path, "/a%2Fb");
  EXPECT_TRUE(parsed->query.empty());
}

TEST(ParseTargetTest, RefusesBadTargets) {
  for (std::string_view bad : {"", "a", "http://x/", "*", "/a b", "/a#f", "/a?x=%4", "/a?x=%zz",
                               "/a?x=%00", "/\x7f", "/\xc3\xa9"}) {
    EXPECT_FALSE(ParseTarget(bad).ok()) << bad;
  }
}

TEST(ParseTargetTest, LimitsQueryParameters) {
  std::string target = "/a?";
  for (size_t i = 0; i < kMaxQueryParams; ++i) target += "p=1&";
  EXPECT_TRUE(ParseTarget(target).ok());
  EXPECT_FALSE(ParseTarget(target + "q=2").ok());
}

TEST(PercentDecodeTest, PlusOnlyWhenAsked) {
  EXPECT_EQ(*PercentDecode("a+b%20c", true), "a b c");
  EXPECT_EQ(*PercentDecode("a+b%20c", false), "a+b c");
  EXPECT_FALSE(PercentDecode("%", true).ok());
  EXPECT_FALSE(PercentDecode("%a", true).ok());
}

TEST(HttpTextTest, TokensAndLineBreaks) {
  EXPECT_TRUE(IsHttpToken("X-Request-Id"));
  EXPECT_FALSE(IsHttpToken(""));
  EXPECT_FALSE(IsHttpToken("a b"));
  EXPECT_FALSE(IsHttpToken("a:b"));
  EXPECT_TRUE(HasLineBreakOrNul("a\r\nb"));
  EXPECT_TRUE(HasLineBreakOrNul(std::string_view("a\0b", 3)));
  EXPECT_FALSE(HasLineBreakOrNul("plain value"));
}

TEST(JsonEscapeTest, EscapesControlCharacters) {
  EXPECT_EQ(JsonEscape("a\"b\\c\x01"), "a\\\"b\\\\c\\u0001");
}

// Error descriptions echo request bytes (a query parameter's name, decoded from %XX), so the
// escape must yield valid JSON whatever the bytes: well-formed UTF-8 passes, the rest is U+FFFD.
TEST(JsonEscapeTest, KeepsUtf8AndReplacesEveryOtherByte) {
  EXPECT_EQ(JsonEscape("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"),
            "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
  // A lead byte without its tail (as two literals: "\xEEEE" would be one escape).
  EXPECT_EQ(JsonEscape(std::string("acti\xEE") + "EE"), "acti\\ufffdEE");
  EXPECT_EQ(JsonEscape("\xC0\xAF"), "\\ufffd\\ufffd");                        // overlong '/'
  EXPECT_EQ(JsonEscape("\xED\xA0\x80"), "\\ufffd\\ufffd\\ufffd");             // a surrogate
  EXPECT_EQ(JsonEscape("\xF4\x90\x80\x80"), "\\ufffd\\ufffd\\ufffd\\ufffd");  // > U+10FFFF
  EXPECT_EQ(JsonEscape("\x80"), "\\ufffd");             // a lone continuation byte
  EXPECT_EQ(JsonEscape("\xE2\x82"), "\\ufffd\\ufffd");  // cut short at the end
  // The edges of each range RFC 3629 allows pass unchanged...
  for (const char* edge : {"\xC2\x80", "\xDF\xBF", "\xE0\xA0\x80", "\xED\x9F\xBF", "\xEE\x80\x80",
                           "\xEF\xBF\xBF", "\xF0\x90\x80\x80", "\xF4\x8F\xBF\xBF"}) {
    EXPECT_EQ(JsonEscape(edge), edge) << edge;
  }
  // ... and one step outside them does not.
  EXPECT_EQ(JsonEscape("\xC1\xBF"), "\\ufffd\\ufffd");                        // overlong
  EXPECT_EQ(JsonEscape("\xE0\x9F\xBF"), "\\ufffd\\ufffd\\ufffd");             // overlong
  EXPECT_EQ(JsonEscape("\xF0\x8F\xBF\xBF"), "\\ufffd\\ufffd\\ufffd\\ufffd");  // overlong
  EXPECT_EQ(JsonEscape("\xF5\x80\x80\x80"), "\\ufffd\\ufffd\\ufffd\\ufffd");  // no such lead byte
  EXPECT_EQ(JsonEscape("\xE2\x82\x41"), "\\ufffd\\ufffdA");                   // a bad third byte
  EXPECT_EQ(JsonEscape("\xF0\x9F\x98"), "\\ufffd\\ufffd\\ufffd");             // cut short
}

}  // namespace
}  // namespace signet::server::internal
