// Names and error codes for PKCS#11 return values (PKCS#11 v2.40 §5.1, "Function return values").
// Pure functions, thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"
#include "hsm/pkcs11/internal/cryptoki.h"

namespace signet::hsm::internal {

// "CKR_PIN_INCORRECT" for the codes PKCS#11 v2.40 defines; "CKR_VENDOR_DEFINED" for vendor codes
// and "CKR_UNKNOWN" for anything else.
std::string_view CkrName(CK_RV rv);

// "CKR_PIN_INCORRECT (0xa0)": the name and the number, for messages.
std::string DescribeRv(CK_RV rv);

// The signet error code for a module failure that is not recovered: wrong or locked PINs are
// Unauthenticated / PermissionDenied, bad input InvalidArgument, a missing object NotFound, key or
// token state FailedPrecondition, lost devices and sessions Unavailable, everything else Internal.
ErrorCode ErrorCodeForRv(CK_RV rv);

// An Error with ErrorCodeForRv(rv) and the message "<context>: <function> returned <DescribeRv>",
// followed by "; <advice>" when advice is not empty. Never put a PIN into `context`.
Error RvError(CK_RV rv, std::string_view function, std::string_view context,
              std::string_view advice = {});

}  // namespace signet::hsm::internal
