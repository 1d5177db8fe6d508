// Differential fuzzing of audit/entry.h: CheckCanonicalJson (a single pass over the bytes, with a
// fall-back to parse + dump for what it cannot decide) must accept exactly the texts that equal
// nlohmann-json's dump() of their own parse (nested at most kMaxEntryDepth deep), and
// ParseEntryFields must agree with it on every text it accepts, also on a checkpoint entry's
// stated size and root. Any disagreement aborts.
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>

#include "audit/entry.h"

namespace {

using nlohmann::json;

bool NestsTooDeep(std::string_view text) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > signet::audit::kMaxEntryDepth) return true;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return false;
}

bool CanonicalByDefinition(std::string_view text) {
  if (NestsTooDeep(text)) return false;
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return false;
  try {
    return doc.dump(-1, ' ', false, json::error_handler_t::strict) == text;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const bool canonical = signet::audit::CheckCanonicalJson(text).ok();
  if (canonical != CanonicalByDefinition(text)) std::abort();
  auto fields = signet::audit::ParseEntryFields(text);
  if (fields.ok() && !canonical) std::abort();
  // A checkpoint entry's stated size and root are what the parsed document holds there.
  if (fields.ok() && fields->checkpoint_note) {
    const json doc = json::parse(text);
    const json& details = doc.at("details");
    for (const auto& [name, value] : {std::pair{"size", &fields->checkpoint_size},
                                      std::pair{"root", &fields->checkpoint_root}}) {
      auto it = details.find(name);
      if ((it == details.end()) != !value->has_value()) std::abort();
      if (it != details.end() && (!it->is_string() || it->get<std::string>() != **value)) {
        std::abort();
      }
    }
  }
  return 0;
}
