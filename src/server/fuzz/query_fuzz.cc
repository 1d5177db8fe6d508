// libFuzzer target for ParseTarget (internal/http_util.h): request-targets straight from clients.
// Checks that parsing never crashes, respects its limits, and that the path is a prefix of the
// input.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "server/internal/http_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = signet::server::internal::ParseTarget(text);
  if (parsed.ok()) {
    if (parsed->query.size() > signet::server::internal::kMaxQueryParams) std::abort();
    if (text.substr(0, parsed->path.size()) != parsed->path) std::abort();
    for (const auto& [name, value] : parsed->query) {
      if (name.find('\0') != std::string::npos || value.find('\0') != std::string::npos) {
        std::abort();
      }
    }
  }
  auto decoded = signet::server::internal::PercentDecode(text, true);
  if (decoded.ok() && decoded->size() > size) std::abort();
  (void)signet::server::internal::JsonEscape(text);
  return 0;
}
