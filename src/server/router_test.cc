// Unit tests for Router, HttpStatusFor and JsonErrorResponse (server.h).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "server/server.h"

namespace signet::server {
namespace {

Handler Returns(std::string body) {
  return [body](const Request&) {
    Response r;
    r.body = body;
    return r;
  };
}

TEST(RouterTest, MatchesExactMethodAndPath) {
  Router router;
  ASSERT_TRUE(router.Add("GET", "/a", Returns("a")).ok());
  ASSERT_TRUE(router.Add("POST", "/a", Returns("post a")).ok());
  Router::Match match = router.Find("POST", "/a");
  ASSERT_NE(match.route, nullptr);
  EXPECT_EQ(match.route->handler(Request{}).body, "post a");
  EXPECT_EQ(router.Find("GET", "/a/").route, nullptr);
  EXPECT_TRUE(router.Find("GET", "/a/").allowed.empty());
}

TEST(RouterTest, ReportsAllowedMethodsForKnownPath) {
  Router router;
  ASSERT_TRUE(router.Add("POST", "/x", Returns("")).ok());
  ASSERT_TRUE(router.Add("GET", "/x", Returns("")).ok());
  Router::Match match = router.Find("DELETE", "/x");
  EXPECT_EQ(match.route, nullptr);
  EXPECT_EQ(match.allowed, (std::vector<std::string>{"GET", "POST"}));
}

TEST(RouterTest, PrefixRoutesLoseToExactAndLongerPrefixes) {
  Router router;
  ASSERT_TRUE(router.Add("GET", "/log/*", Returns("log")).ok());
  ASSERT_TRUE(router.Add("GET", "/log/tile/*", Returns("tile")).ok());
  ASSERT_TRUE(router.Add("GET", "/log/checkpoint", Returns("checkpoint")).ok());
  EXPECT_EQ(router.Find("GET", "/log/tile/0/x001").route->pattern, "/log/tile/*");
  EXPECT_EQ(router.Find("GET", "/log/checkpoint").route->pattern, "/log/checkpoint");
  EXPECT_EQ(router.Find("GET", "/log/other").route->pattern, "/log/*");
  EXPECT_EQ(router.Find("GET", "/logx").route, nullptr);
}

TEST(RouterTest, RefusesBadRoutes) {
  Router router;
  EXPECT_FALSE(router.Add("G ET", "/a", Returns("")).ok());
  EXPECT_FALSE(router.Add("GET", "a", Returns("")).ok());
  EXPECT_FALSE(router.Add("GET", "/a", nullptr).ok());
  ASSERT_TRUE(router.Add("GET", "/a", Returns("")).ok());
  EXPECT_EQ(router.Add("GET", "/a", Returns("")).error().code(), ErrorCode::kInvalidArgument);
}

TEST(HttpStatusTest, MapsEveryErrorCode) {
  EXPECT_EQ(HttpStatusFor(ErrorCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kNotFound), 404);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kAlreadyExists), 409);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kPermissionDenied), 403);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kUnauthenticated), 401);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kFailedPrecondition), 400);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kResourceExhausted), 429);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kUnavailable), 503);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kDataLoss), 500);
  EXPECT_EQ(HttpStatusFor(ErrorCode::kInternal), 500);
}

TEST(JsonErrorResponseTest, EscapesStrings) {
  Response r = JsonErrorResponse(400, "invalid_request", "bad \"x\"\n");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(r.body, R"({"error":"invalid_request","error_description":"bad \"x\"\n"})");
}

TEST(RequestTest, HeaderLookupIgnoresCase) {
  Request r;
  r.headers = {{"content-type", "application/json"}, {"x-a", "1"}, {"x-a", "2"}};
  r.query = {{"Lang", "en"}};
  EXPECT_EQ(r.Header("Content-Type"), "application/json");
  EXPECT_EQ(r.Header("X-A"), "1");
  EXPECT_FALSE(r.Header("missing").has_value());
  EXPECT_EQ(r.QueryParam("Lang"), "en");
  EXPECT_FALSE(r.QueryParam("lang").has_value());
}

}  // namespace
}  // namespace signet::server
