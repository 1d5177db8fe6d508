#include "common/result.h"

#include <gtest/gtest.h>

#include <memory>

namespace signet {
namespace {

Result<int> Half(int x) {
  if (x % 2 != 0) return InvalidArgument("odd");
  return x / 2;
}

Result<int> Quarter(int x) {
  SIGNET_ASSIGN_OR_RETURN(int h, Half(x));
  return Half(h);
}

Status CheckPositive(int x) {
  if (x <= 0) return FailedPrecondition("not positive");
  return OkStatus();
}

Status Chain(int x) {
  SIGNET_TRY(CheckPositive(x));
  SIGNET_TRY(Half(x));
  return OkStatus();
}

TEST(ResultTest, HoldsValue) {
  Result<int> r = Half(8);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 4);
}

TEST(ResultTest, HoldsError) {
  Result<int> r = Half(3);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(r.error().message(), "odd");
}

TEST(ResultTest, AssignOrReturnPropagatesError) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_FALSE(Quarter(6).ok());
  EXPECT_EQ(Quarter(6).error().message(), "odd");
}

TEST(ResultTest, TryPropagatesStatusAndResult) {
  EXPECT_TRUE(Chain(4).ok());
  EXPECT_EQ(Chain(-2).error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(Chain(3).error().code(), ErrorCode::kInvalidArgument);
}

TEST(ResultTest, MoveOnlyValues) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(5);
  ASSERT_TRUE(r.ok());
  std::unique_ptr<int> p = std::move(r).value();
  EXPECT_EQ(*p, 5);
}

TEST(ResultTest, WithContextPrefixesMessage) {
  Error e = NotFound("no key").WithContext("sign");
  EXPECT_EQ(e.message(), "sign: no key");
  EXPECT_EQ(e.code(), ErrorCode::kNotFound);
}

TEST(ResultTest, CodeNamesAreStable) {
  EXPECT_EQ(ErrorCodeName(ErrorCode::kDataLoss), "data_loss");
  EXPECT_EQ(ErrorCodeName(ErrorCode::kInvalidArgument), "invalid_argument");
}

TEST(ResultDeathTest, ValueOfErrorAborts) {
  Result<int> r = Half(3);
  EXPECT_DEATH((void)r.value(), "");
}

}  // namespace
}  // namespace signet
