// Result<T> and Error: how every signet component reports failure.
//
// Errors are values; exceptions never cross a component boundary. An Error carries one code from a
// closed set and a message written for the person who has to act on it ("token 'x' not found in
// module /usr/lib/...: check --token"). Result<T> is shaped like C++23 std::expected<T, Error> so it
// can be swapped for it later. Both are plain values: safe to move between threads, not to share
// mutably.
#pragma once

#include <cstdlib>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace signet {

// The closed set of error codes (modelled on absl::StatusCode). The comment on each says when to
// use it and whether a caller may retry the same request unchanged.
enum class ErrorCode {
  kInvalidArgument,     // The input is wrong whatever the system state. Do not retry unchanged.
  kNotFound,            // A named thing (key, account, token, file) does not exist. Do not retry.
  kAlreadyExists,       // Creating something whose name is taken. Do not retry.
  kPermissionDenied,    // Caller is known but not allowed, or a file cannot be accessed. No retry.
  kUnauthenticated,     // Missing or wrong credentials (PIN, password, token). No retry.
  kFailedPrecondition,  // The system is not in the state the operation needs (disabled key,
                        // foreign database). Fix the state first; do not retry unchanged.
  kResourceExhausted,   // A quota, rate or size limit was hit. Retry later.
  kUnavailable,         // A dependency (HSM, database) is temporarily unreachable. Retry with
                        // back-off.
  kDataLoss,            // Stored data is corrupt or was tampered with. Never retry; alert.
  kInternal,            // A broken invariant or an unexpected failure of a dependency. No retry.
};

// The lower-case name of a code ("invalid_argument"), stable for logs and JSON.
std::string_view ErrorCodeName(ErrorCode code);

class Error {
 public:
  Error(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Returns a copy whose message is "context: message", for adding what was being attempted.
  Error WithContext(std::string_view context) const;

 private:
  ErrorCode code_;
  std::string message_;
};

Error InvalidArgument(std::string message);
Error NotFound(std::string message);
Error AlreadyExists(std::string message);
Error PermissionDenied(std::string message);
Error Unauthenticated(std::string message);
Error FailedPrecondition(std::string message);
Error ResourceExhausted(std::string message);
Error Unavailable(std::string message);
Error DataLoss(std::string message);
Error InternalError(std::string message);

// Holds either a T or an Error. Accessing the wrong alternative is a programming error and aborts.
template <typename T>
class [[nodiscard]] Result {
 public:
  using value_type = T;

  Result(const T& value) : v_(value) {}                   // NOLINT: implicit by design.
  Result(T&& value) : v_(std::move(value)) {}             // NOLINT: implicit by design.
  Result(Error error) : v_(std::move(error)) {}           // NOLINT: implicit by design.
  template <typename U>
    requires(std::is_constructible_v<T, U&&> && !std::is_same_v<std::decay_t<U>, T> &&
             !std::is_same_v<std::decay_t<U>, Error> &&
             !std::is_same_v<std::decay_t<U>, Result<T>>)
  Result(U&& value) : v_(std::in_place_index<0>, std::forward<U>(value)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { Check(); return std::get<0>(v_); }
  const T& value() const& { Check(); return std::get<0>(v_); }
  T&& value() && { Check(); return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const& {
    if (ok()) std::abort();
    return std::get<1>(v_);
  }
  Error&& error() && {
    if (ok()) std::abort();
    return std::get<1>(std::move(v_));
  }

 private:
  void Check() const {
    if (!ok()) std::abort();
  }
  std::variant<T, Error> v_;
};

// Result<void>: success carries nothing.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT: implicit by design.

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const& {
    if (ok_) std::abort();
    return error_;
  }
  Error&& error() && {
    if (ok_) std::abort();
    return std::move(error_);
  }

 private:
  Error error_{ErrorCode::kInternal, ""};
  bool ok_ = true;
};

using Status = Result<void>;

inline Status OkStatus() { return Status(); }

}  // namespace signet

#define SIGNET_CONCAT_INNER_(a, b) a##b
#define SIGNET_CONCAT_(a, b) SIGNET_CONCAT_INNER_(a, b)

// Evaluates a Status/Result expression and returns its error from the enclosing function.
#define SIGNET_TRY(expr)                                 \
  do {                                                   \
    auto&& signet_try_result_ = (expr);                  \
    if (!signet_try_result_.ok()) {                      \
      return std::move(signet_try_result_).error();      \
    }                                                    \
  } while (0)

// SIGNET_ASSIGN_OR_RETURN(auto x, MakeX()); declares x from the value or returns the error.
#define SIGNET_ASSIGN_OR_RETURN(lhs, expr) \
  SIGNET_ASSIGN_OR_RETURN_IMPL_(SIGNET_CONCAT_(signet_result_, __LINE__), lhs, expr)
#define SIGNET_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return std::move(tmp).error();       \
  lhs = std::move(tmp).value()
