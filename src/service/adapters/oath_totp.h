// OathTotp: the Totp port (service/totp.h) with liboath: HMAC-SHA1 TOTP per RFC 6238, the
// algorithm every authenticator app implements. Codes are compared in constant time (liboath's
// validation is given our own comparison callback instead of its strcmp).
//
// Threads: safe to call from many threads at once. liboath's global initialisation (oath_init)
// runs once per process, the first time an OathTotp is constructed; it is never undone.
#pragma once

#include <optional>
#include <string_view>

#include "common/bytes.h"
#include "common/result.h"
#include "service/totp.h"

namespace signet::service {

class OathTotp final : public Totp {
 public:
  // Aborts if liboath cannot initialise its crypto backend (a broken installation). Parameters
  // outside digits 6..8, period 1..300 s, skew 0..10 are clamped into those ranges.
  explicit OathTotp(TotpParameters parameters = {});

  const TotpParameters& parameters() const override { return parameters_; }
  // InvalidArgument for an empty seed or a time before the epoch.
  Result<SecretBytes> Generate(const SecretBytes& seed, TimePoint at) override;
  Result<std::optional<int64_t>> Verify(const SecretBytes& seed, std::string_view code,
                                        TimePoint now) override;

 private:
  const TotpParameters parameters_;  // constant after construction
};

}  // namespace signet::service
