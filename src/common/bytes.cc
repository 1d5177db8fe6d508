#include "common/bytes.h"

#include <cstring>

namespace signet {

void SecureWipe(void* data, size_t size) {
  if (size == 0) return;
  std::memset(data, 0, size);
  // The empty asm with a memory clobber tells the compiler the zeroed bytes are observed.
  __asm__ __volatile__("" : : "r"(data) : "memory");
}

bool ConstantTimeEquals(ByteView a, ByteView b) {
  if (a.size() != b.size()) return false;
  volatile uint8_t diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff = static_cast<uint8_t>(diff | (a[i] ^ b[i]));
  return diff == 0;
}

}  // namespace signet
