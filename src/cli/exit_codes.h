// Process exit codes of `signet`, one per error class, so scripts can tell a typo from an outage.
#pragma once

#include "common/result.h"

namespace signet::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitUsage = 2;  // also CLI11 parse errors

// 1 internal, 2 invalid argument, 3 not found, 4 already exists, 5 permission denied or
// unauthenticated, 6 failed precondition, 7 unavailable or resource exhausted, 8 data loss.
int ExitCodeFor(ErrorCode code);

}  // namespace signet::cli
