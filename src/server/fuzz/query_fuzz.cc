// libFuzzer target for ParseTarget (internal/http_util.h): request-targets straight from clients.
// Checks that parsing never crashes, respects its limits, and that the path is a prefix of the
// input; and that JsonEscape turns any bytes into a valid JSON string, which gives back the input
// when that was UTF-8.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
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
  // JsonEscape must make valid JSON of any bytes (error bodies echo request text), and give back
  // exactly the input when that was valid UTF-8 (nlohmann's strict dump throws otherwise).
  const std::string quoted = "\"" + signet::server::internal::JsonEscape(text) + "\"";
  const auto parsed_string = nlohmann::json::parse(quoted, nullptr, false);
  if (!parsed_string.is_string()) std::abort();
  bool utf8 = true;
  try {
    (void)nlohmann::json(std::string(text)).dump();
  } catch (const nlohmann::json::type_error&) {
    utf8 = false;
  }
  if (utf8 && parsed_string.get<std::string>() != text) std::abort();
  return 0;
}
