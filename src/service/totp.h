// Totp: the port for time-based one-time passwords (RFC 6238: HOTP of RFC 4226 over the number
// of `period` steps since the Unix epoch), and the pieces of an authenticator-app enrolment. The
// adapter is service/adapters/oath_totp.h (liboath).
//
// Verify returns the time step a code matched, so the caller can refuse a second use of the same
// step (RFC 6238 §5.2: "the verifier MUST NOT accept the second attempt of the same OTP").
//
// Threads: implementations must be safe to call from many threads at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/bytes.h"
#include "common/clock.h"
#include "common/result.h"

namespace signet::service {

struct TotpParameters {
  int digits = 6;                   // 6 to 8
  std::chrono::seconds period{30};  // RFC 6238 §5.2 recommends 30 s
  int skew_steps = 1;               // accept codes this many steps early or late
};

class Totp {
 public:
  virtual ~Totp() = default;

  virtual const TotpParameters& parameters() const = 0;

  // The code for `seed` at time `at` (HMAC-SHA1), `digits` decimal digits with leading zeros.
  virtual Result<SecretBytes> Generate(const SecretBytes& seed, TimePoint at) = 0;

  // The time step (floor(unix_time / period)) whose code equals `code`, searching the step of
  // `now` and `skew_steps` steps either side; nullopt if none matches. A code of the wrong length
  // or with non-digits simply matches nothing. Codes are compared in constant time.
  virtual Result<std::optional<int64_t>> Verify(const SecretBytes& seed, std::string_view code,
                                                TimePoint now) = 0;
};

// RFC 4648 §6 base32 (upper case), without '=' padding as authenticator apps expect.
std::string Base32Encode(ByteView data);

// The Key Uri Format authenticator apps read (also as a QR code):
// otpauth://totp/<issuer>:<account>?secret=<base32>&issuer=<issuer>&algorithm=SHA1&digits=6&period=30
// `issuer` and `account` are percent-encoded. The result contains the secret: treat it as one.
SecretBytes TotpUri(std::string_view issuer, std::string_view account, const SecretBytes& seed,
                    const TotpParameters& parameters);

}  // namespace signet::service
