// Differential fuzzing of audit/entry.h: CheckCanonicalJson (a single pass over the bytes, with a
// fall-back to parse + dump for what it cannot decide) must accept exactly the texts that equal
// nlohmann-json's dump() of their own parse (nested at most kMaxEntryDepth deep), and
// ParseEntryFields must accept exactly the canonical texts that entry.h's definition of an entry
// accepts (read here from the parsed document) and return the same fields, a checkpoint entry's
// stated size and root included. Any disagreement aborts.
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>

#include "audit/entry.h"
#include "common/text.h"

namespace {

using nlohmann::json;

bool CanonicalByDefinition(std::string_view text) {
  if (signet::JsonNestsDeeperThan(text, signet::audit::kMaxEntryDepth)) return false;
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
  // For a canonical text within the size limit, ParseEntryFields must accept exactly what the
  // definition in entry.h accepts, and return the same fields, read here from the parsed document.
  if (canonical && !text.empty() && text.size() <= signet::audit::kMaxEntrySize) {
    const json doc = json::parse(text);
    bool expected = doc.is_object();
    const json* details = nullptr;
    if (expected) {
      auto index = doc.find("index");
      auto action = doc.find("action");
      expected = index != doc.end() && index->is_number_unsigned() && action != doc.end() &&
                 action->is_string() && !action->get_ref<const std::string&>().empty();
      if (expected && *action == "log_checkpoint") {
        auto d = doc.find("details");
        details = d != doc.end() && d->is_object() ? &*d : nullptr;
        expected = details != nullptr && details->contains("checkpoint") &&
                   details->at("checkpoint").is_string();
        for (const char* name : {"size", "root"}) {
          if (expected && details->contains(name) && !details->at(name).is_string()) {
            expected = false;
          }
        }
      }
    }
    if (fields.ok() != expected) std::abort();
    if (fields.ok()) {
      if (fields->index.value() != doc.at("index").get<uint64_t>()) std::abort();
      if (fields->action != doc.at("action").get<std::string>()) std::abort();
      if ((details != nullptr) != fields->checkpoint_note.has_value()) std::abort();
      if (details != nullptr) {
        if (*fields->checkpoint_note != details->at("checkpoint").get<std::string>()) std::abort();
        for (const auto& [name, value] : {std::pair{"size", &fields->checkpoint_size},
                                          std::pair{"root", &fields->checkpoint_root}}) {
          auto it = details->find(name);
          if ((it == details->end()) != !value->has_value()) std::abort();
          if (it != details->end() && it->get<std::string>() != **value) std::abort();
        }
      }
    }
  }
  return 0;
}
