#include "service/adapters/argon2_password_hasher.h"

#include <argon2.h>

#include <string>
#include <vector>

#include "common/random.h"

namespace signet::service {

Result<std::string> Argon2PasswordHasher::Hash(const SecretBytes& password) {
  if (password.empty()) return InvalidArgument("the password is empty");
  Bytes salt(parameters_.salt_bytes);
  SIGNET_TRY(RandomBytes(salt));
  const size_t encoded_size =
      argon2_encodedlen(parameters_.iterations, parameters_.memory_kib, parameters_.parallelism,
                        parameters_.salt_bytes, parameters_.hash_bytes, Argon2_id);
  std::vector<char> encoded(encoded_size + 1, '\0');
  int rc =
      argon2id_hash_encoded(parameters_.iterations, parameters_.memory_kib, parameters_.parallelism,
                            password.data(), password.size(), salt.data(), salt.size(),
                            parameters_.hash_bytes, encoded.data(), encoded.size());
  if (rc == ARGON2_MEMORY_ALLOCATION_ERROR) {
    return ResourceExhausted("not enough memory to hash a password with Argon2id (" +
                             std::to_string(parameters_.memory_kib) + " KiB)");
  }
  if (rc != ARGON2_OK) {
    // argon2_error_message names the parameter; it never contains the password.
    return InvalidArgument(std::string("cannot hash the password with Argon2id: ") +
                           argon2_error_message(rc));
  }
  return std::string(encoded.data());
}

Result<bool> Argon2PasswordHasher::Verify(std::string_view encoded, const SecretBytes& password) {
  if (encoded.rfind("$argon2id$", 0) != 0) {
    return DataLoss("a stored password hash is not an Argon2id hash");
  }
  if (password.empty()) return false;    // Hash() never accepts one, so nothing can match it.
  const std::string encoded_z(encoded);  // libargon2 wants a NUL-terminated string
  // argon2id_verify recomputes the hash and compares in constant time (argon2_verify's
  // constant-time compare of the raw hashes).
  int rc = argon2id_verify(encoded_z.c_str(), password.data(), password.size());
  if (rc == ARGON2_OK) return true;
  if (rc == ARGON2_VERIFY_MISMATCH) return false;
  if (rc == ARGON2_MEMORY_ALLOCATION_ERROR) {
    return ResourceExhausted("not enough memory to verify a password with Argon2id");
  }
  return DataLoss(std::string("a stored password hash cannot be used: ") +
                  argon2_error_message(rc));
}

}  // namespace signet::service
