#include "hsm/pkcs11/internal/ckr.h"

#include <gtest/gtest.h>

namespace signet::hsm::internal {
namespace {

TEST(CkrTest, NamesCommonCodes) {
  EXPECT_EQ(CkrName(CKR_OK), "CKR_OK");
  EXPECT_EQ(CkrName(CKR_PIN_INCORRECT), "CKR_PIN_INCORRECT");
  EXPECT_EQ(CkrName(CKR_SESSION_HANDLE_INVALID), "CKR_SESSION_HANDLE_INVALID");
  EXPECT_EQ(CkrName(CKR_CRYPTOKI_ALREADY_INITIALIZED), "CKR_CRYPTOKI_ALREADY_INITIALIZED");
  EXPECT_EQ(CkrName(CKR_VENDOR_DEFINED | 7), "CKR_VENDOR_DEFINED");
  EXPECT_EQ(CkrName(0x7777), "CKR_UNKNOWN");
  EXPECT_EQ(DescribeRv(CKR_PIN_INCORRECT), "CKR_PIN_INCORRECT (0xa0)");
}

TEST(CkrTest, MapsCodesToErrorCodes) {
  EXPECT_EQ(ErrorCodeForRv(CKR_PIN_INCORRECT), ErrorCode::kUnauthenticated);
  EXPECT_EQ(ErrorCodeForRv(CKR_PIN_LOCKED), ErrorCode::kPermissionDenied);
  EXPECT_EQ(ErrorCodeForRv(CKR_DEVICE_REMOVED), ErrorCode::kUnavailable);
  EXPECT_EQ(ErrorCodeForRv(CKR_DATA_LEN_RANGE), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ErrorCodeForRv(CKR_GENERAL_ERROR), ErrorCode::kInternal);
}

TEST(CkrTest, RvErrorIsOneLineWithTheName) {
  Error error =
      RvError(CKR_PIN_INCORRECT, "C_Login", "token 'x' rejected the user PIN", "check the PIN");
  EXPECT_EQ(error.code(), ErrorCode::kUnauthenticated);
  EXPECT_EQ(error.message(),
            "token 'x' rejected the user PIN: C_Login returned CKR_PIN_INCORRECT (0xa0); "
            "check the PIN");
}

}  // namespace
}  // namespace signet::hsm::internal
