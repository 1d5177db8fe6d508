// libFuzzer target for ParseSubject (pki.h): any input must be parsed or refused without memory
// errors, and whatever is accepted must survive DistinguishedName::ToString and parse back equal.
//
// Run: pki_subject_fuzz -max_len=4200 /tmp/subject-corpus src/pki/fuzz/corpus/subject

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "pki/pki.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto dn = signet::pki::ParseSubject(text);
  if (dn.ok()) {
    auto again = signet::pki::ParseSubject(dn->ToString());
    if (!again.ok() || !(*again == *dn)) __builtin_trap();
  }
  return 0;
}
