// How the HSM's errors reach a client of the service's routes.
#pragma once

#include <utility>

#include "common/result.h"

namespace signet::service {

// An HSM that lost its login (Unauthenticated) or refuses (PermissionDenied: a locked PIN, an
// object it will not destroy) is the service's outage, never the caller's bad credentials or
// missing rights: those would read as 401/403 and make clients drop good tokens. Unavailable
// instead; every other error as it is.
inline Error HsmFailure(Error e) {
  if (e.code() == ErrorCode::kUnauthenticated || e.code() == ErrorCode::kPermissionDenied) {
    return Error(ErrorCode::kUnavailable, e.message());
  }
  return e;
}

template <typename T>
Result<T> FromHsm(Result<T> r) {
  if (r.ok()) return r;
  return HsmFailure(std::move(r).error());
}

}  // namespace signet::service
