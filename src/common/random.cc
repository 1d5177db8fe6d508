#include "common/random.h"

#include <sys/random.h>

#include <cerrno>
#include <cstring>

#include "common/encoding.h"

namespace signet {

Status RandomBytes(std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::getrandom(out.data() + done, out.size() - done, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Unavailable(std::string("getrandom failed: ") + std::strerror(errno));
    }
    done += static_cast<size_t>(n);
  }
  return OkStatus();
}

Result<SecretBytes> RandomPrintableSecret(size_t size) {
  Bytes raw(size);
  SIGNET_TRY(RandomBytes(raw));
  std::string text = Base64UrlEncode(raw);
  SecretBytes secret{std::string_view(text)};
  SecureWipe(raw.data(), raw.size());
  SecureWipe(text.data(), text.size());
  return secret;
}

}  // namespace signet
