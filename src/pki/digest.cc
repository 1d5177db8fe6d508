#include <openssl/evp.h>

#include "pki/pki.h"

namespace signet::pki {

Result<Bytes> ComputeDigest(HashAlgorithm hash, ByteView data) {
  const EVP_MD* md = nullptr;
  switch (hash) {
    case HashAlgorithm::kSha256:
      md = EVP_sha256();
      break;
    case HashAlgorithm::kSha384:
      md = EVP_sha384();
      break;
    case HashAlgorithm::kSha512:
      md = EVP_sha512();
      break;
  }
  if (md == nullptr) return InternalError("unknown hash algorithm");
  Bytes out(EVP_MAX_MD_SIZE);
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &len, md, nullptr) != 1) {
    return InternalError("OpenSSL could not compute a " + std::string(HashAlgorithmName(hash)) +
                         " digest");
  }
  out.resize(len);
  return out;
}

}  // namespace signet::pki
