#include "service/adapters/oath_totp.h"

#include <liboath/oath.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <string>

namespace signet::service {
namespace {

void InitOathOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (oath_init() != OATH_OK) std::abort();  // liboath without its crypto backend is unusable
  });
}

TotpParameters Clamped(TotpParameters p) {
  p.digits = std::clamp(p.digits, 6, 8);
  p.period = std::clamp(p.period, std::chrono::seconds(1), std::chrono::seconds(300));
  p.skew_steps = std::clamp(p.skew_steps, 0, 10);
  return p;
}

// What liboath's validation compares each candidate code against.
struct Candidate {
  std::string_view code;
};

// strcmp-like, as liboath wants: 0 only on a match. Constant time in the code's content.
int ConstantTimeCompare(void* handle, const char* test_otp) {
  const auto* candidate = static_cast<const Candidate*>(handle);
  return ConstantTimeEquals(AsBytes(candidate->code), AsBytes(std::string_view(test_otp))) ? 0 : 1;
}

}  // namespace

OathTotp::OathTotp(TotpParameters parameters) : parameters_(Clamped(parameters)) { InitOathOnce(); }

Result<SecretBytes> OathTotp::Generate(const SecretBytes& seed, TimePoint at) {
  if (seed.empty()) return InvalidArgument("the TOTP seed is empty");
  const int64_t unix_seconds = ToUnixSeconds(at);
  if (unix_seconds < 0) return InvalidArgument("TOTP codes exist only after 1970");
  std::array<char, 16> output{};
  int rc =
      oath_totp_generate2(seed.text_view().data(), seed.size(), static_cast<time_t>(unix_seconds),
                          static_cast<unsigned>(parameters_.period.count()), 0,
                          static_cast<unsigned>(parameters_.digits), 0, output.data());
  if (rc != OATH_OK) {
    return InternalError(std::string("liboath cannot compute a TOTP code: ") + oath_strerror(rc));
  }
  SecretBytes code{std::string_view(output.data())};
  SecureWipe(output.data(), output.size());
  return code;
}

Result<std::optional<int64_t>> OathTotp::Verify(const SecretBytes& seed, std::string_view code,
                                                TimePoint now) {
  if (seed.empty()) return InvalidArgument("the TOTP seed is empty");
  const int64_t unix_seconds = ToUnixSeconds(now);
  if (unix_seconds < 0) return InvalidArgument("TOTP codes exist only after 1970");
  // Only well-formed codes reach the comparison; the length of a code is not a secret.
  if (code.size() != static_cast<size_t>(parameters_.digits) ||
      !std::all_of(code.begin(), code.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::optional<int64_t>();
  }
  Candidate candidate{code};
  int position = 0;
  uint64_t counter = 0;
  int rc = oath_totp_validate3_callback(
      seed.text_view().data(), seed.size(), static_cast<time_t>(unix_seconds),
      static_cast<unsigned>(parameters_.period.count()), 0,
      static_cast<unsigned>(parameters_.digits), static_cast<size_t>(parameters_.skew_steps),
      &position, &counter, &ConstantTimeCompare, &candidate);
  if (rc == OATH_INVALID_OTP) return std::optional<int64_t>();
  if (rc < 0) {
    return InternalError(std::string("liboath cannot check a TOTP code: ") + oath_strerror(rc));
  }
  return std::optional<int64_t>(static_cast<int64_t>(counter));
}

}  // namespace signet::service
