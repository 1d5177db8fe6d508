#include "common/result.h"

namespace signet {

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid_argument";
    case ErrorCode::kNotFound: return "not_found";
    case ErrorCode::kAlreadyExists: return "already_exists";
    case ErrorCode::kPermissionDenied: return "permission_denied";
    case ErrorCode::kUnauthenticated: return "unauthenticated";
    case ErrorCode::kFailedPrecondition: return "failed_precondition";
    case ErrorCode::kResourceExhausted: return "resource_exhausted";
    case ErrorCode::kUnavailable: return "unavailable";
    case ErrorCode::kDataLoss: return "data_loss";
    case ErrorCode::kInternal: return "internal";
  }
  return "internal";
}

Error Error::WithContext(std::string_view context) const {
  std::string m(context);
  m += ": ";
  m += message_;
  return Error(code_, std::move(m));
}

Error InvalidArgument(std::string message) { return {ErrorCode::kInvalidArgument, std::move(message)}; }
Error NotFound(std::string message) { return {ErrorCode::kNotFound, std::move(message)}; }
Error AlreadyExists(std::string message) { return {ErrorCode::kAlreadyExists, std::move(message)}; }
Error PermissionDenied(std::string message) { return {ErrorCode::kPermissionDenied, std::move(message)}; }
Error Unauthenticated(std::string message) { return {ErrorCode::kUnauthenticated, std::move(message)}; }
Error FailedPrecondition(std::string message) { return {ErrorCode::kFailedPrecondition, std::move(message)}; }
Error ResourceExhausted(std::string message) { return {ErrorCode::kResourceExhausted, std::move(message)}; }
Error Unavailable(std::string message) { return {ErrorCode::kUnavailable, std::move(message)}; }
Error DataLoss(std::string message) { return {ErrorCode::kDataLoss, std::move(message)}; }
Error InternalError(std::string message) { return {ErrorCode::kInternal, std::move(message)}; }

}  // namespace signet
