// PasswordHasher: the port for storing passwords as slow, salted, memory-hard hashes (DESIGN.md
// §3 "secrets": Argon2id). The adapter is service/adapters/argon2_password_hasher.h.
//
// Threads: implementations must be safe to call from many threads at once.
#pragma once

#include <string>
#include <string_view>

#include "common/bytes.h"
#include "common/result.h"

namespace signet::service {

class PasswordHasher {
 public:
  virtual ~PasswordHasher() = default;

  // A self-describing encoded hash of `password` with a fresh random salt (for Argon2id:
  // "$argon2id$v=19$m=...,t=...,p=...$salt$hash"). InvalidArgument for an empty password;
  // ResourceExhausted if the memory for hashing cannot be had.
  virtual Result<std::string> Hash(const SecretBytes& password) = 0;

  // Whether `password` matches `encoded` (compared in constant time). DataLoss if `encoded` is
  // not a hash this hasher understands.
  virtual Result<bool> Verify(std::string_view encoded, const SecretBytes& password) = 0;
};

}  // namespace signet::service
