// Argon2PasswordHasher: the PasswordHasher port with Argon2id (RFC 9106) from libargon2. Hashes
// are libargon2's encoded strings ("$argon2id$v=19$m=65536,t=3,p=1$<salt>$<hash>"), which carry
// their own parameters, so raising the cost later keeps old hashes verifiable.
//
// Threads: safe to call from many threads at once; each call allocates memory_kib of its own.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/bytes.h"
#include "common/result.h"
#include "service/password_hasher.h"

namespace signet::service {

struct Argon2Parameters {
  // Production defaults: RFC 9106 §4's second recommended option is t=3, m=64 MiB; p=1 keeps one
  // login on one core. Tests use memory_kib of a few hundred to stay fast.
  uint32_t iterations = 3;
  uint32_t memory_kib = 64 * 1024;
  uint32_t parallelism = 1;
  uint32_t salt_bytes = 16;
  uint32_t hash_bytes = 32;
};

class Argon2PasswordHasher final : public PasswordHasher {
 public:
  explicit Argon2PasswordHasher(Argon2Parameters parameters = {}) : parameters_(parameters) {}

  // Errors as on PasswordHasher; InvalidArgument also for parameters libargon2 refuses (e.g.
  // memory_kib below 8 * parallelism).
  Result<std::string> Hash(const SecretBytes& password) override;
  Result<bool> Verify(std::string_view encoded, const SecretBytes& password) override;

 private:
  const Argon2Parameters parameters_;  // constant after construction
};

}  // namespace signet::service
